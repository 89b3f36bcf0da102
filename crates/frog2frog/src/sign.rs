//! `frog2frog sign`: the origin side of segment integrity. Writes the signed hashes of the
//! segments an HLS media playlist or a DASH MPD names next to it (format:
//! `f2f_core::integrity::SignedHashes`), once or, with `--watch`, every time the live
//! playlist changes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use f2f_core::identity::{Bls, Keypair};
use f2f_core::integrity::{HashEntry, SegmentHash, SignedHashes};

#[derive(clap::Args)]
pub(crate) struct SignArgs {
    /// The HLS media playlist (`.m3u8`) or DASH MPD (`.mpd`) whose segments to sign.
    playlist: PathBuf,
    /// The origin's secret key file (32 bytes, hex).
    #[arg(long)]
    key: PathBuf,
    /// Create the key file (mode 0600) if it does not exist.
    #[arg(long)]
    new_key: bool,
    /// An A/B watermark variant the CDN edge picks by token: `NAME=DIR`, where DIR holds that
    /// variant's segment files under the playlist's URIs. Repeat for each variant.
    #[arg(long = "variant", value_name = "NAME=DIR")]
    variants: Vec<String>,
    /// Where to write (default: the playlist's path with `.f2f-hashes` appended).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep running: sign again whenever the playlist changes (a live stream).
    #[arg(long)]
    watch: bool,
}

/// Reads the origin key, creating it first when asked.
fn origin_key(path: &Path, create: bool) -> anyhow::Result<Keypair> {
    if create && !path.exists() {
        let mut entropy = [0u8; 32];
        getrandom::fill(&mut entropy)
            .map_err(|e| anyhow::anyhow!("no OS randomness for a new key: {e}"))?;
        let key = Keypair::from_entropy(&entropy);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "{}", hex::encode(key.secret_bytes()))?;
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret: [u8; 32] = hex::FromHex::from_hex(text.trim())
        .map_err(|e| anyhow::anyhow!("{}: expected 64 hex digits: {e}", path.display()))?;
    Keypair::from_secret_bytes(&secret).with_context(|| format!("{}", path.display()))
}

/// Hashes already computed, by file and modification time: a live playlist names mostly the
/// same segments each time.
type Seen = BTreeMap<PathBuf, (SystemTime, u64, SegmentHash)>;

fn hash_file(path: &Path, seen: &mut Seen) -> anyhow::Result<(u64, SegmentHash)> {
    let modified = fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading {}", path.display()))?;
    if let Some(&(at, size, hash)) = seen.get(path)
        && at == modified
    {
        return Ok((size, hash));
    }
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (size, hash) = (bytes.len() as u64, SegmentHash::of(&bytes));
    seen.insert(path.to_owned(), (modified, size, hash));
    Ok((size, hash))
}

/// The segment URIs an HLS media playlist names, as it writes them.
fn hls_uris(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    let playlist = m3u8_rs::parse_media_playlist_res(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not an HLS media playlist: {e}", path.display()))?;
    let mut uris = Vec::with_capacity(playlist.segments.len());
    for segment in playlist.segments {
        if segment.uri.contains("://") || segment.uri.contains(char::is_whitespace) {
            bail!(
                "segment URI {:?}: only relative paths are signed",
                segment.uri
            );
        }
        uris.push(segment.uri);
    }
    Ok(uris)
}

/// The initialisation and media segments a DASH MPD makes available now, as paths relative to
/// its directory (the template expanded: what a player requests relative to the MPD).
fn dash_uris(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    let text = std::str::from_utf8(bytes).with_context(|| format!("{}", path.display()))?;
    let absolute = std::path::absolute(path)?;
    let base = url::Url::from_file_path(&absolute)
        .map_err(|()| anyhow::anyhow!("{}: not a file path", path.display()))?;
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_millis();
    let mpd = f2f_core::content::parse_mpd(base.as_str(), text, now_ms as u64)
        .with_context(|| format!("{}", path.display()))?;
    let mut uris = Vec::new();
    for rep in mpd.representations {
        let segments = rep.segments.into_iter().map(|s| s.uri);
        for uri in rep.initialization.into_iter().chain(segments) {
            let relative = base
                .make_relative(&url::Url::parse(&uri)?)
                .filter(|r| !r.starts_with("../") && !r.contains("://"))
                .with_context(|| format!("segment {uri}: only files beside the MPD are signed"))?;
            if !uris.contains(&relative) {
                uris.push(relative);
            }
        }
    }
    Ok(uris)
}

/// The entries for every segment the playlist names, in each variant.
fn entries(args: &SignArgs, seen: &mut Seen) -> anyhow::Result<Vec<HashEntry>> {
    let path = &args.playlist;
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let uris = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mpd"))
    {
        dash_uris(path, &bytes)?
    } else {
        hls_uris(path, &bytes)?
    };
    let dir = args.playlist.parent().unwrap_or(Path::new("."));
    let mut variants: Vec<(Option<String>, PathBuf)> = vec![(None, dir.to_owned())];
    for v in &args.variants {
        let (name, vdir) = v
            .split_once('=')
            .with_context(|| format!("--variant {v}: expected NAME=DIR"))?;
        variants.push((Some(name.to_owned()), PathBuf::from(vdir)));
    }
    let mut out = Vec::new();
    for uri in uris {
        for (variant, base) in &variants {
            let (size, hash) = hash_file(&base.join(&uri), seen)?;
            out.push(HashEntry {
                uri: uri.clone(),
                variant: variant.clone(),
                size,
                hash,
            });
        }
    }
    Ok(out)
}

/// Writes `text` to `path` through a temporary file, so readers never see half a file.
fn publish(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("f2f-hashes.tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn sign(args: SignArgs) -> anyhow::Result<()> {
    let key = origin_key(&args.key, args.new_key)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = args.playlist.clone().into_os_string();
        name.push(".f2f-hashes");
        PathBuf::from(name)
    });
    eprintln!("origin key {}", hex::encode(key.public().as_bytes()));
    let bls = Bls::new();
    let mut seen = Seen::new();
    let mut last = None;
    loop {
        let modified = fs::metadata(&args.playlist).and_then(|m| m.modified()).ok();
        if modified != last {
            let entries = entries(&args, &mut seen)?;
            publish(&out, &SignedHashes::sign(&bls, &key, &entries))?;
            eprintln!("signed {} segments into {}", entries.len(), out.display());
            last = modified;
        }
        if !args.watch {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

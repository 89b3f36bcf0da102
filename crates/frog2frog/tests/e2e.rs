//! End to end with real processes on loopback: `frog2frog origin` (or nginx serving a live HLS
//! stream that ffmpeg encodes), `frog2frog control`, six `frog2frog agent`s, and an unmodified
//! player (ffmpeg) reading the live stream through each agent's proxy for a minute: HLS, DASH,
//! and nginx's HLS in three tests. Two agents are killed half-way; the others' players must
//! not notice.
//!
//! Checked: no surviving player's request failed and every player exits cleanly; every segment
//! a surviving agent returned has the origin's exact bytes, with no gap in either rendition;
//! at least 60 % of the bytes came from peers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_frog2frog");
const AGENTS: usize = 6;
const PLAY_SECS: u64 = 64;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `frog2frog args` and returns it with the first stdout line containing each marker
/// (the rest of the output is drained in the background).
///
/// With `F2F_E2E_LOGS=DIR` set, each process's log (stderr, filtered by `RUST_LOG`) goes to a
/// file in `DIR` named after its command and process id, to look into a failed run.
fn start(args: &[&str], markers: &[&str]) -> (Proc, Vec<String>) {
    let stderr = match std::env::var_os("F2F_E2E_LOGS") {
        Some(dir) => {
            static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("{}-{}-{n}.log", std::process::id(), args[0]);
            Stdio::from(std::fs::File::create(std::path::Path::new(&dir).join(name)).unwrap())
        }
        None => Stdio::null(),
    };
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("frog2frog starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut found = Vec::new();
    for marker in markers {
        loop {
            let line = lines.next().expect("output before exit").expect("utf-8");
            if line.contains(marker) {
                found.push(line);
                break;
            }
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    (Proc(child), found)
}

fn after<'a>(line: &'a str, marker: &str) -> &'a str {
    line.split_once(marker).expect("marker").1.trim()
}

fn player(url: &str) -> Proc {
    player_for(url, PLAY_SECS)
}

fn player_for(url: &str, secs: u64) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", url])
        .args(["-t", &secs.to_string(), "-c", "copy", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (.ci/run installs it)");
    Proc(child)
}

/// A blocking GET on loopback (the test has no async runtime of its own).
fn get(url: &str) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = reqwest::get(url).await.expect("GET");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.bytes().await.expect("body").to_vec()
    })
}

/// The value of a Prometheus sample (`name{labels} value`).
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
}

#[derive(serde::Deserialize)]
struct Delivery {
    url: String,
    bytes: u64,
    blake3: String,
    p2p_bytes: u64,
}

/// Starts an agent with its key in `key` (and `extra` arguments); its proxy's base URL and
/// the player URL for `stream`.
fn start_agent(
    tracker: &str,
    origin_key: &str,
    stream: &str,
    key: &std::path::Path,
    extra: &[&str],
) -> (Proc, String, String) {
    let mut args = vec![
        "agent",
        "--tracker",
        tracker,
        "--listen",
        "127.0.0.1:0",
        "--key-file",
        key.to_str().unwrap(),
        "--origin-key",
        origin_key,
        "--play",
        stream,
    ];
    args.extend_from_slice(extra);
    let (proc, lines) = start(&args, &["proxying on", "player URL:"]);
    let proxy = after(&lines[0], "proxying on").to_owned();
    let url = after(&lines[1], "player URL:").to_owned();
    (proc, proxy, url)
}

/// Waits for every player to finish its `PLAY_SECS`, and asserts each exited cleanly.
fn finish(players: &mut [Proc], started: Instant) {
    for (i, player) in players.iter_mut().enumerate() {
        let deadline = started + Duration::from_secs(PLAY_SECS + 40);
        wait_clean_exit(player, deadline, i);
    }
}

fn wait_clean_exit(player: &mut Proc, deadline: Instant, i: usize) {
    let status = loop {
        if let Some(status) = player.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "player {i} still running");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "player {i} failed: {status}");
}

fn swarm_of_players(dash: bool) {
    let (_origin, lines) = start(
        &[
            "origin",
            "--listen",
            "127.0.0.1:0",
            "--bitrate-kbps",
            "1000",
            "--sign",
        ],
        &["origin key:", "HLS:", "DASH:"],
    );
    let origin_key = after(&lines[0], "origin key:").to_owned();
    let stream = after(
        &lines[if dash { 2 } else { 1 }],
        if dash { "DASH:" } else { "HLS:" },
    )
    .to_owned();
    let label = if dash { "DASH" } else { "HLS" };
    play_and_check(&stream, &origin_key, 2, label);
}

/// Checks that every segment agent `i` (proxy base URL `proxy`) returned has the origin's
/// exact bytes; the segment numbers it returned, by rendition directory.
fn byte_exact_deliveries(proxy: &str, i: usize) -> std::collections::BTreeMap<String, Vec<u64>> {
    let deliveries: Vec<Delivery> =
        serde_json::from_slice(&get(&format!("{proxy}/f2f/v1/deliveries"))).unwrap();
    let mut numbers: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for d in &deliveries {
        let original = get(&format!("http://{}", d.url));
        assert_eq!(d.bytes, original.len() as u64, "{}", d.url);
        assert_eq!(
            d.blake3,
            blake3::hash(&original).to_hex().as_str(),
            "{} from agent {i}",
            d.url
        );
        assert!(d.p2p_bytes <= d.bytes);
        let (dir, file) = d.url.rsplit_once('/').unwrap();
        let stem = file.split('.').next().unwrap_or(file);
        let digits = stem.trim_start_matches(|c: char| !c.is_ascii_digit());
        if let (Some(".m4s" | ".ts"), Ok(n)) = (file.get(stem.len()..), digits.parse()) {
            numbers.entry(dir.to_owned()).or_default().push(n);
        }
    }
    numbers
}

/// Six agents and their players on `stream` (whose origin signs with `origin_key`) for
/// `PLAY_SECS`, two agents killed half-way; checks the survivors as the module says.
/// `renditions`: how many segment directories each player reads.
fn play_and_check(stream: &str, origin_key: &str, renditions: usize, label: &str) {
    let (_control, lines) = start(&["control", "--listen", "127.0.0.1:0"], &["tracker:"]);
    let tracker = after(&lines[0], "tracker:").to_owned();
    let dir = std::env::temp_dir().join(format!("f2f-e2e-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            start_agent(
                &tracker,
                origin_key,
                stream,
                &dir.join(format!("agent{i}.key")),
                &[],
            )
        })
        .collect();
    let mut players: Vec<Proc> = agents.iter().map(|(_, _, url)| player(url)).collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(PLAY_SECS / 2));
    // Two viewers leave without a word, mid-stream.
    let mut agents = agents;
    for (proc, _, _) in agents.iter_mut().take(2) {
        proc.0.kill().unwrap();
    }
    finish(&mut players[2..], started);
    let (mut p2p, mut total, mut uploads) = (0.0, 0.0, 0.0);
    for (i, (_, proxy, _)) in agents.iter().enumerate().skip(2) {
        let text = String::from_utf8(get(&format!("{proxy}/metrics"))).unwrap();
        assert_eq!(
            metric(&text, "f2f_segment_failures_total"),
            0.0,
            "agent {i}"
        );
        // Over a minute in: pings kept the tracker socket (it forgets silent members).
        assert_eq!(metric(&text, "f2f_tracker_connected"), 1.0, "agent {i}");
        p2p += metric(&text, "f2f_served_bytes_total{source=\"p2p\"}");
        total += metric(&text, "f2f_served_bytes_total{source=\"p2p\"}")
            + metric(&text, "f2f_served_bytes_total{source=\"cdn\"}");
        uploads += metric(&text, "f2f_upload_requests_total{outcome=\"started\"}");
        let numbers = byte_exact_deliveries(proxy, i);
        assert_eq!(
            numbers.len(),
            renditions,
            "renditions: {:?}",
            numbers.keys()
        );
        for (rendition, mut ns) in numbers {
            ns.sort_unstable();
            ns.dedup();
            let span = ns.last().unwrap() - ns.first().unwrap() + 1;
            assert_eq!(
                span,
                ns.len() as u64,
                "agent {i} {rendition}: a segment is missing"
            );
            assert!(
                ns.len() >= 28,
                "agent {i} {rendition}: {} segments",
                ns.len()
            );
        }
    }
    let offload = p2p / total;
    eprintln!(
        "{label}: offload {:.1} % over the surviving agents",
        offload * 100.0
    );
    assert!(offload >= 0.6, "offload {:.1} %", offload * 100.0);
    assert!(uploads > 0.0, "the survivors served each other");
    drop(players);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same with a stream the project did not make: ffmpeg encodes a live HLS stream (MPEG-TS,
/// muxed) into a directory, nginx serves it, and `frog2frog sign --watch` publishes its signed
/// hashes beside the playlist, as an origin operator would.
#[test]
fn nginx_and_ffmpeg_live_hls_through_six_agents() {
    let dir = std::env::temp_dir().join(format!("f2f-e2e-{}-nginx", std::process::id()));
    let www = dir.join("www/live");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {d}/tmp;\n\
             proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n\
             scgi_temp_path {d}/tmp;\n types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}\n\
             default_type text/plain;\n server {{\n  listen 127.0.0.1:{port};\n  root {d}/www;\n\
             add_header Cache-Control no-cache;\n }}\n}}\n"
        ),
    )
    .unwrap();
    let _nginx = Proc(
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        Command::new(
            ["/usr/sbin/nginx", "nginx"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("nginx"),
        )
        .args(["-e", &format!("{d}/error.log"), "-p", &d.to_string(), "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (.ci/run installs it)"),
    );
    let playlist = www.join("index.m3u8");
    let _encoder = Proc(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-g",
                "50",
                "-keyint_min",
                "50",
            ])
            .args([
                "-sc_threshold",
                "0",
                "-b:v",
                "900k",
                "-maxrate",
                "900k",
                "-bufsize",
                "900k",
            ])
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "2"])
            .args(["-hls_list_size", "6", "-hls_segment_filename"])
            .arg(www.join("seg%05d.ts"))
            .arg(&playlist)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg is installed"),
    );
    let key = dir.join("origin.key");
    let mut signer = Command::new(BIN);
    signer
        .args(["sign", "--new-key", "--watch", "--key"])
        .arg(&key)
        .arg(&playlist)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The signer needs the playlist: wait for ffmpeg's first three segments.
    let ready = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&playlist).map_or(0, |p| p.matches("#EXTINF").count()) < 3 {
        assert!(Instant::now() < ready, "ffmpeg wrote no live playlist");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut signer = signer.spawn().expect("frog2frog sign starts");
    let mut lines = BufReader::new(signer.stderr.take().unwrap()).lines();
    let origin_key = loop {
        let line = lines.next().expect("signer output").unwrap();
        if let Some(key) = line.strip_prefix("origin key ") {
            break key.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let _signer = Proc(signer);
    let stream = format!("http://127.0.0.1:{port}/live/index.m3u8");
    play_and_check(&stream, &origin_key, 1, "nginx HLS");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hls_players_through_six_agents_lose_nothing_when_two_leave() {
    swarm_of_players(false);
}

#[test]
fn dash_players_through_six_agents_lose_nothing_when_two_leave() {
    swarm_of_players(true);
}

/// The swarm without its control plane: six agents with signalling contacts play; the control
/// plane is killed; two viewers stop, their agents leave the swarm, and they play again. They
/// must come back through a member's contact (the tracker is gone), reconnect to more peers
/// than that member through signalling relayed by the overlay, and receive from peers again;
/// everyone else keeps playing without a failed request while the others keep rewiring.
#[test]
fn members_return_and_the_swarm_rewires_while_the_control_plane_is_down() {
    let (_origin, lines) = start(
        &[
            "origin",
            "--listen",
            "127.0.0.1:0",
            "--bitrate-kbps",
            "1000",
            "--sign",
        ],
        &["origin key:", "HLS:"],
    );
    let origin_key = after(&lines[0], "origin key:").to_owned();
    let stream = after(&lines[1], "HLS:").to_owned();
    let (mut control, lines) = start(&["control", "--listen", "127.0.0.1:0"], &["tracker:"]);
    let tracker = after(&lines[0], "tracker:").to_owned();
    let dir = std::env::temp_dir().join(format!("f2f-e2e-{}-heal", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let contact = ["--contact-listen", "127.0.0.1:0", "--swarm-idle-secs", "4"];
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            let key = dir.join(format!("agent{i}.key"));
            start_agent(&tracker, &origin_key, &stream, &key, &contact)
        })
        .collect();
    let metrics = |i: usize| String::from_utf8(get(&format!("{}/metrics", agents[i].1))).unwrap();
    // Counters of the agents that stay (a node that leaves takes its counters with it).
    let sum = |sample: &str| (0..4).map(|i| metric(&metrics(i), sample)).sum::<f64>();
    let mut players: Vec<Proc> = agents.iter().map(|(_, _, url)| player(url)).collect();
    let started = Instant::now();

    std::thread::sleep(Duration::from_secs(12));
    control.0.kill().unwrap();
    let _ = control.0.wait();
    let overlay_before = sum("f2f_signals_sent_total{via=\"overlay\"}");
    let opened_before = sum("f2f_connections_opened_total");

    // Two viewers stop; with nothing asked of it for 4 s, each agent leaves the swarm.
    let returning = [4, 5];
    for &i in &returning {
        players[i].0.kill().unwrap();
        let _ = players[i].0.wait();
    }
    for &i in &returning {
        let left = Instant::now() + Duration::from_secs(20);
        while metric(&metrics(i), "f2f_swarms") > 0.0 {
            assert!(Instant::now() < left, "agent {i} never left the idle swarm");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    // They play again: no tracker to join through.
    const REPLAY_SECS: u64 = 30;
    let replayed = Instant::now();
    let p2p_before: Vec<f64> = (returning.iter())
        .map(|&i| metric(&metrics(i), "f2f_served_bytes_total{source=\"p2p\"}"))
        .collect();
    for &i in &returning {
        players[i] = player_for(&agents[i].2, REPLAY_SECS);
    }
    // Read while they play: an agent leaves a swarm 4 s after its player stops asking.
    for &i in &returning {
        let playing = replayed + Duration::from_secs(REPLAY_SECS);
        loop {
            let text = metrics(i);
            let via_member = metric(&text, "f2f_swarms_via_member") == 1.0;
            if via_member && metric(&text, "f2f_peers_connected") >= 2.0 {
                break;
            }
            assert!(
                Instant::now() < playing,
                "agent {i} did not come back through a member's contact to peers beyond it:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    for &i in &returning {
        let deadline = replayed + Duration::from_secs(REPLAY_SECS + 40);
        wait_clean_exit(&mut players[i], deadline, i);
    }
    for (n, &i) in returning.iter().enumerate() {
        let text = metrics(i);
        let p2p = metric(&text, "f2f_served_bytes_total{source=\"p2p\"}") - p2p_before[n];
        assert!(p2p > 0.0, "agent {i} received from peers again");
        assert_eq!(
            metric(&text, "f2f_segment_failures_total"),
            0.0,
            "agent {i}"
        );
        byte_exact_deliveries(&agents[i].1, i);
    }
    finish(&mut players[..4], started);
    assert!(
        (0..AGENTS)
            .map(|i| metric(&metrics(i), "f2f_guests_admitted_total"))
            .sum::<f64>()
            >= 2.0,
        "members admitted the returning agents"
    );
    let overlay_after = sum("f2f_signals_sent_total{via=\"overlay\"}");
    let opened_after = sum("f2f_connections_opened_total");
    eprintln!(
        "without the control plane: {} signals relayed by the overlay, {} connections opened",
        overlay_after - overlay_before,
        opened_after - opened_before
    );
    assert!(
        overlay_after > overlay_before,
        "the overlay carried signalling"
    );
    assert!(opened_after > opened_before, "the swarm kept rewiring");
    for (i, (_, proxy, _)) in agents.iter().enumerate().take(4) {
        let text = metrics(i);
        assert_eq!(
            metric(&text, "f2f_segment_failures_total"),
            0.0,
            "agent {i}"
        );
        let numbers = byte_exact_deliveries(proxy, i);
        for (rendition, mut ns) in numbers {
            ns.sort_unstable();
            ns.dedup();
            let span = ns.last().unwrap() - ns.first().unwrap() + 1;
            assert_eq!(span, ns.len() as u64, "agent {i} {rendition}: a gap");
        }
    }
    drop(players);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Four viewers with their own session tokens, an origin that gives each session its own A/B
/// watermark sequence (per-session playlists naming `a` or `b` paths) and its own ad in every
/// fifth slot. Every player must get exactly its own variant of every segment and its own ads,
/// byte for byte; ads never come from peers; the rest still does. The control plane checks
/// the same tokens before it certifies the agents' nodes.
#[test]
fn watermarks_tokens_and_personal_ads_survive_the_swarm() {
    const SECRET: [u8; 32] = [0x5e; 32];
    let (_origin, lines) = start(
        &[
            "origin",
            "--listen",
            "127.0.0.1:0",
            "--bitrate-kbps",
            "1000",
            "--sign",
            "--token-secret",
            &hex::encode(SECRET),
            "--watermark",
            "paths",
            "--ad-every",
            "5",
        ],
        &["origin key:", "HLS:"],
    );
    let origin_key = after(&lines[0], "origin key:").to_owned();
    let hls = after(&lines[1], "HLS:")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    // The control plane certifies a viewer's node only for a valid token of the stream.
    let secret = hex::encode(SECRET);
    let (_control, lines) = start(
        &[
            "control",
            "--listen",
            "127.0.0.1:0",
            "--token-secret",
            &secret,
        ],
        &["tracker:"],
    );
    let tracker = after(&lines[0], "tracker:").to_owned();
    let dir = std::env::temp_dir().join(format!("f2f-e2e-{}-wm", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = f2f_origin::TokenKey::new(SECRET);
    let sessions: Vec<String> = (0..4).map(|i| format!("viewer-{i}")).collect();
    let mut agents = Vec::new();
    let mut players = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let token = tokens.issue(session, u64::from(u32::MAX));
        let stream = format!("{hls}?hdnts={token}");
        let key = dir.join(format!("agent{i}.key"));
        let capture = dir.join(format!("agent{i}.frames"));
        let capture = ["--capture-peer-messages", capture.to_str().unwrap()];
        let (proc, proxy, url) = start_agent(&tracker, &origin_key, &stream, &key, &capture);
        players.push(player(&url));
        agents.push((proc, proxy, token));
    }
    finish(&mut players, Instant::now() - Duration::from_secs(5));
    let (mut p2p, mut total) = (0, 0);
    for ((_, proxy, token), session) in agents.iter().zip(&sessions) {
        let deliveries: Vec<Delivery> =
            serde_json::from_slice(&get(&format!("{proxy}/f2f/v1/deliveries"))).unwrap();
        let (mut variants, mut ads) = (0, 0);
        for d in &deliveries {
            // Delivery records carry no token; the test adds the viewer's own to check bytes.
            assert!(!d.url.contains("hdnts"), "{}", d.url);
            let original = get(&format!("http://{}?hdnts={token}", d.url));
            assert_eq!(
                d.blake3,
                blake3::hash(&original).to_hex().as_str(),
                "{}",
                d.url
            );
            let parts: Vec<&str> = d.url.split('/').collect();
            let file = parts[parts.len() - 1];
            let Some(n) = file
                .strip_suffix(".m4s")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if d.url.contains("/ads/") {
                assert!(
                    d.url.contains(&format!("/ads/{session}/")),
                    "{session} got {}",
                    d.url
                );
                assert_eq!(d.p2p_bytes, 0, "an ad came from a peer: {}", d.url);
                ads += 1;
            } else if d.url.contains("/video/") {
                let own = f2f_origin::variant_of(session, n);
                assert!(
                    d.url.contains(&format!("/video/wm/{own}/{n}.m4s")),
                    "{session} got {}",
                    d.url
                );
                variants += 1;
            }
            p2p += d.p2p_bytes;
            total += d.bytes;
        }
        assert!(
            variants >= 20 && ads >= 8,
            "{session}: {variants} variant segments, {ads} ads"
        );
    }
    eprintln!(
        "watermarks: {:.1} % from peers",
        p2p as f64 * 100.0 / total as f64
    );
    assert!(p2p > 0, "nothing came from peers");
    no_token_reached_a_peer(&dir, &agents, &sessions);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads every message the agents sent to peers (their captures) and checks that none holds
/// a viewer's token, session id, or personal ad.
fn no_token_reached_a_peer(
    dir: &std::path::Path,
    agents: &[(Proc, String, String)],
    sessions: &[String],
) {
    let limits = f2f_core::wire::Limits::default();
    let (mut frames, mut pieces) = (0, 0);
    for i in 0..agents.len() {
        let capture = std::fs::read(dir.join(format!("agent{i}.frames"))).unwrap();
        let mut rest = &capture[..];
        while !rest.is_empty() {
            let (len, tail) = rest.split_at(4);
            let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
            let (frame, tail) = tail.split_at(len);
            rest = tail;
            let decoded = f2f_core::wire::decode(
                &f2f_core::wire::Frame::from_bytes(bytes::Bytes::copy_from_slice(frame)),
                &limits,
            );
            let msg = decoded.expect("every captured frame decodes");
            frames += 1;
            pieces += usize::from(matches!(msg, f2f_core::wire::Message::Piece { .. }));
            let secrets = (agents.iter().map(|a| a.2.as_bytes()))
                .chain(sessions.iter().map(String::as_bytes))
                .chain([b"hdnts".as_slice(), b"hmac=", b"ad for viewer"]);
            for secret in secrets {
                assert!(
                    !frame.windows(secret.len()).any(|w| w == secret),
                    "agent {i} sent {:?} to a peer (message kind {:#04x})",
                    String::from_utf8_lossy(secret),
                    frame[1]
                );
            }
        }
    }
    eprintln!("{frames} peer messages captured ({pieces} pieces): no token, session or ad");
    assert!(pieces > 0, "the captures hold the pieces peers exchanged");
}

/// A POST of `body` as JSON; the status and the body's text.
fn post_json(url: &str, body: &serde_json::Value) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

/// A session request for a fresh key.
fn session_request(token: &str, stream: &str, seed: u8) -> serde_json::Value {
    use f2f_core::identity::{Bls, Keypair, prove_possession};
    let key = Keypair::from_entropy(&[seed; 32]);
    serde_json::json!({
        "token": token,
        "stream": stream,
        "public_key": hex::encode(key.public().as_bytes()),
        "possession": hex::encode(prove_possession(&Bls::new(), &key).as_bytes()),
    })
}

/// A loopback port free now (the control plane restarts on it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The control plane with real agents: certificates only for valid tokens (and refused for a
/// bad, expired or over-the-limit one), a config change every agent applies live, and the
/// control plane stopped for 30 s mid-stream: playback does not notice, and once it is back
/// the telemetry arrives complete: billed bytes equal what the agents' engines moved, and
/// receipts are verified.
#[test]
fn the_control_plane_authorises_configures_and_bills_and_can_be_away() {
    const SECRET: [u8; 32] = [0x3c; 32];
    const VIEWERS: usize = 4;
    const SECS: u64 = 90;
    let secret = hex::encode(SECRET);
    let (_origin, lines) = start(
        &[
            "origin",
            "--listen",
            "127.0.0.1:0",
            "--bitrate-kbps",
            "1000",
            "--sign",
            "--token-secret",
            &secret,
        ],
        &["origin key:", "HLS:"],
    );
    let origin_key = after(&lines[0], "origin key:").to_owned();
    let hls = after(&lines[1], "HLS:")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let dir = std::env::temp_dir().join(format!("f2f-e2e-{}-control", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let (db, authority, operator) = (
        dir.join("control.db"),
        dir.join("authority.key"),
        dir.join("operator.key"),
    );
    let control_args = [
        "control",
        "--listen",
        &listen,
        "--token-secret",
        &secret,
        "--db",
        db.to_str().unwrap(),
        "--key-file",
        authority.to_str().unwrap(),
        "--operator-key",
        operator.to_str().unwrap(),
        "--admin-token",
        "e2e-admin",
    ];
    let (control, lines) = start(&control_args, &["operator:", "api:", "tracker:"]);
    let mut control = Some(control);
    let operator_key = after(&lines[0], "operator:").to_owned();
    let api = after(&lines[1], "api:").to_owned();
    let tracker = after(&lines[2], "tracker:").to_owned();
    let tokens = f2f_origin::TokenKey::new(SECRET);

    // Refused: a forged token, an expired one; the identity limit (3 keys per viewer).
    let stream = format!("{hls}?hdnts=x");
    let session = format!("{api}/v1/session");
    let good = tokens.issue("viewer-limit", u64::from(u32::MAX));
    let forged = good.replace("viewer-limit", "viewer-other");
    let expired = tokens.issue("viewer-limit", 1);
    for (token, why) in [(&forged, "signature"), (&expired, "expired")] {
        let (status, body) = post_json(&session, &session_request(token, &stream, 1));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains(why), "{body}");
    }
    for seed in 1..=3 {
        let (status, body) = post_json(&session, &session_request(&good, &stream, seed));
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = post_json(&session, &session_request(&good, &stream, 4));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("identities"), "{body}");

    // The viewers: each agent gets its certificate with its own token.
    let mut agents = Vec::new();
    let mut players = Vec::new();
    for i in 0..VIEWERS {
        let token = tokens.issue(&format!("viewer-{i}"), u64::from(u32::MAX));
        let stream = format!("{hls}?hdnts={token}");
        let key = dir.join(format!("agent{i}.key"));
        let extra = ["--operator-key", &operator_key, "--telemetry-secs", "2"];
        let (proc, proxy, url) = start_agent(&tracker, &origin_key, &stream, &key, &extra);
        players.push(player_for(&url, SECS));
        agents.push((proc, proxy));
    }
    let started = Instant::now();
    let metrics = |i: usize| String::from_utf8(get(&format!("{}/metrics", agents[i].1))).unwrap();
    std::thread::sleep(Duration::from_secs(8));

    // A config change reaches every running agent.
    let set = Command::new(BIN)
        .args([
            "control",
            "config",
            "set",
            "scheduler.cdn_budget=1.5",
            // Short receipt windows, so that receipts settle within the test.
            "receipts.window_secs=10",
            "--api",
            &api,
        ])
        .args(["--admin-token", "e2e-admin"])
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let changed = Instant::now();
    for i in 0..VIEWERS {
        while metric(&metrics(i), "f2f_config_version") < 1.0 {
            assert!(
                changed.elapsed() < Duration::from_secs(10),
                "agent {i} runs version 1"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!(
        "config reached {VIEWERS} agent processes in {} ms",
        changed.elapsed().as_millis()
    );

    // The control plane goes away for 30 s, then comes back with its database and keys.
    std::thread::sleep(Duration::from_secs(12));
    drop(control.take());
    std::thread::sleep(Duration::from_secs(30));
    let (restarted, _) = start(&control_args, &["tracker:"]);
    control = Some(restarted);

    for (i, player) in players.iter_mut().enumerate() {
        wait_clean_exit(player, started + Duration::from_secs(SECS + 40), i);
    }
    // The stream is over; the agents' last counts reach the control plane.
    drop(_origin);
    std::thread::sleep(Duration::from_secs(8));
    let (mut cdn, mut p2p) = (0.0, 0.0);
    for i in 0..VIEWERS {
        let text = metrics(i);
        assert_eq!(
            metric(&text, "f2f_segment_failures_total"),
            0.0,
            "agent {i}"
        );
        assert_eq!(metric(&text, "f2f_config_version"), 1.0, "agent {i}");
        cdn += metric(&text, "f2f_received_bytes_total{source=\"cdn\"}");
        p2p += metric(&text, "f2f_received_bytes_total{source=\"p2p\"}");
    }
    let control_metrics = String::from_utf8(get(&format!("{api}/metrics"))).unwrap();
    let billed = |source: &str| -> f64 {
        (control_metrics.lines())
            .filter(|l| {
                l.starts_with("f2f_control_billed_bytes_total{")
                    && l.contains(&format!("source=\"{source}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    eprintln!(
        "billed cdn {} / p2p {} bytes; agents moved cdn {cdn} / p2p {p2p}",
        billed("cdn"),
        billed("p2p")
    );
    assert_eq!(
        (billed("cdn"), billed("p2p")),
        (cdn, p2p),
        "billing matches the bytes moved"
    );
    assert!(p2p > 0.0);
    // Receipts are counted by the database, so the ones verified before the outage still count.
    let vouched = metric(
        &control_metrics,
        "f2f_control_verified_delivery_bytes_total",
    );
    assert!(vouched > 0.0, "{control_metrics}");
    assert_eq!(
        metric(&control_metrics, "f2f_control_receipts_refused_total"),
        0.0
    );
    // Every agent told the control plane it runs version 1.
    let running = "f2f_control_agents_by_config_version{version=\"1\"}";
    assert_eq!(metric(&control_metrics, running), VIEWERS as f64);
    drop(control);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Watermarks the edge picks from the token: one URL per segment, the variant chosen by the
/// viewer's private pattern (its token's watermark id). The control plane gives each viewer
/// its pattern with its certificate; each agent keys segments with its own variant, so peers
/// exchange only same-variant copies. Every player gets its own variant, byte for byte, and
/// some of it from peers.
#[test]
fn token_picked_watermarks_are_shared_only_between_same_variant_viewers() {
    const SECRET: [u8; 32] = [0x7a; 32];
    let secret = hex::encode(SECRET);
    let (_origin, lines) = start(
        &[
            "origin",
            "--listen",
            "127.0.0.1:0",
            "--bitrate-kbps",
            "1000",
            "--sign",
            "--token-secret",
            &secret,
            "--watermark",
            "token",
        ],
        &["origin key:", "HLS:"],
    );
    let origin_key = after(&lines[0], "origin key:").to_owned();
    let hls = after(&lines[1], "HLS:")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let (_control, lines) = start(
        &[
            "control",
            "--listen",
            "127.0.0.1:0",
            "--token-secret",
            &secret,
        ],
        &["tracker:"],
    );
    let tracker = after(&lines[0], "tracker:").to_owned();
    let dir = std::env::temp_dir().join(format!("f2f-e2e-{}-wmtoken", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = f2f_origin::TokenKey::new(SECRET);
    let mut agents = Vec::new();
    let mut players = Vec::new();
    for i in 0..4 {
        let token = tokens.issue_session(&f2f_origin::Session {
            id: format!("viewer-{i}"),
            expires: u64::from(u32::MAX),
            acl: None,
            watermark: Some(format!("wm-{i}")),
        });
        let stream = format!("{hls}?hdnts={token}");
        let key = dir.join(format!("agent{i}.key"));
        let (proc, proxy, url) = start_agent(&tracker, &origin_key, &stream, &key, &[]);
        players.push(player(&url));
        agents.push((proc, proxy, token));
    }
    finish(&mut players, Instant::now() - Duration::from_secs(5));
    let (mut p2p, mut total) = (0, 0);
    for (i, (_, proxy, token)) in agents.iter().enumerate() {
        let deliveries: Vec<Delivery> =
            serde_json::from_slice(&get(&format!("{proxy}/f2f/v1/deliveries"))).unwrap();
        let mut video = 0;
        for d in &deliveries {
            // The origin picks this viewer's variant from its token.
            let original = get(&format!("http://{}?hdnts={token}", d.url));
            assert_eq!(
                d.blake3,
                blake3::hash(&original).to_hex().as_str(),
                "agent {i}: {}",
                d.url
            );
            if d.url.contains("/video/") && d.url.ends_with(".m4s") {
                video += 1;
                p2p += d.p2p_bytes;
                total += d.bytes;
            }
        }
        assert!(video >= 20, "agent {i}: {video} video segments");
    }
    eprintln!(
        "token watermarks: {:.1} % of video from peers",
        p2p as f64 * 100.0 / total as f64
    );
    assert!(p2p > 0, "same-variant viewers shared");
    let _ = std::fs::remove_dir_all(&dir);
}

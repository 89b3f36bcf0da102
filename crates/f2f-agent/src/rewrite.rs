//! Manifest rewriting for the proxy: every URL a player would request next is made absolute and
//! pointed back at the agent (`http://<agent>/<absolute origin URL>`), tokens and all, so the
//! agent sees every segment request.

use url::Url;

/// The proxy URL for `target`, an absolute origin URL.
pub fn proxied(proxy_base: &str, target: &str) -> String {
    format!("{proxy_base}/{target}")
}

fn absolute(base: &Url, reference: &str) -> Option<String> {
    base.join(reference).ok().map(String::from)
}

/// An HLS playlist (master or media) with every URI line and `URI="…"` attribute proxied.
/// References that do not resolve are left as they are.
pub fn hls(text: &str, base: &Url, proxy_base: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64 * text.lines().count());
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if !trimmed.starts_with('#') {
            match absolute(base, trimmed) {
                Some(abs) => out.push_str(&proxied(proxy_base, &abs)),
                None => out.push_str(line),
            }
        } else if let Some(start) = line.find("URI=\"") {
            let value_start = start + 5;
            match line[value_start..].find('"') {
                Some(len) => {
                    let value = &line[value_start..value_start + len];
                    out.push_str(&line[..value_start]);
                    match absolute(base, value) {
                        Some(abs) => out.push_str(&proxied(proxy_base, &abs)),
                        None => out.push_str(value),
                    }
                    out.push_str(&line[value_start + len..]);
                }
                None => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A DASH MPD whose segment URLs resolve to the agent: absolute `BaseURL`s are proxied, and an
/// MPD without one gets an MPD-level `BaseURL` of the proxied manifest directory, so template
/// and list URLs resolve through the agent whatever the player does with the manifest URL.
/// Absolute `media`/`initialization`/`sourceURL` attributes are proxied too.
pub fn dash(text: &str, base: &Url, proxy_base: &str) -> String {
    let mut out = rewrite_attributes(text, base, proxy_base);
    if out.contains("<BaseURL") {
        out = rewrite_base_urls(&out, base, proxy_base);
    } else if let Some(root) = out.find("<MPD") {
        if let Some(end) = out[root..].find('>') {
            let at = root + end + 1;
            let dir = absolute(base, ".").unwrap_or_else(|| base.to_string());
            let element = format!(
                "\n  <BaseURL>{}</BaseURL>",
                escape(&proxied(proxy_base, &dir))
            );
            out.insert_str(at, &element);
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
}

fn rewrite_base_urls(text: &str, base: &Url, proxy_base: &str) -> String {
    let mut out = String::with_capacity(text.len() + 128);
    let mut rest = text;
    while let Some(open) = rest.find("<BaseURL") {
        let Some(gt) = rest[open..].find('>') else {
            break;
        };
        let value_start = open + gt + 1;
        let Some(close) = rest[value_start..].find("</BaseURL>") else {
            break;
        };
        let value = rest[value_start..value_start + close].trim();
        out.push_str(&rest[..value_start]);
        let resolved = absolute(base, &unescape(value));
        match resolved {
            // Relative BaseURLs resolve against the proxied manifest URL by themselves.
            Some(abs) if value.contains("://") || value.starts_with('/') => {
                out.push_str(&escape(&proxied(proxy_base, &abs)));
            }
            _ => out.push_str(value),
        }
        rest = &rest[value_start + close..];
    }
    out.push_str(rest);
    out
}

fn rewrite_attributes(text: &str, base: &Url, proxy_base: &str) -> String {
    let mut out = text.to_owned();
    for attr in ["media=\"", "initialization=\"", "sourceURL=\""] {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(attr) {
            let value_start = at + attr.len();
            let Some(len) = rest[value_start..].find('"') else {
                break;
            };
            let value = &rest[value_start..value_start + len];
            result.push_str(&rest[..value_start]);
            let raw = unescape(value);
            if raw.contains("://") || raw.starts_with('/') {
                // `$Number$` and friends survive URL joining unchanged.
                match absolute(base, &raw) {
                    Some(abs) => result.push_str(&escape(&proxied(proxy_base, &abs))),
                    None => result.push_str(value),
                }
            } else {
                result.push_str(value);
            }
            rest = &rest[value_start + len..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXY: &str = "http://127.0.0.1:9000";

    #[test]
    fn hls_uris_and_uri_attributes_point_back_at_the_agent_with_tokens() {
        let base = Url::parse("http://cdn.example/live/video.m3u8?hdnts=t1").unwrap();
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"video/init.mp4?hdnts=t1\"\n#EXTINF:2.000,\nvideo/5.m4s?hdnts=t1\n\
                    #EXT-X-CUE-OUT:DURATION=2.000\n#EXTINF:2.000,\n/ads/v1/video/6.m4s?hdnts=t1\n\
                    #EXTINF:2.000,\nhttps://other.example/x/7.m4s\n";
        let out = hls(text, &base, PROXY);
        assert!(out.contains("#EXT-X-MAP:URI=\"http://127.0.0.1:9000/http://cdn.example/live/video/init.mp4?hdnts=t1\""));
        assert!(
            out.contains("\nhttp://127.0.0.1:9000/http://cdn.example/live/video/5.m4s?hdnts=t1\n")
        );
        assert!(
            out.contains(
                "\nhttp://127.0.0.1:9000/http://cdn.example/ads/v1/video/6.m4s?hdnts=t1\n"
            )
        );
        assert!(out.contains("\nhttp://127.0.0.1:9000/https://other.example/x/7.m4s\n"));
        assert!(out.contains("#EXT-X-CUE-OUT:DURATION=2.000\n"));
    }

    #[test]
    fn dash_gets_a_proxied_base_url_and_absolute_templates_are_proxied() {
        let base = Url::parse("http://cdn.example/live/manifest.mpd?hdnts=a").unwrap();
        let text = "<?xml version=\"1.0\"?>\n<MPD type=\"dynamic\">\n<Period><AdaptationSet>\
                    <SegmentTemplate media=\"video/$Number$.m4s?hdnts=a&amp;x=1\" initialization=\"https://edge.example/init.mp4\"/>\
                    </AdaptationSet></Period></MPD>";
        let out = dash(text, &base, PROXY);
        assert!(out.contains("<MPD type=\"dynamic\">\n  <BaseURL>http://127.0.0.1:9000/http://cdn.example/live/</BaseURL>"));
        assert!(out.contains("media=\"video/$Number$.m4s?hdnts=a&amp;x=1\""));
        assert!(
            out.contains("initialization=\"http://127.0.0.1:9000/https://edge.example/init.mp4\"")
        );
        let with_base = "<MPD><BaseURL>https://edge.example/live/</BaseURL><Period/></MPD>";
        let out = dash(with_base, &base, PROXY);
        assert!(
            out.contains("<BaseURL>http://127.0.0.1:9000/https://edge.example/live/</BaseURL>")
        );
    }
}

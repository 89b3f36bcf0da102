//! Small text formats inside HLS tags: attribute lists and RFC 3339 dates.

/// An HLS attribute list (`KEY=VALUE,KEY="quoted, value"`) as (key, unquoted value) pairs.
pub(super) fn attributes(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_owned();
        rest = &rest[eq + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            rest = quoted.get(end + 1..).unwrap_or("");
            &quoted[..end]
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let value = &rest[..end];
            rest = &rest[end..];
            value
        };
        out.push((key, value.trim().to_owned()));
    }
    out
}

/// Parses an RFC 3339 date-time (`2024-01-01T12:00:00.000Z`, `...+02:00`) to unix milliseconds.
pub(super) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        for (k, d) in b[start..at.min(start + 3)].iter().enumerate() {
            millis += i64::from(d - b'0') * [100, 10, 1][k];
        }
    }
    let offset_secs = match b.get(at)? {
        b'Z' | b'z' => {
            at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let hours = num(at + 1, 2)?;
            let colon = usize::from(b.get(at + 3) == Some(&b':'));
            let minutes = num(at + 3 + colon, 2)?;
            at += 5 + colon;
            let secs = hours * 3600 + minutes * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    if at != b.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T00:00:00Z"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T02:00:00.5+02:00"),
            Some(1_704_067_200_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:34:56.789-0130"),
            Some(1_709_215_496_789)
        );
        assert_eq!(parse_rfc3339_ms("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2024-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339_ms("garbage"), None);
    }

    #[test]
    fn attribute_lists() {
        let attrs = attributes(r#"ID="ad,1",SCTE35-OUT=0xFC30,DURATION=30.0, CLASS="x""#);
        assert_eq!(
            attrs,
            vec![
                ("ID".into(), "ad,1".into()),
                ("SCTE35-OUT".into(), "0xFC30".into()),
                ("DURATION".into(), "30.0".into()),
                ("CLASS".into(), "x".into()),
            ]
        );
        assert!(attributes("30").is_empty());
        assert_eq!(
            attributes(r#"A="unterminated"#),
            vec![("A".into(), "unterminated".into())]
        );
    }
}

//! Wall-clock helpers: unix seconds everywhere in storage, RFC 3339 for people.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a unix time (UTC), civil-from-days after H. Hinnant.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Unix seconds of an RFC 3339 time (`2026-11-22T08:27:58Z`, fractions and `±HH:MM` offsets allowed).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':'
        || b[16] != b':'
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = offset_secs(rest)?;
    // days-from-civil (H. Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + hh * 3600 + mm * 60 + ss - offset;
    // What `rfc3339` can write back: years 0000-9999 in UTC.
    (EARLIEST..=LATEST).contains(&unix).then_some(unix)
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const EARLIEST: i64 = -62_167_219_200;
const LATEST: i64 = 253_402_300_799;

/// The seconds east of UTC of `Z` or `±HH:MM` (ASCII digits only, at most 23:59).
fn offset_secs(rest: &str) -> Option<i64> {
    if matches!(rest, "Z" | "z") {
        return Some(0);
    }
    let b = rest.as_bytes();
    if b.len() != 6 || !matches!(b[0], b'+' | b'-') || b[3] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<i64> {
        let (hi, lo) = (b[i], b[i + 1]);
        (hi.is_ascii_digit() && lo.is_ascii_digit())
            .then(|| i64::from(hi - b'0') * 10 + i64::from(lo - b'0'))
    };
    let (h, m) = (two(1)?, two(4)?);
    if h > 23 || m > 59 {
        return None;
    }
    let v = h * 3600 + m * 60;
    Some(if b[0] == b'-' { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_336_116), "2026-11-22T08:28:36Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for t in [0, 951_782_400, 1_795_336_116, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-22T09:28:36.123+01:00"),
            Some(1_795_336_116)
        );
        assert_eq!(parse_rfc3339("2026-13-22T08:28:36Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn refuses_what_it_cannot_write_back() {
        // Found by the webhook and csv_import fuzz targets: a multi-byte character in the offset
        // panicked, and a time before year 0000 was accepted but printed as "-001-…".
        assert_eq!(parse_rfc3339("2026-11-22T08:27:58+0é00"), None);
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00+01:00"), None);
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59-00:01"), None);
        assert_eq!(parse_rfc3339("2026-11-22T08:27:58+24:00"), None);
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(EARLIEST));
        assert_eq!(rfc3339(LATEST), "9999-12-31T23:59:59Z");
        assert_eq!(
            parse_rfc3339("2026-11-22T09:28:36+01:00"),
            Some(1_795_336_116)
        );
    }
}

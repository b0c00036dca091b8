//! UTC calendar dates for Unix times, as mail headers (RFC 5322) and JSON (RFC 3339) write them.
//! Pure.

/// (year, month 1-12, day, hour, minute, second, weekday 0 = Sunday) for a Unix time.
fn civil(unix_seconds: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400) as u32;
    // H. Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as u32;
    (
        year,
        month,
        day,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        weekday,
    )
}

/// `Sat, 28 Nov 2026 15:01:54 +0000`.
pub fn rfc5322(unix_seconds: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = civil(unix_seconds);
    format!(
        "{}, {d} {} {y} {h:02}:{mi:02}:{s:02} +0000",
        DAYS[wd as usize],
        MONTHS[(mo - 1) as usize]
    )
}

/// `2026-11-28T15:01:54Z`.
pub fn rfc3339(unix_seconds: i64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(unix_seconds);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Parses an RFC 3339 date-time (`2026-11-28T15:01:54Z`, with optional fractional seconds and
/// a numeric offset) to a Unix time.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let (time, offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (h, m) = rest[at + 1..].split_once(':')?;
        let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
            return None;
        }
        let minutes = h * 60 + m;
        let sign = if rest.as_bytes()[at] == b'-' { -1 } else { 1 };
        (&rest[..at], sign * minutes * 60)
    };
    let time = time.split('.').next()?;
    let mut hms = time.splitn(3, ':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next()?.parse().ok()?;
    let second: i64 = hms.next()?.parse().ok()?;
    if !(0..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // H. Hinnant's days-from-civil algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// The current Unix time.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc5322(1_607_159_335), "Sat, 5 Dec 2020 09:08:55 +0000");
        assert_eq!(rfc3339(1_795_878_114), "2026-11-28T15:01:54Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parsing() {
        for t in [0, 951_782_400, 1_795_878_114, -1, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-28T15:01:54.123456Z"),
            Some(1_795_878_114)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T16:01:54+01:00"),
            Some(1_795_878_114)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T14:31:54-00:30"),
            Some(1_795_878_114)
        );
        for bad in [
            "",
            "2026-11-28",
            "2026-13-01T00:00:00Z",
            "2026-11-28T25:00:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn out_of_range_dates_and_offsets_are_refused_not_overflowed() {
        // Found by fuzzing the renewal information of a CA.
        assert_eq!(
            parse_rfc3339("2025-01-03T04:156:1+3555555555555555555:10"),
            None
        );
        assert_eq!(parse_rfc3339("2025-01-03T04:15:16+24:00"), None);
        assert_eq!(parse_rfc3339("99999999999999999-01-03T04:15:16Z"), None);
        assert_eq!(
            parse_rfc3339("2025-01-03T04:15:16+01:30"),
            parse_rfc3339("2025-01-03T02:45:16Z")
        );
    }
}

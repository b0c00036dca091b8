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
pub fn rfc5322(unix_seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = civil(i64::try_from(unix_seconds).unwrap_or(i64::MAX / 2));
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
}

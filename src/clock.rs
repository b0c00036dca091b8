//! UTC calendar dates for Unix times, as mail headers (RFC 5322) and JSON (RFC 3339) write them,
//! through the `time` crate. Pure.

use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

/// The date of a Unix time, clamped to the years 0000 to 9999 that both formats can write.
fn date(unix_seconds: i64) -> OffsetDateTime {
    let first = time::PrimitiveDateTime::MIN.assume_utc().unix_timestamp();
    let last = time::PrimitiveDateTime::MAX.assume_utc().unix_timestamp();
    let year_zero = time::Date::from_calendar_date(0, time::Month::January, 1)
        .map_or(first, |d| d.midnight().assume_utc().unix_timestamp());
    OffsetDateTime::from_unix_timestamp(unix_seconds.clamp(year_zero.max(first), last))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `Sat, 28 Nov 2026 15:01:54 +0000`.
pub fn rfc5322(unix_seconds: i64) -> String {
    // Rfc2822 writes only the years from 1900 on.
    let t = date(unix_seconds.max(-2_208_988_800));
    t.format(&Rfc2822).unwrap_or_default()
}

/// `2026-11-28T15:01:54Z`.
pub fn rfc3339(unix_seconds: i64) -> String {
    date(unix_seconds).format(&Rfc3339).unwrap_or_default()
}

/// Parses an RFC 3339 date-time (`2026-11-28T15:01:54Z`, with optional fractional seconds and
/// a numeric offset) to a Unix time; an impossible date (`2026-02-31`) is refused.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
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
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc5322(1_607_159_335), "Sat, 05 Dec 2020 09:08:55 +0000");
        assert_eq!(rfc3339(1_795_878_114), "2026-11-28T15:01:54Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        // Beyond what the formats can write: the nearest date they can.
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
        assert!(rfc5322(i64::MIN).ends_with("1900 00:00:00 +0000"));
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
            "2026-02-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some(), "a leap day");
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

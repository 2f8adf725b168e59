//! 1C's wire conventions for dates and references.
//!
//! 1C dates carry no offset: they are wall-clock time in the 1C server's zone (the mapping
//! file's `onec.time_zone`), and `0001-01-01T00:00:00` means "no date". References are GUIDs,
//! and the all-zero GUID means "no reference".

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The format of every 1C date-time on the wire (OData `Edm.DateTime`, HTTP services).
pub const ONEC_DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
/// 1C's "empty date".
pub const ONEC_EMPTY_DATE: &str = "0001-01-01T00:00:00";
/// 1C's "empty reference".
pub const ONEC_EMPTY_REF: &str = "00000000-0000-0000-0000-000000000000";

/// Why a 1C date or reference could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OneCValueError {
    #[error("not a 1C date-time (expected YYYY-MM-DDTHH:MM:SS)")]
    BadDateTime,
    /// A wall-clock time skipped by a daylight-saving change in the configured zone.
    #[error("local time does not exist in time zone {0}")]
    NonexistentLocalTime(Tz),
    #[error("not a GUID")]
    BadGuid,
}

/// Reads a 1C date-time given in `tz`; `Ok(None)` for 1C's empty date (or an empty string).
///
/// Fractional seconds, which some 1C HTTP services emit, are accepted and kept. A time that is
/// ambiguous (clocks went back) resolves to the earlier instant: 1C itself cannot tell them apart.
pub fn parse_onec_datetime(s: &str, tz: Tz) -> Result<Option<DateTime<Utc>>, OneCValueError> {
    let s = s.trim();
    if s.is_empty() || s == ONEC_EMPTY_DATE {
        return Ok(None);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| OneCValueError::BadDateTime)?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(Some(t.with_timezone(&Utc))),
        LocalResult::Ambiguous(earlier, _) => Ok(Some(earlier.with_timezone(&Utc))),
        LocalResult::None => Err(OneCValueError::NonexistentLocalTime(tz)),
    }
}

/// Writes an instant as 1C expects it: wall-clock time in `tz`, whole seconds, no offset.
pub fn format_onec_datetime(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format(ONEC_DATETIME_FORMAT)
        .to_string()
}

/// `true` for 1C's "no reference": the all-zero GUID (in any case or GUID spelling) or blank.
pub fn is_empty_ref(guid: &str) -> bool {
    let guid = guid.trim();
    guid.is_empty() || uuid::Uuid::try_parse(guid).is_ok_and(|u| u.is_nil())
}

/// Reads a 1C reference: `Ok(None)` for the empty reference, otherwise the GUID in lowercase
/// hyphenated form (the form 1C's JSON uses), whatever spelling it arrived in.
pub fn parse_onec_ref(s: &str) -> Result<Option<String>, OneCValueError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let guid = uuid::Uuid::try_parse(s).map_err(|_| OneCValueError::BadGuid)?;
    if guid.is_nil() {
        return Ok(None);
    }
    Ok(Some(guid.hyphenated().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn moscow_wall_clock_time_is_read_as_three_hours_earlier_in_utc() {
        // Given
        let moscow = chrono_tz::Europe::Moscow;
        // When
        let t = parse_onec_datetime("2024-01-31T12:00:00", moscow);
        // Then
        let expected = Utc.with_ymd_and_hms(2024, 1, 31, 9, 0, 0).single();
        assert_eq!(t, Ok(expected));
    }

    #[test]
    fn the_configured_zone_decides_the_offset() {
        let cases = [
            (chrono_tz::Asia::Yekaterinburg, 7),
            (chrono_tz::Europe::Kaliningrad, 10),
            (chrono_tz::UTC, 12),
        ];
        for (tz, utc_hour) in cases {
            let t = parse_onec_datetime("2024-01-31T12:00:00", tz);
            let expected = Utc.with_ymd_and_hms(2024, 1, 31, utc_hour, 0, 0).single();
            assert_eq!(t, Ok(expected), "zone {tz}");
        }
    }

    #[test]
    fn the_empty_date_and_a_blank_string_mean_no_date() {
        for input in [ONEC_EMPTY_DATE, "", "  "] {
            assert_eq!(
                parse_onec_datetime(input, chrono_tz::Europe::Moscow),
                Ok(None)
            );
        }
    }

    #[test]
    fn malformed_dates_and_times_skipped_by_dst_are_errors() {
        let moscow = chrono_tz::Europe::Moscow;
        for input in [
            "2024-01-31",
            "31.01.2024 12:00:00",
            "2024-02-30T12:00:00",
            "now",
        ] {
            assert_eq!(
                parse_onec_datetime(input, moscow),
                Err(OneCValueError::BadDateTime),
                "input {input:?}"
            );
        }
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            parse_onec_datetime("2024-03-31T02:30:00", berlin),
            Err(OneCValueError::NonexistentLocalTime(berlin))
        );
    }

    #[test]
    fn fractional_seconds_are_accepted() {
        let t = parse_onec_datetime("2024-01-31T12:00:00.250", chrono_tz::Europe::Moscow);
        let expected = Utc
            .with_ymd_and_hms(2024, 1, 31, 9, 0, 0)
            .single()
            .map(|t| t + chrono::Duration::milliseconds(250));
        assert_eq!(t, Ok(expected));
    }

    #[test]
    fn formatting_writes_local_time_without_offset_and_reads_back_the_same_instant() {
        // Given
        let moscow = chrono_tz::Europe::Moscow;
        let instant = Utc.with_ymd_and_hms(2026, 11, 28, 12, 4, 5).unwrap();
        // When
        let wire = format_onec_datetime(instant, moscow);
        // Then
        assert_eq!(wire, "2026-11-28T15:04:05");
        assert_eq!(parse_onec_datetime(&wire, moscow), Ok(Some(instant)));
    }

    #[test]
    fn the_all_zero_guid_is_no_reference() {
        assert!(is_empty_ref(ONEC_EMPTY_REF));
        assert!(is_empty_ref("00000000000000000000000000000000"));
        assert!(is_empty_ref(""));
        assert!(!is_empty_ref("1fa1a135-d89b-11e6-8343-40167e2531c3"));
        assert_eq!(parse_onec_ref(ONEC_EMPTY_REF), Ok(None));
    }

    #[test]
    fn references_are_validated_and_lowercased() {
        let cases = [
            (
                "1FA1A135-D89B-11E6-8343-40167E2531C3",
                Ok(Some("1fa1a135-d89b-11e6-8343-40167e2531c3".to_owned())),
            ),
            (
                " 1fa1a135-d89b-11e6-8343-40167e2531c3 ",
                Ok(Some("1fa1a135-d89b-11e6-8343-40167e2531c3".to_owned())),
            ),
            ("", Ok(None)),
            ("not-a-guid", Err(OneCValueError::BadGuid)),
            (
                "1fa1a135-d89b-11e6-8343-40167e2531c",
                Err(OneCValueError::BadGuid),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_onec_ref(input), expected, "input {input:?}");
        }
    }
}

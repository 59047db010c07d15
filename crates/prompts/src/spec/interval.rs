//! Check intervals: `check_interval_minutes`, `check_interval_seconds` and the
//! free-form `check_interval` ("5m", "30s", "10").
//!
//! Clamps follow the reference: at least 60 seconds for minute values, at least 10
//! for second values, and text without digits means the default five minutes.
//! Deliberate differences, each because the reference silently did something the
//! author cannot have meant:
//! - negative values are errors (the reference clamped them up);
//! - units are read as words: "5 minutes" is five minutes (the reference saw the
//!   trailing `s` and made it ten seconds), "2h" is two hours (the reference: two
//!   minutes); text with digits that is not `<number><unit>` ("1h30") is an error;
//! - `check_interval_seconds: 0` means "no periodic checks" (the reference clamped
//!   it to 10). It is the only way to write the interval of a prompt-only or planned
//!   task, so [`crate::spec::spec_to_yaml`] output round-trips.

use std::sync::LazyLock;

use openloom_core::spec::DEFAULT_CHECK_INTERVAL_SECONDS;
use regex_lite::Regex;
use serde_yaml::{Mapping, Value};

use super::value::{kind_of, non_negative_int};
use crate::error::{Error, Location, Result};

/// What a valid interval looks like, for error messages.
pub(crate) const INTERVAL_EXPECTED: &str =
    "a duration such as `5m`, `30s`, `1h`, or a number of minutes";

/// The unit a bare number in interval text is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BareUnit {
    /// `check_interval: 5` is five minutes.
    Minutes,
    /// `check_interval_seconds: 30` (Markdown meta line) is thirty seconds.
    Seconds,
}

static DURATION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\+?([0-9]+)\s*([a-z]*)$").ok());

fn minutes(n: u64) -> Option<u64> {
    n.checked_mul(60).map(|s| s.max(60))
}

fn seconds(n: u64) -> u64 {
    n.max(10)
}

/// Reads interval text; `Err` carries the problem for an [`Error::InvalidField`].
pub(crate) fn interval_from_text(text: &str, bare: BareUnit) -> std::result::Result<u64, String> {
    let raw = text.trim().to_lowercase();
    if !raw.chars().any(|c| c.is_ascii_digit()) {
        tracing::warn!(interval = %text, "interval has no digits; using the default five minutes");
        return Ok(DEFAULT_CHECK_INTERVAL_SECONDS);
    }
    if raw.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    let captures = DURATION
        .as_ref()
        .and_then(|re| re.captures(&raw))
        .ok_or_else(|| format!("{text:?} is not a duration"))?;
    let number: u64 = captures[1].parse().map_err(|_| format!("{text:?} is too large"))?;
    if number == 0 {
        // The reference reads "0m" as "no number given" and uses the default.
        return Ok(DEFAULT_CHECK_INTERVAL_SECONDS);
    }
    let value = match &captures[2] {
        "" => match bare {
            BareUnit::Minutes => minutes(number),
            BareUnit::Seconds => Some(seconds(number)),
        },
        "m" | "min" | "mins" | "minute" | "minutes" => minutes(number),
        "s" | "sec" | "secs" | "second" | "seconds" => Some(seconds(number)),
        "h" | "hr" | "hrs" | "hour" | "hours" => number.checked_mul(3600),
        unit => return Err(format!("{text:?} has an unknown unit {unit:?}")),
    };
    value.ok_or_else(|| format!("{text:?} is too large"))
}

/// The reference's `_parse_interval_seconds` over a YAML mapping.
pub(crate) fn interval_seconds(map: &Mapping, location: &Location) -> Result<u64> {
    let present = |key: &str| map.get(key).filter(|v| !v.is_null());
    let too_large = |field: &str| Error::field(location, field, "is too large", INTERVAL_EXPECTED);

    if let Some(value) = present("check_interval_minutes") {
        let field = "check_interval_minutes";
        let n = non_negative_int(value, location, field)?;
        return minutes(n).ok_or_else(|| too_large(field));
    }
    if let Some(value) = present("check_interval_seconds") {
        let n = non_negative_int(value, location, "check_interval_seconds")?;
        return Ok(if n == 0 { 0 } else { seconds(n) });
    }
    if let Some(value) = present("check_interval") {
        let field = "check_interval";
        return match value {
            Value::String(text) => interval_from_text(text, BareUnit::Minutes)
                .map_err(|problem| Error::field(location, field, problem, INTERVAL_EXPECTED)),
            Value::Number(_) => {
                let n = non_negative_int(value, location, field)?;
                minutes(n).ok_or_else(|| too_large(field))
            }
            other => Err(Error::field(
                location,
                field,
                format!("is {}", kind_of(other)),
                INTERVAL_EXPECTED,
            )),
        };
    }
    Ok(DEFAULT_CHECK_INTERVAL_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_intervals() {
        let cases = [
            ("5m", Ok(300)),
            ("30s", Ok(30)),
            ("5s", Ok(10)),
            ("10", Ok(600)),
            (" 2 M ", Ok(120)),
            ("0m", Ok(300)),
            ("soon", Ok(300)),
            ("5 minutes", Ok(300)),
            ("45 seconds", Ok(45)),
            ("2h", Ok(7200)),
        ];
        for (text, expected) in cases {
            assert_eq!(interval_from_text(text, BareUnit::Minutes), expected, "{text}");
        }
        assert_eq!(interval_from_text("30", BareUnit::Seconds), Ok(30));
        for bad in ["-5m", "1h30", "5 fortnights", "99999999999999999999m"] {
            assert!(interval_from_text(bad, BareUnit::Minutes).is_err(), "{bad}");
        }
    }

    fn interval(yaml: &str) -> Result<u64> {
        let map: Mapping = serde_yaml::from_str(yaml).expect("test yaml");
        interval_seconds(&map, &Location::new("<input>"))
    }

    #[test]
    fn mapping_intervals_in_reference_precedence() {
        assert_eq!(interval("{}").expect("default"), 300);
        assert_eq!(interval("check_interval_minutes: 2").expect("min"), 120);
        assert_eq!(interval("check_interval_minutes: 0").expect("clamp"), 60);
        assert_eq!(interval("check_interval_seconds: 3").expect("clamp"), 10);
        assert_eq!(interval("check_interval_seconds: 0").expect("none"), 0);
        assert_eq!(interval("{check_interval_seconds: 30, check_interval: 1}").expect("s"), 30);
        assert_eq!(
            interval("{check_interval_minutes: 1, check_interval_seconds: 30}").expect("m"),
            60
        );
        assert_eq!(interval("check_interval: 3").expect("bare"), 180);
        assert_eq!(interval("check_interval: '45s'").expect("text"), 45);
        assert_eq!(interval("{check_interval_minutes: ~, check_interval: 2}").expect("null"), 120);
    }

    #[test]
    fn bad_intervals_name_the_field() {
        let err = interval("check_interval_minutes: -5").expect_err("negative");
        assert!(err.to_string().contains("check_interval_minutes: is negative"), "{err}");
        let err = interval("check_interval_seconds: soon").expect_err("text");
        assert!(err.to_string().contains("check_interval_seconds"), "{err}");
        let err = interval("check_interval: [1]").expect_err("list");
        assert!(err.to_string().contains("check_interval: is a list"), "{err}");
        assert!(interval("check_interval_minutes: 999999999999999999").is_err());
    }
}

//! Wire conventions shared by every JSON surface: timestamps are RFC 3339 in UTC with a `Z` and
//! milliseconds, and durations are integers of milliseconds in fields named `*_ms`.
//!
//! The submodules are `serde(with = …)` helpers.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a timestamp as RFC 3339 in UTC with milliseconds and a `Z`.
#[must_use]
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Converts a duration to whole milliseconds, saturating at `u64::MAX`.
#[must_use]
pub fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Why a duration did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected a number with a unit, such as 500ms, 30s, 2m, 4h or 5d (or 0)"
)]
pub struct DurationError(pub String);

/// Parses a duration as the config file writes it: an integer followed by `ms`, `s`, `m`, `h` or
/// `d`, optionally chained (`1h30m`), or a bare `0`.
///
/// ```
/// use std::time::Duration;
/// use alert_core::wire::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
/// assert!(parse_duration("10").is_err());
/// ```
///
/// # Errors
/// [`DurationError`] for anything else.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.to_owned());
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = trimmed;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.checked_mul(60).ok_or_else(err)?),
            "h" => Duration::from_secs(value.checked_mul(3600).ok_or_else(err)?),
            "d" => Duration::from_secs(value.checked_mul(86_400).ok_or_else(err)?),
            _ => return Err(err()),
        };
        total = total.checked_add(unit).ok_or_else(err)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `serde(with)` for a required timestamp.
pub mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as RFC 3339 with milliseconds.
    ///
    /// # Errors
    /// Whatever the serializer returns.
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_timestamp(*at))
    }

    /// Parses any RFC 3339 timestamp and converts it to UTC.
    ///
    /// # Errors
    /// When the text is not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|err| serde::de::Error::custom(format!("invalid RFC 3339 timestamp: {err}")))
    }
}

/// `serde(with)` for an optional timestamp.
pub mod timestamp_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as RFC 3339 with milliseconds, or `null`.
    ///
    /// # Errors
    /// Whatever the serializer returns.
    pub fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::timestamp::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Parses an optional RFC 3339 timestamp.
    ///
    /// # Errors
    /// When the text is present and not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        text.map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|err| {
                    serde::de::Error::custom(format!("invalid RFC 3339 timestamp: {err}"))
                })
        })
        .transpose()
    }
}

/// `serde(with)` for a duration as integer milliseconds.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as whole milliseconds.
    ///
    /// # Errors
    /// Whatever the serializer returns.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::duration_ms(*duration))
    }

    /// Parses whole milliseconds.
    ///
    /// # Errors
    /// When the value is not a non-negative integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// `serde(with)` for an optional duration as integer milliseconds.
pub mod duration_ms_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as whole milliseconds, or `null`.
    ///
    /// # Errors
    /// Whatever the serializer returns.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_u64(super::duration_ms(*duration)),
            None => serializer.serialize_none(),
        }
    }

    /// Parses optional whole milliseconds.
    ///
    /// # Errors
    /// When the value is present and not a non-negative integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_millis))
    }
}

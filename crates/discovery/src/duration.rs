//! Durations as the config file writes them.

use std::fmt;
use std::time::Duration;

use alert_core::wire;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written like `"30s"`, `"2m"` or `"500ms"`; a bare `0` means zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

/// The longest duration any setting accepts: 30 days. Longer ones are refused when the config is
/// parsed, because every duration ends up added to the clock somewhere, and no setting needs more.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Dur {
    /// Zero.
    pub const ZERO: Self = Self(Duration::ZERO);

    /// Seconds.
    #[must_use]
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl From<Dur> for Duration {
    fn from(dur: Dur) -> Self {
        dur.0
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", wire::duration_ms(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(0) => Ok(Self(Duration::ZERO)),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "a duration needs a unit: write \"{n}s\", \"{n}m\" or \"{n}ms\""
            ))),
            Raw::Text(text) => {
                let dur = wire::parse_duration(&text).map_err(serde::de::Error::custom)?;
                if dur > MAX_DURATION {
                    return Err(serde::de::Error::custom(format!(
                        "{text:?} is too long: the most any duration may be is {}",
                        human(MAX_DURATION)
                    )));
                }
                Ok(Self(dur))
            }
        }
    }
}

/// A duration in the config's own notation, in its largest whole unit: `30d`, `1h`, `90s`,
/// `250ms`.
pub(crate) fn human(dur: Duration) -> String {
    let ms = dur.as_millis();
    if ms == 0 {
        return "0".to_owned();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dur, serde_json::Error> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
    }

    #[test]
    fn durations_past_30_days_are_refused() {
        assert_eq!(parse("30d").unwrap(), Dur::secs(30 * 86_400));
        assert_eq!(parse("720h").unwrap(), Dur::secs(30 * 86_400));
        let err = parse("721h").unwrap_err().to_string();
        assert!(
            err.contains("\"721h\" is too long") && err.contains("30d"),
            "{err}"
        );
        assert!(parse("18446744073709551615s").is_err());
    }

    #[test]
    fn human_uses_the_largest_whole_unit() {
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human(Duration::from_millis(1)), "1ms");
        assert_eq!(human(Duration::ZERO), "0");
    }
}

//! Request bodies into bounded batches of alerts, without building the body as a tree.
//!
//! A body is parsed once, straight into a list of borrowed raw alerts (`&RawValue`, a slice of
//! the body): the alert count is checked while the list is read, so a body of a million tiny
//! alerts stops at the limit, and no `serde_json::Value` of the whole body is ever built (one
//! 4 MiB body is 64–96 MiB as a tree). Each alert is then parsed on its own, by
//! [`normalise_json`](crate::ingest::normalise_json), within its own size limit.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Why a body is not a batch of alerts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Not JSON at all (or cut short).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but not the expected shape.
    #[error("{0}")]
    Schema(String),
    /// More alerts than one request may carry; reading stopped there.
    #[error("the request holds more than {max} alerts, the limit")]
    TooMany {
        /// The limit.
        max: usize,
    },
}

/// An Alertmanager webhook message (version 4): its alerts, and the fields ingest reads.
#[derive(Debug)]
pub struct WebhookMessage<'a> {
    /// The alerts, each a slice of the body.
    pub alerts: Vec<&'a RawValue>,
    /// `version`, when it is a string.
    pub version: Option<String>,
    /// `truncatedAlerts`: how many alerts the upstream left out (0 when absent or not a count).
    pub truncated_alerts: u64,
    /// `groupKey`, for the log.
    pub group_key: Option<String>,
}

/// Parses the body of `POST /api/v2/alerts`: a JSON array of at most `max` alerts.
///
/// # Errors
/// [`BatchError::Json`] for invalid JSON, [`BatchError::Schema`] for anything but an array, and
/// [`BatchError::TooMany`] past `max` alerts.
pub fn parse_alerts(body: &[u8], max: usize) -> Result<Vec<&RawValue>, BatchError> {
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Bounded { max, over: &over }
        .deserialize(&mut de)
        .and_then(|alerts| de.end().map(|()| alerts));
    parsed.map_err(|err| {
        classify(
            &err,
            over.get(),
            max,
            "the body must be a JSON array of alerts",
        )
    })
}

/// Parses the body of the Alertmanager webhook receiver: an object whose `alerts` array holds at
/// most `max` alerts. Other fields are skipped without being kept.
///
/// # Errors
/// As [`parse_alerts`]; a message without an `alerts` array is [`BatchError::Schema`].
pub fn parse_webhook(body: &[u8], max: usize) -> Result<WebhookMessage<'_>, BatchError> {
    const SHAPE: &str = "the body must be an Alertmanager webhook message with an `alerts` array";
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Message { max, over: &over }
        .deserialize(&mut de)
        .and_then(|message| de.end().map(|()| message));
    match parsed {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(BatchError::Schema(SHAPE.to_owned())),
        Err(err) => Err(classify(&err, over.get(), max, SHAPE)),
    }
}

fn classify(err: &serde_json::Error, over: bool, max: usize, shape: &str) -> BatchError {
    if over {
        BatchError::TooMany { max }
    } else if err.is_data() {
        BatchError::Schema(shape.to_owned())
    } else {
        BatchError::Json(err.to_string())
    }
}

/// A list of raw alerts that stops, with an error, past `max` entries.
struct Bounded<'c> {
    max: usize,
    over: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of alerts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut alerts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(alert) = seq.next_element::<&'de RawValue>()? {
            if alerts.len() == self.max {
                self.over.set(true);
                return Err(de::Error::custom("too many alerts"));
            }
            alerts.push(alert);
        }
        Ok(alerts)
    }
}

/// The webhook message; `None` when it has no `alerts` array.
struct Message<'c> {
    max: usize,
    over: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Message<'_> {
    type Value = Option<WebhookMessage<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Message<'_> {
    type Value = Option<WebhookMessage<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Alertmanager webhook message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut alerts = None;
        let (mut version, mut truncated_alerts, mut group_key) = (None, 0, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "alerts" if alerts.is_none() => {
                    alerts = Some(map.next_value_seed(Bounded {
                        max: self.max,
                        over: self.over,
                    })?);
                }
                // The informational fields are read leniently, as before: a field of another
                // type is as good as absent.
                "version" => version = lenient::<String>(map.next_value::<&RawValue>()?),
                "truncatedAlerts" => {
                    truncated_alerts = lenient::<u64>(map.next_value::<&RawValue>()?).unwrap_or(0);
                }
                "groupKey" => group_key = lenient::<String>(map.next_value::<&RawValue>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(alerts.map(|alerts| WebhookMessage {
            alerts,
            version,
            truncated_alerts,
            group_key,
        }))
    }
}

fn lenient<T: serde::de::DeserializeOwned>(raw: &RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// The length of a JSON text without its insignificant whitespace: the size the alert limit
/// counts, so that a sender's pretty-printing is not held against it. Linear, and builds
/// nothing.
#[must_use]
pub fn compact_len(json: &str) -> usize {
    let (mut len, mut in_string, mut escaped) = (0, false, false);
    for byte in json.bytes() {
        if in_string {
            len += 1;
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            len += 1;
            in_string = byte == b'"';
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_is_split_into_raw_alerts() {
        let body = br#" [ {"labels":{"a":"1"}} , {"labels":{"b":"2"}} ] "#;
        let alerts = parse_alerts(body, 10).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[1].get(), r#"{"labels":{"b":"2"}}"#);
        assert_eq!(parse_alerts(b"[]", 0).unwrap().len(), 0);
    }

    #[test]
    fn the_count_is_checked_while_reading() {
        // The limit stops the read even when the rest of the body is not valid JSON: nothing
        // past the limit is looked at.
        let mut body = b"[".to_vec();
        for _ in 0..3 {
            body.extend_from_slice(b"{},");
        }
        body.extend_from_slice(b"{} this is not JSON");
        assert!(matches!(
            parse_alerts(&body, 3),
            Err(BatchError::TooMany { max: 3 })
        ));
        assert!(matches!(parse_alerts(&body, 10), Err(BatchError::Json(_))));
    }

    #[test]
    fn shapes_and_syntax_are_told_apart() {
        assert!(matches!(parse_alerts(b"{}", 5), Err(BatchError::Schema(_))));
        assert!(matches!(
            parse_alerts(b"\"x\"", 5),
            Err(BatchError::Schema(_))
        ));
        assert!(matches!(parse_alerts(b"[{", 5), Err(BatchError::Json(_))));
        assert!(matches!(
            parse_alerts(b"[] []", 5),
            Err(BatchError::Json(_))
        ));
        assert!(matches!(
            parse_webhook(b"[]", 5),
            Err(BatchError::Schema(_))
        ));
        assert!(matches!(
            parse_webhook(br#"{"version":"4"}"#, 5),
            Err(BatchError::Schema(_))
        ));
        assert!(matches!(
            parse_webhook(br#"{"alerts":{}}"#, 5),
            Err(BatchError::Schema(_))
        ));
    }

    #[test]
    fn a_webhook_message_keeps_its_alerts_and_reads_its_fields_leniently() {
        let body = br#"{"receiver":"r","status":"firing","alerts":[{"labels":{"a":"1"}}],
            "groupLabels":{},"version":"4","groupKey":"{}:{}","truncatedAlerts":2}"#;
        let message = parse_webhook(body, 5).unwrap();
        assert_eq!(message.alerts.len(), 1);
        assert_eq!(message.version.as_deref(), Some("4"));
        assert_eq!(message.truncated_alerts, 2);
        assert_eq!(message.group_key.as_deref(), Some("{}:{}"));
        let odd = parse_webhook(br#"{"alerts":[],"version":4,"truncatedAlerts":"x"}"#, 5).unwrap();
        assert_eq!((odd.version, odd.truncated_alerts), (None, 0));
        let many = br#"{"alerts":[{},{},{}]}"#;
        assert_eq!(
            parse_webhook(many, 2).unwrap_err(),
            BatchError::TooMany { max: 2 }
        );
    }

    #[test]
    fn the_compact_length_skips_whitespace_outside_strings_only() {
        let pretty = "{\n  \"labels\": { \"a b\": \"x \\\" y\" }\n}";
        let compact =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(pretty).unwrap())
                .unwrap();
        assert_eq!(compact_len(pretty), compact.len());
        assert_eq!(compact_len(&compact), compact.len());
    }
}

//! Parsing and normalising incoming alerts, as Alertmanager does, and planning a batch of them
//! for the queue ([`plan`]). Pure: no I/O, time is passed in.
//!
//! - A zero or missing `startsAt` (amtool sends `0001-01-01T00:00:00Z`) becomes now, or `endsAt`
//!   when only that is set.
//! - A zero or missing `endsAt` means firing. On `POST /api/v2/alerts` the alert then gets the
//!   effective `endsAt` now + `resolve_timeout` (counted from its `startsAt` when that lies ahead,
//!   as a sender whose clock runs ahead of ours gives), so it resolves on its own unless it is
//!   refreshed. From the Alertmanager webhook it has no end: Alertmanager sends the resolve.
//! - An `endsAt` in the past means resolved.
//! - A resolved webhook alert whose `startsAt` lies after its `endsAt` (the two come from the
//!   hosts' different clocks) starts when it ended, rather than being refused: Alertmanager takes
//!   a 400 as final and would drop the whole notification.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Admission, Alert, AlwaysClosed, Annotations, Classification, EnrichedAlert, Labels,
    TargetEntry, TargetSet, UnknownHealth,
};
use chrono::{DateTime, Datelike, Utc};
use fanout::{HealthStrategy, Selection, SelectionPolicy, select_targets};
use serde::Deserialize;
use serde_json::Value;

/// The per-alert limits of SPEC §7.
#[derive(Clone, Copy, Debug)]
pub struct AlertLimits {
    /// The most labels an alert may have.
    pub max_labels: usize,
    /// The longest label name, in bytes.
    pub max_name_bytes: usize,
    /// The longest label or annotation value, in bytes.
    pub max_value_bytes: usize,
    /// The largest alert, serialised as compact JSON, in bytes.
    pub max_alert_bytes: usize,
    /// How far past the later of now and its start an alert's `endsAt` may lie; a later end is
    /// brought back to it, so that no alert is held for ever (`endsAt: 9999-…`).
    pub max_ends_ahead: Duration,
}

impl Default for AlertLimits {
    fn default() -> Self {
        Self {
            max_labels: 128,
            max_name_bytes: 256,
            max_value_bytes: 16 * 1024,
            max_alert_bytes: 64 * 1024,
            max_ends_ahead: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// How a missing `endsAt` is treated.
#[derive(Clone, Copy, Debug)]
pub enum OpenEnd {
    /// Ingest: the alert resolves on its own after this long without a refresh.
    ResolveAfter(Duration),
    /// The synchronous API: the alert is firing and has no end.
    Keep,
}

/// An alert after normalisation.
#[derive(Clone, Debug)]
pub struct Normalised {
    /// The alert, with its classification and enrichment.
    pub alert: EnrichedAlert,
    /// The sender left `startsAt` unset or zero.
    pub starts_at_defaulted: bool,
    /// The `endsAt` lay further ahead than [`AlertLimits::max_ends_ahead`] and was brought back.
    pub ends_at_capped: bool,
}

/// Why one alert was refused; the message names the field and the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAlert(pub String);

/// The JSON fields every alert shape shares. Unknown fields are ignored, as Alertmanager's
/// webhook payload carries `status` and `fingerprint`, which we recompute.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAlert {
    labels: Labels,
    #[serde(default)]
    annotations: Option<Annotations>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    generator_url: Option<String>,
    /// Alertmanager's webhook payload says `resolved` for alerts it resolved.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    classification: Option<Classification>,
    #[serde(default)]
    enrichment: Option<serde_json::Map<String, Value>>,
}

/// Normalises one alert given as JSON.
///
/// # Errors
/// [`InvalidAlert`] naming the field and the limit.
pub fn normalise(
    raw: &Value,
    now: DateTime<Utc>,
    open_end: OpenEnd,
    limits: &AlertLimits,
) -> Result<Normalised, InvalidAlert> {
    normalise_json(&raw.to_string(), now, open_end, limits)
}

/// Normalises one alert given as JSON text (a slice of a request body, say), without building a
/// tree of it.
///
/// # Errors
/// [`InvalidAlert`] naming the field and the limit.
pub fn normalise_json(
    raw: &str,
    now: DateTime<Utc>,
    open_end: OpenEnd,
    limits: &AlertLimits,
) -> Result<Normalised, InvalidAlert> {
    // The compact size stands for the alert's size on the wire: the request body may hold
    // whitespace that we do not count against the sender. It is never more than the text's
    // length, so a text within the limit is not scanned for it (the scan was one of the top
    // costs of absorbing re-sends).
    let size = if raw.len() <= limits.max_alert_bytes {
        raw.len()
    } else {
        crate::batch::compact_len(raw)
    };
    if size > limits.max_alert_bytes {
        return Err(InvalidAlert(format!(
            "the alert is {size} bytes, over the limit of {} bytes",
            limits.max_alert_bytes
        )));
    }
    if !raw.trim_start().starts_with('{') {
        return Err(InvalidAlert("an alert must be a JSON object".to_owned()));
    }
    let wire: WireAlert = serde_json::from_str(raw).map_err(|err| InvalidAlert(err.to_string()))?;
    check_labels(&wire.labels, limits)?;
    let annotations = wire.annotations.unwrap_or_default();
    for (name, value) in &annotations {
        if value.len() > limits.max_value_bytes {
            return Err(InvalidAlert(format!(
                "annotation {name:?} is {} bytes, over the limit of {} bytes",
                value.len(),
                limits.max_value_bytes
            )));
        }
    }

    let starts = parse_time("startsAt", wire.starts_at.as_deref())?;
    let mut ends = parse_time("endsAt", wire.ends_at.as_deref())?;
    let resolved_upstream = wire.status.as_deref() == Some("resolved");
    if ends.is_none() && resolved_upstream {
        // A resolved alert without an end ended when we heard of it.
        ends = Some(now);
    }
    let mut starts = starts;
    if let (Some(s), Some(e)) = (starts, ends)
        && resolved_upstream
        && e < s
    {
        // Alertmanager resolved it by its clock; the start came from the sender's.
        starts = Some(e);
    }
    let starts_at_defaulted = starts.is_none();
    let starts_at = starts.or(ends).unwrap_or(now);
    let ends_at = match (ends, open_end) {
        (Some(ends), _) => Some(ends),
        (None, OpenEnd::Keep) => None,
        (None, OpenEnd::ResolveAfter(timeout)) => {
            let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
            // From the later of now and the start: an alert that starts in our future (its
            // sender's clock runs ahead) still gets a whole timeout, and an end after its start.
            Some(
                now.max(starts_at)
                    .checked_add_signed(timeout)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            )
        }
    };
    // No alert is held for ever: a start, and then an end, further ahead than the cap are
    // brought back to it.
    let ahead = |from: DateTime<Utc>| {
        from.checked_add_signed(
            chrono::Duration::from_std(limits.max_ends_ahead).unwrap_or(chrono::Duration::MAX),
        )
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    let horizon = ahead(now);
    let latest = ahead(now.max(starts.map_or(now, |start| start.min(horizon))));
    let ends_at_capped = ends_at.is_some_and(|end| end > latest);
    let ends_at = ends_at.map(|end| end.min(latest));
    // A start taken from the end (the sender set only `endsAt`) comes back with it.
    let starts_at = starts_at
        .min(horizon)
        .min(ends_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
    if let (Some(starts), Some(ends)) = (starts, ends)
        && ends < starts
    {
        return Err(InvalidAlert(format!(
            "endsAt ({}) is before startsAt ({})",
            alert_core::wire::format_timestamp(ends),
            alert_core::wire::format_timestamp(starts)
        )));
    }
    let alert = Alert::build(
        wire.labels,
        annotations,
        starts_at,
        ends_at,
        wire.generator_url.filter(|url| !url.is_empty()),
    )
    .map_err(|err| InvalidAlert(err.to_string()))?;
    let mut alert = EnrichedAlert::new(alert);
    alert.classification = wire.classification;
    alert.enrichment = wire.enrichment;
    Ok(Normalised {
        alert,
        starts_at_defaulted,
        ends_at_capped,
    })
}

fn check_labels(labels: &Labels, limits: &AlertLimits) -> Result<(), InvalidAlert> {
    if labels.is_empty() {
        return Err(InvalidAlert("an alert needs at least one label".to_owned()));
    }
    if labels.len() > limits.max_labels {
        return Err(InvalidAlert(format!(
            "the alert has {} labels, over the limit of {}",
            labels.len(),
            limits.max_labels
        )));
    }
    for (name, value) in labels {
        if name.is_empty() {
            return Err(InvalidAlert("a label name is empty".to_owned()));
        }
        if name.len() > limits.max_name_bytes {
            return Err(InvalidAlert(format!(
                "a label name is {} bytes, over the limit of {} bytes",
                name.len(),
                limits.max_name_bytes
            )));
        }
        if value.len() > limits.max_value_bytes {
            return Err(InvalidAlert(format!(
                "label {name:?} has a value of {} bytes, over the limit of {} bytes",
                value.len(),
                limits.max_value_bytes
            )));
        }
    }
    Ok(())
}

/// Parses an RFC 3339 time; Go's zero time (year 1), an empty string and `null` are "unset".
fn parse_time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, InvalidAlert> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|err| InvalidAlert(format!("{field} is not an RFC 3339 time: {err}")))?
        .with_timezone(&Utc);
    Ok((at.year() > 1).then_some(at))
}

/// One alert of a batch that was refused, by its index in the batch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// Its index in the request's array.
    pub index: usize,
    /// Why, naming the field and the limit.
    pub reason: String,
}

/// A batch of alerts planned for the queue: the first half of ingest (normalise, select each
/// alert's targets, make one admission per alert and target), before anything is committed.
#[derive(Debug, Default)]
pub struct Plan {
    /// One admission per valid alert and target its filters select, in order.
    pub admissions: Vec<Admission>,
    /// The valid alerts.
    pub accepted: usize,
    /// The valid alerts whose `endsAt` was brought back to [`AlertLimits::max_ends_ahead`].
    pub ends_capped: u64,
    /// The invalid alerts; the valid ones are kept.
    pub invalid: Vec<Refused>,
}

/// Ingest delivers to every matching target: health and breakers are gates in each target's
/// lane, which delay delivery rather than drop it.
const INGEST_POLICY: SelectionPolicy = SelectionPolicy {
    health_strategy: HealthStrategy::PublishToAll,
    respect_circuit_breakers: false,
};

/// Which targets an alert with these labels would go to, by the rule [`plan`] applies: each of
/// `targets` in order, with `None` when it would receive the alert, or why not (disabled, or its
/// filter does not match). `alertpub check-config FILE --route 'alertname=X,severity=critical'`
/// prints it.
///
/// # Errors
/// The labels do not make a valid alert (none at all, or an invalid name).
pub fn route(
    labels: alert_core::Labels,
    targets: &TargetSet,
) -> Result<Vec<(&TargetEntry, Option<alert_core::SkipReason>)>, alert_core::AlertError> {
    let alert = alert_core::Alert::new(labels)?;
    Ok(
        match select_targets(
            &alert,
            targets,
            &Selection::All,
            INGEST_POLICY,
            &UnknownHealth,
            &AlwaysClosed,
        ) {
            Ok(selected) => selected
                .candidates
                .iter()
                .map(|c| (c.entry, c.skip))
                .collect(),
            // No enabled target at all: every one is disabled.
            Err(_) => targets
                .iter()
                .map(|entry| (entry, Some(alert_core::SkipReason::Disabled)))
                .collect(),
        },
    )
}

/// Plans `items` (a request's alerts, each as JSON text) for the queue: each valid alert goes to
/// every enabled target of `targets` whose filter matches it, as `admit` makes the admission
/// (ingest delivers to every matching target: health and breakers are gates in each target's
/// lane, which delay delivery rather than drop it). An alert no target takes is still accepted:
/// there is nobody to tell.
pub fn plan(
    items: &[&serde_json::value::RawValue],
    targets: &TargetSet,
    now: DateTime<Utc>,
    open_end: OpenEnd,
    limits: &AlertLimits,
    admit: impl Fn(&TargetEntry, Arc<EnrichedAlert>, bool) -> Admission,
) -> Plan {
    let policy = INGEST_POLICY;
    let mut plan = Plan {
        // Room for one admission per alert and target, up to a bound, so the vector does not
        // grow step by step as it fills.
        admissions: Vec::with_capacity(
            items.len().saturating_mul(targets.len().max(1)).min(16_384),
        ),
        ..Plan::default()
    };
    for (index, raw) in items.iter().enumerate() {
        match normalise_json(raw.get(), now, open_end, limits) {
            Err(err) => plan.invalid.push(Refused {
                index,
                reason: err.0,
            }),
            Ok(normalised) => {
                plan.accepted += 1;
                plan.ends_capped += u64::from(normalised.ends_at_capped);
                let selected = select_targets(
                    &normalised.alert.alert,
                    targets,
                    &Selection::All,
                    policy,
                    &UnknownHealth,
                    &AlwaysClosed,
                );
                if let Ok(selected) = selected {
                    // One copy of the alert, shared by its targets' admissions.
                    let alert = Arc::new(normalised.alert);
                    for entry in selected.to_call() {
                        plan.admissions.push(admit(
                            entry,
                            Arc::clone(&alert),
                            normalised.starts_at_defaulted,
                        ));
                    }
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use alert_core::AlertStatus;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const FIVE_MIN: OpenEnd = OpenEnd::ResolveAfter(Duration::from_secs(300));

    fn ok(raw: Value) -> Normalised {
        normalise(&raw, now(), FIVE_MIN, &AlertLimits::default()).unwrap()
    }

    fn err(raw: Value) -> String {
        normalise(&raw, now(), FIVE_MIN, &AlertLimits::default())
            .unwrap_err()
            .0
    }

    #[test]
    fn amtool_zero_timestamps_become_firing_from_now() {
        let n = ok(json!({
            "labels": {"alertname": "Down"},
            "startsAt": "0001-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z"
        }));
        assert!(n.starts_at_defaulted);
        assert_eq!(n.alert.alert.starts_at(), now());
        assert_eq!(
            n.alert.alert.ends_at(),
            Some(now() + chrono::Duration::minutes(5))
        );
        assert_eq!(n.alert.alert.status_at(now()), AlertStatus::Firing);
    }

    #[test]
    fn only_a_past_ends_at_is_resolved_and_starts_then() {
        let n = ok(json!({"labels": {"a": "b"}, "endsAt": "2026-11-23T11:00:00Z"}));
        let ended = DateTime::parse_from_rfc3339("2026-11-23T11:00:00Z").unwrap();
        assert_eq!(n.alert.alert.starts_at(), ended);
        assert_eq!(n.alert.alert.status_at(now()), AlertStatus::Resolved);
    }

    #[test]
    fn sync_api_keeps_an_open_end() {
        let raw = json!({"labels": {"a": "b"}});
        let n = normalise(&raw, now(), OpenEnd::Keep, &AlertLimits::default()).unwrap();
        assert_eq!(n.alert.alert.ends_at(), None);
    }

    #[test]
    fn webhook_resolved_status_without_end_ends_now() {
        let n = ok(
            json!({"status": "resolved", "labels": {"a": "b"}, "startsAt": "2026-11-23T10:00:00Z", "fingerprint": "x"}),
        );
        assert_eq!(n.alert.alert.ends_at(), Some(now()));
    }

    #[test]
    fn a_start_in_our_future_is_accepted_with_a_whole_timeout_after_it() {
        // The sender's clock runs ten minutes ahead of ours: more than resolve_timeout.
        let n = ok(json!({"labels": {"a": "b"}, "startsAt": "2026-11-23T12:10:00Z"}));
        let starts = DateTime::parse_from_rfc3339("2026-11-23T12:10:00Z").unwrap();
        assert_eq!(n.alert.alert.starts_at(), starts);
        assert_eq!(
            n.alert.alert.ends_at(),
            Some(starts.with_timezone(&Utc) + chrono::Duration::minutes(5))
        );
        assert_eq!(n.alert.alert.status_at(now()), AlertStatus::Firing);
    }

    #[test]
    fn a_firing_webhook_alert_has_no_end() {
        // Alertmanager zeroes endsAt for every unresolved alert it notifies.
        let raw = json!({
            "status": "firing",
            "labels": {"a": "b"},
            "startsAt": "2026-11-23T12:30:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        });
        let n = normalise(&raw, now(), OpenEnd::Keep, &AlertLimits::default()).unwrap();
        assert_eq!(n.alert.alert.ends_at(), None);
        assert_eq!(
            n.alert.alert.status_at(now() + chrono::Duration::days(30)),
            AlertStatus::Firing
        );
    }

    #[test]
    fn a_resolved_webhook_alert_that_started_after_its_end_starts_when_it_ended() {
        let raw = json!({
            "status": "resolved",
            "labels": {"a": "b"},
            "startsAt": "2026-11-23T12:30:00Z",
            "endsAt": "2026-11-23T12:00:00Z",
        });
        let n = normalise(&raw, now(), OpenEnd::Keep, &AlertLimits::default()).unwrap();
        let ended = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z").unwrap();
        assert_eq!(n.alert.alert.starts_at(), ended);
        assert_eq!(n.alert.alert.ends_at(), Some(ended.with_timezone(&Utc)));
        assert_eq!(n.alert.alert.status_at(now()), AlertStatus::Resolved);
    }

    #[test]
    fn invalid_alerts_name_the_problem() {
        assert!(err(json!({"labels": {}})).contains("at least one label"));
        assert!(err(json!({"annotations": {}})).contains("missing field `labels`"));
        assert!(err(json!({"labels": {"a": 5}})).contains("invalid type"));
        assert!(err(json!([1])).contains("JSON object"));
        assert!(err(json!({"labels": {"a": "b"}, "startsAt": "yesterday"})).contains("startsAt"));
        let long = "x".repeat(16 * 1024 + 1);
        assert!(err(json!({"labels": {"a": long}})).contains("over the limit"));
        let name = "n".repeat(257);
        assert!(err(json!({"labels": {name: "v"}})).contains("label name"));
        let many: serde_json::Map<String, Value> =
            (0..129).map(|i| (format!("l{i}"), json!("v"))).collect();
        assert!(err(json!({ "labels": many })).contains("129 labels"));
        assert!(
            err(json!({"labels": {"a": "b"}, "startsAt": "2026-11-23T12:00:00Z", "endsAt": "2026-11-23T11:00:00Z"}))
                .contains("before startsAt")
        );
        let big = "y".repeat(10 * 1024);
        let annotations: serde_json::Map<String, Value> =
            (0..7).map(|i| (format!("a{i}"), json!(big))).collect();
        assert!(
            err(json!({"labels": {"a": "b"}, "annotations": annotations}))
                .contains("bytes, over the limit of 65536")
        );
    }

    #[test]
    fn an_end_far_ahead_is_brought_back_to_the_cap() {
        let n = ok(json!({"labels": {"a": "b"}, "endsAt": "9999-12-31T23:59:59Z"}));
        assert!(n.ends_at_capped);
        assert_eq!(
            n.alert.alert.ends_at(),
            Some(now() + chrono::Duration::days(7))
        );
        // Counted from a start that lies ahead, so the end stays after the start.
        let n = ok(json!({
            "labels": {"a": "b"},
            "startsAt": "2026-11-24T12:00:00Z",
            "endsAt": "2027-11-24T12:00:00Z"
        }));
        assert!(n.ends_at_capped);
        assert_eq!(
            n.alert.alert.ends_at(),
            Some(now() + chrono::Duration::days(8))
        );
        // A near end, and the resolve timeout's, are kept.
        let n = ok(json!({"labels": {"a": "b"}, "endsAt": "2026-11-30T12:00:00Z"}));
        assert!(!n.ends_at_capped);
        assert!(!ok(json!({"labels": {"a": "b"}})).ends_at_capped);
    }

    #[test]
    fn whitespace_does_not_count_against_the_alert_size() {
        let limits = AlertLimits {
            max_alert_bytes: 40,
            ..AlertLimits::default()
        };
        let compact = r#"{"labels":{"alertname":"SizeCheck1"}}"#;
        let pretty = "{\n    \"labels\": {\n        \"alertname\": \"SizeCheck1\"\n    }\n}";
        assert!(normalise_json(compact, now(), FIVE_MIN, &limits).is_ok());
        assert!(normalise_json(pretty, now(), FIVE_MIN, &limits).is_ok());
        let longer = r#"{"labels":{"alertname":"SizeCheck12345"}}"#;
        assert!(normalise_json(longer, now(), FIVE_MIN, &limits).is_err());
        assert!(normalise_json("[1]", now(), FIVE_MIN, &limits).is_err());
    }
}

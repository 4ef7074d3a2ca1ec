//! Fixtures shared by every test module.

use alert_core::{Alert, Annotations, Classification, EnrichedAlert, Labels, Severity};
use chrono::{DateTime, Utc};
use formatters::FormatContext;
use serde_json::{Map, Value, json};

/// The fingerprint of [`labels`]`()`, computed independently (FNV-1a 64 over sorted pairs).
pub(crate) const FP: &str = "fd8fc1a7c02585bc";
/// The fingerprint of the same labels with `instance="db-2"`.
pub(crate) const FP_DB2: &str = "2681cde146787445";
pub(crate) const GENERATOR_URL: &str = "http://prometheus.local/graph?g0.expr=disk";
pub(crate) const STARTS_AT: &str = "2026-01-02T03:04:05.000Z";
pub(crate) const ENDS_AT: &str = "2026-01-02T04:05:06.000Z";
/// A `now` after the end, at which the resolved alert is resolved.
pub(crate) const NOW_AFTER_END: &str = "2026-01-02T05:00:00.000Z";

pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid RFC 3339")
        .with_timezone(&Utc)
}

pub(crate) fn pairs(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn labels() -> Labels {
    pairs(&[
        ("alertname", "DiskFull"),
        ("instance", "db-1"),
        ("job", "node"),
        ("severity", "critical"),
    ])
}

pub(crate) fn annotations() -> Annotations {
    pairs(&[
        ("description", "/var on db-1 is 95% full"),
        ("summary", "Disk almost full"),
    ])
}

/// An alert with these labels and annotations, starting at [`STARTS_AT`], with the generator URL.
pub(crate) fn alert_with(labels: Labels, annotations: Annotations) -> Alert {
    Alert::build(
        labels,
        annotations,
        at(STARTS_AT),
        None,
        Some(GENERATOR_URL.to_owned()),
    )
    .expect("valid alert")
}

/// DiskFull on db-1, firing: no end.
pub(crate) fn firing() -> EnrichedAlert {
    EnrichedAlert::new(alert_with(labels(), annotations()))
}

/// DiskFull on db-1, resolved at [`ENDS_AT`].
pub(crate) fn resolved() -> EnrichedAlert {
    let alert = alert_with(labels(), annotations())
        .with_ends_at(Some(at(ENDS_AT)))
        .expect("end after start");
    EnrichedAlert::new(alert)
}

pub(crate) fn classification() -> Classification {
    Classification::new(Severity::Critical, 0.92, "Usage grows 5% an hour")
        .expect("valid confidence")
        .with_recommendations(vec!["Expand the volume".into(), "Rotate logs".into()])
}

pub(crate) fn enrichment() -> Map<String, Value> {
    let Value::Object(map) =
        json!({ "owner": { "team": "storage" }, "runbook": "https://runbooks.local/disk" })
    else {
        unreachable!("a JSON object literal")
    };
    map
}

/// The alert with [`classification`] and [`enrichment`].
pub(crate) fn classified(alert: EnrichedAlert) -> EnrichedAlert {
    alert
        .with_classification(classification())
        .with_enrichment(enrichment())
}

/// The JSON every formatter shows for [`classification`].
pub(crate) fn classification_json() -> Value {
    json!({
        "severity": "critical",
        "confidence": 0.92,
        "reasoning": "Usage grows 5% an hour",
        "recommendations": ["Expand the volume", "Rotate logs"],
    })
}

pub(crate) fn enrichment_json() -> Value {
    json!({ "owner": { "team": "storage" }, "runbook": "https://runbooks.local/disk" })
}

pub(crate) fn labels_json() -> Value {
    json!({ "alertname": "DiskFull", "instance": "db-1", "job": "node", "severity": "critical" })
}

pub(crate) fn annotations_json() -> Value {
    json!({ "description": "/var on db-1 is 95% full", "summary": "Disk almost full" })
}

/// The alert's own status, half an hour after it started.
pub(crate) fn ctx_firing() -> FormatContext {
    FormatContext::new(alert_core::AlertStatus::Firing, at("2026-01-02T03:34:05Z"))
}

/// Resolved, formatted after the end.
pub(crate) fn ctx_resolved() -> FormatContext {
    FormatContext::new(alert_core::AlertStatus::Resolved, at(NOW_AFTER_END))
}

pub(crate) fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("the formatter writes JSON")
}

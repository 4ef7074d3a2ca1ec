//! The generic JSON webhook body and its idempotency key.
//!
//! The body has exactly these keys, always present and in this order:
//! `version` (`"1"`), `alert_name`, `fingerprint`, `status`, `labels`, `annotations`,
//! `starts_at`, `ends_at`, `generator_url`, `classification`, `enrichment`. The last four are
//! `null` when absent; `alert_name` is `""` when the alert has no `alertname` label. Timestamps are
//! RFC 3339 with milliseconds. A resolve of an alert without an end carries the delivery's `now` as
//! `ends_at` (see [`FormatContext::effective_ends_at`]).

use alert_core::{Alert, AlertStatus, Annotations, Classification, EnrichedAlert, Labels, wire};
use serde::Serialize;

use crate::context::FormatContext;
use crate::error::FormatError;

/// The body's `version`.
pub const VERSION: &str = "1";

/// Builds the JSON body.
///
/// # Errors
/// [`FormatError::Serialize`] only if JSON serialisation fails, which it does not for these types.
pub fn body(alert: &EnrichedAlert, ctx: &FormatContext) -> Result<Vec<u8>, FormatError> {
    let inner = &alert.alert;
    let body = Body {
        version: VERSION,
        alert_name: inner.name().unwrap_or(""),
        fingerprint: inner.fingerprint().to_string(),
        status: ctx.status,
        labels: inner.labels(),
        annotations: inner.annotations(),
        starts_at: wire::format_timestamp(inner.starts_at()),
        ends_at: ctx.effective_ends_at(inner).map(wire::format_timestamp),
        generator_url: inner.generator_url(),
        classification: alert.classification.as_ref(),
        enrichment: alert.enrichment.as_ref(),
    };
    Ok(serde_json::to_vec(&body)?)
}

/// The `Idempotency-Key` header of one delivery:
/// `<fingerprint>-<status>-<startsAt as unix milliseconds>-<delivery sequence>`.
///
/// The notification log assigns the delivery sequence when it accepts a new state, so every retry
/// of one job sends the same key, while a new occurrence (a new `startsAt`), a status change or a
/// `repeat_interval` reminder (a new sequence) sends a new one.
#[must_use]
pub fn idempotency_key(alert: &Alert, status: AlertStatus, delivery_sequence: u64) -> String {
    format!(
        "{}-{}-{}-{}",
        alert.fingerprint(),
        status,
        alert.starts_at().timestamp_millis(),
        delivery_sequence
    )
}

#[derive(Serialize)]
struct Body<'a> {
    version: &'static str,
    alert_name: &'a str,
    fingerprint: String,
    status: AlertStatus,
    labels: &'a Labels,
    annotations: &'a Annotations,
    starts_at: String,
    ends_at: Option<String>,
    generator_url: Option<&'a str>,
    classification: Option<&'a Classification>,
    enrichment: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

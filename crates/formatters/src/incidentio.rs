//! incident.io's HTTP alert source: `POST {base}/v2/alert_events/http/{source_config_id}`.
//!
//! Reference: <https://docs.incident.io/api-reference/alert-events-v2/createhttp>.
//!
//! The body is `{title, status, deduplication_key, description, source_url, metadata}`:
//! `status` is `firing` or `resolved`, and `deduplication_key` is
//! [`pagerduty::dedup_key`] of the fingerprint, so a resolve sent by
//! any process after any restart resolves the alert its firing opened. `metadata` carries the
//! labels, the annotations and the fingerprint, for the alert source's attribute expressions.

use alert_core::{AlertStatus, EnrichedAlert, wire};
use serde::Serialize;

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::pagerduty;
use crate::templates::Templates;
use crate::text::truncate_chars;

/// The title's cut, in characters (no limit is documented; a title is a line).
pub const MAX_TITLE_CHARS: usize = 1_000;
/// The description's cut, in characters (no limit is documented).
pub const MAX_DESCRIPTION_CHARS: usize = 30_000;

#[derive(Serialize)]
struct Event<'a> {
    title: String,
    status: &'static str,
    deduplication_key: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_url: Option<&'a str>,
    metadata: Metadata<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    labels: &'a alert_core::Labels,
    annotations: &'a alert_core::Annotations,
    fingerprint: String,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
}

/// The body of one alert event.
///
/// # Errors
/// [`FormatError::Template`] when a template fails.
pub fn event(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let texts = templates.texts(alert, ctx)?;
    let inner = &alert.alert;
    let body = Event {
        title: truncate_chars(&texts.title, MAX_TITLE_CHARS).into_owned(),
        status: match ctx.status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        },
        deduplication_key: pagerduty::dedup_key(inner.fingerprint()),
        description: truncate_chars(&texts.description, MAX_DESCRIPTION_CHARS).into_owned(),
        source_url: inner.generator_url().filter(|u| !u.is_empty()),
        metadata: Metadata {
            labels: inner.labels(),
            annotations: inner.annotations(),
            fingerprint: inner.fingerprint().to_string(),
            starts_at: wire::format_timestamp(inner.starts_at()),
            ends_at: ctx.effective_ends_at(inner).map(wire::format_timestamp),
        },
    };
    Ok(serde_json::to_vec(&body)?)
}

//! PagerDuty Events API v2 (`POST {base}/v2/enqueue`).
//!
//! Reference: <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/> and the
//! overview's size limits, <https://developer.pagerduty.com/docs/events-api-v2/overview/>.
//!
//! - A firing alert is a `trigger` event with a full `payload`. A resolved alert is a `resolve`
//!   event of exactly `routing_key`, `dedup_key` and `event_action`: PagerDuty's own resolve
//!   example carries no payload, and the payload fields are required only for triggers.
//! - The `dedup_key` comes from the fingerprint alone ([`dedup_key`]), so a resolve sent by a
//!   freshly started process finds the incident its trigger opened, with no cache.
//! - `payload.summary` is cut to 1024 characters, PagerDuty's limit.
//! - PagerDuty limits an event to 512 KB. When the body would be larger, `payload.custom_details`
//!   is dropped; when it is still too large, formatting fails with [`FormatError::TooLarge`].
//!   Alertmanager reads "512 KB" as 512 000 bytes; we read it as [`MAX_EVENT_BYTES`] = 524 288.

use alert_core::{
    AlertStatus, Annotations, Classification, EnrichedAlert, Fingerprint, Labels, Severity, wire,
};
use serde::{Deserialize, Serialize};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::templates::Templates;
use crate::text::truncate_chars;

/// The longest `payload.summary` PagerDuty accepts, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// The largest event body PagerDuty accepts, in bytes (512 KB).
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// The `source` used when neither the settings nor the labels name one.
const DEFAULT_SOURCE: &str = "alertpub";

/// PagerDuty's event severities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PagerDutySeverity {
    /// `critical`.
    Critical,
    /// `error`: Alertmanager's default, and ours when nothing else decides.
    Error,
    /// `warning`.
    Warning,
    /// `info`.
    Info,
}

impl PagerDutySeverity {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }

    /// Maps a `severity` label value, case-insensitively; `None` for a value it does not know.
    ///
    /// `critical`/`page` → critical; `error`/`major`/`high` → error;
    /// `warning`/`warn`/`minor`/`medium` → warning; `info`/`informational`/`low`/`none` → info.
    #[must_use]
    pub fn from_label(value: &str) -> Option<Self> {
        let severity = match value.trim().to_ascii_lowercase().as_str() {
            "critical" | "page" => Self::Critical,
            "error" | "major" | "high" => Self::Error,
            "warning" | "warn" | "minor" | "medium" => Self::Warning,
            "info" | "informational" | "low" | "none" => Self::Info,
            _ => return None,
        };
        Some(severity)
    }

    /// Maps a classification's severity: noise is sent as `info`.
    #[must_use]
    pub const fn from_classification(severity: Severity) -> Self {
        match severity {
            Severity::Critical => Self::Critical,
            Severity::Warning => Self::Warning,
            Severity::Info | Severity::Noise => Self::Info,
        }
    }
}

/// Per-target PagerDuty options, from the target's config.
///
/// This is a plain record: build it with `..Default::default()`, which keeps compiling when a field
/// is added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutySettings {
    /// `payload.source`; default: the `instance` label, else the `job` label, else `alertpub`.
    pub source: Option<String>,
    /// `payload.component`.
    pub component: Option<String>,
    /// `payload.group`.
    pub group: Option<String>,
    /// `payload.class`.
    pub class: Option<String>,
    /// `client`: the name of the monitoring client.
    pub client: Option<String>,
    /// `client_url`: a link to the monitoring client.
    pub client_url: Option<String>,
    /// A fixed `payload.severity`, overriding the label and the classification.
    pub severity: Option<PagerDutySeverity>,
}

/// The `dedup_key` of an alert: `alertpub-<fingerprint>`.
///
/// It depends on nothing but the fingerprint, so every process, before or after a restart,
/// computes the same key for the same label set.
#[must_use]
pub fn dedup_key(fingerprint: Fingerprint) -> String {
    format!("alertpub-{fingerprint}")
}

/// The severity to send: the settings' override, else the `severity` label, else the
/// classification, else `error`.
#[must_use]
pub fn severity(alert: &EnrichedAlert, settings: &PagerDutySettings) -> PagerDutySeverity {
    settings
        .severity
        .or_else(|| {
            alert
                .alert
                .label("severity")
                .and_then(PagerDutySeverity::from_label)
        })
        .or_else(|| {
            alert
                .classification
                .as_ref()
                .map(|c| PagerDutySeverity::from_classification(c.severity))
        })
        .unwrap_or(PagerDutySeverity::Error)
}

/// Builds the JSON body of the event for `POST {base}/v2/enqueue`.
///
/// # Errors
/// [`FormatError::Template`] when the summary template fails, [`FormatError::TooLarge`] when the
/// event exceeds [`MAX_EVENT_BYTES`] even without `custom_details`.
pub fn event(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    routing_key: &str,
    settings: &PagerDutySettings,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let dedup_key = dedup_key(alert.alert.fingerprint());
    if ctx.status == AlertStatus::Resolved {
        let event = Event {
            routing_key,
            event_action: "resolve",
            dedup_key,
            payload: None,
            links: Vec::new(),
            client: None,
            client_url: None,
        };
        return Ok(serde_json::to_vec(&event)?);
    }

    let inner = &alert.alert;
    let summary = templates.summary(alert, ctx)?;
    let source = settings
        .source
        .as_deref()
        .or_else(|| inner.label("instance"))
        .or_else(|| inner.label("job"))
        .unwrap_or(DEFAULT_SOURCE);
    let links = inner
        .generator_url()
        .map(|href| Link {
            href,
            text: "Source",
        })
        .into_iter()
        .collect();
    let mut event = Event {
        routing_key,
        event_action: "trigger",
        dedup_key,
        payload: Some(Payload {
            summary: truncate_chars(&summary, MAX_SUMMARY_CHARS).into_owned(),
            source,
            severity: severity(alert, settings).as_str(),
            timestamp: wire::format_timestamp(inner.starts_at()),
            component: settings.component.as_deref(),
            group: settings.group.as_deref(),
            class: settings.class.as_deref(),
            custom_details: Some(CustomDetails {
                labels: inner.labels(),
                annotations: inner.annotations(),
                fingerprint: inner.fingerprint().to_string(),
                starts_at: wire::format_timestamp(inner.starts_at()),
                ends_at: ctx.effective_ends_at(inner).map(wire::format_timestamp),
                generator_url: inner.generator_url(),
                classification: alert.classification.as_ref(),
                enrichment: alert.enrichment.as_ref(),
            }),
        }),
        links,
        client: settings.client.as_deref(),
        client_url: settings.client_url.as_deref(),
    };

    let body = serde_json::to_vec(&event)?;
    if body.len() <= MAX_EVENT_BYTES {
        return Ok(body);
    }
    // The details are the only part that may go: the rest is what the responder is paged with.
    if let Some(payload) = event.payload.as_mut() {
        payload.custom_details = None;
    }
    let body = serde_json::to_vec(&event)?;
    if body.len() <= MAX_EVENT_BYTES {
        Ok(body)
    } else {
        Err(FormatError::TooLarge {
            limit: MAX_EVENT_BYTES,
            size: body.len(),
        })
    }
}

#[derive(Serialize)]
struct Event<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Payload<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<Link<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_url: Option<&'a str>,
}

#[derive(Serialize)]
struct Payload<'a> {
    summary: String,
    source: &'a str,
    severity: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_details: Option<CustomDetails<'a>>,
}

#[derive(Serialize)]
struct CustomDetails<'a> {
    labels: &'a Labels,
    annotations: &'a Annotations,
    fingerprint: String,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'a Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrichment: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct Link<'a> {
    href: &'a str,
    text: &'static str,
}

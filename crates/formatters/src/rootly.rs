//! Rootly Alerts API (`POST {base}/v1/alerts`, JSON:API, `application/vnd.api+json`).
//!
//! Reference: <https://docs.rootly.com/api-reference/alerts/creates-an-alert> and, for resolving,
//! <https://docs.rootly.com/api-reference/alerts/resolves-an-alert>.
//!
//! The body is `{data:{type:"alerts",attributes:{…}}}`. `external_id` is the fingerprint and
//! `deduplication_key` is [`pagerduty::dedup_key`] of it, so both
//! are stable across restarts. `labels` is a `[{key, value}]` list sorted by key, and `data` carries
//! the labels, annotations, fingerprint, classification and enrichment as objects.
//!
//! **Where Rootly's documentation differs from our spec.** The spec sends `status: "open"` or
//! `"resolved"` with `ended_at` on `POST /v1/alerts`. Rootly documents `status` on create as
//! "only available for organizations with Rootly On-Call enabled. Can be one of open, triggered":
//! `resolved` is not a value it accepts there. Resolving is its own endpoint,
//! `POST /v1/alerts/{id}/resolve`, addressed by Rootly's alert id. We follow the documentation:
//!
//! - a firing alert is sent with `status: "open"`;
//! - [`resolve_body`] builds the body of `POST /v1/alerts/{id}/resolve`,
//!   `{data:{type:"alerts",attributes:{resolution_message}}}`, which is how alertpub's Rootly
//!   publisher resolves, with the id it kept from the create response;
//! - [`alert_body`] of a resolved alert has `ended_at` and no `status`. It records an end time
//!   and resolves nothing: Rootly folds a create that shares an open alert's `deduplication_key`
//!   into that alert. alertpub's publisher never sends it, and fails a resolve it has no id for
//!   instead (see `publishers-rootly`).

use alert_core::{AlertStatus, Annotations, Classification, EnrichedAlert, Labels, wire};
use serde::{Deserialize, Serialize};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::pagerduty;
use crate::templates::Templates;

/// The `source` sent when the settings name none. It is one of the values Rootly documents.
pub const DEFAULT_SOURCE: &str = "alertmanager";

/// Per-target Rootly options, from the target's config.
///
/// This is a plain record: build it with `..Default::default()`, which keeps compiling when a field
/// is added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootlySettings {
    /// `source`, default [`DEFAULT_SOURCE`]. Rootly accepts only its documented source names,
    /// such as `alertmanager`, `api` or `generic_webhook`.
    pub source: Option<String>,
    /// `alert_urgency_id`: the Rootly alert urgency to file the alert under.
    pub alert_urgency_id: Option<String>,
    /// `service_ids`: Rootly services to attach the alert to.
    #[serde(default)]
    pub service_ids: Vec<String>,
    /// `group_ids`: Rootly groups (teams) to attach the alert to.
    #[serde(default)]
    pub group_ids: Vec<String>,
    /// `environment_ids`: Rootly environments to attach the alert to.
    #[serde(default)]
    pub environment_ids: Vec<String>,
}

/// Builds the JSON:API body of `POST {base}/v1/alerts`.
///
/// # Errors
/// [`FormatError::Template`] when a template fails.
pub fn alert_body(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    settings: &RootlySettings,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let inner = &alert.alert;
    let texts = templates.texts(alert, ctx)?;
    let (status, ended_at) = match ctx.status {
        AlertStatus::Firing => (Some("open"), None),
        AlertStatus::Resolved => (None, ctx.effective_ends_at(inner)),
    };
    let body = Document {
        data: Resource {
            kind: "alerts",
            attributes: Attributes {
                source: settings.source.as_deref().unwrap_or(DEFAULT_SOURCE),
                summary: texts.summary,
                description: texts.description,
                status,
                started_at: wire::format_timestamp(inner.starts_at()),
                ended_at: ended_at.map(wire::format_timestamp),
                external_id: inner.fingerprint().to_string(),
                external_url: inner.generator_url(),
                labels: inner
                    .labels()
                    .iter()
                    .map(|(key, value)| Label { key, value })
                    .collect(),
                deduplication_key: pagerduty::dedup_key(inner.fingerprint()),
                data: Data {
                    labels: inner.labels(),
                    annotations: inner.annotations(),
                    fingerprint: inner.fingerprint().to_string(),
                    classification: alert.classification.as_ref(),
                    enrichment: alert.enrichment.as_ref(),
                },
                alert_urgency_id: settings.alert_urgency_id.as_deref(),
                service_ids: &settings.service_ids,
                group_ids: &settings.group_ids,
                environment_ids: &settings.environment_ids,
            },
        },
    };
    Ok(serde_json::to_vec(&body)?)
}

/// Builds the body of `POST {base}/v1/alerts/{id}/resolve`:
/// `{data:{type:"alerts",attributes:{resolution_message}}}`, where the message is the title
/// rendered for the resolved alert, such as `[RESOLVED] DiskFull on db-1`.
///
/// # Errors
/// [`FormatError::Template`] when the title template fails.
pub fn resolve_body(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let resolution_message = templates.title(alert, ctx)?;
    let body = Document {
        data: Resource {
            kind: "alerts",
            attributes: ResolveAttributes { resolution_message },
        },
    };
    Ok(serde_json::to_vec(&body)?)
}

#[derive(Serialize)]
struct Document<A> {
    data: Resource<A>,
}

#[derive(Serialize)]
struct Resource<A> {
    #[serde(rename = "type")]
    kind: &'static str,
    attributes: A,
}

#[derive(Serialize)]
struct Attributes<'a> {
    source: &'a str,
    summary: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<String>,
    external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_url: Option<&'a str>,
    labels: Vec<Label<'a>>,
    deduplication_key: String,
    data: Data<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_urgency_id: Option<&'a str>,
    #[serde(skip_serializing_if = "is_empty")]
    service_ids: &'a [String],
    #[serde(skip_serializing_if = "is_empty")]
    group_ids: &'a [String],
    #[serde(skip_serializing_if = "is_empty")]
    environment_ids: &'a [String],
}

/// For `skip_serializing_if`, which passes a reference to the field.
fn is_empty(ids: &&[String]) -> bool {
    ids.is_empty()
}

#[derive(Serialize)]
struct Label<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct Data<'a> {
    labels: &'a Labels,
    annotations: &'a Annotations,
    fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'a Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrichment: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct ResolveAttributes {
    resolution_message: String,
}

//! Opsgenie Alert API v2: create (`POST {base}/v2/alerts`) and close by alias
//! (`POST {base}/v2/alerts/{alias}/close?identifierType=alias`).
//!
//! Reference: <https://docs.opsgenie.com/docs/alert-api> (create, close, `GenieKey` auth, the EU
//! base URL), the field limits in <https://docs.opsgenie.com/docs/alerts-and-alert-fields>, and
//! the API's OpenAPI document (`CreateAlertPayload`, `CloseAlertPayload`,
//! <https://github.com/opsgenie/opsgenie-python-sdk/blob/master/opsgenie-oas.yml>).
//!
//! - `alias` is [`alias`] of the fingerprint: Opsgenie keeps one open alert per alias, so repeats
//!   fold into it, and a close by alias closes it, from any process, after any restart.
//! - `message` is the title, cut to 130 characters; `description` the description, cut to
//!   15 000; `entity` the `instance` label, cut to 512; `tags` at most 20 of at most 50
//!   characters; `details` the labels (string to string).
//! - `priority` is the settings' override, else the `severity` label (or the classification)
//!   mapped by [`priority`].

use alert_core::{EnrichedAlert, Fingerprint, Severity};
use serde::{Deserialize, Serialize};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::templates::Templates;
use crate::text::truncate_chars;

/// `message`'s documented limit, in characters.
pub const MAX_MESSAGE_CHARS: usize = 130;
/// `description`'s documented limit.
pub const MAX_DESCRIPTION_CHARS: usize = 15_000;
/// `alias`' and `entity`'s documented limit.
pub const MAX_ENTITY_CHARS: usize = 512;
/// At most this many tags.
pub const MAX_TAGS: usize = 20;
/// Each tag's documented limit.
pub const MAX_TAG_CHARS: usize = 50;
/// The close note's limit used here (the API's own is larger).
const MAX_NOTE_CHARS: usize = 1_000;

/// An Opsgenie priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum Priority {
    /// Critical.
    P1,
    /// High.
    P2,
    /// Moderate (Opsgenie's default).
    P3,
    /// Low.
    P4,
    /// Informational.
    P5,
}

/// Per-target Opsgenie options.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieSettings {
    /// A fixed priority, overriding the severity.
    pub priority: Option<Priority>,
    /// Tags added to every alert.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `responders`, as Opsgenie takes them (`{type: team, name: ops}`).
    #[serde(default)]
    pub responders: Vec<serde_json::Value>,
    /// `source`, default `alertpub`.
    pub source: Option<String>,
}

/// The alias of an alert: `alertpub-<fingerprint>`.
#[must_use]
pub fn alias(fingerprint: Fingerprint) -> String {
    format!("alertpub-{fingerprint}")
}

/// The priority for a severity label: `critical` P1, `error`/`high`/`major` P2,
/// `warning`/`medium` P3, `low`/`minor` P4, `info`/`none` P5.
#[must_use]
pub fn priority_of_label(severity: &str) -> Option<Priority> {
    Some(match severity.to_ascii_lowercase().as_str() {
        "critical" | "page" | "p1" => Priority::P1,
        "error" | "high" | "major" | "p2" => Priority::P2,
        "warning" | "warn" | "medium" | "p3" => Priority::P3,
        "low" | "minor" | "p4" => Priority::P4,
        "info" | "informational" | "none" | "p5" => Priority::P5,
        _ => return None,
    })
}

/// The priority to send: the settings' override, the `severity` label, the classification, else
/// P3.
#[must_use]
pub fn priority(alert: &EnrichedAlert, settings: &OpsgenieSettings) -> Priority {
    settings
        .priority
        .or_else(|| alert.alert.label("severity").and_then(priority_of_label))
        .or_else(|| {
            alert.classification.as_ref().map(|c| match c.severity {
                Severity::Critical => Priority::P1,
                Severity::Warning => Priority::P3,
                _ => Priority::P5,
            })
        })
        .unwrap_or(Priority::P3)
}

#[derive(Serialize)]
struct Create<'a> {
    message: String,
    alias: String,
    description: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    responders: &'a [serde_json::Value],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    details: &'a alert_core::Labels,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity: Option<String>,
    source: &'a str,
    priority: Priority,
}

/// The body of `POST {base}/v2/alerts`.
///
/// # Errors
/// [`FormatError::Template`] when a template fails.
pub fn create_body(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    settings: &OpsgenieSettings,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let texts = templates.texts(alert, ctx)?;
    let inner = &alert.alert;
    let body = Create {
        message: truncate_chars(&texts.title, MAX_MESSAGE_CHARS).into_owned(),
        alias: alias(inner.fingerprint()),
        description: truncate_chars(&texts.description, MAX_DESCRIPTION_CHARS).into_owned(),
        responders: &settings.responders,
        tags: settings
            .tags
            .iter()
            .filter(|t| !t.is_empty())
            .take(MAX_TAGS)
            .map(|t| truncate_chars(t, MAX_TAG_CHARS).into_owned())
            .collect(),
        details: inner.labels(),
        entity: inner
            .label("instance")
            .map(|i| truncate_chars(i, MAX_ENTITY_CHARS).into_owned()),
        source: settings.source.as_deref().unwrap_or("alertpub"),
        priority: priority(alert, settings),
    };
    Ok(serde_json::to_vec(&body)?)
}

/// The body of `POST {base}/v2/alerts/{alias}/close?identifierType=alias`: the source and, as
/// the note, the title rendered for the resolve.
///
/// # Errors
/// [`FormatError::Template`] when the title template fails.
pub fn close_body(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    settings: &OpsgenieSettings,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let note = templates.title(alert, ctx)?;
    Ok(serde_json::to_vec(&serde_json::json!({
        "source": settings.source.as_deref().unwrap_or("alertpub"),
        "note": truncate_chars(&note, MAX_NOTE_CHARS),
    }))?)
}

//! Alertmanager's two JSON shapes: API v2 postable alerts, and the v4 webhook envelope.
//!
//! - [`postable_alerts`] (and [`postable_alerts_with_context`]) build the body of
//!   `POST {url}/api/v2/alerts`, which forwards alerts to another Alertmanager:
//!   `[{labels, annotations, startsAt, endsAt?, generatorURL?}]`.
//! - [`webhook_envelope`] is the payload Alertmanager's webhook receiver sends (prometheus/alertmanager
//!   `notify/webhook/webhook.go` `Message` over `template/template.go` `Data`):
//!   `{version:"4", groupKey, truncatedAlerts, status, receiver, groupLabels, commonLabels,
//!   commonAnnotations, externalURL, alerts:[{status, labels, annotations, startsAt, endsAt,
//!   generatorURL, fingerprint}]}`. As in Alertmanager, an alert without an end has the zero time
//!   `0001-01-01T00:00:00Z` as `endsAt`, and a missing generator URL is `""`.
//!
//! Timestamps are RFC 3339 in UTC with milliseconds.

use alert_core::{Alert, AlertStatus, Annotations, EnrichedAlert, Labels, wire};
use serde::Serialize;
use serde_json::{Value, json};

use crate::context::FormatContext;
use crate::error::FormatError;

/// The webhook envelope's `version`.
pub const WEBHOOK_VERSION: &str = "4";

/// How Go's zero `time.Time` serialises; Alertmanager's `endsAt` for an alert without an end.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Builds the JSON array for `POST {url}/api/v2/alerts`, each alert with the status its caller
/// decided (the job's, fixed when the job was made).
///
/// A resolved alert keeps its own `endsAt`. A firing alert is sent without `endsAt`, even when it
/// has one (ingest gives every open alert an effective end of now + `resolve_timeout`): while it
/// fires, alertpub re-forwards it every `refresh_interval`, so the upstream Alertmanager's own
/// `resolve_timeout` decides when it lapses. If alertpub stops refreshing it (because it stopped,
/// say), the upstream resolves it on its own, as it would for Prometheus. To forward a resolve the
/// caller decided on (an auto-resolve of an alert without an end), use
/// [`postable_alerts_with_context`].
///
/// # Errors
/// [`FormatError::Serialize`] only if JSON serialisation fails, which it does not for these types.
pub fn postable_alerts(alerts: &[(&Alert, FormatContext)]) -> Result<Vec<u8>, FormatError> {
    let only: Vec<&Alert> = alerts.iter().map(|(alert, _)| *alert).collect();
    let mut contexts = alerts.iter().map(|(_, ctx)| *ctx);
    to_postable(&only, |_| contexts.next().unwrap_or_else(|| unreachable!()))
}

/// Like [`postable_alerts`], with the status the caller decided: when `ctx` resolves and an alert
/// has no end, `ctx.now` is sent as its `endsAt`, because the upstream Alertmanager would otherwise
/// take the alert as still firing.
///
/// # Errors
/// [`FormatError::Serialize`] only if JSON serialisation fails, which it does not for these types.
pub fn postable_alerts_with_context(
    alerts: &[&Alert],
    ctx: &FormatContext,
) -> Result<Vec<u8>, FormatError> {
    to_postable(alerts, |_| *ctx)
}

fn to_postable(
    alerts: &[&Alert],
    mut ctx_of: impl FnMut(&Alert) -> FormatContext,
) -> Result<Vec<u8>, FormatError> {
    let postable: Vec<PostableAlert<'_>> = alerts
        .iter()
        .map(|alert| PostableAlert {
            labels: alert.labels(),
            annotations: alert.annotations(),
            starts_at: wire::format_timestamp(alert.starts_at()),
            ends_at: {
                let ctx = ctx_of(alert);
                (ctx.status == AlertStatus::Resolved)
                    .then(|| ctx.effective_ends_at(alert))
                    .flatten()
                    .map(wire::format_timestamp)
            },
            generator_url: alert.generator_url(),
        })
        .collect();
    Ok(serde_json::to_vec(&postable)?)
}

/// Builds the v4 webhook payload for these alerts, each with the status its caller decided.
///
/// `status` is `firing` when any alert fires, else `resolved`. `commonLabels` and
/// `commonAnnotations` hold the pairs every alert shares with equal values. alertpub does not group,
/// so `groupLabels` is `{}` and `truncatedAlerts` is 0.
#[must_use]
pub fn webhook_envelope(
    alerts: &[(&EnrichedAlert, AlertStatus)],
    receiver: &str,
    group_key: &str,
    external_url: &str,
) -> Value {
    let any_firing = alerts.iter().any(|(_, s)| *s == AlertStatus::Firing);
    let status = if any_firing {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    };
    let entries: Vec<Value> = alerts
        .iter()
        .map(|(enriched, status)| {
            let alert = &enriched.alert;
            json!({
                "status": status.as_str(),
                "labels": alert.labels(),
                "annotations": alert.annotations(),
                "startsAt": wire::format_timestamp(alert.starts_at()),
                "endsAt": alert
                    .ends_at()
                    .map_or_else(|| ZERO_TIME.to_owned(), wire::format_timestamp),
                "generatorURL": alert.generator_url().unwrap_or(""),
                "fingerprint": alert.fingerprint().to_string(),
            })
        })
        .collect();
    json!({
        "version": WEBHOOK_VERSION,
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status.as_str(),
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": common(alerts.iter().map(|(a, _)| a.alert.labels())),
        "commonAnnotations": common(alerts.iter().map(|(a, _)| a.alert.annotations())),
        "externalURL": external_url,
        "alerts": entries,
    })
}

/// The pairs present, with equal values, in every map; empty when there are no maps.
fn common<'a>(mut maps: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = maps.next() else {
        return Labels::new();
    };
    let mut shared = first.clone();
    for map in maps {
        shared.retain(|name, value| map.get(name) == Some(value));
        if shared.is_empty() {
            break;
        }
    }
    shared
}

#[derive(Serialize)]
struct PostableAlert<'a> {
    labels: &'a Labels,
    annotations: &'a Annotations,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

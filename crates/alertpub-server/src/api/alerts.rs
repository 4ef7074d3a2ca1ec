//! Ingest: `POST /api/v2/alerts`, the Alertmanager webhook receiver, and `GET /api/v2/status`.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{AlwaysClosed, UnknownHealth};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fanout::{HealthStrategy, Selection, SelectionPolicy, select_targets};
use serde_json::{Value, json};

use crate::app::App;
use serde_json::value::RawValue;

use crate::batch::{self, BatchError};
use crate::ingest::{self, OpenEnd};

use super::*;

pub(super) async fn post_alerts_v2(
    State(app): Shared,
    request: Request,
) -> Result<Response, ApiError> {
    let body = read_body(&app, request).await?;
    let max = app.config.server.max_alerts_per_request;
    let items = batch::parse_alerts(&body.bytes, max).map_err(batch_error)?;
    let open_end = OpenEnd::ResolveAfter(app.config.ingest.resolve_timeout.into());
    ingest_items(&app, &items, "api_v2", open_end).await
}

pub(super) async fn post_webhook(
    State(app): Shared,
    request: Request,
) -> Result<Response, ApiError> {
    let body = read_body(&app, request).await?;
    let max = app.config.server.max_alerts_per_request;
    let message = batch::parse_webhook(&body.bytes, max).map_err(batch_error)?;
    if let Some(version) = &message.version
        && version != "4"
    {
        return Err(ApiError::bad_request(
            "invalid_schema",
            format!("webhook message version {version:?} is not supported; expected \"4\""),
        ));
    }
    // The upstream left alerts out (its receiver's `max_alerts`): what it sent is still good,
    // and refusing it would lose those too. Say so, and count what we never saw.
    let truncated = message.truncated_alerts;
    if truncated > 0 {
        let group_key = message.group_key.as_deref().unwrap_or("");
        tracing::warn!(
            truncated,
            received = message.alerts.len(),
            group_key,
            "an Alertmanager webhook message left alerts out (truncatedAlerts); raise or remove \
             the receiver's max_alerts"
        );
        app.metrics.add_truncated(truncated);
    }
    // Alertmanager's lifecycle: a firing alert has no end (Alertmanager zeroes it) and stays
    // firing until Alertmanager sends the resolve; `webhook_resolve_timeout` is the only net.
    let open_end = match Duration::from(app.config.ingest.webhook_resolve_timeout) {
        off if off.is_zero() => OpenEnd::Keep,
        timeout => OpenEnd::ResolveAfter(timeout),
    };
    ingest_items(&app, &message.alerts, "alertmanager_webhook", open_end).await
}

fn batch_error(err: BatchError) -> ApiError {
    match err {
        BatchError::Json(_) => ApiError::bad_request("invalid_json", err.to_string()),
        BatchError::Schema(message) => ApiError::bad_request("invalid_schema", message),
        BatchError::TooMany { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_alerts",
            err.to_string(),
        ),
    }
}

/// Normalises a batch, selects each alert's targets and commits the jobs in one batch. Valid
/// alerts are kept even when others are invalid; those are listed by index in a 400.
pub(super) async fn ingest_items(
    app: &App,
    items: &[&RawValue],
    source: &str,
    open_end: OpenEnd,
) -> Result<Response, ApiError> {
    let now = app.now();
    let targets = app.targets.snapshot();
    // Ingest enqueues for every enabled target whose filter matches. Health and breakers are
    // gates in each target's lane, which delay delivery rather than drop it.
    let policy = SelectionPolicy {
        health_strategy: HealthStrategy::PublishToAll,
        respect_circuit_breakers: false,
    };
    // An admission per alert and matching target: room for one per target, up to a bound, so
    // the vector does not grow step by step as it fills.
    let mut batch =
        Vec::with_capacity(items.len().saturating_mul(targets.len().max(1)).min(16_384));
    let mut invalid = Vec::new();
    let (mut accepted, mut capped) = (0_usize, 0_u64);
    for (index, raw) in items.iter().enumerate() {
        match ingest::normalise_json(raw.get(), now, open_end, &app.limits) {
            Err(err) => invalid.push(json!({"index": index, "reason": err.0})),
            Ok(normalised) => {
                accepted += 1;
                capped += u64::from(normalised.ends_at_capped);
                let selected = select_targets(
                    &normalised.alert.alert,
                    &targets,
                    &Selection::All,
                    policy,
                    &UnknownHealth,
                    &AlwaysClosed,
                );
                // No enabled target is not an error for ingest: the alert is accepted and
                // there is nobody to tell.
                if let Ok(selected) = selected {
                    // One copy of the alert, shared by its targets' admissions.
                    let alert = Arc::new(normalised.alert);
                    for entry in selected.to_call() {
                        batch.push(app.admission(
                            entry,
                            Arc::clone(&alert),
                            normalised.starts_at_defaulted,
                        ));
                    }
                }
            }
        }
    }
    let done = app.enqueue(batch).await?;
    let admitted = &done.admitted;
    if capped > 0 {
        tracing::warn!(
            capped,
            source,
            "alerts had an endsAt further ahead than ingest.max_ends_ahead; it was brought back"
        );
        app.metrics.add_ends_capped(capped);
    }
    app.metrics.add_ingested(source, accepted as u64);
    let jobs = admitted.iter().filter(|a| a.is_enqueued()).count();
    let refused: u64 = done.refused.iter().map(|(_, (n, _))| n).sum();
    let duplicates = admitted.len() - jobs - refused as usize;
    tracing::debug!(
        source,
        accepted,
        jobs,
        duplicates,
        refused,
        "alerts ingested"
    );
    if !done.refused.is_empty() {
        // The other targets' jobs are committed, and a re-send is a duplicate for them; the full
        // targets' deliveries are not, so the sender must send again.
        let names: Vec<&str> = done.refused.iter().map(|(t, _)| t.as_str()).collect();
        let quota = done.refused.first().map_or(0, |(_, (_, quota))| *quota);
        tracing::warn!(source, targets = ?names, refused, "target queues full; deliveries refused");
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "target_queue_full",
            format!(
                "the queue of {} is full ({quota} jobs, queue.max_jobs_per_target): {refused} \
                 deliveries to it were refused; the alerts were committed for every other \
                 target, so a re-send is a duplicate there",
                names.join(", ")
            ),
        )
        .with("targets", json!(names))
        .with("refused", json!(refused))
        .with("accepted", json!(accepted))
        .with("jobs", json!(jobs));
        if !invalid.is_empty() {
            error = error.with("invalid", Value::Array(invalid));
        }
        return Err(error);
    }
    if invalid.is_empty() {
        return Ok(axum::Json(json!({
            "status": "success",
            "accepted": accepted,
            "jobs": jobs,
            "duplicates": duplicates,
        }))
        .into_response());
    }
    Err(ApiError::bad_request(
        "invalid_alerts",
        format!(
            "{} of {} alerts are invalid; the other {accepted} were accepted",
            invalid.len(),
            items.len()
        ),
    )
    .with("invalid", Value::Array(invalid))
    .with("accepted", json!(accepted))
    .with("jobs", json!(jobs)))
}

/// Alertmanager's status object, which amtool reads before it posts.
pub(super) async fn status_v2(State(app): Shared) -> Response {
    axum::Json(json!({
        "cluster": {"name": "alertpub", "status": "disabled", "peers": []},
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "none (alertpub is written in Rust)",
        },
        "config": {"original": ""},
        "uptime": alert_core::wire::format_timestamp(app.started_at),
    }))
    .into_response()
}

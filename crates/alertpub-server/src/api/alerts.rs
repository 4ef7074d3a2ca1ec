//! Ingest: `POST /api/v2/alerts`, the Alertmanager webhook receiver, and `GET /api/v2/status`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::app::{App, IngestReport};
use crate::build_info;
use serde_json::value::RawValue;

use crate::batch::{self, BatchError};
use crate::ingest::OpenEnd;

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

/// Ingests a request's alerts ([`App::ingest`]) and answers from the report. Valid alerts are
/// kept even when others are invalid; those are listed by index in a 400.
pub(super) async fn ingest_items(
    app: &App,
    items: &[&RawValue],
    source: &str,
    open_end: OpenEnd,
) -> Result<Response, ApiError> {
    let report = app.ingest(items, source, open_end).await?;
    let IngestReport {
        accepted,
        jobs,
        duplicates,
        invalid,
        full,
    } = report;
    if !full.is_empty() {
        // The other targets' jobs are committed, and a re-send is a duplicate for them; the full
        // targets' deliveries are not, so the sender must send again.
        let names: Vec<&str> = full.iter().map(|(t, _)| t.as_str()).collect();
        let refused: u64 = full.iter().map(|(_, (n, _))| n).sum();
        let quota = full.first().map_or(0, |(_, (_, quota))| *quota);
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
            error = error.with("invalid", json!(invalid));
        }
        return Err(error);
    }
    if invalid.is_empty() {
        return Ok(axum::Json(Ingested {
            status: "success",
            accepted,
            jobs,
            duplicates,
        })
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
    .with("invalid", json!(invalid))
    .with("accepted", json!(accepted))
    .with("jobs", json!(jobs)))
}

/// The answer to an ingest whose alerts were all accepted.
#[derive(Debug, Serialize)]
struct Ingested {
    status: &'static str,
    accepted: usize,
    jobs: usize,
    duplicates: usize,
}

/// Alertmanager's status object, which amtool reads before it posts.
pub(super) async fn status_v2(State(app): Shared) -> Response {
    axum::Json(StatusV2 {
        cluster: Cluster {
            name: "alertpub",
            status: "disabled",
            peers: [],
        },
        version_info: VersionInfo {
            version: build_info::VERSION,
            revision: build_info::REVISION,
            branch: build_info::BRANCH,
            build_user: "",
            build_date: build_info::BUILD_DATE,
            // Alertmanager's field for its compiler; alertpub's is Rust's.
            go_version: format!("rustc {}", build_info::RUST_VERSION),
        },
        config: Original { original: "" },
        uptime: alert_core::wire::format_timestamp(app.started_at),
    })
    .into_response()
}

/// `GET /api/v2/status`, in Alertmanager's shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusV2 {
    cluster: Cluster,
    version_info: VersionInfo,
    config: Original,
    uptime: String,
}

#[derive(Debug, Serialize)]
struct Cluster {
    name: &'static str,
    status: &'static str,
    peers: [(); 0],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: String,
}

#[derive(Debug, Serialize)]
struct Original {
    original: &'static str,
}

//! The synchronous publish API: `POST /api/v1/publish/parallel{,/all,/healthy}`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fanout::{FanoutError, ParallelPublishResult, PublishOptions, Selection, TargetOutcome};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::ingest::{self, OpenEnd};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    alert: Value,
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    options: Option<serde_json::Map<String, Value>>,
}

pub(super) async fn publish_named(
    State(app): Shared,
    request: Request,
) -> Result<Response, ApiError> {
    publish(&app, request, |targets| {
        targets.map(Selection::Named).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_schema",
                "`targets` lists the target names to publish to",
            )
        })
    })
    .await
}

pub(super) async fn publish_all(
    State(app): Shared,
    request: Request,
) -> Result<Response, ApiError> {
    publish(&app, request, |_| Ok(Selection::All)).await
}

pub(super) async fn publish_healthy(
    State(app): Shared,
    request: Request,
) -> Result<Response, ApiError> {
    publish(&app, request, |_| Ok(Selection::Healthy)).await
}

pub(super) async fn publish(
    app: &App,
    request: Request,
    selection: impl FnOnce(Option<Vec<String>>) -> Result<Selection, ApiError>,
) -> Result<Response, ApiError> {
    let body: PublishBody = serde_json::from_value(read_json(app, request).await?)
        .map_err(|err| ApiError::bad_request("invalid_schema", err.to_string()))?;
    let selection = selection(body.targets)?;
    let (options, enqueue_failed) = publish_options(app, body.options)?;
    let alert = ingest::normalise(&body.alert, app.now(), OpenEnd::Keep, &app.limits)
        .map_err(|err| ApiError::bad_request("invalid_alert", err.0))?
        .alert;
    let outcome = app.engine.publish(&alert, &selection, &options, None).await;
    let (status, result) = match outcome {
        Ok(result) if result.timed_out => (StatusCode::GATEWAY_TIMEOUT, result),
        Ok(result) => (StatusCode::OK, result),
        Err(FanoutError::AllFailed(result)) if result.timed_out => {
            (StatusCode::GATEWAY_TIMEOUT, *result)
        }
        Err(FanoutError::AllFailed(result)) => (StatusCode::BAD_GATEWAY, *result),
        Err(err) => return Err(fanout_error(err)),
    };
    let mut body = serde_json::to_value(&result).unwrap_or_else(|_| json!({}));
    if enqueue_failed {
        enqueue_retryable(app, &alert, &result, &mut body).await;
    }
    Ok((status, axum::Json(body)).into_response())
}

/// The request's options over the server's defaults; `enqueue_failed` is ours, not the engine's.
pub(super) fn publish_options(
    app: &App,
    given: Option<serde_json::Map<String, Value>>,
) -> Result<(PublishOptions, bool), ApiError> {
    let Some(mut given) = given else {
        return Ok((app.publish_defaults, false));
    };
    let enqueue_failed = match given.remove("enqueue_failed") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_options",
                "options.enqueue_failed must be a boolean",
            ));
        }
    };
    let Ok(Value::Object(mut merged)) = serde_json::to_value(app.publish_defaults) else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the default options could not be read",
        ));
    };
    merged.extend(given);
    let options: PublishOptions = serde_json::from_value(Value::Object(merged))
        .map_err(|err| ApiError::bad_request("invalid_options", err.to_string()))?;
    options
        .validate()
        .map_err(|err| ApiError::bad_request("invalid_options", err.to_string()))?;
    Ok((options, enqueue_failed))
}

/// Hands the targets that failed transiently to the queue, bypassing the notification log, and
/// marks them `enqueued` in the answer.
pub(super) async fn enqueue_retryable(
    app: &App,
    alert: &alert_core::EnrichedAlert,
    result: &ParallelPublishResult,
    body: &mut Value,
) {
    let targets = app.targets.snapshot();
    let mut names = Vec::new();
    let mut batch = Vec::new();
    let alert = Arc::new(alert.clone());
    for target in &result.results {
        let retryable = target.outcome == TargetOutcome::Failed
            && target.error.as_ref().is_some_and(|e| e.kind.is_retryable());
        if let (true, Some(entry)) = (retryable, targets.get(target.target_name.as_str())) {
            names.push(target.target_name.as_str().to_owned());
            batch.push(
                app.admission(entry, Arc::clone(&alert), false)
                    .bypassing_log(),
            );
        }
    }
    let enqueued = match app.enqueue(batch).await {
        // A target whose queue is full was not enqueued.
        Ok(done) => names
            .into_iter()
            .filter(|n| !done.refused.iter().any(|(t, _)| t.as_str() == n))
            .collect(),
        Err(err) => {
            body["enqueue_error"] = json!({"kind": "queue", "message": err.to_string()});
            Vec::new()
        }
    };
    if let Some(results) = body.get_mut("results").and_then(Value::as_array_mut) {
        for entry in results {
            let name = entry.get("target_name").and_then(Value::as_str);
            let queued = name.is_some_and(|n| enqueued.iter().any(|e| e == n));
            entry["enqueued"] = Value::Bool(queued);
        }
    }
    body["enqueued_count"] = json!(enqueued.len());
}

pub(super) fn fanout_error(err: FanoutError) -> ApiError {
    match err {
        FanoutError::UnknownTargets(names) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_targets",
            format!("unknown targets: {}", names.join(", ")),
        )
        .with("targets", json!(names)),
        FanoutError::NoEnabledTargets => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_enabled_targets",
            err.to_string(),
        ),
        FanoutError::NoHealthyTargets => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_healthy_targets",
            err.to_string(),
        ),
        FanoutError::InvalidOptions(_) => ApiError::bad_request("invalid_options", err.to_string()),
        _ => ApiError::bad_request("invalid_request", err.to_string()),
    }
}

pub(super) async fn publish_status(State(app): Shared) -> Response {
    axum::Json(app.stats.view()).into_response()
}

/// `POST /api/v1/publish/parallel/status/reset`: every figure of the status starts again.
pub(super) async fn reset_publish_status(State(app): Shared) -> Response {
    app.stats.reset();
    axum::Json(app.stats.view()).into_response()
}

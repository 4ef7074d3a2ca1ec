//! Targets and their health: listing, one target, a health check now, and reload.

use alert_core::{CircuitState, TargetEntry, redact_url};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::App;

use super::*;

/// A target as the API shows it: common fields, health and circuit state, and the endpoint as
/// `scheme://host:port/…` only. Kind settings are never shown, since they hold secrets.
#[derive(Debug, Serialize)]
pub(super) struct TargetView {
    name: String,
    kind: &'static str,
    enabled: bool,
    disabled_reason: Option<alert_core::DisabledReason>,
    endpoint: Option<String>,
    filter: Vec<String>,
    repeat_interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    in_flight_limit: usize,
    rate_limit_per_minute: Option<u32>,
    health: health::TargetHealth,
    circuit: Circuit,
}

/// A target's breaker: its snapshot, or closed when it has never been used.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Circuit {
    Known(health::BreakerSnapshot),
    Unused { state: CircuitState },
}

pub(super) fn target_view(app: &App, entry: &TargetEntry) -> TargetView {
    let target = &entry.target;
    let name = target.name.as_str();
    let settings = target.settings.map();
    let endpoint = ["url", "webhook_url"]
        .iter()
        .filter_map(|key| settings.get(*key).and_then(serde_json::Value::as_str))
        .find(|url| url.contains("://"))
        .map(redact_url);
    let health = app
        .health
        .get(name)
        .unwrap_or_else(|| health::TargetHealth::unknown(name));
    TargetView {
        name: name.to_owned(),
        kind: target.kind.as_str(),
        enabled: target.is_enabled(),
        disabled_reason: target.disabled,
        endpoint,
        filter: target.filter.iter().map(ToString::to_string).collect(),
        repeat_interval_ms: target.repeat_interval.map(alert_core::wire::duration_ms),
        timeout_ms: target.timeout.map(alert_core::wire::duration_ms),
        in_flight_limit: target
            .in_flight_limit
            .unwrap_or(app.config.queue.per_target_in_flight),
        rate_limit_per_minute: fanout::default_rate_limit(target).map(|r| r.per_minute),
        health,
        circuit: app.breakers.get(name).map_or(
            Circuit::Unused {
                state: CircuitState::Closed,
            },
            Circuit::Known,
        ),
    }
}

/// The answer of `GET /api/v1/targets`.
#[derive(Debug, Serialize)]
struct Targets {
    targets: Vec<TargetView>,
    generation: u64,
}

/// The answer to a reload.
#[derive(Debug, Serialize)]
struct Reloaded {
    status: &'static str,
    generation: u64,
    targets: usize,
    warnings: Vec<discovery::Warning>,
}

pub(super) fn find_target(app: &App, name: &str) -> Result<TargetEntry, ApiError> {
    app.targets.snapshot().get(name).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_target",
            format!("no target is named {name:?}"),
        )
    })
}

pub(super) async fn list_targets(State(app): Shared) -> Response {
    let targets = app.targets.snapshot();
    axum::Json(Targets {
        targets: targets.iter().map(|e| target_view(&app, e)).collect(),
        generation: app.source.status().generation,
    })
    .into_response()
}

pub(super) async fn get_target(
    State(app): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let entry = find_target(&app, &name)?;
    Ok(axum::Json(target_view(&app, &entry)).into_response())
}

pub(super) async fn get_target_health(
    State(app): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    find_target(&app, &name)?;
    let health = app
        .health
        .get(&name)
        .unwrap_or_else(|| health::TargetHealth::unknown(&name));
    Ok(axum::Json(health).into_response())
}

pub(super) async fn check_target_health(
    State(app): Shared,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    match app.prober.check_now(&name).await {
        Ok(health) => Ok(axum::Json(health).into_response()),
        Err(err @ health::HealthError::UnknownTarget(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_target",
            err.to_string(),
        )),
        Err(err) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_probeable",
            err.to_string(),
        )),
    }
}

pub(super) async fn refresh_targets(State(app): Shared) -> Result<Response, ApiError> {
    match app.source.reload() {
        Ok(()) => {
            let status = app.source.status();
            Ok(axum::Json(Reloaded {
                status: "reloaded",
                generation: status.generation,
                targets: app.targets.snapshot().len(),
                warnings: status.warnings,
            })
            .into_response())
        }
        Err(err) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("the config was not reloaded; the previous targets stay: {err}"),
        )),
    }
}

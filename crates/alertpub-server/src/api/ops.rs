//! Operations: metrics, liveness and readiness.

use alert_core::{CircuitState, HealthStatus, Priority};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::*;

pub(super) async fn metrics(State(app): Shared) -> Response {
    for health in app.health.snapshot() {
        app.metrics.set_target_health(&health.target, health.status);
    }
    let targets = app.targets.snapshot();
    app.metrics
        .retain_targets(|name| targets.get(name).is_some());
    for entry in targets.iter() {
        app.metrics.init_target(&entry.target);
        let name = entry.target.name.as_str();
        if app.health.get(name).is_none() {
            app.metrics.set_target_health(name, HealthStatus::Unknown);
        }
        let state = app
            .breakers
            .get(name)
            .map_or(CircuitState::Closed, |b| b.state);
        app.metrics.set_circuit_state(name, state);
    }
    if let Ok(stats) = app.store.stats().await {
        for (priority, depth) in Priority::ALL.iter().zip(stats.by_priority) {
            app.metrics.set_queue_depth(priority.as_str(), depth);
        }
        app.metrics.set_dlq_size(stats.dead_letters);
    }
    app.metrics.record_store_health(&app.store.health());
    if let Some(invalid) = &app.invalid_secrets {
        app.metrics.record_invalid_secrets(invalid());
    }
    let reload = app.source.status();
    #[allow(
        clippy::cast_precision_loss,
        reason = "seconds since the epoch, as Prometheus' float samples carry them"
    )]
    let loaded_at = reload.loaded_at.timestamp_millis() as f64 / 1000.0;
    app.metrics
        .set_config_reload(reload.last_error.is_none(), loaded_at);
    app.metrics
        .set_body_bytes_in_flight(app.body_budget.in_use() as u64);
    let (content_type, body) = app.metrics.render();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub(super) async fn healthz(State(app): Shared) -> Response {
    crate::probes::liveness(&app.store.health())
}

pub(super) async fn readyz(
    State(app): Shared,
    draining: Option<axum::Extension<crate::probes::Draining>>,
) -> Response {
    let draining = app.shutdown.is_cancelled() || draining.is_some_and(|d| d.0.0.is_cancelled());
    crate::probes::readiness(&app.store.health(), draining, app.targets.snapshot().len())
}

//! The HTTP API of SPEC §7: routes, handlers, and the JSON error shape `{error:{kind, message}}`.

mod alerts;
mod body;
mod deliveries;
mod dlq;
mod error;
mod extract;
mod ops;
mod publish;
mod targets;
mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::App;

use alerts::*;
use body::*;
use deliveries::*;
use dlq::*;
pub(crate) use error::ApiError;
use error::*;
use extract::{ApiPath, ApiQuery};
use ops::*;
use publish::*;
use targets::*;

type Shared = State<Arc<App>>;

/// Builds the router.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/style.css", get(ui::style))
        .route("/api/v2/alerts", post(post_alerts_v2))
        .route("/api/v2/status", get(status_v2))
        .route("/api/v1/alerts/alertmanager", post(post_webhook))
        .route("/api/v1/publish/parallel", post(publish_named))
        .route("/api/v1/publish/parallel/all", post(publish_all))
        .route("/api/v1/publish/parallel/healthy", post(publish_healthy))
        .route("/api/v1/publish/parallel/status", get(publish_status))
        .route(
            "/api/v1/publish/parallel/status/reset",
            post(reset_publish_status),
        )
        .route("/api/v1/targets", get(list_targets))
        .route("/api/v1/targets/refresh", post(refresh_targets))
        .route("/api/v1/targets/{name}", get(get_target))
        .route("/api/v1/targets/{name}/health", get(get_target_health))
        .route(
            "/api/v1/targets/{name}/health/check",
            post(check_target_health),
        )
        .route("/api/v1/queue", get(queue_status))
        .route("/api/v1/openapi.json", get(ui::openapi))
        .route("/api/v1/deliveries", get(list_deliveries))
        .route("/api/v1/alerts/{fingerprint}", get(get_alert))
        .route("/api/v1/dlq", get(list_dead_letters))
        .route("/api/v1/dlq/replay", post(replay_dead_letters))
        .route("/api/v1/dlq/{id}", axum::routing::delete(purge_dead_letter))
        .route("/api/v1/dlq/{id}/replay", post(replay_dead_letter))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Alertmanager's and Prometheus' names for the same (a GET route answers HEAD too).
        .route("/-/healthy", get(healthz))
        .route("/-/ready", get(readyz))
        .route("/-/reload", post(refresh_targets))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

// === Middleware ===

/// Every `/api/v1` write (and `POST /-/reload`) needs a token when tokens are configured; the
/// two ingest endpoints need one only with `protect_ingest`, and `/api/v1` reads only with
/// `protect_reads`.
async fn authorize(State(app): Shared, request: Request, next: Next) -> Response {
    if let Some(auth) = &app.auth {
        let path = request.uri().path();
        let write = !matches!(*request.method(), Method::GET | Method::HEAD);
        let ingest = path == "/api/v2/alerts" || path == "/api/v1/alerts/alertmanager";
        let protected = if ingest {
            auth.protect_ingest
        } else {
            (path.starts_with("/api/v1/") && (write || auth.protect_reads))
                || (path == "/-/reload" && write)
        };
        if protected {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            if !auth.allows(presented) {
                let message = if presented.is_some() {
                    "the bearer token is not valid"
                } else {
                    "this endpoint needs a bearer token"
                };
                return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// Counts and times every request by its route (never by its raw path, which is unbounded).
async fn observe(State(app): Shared, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    app.metrics.record_http_request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The `method` label: the methods the API knows, and `other` for the rest, since a client may
/// send any token as a method and each would be a new series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

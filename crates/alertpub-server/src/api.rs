//! The HTTP API of SPEC §7: routes, handlers, and the JSON error shape `{error:{kind, message}}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_core::{
    AlwaysClosed, CircuitState, DeadLetterFilter, DeadLetterId, HealthStatus, JobStoreError,
    Priority, TargetEntry, TargetKind, UnknownHealth, redact_url,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::Utc;
use fanout::{
    FanoutError, HealthStrategy, ParallelPublishResult, PublishOptions, Selection, SelectionPolicy,
    TargetOutcome, select_targets,
};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::ingest::{self, OpenEnd};

type Shared = State<Arc<App>>;

/// Builds the router.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v2/alerts", post(post_alerts_v2))
        .route("/api/v2/status", get(status_v2))
        .route("/api/v1/alerts/alertmanager", post(post_webhook))
        .route("/api/v1/publish/parallel", post(publish_named))
        .route("/api/v1/publish/parallel/all", post(publish_all))
        .route("/api/v1/publish/parallel/healthy", post(publish_healthy))
        .route("/api/v1/publish/parallel/status", get(publish_status))
        .route("/api/v1/targets", get(list_targets))
        .route("/api/v1/targets/refresh", post(refresh_targets))
        .route("/api/v1/targets/{name}", get(get_target))
        .route("/api/v1/targets/{name}/health", get(get_target_health))
        .route(
            "/api/v1/targets/{name}/health/check",
            post(check_target_health),
        )
        .route("/api/v1/queue", get(queue_status))
        .route("/api/v1/dlq", get(list_dead_letters))
        .route("/api/v1/dlq/replay", post(replay_dead_letters))
        .route("/api/v1/dlq/{id}", axum::routing::delete(purge_dead_letter))
        .route("/api/v1/dlq/{id}/replay", post(replay_dead_letter))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

// === Errors ===

/// An error answer: a status and `{error:{kind, message}}`, plus optional extra fields.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    extra: Option<serde_json::Map<String, Value>>,
    close: bool,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            extra: None,
            close: false,
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.to_owned(), value);
        self
    }

    fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra.unwrap_or_default();
        body.insert(
            "error".to_owned(),
            json!({"kind": self.kind, "message": self.message}),
        );
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JobStoreError> for ApiError {
    fn from(err: JobStoreError) -> Self {
        match err {
            JobStoreError::Full { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                err.to_string(),
            ),
            JobStoreError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            JobStoreError::Superseded => {
                Self::new(StatusCode::CONFLICT, "superseded", err.to_string())
            }
            _ => Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage", err.to_string()),
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

// === Middleware ===

/// Every `/api/v1` write needs a token when tokens are configured; the two ingest endpoints need
/// one only with `protect_ingest`. Reads are open.
async fn authorize(State(app): Shared, request: Request, next: Next) -> Response {
    if let Some(auth) = &app.auth {
        let path = request.uri().path();
        let write = !matches!(*request.method(), Method::GET | Method::HEAD);
        let ingest = path == "/api/v2/alerts" || path == "/api/v1/alerts/alertmanager";
        let protected = if ingest {
            auth.protect_ingest
        } else {
            write && path.starts_with("/api/v1/")
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
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    app.metrics.record_http_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

// === Bodies ===

/// Reads a JSON request body within the size limit and the body read timeout.
///
/// A request refused before its body is read (wrong content type, declared or actual size over the
/// limit) still has its body drained, up to [`DRAIN_CAP`] and within the body timeout: a client
/// that is still writing when the server answers and closes would otherwise see a broken pipe or
/// a reset instead of the answer.
async fn read_json(app: &App, request: Request) -> Result<Value, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = app.config.server.max_body_bytes;
    let timeout: Duration = app.config.server.body_read_timeout.into();
    let refused = match check_content_type(&parts.headers) {
        Err(err) => Some(err),
        Ok(()) => {
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            declared
                .is_some_and(|len| len > limit as u64)
                .then(|| too_large(limit))
        }
    };
    if let Some(err) = refused {
        drain(body, DRAIN_CAP, timeout).await;
        return Err(err);
    }
    let bytes = read_limited(body, limit, timeout).await?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(ApiError::bad_request(
            "invalid_utf8",
            "the request body is not valid UTF-8",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::bad_request("invalid_json", format!("invalid JSON: {err}")))
}

/// How much of a refused body is read and discarded before answering; a larger body is cut off
/// (the connection closes), since reading it would cost more than the client deserves.
const DRAIN_CAP: usize = 16 * 1024 * 1024;

/// Reads and discards up to `cap` bytes of `body`, within `timeout`.
async fn drain(mut body: Body, cap: usize, timeout: Duration) {
    let discard = async {
        let mut seen = 0_usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > cap {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, discard).await;
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is over the limit of {limit} bytes"),
    )
}

/// Reads at most `limit` bytes; a longer body is drained (see [`drain`]) and refused with 413.
async fn read_limited(mut body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("the request body could not be read: {err}"),
                )
            })?;
            if let Some(data) = frame.data_ref() {
                if buf.len() + data.len() > limit {
                    return Ok(None);
                }
                buf.extend_from_slice(data);
            }
        }
        Ok(Some(buf.freeze()))
    };
    match tokio::time::timeout_at(deadline, read).await {
        Err(_elapsed) => {
            let mut err = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            );
            err.close = true;
            Err(err)
        }
        Ok(Err(err)) => Err(err),
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            drain(body, DRAIN_CAP, left).await;
            Err(too_large(limit))
        }
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type application/json, got {content_type:?}"),
        ))
    }
}

// === Ingest ===

async fn post_alerts_v2(State(app): Shared, request: Request) -> Result<Response, ApiError> {
    let Value::Array(items) = read_json(&app, request).await? else {
        return Err(ApiError::bad_request(
            "invalid_schema",
            "the body must be a JSON array of alerts",
        ));
    };
    let open_end = OpenEnd::ResolveAfter(app.config.ingest.resolve_timeout.into());
    ingest_items(&app, &items, "api_v2", open_end).await
}

async fn post_webhook(State(app): Shared, request: Request) -> Result<Response, ApiError> {
    let body = read_json(&app, request).await?;
    let Some(Value::Array(items)) = body.get("alerts") else {
        return Err(ApiError::bad_request(
            "invalid_schema",
            "the body must be an Alertmanager webhook message with an `alerts` array",
        ));
    };
    if let Some(version) = body.get("version").and_then(Value::as_str)
        && version != "4"
    {
        return Err(ApiError::bad_request(
            "invalid_schema",
            format!("webhook message version {version:?} is not supported; expected \"4\""),
        ));
    }
    // The upstream left alerts out (its receiver's `max_alerts`): what it sent is still good,
    // and refusing it would lose those too. Say so, and count what we never saw.
    let truncated = body
        .get("truncatedAlerts")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if truncated > 0 {
        let group_key = body.get("groupKey").and_then(Value::as_str).unwrap_or("");
        tracing::warn!(
            truncated,
            received = items.len(),
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
    ingest_items(&app, items, "alertmanager_webhook", open_end).await
}

/// Normalises a batch, selects each alert's targets and commits the jobs in one batch. Valid
/// alerts are kept even when others are invalid; those are listed by index in a 400.
async fn ingest_items(
    app: &App,
    items: &[Value],
    source: &str,
    open_end: OpenEnd,
) -> Result<Response, ApiError> {
    let max = app.config.server.max_alerts_per_request;
    if items.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_alerts",
            format!(
                "the request holds {} alerts, over the limit of {max}",
                items.len()
            ),
        ));
    }
    let now = Utc::now();
    let targets = app.targets.snapshot();
    // Ingest enqueues for every enabled target whose filter matches. Health and breakers are
    // gates in each target's lane, which delay delivery rather than drop it.
    let policy = SelectionPolicy {
        health_strategy: HealthStrategy::PublishToAll,
        respect_circuit_breakers: false,
    };
    let mut batch = Vec::new();
    let mut invalid = Vec::new();
    let mut accepted = 0_usize;
    for (index, raw) in items.iter().enumerate() {
        match ingest::normalise(raw, now, open_end, &app.limits) {
            Err(err) => invalid.push(json!({"index": index, "reason": err.0})),
            Ok(normalised) => {
                accepted += 1;
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
    let admitted = app.enqueue(batch).await?;
    app.metrics.add_ingested(source, accepted as u64);
    let jobs = admitted.iter().filter(|a| a.is_enqueued()).count();
    let duplicates = admitted.len() - jobs;
    tracing::debug!(source, accepted, jobs, duplicates, "alerts ingested");
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
async fn status_v2(State(app): Shared) -> Response {
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

// === Synchronous publish ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    alert: Value,
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    options: Option<serde_json::Map<String, Value>>,
}

async fn publish_named(State(app): Shared, request: Request) -> Result<Response, ApiError> {
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

async fn publish_all(State(app): Shared, request: Request) -> Result<Response, ApiError> {
    publish(&app, request, |_| Ok(Selection::All)).await
}

async fn publish_healthy(State(app): Shared, request: Request) -> Result<Response, ApiError> {
    publish(&app, request, |_| Ok(Selection::Healthy)).await
}

async fn publish(
    app: &App,
    request: Request,
    selection: impl FnOnce(Option<Vec<String>>) -> Result<Selection, ApiError>,
) -> Result<Response, ApiError> {
    let body: PublishBody = serde_json::from_value(read_json(app, request).await?)
        .map_err(|err| ApiError::bad_request("invalid_schema", err.to_string()))?;
    let selection = selection(body.targets)?;
    let (options, enqueue_failed) = publish_options(app, body.options)?;
    let alert = ingest::normalise(&body.alert, Utc::now(), OpenEnd::Keep, &app.limits)
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
fn publish_options(
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
async fn enqueue_retryable(
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
        Ok(_) => names,
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

fn fanout_error(err: FanoutError) -> ApiError {
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

async fn publish_status(State(app): Shared) -> Response {
    axum::Json(app.stats.view()).into_response()
}

// === Targets and health ===

/// A target as the API shows it: common fields, health and circuit state, and the endpoint as
/// `scheme://host:port/…` only. Kind settings are never shown, since they hold secrets.
fn target_view(app: &App, entry: &TargetEntry) -> Value {
    let target = &entry.target;
    let name = target.name.as_str();
    let endpoint = ["url", "webhook_url"]
        .iter()
        .filter_map(|key| target.settings.0.get(*key).and_then(Value::as_str))
        .find(|url| url.contains("://"))
        .map(redact_url);
    let health = app
        .health
        .get(name)
        .unwrap_or_else(|| health::TargetHealth::unknown(name));
    let circuit = app.breakers.get(name);
    json!({
        "name": name,
        "kind": target.kind.as_str(),
        "enabled": target.is_enabled(),
        "disabled_reason": target.disabled,
        "endpoint": endpoint,
        "filter": target.filter.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "repeat_interval_ms": target.repeat_interval.map(alert_core::wire::duration_ms),
        "timeout_ms": target.timeout.map(alert_core::wire::duration_ms),
        "in_flight_limit": target.in_flight_limit.unwrap_or(app.config.queue.per_target_in_flight),
        "rate_limit_per_minute": fanout::default_rate_limit(target).map(|r| r.per_minute),
        "health": health,
        "circuit": circuit.map_or_else(|| json!({"state": CircuitState::Closed}), |c| json!(c)),
    })
}

fn find_target(app: &App, name: &str) -> Result<TargetEntry, ApiError> {
    app.targets.snapshot().get(name).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_target",
            format!("no target is named {name:?}"),
        )
    })
}

async fn list_targets(State(app): Shared) -> Response {
    let targets = app.targets.snapshot();
    let views: Vec<Value> = targets.iter().map(|e| target_view(&app, e)).collect();
    axum::Json(json!({"targets": views, "generation": app.source.status().generation}))
        .into_response()
}

async fn get_target(State(app): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    let entry = find_target(&app, &name)?;
    Ok(axum::Json(target_view(&app, &entry)).into_response())
}

async fn get_target_health(
    State(app): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    find_target(&app, &name)?;
    let health = app
        .health
        .get(&name)
        .unwrap_or_else(|| health::TargetHealth::unknown(&name));
    Ok(axum::Json(health).into_response())
}

async fn check_target_health(
    State(app): Shared,
    Path(name): Path<String>,
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

async fn refresh_targets(State(app): Shared) -> Result<Response, ApiError> {
    match app.source.reload() {
        Ok(()) => {
            let status = app.source.status();
            Ok(axum::Json(json!({
                "status": "reloaded",
                "generation": status.generation,
                "targets": app.targets.snapshot().len(),
                "warnings": status.warnings.iter().map(|w| json!({"target": w.target, "message": w.message})).collect::<Vec<_>>(),
            }))
            .into_response())
        }
        Err(err) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("the config was not reloaded; the previous targets stay: {err}"),
        )),
    }
}

// === Queue and dead-letter queue ===

/// `GET /api/v1/queue`: live jobs by priority and by target, and each lane's in-flight count and
/// pause (an open breaker, a 429, an unhealthy or a disabled target).
async fn queue_status(State(app): Shared) -> Result<Response, ApiError> {
    let stats = app.store.stats().await?;
    let by_priority: serde_json::Map<String, Value> = Priority::ALL
        .iter()
        .zip(stats.by_priority)
        .map(|(p, n)| (p.as_str().to_owned(), json!(n)))
        .collect();
    let lanes = app.dispatcher.lanes();
    let targets: Vec<Value> = stats
        .by_target
        .iter()
        .map(|t| {
            let lane = lanes.iter().find(|l| l.name.as_str() == t.target);
            json!({
                "target": t.target,
                "pending": t.pending,
                "leased": t.leased,
                "in_flight": lane.map_or(0, |l| l.in_flight),
                "paused": lane.and_then(|l| l.reason),
                "paused_until": lane.and_then(|l| l.paused_until).map(alert_core::wire::format_timestamp),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "depth": stats.depth(),
        "by_priority": by_priority,
        "targets": targets,
        "lanes": lanes,
        "dead_letters": stats.dead_letters,
        "oldest_job_age_ms": stats
            .oldest_enqueued_at
            .map(|at| (Utc::now() - at).num_milliseconds().max(0)),
    }))
    .into_response())
}

/// The DLQ filter and page, from the query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DlqQuery {
    target: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl DlqQuery {
    fn filter(&self) -> Result<DeadLetterFilter, ApiError> {
        let time = |name: &str, text: &Option<String>| -> Result<_, ApiError> {
            text.as_deref()
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|err| {
                            ApiError::bad_request(
                                "invalid_query",
                                format!("{name} is not an RFC 3339 time: {err}"),
                            )
                        })
                })
                .transpose()
        };
        let kind = self
            .kind
            .as_deref()
            .map(|k| {
                serde_json::from_value::<TargetKind>(json!(k)).map_err(|_| {
                    ApiError::bad_request("invalid_query", format!("unknown target kind {k:?}"))
                })
            })
            .transpose()?;
        let mut filter = DeadLetterFilter::default();
        filter.target.clone_from(&self.target);
        filter.kind = kind;
        filter.since = time("since", &self.since)?;
        filter.until = time("until", &self.until)?;
        Ok(filter)
    }
}

const DLQ_PAGE_DEFAULT: usize = 100;
const DLQ_PAGE_MAX: usize = 1000;

async fn list_dead_letters(
    State(app): Shared,
    Query(query): Query<DlqQuery>,
) -> Result<Response, ApiError> {
    let filter = query.filter()?;
    let limit = query
        .limit
        .unwrap_or(DLQ_PAGE_DEFAULT)
        .clamp(1, DLQ_PAGE_MAX);
    let cursor = query.cursor.clone().map(DeadLetterId);
    let page = app
        .store
        .dead_letters(&filter, cursor.as_ref(), limit)
        .await?;
    Ok(axum::Json(json!({
        "entries": page.entries,
        "next_cursor": page.next_cursor,
    }))
    .into_response())
}

async fn replay_dead_letter(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = DeadLetterId(id);
    let job = app.store.replay(&id, Utc::now()).await?;
    // The entry's target is not known here without another read; waking every lane is cheap.
    app.dispatcher.wake_all();
    Ok(axum::Json(json!({"status": "replayed", "id": id, "job": job})).into_response())
}

/// `POST /api/v1/dlq/replay`: replays every entry matching the filter (the body's fields, or the
/// query's). Superseded entries are counted and kept.
async fn replay_dead_letters(
    State(app): Shared,
    Query(query): Query<DlqQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v != "0");
    let query = if has_body {
        serde_json::from_value::<DlqQuery>(read_json(&app, request).await?)
            .map_err(|err| ApiError::bad_request("invalid_schema", err.to_string()))?
    } else {
        query
    };
    let filter = query.filter()?;
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut matched = Vec::new();
    let mut cursor: Option<DeadLetterId> = None;
    // Collect the ids first: replaying removes entries, which would shift a cursor.
    loop {
        let page = app
            .store
            .dead_letters(&filter, cursor.as_ref(), DLQ_PAGE_MAX)
            .await?;
        matched.extend(page.entries.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(next) if matched.len() < limit => cursor = Some(next),
            _ => break,
        }
    }
    matched.truncate(limit);
    let (mut replayed, mut superseded, mut missing) = (Vec::new(), Vec::new(), 0_usize);
    let now = Utc::now();
    for id in matched {
        match app.store.replay(&id, now).await {
            Ok(_) => replayed.push(id),
            Err(JobStoreError::Superseded) => superseded.push(id),
            Err(JobStoreError::NotFound) => missing += 1,
            Err(err) => return Err(err.into()),
        }
    }
    app.dispatcher.wake_all();
    Ok(axum::Json(json!({
        "replayed": replayed.len(),
        "superseded": superseded.len(),
        "gone": missing,
        "replayed_ids": replayed,
        "superseded_ids": superseded,
    }))
    .into_response())
}

async fn purge_dead_letter(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = DeadLetterId(id);
    app.store.purge(&id).await?;
    Ok(axum::Json(json!({"status": "deleted", "id": id})).into_response())
}

// === Operations ===

async fn metrics(State(app): Shared) -> Response {
    for health in app.health.snapshot() {
        app.metrics.set_target_health(&health.target, health.status);
    }
    for entry in app.targets.snapshot().iter() {
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
    let (content_type, body) = app.metrics.render();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(app): Shared) -> Response {
    if app.shutdown.is_cancelled() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
        .into_response();
    }
    axum::Json(json!({"status": "ready", "targets": app.targets.snapshot().len()})).into_response()
}

//! Delivery history: `GET /api/v1/deliveries` (every attempt's outcome, searched and paged) and
//! `GET /api/v1/alerts/{fingerprint}` (one alert: its labels, its notification-log state per
//! target, and its latest attempts).

use alert_core::{DeliveryRecord, Fingerprint, HistoryFilter, LogEntry, Matcher};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::*;

/// The default page, and the largest a request may ask for.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1_000;

/// How many of an alert's attempts `GET /api/v1/alerts/{fingerprint}` shows.
const ALERT_DELIVERIES: usize = 100;

/// `GET /api/v1/deliveries?fingerprint=…&target=…&matcher=…&since=…&cursor=…&limit=…`, newest
/// first. `matcher` may be given more than once (every one must match); `since` is RFC 3339.
pub(super) async fn list_deliveries(
    State(app): Shared,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let mut filter = HistoryFilter::default();
    let (mut cursor, mut limit) = (None, PAGE_DEFAULT);
    for (key, value) in pairs {
        match key.as_str() {
            "fingerprint" => filter.fingerprint = Some(fingerprint(&value)?),
            "target" => filter.target = Some(value),
            "matcher" => filter.matchers.push(value.parse::<Matcher>().map_err(|e| {
                ApiError::bad_request("invalid_query", format!("matcher {value:?}: {e}"))
            })?),
            "since" => {
                filter.since = Some(
                    chrono::DateTime::parse_from_rfc3339(&value)
                        .map_err(|e| {
                            ApiError::bad_request(
                                "invalid_query",
                                format!("since must be an RFC 3339 time: {e}"),
                            )
                        })?
                        .with_timezone(&chrono::Utc),
                );
            }
            "cursor" => {
                cursor = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::bad_request("invalid_query", "cursor must be a next_cursor given")
                })?);
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .map_err(|_| {
                        ApiError::bad_request("invalid_query", "limit must be a positive integer")
                    })?
                    .clamp(1, PAGE_MAX);
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown parameter {other:?}: fingerprint, target, matcher, since, \
                         cursor and limit are known"
                    ),
                ));
            }
        }
    }
    let page = app.history.deliveries(&filter, cursor, limit).await?;
    Ok(axum::Json(page).into_response())
}

/// `GET /api/v1/alerts/{fingerprint}`.
pub(super) async fn get_alert(
    State(app): Shared,
    ApiPath(text): ApiPath<String>,
) -> Result<Response, ApiError> {
    let fingerprint = fingerprint(&text)?;
    let log = app.history.log_of(fingerprint).await?;
    let filter = HistoryFilter {
        fingerprint: Some(fingerprint),
        ..HistoryFilter::default()
    };
    let deliveries = app
        .history
        .deliveries(&filter, None, ALERT_DELIVERIES)
        .await?
        .entries;
    if log.is_empty() && deliveries.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_alert",
            format!("no alert {fingerprint} is in the notification log or the delivery history"),
        ));
    }
    Ok(axum::Json(AlertView {
        fingerprint,
        labels: deliveries.first().map(|d| d.labels.clone()),
        targets: log
            .into_iter()
            .map(|(target, entry)| TargetState {
                target: target.as_str().to_owned(),
                entry,
            })
            .collect(),
        deliveries,
    })
    .into_response())
}

/// One alert as `GET /api/v1/alerts/{fingerprint}` shows it.
#[derive(Debug, Serialize)]
struct AlertView {
    fingerprint: Fingerprint,
    /// From its latest attempt; none before the first.
    labels: Option<alert_core::Labels>,
    /// The notification log's state per target: the last state accepted for it.
    targets: Vec<TargetState>,
    /// Its latest attempts, newest first.
    deliveries: Vec<DeliveryRecord>,
}

#[derive(Debug, Serialize)]
struct TargetState {
    target: String,
    #[serde(flatten)]
    entry: LogEntry,
}

fn fingerprint(text: &str) -> Result<Fingerprint, ApiError> {
    Fingerprint::parse_hex(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_fingerprint",
            format!("{text:?} is not a fingerprint (16 hexadecimal digits)"),
        )
    })
}

//! The queue's status and the dead-letter queue: listing, replay and purge.

use alert_core::{DeadLetterFilter, DeadLetterId, JobStoreError, Priority, TargetKind};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;

/// `GET /api/v1/queue`: live jobs by priority and by target, and each lane's in-flight count and
/// pause (an open breaker, a 429, an unhealthy or a disabled target).
pub(super) async fn queue_status(State(app): Shared) -> Result<Response, ApiError> {
    let stats = app.store.stats().await?;
    let by_priority: BTreeMap<&'static str, u64> = Priority::ALL
        .iter()
        .zip(stats.by_priority)
        .map(|(p, n)| (p.as_str(), n))
        .collect();
    let lanes = app.dispatcher.lanes();
    let targets: Vec<TargetQueue> = stats
        .by_target
        .iter()
        .map(|t| {
            let lane = lanes.iter().find(|l| l.name.as_str() == t.target);
            TargetQueue {
                target: t.target.clone(),
                pending: t.pending,
                leased: t.leased,
                in_flight: lane.map_or(0, |l| l.in_flight),
                paused: lane.and_then(|l| l.reason),
                paused_until: lane
                    .and_then(|l| l.paused_until)
                    .map(alert_core::wire::format_timestamp),
            }
        })
        .collect();
    Ok(axum::Json(QueueStatus {
        depth: stats.depth(),
        by_priority,
        targets,
        dead_letters: stats.dead_letters,
        oldest_job_age_ms: stats
            .oldest_enqueued_at
            .map(|at| (app.now() - at).num_milliseconds().max(0)),
        lanes,
    })
    .into_response())
}

/// The answer of `GET /api/v1/queue`.
#[derive(Debug, Serialize)]
struct QueueStatus {
    depth: u64,
    by_priority: BTreeMap<&'static str, u64>,
    targets: Vec<TargetQueue>,
    lanes: Vec<fanout::LaneStatus>,
    dead_letters: u64,
    oldest_job_age_ms: Option<i64>,
}

/// One target's jobs and lane in `GET /api/v1/queue`.
#[derive(Debug, Serialize)]
struct TargetQueue {
    target: String,
    pending: u64,
    leased: u64,
    in_flight: usize,
    paused: Option<fanout::PauseReason>,
    paused_until: Option<String>,
}

/// A page of the DLQ.
#[derive(Debug, Serialize)]
struct DeadLetters {
    entries: Vec<alert_core::DeadLetter>,
    next_cursor: Option<DeadLetterId>,
}

/// The answer to a replay or a purge of one entry.
#[derive(Debug, Serialize)]
struct EntryDone<J> {
    status: &'static str,
    id: DeadLetterId,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<J>,
}

/// The answer to a replay of every entry a filter matches.
#[derive(Debug, Serialize)]
struct Replayed {
    replayed: usize,
    superseded: usize,
    gone: usize,
    replayed_ids: Vec<DeadLetterId>,
    superseded_ids: Vec<DeadLetterId>,
}

/// The DLQ filter and page, from the query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DlqQuery {
    target: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    /// Replay: the whole DLQ, with no filter.
    all: Option<bool>,
}

impl DlqQuery {
    /// Whether a filter narrows the entries.
    fn selects(&self) -> bool {
        self.target.is_some() || self.kind.is_some() || self.since.is_some() || self.until.is_some()
    }

    /// Whether nothing at all was given.
    fn is_empty(&self) -> bool {
        !self.selects() && self.cursor.is_none() && self.limit.is_none() && self.all.is_none()
    }

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

pub(super) const DLQ_PAGE_DEFAULT: usize = 100;
pub(super) const DLQ_PAGE_MAX: usize = 1000;

pub(super) async fn list_dead_letters(
    State(app): Shared,
    ApiQuery(query): ApiQuery<DlqQuery>,
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
    Ok(axum::Json(DeadLetters {
        entries: page.entries,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

pub(super) async fn replay_dead_letter(
    State(app): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = DeadLetterId(id);
    // The store tells the entry's lane of the job.
    let job = app.store.replay(&id, app.now()).await?;
    Ok(axum::Json(EntryDone {
        status: "replayed",
        id,
        job: Some(job),
    })
    .into_response())
}

/// `POST /api/v1/dlq/replay`: replays every entry matching the filter, given in the body or in the
/// query string (not both). The body is read whatever its framing. A replay of the whole DLQ must
/// say so with `all: true`: an empty filter is refused, so that a request whose filter was lost
/// (a client that sent it in a form we did not read, say) cannot replay everything. Superseded
/// entries are counted and kept.
pub(super) async fn replay_dead_letters(
    State(app): Shared,
    ApiQuery(query): ApiQuery<DlqQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = match read_optional_json(&app, request).await? {
        None => query,
        Some(_) if !query.is_empty() => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give the replay filter in the body or in the query string, not both",
            ));
        }
        Some(body) => serde_json::from_value::<DlqQuery>(body)
            .map_err(|err| ApiError::bad_request("invalid_schema", err.to_string()))?,
    };
    match (query.all, query.selects()) {
        (Some(true), true) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`all: true` replays the whole DLQ and takes no filter",
            ));
        }
        (Some(true), false) | (_, true) => {}
        (_, false) => {
            return Err(ApiError::bad_request(
                "unfiltered_replay",
                "a replay needs a filter (target, kind, since, until) or `all: true` to replay \
                 the whole DLQ",
            ));
        }
    }
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
    let now = app.now();
    for id in matched {
        match app.store.replay(&id, now).await {
            Ok(_) => replayed.push(id),
            Err(JobStoreError::Superseded) => superseded.push(id),
            Err(JobStoreError::NotFound) => missing += 1,
            Err(err) => return Err(err.into()),
        }
    }
    Ok(axum::Json(Replayed {
        replayed: replayed.len(),
        superseded: superseded.len(),
        gone: missing,
        replayed_ids: replayed,
        superseded_ids: superseded,
    })
    .into_response())
}

pub(super) async fn purge_dead_letter(
    State(app): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = DeadLetterId(id);
    app.store.purge(&id).await?;
    Ok(axum::Json(EntryDone::<()> {
        status: "deleted",
        id,
        job: None,
    })
    .into_response())
}

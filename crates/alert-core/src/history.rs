//! Delivery history: what became of every attempt to deliver an alert to a target, kept with a
//! bounded retention beside the queue, for `GET /api/v1/deliveries` and
//! `GET /api/v1/alerts/{fingerprint}` (Alertmanager's oldest open request: what was sent to whom,
//! and when).
//!
//! A record holds the alert's labels, the attempt, its outcome, the HTTP status, the error's
//! kind and the latency. Never an error message, a URL or a payload: those can carry what a
//! target answered, and a target's answer may echo a credential.
//!
//! The pure parts every store shares live here: the filter ([`HistoryFilter::matches`]), the
//! retention ([`HistoryRetention`]) and the paging ([`page`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::{JobStoreError, LogEntry};
use crate::{AlertStatus, BoxFuture, Fingerprint, Labels, Matcher, TargetName};

/// What an attempt came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The target accepted it.
    Delivered,
    /// The target refused it, failed, or did not answer in time.
    Failed,
}

/// Which path made the attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptPath {
    /// The queue's dispatcher (ingest, replays, auto-resolve).
    Queue,
    /// The synchronous publish API.
    Sync,
}

/// One attempt to deliver one alert to one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryRecord {
    /// Assigned by the store when it keeps the record: increasing, so newer records have
    /// larger ids; the cursor of a page.
    #[serde(default)]
    pub id: u64,
    /// When the attempt ended, by the one clock.
    #[serde(with = "crate::wire::timestamp")]
    pub at: DateTime<Utc>,
    /// The alert's fingerprint.
    pub fingerprint: Fingerprint,
    /// The alert's labels, for searches by matcher.
    pub labels: Labels,
    /// The target.
    pub target: TargetName,
    /// The state sent.
    pub status: AlertStatus,
    /// The attempt's number for this delivery, from 1.
    pub attempt: u32,
    /// What it came to.
    pub outcome: AttemptOutcome,
    /// The target's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The error's kind (`transient`, `rate_limited`, `permanent`, `timeout`, `cancelled`),
    /// when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// How long the call took, in milliseconds.
    pub latency_ms: u64,
    /// Which path made it.
    pub path: AttemptPath,
}

impl DeliveryRecord {
    /// A record of an attempt that ended at `at`, without an id yet.
    #[allow(clippy::too_many_arguments, reason = "one record, one field each")]
    #[must_use]
    pub fn new(
        at: DateTime<Utc>,
        fingerprint: Fingerprint,
        labels: Labels,
        target: TargetName,
        status: AlertStatus,
        attempt: u32,
        outcome: AttemptOutcome,
        path: AttemptPath,
    ) -> Self {
        Self {
            id: 0,
            at,
            fingerprint,
            labels,
            target,
            status,
            attempt,
            outcome,
            status_code: None,
            error_kind: None,
            latency_ms: 0,
            path,
        }
    }

    /// With the target's HTTP status, the error's kind and the call's latency.
    #[must_use]
    pub fn with_answer(
        mut self,
        status_code: Option<u16>,
        error_kind: Option<&str>,
        latency: Duration,
    ) -> Self {
        self.status_code = status_code;
        self.error_kind = error_kind.map(str::to_owned);
        self.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self
    }
}

/// Which records a search wants; every field set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only this alert's.
    pub fingerprint: Option<Fingerprint>,
    /// Only this target's.
    pub target: Option<String>,
    /// Only alerts whose labels match every one of these.
    pub matchers: Vec<Matcher>,
    /// Only attempts that ended at or after this.
    pub since: Option<DateTime<Utc>>,
}

impl HistoryFilter {
    /// Whether `record` is wanted.
    #[must_use]
    pub fn matches(&self, record: &DeliveryRecord) -> bool {
        self.fingerprint.is_none_or(|f| f == record.fingerprint)
            && self
                .target
                .as_deref()
                .is_none_or(|t| t == record.target.as_str())
            && self.since.is_none_or(|since| record.at >= since)
            && self.matchers.iter().all(|m| m.matches(&record.labels))
    }
}

/// How much history a store keeps: at most `max_records`, none older than `max_age`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRetention {
    /// The most records kept; the oldest go first.
    pub max_records: u64,
    /// The oldest record kept, by its `at`.
    pub max_age: Duration,
}

impl Default for HistoryRetention {
    /// 100 000 records (about 30 MB on disk), and three days.
    fn default() -> Self {
        Self {
            max_records: 100_000,
            max_age: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl HistoryRetention {
    /// Records that ended before this are dropped at `now`.
    #[must_use]
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX)
    }

    /// Whether a record that ended at `at` is still kept at `now`.
    #[must_use]
    pub fn keeps(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        at >= self.cutoff(now)
    }

    /// How many of `held` records must go, oldest first, for the count bound.
    #[must_use]
    pub fn over(&self, held: u64) -> u64 {
        held.saturating_sub(self.max_records)
    }
}

/// A page of history, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HistoryPage {
    /// The records, newest first.
    pub entries: Vec<DeliveryRecord>,
    /// Where the next page starts (records with smaller ids), if there may be more.
    pub next_cursor: Option<u64>,
}

/// At most this many records are read for one page, matching or not: a search that matches
/// little answers a short page with a cursor instead of reading the whole history at once.
pub const PAGE_SCAN: usize = 20_000;

/// Makes a page from `records` (newest first, every one older than the cursor): the first
/// `limit` that `filter` wants. The next cursor is the last record read when the page is full
/// or the scan stopped at [`PAGE_SCAN`]; none when `records` ran out.
pub fn page(
    records: impl IntoIterator<Item = DeliveryRecord>,
    filter: &HistoryFilter,
    limit: usize,
) -> HistoryPage {
    let limit = limit.max(1);
    let mut entries = Vec::new();
    let mut scanned = 0;
    for record in records {
        scanned += 1;
        let id = record.id;
        if filter.matches(&record) {
            entries.push(record);
        }
        if entries.len() >= limit || scanned >= PAGE_SCAN {
            return HistoryPage {
                entries,
                next_cursor: Some(id),
            };
        }
    }
    HistoryPage {
        entries,
        next_cursor: None,
    }
}

/// A store's delivery history, kept with the queue (in the same file or database), so it works
/// with every store backend and survives restarts of a durable one.
///
/// Recording is best effort: a record is written in a commit that does not wait for the disk,
/// and a crash may lose the last moments of history, never a job.
pub trait DeliveryHistory: Send + Sync + std::fmt::Debug + 'static {
    /// Keeps `records` (assigning their ids, in order), then drops what `retention` no longer
    /// keeps at `now`.
    fn record<'a>(
        &'a self,
        records: Vec<DeliveryRecord>,
        retention: HistoryRetention,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>>;

    /// The records `filter` wants, newest first, older than `cursor` (when given), at most
    /// `limit` (see [`page`]).
    fn deliveries<'a>(
        &'a self,
        filter: &'a HistoryFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, JobStoreError>>;

    /// The notification log's entries of one alert, by target.
    fn log_of(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<(TargetName, LogEntry)>, JobStoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, at: i64, target: &str, alertname: &str) -> DeliveryRecord {
        let labels: Labels = [("alertname".to_owned(), alertname.to_owned())]
            .into_iter()
            .collect();
        let mut record = DeliveryRecord::new(
            DateTime::from_timestamp(at, 0).unwrap(),
            Fingerprint::of(&labels),
            labels,
            TargetName::new(target).unwrap(),
            AlertStatus::Firing,
            1,
            AttemptOutcome::Delivered,
            AttemptPath::Queue,
        );
        record.id = id;
        record
    }

    #[test]
    fn the_filter_needs_every_field_it_sets() {
        let r = record(1, 100, "ops", "DiskFull");
        assert!(HistoryFilter::default().matches(&r));
        let by_target = HistoryFilter {
            target: Some("ops".to_owned()),
            ..HistoryFilter::default()
        };
        assert!(by_target.matches(&r));
        let other = HistoryFilter {
            target: Some("pager".to_owned()),
            ..HistoryFilter::default()
        };
        assert!(!other.matches(&r));
        let matcher = HistoryFilter {
            matchers: vec!["alertname=~\"Disk.*\"".parse().unwrap()],
            since: DateTime::from_timestamp(100, 0),
            ..HistoryFilter::default()
        };
        assert!(matcher.matches(&r));
        let later = HistoryFilter {
            since: DateTime::from_timestamp(101, 0),
            ..HistoryFilter::default()
        };
        assert!(!later.matches(&r));
    }

    #[test]
    fn a_page_stops_at_its_limit_and_says_where_to_go_on() {
        let records: Vec<_> = (1..=10)
            .rev()
            .map(|id| {
                record(
                    id,
                    100 + id as i64,
                    if id % 2 == 0 { "a" } else { "b" },
                    "X",
                )
            })
            .collect();
        let even = HistoryFilter {
            target: Some("a".to_owned()),
            ..HistoryFilter::default()
        };
        let first = page(records.clone(), &even, 2);
        assert_eq!(
            first.entries.iter().map(|r| r.id).collect::<Vec<_>>(),
            [10, 8]
        );
        assert_eq!(first.next_cursor, Some(8));
        let rest: Vec<_> = records.into_iter().filter(|r| r.id < 8).collect();
        let second = page(rest, &even, 10);
        assert_eq!(
            second.entries.iter().map(|r| r.id).collect::<Vec<_>>(),
            [6, 4, 2]
        );
        assert_eq!(second.next_cursor, None);
    }

    #[test]
    fn retention_keeps_by_age_and_by_count() {
        let retention = HistoryRetention {
            max_records: 3,
            max_age: Duration::from_secs(60),
        };
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        assert!(retention.keeps(DateTime::from_timestamp(940, 0).unwrap(), now));
        assert!(!retention.keeps(DateTime::from_timestamp(939, 0).unwrap(), now));
        assert_eq!(retention.over(5), 2);
        assert_eq!(retention.over(3), 0);
    }
}

//! The job store contract: how ingest hands work to the dispatcher, and where the notification log
//! and the dead-letter queue live.
//!
//! A [`JobStore`] keeps one job per (target, fingerprint) and the notification log beside it. It is
//! batch- and lease-shaped:
//! - ingest calls [`IngestQueue::enqueue_batch`] once per request; the notification-log check, the
//!   supersede of an older pending state and the log update happen in the same commit as the jobs;
//! - each dispatcher lane calls [`LaneQueue::lease`] for its own target, and settles every leased
//!   job with exactly one of [`ack`](LaneQueue::ack), [`reschedule`](LaneQueue::reschedule) or
//!   [`dead_letter`](LaneQueue::dead_letter);
//! - operators read and replay the dead-letter queue;
//! - a maintenance task calls [`QueueMaintenance::sweep`] every few seconds to auto-resolve firing alerts
//!   that stopped arriving, re-forward firing alerts to Alertmanager targets, and expire old log
//!   entries; config reload calls [`QueueMaintenance::dead_letter_target`] once a removed target's grace
//!   period is over.
//!
//! The decision of whether an incoming alert becomes a job is the pure function
//! [`log_decision`], so every backend decides the same way.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::{AlertStatus, EnrichedAlert, Severity};
use crate::error::ErrorKind;
use crate::publisher::{BoxFuture, Delivery};
use crate::target::{TargetKind, TargetName};

// === Jobs ===

/// A job's identity inside one store. Ids are never reused by a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A dead-letter entry's identity: a UUIDv7 in its canonical hyphenated text form, so ids sort by
/// the time they were made.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeadLetterId(pub String);

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How urgently a job is delivered. Higher priorities are leased first; lower ones still get a
/// share (see [`Priority::share`]), so a flood of critical alerts cannot starve resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Firing critical alerts.
    High,
    /// Everything that is neither high nor low.
    Medium,
    /// Resolved alerts and info alerts.
    Low,
}

impl Priority {
    /// All priorities, highest first.
    pub const ALL: [Self; 3] = [Self::High, Self::Medium, Self::Low];

    /// The priority of `alert` in `status`: high for a firing critical alert (by its `severity`
    /// label or its classification), low for a resolved alert or an info one, medium otherwise.
    #[must_use]
    pub fn of(alert: &EnrichedAlert, status: AlertStatus) -> Self {
        if status == AlertStatus::Resolved {
            return Self::Low;
        }
        let label = alert.alert.label("severity").map(str::to_ascii_lowercase);
        let classified = alert.classification.as_ref().map(|c| c.severity);
        if label.as_deref() == Some("critical") || classified == Some(Severity::Critical) {
            Self::High
        } else if matches!(label.as_deref(), Some("info" | "none"))
            || matches!(classified, Some(Severity::Info | Severity::Noise))
        {
            Self::Low
        } else {
            Self::Medium
        }
    }

    /// Out of every 16 jobs a lane leases while all three levels are waiting, how many each level
    /// gets: high 12, medium 3, low 1. A level with nothing waiting gives its share to the others.
    #[must_use]
    pub const fn share(self) -> u32 {
        match self {
            Self::High => 12,
            Self::Medium => 3,
            Self::Low => 1,
        }
    }

    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

/// One alert offered for one target by ingest.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Admission {
    /// The target the job is for.
    pub target: TargetName,
    /// The normalised alert. Its `ends_at` is the effective one: what the sender set or, for a
    /// firing alert that set none, "now + resolve_timeout". Shared by the admissions an alert
    /// makes for its targets, so ingest copies it once, not once per target.
    pub alert: Arc<EnrichedAlert>,
    /// Whether the sender left `startsAt` unset (or zero). A re-sent firing alert then keeps the
    /// `startsAt` of its active log entry, as Alertmanager merges, and is not a new occurrence.
    pub starts_at_defaulted: bool,
    /// The target's repeat interval; `None` means never repeat.
    pub repeat_interval: Option<Duration>,
    /// Skip the notification-log check: the synchronous API's `enqueue_failed` asked for this send.
    pub bypass_log: bool,
}

impl Admission {
    /// An admission of `alert` for `target`, checked against the log.
    #[must_use]
    pub fn new(
        target: TargetName,
        alert: impl Into<Arc<EnrichedAlert>>,
        repeat_interval: Option<Duration>,
    ) -> Self {
        Self {
            target,
            alert: alert.into(),
            starts_at_defaulted: false,
            repeat_interval,
            bypass_log: false,
        }
    }

    /// Marks the alert's `startsAt` as defaulted by normalisation.
    #[must_use]
    pub fn with_starts_at_defaulted(mut self, defaulted: bool) -> Self {
        self.starts_at_defaulted = defaulted;
        self
    }

    /// Skips the notification-log check.
    #[must_use]
    pub fn bypassing_log(mut self) -> Self {
        self.bypass_log = true;
        self
    }
}

/// What became of one [`Admission`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admitted {
    /// A job was committed.
    Enqueued {
        /// The new job.
        job: JobId,
        /// The delivery sequence the job carries (see [`Delivery::sequence`]).
        sequence: u64,
        /// The older live job of the same (target, fingerprint) that this one replaced. A pending
        /// one is removed at once; a leased one is removed when its lane settles it, and this job
        /// is not leased before then.
        superseded: Option<JobId>,
    },
    /// The notification log says the target already has this state; nothing was enqueued.
    Duplicate,
    /// The target's queue holds its quota of live jobs (`queue.max_jobs_per_target`), so this
    /// admission was refused while the batch's other admissions were committed. Nothing of it
    /// was committed and its log entry was left as it was, so a re-send of the same alert is
    /// admitted once the target's queue has room (and, for the other targets, is a duplicate).
    TargetFull {
        /// The quota of the target.
        max_jobs_per_target: u64,
    },
}

impl Admitted {
    /// Whether a job was committed.
    #[must_use]
    pub const fn is_enqueued(&self) -> bool {
        matches!(self, Self::Enqueued { .. })
    }

    /// Whether the admission was refused because its target's queue is full.
    #[must_use]
    pub const fn is_refused(&self) -> bool {
        matches!(self, Self::TargetFull { .. })
    }
}

/// A job handed to a dispatcher lane by [`LaneQueue::lease`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LeasedJob {
    /// The job.
    pub id: JobId,
    /// Its target.
    pub target: TargetName,
    /// The alert to publish, as accepted. Shared: the jobs an alert made for its targets, and
    /// the store that holds it, all point at one copy.
    pub alert: Arc<EnrichedAlert>,
    /// The state the job was made for, fixed when it was made: a firing job leased after its
    /// alert's `endsAt` has passed (it waited out an outage) is still a firing. If the alert
    /// resolved meanwhile, the resolve superseded this job.
    pub status: AlertStatus,
    /// The delivery sequence and this attempt's number (1 for the first attempt).
    pub delivery: Delivery,
    /// Its priority.
    pub priority: Priority,
    /// When ingest committed it.
    pub enqueued_at: DateTime<Utc>,
}

impl LeasedJob {
    /// A leased job; for backends.
    #[must_use]
    pub fn new(
        id: JobId,
        target: TargetName,
        alert: impl Into<Arc<EnrichedAlert>>,
        status: AlertStatus,
        delivery: Delivery,
        priority: Priority,
        enqueued_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            target,
            alert: alert.into(),
            status,
            delivery,
            priority,
            enqueued_at,
        }
    }
}

/// What a lease returned.
#[derive(Clone, Debug, Default)]
pub struct Lease {
    /// The leased jobs, in the order they should be started.
    pub jobs: Vec<LeasedJob>,
    /// When the earliest job of this target that is not due yet becomes due, if there is one. A
    /// lane with nothing to do may sleep until then (or until it is woken).
    pub next_due: Option<DateTime<Utc>>,
    /// The store has no job of this target left, pending or leased, and will announce the next
    /// one ([`LaneQueue::on_new_work`]): its lane may end until then. `false` when the store
    /// cannot tell, and the lane keeps polling.
    pub drained: bool,
}

/// The last failure of a job, as kept with it and in the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// The classification.
    pub kind: ErrorKind,
    /// The HTTP status the target answered, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// A readable message, free of secrets.
    pub message: String,
}

/// How a job is put back by [`LaneQueue::reschedule`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reschedule {
    /// When it may be leased again.
    pub not_before: DateTime<Utc>,
    /// Whether the attempt that just ended counts: a gate (open breaker, unhealthy target, 429)
    /// delays a job without consuming an attempt.
    pub consume_attempt: bool,
    /// The failure that caused it, if any.
    pub error: Option<JobError>,
}

impl Reschedule {
    /// Due again at `not_before`; `consume_attempt` says whether the attempt that just ended counts.
    #[must_use]
    pub const fn new(not_before: DateTime<Utc>, consume_attempt: bool) -> Self {
        Self {
            not_before,
            consume_attempt,
            error: None,
        }
    }

    /// Records the failure that caused it.
    #[must_use]
    pub fn with_error(mut self, error: JobError) -> Self {
        self.error = Some(error);
        self
    }
}

/// Why a job went to the dead-letter queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadReason {
    /// It failed `max_attempts` times.
    Exhausted,
    /// It failed permanently.
    Permanent,
    /// It was older than `queue.max_age`.
    Expired,
    /// Its target was removed from the configuration.
    TargetRemoved,
}

impl DeadReason {
    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Exhausted => "exhausted",
            Self::Permanent => "permanent",
            Self::Expired => "expired",
            Self::TargetRemoved => "target_removed",
        }
    }
}

// === Dead-letter queue ===

/// One entry of the dead-letter queue. It holds the target's name, never its credentials.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id.
    pub id: DeadLetterId,
    /// The target it was for.
    pub target: TargetName,
    /// The target's kind when it died.
    pub kind: TargetKind,
    /// The alert.
    pub alert: EnrichedAlert,
    /// The state its job was made for, which a replay sends; see [`LeasedJob::status`].
    pub status: AlertStatus,
    /// Why it is here.
    pub reason: DeadReason,
    /// The last failure, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<JobError>,
    /// Attempts made.
    pub attempts: u32,
    /// The delivery sequence it carried.
    pub sequence: u64,
    /// When ingest accepted it.
    #[serde(with = "crate::wire::timestamp")]
    pub enqueued_at: DateTime<Utc>,
    /// When it was dead-lettered.
    #[serde(with = "crate::wire::timestamp")]
    pub dead_at: DateTime<Utc>,
}

impl DeadLetter {
    /// An entry made at `dead_at`, with no error, no attempts, sequence 0, `enqueued_at` equal
    /// to `dead_at` and the alert's status at `dead_at`; backends set the other public fields
    /// after.
    #[must_use]
    pub fn new(
        id: DeadLetterId,
        target: TargetName,
        kind: TargetKind,
        alert: EnrichedAlert,
        reason: DeadReason,
        dead_at: DateTime<Utc>,
    ) -> Self {
        let status = alert.alert.status_at(dead_at);
        Self {
            id,
            target,
            kind,
            alert,
            status,
            reason,
            last_error: None,
            attempts: 0,
            sequence: 0,
            enqueued_at: dead_at,
            dead_at,
        }
    }
}

/// A filter over the dead-letter queue. Empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterFilter {
    /// Only this target.
    pub target: Option<String>,
    /// Only this kind.
    pub kind: Option<TargetKind>,
    /// Only entries dead-lettered at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries dead-lettered before this time.
    pub until: Option<DateTime<Utc>>,
}

impl DeadLetterFilter {
    /// Whether `entry` passes the filter.
    #[must_use]
    pub fn matches(&self, entry: &DeadLetter) -> bool {
        self.target
            .as_deref()
            .is_none_or(|t| entry.target.as_str() == t)
            && self.kind.is_none_or(|k| entry.kind == k)
            && self.since.is_none_or(|s| entry.dead_at >= s)
            && self.until.is_none_or(|u| entry.dead_at < u)
    }
}

/// One page of the dead-letter queue, oldest first.
#[derive(Clone, Debug, Default)]
pub struct DeadLetterPage {
    /// The entries.
    pub entries: Vec<DeadLetter>,
    /// Pass this as the next call's cursor to continue; `None` at the end.
    pub next_cursor: Option<DeadLetterId>,
}

// === Stats ===

/// Counts for `/api/v1/queue` and the queue metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Live jobs (pending or leased) by priority: high, medium, low.
    pub by_priority: [u64; 3],
    /// Live jobs by target: (name, pending, leased), sorted by name.
    pub by_target: Vec<TargetQueueStats>,
    /// Entries in the dead-letter queue.
    pub dead_letters: u64,
    /// When the oldest live job (pending or leased) was enqueued; `None` when there is none.
    #[serde(with = "crate::wire::timestamp_opt")]
    pub oldest_enqueued_at: Option<DateTime<Utc>>,
}

impl QueueStats {
    /// All live jobs.
    #[must_use]
    pub fn depth(&self) -> u64 {
        self.by_priority.iter().sum()
    }
}

/// One target's line in [`QueueStats`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetQueueStats {
    /// The target.
    pub target: String,
    /// Jobs waiting (due or not).
    pub pending: u64,
    /// Jobs leased to a lane now.
    pub leased: u64,
}

// === Maintenance ===

/// The default for [`SweepPlan::max_jobs_per_pass`].
const DEFAULT_MAX_JOBS_PER_PASS: usize = 1_000;

/// What one maintenance pass does; see [`QueueMaintenance::sweep`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SweepPlan {
    /// The targets that currently exist and are enabled, each with its refresh interval. The
    /// interval is `Some` only for kind alertmanager: a firing alert is re-forwarded every
    /// interval, whatever its `repeat_interval`, because an Alertmanager resolves an alert that
    /// is not refreshed. A zero interval never refreshes. Log entries of targets not listed get
    /// neither resolve nor refresh jobs (their lanes are paused or gone), but still expire.
    pub targets: Vec<(TargetName, Option<Duration>)>,
    /// Log entries older than this (by `accepted_at`, and for firing ones also past their
    /// `ends_at`) are dropped. Zero keeps them forever.
    pub log_retention: Duration,
    /// At most this many jobs are made in one pass, which bounds the commit; the rest wait for the
    /// next pass. The same bound applies, separately, to the jobs a pass moves to the dead-letter
    /// queue.
    pub max_jobs_per_pass: usize,
    /// Live jobs older than this (by `enqueued_at`) go to the dead-letter queue as
    /// [`DeadReason::Expired`], whether or not their target has a lane; `None` keeps them.
    pub max_age: Option<Duration>,
    /// Every target of the current set, enabled or not, with its kind; `None` leaves removed
    /// targets alone. With it, the store records the set (persistently, in a durable store), and
    /// a target that has left it, even while the store was closed, has its live jobs moved to
    /// the dead-letter queue as [`DeadReason::TargetRemoved`] once `removal_grace` has passed
    /// since a pass first found it gone. A target that comes back before then keeps its jobs.
    pub known_targets: Option<Vec<(TargetName, TargetKind)>>,
    /// See [`known_targets`](Self::known_targets).
    pub removal_grace: Duration,
}

impl SweepPlan {
    /// A plan for `targets` that keeps log entries for `log_retention` and makes at most 1,000
    /// jobs per pass.
    #[must_use]
    pub fn new(targets: Vec<(TargetName, Option<Duration>)>, log_retention: Duration) -> Self {
        Self {
            targets,
            log_retention,
            max_jobs_per_pass: DEFAULT_MAX_JOBS_PER_PASS,
            max_age: None,
            known_targets: None,
            removal_grace: Duration::ZERO,
        }
    }

    /// Moves live jobs older than `max_age` to the dead-letter queue as expired.
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Tracks the target set `known` (every target, enabled or not) and moves a removed target's
    /// jobs to the dead-letter queue `grace` after a pass first found it gone.
    #[must_use]
    pub fn with_known_targets(
        mut self,
        known: Vec<(TargetName, TargetKind)>,
        grace: Duration,
    ) -> Self {
        self.known_targets = Some(known);
        self.removal_grace = grace;
        self
    }

    /// Makes at most `n` jobs per pass.
    #[must_use]
    pub fn with_max_jobs_per_pass(mut self, n: usize) -> Self {
        self.max_jobs_per_pass = n;
        self
    }

    /// The refresh interval of `target`: `None` when the plan does not list it, `Some(None)` when
    /// it is listed without one.
    #[must_use]
    pub fn target(&self, target: &str) -> Option<Option<Duration>> {
        self.targets
            .iter()
            .find(|(name, _)| name.as_str() == target)
            .map(|(_, interval)| *interval)
    }
}

/// What one [`QueueMaintenance::sweep`] pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Resolve jobs made for firing alerts whose `endsAt` passed without a refresh.
    pub resolved: u64,
    /// Refresh jobs made for firing alerts of targets with a refresh interval.
    pub refreshed: u64,
    /// Notification-log entries dropped by the retention window.
    pub expired_log_entries: u64,
    /// Live jobs moved to the dead-letter queue because they were older than
    /// [`SweepPlan::max_age`].
    pub expired_jobs: u64,
    /// Live jobs of removed targets moved to the dead-letter queue once the grace period was
    /// over.
    pub removed_jobs: u64,
    /// The targets that got new jobs, sorted and without repeats, so their lanes can be woken.
    pub targets: Vec<TargetName>,
}

/// What a sweep does with one notification-log entry; the rule every [`JobStore`] shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SweepAction {
    /// Make a resolve job: the entry is firing and its effective `endsAt` has passed. `since` is
    /// that `endsAt`, so the longest-overdue work goes first when a pass is bounded.
    Resolve {
        /// The entry's `endsAt`.
        since: DateTime<Utc>,
    },
    /// Re-forward the firing alert: its target's refresh interval has passed since the entry was
    /// accepted. `since` is when it became due.
    Refresh {
        /// When the refresh became due.
        since: DateTime<Utc>,
    },
    /// Drop the entry: it is past the retention window.
    Expire,
    /// Leave the entry alone.
    Keep,
}

/// The sweep's rule for one log entry. `target` is the entry's target as the plan lists it:
/// `None` when the plan does not list it, else its refresh interval (see [`SweepPlan::target`]).
///
/// A firing entry of a listed target whose `ends_at` is at or before `now` resolves; one still
/// firing refreshes when the target has a non-zero interval and `accepted_at + interval <= now`.
/// Otherwise the entry expires when `retention` is non-zero, `accepted_at + retention <= now` and
/// it is resolved or its `ends_at` is at or before `now - retention`.
#[must_use]
pub fn sweep_action(
    entry: &LogEntry,
    target: Option<Option<Duration>>,
    retention: Duration,
    now: DateTime<Utc>,
) -> SweepAction {
    let plus = |at: DateTime<Utc>, d: Duration| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| at.checked_add_signed(d))
    };
    if let Some(interval) = target
        && entry.status == AlertStatus::Firing
    {
        match entry.ends_at {
            Some(ends_at) if ends_at <= now => return SweepAction::Resolve { since: ends_at },
            // Firing with no end, or an end still ahead: a refresh keeps the upstream from
            // resolving it on its own.
            _ => {
                if let Some(due) = interval
                    .filter(|i| !i.is_zero())
                    .and_then(|i| plus(entry.accepted_at, i))
                    && due <= now
                {
                    return SweepAction::Refresh { since: due };
                }
            }
        }
    }
    let expired = !retention.is_zero()
        && plus(entry.accepted_at, retention).is_some_and(|until| until <= now)
        && (entry.status == AlertStatus::Resolved
            || entry
                .ends_at
                .is_some_and(|ends_at| plus(ends_at, retention).is_some_and(|u| u <= now)));
    if expired {
        SweepAction::Expire
    } else {
        SweepAction::Keep
    }
}

/// The first instant at which [`sweep_action`] stops answering [`SweepAction::Keep`] for this
/// entry, as long as the entry and the plan do not change: `None` when that never happens. An
/// entry that is due already has a `due` at or before `now`.
///
/// A store that keeps many entries uses it to skip whole sweeps: the earliest `due` of all its
/// entries is when the next pass can find work, and a change of an entry (or of the plan) can
/// only bring that instant forward through the changed entry's own `due`.
#[must_use]
pub fn sweep_due(
    entry: &LogEntry,
    target: Option<Option<Duration>>,
    retention: Duration,
) -> Option<DateTime<Utc>> {
    let plus = |at: DateTime<Utc>, d: Duration| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| at.checked_add_signed(d))
    };
    let mut due: Option<DateTime<Utc>> = None;
    let mut earliest = |at: Option<DateTime<Utc>>| {
        if let Some(at) = at {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
    };
    if let Some(interval) = target
        && entry.status == AlertStatus::Firing
    {
        earliest(entry.ends_at);
        earliest(
            interval
                .filter(|i| !i.is_zero())
                .and_then(|i| plus(entry.accepted_at, i)),
        );
    }
    if !retention.is_zero() {
        let kept_until = plus(entry.accepted_at, retention);
        let expires = match entry.status {
            AlertStatus::Resolved => kept_until,
            AlertStatus::Firing => entry
                .ends_at
                .and_then(|ends_at| plus(ends_at, retention))
                .and_then(|after_end| kept_until.map(|k| k.max(after_end))),
        };
        earliest(expires);
    }
    due
}

// === Errors ===

/// Why a job store call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobStoreError {
    /// The store holds `max_jobs` live jobs; the whole batch was refused and nothing was persisted.
    #[error("the queue is full ({max_jobs} jobs)")]
    Full {
        /// The configured bound.
        max_jobs: u64,
    },
    /// Taking the batch would make the notification log hold more than `max_active_alerts`
    /// entries (one per (target, fingerprint)); the whole batch was refused and nothing was
    /// persisted. Re-sends of alerts the log holds add no entry and are not refused.
    #[error("the notification log holds its most active alerts ({max_active_alerts})")]
    TooManyActiveAlerts {
        /// The configured bound.
        max_active_alerts: u64,
    },
    /// The target holds `max_jobs_per_target` live jobs; the call (a replay) was refused.
    #[error("the queue of target {target} is full ({max_jobs_per_target} jobs)")]
    TargetFull {
        /// The target.
        target: TargetName,
        /// The configured bound.
        max_jobs_per_target: u64,
    },
    /// The storage failed (for example, the disk is full); nothing of the call was persisted.
    /// [`StorageError::kind`] says which way it failed, and its source is the cause, if any.
    #[error(transparent)]
    Storage(StorageError),
    /// No such job or dead-letter entry.
    #[error("not found")]
    NotFound,
    /// A dead-letter entry cannot be replayed because a newer state of the same (target,
    /// fingerprint) has been accepted since.
    #[error("a newer state of this alert has been accepted since")]
    Superseded,
}

impl JobStoreError {
    /// A storage failure of this kind.
    #[must_use]
    pub fn storage(kind: StorageKind, message: impl Into<String>) -> Self {
        Self::Storage(StorageError::new(kind, message))
    }

    /// The storage failure's kind, if this is one.
    #[must_use]
    pub fn storage_kind(&self) -> Option<StorageKind> {
        match self {
            Self::Storage(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// Which way a store's storage failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StorageKind {
    /// Reading or writing the store's files failed: a full disk, an I/O error.
    Io,
    /// The store's database cannot be reached, or refuses the store's connections, for now.
    Unavailable,
    /// A record or the file is damaged, or in a format this build does not read.
    Corrupt,
    /// A value could not be encoded for storage.
    Encoding,
    /// The call lost a race with another writer of a shared database (a deadlock, a
    /// serialization failure): nothing of it was persisted, and it may be tried again at once.
    Contended,
    /// The store cannot work until it heals or is restarted: its writer stopped, its state is
    /// poisoned, or its last commit failed and nothing can be persisted until one succeeds.
    Broken,
}

impl StorageKind {
    /// The kind's name, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::Unavailable => "unavailable",
            Self::Corrupt => "corrupt",
            Self::Encoding => "encoding",
            Self::Contended => "contended",
            Self::Broken => "broken",
        }
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage failure: its kind, what failed, and the underlying error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the queue's storage failed: {message}")]
pub struct StorageError {
    kind: StorageKind,
    message: String,
    #[source]
    source: Option<StorageCause>,
}

impl StorageError {
    /// A failure of `kind`, described by `message`.
    #[must_use]
    pub fn new(kind: StorageKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same failure, caused by `cause`.
    #[must_use]
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(StorageCause(Arc::new(cause)));
        self
    }

    /// Which way the storage failed.
    #[must_use]
    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// What failed, without the kind or the cause.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The underlying error of a [`StorageError`], shared so the error stays `Clone`. Two causes are
/// equal when they read the same.
#[derive(Clone, Debug)]
pub struct StorageCause(Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Display for StorageCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StorageCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for StorageCause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for StorageCause {}

// === The traits ===

/// Where a store announces new work: it calls this with each target that got jobs it can lease
/// now (an ingest batch's, a replay's, a sweep's resolves and refreshes), once they can be leased.
pub type NewWork = Arc<dyn Fn(&TargetName) + Send + Sync>;

/// The durable queue contract, as one store offers it: the union of what each caller uses,
/// ingest ([`IngestQueue`]), the dispatcher's lanes ([`LaneQueue`]), the dead-letter admin
/// ([`DeadLetterQueue`]) and maintenance ([`QueueMaintenance`]). Every type that implements the
/// four is a `JobStore`. See the module docs; the `job-contract` crate holds the tests every
/// backend must pass.
///
/// Times are passed in (`now`), so stores never read a clock of their own and tests control time.
pub trait JobStore: IngestQueue + LaneQueue + DeadLetterQueue + QueueMaintenance {}

impl<T: IngestQueue + LaneQueue + DeadLetterQueue + QueueMaintenance + ?Sized> JobStore for T {}

/// What ingest uses of a [`JobStore`]: committing admitted alerts.
pub trait IngestQueue: Send + Sync + fmt::Debug + 'static {
    /// Commits one batch: for each admission, the notification-log check ([`log_decision`]), the
    /// job, the supersede of a pending job of the same (target, fingerprint), and the log update,
    /// all in one commit. Either the whole batch is committed or, on error, nothing is.
    ///
    /// Bounds: a store may hold at most `max_jobs` live jobs ([`JobStoreError::Full`]) and at
    /// most `max_active_alerts` log entries ([`JobStoreError::TooManyActiveAlerts`]); either
    /// refuses the whole batch. A store with a per-target quota refuses only the admissions
    /// that would add a job to a target already holding its quota ([`Admitted::TargetFull`]:
    /// nothing of them is written, the log entry included) and commits the rest of the batch.
    /// Admissions that replace a pending job, or are duplicates, add no job and are never
    /// refused for a quota.
    ///
    /// The answer has one entry per admission, in order.
    fn enqueue_batch<'a>(
        &'a self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Admitted>, JobStoreError>>;
}

/// What the dispatcher's lanes use of a [`JobStore`]: leasing due jobs and settling them, and
/// hearing of new work.
pub trait LaneQueue: Send + Sync + fmt::Debug + 'static {
    /// Leases up to `n` due jobs of `target` for `ttl`. A job whose lease expires without being
    /// settled becomes leasable again (after a crash, for example). Jobs are returned by
    /// priority, with each level's [`share`](Priority::share), then by due time. A job is never
    /// leased while another job of the same (target, fingerprint) is leased, so a newer state
    /// cannot overtake an older one in flight.
    fn lease<'a>(
        &'a self,
        target: &'a TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease, JobStoreError>>;

    /// The job was delivered: it is removed. Settling a job that no longer exists (superseded
    /// while in flight, or settled twice) succeeds and does nothing.
    fn ack<'a>(
        &'a self,
        job: JobId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>>;

    /// The job is put back, due at `how.not_before`. A job superseded while it was in flight is
    /// removed instead, since its newer state is already queued.
    fn reschedule<'a>(
        &'a self,
        job: JobId,
        how: Reschedule,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>>;

    /// The job moves to the dead-letter queue (unless it was superseded, in which case it is
    /// simply removed). Returns the new entry's id, if one was made.
    fn dead_letter<'a>(
        &'a self,
        job: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DeadLetterId>, JobStoreError>>;

    /// Calls `announce` from now on with each target that gets jobs it can lease now, once they
    /// can be leased (see [`NewWork`]), so a lane need not poll for them. A store announces
    /// only to the last `announce` it was given.
    fn on_new_work(&self, announce: NewWork);
}

/// What the dead-letter admin uses of a [`JobStore`].
pub trait DeadLetterQueue: Send + Sync + fmt::Debug + 'static {
    /// Lists dead letters matching `filter`, oldest first, after `cursor`, at most `limit`.
    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        cursor: Option<&'a DeadLetterId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<DeadLetterPage, JobStoreError>>;

    /// Puts dead letter `id` back in the queue as a new job with fresh attempts, due now, and
    /// removes it from the dead-letter queue. [`JobStoreError::Superseded`] when a newer state of
    /// the same (target, fingerprint) was accepted after it; [`JobStoreError::NotFound`] when
    /// there is no such entry.
    fn replay<'a>(
        &'a self,
        id: &'a DeadLetterId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobId, JobStoreError>>;

    /// Removes dead letter `id`. [`JobStoreError::NotFound`] when there is no such entry.
    fn purge<'a>(&'a self, id: &'a DeadLetterId) -> BoxFuture<'a, Result<(), JobStoreError>>;
}

/// What maintenance (the sweeper, the removal of targets, health and metrics) uses of a
/// [`JobStore`].
pub trait QueueMaintenance: Send + Sync + fmt::Debug + 'static {
    /// Counts of live jobs and dead letters.
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, JobStoreError>>;

    /// One maintenance pass over the notification log, committed at once with the same
    /// durability as [`enqueue_batch`](IngestQueue::enqueue_batch). Each entry is handled as
    /// [`sweep_action`] says:
    /// - **auto-resolve:** a firing entry of a target in `plan.targets` whose effective `ends_at`
    ///   is at or before `now` (it was not refreshed) becomes a resolve job: the last accepted
    ///   alert with that `ends_at`, low priority, delivery sequence `entry.sequence + 1`. The
    ///   entry becomes resolved with that sequence and `accepted_at = now`. A pending job of the
    ///   same (target, fingerprint) is superseded as by `enqueue_batch`; a leased one is
    ///   superseded in flight and the resolve waits for it.
    /// - **refresh:** for targets with a refresh interval, a firing entry with `ends_at` after
    ///   `now` and `accepted_at + interval <= now` gets a job with the last accepted alert (its
    ///   `ends_at` set to the entry's), sequence + 1, `accepted_at = now`; skipped while a live
    ///   job of that (target, fingerprint) exists.
    /// - **retention:** entries past `plan.log_retention` are dropped with their stored alert.
    /// - **max age:** with `plan.max_age`, every live job older than it (by `enqueued_at`) moves
    ///   to the dead-letter queue as [`DeadReason::Expired`], whatever its target (removed,
    ///   disabled, without a lane), except a job whose lease is still running: its lane
    ///   settles it. The entry takes the kind the store recorded for the target.
    /// - **removed targets:** with `plan.known_targets`, the store records the set; a target
    ///   that left it (or that has live jobs and was never recorded) is marked removed at `now`
    ///   the first time a pass finds it gone, and its live jobs move to the dead-letter queue as
    ///   [`DeadReason::TargetRemoved`] once `plan.removal_grace` has passed since (the marks
    ///   survive a restart of a durable store). A target back in the set is unmarked.
    ///
    /// Dead-lettering is bounded by `plan.max_jobs_per_pass` too, oldest jobs first; the rest
    /// waits for the next pass.
    ///
    /// Jobs count against `max_jobs` and `plan.max_jobs_per_pass`: when a bound is reached the
    /// pass makes as many as fit, longest overdue first, and leaves the rest (and their entries)
    /// for a later pass rather than failing.
    fn sweep<'a>(
        &'a self,
        plan: &'a SweepPlan,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<SweepReport, JobStoreError>>;

    /// How the store is doing, from memory: whether it can persist work (readiness), whether it
    /// can heal by itself (liveness), and the records it set aside. A store with nothing to
    /// report is always healthy.
    fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }

    /// Moves every live job of `target` to the dead-letter queue with `reason` (the server calls
    /// it with [`DeadReason::TargetRemoved`] once a removed target's grace period is over), in
    /// one commit with full durability. Leased jobs are moved too; settling one later is a no-op.
    /// A leased job that a newer state superseded is removed without an entry, as
    /// [`dead_letter`](LaneQueue::dead_letter) does, since its successor is moved. Each entry keeps
    /// the job's attempts (counting the one in flight, as `dead_letter` does) and its recorded
    /// last error. Returns how many jobs were moved.
    fn dead_letter_target<'a>(
        &'a self,
        target: &'a TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, JobStoreError>>;
}

// === The notification log ===

/// What the notification log remembers for one (target, fingerprint): the last state accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The status accepted.
    pub status: AlertStatus,
    /// Its `startsAt`.
    #[serde(with = "crate::wire::timestamp")]
    pub starts_at: DateTime<Utc>,
    /// Its effective `endsAt` (for a firing alert without one: when it resolves on its own).
    #[serde(default, with = "crate::wire::timestamp_opt")]
    pub ends_at: Option<DateTime<Utc>>,
    /// The delivery sequence of the last job made from it.
    pub sequence: u64,
    /// When that job was accepted.
    #[serde(with = "crate::wire::timestamp")]
    pub accepted_at: DateTime<Utc>,
}

/// Whether an incoming alert becomes a job, and with what.
#[derive(Clone, Debug, PartialEq)]
pub enum LogDecision {
    /// Enqueue `alert`, with delivery sequence `sequence`, and store `entry` as the new log entry.
    Enqueue {
        /// The alert to enqueue: the incoming one, with its `startsAt` merged when it was
        /// defaulted and the log holds an active firing entry.
        alert: Box<EnrichedAlert>,
        /// The new delivery sequence.
        sequence: u64,
        /// The log entry to store.
        entry: LogEntry,
    },
    /// Nothing to send. `refresh` is the log entry to store instead (a re-sent firing alert
    /// extends its effective `endsAt`), when it changed.
    Duplicate {
        /// The updated entry, when the incoming alert changed it.
        refresh: Option<LogEntry>,
    },
}

/// What [`log_decision`] decides, without the alert: a backend that keeps the alert it already
/// has (stored once for many targets, say) need not copy it for every admission.
#[derive(Clone, Debug, PartialEq)]
pub enum LogVerdict {
    /// Enqueue the incoming alert, with delivery sequence `sequence`, and store `entry`.
    Enqueue {
        /// `Some` when the alert's `startsAt` was defaulted and takes the active firing entry's
        /// instead: the alert to enqueue is the incoming one with this `startsAt`.
        merged_starts_at: Option<DateTime<Utc>>,
        /// The new delivery sequence.
        sequence: u64,
        /// The log entry to store.
        entry: LogEntry,
    },
    /// Nothing to send; see [`LogDecision::Duplicate`].
    Duplicate {
        /// The updated entry, when the incoming alert changed it.
        refresh: Option<LogEntry>,
    },
}

/// The notification log's rule, shared by every [`JobStore`]. An incoming alert becomes a job when
/// it is new, its status changed, its `startsAt` changed (a new occurrence), or `repeat_interval`
/// has passed since the last accepted delivery. A resolve is delivered once.
#[must_use]
pub fn log_decision(
    previous: Option<&LogEntry>,
    admission: &Admission,
    now: DateTime<Utc>,
) -> LogDecision {
    match log_verdict(previous, admission, now) {
        LogVerdict::Enqueue {
            merged_starts_at,
            sequence,
            entry,
        } => {
            let mut alert = EnrichedAlert::clone(&admission.alert);
            if let Some(starts_at) = merged_starts_at
                && let Ok(merged) = alert.alert.clone().with_starts_at(starts_at)
            {
                alert.alert = merged;
            }
            LogDecision::Enqueue {
                alert: Box::new(alert),
                sequence,
                entry,
            }
        }
        LogVerdict::Duplicate { refresh } => LogDecision::Duplicate { refresh },
    }
}

/// [`log_decision`] without copying the alert.
#[must_use]
pub fn log_verdict(
    previous: Option<&LogEntry>,
    admission: &Admission,
    now: DateTime<Utc>,
) -> LogVerdict {
    let alert = &admission.alert.alert;
    let status = alert.status_at(now);
    let ends_at = alert.ends_at();
    // A re-sent firing alert whose sender left `startsAt` unset keeps the active entry's start
    // (when that start is not after its end, as an alert's must not be).
    let merged_starts_at = previous
        .filter(|prev| {
            admission.starts_at_defaulted
                && status == AlertStatus::Firing
                && prev.status == AlertStatus::Firing
                && prev.ends_at.is_none_or(|e| e > now)
                && ends_at.is_none_or(|e| e >= prev.starts_at)
        })
        .map(|prev| prev.starts_at);
    let starts_at = merged_starts_at.unwrap_or_else(|| alert.starts_at());
    let next_sequence = previous.map_or(1, |p| p.sequence + 1);
    let enqueue = || LogVerdict::Enqueue {
        merged_starts_at,
        sequence: next_sequence,
        entry: LogEntry {
            status,
            starts_at,
            ends_at,
            sequence: next_sequence,
            accepted_at: now,
        },
    };
    let Some(prev) = previous else {
        return enqueue();
    };
    if admission.bypass_log || prev.status != status || prev.starts_at != starts_at {
        return enqueue();
    }
    if status == AlertStatus::Resolved {
        return LogVerdict::Duplicate { refresh: None };
    }
    let repeat_due = admission.repeat_interval.is_some_and(|interval| {
        !interval.is_zero()
            && chrono::Duration::from_std(interval)
                .is_ok_and(|interval| now - prev.accepted_at >= interval)
    });
    if repeat_due {
        return enqueue();
    }
    let refresh = (prev.ends_at != ends_at).then(|| LogEntry {
        ends_at,
        ..prev.clone()
    });
    LogVerdict::Duplicate { refresh }
}

mod health;

pub use health::{BrokenReason, FAILING_AFTER, StoreCondition, StoreHealth};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_error_keeps_its_kind_its_text_and_its_cause() {
        let cause = std::io::Error::other("no space left on device");
        let err = JobStoreError::Storage(
            StorageError::new(StorageKind::Io, "writing the jobs").with_source(cause),
        );
        assert_eq!(err.storage_kind(), Some(StorageKind::Io));
        assert_eq!(
            err.to_string(),
            "the queue's storage failed: writing the jobs"
        );
        let source = std::error::Error::source(&err).expect("the cause");
        assert_eq!(source.to_string(), "no space left on device");
        assert_eq!(err.clone(), err, "a clone is equal");
        assert_eq!(JobStoreError::NotFound.storage_kind(), None);
    }
    use crate::alert::{Alert, Labels};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn alert(starts: i64, ends: Option<i64>) -> EnrichedAlert {
        let labels: Labels = [("alertname".to_owned(), "Down".to_owned())].into();
        let alert = Alert::new(labels)
            .unwrap()
            .with_starts_at(at(starts))
            .unwrap()
            .with_ends_at(ends.map(at))
            .unwrap();
        EnrichedAlert::new(alert)
    }

    fn admit(a: EnrichedAlert, repeat: Option<u64>) -> Admission {
        Admission::new(
            TargetName::new("t").unwrap(),
            a,
            repeat.map(Duration::from_secs),
        )
    }

    fn entry_of(decision: &LogDecision) -> LogEntry {
        match decision {
            LogDecision::Enqueue { entry, .. } => entry.clone(),
            LogDecision::Duplicate { .. } => panic!("expected an enqueue, got {decision:?}"),
        }
    }

    #[test]
    fn sweep_due_is_the_first_instant_sweep_action_acts() {
        let retentions = [0, 3_600, 86_400];
        let intervals = [
            None,
            Some(None),
            Some(Some(0)),
            Some(Some(120)),
            Some(Some(900)),
        ];
        let mut checked = 0;
        for status in [AlertStatus::Firing, AlertStatus::Resolved] {
            for ends in [None, Some(-50), Some(0), Some(300), Some(5_000)] {
                for accepted in [-7_200, -10, 0, 40] {
                    for interval in intervals {
                        for retention in retentions {
                            let entry = LogEntry {
                                status,
                                starts_at: at(-10_000),
                                ends_at: ends.map(at),
                                sequence: 1,
                                accepted_at: at(accepted),
                            };
                            let target = interval.map(|i: Option<u64>| i.map(Duration::from_secs));
                            let retention = Duration::from_secs(retention);
                            let due = sweep_due(&entry, target, retention);
                            let acts =
                                |t| sweep_action(&entry, target, retention, t) != SweepAction::Keep;
                            match due {
                                Some(due) => {
                                    assert!(
                                        acts(due),
                                        "{entry:?} {target:?} {retention:?} due {due}"
                                    );
                                    assert!(
                                        !acts(due - chrono::Duration::nanoseconds(1)),
                                        "{entry:?} {target:?} {retention:?} acts before {due}"
                                    );
                                }
                                None => {
                                    for t in [0, 1_000, 100_000, 10_000_000] {
                                        assert!(!acts(at(t)), "{entry:?} {target:?} acts at {t}");
                                    }
                                }
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 5 * 4 * 5 * 3);
    }

    #[test]
    fn new_alert_is_enqueued_with_sequence_one() {
        let d = log_decision(None, &admit(alert(0, Some(300)), None), at(10));
        let entry = entry_of(&d);
        assert_eq!(entry.sequence, 1);
        assert_eq!(entry.status, AlertStatus::Firing);
        assert_eq!(entry.accepted_at, at(10));
    }

    #[test]
    fn refresh_is_a_duplicate_that_extends_ends_at() {
        let first = entry_of(&log_decision(
            None,
            &admit(alert(0, Some(300)), None),
            at(10),
        ));
        let d = log_decision(Some(&first), &admit(alert(0, Some(360)), None), at(70));
        let LogDecision::Duplicate {
            refresh: Some(entry),
        } = d
        else {
            panic!("expected a refreshed duplicate, got {d:?}");
        };
        assert_eq!(entry.ends_at, Some(at(360)));
        assert_eq!(entry.sequence, 1);
    }

    #[test]
    fn status_change_and_new_occurrence_are_enqueued() {
        let first = entry_of(&log_decision(
            None,
            &admit(alert(0, Some(300)), None),
            at(10),
        ));
        let resolved = log_decision(Some(&first), &admit(alert(0, Some(20)), None), at(30));
        let resolved = entry_of(&resolved);
        assert_eq!(
            (resolved.status, resolved.sequence),
            (AlertStatus::Resolved, 2)
        );
        // A resolve is delivered once.
        assert!(matches!(
            log_decision(Some(&resolved), &admit(alert(0, Some(20)), None), at(40)),
            LogDecision::Duplicate { .. }
        ));
        // A new occurrence (new startsAt) is a new job.
        let again = log_decision(Some(&first), &admit(alert(100, Some(400)), None), at(110));
        assert_eq!(entry_of(&again).sequence, 2);
    }

    #[test]
    fn repeat_interval_zero_never_repeats_and_positive_repeats() {
        let first = entry_of(&log_decision(
            None,
            &admit(alert(0, Some(90_000)), None),
            at(0),
        ));
        let never = log_decision(
            Some(&first),
            &admit(alert(0, Some(90_000)), Some(0)),
            at(80_000),
        );
        assert!(matches!(never, LogDecision::Duplicate { .. }));
        let early = log_decision(
            Some(&first),
            &admit(alert(0, Some(90_000)), Some(3600)),
            at(3599),
        );
        assert!(matches!(early, LogDecision::Duplicate { .. }));
        let due = log_decision(
            Some(&first),
            &admit(alert(0, Some(90_000)), Some(3600)),
            at(3600),
        );
        assert_eq!(entry_of(&due).sequence, 2);
    }

    #[test]
    fn defaulted_starts_at_merges_with_the_active_entry() {
        let first = entry_of(&log_decision(
            None,
            &admit(alert(0, Some(300)), None),
            at(0),
        ));
        // The sender left startsAt unset, so normalisation made it "now" (60).
        let resend = admit(alert(60, Some(360)), None).with_starts_at_defaulted(true);
        let d = log_decision(Some(&first), &resend, at(60));
        assert!(matches!(d, LogDecision::Duplicate { .. }), "{d:?}");
        // Without the flag, a changed startsAt is a new occurrence.
        let explicit = admit(alert(60, Some(360)), None);
        assert!(matches!(
            log_decision(Some(&first), &explicit, at(60)),
            LogDecision::Enqueue { .. }
        ));
    }

    #[test]
    fn bypass_always_enqueues() {
        let first = entry_of(&log_decision(
            None,
            &admit(alert(0, Some(300)), None),
            at(0),
        ));
        let d = log_decision(
            Some(&first),
            &admit(alert(0, Some(300)), None).bypassing_log(),
            at(1),
        );
        assert_eq!(entry_of(&d).sequence, 2);
    }

    #[test]
    fn priority_follows_status_and_severity() {
        let mut a = alert(0, None);
        assert_eq!(Priority::of(&a, AlertStatus::Firing), Priority::Medium);
        assert_eq!(Priority::of(&a, AlertStatus::Resolved), Priority::Low);
        let labels: Labels = [("severity".to_owned(), "critical".to_owned())].into();
        a.alert = Alert::new(labels).unwrap();
        assert_eq!(Priority::of(&a, AlertStatus::Firing), Priority::High);
        let labels: Labels = [("severity".to_owned(), "info".to_owned())].into();
        a.alert = Alert::new(labels).unwrap();
        assert_eq!(Priority::of(&a, AlertStatus::Firing), Priority::Low);
    }
}

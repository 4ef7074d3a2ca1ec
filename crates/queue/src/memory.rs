//! [`MemoryJobStore`]: the whole [`JobStore`] contract in memory, behind one mutex.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alert_core::{
    Admission, Admitted, AlertStatus, BoxFuture, BrokenReason, DeadLetter, DeadLetterFilter,
    DeadLetterId, DeadLetterPage, DeadReason, Delivery, EnrichedAlert, Fingerprint, JobError,
    JobId, JobStore, JobStoreError, Lease, LeasedJob, LogDecision, LogEntry, Priority, QueueStats,
    Reschedule, StoreCondition, StoreHealth, SweepAction, SweepPlan, SweepReport, TargetKind,
    TargetName, log_decision, sweep_action,
};
use chrono::{DateTime, Utc};
use uuid::{ContextV7, Timestamp, Uuid};

use crate::lanes::{Counted, Index, Key, Place, queue_stats};
use crate::sweep::{JobView, KnownTarget, doomed, kind_of, removal_due, sweep_job, track_targets};

/// The default cap on dead-letter entries.
const DEFAULT_DEAD_LETTER_CAP: usize = 100_000;

/// A job store in memory: the job queue, the notification log and the dead-letter queue of the
/// [`JobStore`] contract, with no durability.
///
/// It holds at most `max_jobs` live jobs and a capped number of dead letters (the oldest are
/// dropped first). All state sits behind one mutex that is never held across an `.await`.
///
/// Beyond the contract it fixes a few choices of its own:
/// - a lease that expires unsettled counts as a consumed attempt, since the lane may have sent the
///   job before it crashed;
/// - a dead letter's `attempts` counts the attempt in flight when a leased job is dead-lettered;
/// - a replayed job keeps the dead letter's delivery sequence, so a target that deduplicates on it
///   sees the same delivery.
pub struct MemoryJobStore {
    max_jobs: u64,
    /// The quota of each target; `u64::MAX` when there is none.
    max_jobs_per_target: u64,
    /// The most notification-log entries; `u64::MAX` when there is no bound.
    max_active_alerts: u64,
    dead_letter_cap: usize,
    state: Mutex<State>,
}

impl MemoryJobStore {
    /// An empty store that holds at most `max_jobs` live jobs and 100,000 dead letters.
    #[must_use]
    pub fn new(max_jobs: u64) -> Self {
        Self {
            max_jobs,
            max_jobs_per_target: u64::MAX,
            max_active_alerts: u64::MAX,
            dead_letter_cap: DEFAULT_DEAD_LETTER_CAP,
            state: Mutex::new(State::default()),
        }
    }

    /// Reads `clock` where no caller hands the store a time (default: `SystemClock`); see
    /// [`Clock`](alert_core::Clock). Give it the clock that stamps the store's jobs.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn alert_core::Clock>) -> Self {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.index.clock = crate::lanes::StoreClock(clock);
        self
    }

    /// Holds at most `n` live jobs per target: an admission that would add a job to a target
    /// holding `n` is refused alone ([`Admitted::TargetFull`]), and so is a replay
    /// ([`JobStoreError::TargetFull`]); a sweep leaves such work for a later pass.
    #[must_use]
    pub fn with_max_jobs_per_target(mut self, n: u64) -> Self {
        self.max_jobs_per_target = n;
        self
    }

    /// Holds at most `n` notification-log entries (one per (target, fingerprint)): a batch that
    /// would add entries past it is refused whole ([`JobStoreError::TooManyActiveAlerts`]).
    #[must_use]
    pub fn with_max_active_alerts(mut self, n: u64) -> Self {
        self.max_active_alerts = n;
        self
    }

    /// Keeps at most `cap` dead letters; when a new one would exceed it, the oldest is dropped.
    #[must_use]
    pub fn with_dead_letter_cap(mut self, cap: usize) -> Self {
        self.dead_letter_cap = cap;
        self
    }

    /// The bound on live jobs.
    #[must_use]
    pub fn max_jobs(&self) -> u64 {
        self.max_jobs
    }

    /// The notification log's entry for (`target`, `fingerprint`), if it has one.
    #[must_use]
    pub fn log_entry(&self, target: &str, fingerprint: Fingerprint) -> Option<LogEntry> {
        let target = TargetName::new(target).ok()?;
        let state = self.state().ok()?;
        state
            .log
            .get(&(target, fingerprint))
            .map(|l| l.entry.clone())
    }

    /// The last alert the notification log accepted for (`target`, `fingerprint`): what an
    /// auto-resolve or a refresh re-sends.
    #[must_use]
    pub fn last_accepted_alert(
        &self,
        target: &str,
        fingerprint: Fingerprint,
    ) -> Option<EnrichedAlert> {
        let target = TargetName::new(target).ok()?;
        let state = self.state().ok()?;
        state
            .log
            .get(&(target, fingerprint))
            .map(|l| EnrichedAlert::clone(&l.alert))
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, JobStoreError> {
        // A panic while the lock was held may have left the indexes half updated, so a poisoned
        // store refuses to work rather than serve inconsistent jobs.
        self.state
            .lock()
            .map_err(|_| JobStoreError::Storage("the in-memory store is poisoned".to_owned()))
    }

    fn enqueue_now(
        &self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Admitted>, JobStoreError> {
        let mut state = self.state()?;
        // Decide every admission first, against the log as the batch itself changes it, so a
        // batch that would exceed `max_jobs` is refused before anything is written.
        let mut overlay: HashMap<Key, (Option<LogEntry>, bool)> = HashMap::new();
        let mut added: u64 = 0;
        let mut added_to: HashMap<TargetName, u64> = HashMap::new();
        let mut new_entries: u64 = 0;
        let mut plan = Vec::with_capacity(batch.len());
        for admission in batch {
            let key = (
                admission.target.clone(),
                admission.alert.alert.fingerprint(),
            );
            let (previous, pending) = match overlay.get(&key) {
                Some((entry, pending)) => (entry.clone(), *pending),
                None => (
                    state.log.get(&key).map(|l| l.entry.clone()),
                    state.index.slot(&key).pending.is_some(),
                ),
            };
            let decision = log_decision(previous.as_ref(), &admission, now);
            let next = match &decision {
                LogDecision::Enqueue { entry, .. } => {
                    // Replacing a pending job does not grow the queue.
                    if !pending {
                        let to = added_to.entry(key.0.clone()).or_default();
                        if state.index.live(&key.0) + *to >= self.max_jobs_per_target {
                            // Refused alone: nothing of it is planned, its log entry included.
                            plan.push((key, None));
                            continue;
                        }
                        *to += 1;
                        added += 1;
                    }
                    if previous.is_none() {
                        new_entries += 1;
                    }
                    (Some(entry.clone()), true)
                }
                LogDecision::Duplicate { refresh } => (refresh.clone().or(previous), pending),
            };
            overlay.insert(key.clone(), next);
            plan.push((key, Some(decision)));
        }
        if new_entries > 0 && state.log.len() as u64 + new_entries > self.max_active_alerts {
            return Err(JobStoreError::TooManyActiveAlerts {
                max_active_alerts: self.max_active_alerts,
            });
        }
        if added > 0 && state.jobs.len() as u64 + added > self.max_jobs {
            return Err(JobStoreError::Full {
                max_jobs: self.max_jobs,
            });
        }
        let max_jobs_per_target = self.max_jobs_per_target;
        Ok(plan
            .into_iter()
            .map(|(key, decision)| match decision {
                Some(decision) => state.apply(key, decision, now),
                None => Admitted::TargetFull {
                    max_jobs_per_target,
                },
            })
            .collect())
    }

    fn lease_now(
        &self,
        target: &TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, JobStoreError> {
        let mut state = self.state()?;
        state.expire_leases(target, now);
        let until = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let picked = state.pick(target, n, now);
        let mut jobs = Vec::with_capacity(picked.len());
        for id in picked {
            jobs.push(state.mark_leased(id, until));
        }
        Ok(Lease {
            jobs,
            next_due: state.next_due(target, now),
        })
    }

    fn reschedule_now(&self, id: JobId, how: Reschedule) -> Result<(), JobStoreError> {
        let mut state = self.state()?;
        let Some(job) = state.jobs.get(&id) else {
            return Ok(());
        };
        if job.superseded {
            state.remove(id);
            return Ok(());
        }
        state.unindex(id);
        let job = state.jobs.get_mut(&id).expect("the job was just found");
        if how.consume_attempt {
            job.attempts = job.attempts.saturating_add(1);
        }
        if how.error.is_some() {
            job.last_error = how.error;
        }
        job.due = how.not_before;
        job.leased_until = None;
        state.index_job(id);
        Ok(())
    }

    fn dead_letter_now(
        &self,
        id: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> Result<Option<DeadLetterId>, JobStoreError> {
        let mut state = self.state()?;
        let Some(mut job) = state.remove(id) else {
            return Ok(None);
        };
        if job.superseded {
            return Ok(None);
        }
        if error.is_some() {
            job.last_error = error;
        }
        let dead_id = state.bury(job, kind, reason, now);
        state.trim_dead(self.dead_letter_cap);
        Ok(state.dead.contains_key(&dead_id).then_some(dead_id))
    }

    fn dead_letter_target_now(
        &self,
        target: &TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> Result<u64, JobStoreError> {
        let mut state = self.state()?;
        let Some(lane) = state.index.lanes.get(target) else {
            return Ok(0);
        };
        let mut ids: Vec<JobId> = lane
            .ready
            .iter()
            .flatten()
            .chain(&lane.leased)
            .map(|&(_, id)| id)
            .collect();
        // In the order they were made, so the entries' ids sort the same way.
        ids.sort_unstable();
        let mut moved = 0;
        for id in ids {
            let Some(job) = state.remove(id) else {
                continue;
            };
            // Its successor is moved with it; the older state would only be replayed over it.
            if job.superseded {
                continue;
            }
            state.bury(job, kind, reason, now);
            moved += 1;
        }
        state.trim_dead(self.dead_letter_cap);
        Ok(moved)
    }

    fn sweep_now(
        &self,
        plan: &SweepPlan,
        now: DateTime<Utc>,
    ) -> Result<SweepReport, JobStoreError> {
        let mut state = self.state()?;
        let targets: HashMap<&str, Option<Duration>> = plan
            .targets
            .iter()
            .map(|(name, interval)| (name.as_str(), *interval))
            .collect();
        let mut work = Vec::new();
        let mut expired = Vec::new();
        for (key, logged) in &state.log {
            let planned = targets.get(key.0.as_str()).copied();
            match sweep_action(&logged.entry, planned, plan.log_retention, now) {
                SweepAction::Resolve { since } => work.push((since, key.clone(), true)),
                SweepAction::Refresh { since } => work.push((since, key.clone(), false)),
                SweepAction::Expire => expired.push(key.clone()),
                _ => {}
            }
        }
        let mut report = SweepReport::default();
        report.expired_log_entries = expired.len() as u64;
        for key in expired {
            state.log.remove(&key);
        }
        self.bury_old_and_removed(&mut state, plan, &mut report, now);
        // Longest overdue first, so a bounded pass leaves the freshest work for the next one.
        work.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut made = 0_usize;
        for (_, key, resolve) in work {
            if made >= plan.max_jobs_per_pass {
                break;
            }
            let slot = state.index.slot(&key);
            let pending = slot.pending.is_some();
            let live = pending || slot.leased.is_some();
            // A refresh is for an alert that is not on its way already.
            if !resolve && live {
                continue;
            }
            // Replacing a pending job does not grow the queue.
            if !pending
                && (state.jobs.len() as u64 >= self.max_jobs
                    || state.index.live(&key.0) >= self.max_jobs_per_target)
            {
                continue;
            }
            let logged = &state.log[&key];
            let decision = sweep_job(&logged.entry, &logged.alert, now)?;
            state.apply(key.clone(), decision, now);
            made += 1;
            if resolve {
                report.resolved += 1;
            } else {
                report.refreshed += 1;
            }
            report.targets.push(key.0);
        }
        report.targets.sort_unstable();
        report.targets.dedup();
        Ok(report)
    }

    /// The sweep's dead-lettering: records the target set, then moves the jobs of removed
    /// targets past their grace and the jobs older than `max_age` to the dead-letter queue.
    fn bury_old_and_removed(
        &self,
        state: &mut State,
        plan: &SweepPlan,
        report: &mut SweepReport,
        now: DateTime<Utc>,
    ) {
        let changes = match &plan.known_targets {
            Some(known) => {
                let with_jobs = state.index.lanes.keys().cloned().collect::<Vec<_>>();
                let index = &state.index;
                track_targets(&state.targets, known, with_jobs, |t| index.live(t), now)
            }
            None => Vec::new(),
        };
        let removed = if plan.known_targets.is_some() {
            removal_due(&state.targets, &changes, plan.removal_grace, now)
        } else {
            Default::default()
        };
        let jobs = state.jobs.iter().map(|(&id, job)| JobView {
            id,
            target: &job.target,
            enqueued_at: job.enqueued_at,
            leased_until: job.leased_until,
        });
        let doomed = doomed(jobs, &removed, plan.max_age, plan.max_jobs_per_pass, now);
        let kinds: HashMap<TargetName, TargetKind> = doomed
            .iter()
            .filter_map(|(id, _)| state.jobs.get(id))
            .map(|job| {
                let kind = kind_of(&state.targets, &changes, &job.target);
                (job.target.clone(), kind)
            })
            .collect();
        for (name, change) in changes {
            match change {
                Some(record) => state.targets.insert(name, record),
                None => state.targets.remove(&name),
            };
        }
        for (id, reason) in doomed {
            let Some(job) = state.remove(id) else {
                continue;
            };
            // Its successor is moved with it, or expires on its own.
            if job.superseded {
                continue;
            }
            let kind = kinds
                .get(&job.target)
                .copied()
                .unwrap_or(crate::sweep::UNKNOWN_KIND);
            state.bury(job, kind, reason, now);
            match reason {
                DeadReason::TargetRemoved => report.removed_jobs += 1,
                _ => report.expired_jobs += 1,
            }
        }
        state.trim_dead(self.dead_letter_cap);
    }

    fn stats_now(&self) -> Result<QueueStats, JobStoreError> {
        let state = self.state()?;
        let jobs = state.jobs.values().map(|job| Counted {
            target: &job.target,
            priority: job.priority,
            enqueued_at: job.enqueued_at,
            leased: job.leased_until.is_some(),
        });
        Ok(queue_stats(jobs, state.dead.len() as u64))
    }

    fn dead_letters_now(
        &self,
        filter: &DeadLetterFilter,
        cursor: Option<&DeadLetterId>,
        limit: usize,
    ) -> Result<DeadLetterPage, JobStoreError> {
        let state = self.state()?;
        let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let mut matching = state
            .dead
            .range::<DeadLetterId, _>((start, Bound::Unbounded))
            .map(|(_, entry)| entry)
            .filter(|entry| filter.matches(entry));
        let entries: Vec<DeadLetter> = matching.by_ref().take(limit).cloned().collect();
        // A cursor only when something matching follows, so the last page says it is the last.
        let next_cursor = match (entries.last(), matching.next()) {
            (Some(last), Some(_)) => Some(last.id.clone()),
            _ => None,
        };
        Ok(DeadLetterPage {
            entries,
            next_cursor,
        })
    }

    fn replay_now(&self, id: &DeadLetterId, now: DateTime<Utc>) -> Result<JobId, JobStoreError> {
        let mut state = self.state()?;
        let entry = state.dead.get(id).ok_or(JobStoreError::NotFound)?;
        let key = (entry.target.clone(), entry.alert.alert.fingerprint());
        let newer_accepted = state
            .log
            .get(&key)
            .is_some_and(|log| log.entry.sequence > entry.sequence);
        // A live job of the same (target, fingerprint) is the same state or a newer one.
        let slot = state.index.slot(&key);
        let live = slot.pending.is_some() || slot.leased.is_some();
        if newer_accepted || live {
            return Err(JobStoreError::Superseded);
        }
        if state.jobs.len() as u64 >= self.max_jobs {
            return Err(JobStoreError::Full {
                max_jobs: self.max_jobs,
            });
        }
        if state.index.live(&key.0) >= self.max_jobs_per_target {
            return Err(JobStoreError::TargetFull {
                target: key.0,
                max_jobs_per_target: self.max_jobs_per_target,
            });
        }
        let entry = state.dead.remove(id).ok_or(JobStoreError::NotFound)?;
        // A replay sends the state the job was made for, as its first attempt would have.
        let status = entry.status;
        let priority = Priority::of(&entry.alert, status);
        Ok(state.insert(
            key,
            Arc::new(entry.alert),
            status,
            entry.sequence,
            priority,
            now,
        ))
    }
}

impl fmt::Debug for MemoryJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The jobs themselves would flood a log line; their counts say enough.
        let mut s = f.debug_struct("MemoryJobStore");
        s.field("max_jobs", &self.max_jobs)
            .field("dead_letter_cap", &self.dead_letter_cap);
        if let Ok(state) = self.state.try_lock() {
            s.field("jobs", &state.jobs.len())
                .field("dead_letters", &state.dead.len());
        }
        s.finish_non_exhaustive()
    }
}

impl JobStore for MemoryJobStore {
    fn enqueue_batch<'a>(
        &'a self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Admitted>, JobStoreError>> {
        Box::pin(async move { self.enqueue_now(batch, now) })
    }

    fn lease<'a>(
        &'a self,
        target: &'a TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease, JobStoreError>> {
        Box::pin(async move { self.lease_now(target, n, ttl, now) })
    }

    fn ack<'a>(
        &'a self,
        job: JobId,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move {
            self.state()?.remove(job);
            Ok(())
        })
    }

    fn reschedule<'a>(
        &'a self,
        job: JobId,
        how: Reschedule,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move { self.reschedule_now(job, how) })
    }

    fn dead_letter<'a>(
        &'a self,
        job: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DeadLetterId>, JobStoreError>> {
        Box::pin(async move { self.dead_letter_now(job, kind, reason, error, now) })
    }

    fn health(&self) -> StoreHealth {
        // Nothing is written anywhere, so only a panic under the lock can break this store.
        match self.state.lock() {
            Ok(state) => StoreHealth::default().with_counters(0, state.evicted),
            Err(_) => StoreHealth::new(StoreCondition::Broken {
                reason: BrokenReason::Poisoned,
            }),
        }
    }

    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, JobStoreError>> {
        Box::pin(async move { self.stats_now() })
    }

    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        cursor: Option<&'a DeadLetterId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<DeadLetterPage, JobStoreError>> {
        Box::pin(async move { self.dead_letters_now(filter, cursor, limit) })
    }

    fn replay<'a>(
        &'a self,
        id: &'a DeadLetterId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobId, JobStoreError>> {
        Box::pin(async move { self.replay_now(id, now) })
    }

    fn purge<'a>(&'a self, id: &'a DeadLetterId) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move {
            self.state()?
                .dead
                .remove(id)
                .map(drop)
                .ok_or(JobStoreError::NotFound)
        })
    }

    fn sweep<'a>(
        &'a self,
        plan: &'a SweepPlan,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<SweepReport, JobStoreError>> {
        Box::pin(async move { self.sweep_now(plan, now) })
    }

    fn dead_letter_target<'a>(
        &'a self,
        target: &'a TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, JobStoreError>> {
        Box::pin(async move { self.dead_letter_target_now(target, kind, reason, now) })
    }
}

// === State ===

/// One live job.
#[derive(Debug)]
struct Job {
    target: TargetName,
    fingerprint: Fingerprint,
    alert: Arc<EnrichedAlert>,
    /// The state it was made for; see [`LeasedJob::status`].
    status: AlertStatus,
    sequence: u64,
    /// Attempts consumed so far; the next lease is attempt `attempts + 1`.
    attempts: u32,
    priority: Priority,
    enqueued_at: DateTime<Utc>,
    /// When it may be leased; the key of its place in its lane's ready set.
    due: DateTime<Utc>,
    /// While leased, when the lease expires; the key of its place in its lane's leased set.
    leased_until: Option<DateTime<Utc>>,
    /// A newer state of its (target, fingerprint) was accepted while it was leased, so settling
    /// it removes it.
    superseded: bool,
    last_error: Option<JobError>,
}

/// One notification-log entry with the alert it last accepted, which a sweep re-sends.
#[derive(Debug)]
struct Logged {
    entry: LogEntry,
    alert: Arc<EnrichedAlert>,
}

#[derive(Default)]
struct State {
    next_job: u64,
    jobs: HashMap<JobId, Job>,
    /// Where the live jobs are filed for leasing.
    index: Index,
    log: HashMap<Key, Logged>,
    dead: BTreeMap<DeadLetterId, DeadLetter>,
    /// Makes dead-letter ids increase even when `now` repeats or goes back.
    ids: ContextV7,
    /// Dead letters dropped at the cap; see [`StoreHealth::evicted_dead_letters`].
    evicted: u64,
    /// The targets the sweeps have seen, and since when those that left the set are gone.
    targets: BTreeMap<TargetName, KnownTarget>,
}

impl State {
    /// Commits one planned admission.
    fn apply(&mut self, key: Key, decision: LogDecision, now: DateTime<Utc>) -> Admitted {
        match decision {
            LogDecision::Duplicate { refresh } => {
                // A refresh only extends the entry's `endsAt`; the accepted alert stays, since
                // the re-send was not accepted as a delivery.
                if let Some(entry) = refresh
                    && let Some(logged) = self.log.get_mut(&key)
                {
                    logged.entry = entry;
                }
                Admitted::Duplicate
            }
            LogDecision::Enqueue {
                alert,
                sequence,
                entry,
            } => {
                let slot = self.index.slot(&key);
                let (pending, leased) = (slot.pending, slot.leased);
                let superseded = if let Some(old) = pending {
                    self.remove(old);
                    Some(old)
                } else if let Some(old) = leased {
                    let job = self.jobs.get_mut(&old).expect("a slot's job is live");
                    // A job superseded before (whose successor was then acked) is not reported twice.
                    (!std::mem::replace(&mut job.superseded, true)).then_some(old)
                } else {
                    None
                };
                // The job's status is the log entry's: decided now, not when it is sent.
                let status = entry.status;
                let priority = Priority::of(&alert, status);
                let alert = Arc::new(*alert);
                self.log.insert(
                    key.clone(),
                    Logged {
                        entry,
                        alert: Arc::clone(&alert),
                    },
                );
                let job = self.insert(key, alert, status, sequence, priority, now);
                Admitted::Enqueued {
                    job,
                    sequence,
                    superseded,
                }
            }
        }
    }

    /// Adds a new pending job, due now.
    fn insert(
        &mut self,
        key: Key,
        alert: Arc<EnrichedAlert>,
        status: AlertStatus,
        sequence: u64,
        priority: Priority,
        now: DateTime<Utc>,
    ) -> JobId {
        self.next_job += 1;
        let id = JobId(self.next_job);
        self.jobs.insert(
            id,
            Job {
                target: key.0,
                fingerprint: key.1,
                alert,
                status,
                sequence,
                attempts: 0,
                priority,
                enqueued_at: now,
                due: now,
                leased_until: None,
                superseded: false,
                last_error: None,
            },
        );
        self.index_job(id);
        id
    }

    /// Files a job under its lane's sets and its slot, pending or leased as it is.
    fn index_job(&mut self, id: JobId) {
        let place = place(&self.jobs[&id]);
        self.index.file(id, place);
    }

    /// Takes a job out of its lane's sets and its slot, leaving it in `jobs`.
    fn unindex(&mut self, id: JobId) {
        let place = place(&self.jobs[&id]);
        self.index.unfile(id, place);
    }

    /// Removes a job entirely; `None` when there is no such job.
    fn remove(&mut self, id: JobId) -> Option<Job> {
        if !self.jobs.contains_key(&id) {
            return None;
        }
        self.unindex(id);
        self.jobs.remove(&id)
    }

    /// Returns the jobs of `target` whose lease has expired to the ready set, or drops them when
    /// they were superseded meanwhile.
    fn expire_leases(&mut self, target: &TargetName, now: DateTime<Utc>) {
        for id in self.index.expired(target, now) {
            if self.jobs[&id].superseded {
                self.remove(id);
                continue;
            }
            self.unindex(id);
            let job = self.jobs.get_mut(&id).expect("an indexed job is live");
            job.leased_until = None;
            job.attempts = job.attempts.saturating_add(1);
            self.index_job(id);
        }
    }

    /// Chooses up to `n` due jobs of `target`, by priority share, oldest due first per level,
    /// skipping jobs whose (target, fingerprint) has a job in flight.
    fn pick(&mut self, target: &TargetName, n: usize, now: DateTime<Utc>) -> Vec<JobId> {
        let jobs = &self.jobs;
        let (picked, cycle) = self.index.pick(target, n, now, |id| jobs[&id].fingerprint);
        self.index.leased(target, cycle, now);
        picked
    }

    /// Moves a pending job to the leased set until `until` and describes it for the lane.
    fn mark_leased(&mut self, id: JobId, until: DateTime<Utc>) -> LeasedJob {
        self.unindex(id);
        let job = self.jobs.get_mut(&id).expect("a picked job is live");
        job.leased_until = Some(until);
        let leased = LeasedJob::new(
            id,
            job.target.clone(),
            job.alert.clone(),
            job.status,
            Delivery::new(job.sequence, job.attempts.saturating_add(1)),
            job.priority,
            job.enqueued_at,
        );
        self.index_job(id);
        leased
    }

    /// When the earliest pending job of `target` that is not due at `now` becomes due.
    fn next_due(&self, target: &TargetName, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.index.next_due(target, now)
    }

    /// Files a job that was taken out of the queue as a dead letter; returns its id.
    fn bury(
        &mut self,
        job: Job,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> DeadLetterId {
        let dead_id = self.dead_letter_id(now);
        let mut entry = DeadLetter::new(
            dead_id.clone(),
            job.target,
            kind,
            Arc::unwrap_or_clone(job.alert),
            reason,
            now,
        );
        entry.last_error = job.last_error;
        entry.status = job.status;
        // The attempt in flight counts: the lane may have sent it.
        entry.attempts = if job.leased_until.is_some() {
            job.attempts.saturating_add(1)
        } else {
            job.attempts
        };
        entry.sequence = job.sequence;
        entry.enqueued_at = job.enqueued_at;
        self.dead.insert(dead_id.clone(), entry);
        dead_id
    }

    /// Drops the oldest dead letters beyond `cap`.
    fn trim_dead(&mut self, cap: usize) {
        while self.dead.len() > cap {
            self.dead.pop_first();
            self.evicted += 1;
        }
    }

    /// A new UUIDv7 dead-letter id for `now`, greater than every id made before.
    fn dead_letter_id(&self, now: DateTime<Utc>) -> DeadLetterId {
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let timestamp = Timestamp::from_unix(&self.ids, secs, now.timestamp_subsec_nanos());
        DeadLetterId(Uuid::new_v7(timestamp).to_string())
    }
}

/// Where `job` is filed in the [`Index`].
fn place(job: &Job) -> Place<'_> {
    Place {
        target: &job.target,
        fingerprint: job.fingerprint,
        priority: job.priority,
        due: job.due,
        leased_until: job.leased_until,
    }
}

//! [`MemoryJobStore`]: the whole [`JobStore`](alert_core::JobStore) contract in memory, behind one mutex, on the
//! queue's one model ([`crate::model`]): each op is planned by the same planners as the redb
//! store's, with nothing to persist but the alert bodies and the dead letters.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alert_core::{
    Admission, Admitted, BoxFuture, BrokenReason, DeadLetter, DeadLetterFilter, DeadLetterId,
    DeadLetterPage, DeadLetterQueue, DeadReason, DeliveryHistory, DeliveryRecord, EnrichedAlert,
    Fingerprint, HistoryFilter, HistoryPage, HistoryRetention, IngestQueue, JobError, JobId,
    JobStoreError, LaneQueue, Lease, LogEntry, NewWork, QueueMaintenance, QueueStats, Reschedule,
    StorageKind, StoreCondition, StoreHealth, SweepPlan, SweepReport, TargetKind, TargetName,
};
use chrono::{DateTime, Utc};

use crate::model::history::HistoryLog;
use crate::model::ops::Planner;
use crate::model::plan::{DeadRead, Group, Oldest, Planned2, Tables, prepare};
use crate::model::state::{CachedLog, DEFAULT_DEAD_LETTER_CAP, Job, Key};
use crate::model::sweep::KnownTarget;
use crate::model::{State, lanes};

/// A job store in memory: the job queue, the notification log and the dead-letter queue of the
/// [`JobStore`](alert_core::JobStore) contract, with no durability.
///
/// It holds at most `max_jobs` live jobs and a capped number of dead letters (the oldest are
/// dropped first). All state sits behind one mutex that is never held across an `.await`.
///
/// Beyond the contract it fixes the same choices as the redb store, since it runs the same
/// planners:
/// - a lease that expires unsettled counts as a consumed attempt, since the lane may have sent the
///   job before it crashed;
/// - a dead letter's `attempts` counts the attempt in flight when a leased job is dead-lettered;
/// - a replayed job keeps the dead letter's delivery sequence, so a target that deduplicates on it
///   sees the same delivery.
pub struct MemoryJobStore {
    planner: Planner,
    inner: Mutex<Inner>,
}

/// The state, and what stands in for a store's tables.
struct Inner {
    state: State,
    tables: MemoryTables,
    /// Dead letters dropped at the cap; see [`StoreHealth::evicted_dead_letters`].
    evicted: u64,
    /// Told each target that gets jobs; see [`LaneQueue::on_new_work`].
    announce: Option<NewWork>,
    history: HistoryLog,
}

/// The in-memory store's "tables": only what the state does not hold itself.
#[derive(Default)]
struct MemoryTables {
    /// Every alert body's alert (the state holds a body's alert only while a job refers to it),
    /// until no job and no log entry refers to the body.
    alerts: HashMap<u64, Arc<EnrichedAlert>>,
    dead: BTreeMap<DeadLetterId, DeadLetter>,
}

impl Tables for MemoryTables {
    fn put_job(&mut self, _id: JobId, _job: &Job) -> Result<(), JobStoreError> {
        Ok(())
    }

    fn remove_job(&mut self, _id: JobId) -> Result<(), JobStoreError> {
        Ok(())
    }

    fn put_body(
        &mut self,
        id: u64,
        alert: &Arc<EnrichedAlert>,
        _encoded: Option<&[u8]>,
    ) -> Result<(), JobStoreError> {
        self.alerts.insert(id, Arc::clone(alert));
        Ok(())
    }

    fn read_body(&mut self, id: u64) -> Result<Arc<EnrichedAlert>, JobStoreError> {
        self.alerts.get(&id).cloned().ok_or_else(|| {
            JobStoreError::storage(
                StorageKind::Corrupt,
                format!("the alert {id} is not stored"),
            )
        })
    }

    fn put_log(&mut self, _key: &Key, _cached: &CachedLog) -> Result<(), JobStoreError> {
        Ok(())
    }

    fn remove_log(&mut self, _key: &Key) -> Result<(), JobStoreError> {
        Ok(())
    }

    fn put_target(
        &mut self,
        _name: &TargetName,
        _record: Option<&KnownTarget>,
    ) -> Result<(), JobStoreError> {
        Ok(())
    }

    fn put_dead(&mut self, entry: &DeadLetter) -> Result<(), JobStoreError> {
        self.dead.insert(entry.id.clone(), entry.clone());
        Ok(())
    }

    fn has_dead(&mut self, id: &DeadLetterId) -> Result<bool, JobStoreError> {
        Ok(self.dead.contains_key(id))
    }

    fn read_dead(&mut self, id: &DeadLetterId) -> Result<DeadRead, JobStoreError> {
        Ok(self.dead.get(id).map_or(DeadRead::Missing, |entry| {
            DeadRead::Found(Box::new(entry.clone()))
        }))
    }

    fn remove_dead(&mut self, id: &DeadLetterId) -> Result<bool, JobStoreError> {
        Ok(self.dead.remove(id).is_some())
    }

    fn oldest_dead(&mut self, with_time: bool) -> Result<Oldest, JobStoreError> {
        Ok(match self.dead.first_key_value() {
            Some((_, entry)) => Oldest::Entry {
                dead_at: with_time.then_some(entry.dead_at),
            },
            None => Oldest::None,
        })
    }

    fn pop_oldest_dead(&mut self) -> Result<(), JobStoreError> {
        self.dead.pop_first();
        Ok(())
    }
}

impl Inner {
    /// Plans one op and applies it (there is nothing to persist). Returns its answer and the
    /// targets that got jobs.
    fn run<T>(
        &mut self,
        planner: &Planner,
        plan: impl FnOnce(&Planner, &mut Group, &State, &mut MemoryTables) -> Planned2<T>,
    ) -> Result<(Result<T, JobStoreError>, Vec<TargetName>), JobStoreError> {
        let mut group = Group::new(&self.state);
        let answer = plan(planner, &mut group, &self.state, &mut self.tables)?;
        self.evicted += group.evicted;
        let new_work = group.new_work();
        group.apply(&mut self.state);
        self.tidy();
        Ok((answer, new_work))
    }

    /// Drops what the state let go of: the bodies no job and no log entry refers to, and the
    /// settlements a durable store would write.
    fn tidy(&mut self) {
        for body in self.state.dirty_bodies.drain(..) {
            if !self.state.bodies.contains_key(&body) {
                self.tables.alerts.remove(&body);
            }
        }
        self.state.dirty_jobs.clear();
    }
}

impl MemoryJobStore {
    /// An empty store that holds at most `max_jobs` live jobs and 100,000 dead letters.
    #[must_use]
    pub fn new(max_jobs: u64) -> Self {
        Self {
            planner: Planner {
                max_jobs,
                max_jobs_per_target: u64::MAX,
                max_active_alerts: u64::MAX,
                dead_letter_cap: DEFAULT_DEAD_LETTER_CAP,
                dead_letter_retention: None,
            },
            inner: Mutex::new(Inner {
                state: State::default(),
                tables: MemoryTables::default(),
                evicted: 0,
                announce: None,
                history: HistoryLog::default(),
            }),
        }
    }

    /// Reads `clock` where no caller hands the store a time (default: `SystemClock`); see
    /// [`Clock`](alert_core::Clock). Give it the clock that stamps the store's jobs.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn alert_core::Clock>) -> Self {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.state.index.clock = lanes::StoreClock(clock);
        self
    }

    /// Holds at most `n` live jobs per target: an admission that would add a job to a target
    /// holding `n` is refused alone ([`Admitted::TargetFull`]), and so is a replay
    /// ([`JobStoreError::TargetFull`]); a sweep leaves such work for a later pass.
    #[must_use]
    pub fn with_max_jobs_per_target(mut self, n: u64) -> Self {
        self.planner.max_jobs_per_target = n;
        self
    }

    /// Holds at most `n` notification-log entries (one per (target, fingerprint)): a batch that
    /// would add entries past it is refused whole ([`JobStoreError::TooManyActiveAlerts`]).
    #[must_use]
    pub fn with_max_active_alerts(mut self, n: u64) -> Self {
        self.planner.max_active_alerts = n;
        self
    }

    /// Keeps at most `cap` dead letters; when a new one would exceed it, the oldest is dropped.
    #[must_use]
    pub fn with_dead_letter_cap(mut self, cap: usize) -> Self {
        self.planner.dead_letter_cap = cap;
        self
    }

    /// Drops dead letters older than `retention` whenever a new one is added.
    #[must_use]
    pub fn with_dead_letter_retention(mut self, retention: Duration) -> Self {
        self.planner.dead_letter_retention = Some(retention);
        self
    }

    /// The bound on live jobs.
    #[must_use]
    pub fn max_jobs(&self) -> u64 {
        self.planner.max_jobs
    }

    /// The notification log's entry for (`target`, `fingerprint`), if it has one.
    #[must_use]
    pub fn log_entry(&self, target: &str, fingerprint: Fingerprint) -> Option<LogEntry> {
        let target = TargetName::new(target).ok()?;
        let inner = self.inner().ok()?;
        inner.state.log.get(&(target, fingerprint)).map(|c| c.entry)
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
        let inner = self.inner().ok()?;
        let body = inner.state.log.get(&(target, fingerprint))?.body;
        let alert = inner.tables.alerts.get(&body)?;
        Some(EnrichedAlert::clone(alert))
    }

    fn inner(&self) -> Result<MutexGuard<'_, Inner>, JobStoreError> {
        // A panic while the lock was held may have left the indexes half updated, so a poisoned
        // store refuses to work rather than serve inconsistent jobs.
        self.inner.lock().map_err(|_| {
            JobStoreError::storage(StorageKind::Broken, "the in-memory store is poisoned")
        })
    }

    /// Plans one op under the lock and applies it, then announces the targets that got jobs.
    fn run<T>(
        &self,
        plan: impl FnOnce(&Planner, &mut Group, &State, &mut MemoryTables) -> Planned2<T>,
    ) -> Result<T, JobStoreError> {
        let mut inner = self.inner()?;
        let (answer, new_work) = inner.run(&self.planner, plan)?;
        let announce = inner.announce.clone();
        drop(inner);
        if let Some(announce) = announce {
            new_work.iter().for_each(|target| announce(target));
        }
        answer
    }

    fn enqueue_now(
        &self,
        batch: &[Admission],
        now: DateTime<Utc>,
    ) -> Result<Vec<Admitted>, JobStoreError> {
        let (bodies, body_of) = prepare(batch, None)?;
        self.run(|p, g, state, t| p.enqueue(g, state, t, batch, bodies, &body_of, now))
    }

    fn settle(&self, id: JobId, how: Option<Reschedule>) -> Result<(), JobStoreError> {
        let mut inner = self.inner()?;
        inner.state.settle(id, how);
        inner.tidy();
        Ok(())
    }

    fn dead_letters_now(
        &self,
        filter: &DeadLetterFilter,
        cursor: Option<&DeadLetterId>,
        limit: usize,
    ) -> Result<DeadLetterPage, JobStoreError> {
        let inner = self.inner()?;
        let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let mut matching = inner
            .tables
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
}

impl fmt::Debug for MemoryJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The jobs themselves would flood a log line; their counts say enough.
        let mut s = f.debug_struct("MemoryJobStore");
        s.field("max_jobs", &self.planner.max_jobs)
            .field("dead_letter_cap", &self.planner.dead_letter_cap);
        if let Ok(inner) = self.inner.try_lock() {
            s.field("jobs", &inner.state.jobs.len())
                .field("dead_letters", &inner.tables.dead.len());
        }
        s.finish_non_exhaustive()
    }
}

impl IngestQueue for MemoryJobStore {
    fn enqueue_batch<'a>(
        &'a self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Admitted>, JobStoreError>> {
        Box::pin(async move { self.enqueue_now(&batch, now) })
    }
}

impl LaneQueue for MemoryJobStore {
    fn lease<'a>(
        &'a self,
        target: &'a TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease, JobStoreError>> {
        Box::pin(async move {
            let mut inner = self.inner()?;
            let lease = inner.state.lease(target, n, ttl, now);
            inner.tidy();
            lease
        })
    }

    fn ack<'a>(
        &'a self,
        job: JobId,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move { self.settle(job, None) })
    }

    fn reschedule<'a>(
        &'a self,
        job: JobId,
        how: Reschedule,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move { self.settle(job, Some(how)) })
    }

    fn dead_letter<'a>(
        &'a self,
        job: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DeadLetterId>, JobStoreError>> {
        Box::pin(async move {
            self.run(|p, g, state, t| p.dead_letter(g, state, t, job, kind, reason, error, now))
        })
    }

    fn on_new_work(&self, announce: NewWork) {
        if let Ok(mut inner) = self.inner() {
            inner.announce = Some(announce);
        }
    }
}

impl DeadLetterQueue for MemoryJobStore {
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
        Box::pin(async move { self.run(|p, g, state, t| p.replay(g, state, t, id, now)) })
    }

    fn purge<'a>(&'a self, id: &'a DeadLetterId) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move { self.run(|p, g, _, t| p.purge(g, t, id)) })
    }
}

impl DeliveryHistory for MemoryJobStore {
    fn record<'a>(
        &'a self,
        records: Vec<DeliveryRecord>,
        retention: HistoryRetention,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move {
            self.inner()?.history.record(records, retention, now);
            Ok(())
        })
    }

    fn deliveries<'a>(
        &'a self,
        filter: &'a HistoryFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, JobStoreError>> {
        Box::pin(async move { Ok(self.inner()?.history.page(filter, cursor, limit)) })
    }

    fn log_of(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<(TargetName, LogEntry)>, JobStoreError>> {
        Box::pin(async move {
            Ok(self
                .inner()?
                .state
                .log
                .of_fingerprint(fingerprint)
                .into_iter()
                .map(|(target, cached)| (target, cached.entry))
                .collect())
        })
    }
}

impl QueueMaintenance for MemoryJobStore {
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, JobStoreError>> {
        Box::pin(async move {
            // The planners keep the state's count of dead letters.
            Ok(self.inner()?.state.stats())
        })
    }

    fn sweep<'a>(
        &'a self,
        plan: &'a SweepPlan,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<SweepReport, JobStoreError>> {
        Box::pin(async move { self.run(|p, g, state, t| p.sweep(g, state, t, plan, now)) })
    }

    fn health(&self) -> StoreHealth {
        // Nothing is written anywhere, so only a panic under the lock can break this store.
        match self.inner.lock() {
            Ok(inner) => StoreHealth::default().with_counters(0, inner.evicted),
            Err(_) => StoreHealth::new(StoreCondition::Broken {
                reason: BrokenReason::Poisoned,
            }),
        }
    }

    fn dead_letter_target<'a>(
        &'a self,
        target: &'a TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, JobStoreError>> {
        Box::pin(async move {
            self.run(|p, g, state, t| p.dead_letter_target(g, state, t, target, kind, reason, now))
        })
    }
}

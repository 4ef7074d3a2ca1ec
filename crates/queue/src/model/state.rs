//! The store's state in memory: the live jobs with their leases and per-target indexes, the
//! notification log, the alert bodies they refer to, and what the writer still has to persist.
//!
//! Everything a lease, an ack or an enqueue decision needs is here, so none of them reads a
//! store's tables. A store keeps its tables in step: it applies a group's changes here only
//! after they were persisted ([`super::plan`]), and it persists acks and reschedules (which
//! change this state at once) with its next write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Admission, Admitted, AlertStatus, DeadLetterId, Delivery, EnrichedAlert, Fingerprint, JobError,
    JobId, JobStoreError, Lease, LeasedJob, LogEntry, LogVerdict, Priority, QueueStats, Reschedule,
    StorageKind, TargetName, log_verdict,
};
use chrono::{DateTime, Utc};
use uuid::{ContextV7, Timestamp, Uuid};

use super::lanes::{Counted, Index, Place, queue_stats};
pub(crate) use super::lanes::{Key, Slot};
use super::log_map::LogMap;
use super::sweep::KnownTarget;

/// The default cap on dead-letter entries.
pub(crate) const DEFAULT_DEAD_LETTER_CAP: usize = 100_000;

/// A live job: the one job record of every store (the redb store encodes it as it is, leases
/// aside). Its alert is the body it refers to.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) target: TargetName,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) body: u64,
    /// The state it was made for; see [`alert_core::LeasedJob::status`].
    pub(crate) status: AlertStatus,
    pub(crate) sequence: u64,
    pub(crate) attempts: u32,
    pub(crate) priority: Priority,
    /// When it was enqueued, for [`QueueStats::oldest_enqueued_at`].
    pub(crate) enqueued_at: DateTime<Utc>,
    pub(crate) due: DateTime<Utc>,
    pub(crate) last_error: Option<JobError>,
    pub(crate) leased_until: Option<DateTime<Utc>>,
    /// A newer state of its (target, fingerprint) was accepted while it was leased, so settling
    /// it removes it. After a restart the newer job alone is kept, since the older one is no
    /// longer in flight.
    pub(crate) superseded: bool,
}

/// The notification log's entry for one (target, fingerprint), as cached.
#[derive(Clone, Debug)]
pub(crate) struct CachedLog {
    /// The entry as the last re-send left it. Its `ends_at` may be ahead of the database's: a
    /// re-send that only moves it is written only when a restart could not make up for it
    /// (`crate::repeats`).
    pub(crate) entry: LogEntry,
    /// The last accepted alert.
    pub(crate) body: u64,
    /// The `ends_at` the database holds.
    pub(crate) durable_ends_at: Option<DateTime<Utc>>,
    /// When that `ends_at` was seen.
    pub(crate) seen_at: DateTime<Utc>,
}

impl CachedLog {
    /// The entry as written to the database at `now`.
    pub(crate) fn written(entry: LogEntry, body: u64, now: DateTime<Utc>) -> Self {
        Self {
            durable_ends_at: entry.ends_at,
            seen_at: now,
            entry,
            body,
        }
    }

    /// Whether a re-send that moves `ends_at` to `new` at `now` must be written.
    pub(crate) fn must_write(&self, new: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        super::repeats::must_write(self.durable_ends_at, self.seen_at, new, now)
    }
}

/// An alert body and how many jobs and log entries refer to it. The alert is held in memory
/// only while a job refers to it: a log entry needs its last accepted alert only to make a
/// sweep's job, and then reads it from the database, so the bodies of a fleet's active alerts,
/// once delivered, cost memory only for their counts.
#[derive(Debug, Default)]
pub(crate) struct Body {
    pub(crate) alert: Option<Arc<EnrichedAlert>>,
    pub(crate) jobs: u32,
    pub(crate) logs: u32,
}

/// The state in memory; see the module docs.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) next_job: u64,
    pub(crate) next_body: u64,
    pub(crate) jobs: HashMap<JobId, Job>,
    /// Where the live jobs are filed for leasing.
    pub(crate) index: Index,
    /// The notification log, write-through: the database holds the same entries.
    pub(crate) log: LogMap,
    pub(crate) bodies: HashMap<u64, Body>,
    pub(crate) dead_count: u64,
    /// Makes dead-letter ids increase even when `now` repeats or goes back.
    pub(crate) ids: ContextV7,
    /// Jobs acked, rescheduled or dropped in memory whose record the next commit writes (or
    /// removes, when the job is gone).
    pub(crate) dirty_jobs: HashSet<JobId>,
    /// Bodies whose last reference went; the next commit removes them.
    pub(crate) dirty_bodies: Vec<u64>,
    /// A flush is queued for the writer, so settlements need not queue another.
    pub(crate) flush_queued: bool,
    /// An acknowledgement waits for the next durable commit, so the next group must be one.
    pub(crate) sync_wanted: bool,
    /// How many groups the writer has begun; an acknowledgement made now is durable once group
    /// `planned + 1` (or a later one) has committed durably. Kept across a reload.
    pub(crate) planned: u64,
    /// The store was not closed cleanly, so the log's ends are to be restored
    /// ([`State::restore_ends`]) with this grace, at the first enqueue or sweep.
    pub(crate) restore: Option<Duration>,
    /// The writer is committing a group that changes the log: its changes are not applied yet
    /// or, for a group of fresh alerts handed to the lanes ahead of its fsync (`writer::Early`),
    /// may yet be taken back.
    pub(crate) log_unsettled: bool,
    /// The last commit failed with a storage error, so settlements are refused (they could not
    /// be persisted) until a commit succeeds again.
    pub(crate) failed: bool,
    pub(crate) dead_letter_cap: usize,
    pub(crate) dead_letter_retention: Option<Duration>,
    /// Records the load that made this state moved to the quarantine.
    pub(crate) quarantined: u64,
    /// The targets the sweeps have seen (write-through: the database holds the same records).
    pub(crate) targets: BTreeMap<TargetName, KnownTarget>,
    /// When a sweep can next find work in the log; `None` until a pass has scanned it.
    pub(crate) sweep_wake: Option<SweepWake>,
    /// The earliest end a re-send kept in memory gave an entry since the writer began planning
    /// its current group ([`State::take_repeats`]): a sweep in that group scanned before such a
    /// move, and the wake it applies after its commit must not forget it.
    pub(crate) repeats_low: Option<DateTime<Utc>>,
    /// Bodies released while a group is applied, tidied once it is ([`State::with_bodies_held`]).
    held_bodies: Option<Vec<u64>>,
    /// For a store whose state holds only the jobs an op needs (the PostgreSQL store loads
    /// them per op), the live jobs of each target as the store counted them; `None` when the
    /// state holds every live job.
    pub(crate) live_counts: Option<HashMap<TargetName, u64>>,
}

/// The earliest instant at which a sweep pass under this plan can find work in the log: the
/// earliest [`alert_core::sweep_due`] of its entries, brought forward by every entry set since
/// (see [`State::set_log`]). A pass before it, under the same plan, skips the log: with a million
/// active alerts a scan of every entry each second would cost more than everything else the
/// store does.
#[derive(Debug, PartialEq)]
pub(crate) struct SweepWake {
    pub(crate) targets: HashMap<TargetName, Option<Duration>>,
    pub(crate) retention: Duration,
    /// `None`: no entry will ever be due.
    pub(crate) at: Option<DateTime<Utc>>,
}

impl SweepWake {
    /// When `cached` can first be due for the sweep.
    pub(crate) fn due(&self, target: &TargetName, cached: &CachedLog) -> Option<DateTime<Utc>> {
        alert_core::sweep_due(
            &cached.entry,
            self.targets.get(target).copied(),
            self.retention,
        )
    }

    /// Brings the wake forward to `due`.
    pub(crate) fn lower(&mut self, due: Option<DateTime<Utc>>) {
        if let Some(due) = due {
            self.at = Some(self.at.map_or(due, |at| at.min(due)));
        }
    }
}

impl State {
    pub(crate) fn stats(&self) -> QueueStats {
        let jobs = self.jobs.values().map(|job| Counted {
            target: &job.target,
            priority: job.priority,
            enqueued_at: job.enqueued_at,
            leased: job.leased_until.is_some(),
        });
        queue_stats(jobs, self.dead_count)
    }

    /// The live jobs of `target` (see [`State::live_counts`]).
    pub(crate) fn live(&self, target: &TargetName) -> u64 {
        match &self.live_counts {
            Some(counts) => counts.get(target).copied().unwrap_or(0),
            None => self.index.live(target),
        }
    }

    /// The targets that have live jobs (or had, in a lane the index still keeps).
    pub(crate) fn targets_with_jobs(&self) -> Vec<TargetName> {
        match &self.live_counts {
            Some(counts) => counts
                .iter()
                .filter(|&(_, &n)| n > 0)
                .map(|(target, _)| target.clone())
                .collect(),
            None => self.index.lanes.keys().cloned().collect(),
        }
    }

    pub(crate) fn slot(&self, key: &Key) -> Slot {
        self.index.slot(key)
    }

    /// The body's alert, when it is in memory: always for a job's body, since a job is made
    /// with its alert, and a store that loads a job reads its alert too. A body that only log
    /// entries refer to is read from the store's tables ([`super::plan::Tables::read_body`]).
    pub(crate) fn alert(&self, body: u64) -> Option<&Arc<EnrichedAlert>> {
        self.bodies.get(&body).and_then(|b| b.alert.as_ref())
    }

    fn retain_log_body(&mut self, body: u64) {
        if let Some(b) = self.bodies.get_mut(&body) {
            b.logs += 1;
        }
    }

    fn retain_job_body(&mut self, body: u64) {
        if let Some(b) = self.bodies.get_mut(&body) {
            b.jobs += 1;
        }
    }

    fn release_log_body(&mut self, body: u64) {
        if let Some(b) = self.bodies.get_mut(&body) {
            b.logs = b.logs.saturating_sub(1);
        }
        self.tidy_body_later(body);
    }

    /// Drops a job's reference to `body`: with the last job its alert leaves memory.
    fn release_job_body(&mut self, body: u64) {
        if let Some(b) = self.bodies.get_mut(&body) {
            b.jobs = b.jobs.saturating_sub(1);
        }
        self.tidy_body_later(body);
    }

    fn tidy_body_later(&mut self, body: u64) {
        match &mut self.held_bodies {
            Some(held) => held.push(body),
            None => self.tidy_body(body),
        }
    }

    /// With no job left the alert leaves memory; with no reference at all the body goes, here
    /// and (with the next commit) on disk.
    fn tidy_body(&mut self, body: u64) {
        let Some(b) = self.bodies.get_mut(&body) else {
            return;
        };
        if b.jobs == 0 {
            b.alert = None;
        }
        if b.jobs == 0 && b.logs == 0 {
            self.bodies.remove(&body);
            super::lanes::shrink_if_sparse(&mut self.bodies);
            self.dirty_bodies.push(body);
        }
    }

    /// Runs `apply` with the bodies whose references it releases held until it is done. A
    /// group's effects may release a body's last reference before a later effect takes a new
    /// one (a batch that holds the same alert twice, with another state of it between them,
    /// makes one body that the middle state supersedes and the last one refers to again): the
    /// body must outlive the group's passing zero.
    pub(crate) fn with_bodies_held(&mut self, apply: impl FnOnce(&mut Self)) {
        let outer = self.held_bodies.replace(Vec::new());
        apply(self);
        let held = std::mem::replace(&mut self.held_bodies, outer).unwrap_or_default();
        for body in held {
            self.tidy_body_later(body);
        }
    }

    /// Adds a body no one refers to yet.
    pub(crate) fn insert_body(&mut self, id: u64, alert: Arc<EnrichedAlert>) {
        self.bodies.insert(
            id,
            Body {
                alert: Some(alert),
                ..Body::default()
            },
        );
    }

    /// Whether every settlement made in memory is written, and every ack durable, as far as the
    /// writer has been asked.
    pub(crate) fn settled(&self) -> bool {
        self.dirty_jobs.is_empty() && self.dirty_bodies.is_empty() && !self.sync_wanted
    }

    /// Restores the log's ends once, at `now`, if the store was not closed cleanly.
    ///
    /// Gives every firing entry the end a restart grants it (`crate::repeats`), since the
    /// re-sends kept in memory before the store was loaded are gone: `loaded_at` is now, and
    /// `grace` the time a sender that is still re-sending has to be heard again.
    pub(crate) fn restore_if_pending(&mut self, now: DateTime<Utc>) {
        if let Some(grace) = self.restore.take() {
            self.restore_ends(now, grace);
        }
    }

    fn restore_ends(&mut self, loaded_at: DateTime<Utc>, grace: Duration) {
        self.log.update_each(|_, _, cached| {
            if cached.entry.status != AlertStatus::Firing {
                return;
            }
            let restored = super::repeats::restored_ends_at(
                cached.durable_ends_at,
                cached.seen_at,
                loaded_at,
                grace,
            );
            cached.entry.ends_at = cached.entry.ends_at.max(restored);
        });
    }

    /// Takes a batch made only of re-sends that change nothing a target sees and need no write
    /// (`crate::repeats`): their entries' ends move in memory, and each is answered
    /// [`Admitted::Duplicate`]. `None` (nothing changed) when any admission needs the writer:
    /// it would make a job or a new entry, or move an end that must be written, or the writer is
    /// committing a change to the log (a sweep's resolve, say), which must come first.
    pub(crate) fn take_repeats(
        &mut self,
        batch: &[Admission],
        now: DateTime<Utc>,
    ) -> Option<Vec<Admitted>> {
        if self.log_unsettled || batch.is_empty() {
            return None;
        }
        // One lookup per admission: each end is moved at once, and put back should a later
        // admission need the writer (rare at steady state).
        let key = |admission: &Admission| {
            (
                admission.target.clone(),
                admission.alert.alert.fingerprint(),
            )
        };
        let mut moved: Vec<(usize, Option<DateTime<Utc>>)> = Vec::new();
        let mut wake_at = DateTime::<Utc>::MAX_UTC;
        for (i, admission) in batch.iter().enumerate() {
            let verdict = self.log.update(&key(admission), |cached| {
                match log_verdict(Some(&cached.entry), admission, now) {
                    LogVerdict::Duplicate { refresh: None } => true,
                    LogVerdict::Duplicate {
                        refresh: Some(entry),
                    } if !cached.must_write(entry.ends_at, now) => {
                        moved.push((i, cached.entry.ends_at));
                        cached.entry.ends_at = entry.ends_at;
                        // The entry's new end is the earliest it can be due (a resolve; an
                        // expiry comes later): the sweep's wake must not be after it.
                        wake_at = wake_at.min(entry.ends_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
                        true
                    }
                    _ => false,
                }
            });
            if verdict != Some(true) {
                // Latest first, so an alert moved twice in the batch gets its first end back.
                for (i, ends_at) in moved.into_iter().rev() {
                    self.log
                        .update(&key(&batch[i]), |cached| cached.entry.ends_at = ends_at);
                }
                return None;
            }
        }
        if !moved.is_empty() {
            if let Some(wake) = &mut self.sweep_wake {
                wake.lower(Some(wake_at));
            }
            self.repeats_low = Some(self.repeats_low.map_or(wake_at, |low| low.min(wake_at)));
        }
        Some(vec![Admitted::Duplicate; batch.len()])
    }

    /// Takes the in-memory ends of `old`'s entries that this freshly loaded state holds in the
    /// same delivery (same sequence, status and start): a reload after an I/O failure keeps what
    /// the re-sends kept in memory.
    pub(crate) fn keep_ends_of(&mut self, old: &State) {
        self.log.update_each(|target, fingerprint, cached| {
            if let Some(before) = old.log.get(&(target.clone(), fingerprint))
                && before.entry.sequence == cached.entry.sequence
                && before.entry.status == cached.entry.status
                && before.entry.starts_at == cached.entry.starts_at
            {
                cached.entry.ends_at = before.entry.ends_at;
            }
        });
    }

    /// Stores a log entry, moving its body reference.
    pub(crate) fn set_log(&mut self, key: Key, cached: CachedLog) {
        if let Some(wake) = &mut self.sweep_wake {
            let due = wake.due(&key.0, &cached);
            wake.lower(due);
        }
        self.retain_log_body(cached.body);
        if let Some(old) = self.log.insert(key, cached) {
            self.release_log_body(old.body);
        }
    }

    pub(crate) fn remove_log(&mut self, key: &Key) {
        if let Some(old) = self.log.remove(key) {
            self.release_log_body(old.body);
        }
    }

    /// Adds a job as pending. Its body's alert is in memory: see [`State::alert`].
    pub(crate) fn insert_job(&mut self, id: JobId, job: Job) {
        self.retain_job_body(job.body);
        self.jobs.insert(id, job);
        self.index_job(id);
    }

    /// Files a job under its lane's sets and its slot, pending or leased as it is.
    pub(crate) fn index_job(&mut self, id: JobId) {
        let place = place(&self.jobs[&id]);
        self.index.file(id, place);
    }

    /// Takes a job out of its lane's sets and its slot, leaving it in `jobs`.
    fn unindex(&mut self, id: JobId) {
        let place = place(&self.jobs[&id]);
        self.index.unfile(id, place);
    }

    /// Removes a job entirely, releasing its body; `None` when there is no such job.
    pub(crate) fn remove(&mut self, id: JobId) -> Option<Job> {
        if !self.jobs.contains_key(&id) {
            return None;
        }
        self.unindex(id);
        let job = self.jobs.remove(&id)?;
        super::lanes::shrink_if_sparse(&mut self.jobs);
        self.release_job_body(job.body);
        Some(job)
    }

    /// Removes a job here at once and from disk with the next commit.
    pub(crate) fn settle_remove(&mut self, id: JobId) {
        if self.remove(id).is_some() {
            self.dirty_jobs.insert(id);
        }
    }

    /// Puts a job back in its lane's ready set, due at `due`, with `attempts` consumed.
    pub(crate) fn requeue(&mut self, id: JobId, due: DateTime<Utc>, attempts: u32) {
        self.unindex(id);
        if let Some(job) = self.jobs.get_mut(&id) {
            job.due = due;
            job.attempts = attempts;
            job.leased_until = None;
        }
        self.index_job(id);
    }

    /// The jobs of `target` whose lease has expired at `now`.
    pub(crate) fn expired(&self, target: &TargetName, now: DateTime<Utc>) -> Vec<JobId> {
        self.index.expired(target, now)
    }

    /// Chooses up to `n` due jobs of `target` (see [`Index::pick`]), with the cycle position to
    /// keep once they are leased.
    pub(crate) fn pick(
        &self,
        target: &TargetName,
        n: usize,
        now: DateTime<Utc>,
    ) -> (Vec<JobId>, usize) {
        self.index
            .pick(target, n, now, |id| self.jobs[&id].fingerprint)
    }

    /// Moves a pending job to the leased set until `until`.
    pub(crate) fn mark_leased(&mut self, id: JobId, until: DateTime<Utc>) {
        if !self.jobs.contains_key(&id) {
            return;
        }
        self.unindex(id);
        if let Some(job) = self.jobs.get_mut(&id) {
            job.leased_until = Some(until);
        }
        self.index_job(id);
    }

    /// When the earliest pending job of `target` that is not due at `now` becomes due.
    pub(crate) fn next_due(
        &self,
        target: &TargetName,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.index.next_due(target, now)
    }

    /// Leases up to `n` due jobs of `target` until `now + ttl`, once the jobs whose lease
    /// expired are back in the ready set (a superseded one is settled by the expiry, and
    /// removed). An expired lease consumes its attempt: the lane may have sent the job before it
    /// lost the lease.
    pub(crate) fn lease(
        &mut self,
        target: &TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, JobStoreError> {
        for id in self.expired(target, now) {
            let job = &self.jobs[&id];
            if job.superseded {
                self.settle_remove(id);
            } else {
                let (due, attempts) = (job.due, job.attempts.saturating_add(1));
                self.requeue(id, due, attempts);
            }
        }
        let until = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let (picked, cycle) = self.pick(target, n, now);
        let mut jobs = Vec::with_capacity(picked.len());
        for id in picked {
            let job = &self.jobs[&id];
            let alert = self.alert(job.body).ok_or_else(|| {
                JobStoreError::storage(
                    StorageKind::Corrupt,
                    format!("the alert of job {id} is missing"),
                )
            })?;
            jobs.push(LeasedJob::new(
                id,
                job.target.clone(),
                Arc::clone(alert),
                job.status,
                Delivery::new(job.sequence, job.attempts.saturating_add(1)),
                job.priority,
                job.enqueued_at,
            ));
            self.mark_leased(id, until);
        }
        self.index.leased(target, cycle, now);
        Ok(Lease {
            drained: jobs.is_empty() && self.index.live(target) == 0,
            jobs,
            next_due: self.next_due(target, now),
        })
    }

    /// Settles a leased job: rescheduled with `how`, or acked with `None`; a job superseded
    /// while in flight is removed either way, since its newer state is already queued. The
    /// change is marked for the store's next write.
    pub(crate) fn settle(&mut self, id: JobId, how: Option<Reschedule>) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        match how {
            Some(how) if !job.superseded => {
                let attempts = if how.consume_attempt {
                    job.attempts.saturating_add(1)
                } else {
                    job.attempts
                };
                self.requeue(id, how.not_before, attempts);
                if let Some(job) = self.jobs.get_mut(&id)
                    && how.error.is_some()
                {
                    job.last_error = how.error;
                }
                self.dirty_jobs.insert(id);
            }
            _ => self.settle_remove(id),
        }
    }

    /// A new UUIDv7 dead-letter id for `now`, greater than every id this process made before.
    pub(crate) fn dead_letter_id(&self, now: DateTime<Utc>) -> DeadLetterId {
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

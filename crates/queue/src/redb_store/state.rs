//! The store's state in memory: the live jobs with their leases and per-target indexes, the
//! notification log, the alert bodies they refer to, and what the writer still has to persist.
//!
//! Everything a lease, an ack or an enqueue decision needs is here, so none of them reads the
//! database. The writer thread keeps the database in step: it applies a group's changes here
//! only after their commit succeeded, and it persists acks and reschedules (which change this
//! state at once) with its next commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Admission, Admitted, AlertStatus, DeadLetterId, EnrichedAlert, Fingerprint, JobError, JobId,
    JobStoreError, LogEntry, LogVerdict, Priority, QueueStats, TargetName, log_verdict,
};
use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableHandle};
use uuid::{ContextV7, Timestamp, Uuid};

use super::log_map::LogMap;
use super::records::{
    ALERTS, CLOSED_CLEANLY, DEAD, JOBS, LEGACY_TABLES, LOG, LOG_BY_TARGET, MESSAGE_REFS, META,
    NEXT_BODY, NEXT_JOB, QUARANTINE, Quarantined, StoredJob, StoredLog, TARGETS, decode,
    decode_alert, storage,
};
use crate::lanes::{Counted, Index, Place, queue_stats};
pub(super) use crate::lanes::{Key, Slot};
use crate::sweep::KnownTarget;

/// The default cap on dead-letter entries.
pub(super) const DEFAULT_DEAD_LETTER_CAP: usize = 100_000;

/// A live job. Its alert is the body it refers to.
#[derive(Debug)]
pub(super) struct JobMeta {
    pub(super) target: TargetName,
    pub(super) fingerprint: Fingerprint,
    pub(super) body: u64,
    /// The state it was made for; see [`alert_core::LeasedJob::status`].
    pub(super) status: AlertStatus,
    pub(super) sequence: u64,
    pub(super) attempts: u32,
    pub(super) priority: Priority,
    /// When it was enqueued, for [`QueueStats::oldest_enqueued_at`].
    pub(super) enqueued_at: DateTime<Utc>,
    pub(super) due: DateTime<Utc>,
    pub(super) last_error: Option<JobError>,
    pub(super) leased_until: Option<DateTime<Utc>>,
    /// A newer state of its (target, fingerprint) was accepted while it was leased, so settling
    /// it removes it. After a restart the newer job alone is kept, since the older one is no
    /// longer in flight.
    pub(super) superseded: bool,
}

impl JobMeta {
    /// The record the jobs table holds for it.
    pub(super) fn record(&self) -> StoredJob {
        StoredJob {
            target: self.target.clone(),
            fingerprint: self.fingerprint,
            body: self.body,
            sequence: self.sequence,
            attempts: self.attempts,
            priority: self.priority,
            status: Some(self.status),
            enqueued_at: self.enqueued_at,
            due: self.due,
            last_error: self.last_error.clone(),
        }
    }
}

/// The notification log's entry for one (target, fingerprint), as cached.
#[derive(Clone, Debug)]
pub(super) struct CachedLog {
    /// The entry as the last re-send left it. Its `ends_at` may be ahead of the database's: a
    /// re-send that only moves it is written only when a restart could not make up for it
    /// (`crate::repeats`).
    pub(super) entry: LogEntry,
    /// The last accepted alert.
    pub(super) body: u64,
    /// The `ends_at` the database holds.
    pub(super) durable_ends_at: Option<DateTime<Utc>>,
    /// When that `ends_at` was seen.
    pub(super) seen_at: DateTime<Utc>,
}

impl CachedLog {
    /// The entry as written to the database at `now`.
    pub(super) fn written(entry: LogEntry, body: u64, now: DateTime<Utc>) -> Self {
        Self {
            durable_ends_at: entry.ends_at,
            seen_at: now,
            entry,
            body,
        }
    }

    /// Whether a re-send that moves `ends_at` to `new` at `now` must be written.
    pub(super) fn must_write(&self, new: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        crate::repeats::must_write(self.durable_ends_at, self.seen_at, new, now)
    }
}

/// An alert body and how many jobs and log entries refer to it. The alert is held in memory
/// only while a job refers to it: a log entry needs its last accepted alert only to make a
/// sweep's job, and then reads it from the database, so the bodies of a fleet's active alerts,
/// once delivered, cost memory only for their counts.
#[derive(Debug, Default)]
pub(super) struct Body {
    pub(super) alert: Option<Arc<EnrichedAlert>>,
    pub(super) jobs: u32,
    pub(super) logs: u32,
}

/// The state in memory; see the module docs.
#[derive(Default)]
pub(super) struct State {
    pub(super) next_job: u64,
    pub(super) next_body: u64,
    pub(super) jobs: HashMap<JobId, JobMeta>,
    /// Where the live jobs are filed for leasing.
    pub(super) index: Index,
    /// The notification log, write-through: the database holds the same entries.
    pub(super) log: LogMap,
    pub(super) bodies: HashMap<u64, Body>,
    pub(super) dead_count: u64,
    /// Makes dead-letter ids increase even when `now` repeats or goes back.
    pub(super) ids: ContextV7,
    /// Jobs acked, rescheduled or dropped in memory whose record the next commit writes (or
    /// removes, when the job is gone).
    pub(super) dirty_jobs: HashSet<JobId>,
    /// Bodies whose last reference went; the next commit removes them.
    pub(super) dirty_bodies: Vec<u64>,
    /// A flush is queued for the writer, so settlements need not queue another.
    pub(super) flush_queued: bool,
    /// An acknowledgement waits for the next durable commit, so the next group must be one.
    pub(super) sync_wanted: bool,
    /// How many groups the writer has begun; an acknowledgement made now is durable once group
    /// `planned + 1` (or a later one) has committed durably. Kept across a reload.
    pub(super) planned: u64,
    /// The store was not closed cleanly, so the log's ends are to be restored
    /// ([`State::restore_ends`]) with this grace, at the first enqueue or sweep.
    pub(super) restore: Option<Duration>,
    /// The writer is committing a group that changes the log: its changes are not applied yet
    /// or, for a group of fresh alerts handed to the lanes ahead of its fsync (`writer::Early`),
    /// may yet be taken back.
    pub(super) log_unsettled: bool,
    /// The last commit failed with a storage error, so settlements are refused (they could not
    /// be persisted) until a commit succeeds again.
    pub(super) failed: bool,
    pub(super) dead_letter_cap: usize,
    pub(super) dead_letter_retention: Option<Duration>,
    /// Records the load that made this state moved to the quarantine.
    pub(super) quarantined: u64,
    /// The targets the sweeps have seen (write-through: the database holds the same records).
    pub(super) targets: BTreeMap<TargetName, KnownTarget>,
    /// When a sweep can next find work in the log; `None` until a pass has scanned it.
    pub(super) sweep_wake: Option<SweepWake>,
    /// The earliest end a re-send kept in memory gave an entry since the writer began planning
    /// its current group ([`State::take_repeats`]): a sweep in that group scanned before such a
    /// move, and the wake it applies after its commit must not forget it.
    pub(super) repeats_low: Option<DateTime<Utc>>,
    /// Bodies released while a group is applied, tidied once it is ([`State::with_bodies_held`]).
    held_bodies: Option<Vec<u64>>,
}

/// The earliest instant at which a sweep pass under this plan can find work in the log: the
/// earliest [`alert_core::sweep_due`] of its entries, brought forward by every entry set since
/// (see [`State::set_log`]). A pass before it, under the same plan, skips the log: with a million
/// active alerts a scan of every entry each second would cost more than everything else the
/// store does.
#[derive(Debug, PartialEq)]
pub(super) struct SweepWake {
    pub(super) targets: HashMap<TargetName, Option<Duration>>,
    pub(super) retention: Duration,
    /// `None`: no entry will ever be due.
    pub(super) at: Option<DateTime<Utc>>,
}

impl SweepWake {
    /// When `cached` can first be due for the sweep.
    pub(super) fn due(&self, target: &TargetName, cached: &CachedLog) -> Option<DateTime<Utc>> {
        alert_core::sweep_due(
            &cached.entry,
            self.targets.get(target).copied(),
            self.retention,
        )
    }

    /// Brings the wake forward to `due`.
    pub(super) fn lower(&mut self, due: Option<DateTime<Utc>>) {
        if let Some(due) = due {
            self.at = Some(self.at.map_or(due, |at| at.min(due)));
        }
    }
}

/// The quarantine table while the store is being loaded, and how many records it got.
pub(super) struct Quarantine<'t> {
    table: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(super) moved: u64,
}

impl<'t> Quarantine<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<Self, JobStoreError> {
        Ok(Self {
            table: txn.open_table(QUARANTINE).map_err(storage)?,
            moved: 0,
        })
    }

    /// Sets aside the record `key` of `table`, with its bytes and why it could not be read.
    pub(super) fn put(
        &mut self,
        table: &str,
        key: &str,
        bytes: Vec<u8>,
        why: &JobStoreError,
    ) -> Result<(), JobStoreError> {
        put_quarantined(&mut self.table, table, key, bytes, why)?;
        self.moved += 1;
        Ok(())
    }
}

/// Writes one record into the quarantine table.
pub(super) fn put_quarantined(
    table: &mut redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
    from: &str,
    key: &str,
    bytes: Vec<u8>,
    why: &JobStoreError,
) -> Result<(), JobStoreError> {
    let record = Quarantined {
        reason: why.to_string(),
        bytes,
    };
    table
        .insert((from, key), record.encode().as_slice())
        .map_err(storage)?;
    Ok(())
}

impl State {
    /// Reads the database into a fresh state, in one durable write transaction that also tidies
    /// what a crash can leave behind:
    /// - of two jobs of one (target, fingerprint), which a crash can leave when a newer state
    ///   superseded a leased job, the newer one is kept: with the lease gone, nothing is in
    ///   flight that the newer state must wait for;
    /// - an alert body no job and no log entry refers to (its last reference went in a commit
    ///   whose body removal had not been committed yet) is removed.
    pub(super) fn load(db: &Database) -> Result<Self, JobStoreError> {
        let mut txn = db.begin_write().map_err(storage)?;
        txn.set_durability(super::ingest_durability())
            .map_err(storage)?;
        let mut state = Self {
            dead_letter_cap: DEFAULT_DEAD_LETTER_CAP,
            ..Self::default()
        };
        let legacy: Vec<String> = txn
            .list_tables()
            .map_err(storage)?
            .map(|t| t.name().to_owned())
            .filter(|name| LEGACY_TABLES.contains(&name.as_str()))
            .collect();
        for name in legacy {
            let def = redb::TableDefinition::<'_, u64, &[u8]>::new(&name);
            let empty = match name.as_str() {
                "jobs" => txn.open_table(def).map_err(storage)?.is_empty(),
                _ => txn
                    .open_table(redb::TableDefinition::<'_, (&str, u64), &[u8]>::new(&name))
                    .map_err(storage)?
                    .is_empty(),
            }
            .map_err(storage)?;
            if !empty {
                return Err(JobStoreError::Storage(format!(
                    "the queue file holds a table ({name}) in the format of an earlier alertpub \
                     build; drain the queue with that build, or move the file aside"
                )));
            }
            txn.delete_table(def).map_err(storage)?;
        }
        migrate_log(&txn)?;
        {
            let mut jobs = txn.open_table(JOBS).map_err(storage)?;
            let mut alerts = txn.open_table(ALERTS).map_err(storage)?;
            let mut log = txn.open_table(LOG).map_err(storage)?;
            let mut quarantine = Quarantine::open(&txn)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            let dead = txn.open_table(DEAD).map_err(storage)?;
            txn.open_table(MESSAGE_REFS).map_err(storage)?;
            {
                let mut targets = txn.open_table(TARGETS).map_err(storage)?;
                let mut unreadable = Vec::new();
                for row in targets.iter().map_err(storage)? {
                    let (name, value) = row.map_err(storage)?;
                    let read = TargetName::new(name.value())
                        .map_err(|e| JobStoreError::Storage(e.to_string()))
                        .and_then(|n| decode::<KnownTarget>(value.value()).map(|r| (n, r)));
                    match read {
                        Ok((name, record)) => {
                            state.targets.insert(name, record);
                        }
                        Err(e) => {
                            unreadable.push((name.value().to_owned(), value.value().to_vec(), e))
                        }
                    }
                }
                // The next sweep records the target again (as removed now, if it is gone).
                for (name, bytes, e) in unreadable {
                    targets.remove(name.as_str()).map_err(storage)?;
                    quarantine.put(TARGETS.name(), &name, bytes, &e)?;
                }
            }
            state.dead_count = dead.len().map_err(storage)?;
            state.next_job = meta
                .get(NEXT_JOB)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            state.next_body = meta
                .get(NEXT_BODY)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            // After anything but a clean close, the ends kept in memory are lost.
            if meta.remove(CLOSED_CLEANLY).map_err(storage)?.is_none() {
                state.restore = Some(Duration::ZERO);
            }
            // A record that fails to decode (or refers to an alert that is not stored) is moved
            // to the quarantine rather than failing the open: one bad record must not keep the
            // server from starting. The rows are moved after each scan, since a table cannot
            // change while it is read.
            let mut bad: Vec<(u64, Vec<u8>, JobStoreError)> = Vec::new();
            for row in alerts.iter().map_err(storage)? {
                let (id, value) = row.map_err(storage)?;
                let id = id.value();
                state.next_body = state.next_body.max(id);
                // Every body is decoded, so an unreadable one is found now, but its alert is
                // kept only once a job refers to it.
                match decode_alert(value.value()) {
                    Ok(_) => {
                        state.bodies.insert(id, Body::default());
                    }
                    Err(e) => bad.push((id, value.value().to_vec(), e)),
                }
            }
            for (id, bytes, e) in bad.drain(..) {
                alerts.remove(id).map_err(storage)?;
                quarantine.put(ALERTS.name(), &id.to_string(), bytes, &e)?;
            }
            let mut bad_log: Vec<((u64, String), Vec<u8>, JobStoreError)> = Vec::new();
            for row in log.iter().map_err(storage)? {
                let (key, value) = row.map_err(storage)?;
                let (fingerprint, target) = key.value();
                let read = StoredLog::decode(value.value()).and_then(|stored| {
                    let target = TargetName::new(target).map_err(|e| {
                        JobStoreError::Storage(format!("a logged target name is invalid: {e}"))
                    })?;
                    state.check_body(stored.body)?;
                    Ok((target, stored))
                });
                match read {
                    Ok((target, stored)) => state.set_log(
                        (target, Fingerprint::from_u64(fingerprint)),
                        CachedLog {
                            entry: stored.entry(),
                            body: stored.body,
                            durable_ends_at: stored.ends_at,
                            seen_at: stored.seen_at,
                        },
                    ),
                    Err(e) => {
                        bad_log.push(((fingerprint, target.to_owned()), value.value().to_vec(), e))
                    }
                }
            }
            for ((fingerprint, target), bytes, e) in bad_log {
                log.remove((fingerprint, target.as_str()))
                    .map_err(storage)?;
                let key = format!("{fingerprint}/{target}");
                quarantine.put(LOG.name(), &key, bytes, &e)?;
            }
            let mut stale = Vec::new();
            for row in jobs.iter().map_err(storage)? {
                let (id, value) = row.map_err(storage)?;
                let id = JobId(id.value());
                state.next_job = state.next_job.max(id.0);
                let job = match StoredJob::decode(value.value()).and_then(|job| {
                    state.check_body(job.body)?;
                    state.load_alert(&alerts, job.body)?;
                    Ok(job)
                }) {
                    Ok(job) => job,
                    Err(e) => {
                        bad.push((id.0, value.value().to_vec(), e));
                        continue;
                    }
                };
                // A record of the first format kept no status: ingest decided it from the
                // alert's end when it enqueued the job.
                let status = match job.status {
                    Some(status) => status,
                    None => state
                        .alert(job.body)
                        .map_or(AlertStatus::Firing, |a| a.alert.status_at(job.enqueued_at)),
                };
                let key = (job.target.clone(), job.fingerprint);
                // Ids grow, so a job met later is the newer state of its key.
                if let Some(older) = state.slot(&key).pending {
                    state.remove(older);
                    stale.push(older);
                }
                state.insert_job(
                    id,
                    JobMeta {
                        target: job.target,
                        fingerprint: job.fingerprint,
                        body: job.body,
                        status,
                        sequence: job.sequence,
                        attempts: job.attempts,
                        priority: job.priority,
                        enqueued_at: job.enqueued_at,
                        due: job.due,
                        last_error: job.last_error,
                        leased_until: None,
                        superseded: false,
                    },
                );
            }
            for id in stale {
                jobs.remove(id.0).map_err(storage)?;
            }
            for (id, bytes, e) in bad {
                jobs.remove(id).map_err(storage)?;
                quarantine.put(JOBS.name(), &id.to_string(), bytes, &e)?;
            }
            state.quarantined = quarantine.moved;
            let mut orphans: Vec<u64> = state
                .bodies
                .iter()
                .filter(|(_, b)| b.jobs == 0 && b.logs == 0)
                .map(|(&id, _)| id)
                .collect();
            for id in &orphans {
                state.bodies.remove(id);
            }
            // The stale jobs' bodies, when those were their last references.
            orphans.append(&mut state.dirty_bodies);
            for id in orphans {
                alerts.remove(id).map_err(storage)?;
            }
            meta.insert(NEXT_JOB, state.next_job).map_err(storage)?;
            meta.insert(NEXT_BODY, state.next_body).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(state)
    }

    fn check_body(&self, body: u64) -> Result<(), JobStoreError> {
        if self.bodies.contains_key(&body) {
            Ok(())
        } else {
            Err(JobStoreError::Storage(format!(
                "a stored record refers to alert {body}, which is not stored"
            )))
        }
    }

    pub(super) fn stats(&self) -> QueueStats {
        let jobs = self.jobs.values().map(|job| Counted {
            target: &job.target,
            priority: job.priority,
            enqueued_at: job.enqueued_at,
            leased: job.leased_until.is_some(),
        });
        queue_stats(jobs, self.dead_count)
    }

    pub(super) fn slot(&self, key: &Key) -> Slot {
        self.index.slot(key)
    }

    /// The body's alert, when it is in memory: always for a job's body, since a job is made
    /// with its alert and a loaded job's is read ([`State::load_alert`]). A body that only log
    /// entries refer to is read from the database ([`read_alert`]).
    pub(super) fn alert(&self, body: u64) -> Option<&Arc<EnrichedAlert>> {
        self.bodies.get(&body).and_then(|b| b.alert.as_ref())
    }

    /// Reads the alert of `body` from `alerts` into memory, unless it is there already.
    fn load_alert(
        &mut self,
        alerts: &impl ReadableTable<u64, &'static [u8]>,
        body: u64,
    ) -> Result<(), JobStoreError> {
        if self.alert(body).is_some() {
            return Ok(());
        }
        let alert = read_alert(alerts, body)?;
        if let Some(b) = self.bodies.get_mut(&body) {
            b.alert = Some(alert);
        }
        Ok(())
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
            crate::lanes::shrink_if_sparse(&mut self.bodies);
            self.dirty_bodies.push(body);
        }
    }

    /// Runs `apply` with the bodies whose references it releases held until it is done. A
    /// group's effects may release a body's last reference before a later effect takes a new
    /// one (a batch that holds the same alert twice, with another state of it between them,
    /// makes one body that the middle state supersedes and the last one refers to again): the
    /// body must outlive the group's passing zero.
    pub(super) fn with_bodies_held(&mut self, apply: impl FnOnce(&mut Self)) {
        let outer = self.held_bodies.replace(Vec::new());
        apply(self);
        let held = std::mem::replace(&mut self.held_bodies, outer).unwrap_or_default();
        for body in held {
            self.tidy_body_later(body);
        }
    }

    /// Adds a body no one refers to yet.
    pub(super) fn insert_body(&mut self, id: u64, alert: Arc<EnrichedAlert>) {
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
    pub(super) fn settled(&self) -> bool {
        self.dirty_jobs.is_empty() && self.dirty_bodies.is_empty() && !self.sync_wanted
    }

    /// Restores the log's ends once, at `now`, if the store was not closed cleanly.
    ///
    /// Gives every firing entry the end a restart grants it (`crate::repeats`), since the
    /// re-sends kept in memory before the store was loaded are gone: `loaded_at` is now, and
    /// `grace` the time a sender that is still re-sending has to be heard again.
    pub(super) fn restore_if_pending(&mut self, now: DateTime<Utc>) {
        if let Some(grace) = self.restore.take() {
            self.restore_ends(now, grace);
        }
    }

    fn restore_ends(&mut self, loaded_at: DateTime<Utc>, grace: Duration) {
        self.log.update_each(|_, _, cached| {
            if cached.entry.status != AlertStatus::Firing {
                return;
            }
            let restored = crate::repeats::restored_ends_at(
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
    pub(super) fn take_repeats(
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
    pub(super) fn keep_ends_of(&mut self, old: &State) {
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
    pub(super) fn set_log(&mut self, key: Key, cached: CachedLog) {
        if let Some(wake) = &mut self.sweep_wake {
            let due = wake.due(&key.0, &cached);
            wake.lower(due);
        }
        self.retain_log_body(cached.body);
        if let Some(old) = self.log.insert(key, cached) {
            self.release_log_body(old.body);
        }
    }

    pub(super) fn remove_log(&mut self, key: &Key) {
        if let Some(old) = self.log.remove(key) {
            self.release_log_body(old.body);
        }
    }

    /// Adds a job as pending. Its body's alert is in memory: see [`State::alert`].
    pub(super) fn insert_job(&mut self, id: JobId, job: JobMeta) {
        self.retain_job_body(job.body);
        self.jobs.insert(id, job);
        self.index_job(id);
    }

    /// Files a job under its lane's sets and its slot, pending or leased as it is.
    pub(super) fn index_job(&mut self, id: JobId) {
        let place = place(&self.jobs[&id]);
        self.index.file(id, place);
    }

    /// Takes a job out of its lane's sets and its slot, leaving it in `jobs`.
    fn unindex(&mut self, id: JobId) {
        let place = place(&self.jobs[&id]);
        self.index.unfile(id, place);
    }

    /// Removes a job entirely, releasing its body; `None` when there is no such job.
    pub(super) fn remove(&mut self, id: JobId) -> Option<JobMeta> {
        if !self.jobs.contains_key(&id) {
            return None;
        }
        self.unindex(id);
        let job = self.jobs.remove(&id)?;
        crate::lanes::shrink_if_sparse(&mut self.jobs);
        self.release_job_body(job.body);
        Some(job)
    }

    /// Removes a job here at once and from disk with the next commit.
    pub(super) fn settle_remove(&mut self, id: JobId) {
        if self.remove(id).is_some() {
            self.dirty_jobs.insert(id);
        }
    }

    /// Puts a job back in its lane's ready set, due at `due`, with `attempts` consumed.
    pub(super) fn requeue(&mut self, id: JobId, due: DateTime<Utc>, attempts: u32) {
        self.unindex(id);
        if let Some(job) = self.jobs.get_mut(&id) {
            job.due = due;
            job.attempts = attempts;
            job.leased_until = None;
        }
        self.index_job(id);
    }

    /// The jobs of `target` whose lease has expired at `now`.
    pub(super) fn expired(&self, target: &TargetName, now: DateTime<Utc>) -> Vec<JobId> {
        self.index.expired(target, now)
    }

    /// Chooses up to `n` due jobs of `target` (see [`Index::pick`]), with the cycle position to
    /// keep once they are leased.
    pub(super) fn pick(
        &self,
        target: &TargetName,
        n: usize,
        now: DateTime<Utc>,
    ) -> (Vec<JobId>, usize) {
        self.index
            .pick(target, n, now, |id| self.jobs[&id].fingerprint)
    }

    /// Moves a pending job to the leased set until `until`.
    pub(super) fn mark_leased(&mut self, id: JobId, until: DateTime<Utc>) {
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
    pub(super) fn next_due(
        &self,
        target: &TargetName,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.index.next_due(target, now)
    }

    /// A new UUIDv7 dead-letter id for `now`, greater than every id this process made before.
    pub(super) fn dead_letter_id(&self, now: DateTime<Utc>) -> DeadLetterId {
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let timestamp = Timestamp::from_unix(&self.ids, secs, now.timestamp_subsec_nanos());
        DeadLetterId(Uuid::new_v7(timestamp).to_string())
    }
}

/// Moves the notification log of an earlier build, keyed by (target, fingerprint), into
/// [`LOG`], keyed by (fingerprint, target), and drops the old table. It runs in the opening
/// transaction, so a crash midway leaves the old table as it was.
fn migrate_log(txn: &redb::WriteTransaction) -> Result<(), JobStoreError> {
    let exists = txn
        .list_tables()
        .map_err(storage)?
        .any(|t| t.name() == LOG_BY_TARGET.name());
    if !exists {
        return Ok(());
    }
    {
        let old = txn.open_table(LOG_BY_TARGET).map_err(storage)?;
        let mut log = txn.open_table(LOG).map_err(storage)?;
        for row in old.iter().map_err(storage)? {
            let (key, value) = row.map_err(storage)?;
            let (target, fingerprint) = key.value();
            log.insert((fingerprint, target), value.value())
                .map_err(storage)?;
        }
    }
    txn.delete_table(LOG_BY_TARGET).map_err(storage)?;
    Ok(())
}

/// Where `job` is filed in the [`Index`].
fn place(job: &JobMeta) -> Place<'_> {
    Place {
        target: &job.target,
        fingerprint: job.fingerprint,
        priority: job.priority,
        due: job.due,
        leased_until: job.leased_until,
    }
}

/// Reads and decodes the alert `body` from the alerts table.
pub(super) fn read_alert(
    alerts: &impl ReadableTable<u64, &'static [u8]>,
    body: u64,
) -> Result<Arc<EnrichedAlert>, JobStoreError> {
    let value = alerts
        .get(body)
        .map_err(storage)?
        .ok_or_else(|| JobStoreError::Storage(format!("the alert {body} is not stored")))?;
    decode_alert(value.value()).map(Arc::new)
}

//! [`RedbJobStore`]: the [`JobStore`] contract on an embedded redb database, durable across
//! crashes.
//!
//! The database holds the jobs, the notification log, the dead-letter queue and a little
//! metadata. Leases, and the per-target indexes that make leasing cheap, live only in memory and
//! are rebuilt from the jobs table when the store is opened: after a crash every job is leasable
//! again at once, which is at-least-once delivery, and the delivery sequence lets targets drop
//! the repeat.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use alert_core::{
    Admission, Admitted, Alert, Annotations, BoxFuture, Classification, DeadLetter,
    DeadLetterFilter, DeadLetterId, DeadLetterPage, DeadReason, Delivery, EnrichedAlert,
    Fingerprint, JobError, JobId, JobStore, JobStoreError, Labels, Lease, LeasedJob, LogDecision,
    LogEntry, Priority, QueueStats, Reschedule, SweepAction, SweepPlan, SweepReport, TargetKind,
    TargetName, TargetQueueStats, log_decision, sweep_action,
};
use chrono::{DateTime, Utc};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageError, TableDefinition, TransactionError, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use uuid::{ContextV7, Timestamp, Uuid};

use crate::lanes::{CYCLE, level};
use crate::sweep::sweep_job;

/// The default cap on dead-letter entries.
const DEFAULT_DEAD_LETTER_CAP: usize = 100_000;

/// Live jobs by id: a [`StoredJob`] as JSON.
const JOBS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("jobs");
/// The notification log by (target, fingerprint): a [`StoredLog`] as JSON.
const LOG: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("notification_log");
/// The dead-letter queue by UUIDv7 id, so the table's order is the order they were made in: a
/// [`DeadLetter`] as JSON.
const DEAD: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("dead_letters");
/// Counters that must survive a restart.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The [`META`] key of the last job id handed out, so ids are never reused.
const NEXT_JOB: &str = "next_job";

/// The durability of the commits that accept work: ingest, moves to the dead-letter queue,
/// replays and purges. Their callers answer "accepted" once the commit returns, so the data must
/// be on disk (fsynced) by then. redb 4 offers `None` and `Immediate`; `Immediate` is the
/// strongest.
#[must_use]
pub(crate) const fn ingest_durability() -> Durability {
    Durability::Immediate
}

/// The durability of acknowledgements, reschedules and lease bookkeeping. Losing one in a crash
/// only delivers a job again (with the attempt count of its last durable commit), which
/// at-least-once delivery allows, so they skip the fsync and ride along on the next durable
/// commit or on a clean close.
#[must_use]
pub(crate) const fn settle_durability() -> Durability {
    Durability::None
}

/// A job store in a redb database file: the job queue, the notification log and the dead-letter
/// queue of the [`JobStore`] contract, durable across crashes.
///
/// Ingest ([`JobStore::enqueue_batch`]), sweeps, dead-lettering, replays and purges commit with
/// full durability (fsync) before they return. A sweep scans the log in a read transaction
/// without blocking ingest, then checks and writes what it found in one write transaction; a
/// pass that finds nothing to do commits nothing. Acknowledgements and reschedules commit without an
/// fsync and become durable with the next durable commit or when the store is dropped; a crash
/// before then delivers the job again. Leases are held in memory only, so after a restart every
/// job is leasable at once.
///
/// A storage failure (a full disk, an I/O error) fails the call with
/// [`JobStoreError::Storage`] and aborts its transaction, so nothing of it is persisted. redb
/// refuses every write after an I/O failure until the file is reopened, so the next write
/// reopens it and rebuilds the in-memory indexes from what is on disk (forgetting leases, as a
/// restart does); once the disk has room again the store carries on by itself.
///
/// It holds at most `max_jobs` live jobs and a capped number of dead letters (the oldest are
/// dropped first), optionally only those younger than a retention window. Every call runs on
/// tokio's blocking pool, so it needs a tokio runtime.
///
/// Beyond the contract it makes the same choices as [`MemoryJobStore`](crate::MemoryJobStore):
/// a lease that expires unsettled counts as a consumed attempt, a dead letter's `attempts`
/// counts the attempt in flight, and a replayed job keeps the dead letter's delivery sequence.
pub struct RedbJobStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The open database; `None` only while reopening it after an I/O failure has failed.
    db: RwLock<Option<Database>>,
    /// Opens the database again: redb refuses every write after an I/O failure (a full disk,
    /// say) until the file is reopened, and the store should recover once the disk has room.
    reopen: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    max_jobs: u64,
    dead_letter_cap: usize,
    dead_letter_retention: Option<Duration>,
    index: Mutex<Index>,
}

impl RedbJobStore {
    /// Opens the store at `path`, creating the file and its parent directories if needed, and
    /// rebuilds the in-memory indexes from the jobs it holds. It holds at most `max_jobs` live
    /// jobs and 100,000 dead letters.
    ///
    /// Opening a file that another store (in this process or another) has open fails.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the file cannot be created, opened or read.
    pub fn open(path: &Path, max_jobs: u64) -> Result<Self, JobStoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                JobStoreError::Storage(format!("creating {}: {e}", parent.display()))
            })?;
        }
        let owned = path.to_owned();
        let reopen = move || Database::create(&owned);
        Self::with_opener(path.to_owned(), max_jobs, Box::new(reopen))
    }

    fn with_opener(
        path: PathBuf,
        max_jobs: u64,
        reopen: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    ) -> Result<Self, JobStoreError> {
        let db = reopen()
            .map_err(|e| JobStoreError::Storage(format!("opening {}: {e}", path.display())))?;
        let index = rebuild(&db)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                db: RwLock::new(Some(db)),
                reopen,
                max_jobs,
                dead_letter_cap: DEFAULT_DEAD_LETTER_CAP,
                dead_letter_retention: None,
                index: Mutex::new(index),
            }),
        })
    }

    /// Keeps at most `cap` dead letters; when a new one would exceed it, the oldest is dropped.
    #[must_use]
    pub fn with_dead_letter_cap(mut self, cap: usize) -> Self {
        self.inner_mut().dead_letter_cap = cap;
        self
    }

    /// Drops dead letters older than `retention` (by when they were dead-lettered) whenever a new
    /// one is made.
    #[must_use]
    pub fn with_dead_letter_retention(mut self, retention: Duration) -> Self {
        self.inner_mut().dead_letter_retention = Some(retention);
        self
    }

    /// The bound on live jobs.
    #[must_use]
    pub fn max_jobs(&self) -> u64 {
        self.inner.max_jobs
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The notification log's entry for (`target`, `fingerprint`), if it has one.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the database cannot be read.
    pub fn log_entry(
        &self,
        target: &str,
        fingerprint: Fingerprint,
    ) -> Result<Option<LogEntry>, JobStoreError> {
        Ok(self
            .stored_log(target, fingerprint)?
            .map(|stored| stored.entry()))
    }

    /// The last alert the notification log accepted for (`target`, `fingerprint`), kept so a
    /// sweeper can make a resolve job for a firing alert that stopped arriving.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the database cannot be read.
    pub fn last_accepted_alert(
        &self,
        target: &str,
        fingerprint: Fingerprint,
    ) -> Result<Option<EnrichedAlert>, JobStoreError> {
        self.stored_log(target, fingerprint)?
            .map(|stored| stored.alert.into_alert())
            .transpose()
    }

    fn stored_log(
        &self,
        target: &str,
        fingerprint: Fingerprint,
    ) -> Result<Option<StoredLog>, JobStoreError> {
        let txn = self.inner.begin_read()?;
        let table = txn.open_table(LOG).map_err(storage)?;
        let value = table.get((target, fingerprint.as_u64())).map_err(storage)?;
        value.map(|v| decode(v.value())).transpose()
    }

    fn inner_mut(&mut self) -> &mut Inner {
        // The builder methods run before the store is shared, so the `Arc` is still unique.
        Arc::get_mut(&mut self.inner).expect("a store is configured before it is shared")
    }

    /// Runs `work` on tokio's blocking pool, since redb's calls block on the disk.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, JobStoreError> + Send + 'static,
    ) -> Result<T, JobStoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| JobStoreError::Storage(format!("the store's worker failed: {e}")))?
    }
}

impl fmt::Debug for RedbJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RedbJobStore");
        s.field("path", &self.inner.path)
            .field("max_jobs", &self.inner.max_jobs)
            .field("dead_letter_cap", &self.inner.dead_letter_cap);
        if let Ok(index) = self.inner.index.try_lock() {
            s.field("jobs", &index.jobs.len())
                .field("dead_letters", &index.dead_count);
        }
        s.finish_non_exhaustive()
    }
}

impl JobStore for RedbJobStore {
    fn enqueue_batch<'a>(
        &'a self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Admitted>, JobStoreError>> {
        Box::pin(self.blocking(move |inner| inner.enqueue(batch, now)))
    }

    fn lease<'a>(
        &'a self,
        target: &'a TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease, JobStoreError>> {
        let target = target.clone();
        Box::pin(self.blocking(move |inner| inner.lease(&target, n, ttl, now)))
    }

    fn ack<'a>(
        &'a self,
        job: JobId,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(self.blocking(move |inner| inner.ack(job)))
    }

    fn reschedule<'a>(
        &'a self,
        job: JobId,
        how: Reschedule,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(self.blocking(move |inner| inner.reschedule(job, how)))
    }

    fn dead_letter<'a>(
        &'a self,
        job: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DeadLetterId>, JobStoreError>> {
        Box::pin(self.blocking(move |inner| inner.dead_letter(job, kind, reason, error, now)))
    }

    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, JobStoreError>> {
        // The counts are all in memory, so this does not block on the disk.
        Box::pin(async move { Ok(self.inner.index()?.stats()) })
    }

    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        cursor: Option<&'a DeadLetterId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<DeadLetterPage, JobStoreError>> {
        let filter = filter.clone();
        let cursor = cursor.cloned();
        Box::pin(self.blocking(move |inner| inner.dead_letters(&filter, cursor.as_ref(), limit)))
    }

    fn replay<'a>(
        &'a self,
        id: &'a DeadLetterId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobId, JobStoreError>> {
        let id = id.clone();
        Box::pin(self.blocking(move |inner| inner.replay(&id, now)))
    }

    fn purge<'a>(&'a self, id: &'a DeadLetterId) -> BoxFuture<'a, Result<(), JobStoreError>> {
        let id = id.clone();
        Box::pin(self.blocking(move |inner| inner.purge(&id)))
    }

    fn sweep<'a>(
        &'a self,
        plan: &'a SweepPlan,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<SweepReport, JobStoreError>> {
        let plan = plan.clone();
        Box::pin(self.blocking(move |inner| inner.sweep(&plan, now)))
    }

    fn dead_letter_target<'a>(
        &'a self,
        target: &'a TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, JobStoreError>> {
        let target = target.clone();
        Box::pin(self.blocking(move |inner| inner.dead_letter_target(&target, kind, reason, now)))
    }
}

// === What is stored ===

/// One live job as the jobs table holds it. Leases are not stored: a restart forgets them.
#[derive(Debug, Serialize, Deserialize)]
struct StoredJob {
    target: TargetName,
    fingerprint: Fingerprint,
    alert: StoredAlert,
    sequence: u64,
    /// Attempts consumed so far.
    attempts: u32,
    priority: Priority,
    enqueued_at: DateTime<Utc>,
    /// When it may be leased.
    due: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<JobError>,
}

/// One notification-log entry with the alert it accepted. The times use chrono's own full
/// precision form rather than the wire's milliseconds, so a `startsAt` with finer precision
/// still compares equal to itself after a round trip.
#[derive(Debug, Serialize, Deserialize)]
struct StoredLog {
    status: alert_core::AlertStatus,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    sequence: u64,
    accepted_at: DateTime<Utc>,
    alert: StoredAlert,
}

impl StoredLog {
    fn new(entry: &LogEntry, alert: &EnrichedAlert) -> Self {
        Self {
            status: entry.status,
            starts_at: entry.starts_at,
            ends_at: entry.ends_at,
            sequence: entry.sequence,
            accepted_at: entry.accepted_at,
            alert: StoredAlert::new(alert),
        }
    }

    fn entry(&self) -> LogEntry {
        LogEntry {
            status: self.status,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            sequence: self.sequence,
            accepted_at: self.accepted_at,
        }
    }

    /// Records `entry`, keeping the accepted alert.
    fn set_entry(&mut self, entry: &LogEntry) {
        self.status = entry.status;
        self.starts_at = entry.starts_at;
        self.ends_at = entry.ends_at;
        self.sequence = entry.sequence;
        self.accepted_at = entry.accepted_at;
    }
}

/// A [`StoredLog`] without its alert: what a sweep's scan decodes, since it decides from the
/// entry alone and the alert is most of the record. serde skips the alert's JSON unparsed.
#[derive(Debug, Deserialize)]
struct StoredLogHead {
    status: alert_core::AlertStatus,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    sequence: u64,
    accepted_at: DateTime<Utc>,
}

impl StoredLogHead {
    fn entry(&self) -> LogEntry {
        LogEntry {
            status: self.status,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            sequence: self.sequence,
            accepted_at: self.accepted_at,
        }
    }
}

/// An alert as the database holds it. `EnrichedAlert`'s own JSON is the Alertmanager wire shape,
/// which writes the computed fingerprint but refuses it on input, and keeps times to the
/// millisecond; this form reads back exactly what was written.
#[derive(Debug, Serialize, Deserialize)]
struct StoredAlert {
    labels: Labels,
    annotations: Annotations,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generator_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enrichment: Option<serde_json::Map<String, serde_json::Value>>,
}

impl StoredAlert {
    fn new(alert: &EnrichedAlert) -> Self {
        let a = &alert.alert;
        Self {
            labels: a.labels().clone(),
            annotations: a.annotations().clone(),
            starts_at: a.starts_at(),
            ends_at: a.ends_at(),
            generator_url: a.generator_url().map(str::to_owned),
            classification: alert.classification.clone(),
            enrichment: alert.enrichment.clone(),
        }
    }

    fn into_alert(self) -> Result<EnrichedAlert, JobStoreError> {
        let alert = Alert::build(
            self.labels,
            self.annotations,
            self.starts_at,
            self.ends_at,
            self.generator_url,
        )
        .map_err(|e| JobStoreError::Storage(format!("a stored alert is invalid: {e}")))?;
        let mut alert = EnrichedAlert::new(alert);
        if let Some(classification) = self.classification {
            alert = alert.with_classification(classification);
        }
        if let Some(enrichment) = self.enrichment {
            alert = alert.with_enrichment(enrichment);
        }
        Ok(alert)
    }
}

/// A dead letter as the database holds it, with its alert as a [`StoredAlert`].
#[derive(Debug, Serialize, Deserialize)]
struct StoredDeadLetter {
    id: DeadLetterId,
    target: TargetName,
    kind: TargetKind,
    alert: StoredAlert,
    reason: DeadReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<JobError>,
    attempts: u32,
    sequence: u64,
    enqueued_at: DateTime<Utc>,
    dead_at: DateTime<Utc>,
}

impl StoredDeadLetter {
    fn new(entry: &DeadLetter) -> Self {
        Self {
            id: entry.id.clone(),
            target: entry.target.clone(),
            kind: entry.kind,
            alert: StoredAlert::new(&entry.alert),
            reason: entry.reason,
            last_error: entry.last_error.clone(),
            attempts: entry.attempts,
            sequence: entry.sequence,
            enqueued_at: entry.enqueued_at,
            dead_at: entry.dead_at,
        }
    }

    fn into_entry(self) -> Result<DeadLetter, JobStoreError> {
        let mut entry = DeadLetter::new(
            self.id,
            self.target,
            self.kind,
            self.alert.into_alert()?,
            self.reason,
            self.dead_at,
        );
        entry.last_error = self.last_error;
        entry.attempts = self.attempts;
        entry.sequence = self.sequence;
        entry.enqueued_at = self.enqueued_at;
        Ok(entry)
    }
}

fn read_dead(bytes: &[u8]) -> Result<DeadLetter, JobStoreError> {
    decode::<StoredDeadLetter>(bytes)?.into_entry()
}

/// A panic while a lock was held may have left the index half updated, so a poisoned store
/// refuses to work rather than serve inconsistent jobs.
fn poisoned() -> JobStoreError {
    JobStoreError::Storage("the store's state is poisoned".to_owned())
}

fn reopen_failed() -> JobStoreError {
    JobStoreError::Storage("the database could not be reopened after an I/O failure".to_owned())
}

fn storage(e: impl fmt::Display) -> JobStoreError {
    JobStoreError::Storage(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, JobStoreError> {
    serde_json::to_vec(value).map_err(|e| JobStoreError::Storage(format!("encoding: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, JobStoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| JobStoreError::Storage(format!("a stored record is unreadable: {e}")))
}

fn begin_write_on(
    db: &Database,
    durability: Durability,
) -> Result<WriteTransaction, JobStoreError> {
    let mut txn = db.begin_write().map_err(storage)?;
    txn.set_durability(durability).map_err(storage)?;
    Ok(txn)
}

// === The in-memory index ===

/// One (target, fingerprint): the unit of ordering and of the notification log.
type Key = (TargetName, Fingerprint);

/// What the index knows of a live job; the alert itself stays on disk.
#[derive(Debug)]
struct JobMeta {
    target: TargetName,
    fingerprint: Fingerprint,
    sequence: u64,
    attempts: u32,
    priority: Priority,
    /// When it was enqueued, for [`QueueStats::oldest_enqueued_at`].
    enqueued_at: DateTime<Utc>,
    due: DateTime<Utc>,
    leased_until: Option<DateTime<Utc>>,
    /// A newer state of its (target, fingerprint) was accepted while it was leased, so settling
    /// it removes it. After a restart the newer job alone is kept, since the older one is no
    /// longer in flight.
    superseded: bool,
}

/// One target's indexes.
#[derive(Debug, Default)]
struct Lane {
    /// Pending jobs by priority level, ordered by (due, id).
    ready: [BTreeSet<(DateTime<Utc>, JobId)>; 3],
    /// Leased jobs, ordered by (lease expiry, id).
    leased: BTreeSet<(DateTime<Utc>, JobId)>,
    /// The position in [`CYCLE`] of the next lease slot.
    cycle: usize,
}

/// The live jobs of one (target, fingerprint): at most one pending and one leased.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    pending: Option<JobId>,
    leased: Option<JobId>,
}

#[derive(Default)]
struct Index {
    next_job: u64,
    jobs: HashMap<JobId, JobMeta>,
    lanes: HashMap<TargetName, Lane>,
    slots: HashMap<Key, Slot>,
    dead_count: u64,
    /// Makes dead-letter ids increase even when `now` repeats or goes back.
    ids: ContextV7,
}

/// Reads the jobs table into a fresh index. Of two jobs of one (target, fingerprint), which a
/// crash can leave when a newer state superseded a leased job, the newer one is kept and the older
/// one removed: with the lease gone, nothing is in flight that the newer state must wait for.
fn rebuild(db: &Database) -> Result<Index, JobStoreError> {
    let txn = begin_write_on(db, ingest_durability())?;
    let mut index = Index::default();
    {
        let mut jobs = txn.open_table(JOBS).map_err(storage)?;
        let mut meta = txn.open_table(META).map_err(storage)?;
        let dead = txn.open_table(DEAD).map_err(storage)?;
        txn.open_table(LOG).map_err(storage)?;
        index.dead_count = dead.len().map_err(storage)?;
        index.next_job = meta
            .get(NEXT_JOB)
            .map_err(storage)?
            .map_or(0, |v| v.value());
        let mut stale = Vec::new();
        for row in jobs.iter().map_err(storage)? {
            let (id, value) = row.map_err(storage)?;
            let id = JobId(id.value());
            let job: StoredJob = decode(value.value())?;
            index.next_job = index.next_job.max(id.0);
            let key = (job.target.clone(), job.fingerprint);
            // Ids grow, so a job met later is the newer state of its key.
            if let Some(older) = index.slots.get(&key).and_then(|s| s.pending) {
                index.remove(older);
                stale.push(older);
            }
            index.jobs.insert(
                id,
                JobMeta {
                    target: job.target,
                    fingerprint: job.fingerprint,
                    sequence: job.sequence,
                    attempts: job.attempts,
                    priority: job.priority,
                    enqueued_at: job.enqueued_at,
                    due: job.due,
                    leased_until: None,
                    superseded: false,
                },
            );
            index.index_pending(id);
        }
        for id in stale {
            jobs.remove(id.0).map_err(storage)?;
        }
        meta.insert(NEXT_JOB, index.next_job).map_err(storage)?;
    }
    txn.commit().map_err(storage)?;
    Ok(index)
}

impl Index {
    fn stats(&self) -> QueueStats {
        let mut by_priority = [0; 3];
        let mut by_target: std::collections::BTreeMap<&str, (u64, u64)> =
            std::collections::BTreeMap::new();
        let mut oldest_enqueued_at = None::<DateTime<Utc>>;
        for job in self.jobs.values() {
            oldest_enqueued_at =
                Some(oldest_enqueued_at.map_or(job.enqueued_at, |o| o.min(job.enqueued_at)));
            by_priority[level(job.priority)] += 1;
            let counts = by_target.entry(job.target.as_str()).or_default();
            if job.leased_until.is_some() {
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
        }
        QueueStats {
            by_priority,
            by_target: by_target
                .into_iter()
                .map(|(target, (pending, leased))| TargetQueueStats {
                    target: target.to_owned(),
                    pending,
                    leased,
                })
                .collect(),
            dead_letters: self.dead_count,
            oldest_enqueued_at,
        }
    }

    /// Applies what a commit changed.
    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Remove(id) => {
                    self.remove(id);
                }
                Effect::MarkSuperseded(id) => {
                    if let Some(job) = self.jobs.get_mut(&id) {
                        job.superseded = true;
                    }
                }
                Effect::Insert(id, job) => {
                    self.jobs.insert(id, job);
                    self.index_pending(id);
                }
            }
        }
    }

    fn slot(&self, key: &Key) -> Slot {
        self.slots.get(key).copied().unwrap_or_default()
    }

    /// Files a job that is not leased under its lane's ready set and its slot's pending place.
    fn index_pending(&mut self, id: JobId) {
        let job = &self.jobs[&id];
        let lane = self.lanes.entry(job.target.clone()).or_default();
        lane.ready[level(job.priority)].insert((job.due, id));
        self.slots
            .entry((job.target.clone(), job.fingerprint))
            .or_default()
            .pending = Some(id);
    }

    /// Takes a job out of its lane's sets and its slot, leaving it in `jobs`.
    fn unindex(&mut self, id: JobId) {
        let job = &self.jobs[&id];
        if let Some(lane) = self.lanes.get_mut(&job.target) {
            match job.leased_until {
                Some(until) => lane.leased.remove(&(until, id)),
                None => lane.ready[level(job.priority)].remove(&(job.due, id)),
            };
        }
        let key = (job.target.clone(), job.fingerprint);
        if let Some(slot) = self.slots.get_mut(&key) {
            if slot.pending == Some(id) {
                slot.pending = None;
            }
            if slot.leased == Some(id) {
                slot.leased = None;
            }
            if slot.pending.is_none() && slot.leased.is_none() {
                self.slots.remove(&key);
            }
        }
    }

    /// Removes a job entirely; `None` when there is no such job.
    fn remove(&mut self, id: JobId) -> Option<JobMeta> {
        if !self.jobs.contains_key(&id) {
            return None;
        }
        self.unindex(id);
        self.jobs.remove(&id)
    }

    /// Puts a job back in its lane's ready set, due at `due`, with `attempts` consumed.
    fn requeue(&mut self, id: JobId, due: DateTime<Utc>, attempts: u32) {
        self.unindex(id);
        if let Some(job) = self.jobs.get_mut(&id) {
            job.due = due;
            job.attempts = attempts;
            job.leased_until = None;
        }
        self.index_pending(id);
    }

    /// The jobs of `target` whose lease has expired at `now`.
    fn expired(&self, target: &TargetName, now: DateTime<Utc>) -> Vec<JobId> {
        self.lanes.get(target).map_or_else(Vec::new, |lane| {
            lane.leased
                .range(..=(now, JobId(u64::MAX)))
                .map(|&(_, id)| id)
                .collect()
        })
    }

    /// Chooses up to `n` due jobs of `target`, by priority share, oldest due first per level,
    /// skipping jobs whose (target, fingerprint) has a job in flight. Returns them with the
    /// cycle position to keep once they are leased.
    fn pick(&self, target: &TargetName, n: usize, now: DateTime<Utc>) -> (Vec<JobId>, usize) {
        let Some(lane) = self.lanes.get(target) else {
            return (Vec::new(), 0);
        };
        let mut candidates: [VecDeque<JobId>; 3] = Default::default();
        for (ready, out) in lane.ready.iter().zip(&mut candidates) {
            *out = ready
                .range(..=(now, JobId(u64::MAX)))
                .map(|&(_, id)| id)
                .filter(|id| {
                    let job = &self.jobs[id];
                    self.slot(&(job.target.clone(), job.fingerprint))
                        .leased
                        .is_none()
                })
                .take(n)
                .collect();
        }
        let mut cycle = lane.cycle;
        let mut picked = Vec::with_capacity(n.min(candidates.iter().map(VecDeque::len).sum()));
        while picked.len() < n {
            // A level with nothing due gives its slot to the highest level that has something.
            let wanted = level(CYCLE[cycle % CYCLE.len()]);
            let Some(id) = candidates[wanted]
                .pop_front()
                .or_else(|| candidates.iter_mut().find_map(VecDeque::pop_front))
            else {
                break;
            };
            picked.push(id);
            cycle = (cycle + 1) % CYCLE.len();
        }
        (picked, cycle)
    }

    /// Moves a pending job to the leased set until `until`.
    fn mark_leased(&mut self, id: JobId, until: DateTime<Utc>) {
        self.unindex(id);
        let job = self.jobs.get_mut(&id).expect("a picked job is live");
        job.leased_until = Some(until);
        let key = (job.target.clone(), job.fingerprint);
        self.lanes
            .entry(key.0.clone())
            .or_default()
            .leased
            .insert((until, id));
        self.slots.entry(key).or_default().leased = Some(id);
    }

    /// When the earliest pending job of `target` that is not due at `now` becomes due.
    fn next_due(&self, target: &TargetName, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let lane = self.lanes.get(target)?;
        lane.ready
            .iter()
            .filter_map(|ready| {
                ready
                    .range((Bound::Excluded((now, JobId(u64::MAX))), Bound::Unbounded))
                    .next()
                    .map(|&(due, _)| due)
            })
            .min()
    }

    /// A new UUIDv7 dead-letter id for `now`, greater than every id this process made before.
    fn dead_letter_id(&self, now: DateTime<Utc>) -> DeadLetterId {
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let timestamp = Timestamp::from_unix(&self.ids, secs, now.timestamp_subsec_nanos());
        DeadLetterId(Uuid::new_v7(timestamp).to_string())
    }
}

// === The operations ===

/// What an enqueue commit changes in the index, applied only once the commit succeeded.
enum Effect {
    Remove(JobId),
    MarkSuperseded(JobId),
    Insert(JobId, JobMeta),
}

/// One (target, fingerprint) as a batch sees it while it is being planned.
struct Planned {
    log: Option<LogEntry>,
    slot: Slot,
    /// Whether the slot's leased job has already been superseded.
    leased_superseded: bool,
}

impl Inner {
    fn index(&self) -> Result<MutexGuard<'_, Index>, JobStoreError> {
        self.index.lock().map_err(|_| poisoned())
    }

    fn begin_read(&self) -> Result<ReadTransaction, JobStoreError> {
        let db = self.db.read().map_err(|_| poisoned())?;
        db.as_ref()
            .ok_or_else(reopen_failed)?
            .begin_read()
            .map_err(storage)
    }

    /// Begins a write transaction. The caller holds the index lock, so no other write
    /// transaction is alive. When redb refuses because an earlier write failed (it latches an
    /// I/O failure until the file is reopened), the database is reopened and the index rebuilt
    /// from what is on disk, then the transaction is begun on the fresh handle. Leases are lost
    /// with the rebuild, which delivers the jobs in flight again: at least once, as after a
    /// crash.
    fn begin_write(
        &self,
        index: &mut Index,
        durability: Durability,
    ) -> Result<WriteTransaction, JobStoreError> {
        {
            let db = self.db.read().map_err(|_| poisoned())?;
            if let Some(db) = db.as_ref() {
                match db.begin_write() {
                    Ok(mut txn) => {
                        txn.set_durability(durability).map_err(storage)?;
                        return Ok(txn);
                    }
                    Err(TransactionError::Storage(StorageError::PreviousIo)) => {}
                    Err(e) => return Err(storage(e)),
                }
            }
        }
        let mut db = self.db.write().map_err(|_| poisoned())?;
        // The old handle must be closed first: it holds the file's lock.
        drop(db.take());
        let fresh = (self.reopen)().map_err(|e| {
            JobStoreError::Storage(format!(
                "reopening {} after an I/O failure: {e}",
                self.path.display()
            ))
        })?;
        *index = rebuild(&fresh)?;
        let txn = begin_write_on(&fresh, durability)?;
        *db = Some(fresh);
        Ok(txn)
    }

    fn enqueue(
        &self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Admitted>, JobStoreError> {
        // The index lock is held through the commit, so the index and the database change
        // together; redb admits one write transaction at a time anyway.
        let mut index = self.index()?;
        let txn = self.begin_write(&mut index, ingest_durability())?;
        let mut answers = Vec::with_capacity(batch.len());
        let mut effects = Vec::new();
        let mut next_job = index.next_job;
        let mut added: u64 = 0;
        {
            let mut jobs = txn.open_table(JOBS).map_err(storage)?;
            let mut log = txn.open_table(LOG).map_err(storage)?;
            let mut plans: HashMap<Key, Planned> = HashMap::new();
            for admission in batch {
                let key = (
                    admission.target.clone(),
                    admission.alert.alert.fingerprint(),
                );
                let log_key = (key.0.as_str(), key.1.as_u64());
                if !plans.contains_key(&key) {
                    let stored = log.get(log_key).map_err(storage)?;
                    let entry = stored
                        .map(|v| decode::<StoredLog>(v.value()))
                        .transpose()?
                        .map(|s| s.entry());
                    let slot = index.slot(&key);
                    let leased_superseded = slot
                        .leased
                        .and_then(|id| index.jobs.get(&id))
                        .is_some_and(|j| j.superseded);
                    plans.insert(
                        key.clone(),
                        Planned {
                            log: entry,
                            slot,
                            leased_superseded,
                        },
                    );
                }
                let plan = plans.get_mut(&key).expect("planned just above");
                match log_decision(plan.log.as_ref(), &admission, now) {
                    LogDecision::Duplicate { refresh } => {
                        // A refresh only extends the entry's `endsAt`; the accepted alert stays,
                        // since the re-send was not accepted as a delivery. A refresh implies an
                        // entry, stored before or earlier in this batch.
                        if let Some(entry) = refresh {
                            let mut stored = match log.get(log_key).map_err(storage)? {
                                Some(v) => decode::<StoredLog>(v.value())?,
                                None => {
                                    return Err(JobStoreError::Storage(format!(
                                        "the log entry of {} {} vanished",
                                        key.0, key.1
                                    )));
                                }
                            };
                            stored.set_entry(&entry);
                            log.insert(log_key, encode(&stored)?.as_slice())
                                .map_err(storage)?;
                            plan.log = Some(entry);
                        }
                        answers.push(Admitted::Duplicate);
                    }
                    LogDecision::Enqueue {
                        alert,
                        sequence,
                        entry,
                    } => {
                        let superseded = if let Some(old) = plan.slot.pending {
                            jobs.remove(old.0).map_err(storage)?;
                            effects.push(Effect::Remove(old));
                            Some(old)
                        } else if let Some(old) = plan.slot.leased
                            && !plan.leased_superseded
                        {
                            plan.leased_superseded = true;
                            effects.push(Effect::MarkSuperseded(old));
                            Some(old)
                        } else {
                            None
                        };
                        // Replacing a pending job does not grow the queue.
                        if plan.slot.pending.is_none() {
                            added += 1;
                        }
                        next_job += 1;
                        let id = JobId(next_job);
                        let priority = Priority::of(&alert, alert.alert.status_at(now));
                        let stored_log = StoredLog::new(&entry, &alert);
                        log.insert(log_key, encode(&stored_log)?.as_slice())
                            .map_err(storage)?;
                        let job = StoredJob {
                            target: key.0.clone(),
                            fingerprint: key.1,
                            alert: StoredAlert::new(&alert),
                            sequence,
                            attempts: 0,
                            priority,
                            enqueued_at: now,
                            due: now,
                            last_error: None,
                        };
                        jobs.insert(id.0, encode(&job)?.as_slice())
                            .map_err(storage)?;
                        effects.push(Effect::Insert(
                            id,
                            JobMeta {
                                target: key.0.clone(),
                                fingerprint: key.1,
                                sequence,
                                attempts: 0,
                                priority,
                                enqueued_at: now,
                                due: now,
                                leased_until: None,
                                superseded: false,
                            },
                        ));
                        plan.log = Some(entry);
                        plan.slot.pending = Some(id);
                        answers.push(Admitted::Enqueued {
                            job: id,
                            sequence,
                            superseded,
                        });
                    }
                }
            }
            // A refused batch is dropped with the transaction, which aborts it: nothing of it,
            // log updates included, is persisted.
            if added > 0 && index.jobs.len() as u64 + added > self.max_jobs {
                return Err(JobStoreError::Full {
                    max_jobs: self.max_jobs,
                });
            }
            if next_job != index.next_job {
                let mut meta = txn.open_table(META).map_err(storage)?;
                meta.insert(NEXT_JOB, next_job).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        index.next_job = next_job;
        index.apply(effects);
        Ok(answers)
    }

    fn lease(
        &self,
        target: &TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, JobStoreError> {
        let mut index = self.index()?;
        // Expired leases go back to the ready set; a superseded job whose lease expired is
        // settled by the expiry and removed, on disk first.
        let expired = index.expired(target, now);
        let gone: Vec<JobId> = expired
            .iter()
            .copied()
            .filter(|id| index.jobs[id].superseded)
            .collect();
        if !gone.is_empty() {
            let txn = self.begin_write(&mut index, settle_durability())?;
            {
                let mut jobs = txn.open_table(JOBS).map_err(storage)?;
                for id in &gone {
                    jobs.remove(id.0).map_err(storage)?;
                }
            }
            txn.commit().map_err(storage)?;
        }
        for id in expired {
            let job = &index.jobs[&id];
            if job.superseded {
                index.remove(id);
            } else {
                // The lane may have sent the job before it lost the lease, so the attempt counts.
                let (due, attempts) = (job.due, job.attempts.saturating_add(1));
                index.requeue(id, due, attempts);
            }
        }

        let until = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let (picked, cycle) = index.pick(target, n, now);
        let mut jobs = Vec::with_capacity(picked.len());
        if !picked.is_empty() {
            let txn = self.begin_read()?;
            let table = txn.open_table(JOBS).map_err(storage)?;
            for &id in &picked {
                let value = table.get(id.0).map_err(storage)?.ok_or_else(|| {
                    JobStoreError::Storage(format!("job {id} is indexed but not stored"))
                })?;
                let stored: StoredJob = decode(value.value())?;
                let meta = &index.jobs[&id];
                jobs.push(LeasedJob::new(
                    id,
                    stored.target,
                    stored.alert.into_alert()?,
                    Delivery::new(meta.sequence, meta.attempts.saturating_add(1)),
                    meta.priority,
                    stored.enqueued_at,
                ));
            }
        }
        // Only now that every job was read are they marked leased, so a failed read leases none.
        for &id in &picked {
            index.mark_leased(id, until);
        }
        if let Some(lane) = index.lanes.get_mut(target) {
            lane.cycle = cycle;
        }
        Ok(Lease {
            jobs,
            next_due: index.next_due(target, now),
        })
    }

    fn ack(&self, id: JobId) -> Result<(), JobStoreError> {
        let mut index = self.index()?;
        if !index.jobs.contains_key(&id) {
            return Ok(());
        }
        self.remove_job(&mut index, id, settle_durability())?;
        index.remove(id);
        Ok(())
    }

    fn remove_job(
        &self,
        index: &mut Index,
        id: JobId,
        durability: Durability,
    ) -> Result<(), JobStoreError> {
        let txn = self.begin_write(index, durability)?;
        txn.open_table(JOBS)
            .map_err(storage)?
            .remove(id.0)
            .map_err(storage)?;
        txn.commit().map_err(storage)
    }

    fn reschedule(&self, id: JobId, how: Reschedule) -> Result<(), JobStoreError> {
        let mut index = self.index()?;
        let Some(meta) = index.jobs.get(&id) else {
            return Ok(());
        };
        if meta.superseded {
            self.remove_job(&mut index, id, settle_durability())?;
            index.remove(id);
            return Ok(());
        }
        let attempts = if how.consume_attempt {
            meta.attempts.saturating_add(1)
        } else {
            meta.attempts
        };
        let txn = self.begin_write(&mut index, settle_durability())?;
        {
            let mut jobs = txn.open_table(JOBS).map_err(storage)?;
            let value = jobs
                .get(id.0)
                .map_err(storage)?
                .ok_or_else(|| JobStoreError::Storage(format!("job {id} is not stored")))?;
            let mut job: StoredJob = decode(value.value())?;
            drop(value);
            job.attempts = attempts;
            job.due = how.not_before;
            if how.error.is_some() {
                job.last_error = how.error;
            }
            jobs.insert(id.0, encode(&job)?.as_slice())
                .map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        index.requeue(id, how.not_before, attempts);
        Ok(())
    }

    fn dead_letter(
        &self,
        id: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> Result<Option<DeadLetterId>, JobStoreError> {
        let mut index = self.index()?;
        let Some(meta) = index.jobs.get(&id) else {
            return Ok(None);
        };
        if meta.superseded {
            self.remove_job(&mut index, id, settle_durability())?;
            index.remove(id);
            return Ok(None);
        }
        let attempts = if meta.leased_until.is_some() {
            meta.attempts.saturating_add(1)
        } else {
            meta.attempts
        };
        let dead_id = index.dead_letter_id(now);
        let txn = self.begin_write(&mut index, ingest_durability())?;
        let mut count = index.dead_count;
        let kept;
        {
            let mut jobs = txn.open_table(JOBS).map_err(storage)?;
            let value = jobs
                .remove(id.0)
                .map_err(storage)?
                .ok_or_else(|| JobStoreError::Storage(format!("job {id} is not stored")))?;
            let job: StoredJob = decode(value.value())?;
            drop(value);
            let mut entry = DeadLetter::new(
                dead_id.clone(),
                job.target,
                kind,
                job.alert.into_alert()?,
                reason,
                now,
            );
            entry.last_error = error.or(job.last_error);
            entry.attempts = attempts;
            entry.sequence = job.sequence;
            entry.enqueued_at = job.enqueued_at;
            let mut dead = txn.open_table(DEAD).map_err(storage)?;
            dead.insert(
                dead_id.0.as_str(),
                encode(&StoredDeadLetter::new(&entry))?.as_slice(),
            )
            .map_err(storage)?;
            count += 1;
            count = self.trim_dead(&mut dead, count, now)?;
            kept = dead.get(dead_id.0.as_str()).map_err(storage)?.is_some();
        }
        txn.commit().map_err(storage)?;
        index.remove(id);
        index.dead_count = count;
        Ok(kept.then_some(dead_id))
    }

    /// Drops the oldest dead letters beyond the cap or the retention window; takes and returns
    /// the table's entry count.
    fn trim_dead(
        &self,
        dead: &mut redb::Table<'_, &'static str, &'static [u8]>,
        mut count: u64,
        now: DateTime<Utc>,
    ) -> Result<u64, JobStoreError> {
        let cutoff = self
            .dead_letter_retention
            .and_then(|r| chrono::Duration::from_std(r).ok())
            .and_then(|r| now.checked_sub_signed(r));
        // Ids sort by when they were made, so the oldest entries come first.
        loop {
            let Some((_, first)) = dead.first().map_err(storage)? else {
                break;
            };
            let over_cap = count > self.dead_letter_cap as u64;
            let expired = match cutoff {
                Some(cutoff) => decode::<StoredDeadLetter>(first.value())?.dead_at < cutoff,
                None => false,
            };
            drop(first);
            if !over_cap && !expired {
                break;
            }
            dead.pop_first().map_err(storage)?;
            count -= 1;
        }
        Ok(count)
    }

    fn dead_letter_target(
        &self,
        target: &TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> Result<u64, JobStoreError> {
        let mut index = self.index()?;
        let Some(lane) = index.lanes.get(target) else {
            return Ok(0);
        };
        let mut ids: Vec<JobId> = lane
            .ready
            .iter()
            .flatten()
            .chain(&lane.leased)
            .map(|&(_, id)| id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        // In the order they were made, so the entries' ids sort the same way.
        ids.sort_unstable();
        let txn = self.begin_write(&mut index, ingest_durability())?;
        let mut count = index.dead_count;
        let mut moved = 0;
        {
            let mut jobs = txn.open_table(JOBS).map_err(storage)?;
            let mut dead = txn.open_table(DEAD).map_err(storage)?;
            for &id in &ids {
                let meta = &index.jobs[&id];
                let value = jobs
                    .remove(id.0)
                    .map_err(storage)?
                    .ok_or_else(|| JobStoreError::Storage(format!("job {id} is not stored")))?;
                // Its successor is moved with it; the older state would only be replayed over
                // it.
                if meta.superseded {
                    continue;
                }
                let job: StoredJob = decode(value.value())?;
                drop(value);
                let dead_id = index.dead_letter_id(now);
                let mut entry = DeadLetter::new(
                    dead_id.clone(),
                    job.target,
                    kind,
                    job.alert.into_alert()?,
                    reason,
                    now,
                );
                entry.last_error = job.last_error;
                // The attempt in flight counts, as `dead_letter` counts it: the lane may have
                // sent it.
                entry.attempts = if meta.leased_until.is_some() {
                    meta.attempts.saturating_add(1)
                } else {
                    meta.attempts
                };
                entry.sequence = job.sequence;
                entry.enqueued_at = job.enqueued_at;
                dead.insert(
                    dead_id.0.as_str(),
                    encode(&StoredDeadLetter::new(&entry))?.as_slice(),
                )
                .map_err(storage)?;
                count += 1;
                moved += 1;
            }
            count = self.trim_dead(&mut dead, count, now)?;
        }
        txn.commit().map_err(storage)?;
        for id in ids {
            index.remove(id);
        }
        index.dead_count = count;
        Ok(moved)
    }

    fn sweep(&self, plan: &SweepPlan, now: DateTime<Utc>) -> Result<SweepReport, JobStoreError> {
        let targets: HashMap<&str, Option<Duration>> = plan
            .targets
            .iter()
            .map(|(name, interval)| (name.as_str(), *interval))
            .collect();
        let action = |entry: &LogEntry, target: &str| {
            sweep_action(entry, targets.get(target).copied(), plan.log_retention, now)
        };
        // The scan reads the whole log, so it runs in a read transaction without the index lock
        // and does not hold up ingest. The write transaction below checks each entry it found
        // again, since ingest may have changed it since.
        let mut work = Vec::new();
        let mut expired = Vec::new();
        {
            let txn = self.begin_read()?;
            let log = txn.open_table(LOG).map_err(storage)?;
            for row in log.iter().map_err(storage)? {
                let (key, value) = row.map_err(storage)?;
                let (target, fingerprint) = key.value();
                let entry = decode::<StoredLogHead>(value.value())?.entry();
                let key = (target.to_owned(), fingerprint);
                match action(&entry, target) {
                    SweepAction::Resolve { since } | SweepAction::Refresh { since } => {
                        work.push((since, key));
                    }
                    SweepAction::Expire => expired.push(key),
                    _ => {}
                }
            }
        }
        let mut report = SweepReport::default();
        if work.is_empty() && expired.is_empty() {
            return Ok(report);
        }
        // Longest overdue first, so a bounded pass leaves the freshest work for the next one.
        work.sort_unstable();

        let mut index = self.index()?;
        let txn = self.begin_write(&mut index, ingest_durability())?;
        let mut effects = Vec::new();
        let mut next_job = index.next_job;
        let mut live = index.jobs.len() as u64;
        {
            let mut jobs = txn.open_table(JOBS).map_err(storage)?;
            let mut log = txn.open_table(LOG).map_err(storage)?;
            for (target, fingerprint) in &expired {
                let log_key = (target.as_str(), *fingerprint);
                let still = match log.get(log_key).map_err(storage)? {
                    Some(v) => {
                        action(&decode::<StoredLogHead>(v.value())?.entry(), target)
                            == SweepAction::Expire
                    }
                    None => false,
                };
                if still {
                    log.remove(log_key).map_err(storage)?;
                    report.expired_log_entries += 1;
                }
            }
            let mut made = 0_usize;
            for (_, (target, fingerprint)) in &work {
                if made >= plan.max_jobs_per_pass {
                    break;
                }
                let log_key = (target.as_str(), *fingerprint);
                let Some(stored) = log
                    .get(log_key)
                    .map_err(storage)?
                    .map(|v| decode::<StoredLog>(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                let entry = stored.entry();
                let resolve = match action(&entry, target) {
                    SweepAction::Resolve { .. } => true,
                    SweepAction::Refresh { .. } => false,
                    // Ingest changed the entry since the scan; nothing to do any more.
                    _ => continue,
                };
                let name = TargetName::new(target).map_err(|e| {
                    JobStoreError::Storage(format!("a logged target name is invalid: {e}"))
                })?;
                let key = (name, Fingerprint::from_u64(*fingerprint));
                let slot = index.slot(&key);
                // A refresh is for an alert that is not on its way already.
                if !resolve && (slot.pending.is_some() || slot.leased.is_some()) {
                    continue;
                }
                // Replacing a pending job does not grow the queue.
                if slot.pending.is_none() && live >= self.max_jobs {
                    continue;
                }
                let last = stored.alert.into_alert()?;
                let LogDecision::Enqueue {
                    alert,
                    sequence,
                    entry,
                } = sweep_job(&entry, &last, now)?
                else {
                    unreachable!("a sweep job is always an enqueue")
                };
                let superseded = if let Some(old) = slot.pending {
                    jobs.remove(old.0).map_err(storage)?;
                    effects.push(Effect::Remove(old));
                    true
                } else {
                    if let Some(old) = slot.leased
                        && !index.jobs[&old].superseded
                    {
                        effects.push(Effect::MarkSuperseded(old));
                    }
                    false
                };
                if !superseded {
                    live += 1;
                }
                next_job += 1;
                let id = JobId(next_job);
                let priority = Priority::of(&alert, alert.alert.status_at(now));
                log.insert(log_key, encode(&StoredLog::new(&entry, &alert))?.as_slice())
                    .map_err(storage)?;
                let job = StoredJob {
                    target: key.0.clone(),
                    fingerprint: key.1,
                    alert: StoredAlert::new(&alert),
                    sequence,
                    attempts: 0,
                    priority,
                    enqueued_at: now,
                    due: now,
                    last_error: None,
                };
                jobs.insert(id.0, encode(&job)?.as_slice())
                    .map_err(storage)?;
                effects.push(Effect::Insert(
                    id,
                    JobMeta {
                        target: key.0.clone(),
                        fingerprint: key.1,
                        sequence,
                        attempts: 0,
                        priority,
                        enqueued_at: now,
                        due: now,
                        leased_until: None,
                        superseded: false,
                    },
                ));
                made += 1;
                if resolve {
                    report.resolved += 1;
                } else {
                    report.refreshed += 1;
                }
                report.targets.push(key.0);
            }
            if next_job != index.next_job {
                let mut meta = txn.open_table(META).map_err(storage)?;
                meta.insert(NEXT_JOB, next_job).map_err(storage)?;
            }
        }
        if report == SweepReport::default() {
            // Nothing changed after all (ingest got there first): no commit, no fsync.
            txn.abort().map_err(storage)?;
            return Ok(report);
        }
        txn.commit().map_err(storage)?;
        index.next_job = next_job;
        index.apply(effects);
        report.targets.sort_unstable();
        report.targets.dedup();
        Ok(report)
    }

    fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        cursor: Option<&DeadLetterId>,
        limit: usize,
    ) -> Result<DeadLetterPage, JobStoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(DEAD).map_err(storage)?;
        let start = cursor.map_or(Bound::Unbounded, |c| Bound::Excluded(c.0.as_str()));
        let mut entries = Vec::new();
        let mut more = false;
        for row in table
            .range::<&str>((start, Bound::Unbounded))
            .map_err(storage)?
        {
            let (_, value) = row.map_err(storage)?;
            let entry = read_dead(value.value())?;
            if !filter.matches(&entry) {
                continue;
            }
            if entries.len() == limit {
                // A cursor only when something matching follows, so the last page says it is the
                // last.
                more = true;
                break;
            }
            entries.push(entry);
        }
        let next_cursor = if more {
            entries.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(DeadLetterPage {
            entries,
            next_cursor,
        })
    }

    fn replay(&self, id: &DeadLetterId, now: DateTime<Utc>) -> Result<JobId, JobStoreError> {
        let mut index = self.index()?;
        let txn = self.begin_write(&mut index, ingest_durability())?;
        let job_id = JobId(index.next_job + 1);
        let meta;
        {
            let mut dead = txn.open_table(DEAD).map_err(storage)?;
            let entry: DeadLetter = match dead.get(id.0.as_str()).map_err(storage)? {
                Some(value) => read_dead(value.value())?,
                None => return Err(JobStoreError::NotFound),
            };
            let key = (entry.target.clone(), entry.alert.alert.fingerprint());
            let log = txn.open_table(LOG).map_err(storage)?;
            let newer_accepted = match log.get((key.0.as_str(), key.1.as_u64())).map_err(storage)? {
                Some(value) => decode::<StoredLog>(value.value())?.sequence > entry.sequence,
                None => false,
            };
            // A live job of the same (target, fingerprint) is the same state or a newer one.
            let slot = index.slot(&key);
            if newer_accepted || slot.pending.is_some() || slot.leased.is_some() {
                return Err(JobStoreError::Superseded);
            }
            if index.jobs.len() as u64 >= self.max_jobs {
                return Err(JobStoreError::Full {
                    max_jobs: self.max_jobs,
                });
            }
            dead.remove(id.0.as_str()).map_err(storage)?;
            let priority = Priority::of(&entry.alert, entry.alert.alert.status_at(now));
            let job = StoredJob {
                target: key.0.clone(),
                fingerprint: key.1,
                alert: StoredAlert::new(&entry.alert),
                sequence: entry.sequence,
                attempts: 0,
                priority,
                enqueued_at: now,
                due: now,
                last_error: None,
            };
            txn.open_table(JOBS)
                .map_err(storage)?
                .insert(job_id.0, encode(&job)?.as_slice())
                .map_err(storage)?;
            txn.open_table(META)
                .map_err(storage)?
                .insert(NEXT_JOB, job_id.0)
                .map_err(storage)?;
            meta = JobMeta {
                target: key.0,
                fingerprint: key.1,
                sequence: entry.sequence,
                attempts: 0,
                priority,
                enqueued_at: now,
                due: now,
                leased_until: None,
                superseded: false,
            };
        }
        txn.commit().map_err(storage)?;
        index.next_job = job_id.0;
        index.dead_count = index.dead_count.saturating_sub(1);
        index.jobs.insert(job_id, meta);
        index.index_pending(job_id);
        Ok(job_id)
    }

    fn purge(&self, id: &DeadLetterId) -> Result<(), JobStoreError> {
        let mut index = self.index()?;
        let txn = self.begin_write(&mut index, ingest_durability())?;
        let removed = txn
            .open_table(DEAD)
            .map_err(storage)?
            .remove(id.0.as_str())
            .map_err(storage)?
            .is_some();
        if !removed {
            return Err(JobStoreError::NotFound);
        }
        txn.commit().map_err(storage)?;
        index.dead_count = index.dead_count.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use alert_core::Admission;
    use redb::StorageBackend;
    use redb::backends::InMemoryBackend;

    use super::*;

    #[test]
    fn ingest_and_dead_letter_moves_commit_with_fsync() {
        // `Immediate` is redb 4's strongest durability: the commit is on disk when it returns.
        assert!(matches!(ingest_durability(), Durability::Immediate));
    }

    #[test]
    fn settlements_ride_along_on_the_next_durable_commit() {
        assert!(matches!(settle_durability(), Durability::None));
    }

    /// A backend whose writes and syncs fail while `failing` is set, as a full disk's would.
    #[derive(Debug)]
    struct FlakyDisk {
        inner: Arc<InMemoryBackend>,
        failing: Arc<AtomicBool>,
    }

    impl FlakyDisk {
        fn check(&self) -> std::io::Result<()> {
            if self.failing.load(Ordering::SeqCst) {
                Err(std::io::Error::other("no space left on device"))
            } else {
                Ok(())
            }
        }
    }

    impl StorageBackend for FlakyDisk {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }

        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.inner.read(offset, out)
        }

        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }

        fn sync_data(&self) -> std::io::Result<()> {
            self.check()?;
            self.inner.sync_data()
        }

        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn admission(name: &str) -> Admission {
        let labels: Labels = [("alertname".to_owned(), name.to_owned())].into();
        let alert = Alert::build(labels, Annotations::new(), at(0), Some(at(86_400)), None);
        Admission::new(
            TargetName::new("t").unwrap(),
            EnrichedAlert::new(alert.unwrap()),
            None,
        )
    }

    #[tokio::test]
    async fn a_failing_disk_is_a_storage_error_that_persists_nothing_and_heals() {
        let failing = Arc::new(AtomicBool::new(false));
        let memory = Arc::new(InMemoryBackend::new());
        let (flag, disk) = (Arc::clone(&failing), Arc::clone(&memory));
        let opener = move || {
            Database::builder().create_with_backend(FlakyDisk {
                inner: Arc::clone(&disk),
                failing: Arc::clone(&flag),
            })
        };
        let store =
            RedbJobStore::with_opener(PathBuf::from("memory"), 100, Box::new(opener)).unwrap();
        let target = TargetName::new("t").unwrap();
        store
            .enqueue_batch(vec![admission("Before")], at(0))
            .await
            .unwrap();
        let before = store.stats().await.unwrap();

        failing.store(true, Ordering::SeqCst);
        let refused = store
            .enqueue_batch(vec![admission("During1"), admission("During2")], at(1))
            .await;
        assert!(
            matches!(refused, Err(JobStoreError::Storage(_))),
            "{refused:?}"
        );
        assert_eq!(
            store.stats().await.unwrap(),
            before,
            "the index is unchanged"
        );
        // While the disk stays full, every write is an error, never a panic.
        let ack = store.ack(JobId(1), at(1)).await;
        assert!(matches!(ack, Err(JobStoreError::Storage(_))), "{ack:?}");

        // Once the disk has room, the store reopens the database and carries on, and nothing of
        // the failed batch was committed: not its jobs, not its log entries.
        failing.store(false, Ordering::SeqCst);
        let answers = store
            .enqueue_batch(vec![admission("During1")], at(2))
            .await
            .unwrap();
        let Admitted::Enqueued { sequence, job, .. } = answers[0] else {
            panic!("the failed batch's alert must be new, got {answers:?}");
        };
        assert_eq!(sequence, 1, "the failed batch wrote no log entry");
        assert_eq!(job, JobId(2), "the failed batch used up no job id");
        let fingerprint = admission("During2").alert.alert.fingerprint();
        assert_eq!(store.log_entry("t", fingerprint), Ok(None));
        let lease = store
            .lease(&target, 10, Duration::from_secs(60), at(3))
            .await
            .unwrap();
        let mut names: Vec<_> = lease
            .jobs
            .iter()
            .map(|j| j.alert.alert.name().unwrap().to_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["Before", "During1"]);
    }
}

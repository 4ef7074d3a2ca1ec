//! [`RedbJobStore`]: the [`JobStore`](alert_core::JobStore) contract on an embedded redb database, durable across
//! crashes, and [`RedbMessageRefs`], the durable message references in the same file.
//!
//! # Design
//!
//! - **A single writer with group commit** ([`writer`]): one thread owns every write
//!   transaction. Ingest, dead-lettering, replays, purges, sweeps and message references are
//!   sent to it through a bounded channel; it commits whatever is queued in one transaction and
//!   one fsync, then answers each caller.
//! - **State in memory** ([`state`]): the live jobs with their leases and per-target indexes, the
//!   notification log (write-through: the database holds the same entries) and the alert bodies
//!   they refer to. Leasing is an in-memory hand-off (a committed job is filed under its lane's
//!   ready set when its commit returns, never found by scanning tables), and enqueue decisions
//!   read the cached log, not the database.
//! - **Acks and reschedules ride on the next commit**: they change the state at once and mark
//!   the job for the writer, which persists it with its next group. A reschedule is answered at
//!   once (losing it in a crash only repeats a failed attempt); an ack is answered when a
//!   durable commit begun after it is done (the writer publishes each durable group's number on
//!   a watch channel), so a lane keeps the job leased until its ack is on disk and a crash
//!   re-delivers at most the jobs the lanes held.
//! - **Each alert body is stored once** per ingest batch, in the `alerts` table under an id of its
//!   own; the batch's jobs and log entries refer to it, and it is removed once the last of them
//!   is gone.
//!
//! Leases live in memory only, and the state is rebuilt from the tables when the store is
//! opened: after a crash every job is leasable again at once, which is at-least-once delivery,
//! and the delivery sequence lets targets drop the repeat.

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod health;
#[cfg(test)]
mod health_tests;
mod history;
mod load;
pub(crate) mod records;
mod writer;

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alert_core::{
    Admission, Admitted, BoxFuture, BrokenReason, DeadLetterFilter, DeadLetterId, DeadLetterPage,
    DeadLetterQueue, DeadReason, EnrichedAlert, Fingerprint, IngestQueue, JobError, JobId,
    JobStoreError, LaneQueue, Lease, LogEntry, MessageRef, MessageRefStore, NewWork,
    QueueMaintenance, QueueStats, Reschedule, StorageKind, StoreHealth, SweepPlan, SweepReport,
    TargetKind, TargetName,
};
use chrono::{DateTime, Utc};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, StorageError, TransactionError,
    WriteTransaction,
};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use self::health::{Health, Now};
use self::records::{
    DEAD, MESSAGE_REFS, QUARANTINE, Quarantined, dead_id_floor, decode, read_dead, read_dead_head,
    storage,
};
use self::writer::Op;
use crate::model::State;

/// How many reads of the dead-letter queue run at once. Each holds a thread of tokio's blocking
/// pool for as long as it scans, and that pool is small and shared: the HTTP client resolves
/// host names on it, so an operator listing or replaying a large dead-letter queue from several
/// terminals must not leave the deliveries waiting for a thread.
pub(crate) const DLQ_SCANS: usize = 2;

/// How many ops may wait for the writer. A full channel makes callers wait, which is the
/// back-pressure ingest needs; it is far above what one group commits.
const OPS_CAPACITY: usize = 1_024;
/// redb's own page cache (its default is 1 GiB). The state the store reads lives in memory, so
/// the cache serves only the pages a commit rewrites; the kernel's page cache holds the rest.
const PAGE_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How long settlements wait for a commit to ride on before they ask the writer for one of their
/// own. Under load, ingest's commits come every few milliseconds and carry them, so they cost no
/// commit (and no fsync) of their own; at quiet times the acks of one alert's targets share one
/// fsync instead of making one each, and that fsync no longer lands just when the next alert
/// arrives, which would then wait for it. A lane delivers at most four times its in-flight
/// limit per ack latency, so this also bounds a lane draining a backlog with no ingest about:
/// 64 jobs per 5 ms and fsync.
pub(super) const SETTLE_GATHER: Duration = Duration::from_millis(5);

/// The durability of the commits that accept work: ingest, moves to the dead-letter queue,
/// replays, purges and sweeps. Their callers answer "accepted" once the commit returns, so the
/// data must be on disk (fsynced) by then. redb 4 offers `None` and `Immediate`; `Immediate` is
/// the strongest. A group that holds any such op commits with it.
#[must_use]
pub(crate) const fn ingest_durability() -> Durability {
    Durability::Immediate
}

/// The durability of a group that only carries acknowledgements and reschedules. Losing one in
/// a crash only delivers a job again (with the attempt count of its last durable commit), which
/// at-least-once delivery allows, so they skip the fsync and become durable with the next
/// durable commit, or the writer's last commit when the store is closed.
#[must_use]
pub(crate) const fn settle_durability() -> Durability {
    Durability::None
}

/// A job store in a redb database file: the job queue, the notification log and the dead-letter
/// queue of the [`JobStore`](alert_core::JobStore) contract, durable across crashes.
///
/// Ingest ([`IngestQueue::enqueue_batch`]), sweeps, dead-lettering, replays and purges are answered
/// once their commit is on disk (fsync). Concurrent calls share commits: a single writer thread
/// commits whatever is queued in one transaction. Leases, acks and reschedules are answered from
/// memory without waiting for the disk; acks and reschedules are written with the writer's next
/// commit, so a crash before then delivers the job again (at least once). Leases are held in
/// memory only, so after a restart every job is leasable at once.
///
/// A storage failure (a full disk, an I/O error) fails the calls of the group it hit with
/// [`JobStoreError::Storage`] and commits nothing of them. Until a commit succeeds again, acks
/// and reschedules are refused too, since they could not be persisted. redb refuses every
/// write after an I/O failure until the file is reopened, so the next write reopens it and
/// reloads the state from disk (forgetting leases, as a restart does); once the disk has room
/// again the store carries on by itself.
///
/// It holds at most `max_jobs` live jobs and a capped number of dead letters (the oldest are
/// dropped first), optionally only those younger than a retention window. The notification log
/// and the alerts its entries and the live jobs refer to are kept in memory as well as on disk.
/// Reads of the dead-letter queue and of message references run on tokio's blocking pool, so
/// the store needs a tokio runtime. Dropping the store closes its writer: the writer commits
/// what is still queued, makes one last durable commit, and is joined.
///
/// Beyond the contract it makes the same choices as [`MemoryJobStore`](crate::MemoryJobStore):
/// a lease that expires unsettled counts as a consumed attempt, a dead letter's `attempts`
/// counts the attempt in flight, and a replayed job keeps the dead letter's delivery sequence.
pub struct RedbJobStore {
    shared: Arc<Shared>,
    /// `None` only while the store is being dropped: closing it stops the writer.
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

/// What the callers and the writer share.
struct Shared {
    path: PathBuf,
    /// The open database; `None` only while reopening it after an I/O failure has failed.
    db: RwLock<Option<Database>>,
    /// Opens the database again: redb refuses every write after an I/O failure (a full disk,
    /// say) until the file is reopened, and the store should recover once the disk has room.
    reopen: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    max_jobs: u64,
    /// The quota of each target; `u64::MAX` when there is none.
    max_jobs_per_target: AtomicU64,
    /// The most notification-log entries; `u64::MAX` when there is no bound.
    max_active_alerts: AtomicU64,
    state: Mutex<State>,
    /// The last group committed durably and the last that failed ([`State::planned`] numbers
    /// them): what acknowledgements wait for.
    committed: watch::Sender<Committed>,
    /// The writer holds a settlements-only flush for [`SETTLE_GATHER`] and wants to hear of any
    /// op at once.
    holding_flush: AtomicBool,
    /// Told each target that got new jobs, as soon as a lane could lease them (see
    /// [`LaneQueue::on_new_work`] below).
    new_work: RwLock<Option<NewWork>>,
    /// Failed commits in a row, the reopen backoff and the counters of [`StoreHealth`].
    health: Health,
    /// Admits [`DLQ_SCANS`] reads of the dead-letter queue at once.
    dlq_scans: Semaphore,
    /// Called by each dead-letter scan as it starts, on its blocking thread.
    #[cfg(test)]
    scan_hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// See [`Shared::committed`].
#[derive(Clone, Copy, Debug, Default)]
struct Committed {
    durable: u64,
    failed: u64,
}

impl RedbJobStore {
    /// Opens the store at `path`, creating the file and its parent directories if needed, and
    /// loads its state. It holds at most `max_jobs` live jobs and 100,000 dead letters.
    ///
    /// Opening a file that another store (in this process or another) has open fails, and so
    /// does opening a file whose jobs were written in the format of an earlier build.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the file cannot be created, opened or read, or the
    /// writer thread cannot be started.
    pub fn open(path: &Path, max_jobs: u64) -> Result<Self, JobStoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                JobStoreError::Storage(
                    alert_core::StorageError::new(
                        StorageKind::Io,
                        format!("creating {}: {e}", parent.display()),
                    )
                    .with_source(e),
                )
            })?;
        }
        let owned = path.to_owned();
        let reopen = move || {
            redb::Builder::new()
                .set_cache_size(PAGE_CACHE_BYTES)
                .create(&owned)
        };
        Self::with_opener(path.to_owned(), max_jobs, Box::new(reopen))
    }

    fn with_opener(
        path: PathBuf,
        max_jobs: u64,
        reopen: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
    ) -> Result<Self, JobStoreError> {
        Self::with_opener_and_clock(path, max_jobs, reopen, Arc::new(Instant::now))
    }

    fn with_opener_and_clock(
        path: PathBuf,
        max_jobs: u64,
        reopen: Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>,
        clock: Now,
    ) -> Result<Self, JobStoreError> {
        let db = reopen()
            .map_err(|e| records::storage_while(&format!("opening {}", path.display()), e))?;
        let state = State::load(&db)?;
        let health = Health::new(clock);
        health.add_quarantined(state.quarantined);
        let shared = Arc::new(Shared {
            path,
            db: RwLock::new(Some(db)),
            reopen,
            max_jobs,
            max_jobs_per_target: AtomicU64::new(u64::MAX),
            max_active_alerts: AtomicU64::new(u64::MAX),
            state: Mutex::new(state),
            committed: watch::Sender::new(Committed::default()),
            holding_flush: AtomicBool::new(false),
            new_work: RwLock::new(None),
            health,
            dlq_scans: Semaphore::new(DLQ_SCANS),
            #[cfg(test)]
            scan_hook: std::sync::OnceLock::new(),
        });
        let (ops, receiver) = mpsc::channel(OPS_CAPACITY);
        let for_writer = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("queue-writer".to_owned())
            .spawn(move || writer::run(&for_writer, receiver))
            .map_err(|e| {
                JobStoreError::storage(
                    StorageKind::Broken,
                    format!("starting the writer thread: {e}"),
                )
            })?;
        Ok(Self {
            shared,
            ops: Some(ops),
            writer: Some(writer),
        })
    }

    /// Reads `clock` where no caller hands the store a time (default: `SystemClock`), as
    /// [`MemoryJobStore::with_clock`](crate::MemoryJobStore::with_clock) does: whether a lane is
    /// behind, which paces the writer's group commits. Give it the clock that stamps the
    /// store's jobs. (The writer thread's own short waits are OS-thread waits on real time.)
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn alert_core::Clock>) -> Self {
        if let Ok(mut state) = self.shared.state() {
            state.index.clock = crate::model::lanes::StoreClock(clock);
        }
        self
    }

    /// Gives every firing entry of the notification log at least `grace` (the server gives
    /// `resolve_timeout`) from now before the sweep resolves it on its own, and at least its
    /// own lead, when the store was not closed cleanly: the re-sends that only moved an entry's
    /// `endsAt` were kept in memory, and the crash lost them (see `docs/ARCHITECTURE.md`,
    /// "Re-sends"). The grace counts from the first enqueue or sweep; without this call the
    /// lead alone is granted.
    #[must_use]
    pub fn with_restart_grace(self, grace: Duration) -> Self {
        if let Ok(mut state) = self.shared.state()
            && state.restore.is_some()
        {
            state.restore = Some(grace);
        }
        self
    }

    /// Holds at most `n` live jobs per target: an admission that would add a job to a target
    /// holding `n` is refused alone ([`alert_core::Admitted::TargetFull`]), and so is a replay
    /// ([`JobStoreError::TargetFull`]); a sweep leaves such work for a later pass.
    #[must_use]
    pub fn with_max_jobs_per_target(self, n: u64) -> Self {
        self.shared.max_jobs_per_target.store(n, Ordering::Relaxed);
        self
    }

    /// Holds at most `n` notification-log entries (one per (target, fingerprint)): a batch that
    /// would add entries past it is refused whole ([`JobStoreError::TooManyActiveAlerts`]).
    #[must_use]
    pub fn with_max_active_alerts(self, n: u64) -> Self {
        self.shared.max_active_alerts.store(n, Ordering::Relaxed);
        self
    }

    /// Keeps at most `cap` dead letters; when a new one would exceed it, the oldest is dropped.
    #[must_use]
    pub fn with_dead_letter_cap(self, cap: usize) -> Self {
        if let Ok(mut state) = self.shared.state() {
            state.dead_letter_cap = cap;
        }
        self
    }

    /// Drops dead letters older than `retention` (by when they were dead-lettered) whenever a new
    /// one is made.
    #[must_use]
    pub fn with_dead_letter_retention(self, retention: Duration) -> Self {
        if let Ok(mut state) = self.shared.state() {
            state.dead_letter_retention = Some(retention);
        }
        self
    }

    /// The bound on live jobs.
    #[must_use]
    pub fn max_jobs(&self) -> u64 {
        self.shared.max_jobs
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The records set aside in the quarantine because they could not be read: for each, the
    /// table it was in, its key there, and why it could not be read. At most `limit`.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the database cannot be read.
    pub fn quarantined(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, JobStoreError> {
        let txn = self.shared.begin_read()?;
        let table = match txn.open_table(QUARANTINE) {
            Ok(table) => table,
            // Nothing was ever set aside.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        for row in redb::ReadableTable::iter(&table)
            .map_err(storage)?
            .take(limit)
        {
            let (key, value) = row.map_err(storage)?;
            let (from, key) = key.value();
            let reason =
                Quarantined::decode(value.value()).map_or_else(|e| e.to_string(), |q| q.reason);
            out.push((from.to_owned(), key.to_owned(), reason));
        }
        Ok(out)
    }

    /// The notification log's entry for (`target`, `fingerprint`), if it has one.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the store's state is poisoned.
    pub fn log_entry(
        &self,
        target: &str,
        fingerprint: Fingerprint,
    ) -> Result<Option<LogEntry>, JobStoreError> {
        let Ok(target) = TargetName::new(target) else {
            return Ok(None);
        };
        let state = self.shared.state()?;
        Ok(state.log.get(&(target, fingerprint)).map(|c| c.entry))
    }

    /// The last alert the notification log accepted for (`target`, `fingerprint`), kept so a
    /// sweeper can make a resolve job for a firing alert that stopped arriving.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the store's state is poisoned.
    pub fn last_accepted_alert(
        &self,
        target: &str,
        fingerprint: Fingerprint,
    ) -> Result<Option<EnrichedAlert>, JobStoreError> {
        let Ok(target) = TargetName::new(target) else {
            return Ok(None);
        };
        let body = {
            let state = self.shared.state()?;
            let Some(cached) = state.log.get(&(target, fingerprint)) else {
                return Ok(None);
            };
            if let Some(alert) = state.alert(cached.body) {
                return Ok(Some(EnrichedAlert::clone(alert)));
            }
            cached.body
        };
        // A delivered alert's body is kept only in the database.
        let txn = self.shared.begin_read()?;
        let alerts = txn.open_table(records::ALERTS).map_err(storage)?;
        let alert = load::read_alert(&alerts, body)?;
        Ok(Some(EnrichedAlert::clone(&alert)))
    }

    /// The durable [`MessageRefStore`] in this store's file, so Slack `ts` values and Rootly
    /// alert ids survive a restart. A reference is stored with full durability. Once the store
    /// is dropped, `put` and `remove` do nothing and `get` finds nothing.
    #[must_use]
    pub fn message_refs(&self) -> Arc<dyn MessageRefStore> {
        Arc::new(RedbMessageRefs {
            shared: Arc::downgrade(&self.shared),
            ops: self.ops.as_ref().map(mpsc::Sender::downgrade),
        })
    }

    /// Sends `op` to the writer and waits for its answer.
    async fn call<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, JobStoreError>>) -> Op,
    ) -> Result<T, JobStoreError> {
        let (reply, answer) = oneshot::channel();
        let ops = self.ops.as_ref().ok_or_else(writer_gone)?;
        ops.send(op(reply)).await.map_err(|_| writer_gone())?;
        // A writer holding a flush for settlements to ride on starts at once with this op; one
        // gathering a group under load starts it once enough ops are queued (with the one it
        // holds). A wake-up it does not need only makes it look again.
        std::sync::atomic::fence(Ordering::SeqCst);
        if let Some(writer) = &self.writer
            && (self.shared.holding_flush.load(Ordering::SeqCst)
                || ops.max_capacity() - ops.capacity() + 1 >= writer::GATHER_FULL)
        {
            writer.thread().unpark();
        }
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `work` on tokio's blocking pool, since redb's reads may block on the disk.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Shared) -> Result<T, JobStoreError> + Send + 'static,
    ) -> Result<T, JobStoreError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || work(&shared))
            .await
            .map_err(|e| {
                JobStoreError::storage(
                    StorageKind::Broken,
                    format!("the store's reader failed: {e}"),
                )
            })?
    }

    /// Asks the writer to persist the settlements made in memory, unless it has been asked
    /// already. A full channel needs no flush: the writer is busy and writes them with the
    /// group it is about to take. The writer gives a flush [`SETTLE_GATHER`] to ride on another
    /// op's commit.
    fn wake_writer(&self, state: &mut State) {
        if state.flush_queued || state.settled() {
            return;
        }
        if let Some(ops) = &self.ops
            && ops.try_send(Op::Flush).is_ok()
        {
            state.flush_queued = true;
        }
    }

    fn lease_now(
        &self,
        target: &TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, JobStoreError> {
        let mut state = self.shared.state()?;
        let lease = state.lease(target, n, ttl, now);
        // Expired leases may have settled superseded jobs.
        self.wake_writer(&mut state);
        lease
    }

    /// Settles a job in memory: rescheduled with `how`, or acked with `None`. The writer
    /// persists it with its next group, whose number this returns; an ack asks for that group to
    /// be durable.
    fn settle(&self, id: JobId, how: Option<Reschedule>) -> Result<u64, JobStoreError> {
        let mut state = self.shared.state()?;
        if state.failed {
            return Err(JobStoreError::storage(
                StorageKind::Broken,
                "the queue's last commit failed, so settlements cannot be persisted until one \
                 succeeds"
                    .to_owned(),
            ));
        }
        // Even a job already gone waits for the next group: its removal may not be on disk yet.
        state.sync_wanted |= how.is_none();
        let next_group = state.planned + 1;
        state.settle(id, how);
        self.wake_writer(&mut state);
        Ok(next_group)
    }
}

fn writer_gone() -> JobStoreError {
    JobStoreError::storage(StorageKind::Broken, "the store's writer has stopped")
}

/// A panic while a lock was held may have left the state half updated, so a poisoned store
/// refuses to work rather than serve inconsistent jobs.
fn poisoned() -> JobStoreError {
    JobStoreError::storage(StorageKind::Broken, "the store's state is poisoned")
}

fn reopen_failed() -> JobStoreError {
    JobStoreError::storage(
        StorageKind::Io,
        "the database could not be reopened after an I/O failure",
    )
}

impl Drop for RedbJobStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued, commit once more durably
        // and return.
        drop(self.ops.take());
        if let Some(writer) = self.writer.take() {
            // A writer that panicked has already failed its callers; there is nothing to add.
            let _ = writer.join();
        }
    }
}

impl Shared {
    fn state(&self) -> Result<MutexGuard<'_, State>, JobStoreError> {
        self.state.lock().map_err(|_| poisoned())
    }

    fn begin_read(&self) -> Result<ReadTransaction, JobStoreError> {
        let db = self.db.read().map_err(|_| poisoned())?;
        db.as_ref()
            .ok_or_else(reopen_failed)?
            .begin_read()
            .map_err(storage)
    }

    /// Begins the writer's transaction. When redb refuses because an earlier write failed (it
    /// latches an I/O failure until the file is reopened), the database is reopened and the
    /// state reloaded from what is on disk, then the transaction is begun on the fresh handle.
    /// Leases are lost with the reload, which delivers the jobs in flight again: at least once,
    /// as after a crash.
    fn begin_write(&self, durability: Durability) -> Result<WriteTransaction, JobStoreError> {
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
        // Reopening reads the whole file again; while it keeps failing, it is tried with a
        // backoff rather than by every write.
        self.health.may_reopen()?;
        // The old handle must be closed first: it holds the file's lock.
        drop(db.take());
        let reopened = (self.reopen)()
            .map_err(|e| {
                records::storage_while(
                    &format!("reopening {} after an I/O failure", self.path.display()),
                    e,
                )
            })
            .and_then(|fresh| State::load(&fresh).map(|loaded| (fresh, loaded)));
        let (fresh, mut loaded) = match reopened {
            Ok(reopened) => reopened,
            Err(e) => {
                self.health.reopen_failed();
                return Err(e);
            }
        };
        self.health.reopened();
        self.health.add_quarantined(loaded.quarantined);
        {
            let mut state = self.state()?;
            loaded.dead_letter_cap = state.dead_letter_cap;
            loaded.index.clock = state.index.clock.clone();
            loaded.dead_letter_retention = state.dead_letter_retention;
            // Acknowledgements wait for group numbers counted before the reload.
            loaded.planned = state.planned;
            // Ids handed to jobs a failed commit took back while a lane held them are never
            // handed out again: that lane's settlement must not reach a newer job.
            loaded.next_job = loaded.next_job.max(state.next_job);
            loaded.next_body = loaded.next_body.max(state.next_body);
            loaded.sync_wanted = state.sync_wanted;
            // The re-sends kept in memory only are not lost with the file's handle.
            loaded.keep_ends_of(&state);
            *state = loaded;
        }
        let mut txn = fresh.begin_write().map_err(storage)?;
        txn.set_durability(durability).map_err(storage)?;
        *db = Some(fresh);
        Ok(txn)
    }

    /// One page of the dead-letter queue, and the ids of the entries met that could not be
    /// read (for the writer to move to the quarantine).
    ///
    /// The filter is matched on each entry's target, kind and time, read without its alert;
    /// only the entries that pass are decoded whole. A `since` starts the scan at the first id
    /// that can have been made then (see [`dead_id_floor`]).
    fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        cursor: Option<&DeadLetterId>,
        limit: usize,
    ) -> Result<(DeadLetterPage, Vec<DeadLetterId>), JobStoreError> {
        #[cfg(test)]
        if let Some(hook) = self.scan_hook.get() {
            hook();
        }
        let txn = self.begin_read()?;
        let table = txn.open_table(DEAD).map_err(storage)?;
        let floor = filter.since.map(dead_id_floor);
        let start = match (cursor, floor.as_deref()) {
            (Some(c), Some(f)) if f > c.0.as_str() => Bound::Included(f),
            (Some(c), _) => Bound::Excluded(c.0.as_str()),
            (None, Some(f)) => Bound::Included(f),
            (None, None) => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        let mut more = false;
        for row in table
            .range::<&str>((start, Bound::Unbounded))
            .map_err(storage)?
        {
            let (key, value) = row.map_err(storage)?;
            let matches = read_dead_head(value.value()).map(|head| head.matches(filter));
            if matches.as_ref().is_ok_and(|m| !m) {
                continue;
            }
            if matches.is_ok() && entries.len() == limit {
                // A cursor only when something matching follows, so the last page says it is the
                // last.
                more = true;
                break;
            }
            match matches.and_then(|_| read_dead(value.value())) {
                Ok(entry) => entries.push(entry),
                Err(_) => unreadable.push(DeadLetterId(key.value().to_owned())),
            }
        }
        let next_cursor = if more {
            entries
                .last()
                .map(|e: &alert_core::DeadLetter| e.id.clone())
        } else {
            None
        };
        let page = DeadLetterPage {
            entries,
            next_cursor,
        };
        Ok((page, unreadable))
    }
}

impl fmt::Debug for RedbJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RedbJobStore");
        s.field("path", &self.shared.path)
            .field("max_jobs", &self.shared.max_jobs);
        if let Ok(state) = self.shared.state.try_lock() {
            s.field("jobs", &state.jobs.len())
                .field("dead_letters", &state.dead_count);
        }
        s.finish_non_exhaustive()
    }
}

impl IngestQueue for RedbJobStore {
    fn enqueue_batch<'a>(
        &'a self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Admitted>, JobStoreError>> {
        Box::pin(async move {
            // Re-sends that change nothing need neither the writer nor the disk.
            {
                let mut state = self.shared.state()?;
                state.restore_if_pending(now);
                if let Some(answers) = state.take_repeats(&batch, now) {
                    return Ok(answers);
                }
            }
            // The distinct alerts are found and encoded here, on the caller's task, so the
            // writer (one thread for the whole store) does not spend its time on it.
            let (bodies, body_of) =
                crate::model::plan::prepare(&batch, Some(records::encode_alert))?;
            let batch = Arc::new(batch);
            let mine = Arc::clone(&batch);
            let answer = self
                .call(move |reply| Op::Enqueue {
                    batch,
                    bodies,
                    body_of,
                    now,
                    reply,
                })
                .await;
            drop(mine);
            answer
        })
    }
}

impl LaneQueue for RedbJobStore {
    fn lease<'a>(
        &'a self,
        target: &'a TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease, JobStoreError>> {
        // All in memory: a lease never waits for the disk.
        let lease = self.lease_now(target, n, ttl, now);
        Box::pin(async move { lease })
    }

    fn ack<'a>(
        &'a self,
        job: JobId,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        // The ack is answered once it is on disk: it shares the next durable group's fsync with
        // whatever else is queued. The dispatcher's lane holds the job until then, so after a
        // crash the deliveries made again are at most the jobs the lanes held.
        let durable_at = self.settle(job, None);
        Box::pin(async move {
            let durable_at = durable_at?;
            let ops = self.ops.as_ref().ok_or_else(writer_gone)?;
            let mut committed = self.shared.committed.subscribe();
            let outcome = tokio::select! {
                seen = committed.wait_for(|c| c.durable.max(c.failed) >= durable_at) => {
                    seen.map(|c| *c).map_err(|_| writer_gone())?
                }
                // A writer that stopped (it panicked) would never publish the group.
                () = ops.closed() => return Err(writer_gone()),
            };
            // A failed group may have carried the ack, and the reload that follows an I/O
            // failure forgets it, so the lane must settle the job again.
            if outcome.failed >= durable_at {
                return Err(JobStoreError::storage(
                    StorageKind::Io,
                    "the queue's commit failed, so the acknowledgement was not persisted"
                        .to_owned(),
                ));
            }
            Ok(())
        })
    }

    fn reschedule<'a>(
        &'a self,
        job: JobId,
        how: Reschedule,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        let settled = self.settle(job, Some(how)).map(drop);
        Box::pin(async move { settled })
    }

    fn dead_letter<'a>(
        &'a self,
        job: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DeadLetterId>, JobStoreError>> {
        Box::pin(self.call(move |reply| Op::DeadLetter {
            job,
            kind,
            reason,
            error,
            now,
            reply,
        }))
    }

    fn on_new_work(&self, announce: NewWork) {
        // Called from the writer's thread as soon as a lane could lease the jobs: a group of
        // fresh alerts is handed to the lanes before its commit's fsync returns, so the lanes
        // deliver while the disk syncs, and a slow fsync delays the answer to ingest but not
        // the deliveries. (A crash in between delivers an alert whose sender got no answer and
        // sends it again, as with any at-least-once delivery; a commit that fails takes the
        // jobs back, and those already in flight are settled as superseded.)
        *self
            .shared
            .new_work
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(announce);
    }
}

impl DeadLetterQueue for RedbJobStore {
    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        cursor: Option<&'a DeadLetterId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<DeadLetterPage, JobStoreError>> {
        let filter = filter.clone();
        let cursor = cursor.cloned();
        Box::pin(async move {
            // The scan holds a blocking thread; see `DLQ_SCANS`.
            let _permit = self
                .shared
                .dlq_scans
                .acquire()
                .await
                .map_err(|_| writer_gone())?;
            let (page, unreadable) = self
                .blocking(move |shared| shared.dead_letters(&filter, cursor.as_ref(), limit))
                .await?;
            // Unreadable entries are left out of the page and set aside by the writer. A full
            // channel leaves them for the next listing to find again.
            if let Some(ops) = &self.ops {
                for id in unreadable {
                    let _ = ops.try_send(Op::QuarantineDead { id });
                }
            }
            Ok(page)
        })
    }

    fn replay<'a>(
        &'a self,
        id: &'a DeadLetterId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobId, JobStoreError>> {
        let id = id.clone();
        Box::pin(self.call(move |reply| Op::Replay { id, now, reply }))
    }

    fn purge<'a>(&'a self, id: &'a DeadLetterId) -> BoxFuture<'a, Result<(), JobStoreError>> {
        let id = id.clone();
        Box::pin(self.call(move |reply| Op::Purge { id, reply }))
    }
}

impl QueueMaintenance for RedbJobStore {
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, JobStoreError>> {
        let stats = self.shared.state().map(|state| state.stats());
        Box::pin(async move { stats })
    }

    fn sweep<'a>(
        &'a self,
        plan: &'a SweepPlan,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<SweepReport, JobStoreError>> {
        let plan = plan.clone();
        // The first sweep after an unclean close restores the log's ends before it resolves.
        let restored = self.shared.state().map(|mut s| s.restore_if_pending(now));
        Box::pin(async move {
            restored?;
            self.call(move |reply| Op::Sweep { plan, now, reply }).await
        })
    }

    fn health(&self) -> StoreHealth {
        let shared = &self.shared;
        let broken = if shared.state.is_poisoned() || shared.db.is_poisoned() {
            Some(BrokenReason::Poisoned)
        } else if self.ops.as_ref().is_none_or(mpsc::Sender::is_closed) {
            // The writer's end of the channel goes with its thread, however it ended.
            Some(BrokenReason::WriterStopped)
        } else {
            None
        };
        shared.health.view(broken)
    }

    fn dead_letter_target<'a>(
        &'a self,
        target: &'a TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, JobStoreError>> {
        let target = target.clone();
        Box::pin(self.call(move |reply| Op::DeadLetterTarget {
            target,
            kind,
            reason,
            now,
            reply,
        }))
    }
}

/// A [`MessageRefStore`] in a [`RedbJobStore`]'s file (the `message_refs` table, keyed by
/// (target, fingerprint)), from [`RedbJobStore::message_refs`]. Writes go through the store's
/// writer and are committed with full durability before they return; reads run on tokio's
/// blocking pool.
///
/// It does not keep the store open: once the store is dropped, `put` and `remove` do nothing
/// and `get` finds nothing. The trait has no error channel, so a failed write is dropped; a
/// lost reference makes the target post a new message rather than update the old one.
pub struct RedbMessageRefs {
    shared: std::sync::Weak<Shared>,
    ops: Option<mpsc::WeakSender<Op>>,
}

impl fmt::Debug for RedbMessageRefs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbMessageRefs").finish_non_exhaustive()
    }
}

impl RedbMessageRefs {
    async fn write(&self, target: &str, fingerprint: Fingerprint, reference: Option<MessageRef>) {
        let Some(ops) = self.ops.as_ref().and_then(mpsc::WeakSender::upgrade) else {
            return;
        };
        let (reply, answer) = oneshot::channel();
        let op = Op::MessageRef {
            target: target.to_owned(),
            fingerprint,
            reference,
            reply,
        };
        if ops.send(op).await.is_ok() {
            // Dropped on failure: see the type's docs.
            let _ = answer.await;
        }
    }
}

impl MessageRefStore for RedbMessageRefs {
    fn get<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'a, Option<MessageRef>> {
        let shared = self.shared.clone();
        let target = target.to_owned();
        Box::pin(async move {
            let read = move || -> Result<Option<MessageRef>, JobStoreError> {
                let Some(shared) = shared.upgrade() else {
                    return Ok(None);
                };
                let txn = shared.begin_read()?;
                let table = txn.open_table(MESSAGE_REFS).map_err(storage)?;
                let value = table
                    .get((target.as_str(), fingerprint.as_u64()))
                    .map_err(storage)?;
                value.map(|v| decode(v.value())).transpose()
            };
            tokio::task::spawn_blocking(read)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        })
    }

    fn put<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
        reference: MessageRef,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.write(target, fingerprint, Some(reference)))
    }

    fn remove<'a>(&'a self, target: &'a str, fingerprint: Fingerprint) -> BoxFuture<'a, ()> {
        Box::pin(self.write(target, fingerprint, None))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use alert_core::{Admission, Alert, Annotations, Labels};
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

    #[test]
    fn a_file_in_the_first_format_is_refused_unless_its_old_tables_are_empty() {
        let legacy = redb::TableDefinition::<'_, u64, &[u8]>::new("jobs");
        let memory = Arc::new(InMemoryBackend::new());
        let opener = |memory: &Arc<InMemoryBackend>| {
            let memory = Arc::clone(memory);
            move || {
                Database::builder().create_with_backend(FlakyDisk {
                    inner: Arc::clone(&memory),
                    failing: Arc::new(AtomicBool::new(false)),
                    slow: Arc::new(Mutex::new(())),
                })
            }
        };
        {
            let db = opener(&memory)().unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(legacy)
                .unwrap()
                .insert(1, &b"{}"[..])
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbJobStore::with_opener(PathBuf::from("old"), 10, Box::new(opener(&memory)))
            .unwrap_err();
        assert!(
            matches!(&err, JobStoreError::Storage(m) if m.to_string().contains("earlier alertpub build")),
            "{err:?}"
        );
        {
            let db = opener(&memory)().unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(legacy).unwrap().remove(1).unwrap();
            txn.commit().unwrap();
        }
        // Empty, the old table is dropped and the store opens.
        let store =
            RedbJobStore::with_opener(PathBuf::from("old"), 10, Box::new(opener(&memory))).unwrap();
        drop(store);
        let db = opener(&memory)().unwrap();
        let txn = db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| redb::TableHandle::name(&t).to_owned())
            .collect();
        assert!(!names.contains(&"jobs".to_owned()), "{names:?}");
    }

    #[test]
    fn a_group_with_any_ingest_commits_with_fsync() {
        // The writer commits a group with `ingest_durability()` when any of its ops is durable;
        // only settlements alone (a flush) skip the fsync.
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let ingest = Op::Enqueue {
            batch: Arc::new(vec![admission("Durable")]),
            bodies: Vec::new(),
            body_of: Vec::new(),
            now: at(0),
            reply,
        };
        assert!(ingest.durable());
        assert!(!Op::Flush.durable());
    }

    /// A backend whose writes and syncs fail while `failing` is set, as a full disk's would, and
    /// wait while someone holds `slow`, as a slow disk's would.
    #[derive(Debug)]
    pub(super) struct FlakyDisk {
        pub(super) inner: Arc<InMemoryBackend>,
        pub(super) failing: Arc<AtomicBool>,
        pub(super) slow: Arc<Mutex<()>>,
    }

    impl FlakyDisk {
        fn check(&self) -> std::io::Result<()> {
            drop(
                self.slow
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
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

    pub(super) fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    pub(super) fn admission(name: &str) -> Admission {
        let labels: Labels = [("alertname".to_owned(), name.to_owned())].into();
        let alert = Alert::build(labels, Annotations::new(), at(0), Some(at(86_400)), None);
        Admission::new(
            TargetName::new("t").unwrap(),
            EnrichedAlert::new(alert.unwrap()),
            None,
        )
    }

    fn ending(name: &str, ends: i64) -> Admission {
        between(name, 0, ends)
    }

    fn between(name: &str, starts: i64, ends: i64) -> Admission {
        let labels: Labels = [("alertname".to_owned(), name.to_owned())].into();
        let alert = Alert::build(labels, Annotations::new(), at(starts), Some(at(ends)), None);
        Admission::new(
            TargetName::new("t").unwrap(),
            EnrichedAlert::new(alert.unwrap()),
            None,
        )
    }

    async fn deliver(store: &RedbJobStore, now: DateTime<Utc>) -> Vec<alert_core::LeasedJob> {
        let target = TargetName::new("t").unwrap();
        let lease = store
            .lease(&target, 10, Duration::from_secs(30), now)
            .await
            .unwrap();
        for job in &lease.jobs {
            store.ack(job.id, now).await.unwrap();
        }
        lease.jobs
    }

    /// An alert's body is held in memory only while a job refers to it: once delivered, only the
    /// database has it, and the sweep's resolve (and `last_accepted_alert`) read it back.
    #[tokio::test]
    async fn a_delivered_alert_leaves_memory_and_its_resolve_reads_it_back() {
        let (store, _) = store_on_a_flaky_disk();
        let gone = ending("Gone", 300);
        store
            .enqueue_batch(vec![gone.clone()], at(0))
            .await
            .unwrap();
        let body = {
            let state = store.shared.state().unwrap();
            let key = (gone.target.clone(), gone.alert.alert.fingerprint());
            let body = state.log.get(&key).unwrap().body;
            assert!(state.alert(body).is_some(), "its job holds it");
            body
        };
        assert_eq!(deliver(&store, at(1)).await.len(), 1);
        {
            let state = store.shared.state().unwrap();
            assert!(state.alert(body).is_none(), "no job refers to it any more");
            assert_eq!((state.bodies[&body].jobs, state.bodies[&body].logs), (0, 1));
        }
        assert_eq!(
            store
                .last_accepted_alert("t", gone.alert.alert.fingerprint())
                .unwrap()
                .as_ref(),
            Some(&*gone.alert)
        );
        let plan = SweepPlan::new(vec![(gone.target.clone(), None)], Duration::ZERO);
        let report = store.sweep(&plan, at(301)).await.unwrap();
        assert_eq!(report.resolved, 1);
        let resolve = deliver(&store, at(302)).await;
        assert_eq!(resolve.len(), 1);
        assert_eq!(resolve[0].status, alert_core::AlertStatus::Resolved);
        assert_eq!(resolve[0].alert.alert.labels(), gone.alert.alert.labels());
        assert_eq!(resolve[0].alert.alert.ends_at(), Some(at(300)));
    }

    /// A sweep skips the log until an entry can be due, and an entry set since brings that
    /// moment forward: a re-send that moves an end earlier is resolved at its new end.
    #[tokio::test]
    async fn a_sweep_wakes_for_the_earliest_end_even_one_moved_earlier_since() {
        let (store, _) = store_on_a_flaky_disk();
        let target = TargetName::new("t").unwrap();
        let plan = SweepPlan::new(vec![(target.clone(), None)], Duration::ZERO);
        store
            .enqueue_batch(vec![ending("Early", 300), ending("Late", 600)], at(0))
            .await
            .unwrap();
        deliver(&store, at(1)).await;
        assert_eq!(store.sweep(&plan, at(10)).await.unwrap().resolved, 0);
        let wake = |store: &RedbJobStore| {
            store
                .shared
                .state()
                .unwrap()
                .sweep_wake
                .as_ref()
                .and_then(|w| w.at)
        };
        assert_eq!(wake(&store), Some(at(300)));
        // Re-sent with an end before the one on disk: written, and the wake comes forward.
        store
            .enqueue_batch(vec![ending("Late", 250)], at(100))
            .await
            .unwrap();
        assert_eq!(wake(&store), Some(at(250)));
        assert_eq!(store.sweep(&plan, at(200)).await.unwrap().resolved, 0);
        assert_eq!(store.sweep(&plan, at(251)).await.unwrap().resolved, 1);
        deliver(&store, at(252)).await;
        // The pass that made the resolve saw the entry due; the next one rescans, and the
        // resolved entry is due for nothing more.
        assert_eq!(store.sweep(&plan, at(260)).await.unwrap().resolved, 0);
        assert_eq!(wake(&store), Some(at(300)));
        assert_eq!(store.sweep(&plan, at(300)).await.unwrap().resolved, 1);
    }

    /// At steady state the wake sleeps: an alert re-sent with the same lead has its end moved in
    /// memory only, and the next pass wakes for that end, not for the one on disk.
    #[tokio::test]
    async fn the_wake_follows_the_ends_re_sends_keep_in_memory() {
        let (store, _) = store_on_a_flaky_disk();
        let target = TargetName::new("t").unwrap();
        let plan = SweepPlan::new(vec![(target.clone(), None)], Duration::ZERO);
        store
            .enqueue_batch(vec![ending("Steady", 300)], at(0))
            .await
            .unwrap();
        deliver(&store, at(1)).await;
        assert_eq!(store.sweep(&plan, at(10)).await.unwrap().resolved, 0);
        // Re-sent each minute with the same five-minute lead: kept in memory only.
        for minute in 1..=4 {
            let now = at(minute * 60);
            assert_eq!(
                store
                    .enqueue_batch(vec![ending("Steady", minute * 60 + 300)], now)
                    .await
                    .unwrap(),
                [Admitted::Duplicate]
            );
        }
        assert_eq!(store.sweep(&plan, at(301)).await.unwrap().resolved, 0);
        let wake = store
            .shared
            .state()
            .unwrap()
            .sweep_wake
            .as_ref()
            .and_then(|w| w.at);
        assert_eq!(
            wake,
            Some(at(540)),
            "the end the re-sends gave, past the one on disk"
        );
        // A re-send that brings the end back (still after the one on disk) wakes it sooner.
        store
            .enqueue_batch(vec![ending("Steady", 320)], at(305))
            .await
            .unwrap();
        assert_eq!(store.sweep(&plan, at(321)).await.unwrap().resolved, 1);
    }

    /// A batch that holds an alert twice with another state of it between them stores the
    /// alert once: the middle state supersedes the first job, and the last refers to the body
    /// again, which must still be there when its job is leased.
    #[tokio::test]
    async fn a_body_a_group_releases_and_takes_again_stays() {
        let (store, _) = store_on_a_flaky_disk();
        let restarted = between("Flap", 10, 300);
        let first = ending("Flap", 300);
        store
            .enqueue_batch(vec![first.clone(), restarted, first.clone()], at(1))
            .await
            .unwrap();
        let delivered = deliver(&store, at(2)).await;
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].alert.alert.starts_at(), at(0));
    }

    /// The wake holds for the plan it was computed under: a pass under another plan scans.
    #[tokio::test]
    async fn a_sweep_under_a_changed_plan_scans_the_log() {
        let (store, _) = store_on_a_flaky_disk();
        let target = TargetName::new("t").unwrap();
        store
            .enqueue_batch(vec![ending("Forwarded", 3_600)], at(0))
            .await
            .unwrap();
        deliver(&store, at(1)).await;
        let plain = SweepPlan::new(vec![(target.clone(), None)], Duration::ZERO);
        assert_eq!(store.sweep(&plain, at(10)).await.unwrap().refreshed, 0);
        // Now the target forwards to an Alertmanager, refreshed every minute.
        let refreshing = SweepPlan::new(
            vec![(target, Some(Duration::from_secs(60)))],
            Duration::ZERO,
        );
        assert_eq!(store.sweep(&refreshing, at(61)).await.unwrap().refreshed, 1);
    }

    /// Whether the dispatcher is behind is read from the store's clock, not the system's: a
    /// job due by the injected clock (a year the system clock has not reached) that has waited
    /// 20 ms by its monotonic time makes the dispatcher behind.
    #[tokio::test]
    async fn the_writer_reads_the_injected_clock() {
        let clock = Arc::new(alert_core::TestClock::starting_at(at(1)));
        let (store, _) = store_on_a_flaky_disk();
        let store = store.with_clock(clock.clone());
        store
            .enqueue_batch(vec![admission("Clocked")], at(0))
            .await
            .unwrap();
        assert!(!store.shared.dispatch_behind(), "not yet waited 10 ms");
        clock.advance(Duration::from_millis(20));
        assert!(
            store.shared.dispatch_behind(),
            "the job is due by the store's clock and waited 20 ms by it"
        );
    }

    /// A store on an in-memory disk whose writes fail while the returned flag is set.
    pub(super) fn store_on_a_flaky_disk() -> (RedbJobStore, Arc<AtomicBool>) {
        let (store, failing, _) = store_on_a_slow_flaky_disk();
        (store, failing)
    }

    /// As [`store_on_a_flaky_disk`], and the disk's writes and syncs wait while the lock is held.
    fn store_on_a_slow_flaky_disk() -> (RedbJobStore, Arc<AtomicBool>, Arc<Mutex<()>>) {
        let failing = Arc::new(AtomicBool::new(false));
        let slow = Arc::new(Mutex::new(()));
        let memory = Arc::new(InMemoryBackend::new());
        let (flag, gate) = (Arc::clone(&failing), Arc::clone(&slow));
        let opener = move || {
            Database::builder().create_with_backend(FlakyDisk {
                inner: Arc::clone(&memory),
                failing: Arc::clone(&flag),
                slow: Arc::clone(&gate),
            })
        };
        let store =
            RedbJobStore::with_opener(PathBuf::from("memory"), 100, Box::new(opener)).unwrap();
        (store, failing, slow)
    }

    /// Hands the names of the targets `store` reports new jobs for to the returned receiver.
    fn new_jobs(store: &RedbJobStore) -> mpsc::UnboundedReceiver<TargetName> {
        let (sender, receiver) = mpsc::unbounded_channel();
        store.on_new_work(Arc::new(move |target: &TargetName| {
            let _ = sender.send(target.clone());
        }));
        receiver
    }

    /// Waits until `woken` names the target of the jobs just enqueued.
    async fn told(woken: &mut mpsc::UnboundedReceiver<TargetName>) {
        let told = tokio::time::timeout(Duration::from_secs(10), woken.recv()).await;
        assert_eq!(
            told,
            Ok(Some(TargetName::new("t").unwrap())),
            "the lane is told"
        );
    }

    /// Starts enqueueing `names` (as one batch) and waits until `woken` names the target that
    /// got their jobs; returns the enqueue, still running if its commit is held.
    async fn enqueue_until_told(
        store: &Arc<RedbJobStore>,
        woken: &mut mpsc::UnboundedReceiver<TargetName>,
        names: &[&str],
        now: DateTime<Utc>,
    ) -> tokio::task::JoinHandle<Result<Vec<Admitted>, JobStoreError>> {
        let batch: Vec<_> = names.iter().map(|name| admission(name)).collect();
        let ingest = tokio::spawn({
            let store = Arc::clone(store);
            async move { store.enqueue_batch(batch, now).await }
        });
        told(woken).await;
        ingest
    }

    // The lock stands for the disk: holding it across awaits is what keeps the writer's
    // thread in its fsync.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fresh_jobs_can_be_leased_while_their_commit_syncs_and_ingest_is_answered_after() {
        let (store, _, slow) = store_on_a_slow_flaky_disk();
        let store = Arc::new(store);
        let mut woken = new_jobs(&store);
        let target = TargetName::new("t").unwrap();

        // The lane is told before the fsync ends.
        let fsync = slow.lock().unwrap();
        let ingest = enqueue_until_told(&store, &mut woken, &["Fresh"], at(0)).await;
        let lease = store
            .lease(&target, 10, Duration::from_secs(60), at(1))
            .await
            .unwrap();
        let names: Vec<_> = lease
            .jobs
            .iter()
            .map(|j| j.alert.alert.name().unwrap())
            .collect();
        assert_eq!(names, ["Fresh"], "leased while the commit syncs");
        assert!(
            !ingest.is_finished(),
            "ingest is answered only once it is on disk"
        );

        drop(fsync);
        let answers = ingest.await.unwrap().unwrap();
        assert!(answers[0].is_enqueued(), "{answers:?}");
        store.ack(lease.jobs[0].id, at(2)).await.unwrap();
        assert_eq!(store.stats().await.unwrap().by_priority, [0, 0, 0]);
    }

    // The lock stands for the disk: holding it across awaits is what keeps the writer's
    // thread in its fsync.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_takes_its_fresh_jobs_back_even_from_a_lane_that_holds_one() {
        let (store, failing, slow) = store_on_a_slow_flaky_disk();
        let store = Arc::new(store);
        let mut woken = new_jobs(&store);
        let target = TargetName::new("t").unwrap();
        let ttl = Duration::from_secs(60);
        let name = |job: &alert_core::LeasedJob| job.alert.alert.name().unwrap().to_owned();
        store
            .enqueue_batch(vec![admission("Before")], at(0))
            .await
            .unwrap();
        told(&mut woken).await;

        // The commit of Held and Pending will fail; a lane leases one of them meanwhile.
        let fsync = slow.lock().unwrap();
        failing.store(true, Ordering::SeqCst);
        let ingest = enqueue_until_told(&store, &mut woken, &["Held", "Pending"], at(1)).await;
        let held = store.lease(&target, 2, ttl, at(2)).await.unwrap().jobs;
        assert_eq!(
            held.iter().map(name).collect::<Vec<_>>(),
            ["Before", "Held"]
        );
        drop(fsync);
        let refused = ingest.await.unwrap();
        assert!(
            matches!(refused, Err(JobStoreError::Storage(_))),
            "{refused:?}"
        );
        // Pending went back at once: nothing of the failed batch can be leased.
        let after = store.lease(&target, 10, ttl, at(3)).await.unwrap().jobs;
        assert!(
            after.is_empty(),
            "{:?}",
            after.iter().map(name).collect::<Vec<_>>()
        );

        // Once the disk heals, the state is what is on disk, and Held's id is not reused, so
        // the lane that still holds Held cannot settle a newer job by mistake.
        failing.store(false, Ordering::SeqCst);
        let answers = store
            .enqueue_batch(vec![admission("After")], at(4))
            .await
            .unwrap();
        let Admitted::Enqueued { job, .. } = answers[0] else {
            panic!("After must be new, got {answers:?}");
        };
        assert!(
            job > held[1].id,
            "{job:?} reuses an id up to {:?}",
            held[1].id
        );
        store.ack(held[1].id, at(5)).await.unwrap();
        let mut names: Vec<_> = store
            .lease(&target, 10, ttl, at(6))
            .await
            .unwrap()
            .jobs
            .iter()
            .map(name)
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["After", "Before"],
            "Before is on disk, Held and Pending are not"
        );
    }

    #[tokio::test]
    async fn a_failing_disk_is_a_storage_error_that_persists_nothing_and_heals() {
        let (store, failing) = store_on_a_flaky_disk();
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

    #[tokio::test]
    async fn an_ack_whose_commit_fails_is_an_error_and_its_job_is_delivered_again() {
        let (store, failing) = store_on_a_flaky_disk();
        let target = TargetName::new("t").unwrap();
        let ttl = Duration::from_secs(60);
        store
            .enqueue_batch(vec![admission("A"), admission("B")], at(0))
            .await
            .unwrap();
        let jobs = store.lease(&target, 10, ttl, at(1)).await.unwrap().jobs;
        let name = |job: &alert_core::LeasedJob| job.alert.alert.name().unwrap().to_owned();
        assert_eq!(jobs.iter().map(name).collect::<Vec<_>>(), ["A", "B"]);

        // A healthy disk: the ack is answered once a durable commit carried it.
        store.ack(jobs[0].id, at(2)).await.unwrap();
        // A failing disk: the commit carrying the ack fails, and so does the ack.
        failing.store(true, Ordering::SeqCst);
        let ack = store.ack(jobs[1].id, at(3)).await;
        assert!(matches!(ack, Err(JobStoreError::Storage(_))), "{ack:?}");

        // Once the disk recovers, the next commit reloads what is on disk: A's ack is there,
        // B's is not, so B is delivered again (at least once) and can be acked for good.
        failing.store(false, Ordering::SeqCst);
        store
            .enqueue_batch(vec![admission("C")], at(4))
            .await
            .unwrap();
        let again = store.lease(&target, 10, ttl, at(5)).await.unwrap().jobs;
        let mut names: Vec<_> = again.iter().map(name).collect();
        names.sort();
        assert_eq!(names, ["B", "C"]);
        for job in &again {
            store.ack(job.id, at(6)).await.unwrap();
        }
        assert_eq!(store.stats().await.unwrap().by_priority, [0, 0, 0]);
    }
}

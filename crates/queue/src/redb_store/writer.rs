//! The single writer: the thread that owns every redb write transaction, and the group commit.
//!
//! Callers send an [`Op`] through a bounded channel with a oneshot for the answer. The writer
//! takes the first op, drains whatever else is queued (up to [`GROUP_CAP`]), and applies them all
//! in one write transaction, committed once: with `Durability::Immediate` when any op of the
//! group accepts or moves work, with `Durability::None` for a group that only carries
//! settlements. Only then does it answer each op.
//!
//! - Each op's logical refusal (`Full`, `NotFound`, `Superseded`) is decided before it writes
//!   anything, so it never affects the other ops of its group.
//! - A storage error fails every op of the group and commits nothing: the transaction is
//!   aborted and the in-memory state, which the group changes only after its commit, is as
//!   before. redb refuses every write after an I/O failure until the file is reopened, so the
//!   next group reopens it and reloads the state from disk.
//! - Ops that read the whole state (a sweep, moving a whole target to the dead-letter queue)
//!   run in a group of their own, so they see every earlier op applied.
//! - Acks and reschedules change the state at once and mark the job dirty; every group writes
//!   the dirty jobs (or removes those that are gone) before its ops, so they ride on whatever
//!   commits next.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alert_core::{
    Admission, Admitted, DeadLetter, DeadLetterId, DeadReason, EnrichedAlert, Fingerprint,
    JobError, JobId, JobStoreError, MessageRef, StorageKind, SweepPlan, SweepReport, TargetKind,
    TargetName,
};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, Table, TableHandle, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::load::{put_quarantined, read_alert};
use super::records::{
    ALERTS, CLOSED_CLEANLY, DEAD, JOBS, LOG, MESSAGE_REFS, META, NEXT_BODY, NEXT_JOB, QUARANTINE,
    StoredDeadLetter, StoredLog, TARGETS, encode, encode_alert, encode_job, read_dead,
    read_dead_head, storage,
};
use super::{SETTLE_GATHER, Shared, ingest_durability, settle_durability};
use crate::model::ops::Planner;
use crate::model::plan::{DeadRead, Group, Oldest, Planned2, Prepared, Tables};
use crate::model::state::{CachedLog, Job, Key, State};
use crate::model::sweep::KnownTarget;

/// At most this many ops share one commit, which bounds how long a group holds the state.
const GROUP_CAP: usize = 256;

/// Under load, while the dispatcher is behind the queue (see [`BEHIND`]), a group starts no
/// sooner than this after the previous one started, so ops gather into fewer, larger commits
/// and leave the CPU to the lanes: accepting work faster than it can be delivered only costs
/// commits. While the lanes keep up, [`GATHER_KEEPING_UP`] applies instead, since then ingest's
/// latency is what bounds the throughput of callers that wait for their answers. Each commit
/// costs a dozen page writes and an fsync whatever it carries; committing back to back under
/// S2's load made one commit per alert or so. The wait applies only under load: when the
/// previous group carried at least [`GATHER_BACKLOG`] ops and settlements, or that many ops were
/// queued when it finished. An alert at a quiet time, or the handful of acks one alert makes, is
/// committed at once.
///
/// The wait ends early once [`GATHER_FULL`] ops are queued: that many callers waiting make a
/// group worth its commit already. (Acks wait for this too; the dispatcher frees a call's slot
/// before its ack is durable, so the wait costs a lane leases, not calls.)
const GATHER: Duration = Duration::from_millis(10);

/// The wait of [`GATHER`] while the lanes keep up.
const GATHER_KEEPING_UP: Duration = Duration::from_millis(2);

/// A lane with due jobs pending for this long without a break means the dispatcher is behind.
const BEHIND: Duration = Duration::from_millis(10);

/// The group size or backlog that counts as load for [`GATHER`].
const GATHER_BACKLOG: usize = 16;

/// The queued ops that end a [`GATHER`] wait at once: the caller that queues the op that makes
/// this many wakes the writer.
pub(super) const GATHER_FULL: usize = 24;

/// Where an op's answer goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, JobStoreError>>;

/// One request to the writer.
pub(super) enum Op {
    Enqueue {
        /// Shared with the caller, which holds it until it is answered, so the alerts are freed
        /// on its thread rather than the writer's.
        batch: Arc<Vec<Admission>>,
        /// The batch's distinct alerts, prepared by the caller.
        bodies: Vec<Prepared>,
        /// For each admission, its alert's index in `bodies`.
        body_of: Vec<usize>,
        now: DateTime<Utc>,
        reply: Reply<Vec<Admitted>>,
    },
    DeadLetter {
        job: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
        reply: Reply<Option<DeadLetterId>>,
    },
    DeadLetterTarget {
        target: TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
        reply: Reply<u64>,
    },
    Replay {
        id: DeadLetterId,
        now: DateTime<Utc>,
        reply: Reply<JobId>,
    },
    Purge {
        id: DeadLetterId,
        reply: Reply<()>,
    },
    Sweep {
        plan: SweepPlan,
        now: DateTime<Utc>,
        reply: Reply<SweepReport>,
    },
    /// Stores (`Some`) or removes (`None`) a message reference.
    MessageRef {
        target: String,
        fingerprint: Fingerprint,
        reference: Option<MessageRef>,
        reply: Reply<()>,
    },
    /// Appends delivery records and trims the history (see [`super::history`]).
    History {
        records: Vec<alert_core::DeliveryRecord>,
        retention: alert_core::HistoryRetention,
        now: DateTime<Utc>,
        reply: Reply<()>,
    },
    /// Nothing but the settlements marked dirty since the last commit (durably, when an
    /// acknowledgement asked for it).
    Flush,
    /// Moves a dead letter that a listing could not read to the quarantine, if it is still
    /// there and still unreadable. Nobody waits for it.
    QuarantineDead {
        id: DeadLetterId,
    },
}

/// Sends an op's answer once the group's fate is known: the op's own answer when the group
/// committed, the group's error otherwise.
type Finish = Box<dyn FnOnce(Option<&JobStoreError>) + Send>;

fn finish<T: Send + 'static>(reply: Reply<T>, answer: Result<T, JobStoreError>) -> Finish {
    Box::new(move |group_error| {
        // The caller may have gone (its future was dropped); the work stands regardless.
        let _ = reply.send(match group_error {
            Some(e) => Err(e.clone()),
            None => answer,
        });
    })
}

fn failed<T: Send + 'static>(reply: Reply<T>) -> Finish {
    Box::new(move |group_error| {
        let error = group_error.cloned().unwrap_or_else(|| {
            JobStoreError::storage(
                StorageKind::Broken,
                "the store's writer dropped the request",
            )
        });
        let _ = reply.send(Err(error));
    })
}

impl Op {
    /// Whether the op's commit must be on disk before it is answered.
    pub(super) fn durable(&self) -> bool {
        // Losing a quarantine move in a crash only leaves the entry for a later listing, and
        // losing history only the last moments of it.
        !matches!(
            self,
            Self::Flush | Self::QuarantineDead { .. } | Self::History { .. }
        )
    }

    /// Whether the op reads the whole state, and so runs in a group of its own.
    fn solo(&self) -> bool {
        matches!(self, Self::Sweep { .. } | Self::DeadLetterTarget { .. })
    }

    /// What the op does to live jobs, for keeping apart in groups what [`Early`] cannot carry:
    /// fresh alerts go to the lanes before their group's fsync only when nothing in the group
    /// removes or replaces a job, so an enqueue does not share a group with a dead-letter move,
    /// a replay or a purge, and its deliveries never wait for the disk because of one.
    fn class(&self) -> OpClass {
        match self {
            Self::Enqueue { .. } => OpClass::Accepts,
            Self::DeadLetter { .. } | Self::Replay { .. } | Self::Purge { .. } => OpClass::Removes,
            _ => OpClass::Neutral,
        }
    }

    /// The answer of an op that a failed group never got to.
    fn into_failed(self) -> Finish {
        match self {
            Self::Enqueue { reply, .. } => failed(reply),
            Self::DeadLetter { reply, .. } => failed(reply),
            Self::DeadLetterTarget { reply, .. } => failed(reply),
            Self::Replay { reply, .. } => failed(reply),
            Self::Sweep { reply, .. } => failed(reply),
            Self::Purge { reply, .. }
            | Self::MessageRef { reply, .. }
            | Self::History { reply, .. } => failed(reply),
            Self::Flush | Self::QuarantineDead { .. } => Box::new(|_| {}),
        }
    }
}

/// The writer thread's body: groups ops until the channel closes, then makes one last durable
/// commit so settlements made since the last durable commit survive a clean shutdown.
pub(super) fn run(shared: &Shared, mut ops: mpsc::Receiver<Op>) {
    let mut held: Option<Op> = None;
    // When the last group started, if it ran under load (see `GATHER`).
    let mut busy_since: Option<Instant> = None;
    loop {
        let first = match held.take() {
            Some(op) => op,
            None => match ops.blocking_recv() {
                Some(op) => op,
                None => break,
            },
        };
        // A flush of settlements alone waits a little for an op whose commit can carry them.
        if matches!(first, Op::Flush) {
            let until = Instant::now() + SETTLE_GATHER;
            shared.holding_flush.store(true, Ordering::SeqCst);
            // Pairs with the fence in `RedbJobStore::call`: either this sees the op queued, or
            // its caller sees the flag and unparks this thread.
            std::sync::atomic::fence(Ordering::SeqCst);
            while ops.is_empty() {
                let Some(left) = until.checked_duration_since(Instant::now()) else {
                    break;
                };
                std::thread::park_timeout(left);
            }
            shared.holding_flush.store(false, Ordering::SeqCst);
        }
        // Only under load is it worth asking whether the lanes keep up.
        let deadline = busy_since.map(|started| {
            let gather = if shared.dispatch_behind() {
                GATHER
            } else {
                GATHER_KEEPING_UP
            };
            started + gather
        });
        if let Some(deadline) = deadline {
            // `first` is one of the ops; a caller unparks the thread once there are enough.
            while ops.len() + 1 < GATHER_FULL {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                std::thread::park_timeout(left);
            }
        }
        let started = Instant::now();
        let solo = first.solo();
        let feed = Feed {
            first: Some(first),
            class: None,
            more: (!solo).then_some(&mut ops),
            held: &mut held,
            taken: 0,
            settled: 0,
            durable: false,
        };
        let carried = shared.commit_group(feed, false);
        busy_since = (carried.max(ops.len()) >= GATHER_BACKLOG).then_some(started);
    }
    shared.commit_group(
        Feed {
            first: None,
            class: None,
            more: None,
            held: &mut held,
            taken: 0,
            settled: 0,
            durable: true,
        },
        true,
    );
}

/// See [`Op::class`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpClass {
    Accepts,
    Removes,
    Neutral,
}

/// The ops of one group: the first, then whatever is queued behind it, taken while the group is
/// being planned, so the ops that arrive meanwhile share its commit too. A solo op ends the
/// group and waits in `held` for a group of its own, and so does an op whose class the group
/// must not mix with its own ([`Op::class`]).
pub(super) struct Feed<'a> {
    first: Option<Op>,
    /// The class of the ops taken that is not neutral, if any.
    class: Option<OpClass>,
    more: Option<&'a mut mpsc::Receiver<Op>>,
    held: &'a mut Option<Op>,
    taken: usize,
    /// The settlements the group wrote beside its ops.
    settled: usize,
    /// Whether any op taken needs a durable commit.
    durable: bool,
}

impl Iterator for Feed<'_> {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        let op = match self.first.take() {
            Some(op) => op,
            None if self.taken >= GROUP_CAP => return None,
            None => match self.more.as_mut()?.try_recv() {
                Ok(op)
                    if op.solo()
                        || self
                            .class
                            .is_some_and(|c| c != op.class() && op.class() != OpClass::Neutral) =>
                {
                    *self.held = Some(op);
                    self.more = None;
                    return None;
                }
                Ok(op) => op,
                Err(_) => return None,
            },
        };
        if op.class() != OpClass::Neutral {
            self.class = Some(op.class());
        }
        self.taken += 1;
        self.durable |= op.durable();
        Some(op)
    }
}

/// The tables a group writes, opened once per group.
struct RedbTables<'t> {
    jobs: Table<'t, u64, &'static [u8]>,
    alerts: Table<'t, u64, &'static [u8]>,
    log: Table<'t, (u64, &'static str), &'static [u8]>,
    dead: Table<'t, &'static str, &'static [u8]>,
    refs: Table<'t, (&'static str, u64), &'static [u8]>,
    history: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    quarantine: Table<'t, (&'static str, &'static str), &'static [u8]>,
    targets: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> RedbTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, JobStoreError> {
        Ok(Self {
            jobs: txn.open_table(JOBS).map_err(storage)?,
            alerts: txn.open_table(ALERTS).map_err(storage)?,
            log: txn.open_table(LOG).map_err(storage)?,
            dead: txn.open_table(DEAD).map_err(storage)?,
            refs: txn.open_table(MESSAGE_REFS).map_err(storage)?,
            history: txn.open_table(super::history::HISTORY).map_err(storage)?,
            meta: txn.open_table(META).map_err(storage)?,
            quarantine: txn.open_table(QUARANTINE).map_err(storage)?,
            targets: txn.open_table(TARGETS).map_err(storage)?,
        })
    }

    /// Moves the dead letter `id`, whose record `bytes` could not be read (`why`), to the
    /// quarantine.
    /// (The caller counts it: one dead letter fewer, one record more in the quarantine.)
    fn quarantine_dead(
        &mut self,
        id: &str,
        bytes: Vec<u8>,
        why: &JobStoreError,
    ) -> Result<(), JobStoreError> {
        self.dead.remove(id).map_err(storage)?;
        put_quarantined(&mut self.quarantine, DEAD.name(), id, bytes, why)?;
        Ok(())
    }
}

impl Tables for RedbTables<'_> {
    fn put_job(&mut self, id: JobId, job: &Job) -> Result<(), JobStoreError> {
        self.jobs
            .insert(id.0, encode_job(job)?.as_slice())
            .map_err(storage)?;
        Ok(())
    }

    fn remove_job(&mut self, id: JobId) -> Result<(), JobStoreError> {
        self.jobs.remove(id.0).map_err(storage)?;
        Ok(())
    }

    fn put_body(
        &mut self,
        id: u64,
        alert: &Arc<EnrichedAlert>,
        encoded: Option<&[u8]>,
    ) -> Result<(), JobStoreError> {
        let owned;
        let encoded = match encoded {
            Some(encoded) => encoded,
            None => {
                owned = encode_alert(alert)?;
                &owned
            }
        };
        self.alerts.insert(id, encoded).map_err(storage)?;
        Ok(())
    }

    fn read_body(&mut self, id: u64) -> Result<Arc<EnrichedAlert>, JobStoreError> {
        read_alert(&self.alerts, id)
    }

    fn put_log(&mut self, key: &Key, cached: &CachedLog) -> Result<(), JobStoreError> {
        let value = StoredLog::new(&cached.entry, cached.body, cached.seen_at).encode();
        self.log
            .insert((key.1.as_u64(), key.0.as_str()), value.as_slice())
            .map_err(storage)?;
        Ok(())
    }

    fn remove_log(&mut self, key: &Key) -> Result<(), JobStoreError> {
        self.log
            .remove((key.1.as_u64(), key.0.as_str()))
            .map_err(storage)?;
        Ok(())
    }

    fn put_target(
        &mut self,
        name: &TargetName,
        record: Option<&KnownTarget>,
    ) -> Result<(), JobStoreError> {
        match record {
            Some(record) => {
                self.targets
                    .insert(name.as_str(), encode(record)?.as_slice())
                    .map_err(storage)?;
            }
            None => {
                self.targets.remove(name.as_str()).map_err(storage)?;
            }
        }
        Ok(())
    }

    fn put_dead(&mut self, entry: &DeadLetter) -> Result<(), JobStoreError> {
        self.dead
            .insert(
                entry.id.0.as_str(),
                encode(&StoredDeadLetter::new(entry))?.as_slice(),
            )
            .map_err(storage)?;
        Ok(())
    }

    fn has_dead(&mut self, id: &DeadLetterId) -> Result<bool, JobStoreError> {
        Ok(self.dead.get(id.0.as_str()).map_err(storage)?.is_some())
    }

    fn read_dead(&mut self, id: &DeadLetterId) -> Result<DeadRead, JobStoreError> {
        let read = match self.dead.get(id.0.as_str()).map_err(storage)? {
            Some(value) => read_dead(value.value()).map_err(|e| (value.value().to_vec(), e)),
            None => return Ok(DeadRead::Missing),
        };
        match read {
            Ok(entry) => Ok(DeadRead::Found(Box::new(entry))),
            Err((bytes, e)) => {
                self.quarantine_dead(&id.0, bytes, &e)?;
                Ok(DeadRead::SetAside)
            }
        }
    }

    fn remove_dead(&mut self, id: &DeadLetterId) -> Result<bool, JobStoreError> {
        Ok(self.dead.remove(id.0.as_str()).map_err(storage)?.is_some())
    }

    fn oldest_dead(&mut self, with_time: bool) -> Result<Oldest, JobStoreError> {
        let Some((key, first)) = self.dead.first().map_err(storage)? else {
            return Ok(Oldest::None);
        };
        if !with_time {
            return Ok(Oldest::Entry { dead_at: None });
        }
        match read_dead_head(first.value()) {
            Ok(head) => Ok(Oldest::Entry {
                dead_at: Some(head.dead_at),
            }),
            Err(e) => {
                let (id, bytes) = (key.value().to_owned(), first.value().to_vec());
                drop((key, first));
                self.quarantine_dead(&id, bytes, &e)?;
                Ok(Oldest::SetAside)
            }
        }
    }

    fn pop_oldest_dead(&mut self) -> Result<(), JobStoreError> {
        self.dead.pop_first().map_err(storage)?;
        Ok(())
    }
}

impl Shared {
    /// Whether the dispatcher is behind the queue: some lane has had due jobs pending for
    /// [`BEHIND`] without a break.
    pub(super) fn dispatch_behind(&self) -> bool {
        self.state()
            .is_ok_and(|state| state.index.behind(state.index.clock.0.now(), BEHIND))
    }

    /// Tells the lanes of `targets` that they have new jobs (see `LaneQueue::on_new_work`).
    fn announce(&self, targets: &[TargetName]) {
        if targets.is_empty() {
            return;
        }
        let announce = self
            .new_work
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(announce) = announce {
            targets.iter().for_each(|target| announce(target));
        }
    }

    /// The planners under the store's bounds as they stand.
    fn planner(&self, state: &State) -> Planner {
        Planner {
            max_jobs: self.max_jobs,
            max_jobs_per_target: self.max_jobs_per_target.load(Ordering::Relaxed),
            max_active_alerts: self.max_active_alerts.load(Ordering::Relaxed),
            dead_letter_cap: state.dead_letter_cap,
            dead_letter_retention: state.dead_letter_retention,
        }
    }

    /// Runs one group: plans and writes its ops under the state lock, commits without it, then
    /// applies the group to the state and answers every op. `close` makes the commit durable
    /// whatever the ops.
    /// Returns how many ops and settlements the group carried.
    pub(super) fn commit_group(&self, mut ops: Feed<'_>, close: bool) -> usize {
        let mut finishes: Vec<Finish> = Vec::new();
        match self.try_group(&mut ops, close, &mut finishes) {
            Ok(()) => {
                self.health.committed();
                finishes.into_iter().for_each(|f| f(None));
            }
            Err(e) => {
                self.health.failed(&e);
                // What the group had not taken yet waits for the next group: it may succeed.
                finishes.extend(ops.first.take().map(Op::into_failed));
                finishes.into_iter().for_each(|f| f(Some(&e)));
            }
        }
        ops.taken + ops.settled
    }

    fn try_group(
        &self,
        ops: &mut Feed<'_>,
        close: bool,
        finishes: &mut Vec<Finish>,
    ) -> Result<(), JobStoreError> {
        let mut txn = self.begin_write(settle_durability())?;
        let mut state = self.state()?;
        // What re-sends move from now on, while this group commits, a sweep in it cannot see.
        state.repeats_low = None;
        state.flush_queued = false;
        state.planned += 1;
        let number = state.planned;
        let sync = std::mem::take(&mut state.sync_wanted);
        let dirty_jobs: Vec<JobId> = state.dirty_jobs.drain().collect();
        if state.dirty_jobs.capacity() > 1_024 && dirty_jobs.len() < state.dirty_jobs.capacity() / 8
        {
            // A backlog's room, given back once groups carry far fewer settlements (as
            // `crate::lanes::shrink_if_sparse` does), so a steady load does not regrow it.
            state.dirty_jobs.shrink_to(dirty_jobs.len() * 2);
        }
        let dirty_bodies = std::mem::take(&mut state.dirty_bodies);
        ops.settled = dirty_jobs.len();
        let mut group = Group::new(&state);
        let planned = (|| {
            let mut t = RedbTables::open(&txn)?;
            for &id in &dirty_jobs {
                match state.jobs.get(&id) {
                    Some(job) => t.put_job(id, job)?,
                    None => {
                        t.jobs.remove(id.0).map_err(storage)?;
                    }
                }
            }
            for &body in &dirty_bodies {
                if !state.bodies.contains_key(&body) {
                    t.alerts.remove(body).map_err(storage)?;
                }
            }
            for op in ops.by_ref() {
                self.plan(&mut group, &state, &mut t, op, finishes)?;
            }
            if close {
                // A clean close writes the ends kept in memory, so the next open need not
                // restore them as after a crash.
                let now = state.index.clock.0.now();
                let mut unwritten = Vec::new();
                state.log.for_each(|target, fingerprint, cached| {
                    let key = (target.clone(), fingerprint);
                    if cached.entry.ends_at != cached.durable_ends_at
                        && !group.logs.contains_key(&key)
                    {
                        unwritten.push((key, CachedLog::written(cached.entry, cached.body, now)));
                    }
                });
                for (key, cached) in unwritten {
                    t.put_log(&key, &cached)?;
                }
                t.meta.insert(CLOSED_CLEANLY, 1).map_err(storage)?;
            }
            if group.next_job != state.next_job {
                t.meta.insert(NEXT_JOB, group.next_job).map_err(storage)?;
            }
            if group.next_body != state.next_body {
                t.meta.insert(NEXT_BODY, group.next_body).map_err(storage)?;
            }
            Ok::<_, JobStoreError>(())
        })();
        let restore = |state: &mut State| {
            state.dirty_jobs.extend(dirty_jobs.iter().copied());
            state.dirty_bodies.extend(dirty_bodies.iter().copied());
            state.sync_wanted |= sync;
            state.failed = true;
            self.committed.send_modify(|c| c.failed = number);
        };
        if let Err(e) = planned {
            restore(&mut state);
            drop(state);
            // The abort's own failure changes nothing: the transaction is gone either way.
            let _ = txn.abort();
            return Err(e);
        }
        let durable = close || ops.durable || sync;
        // Fresh alerts go to the lanes now, so their deliveries do not wait for the fsync.
        let early = if durable {
            group.take_early(&state).map(|mut early| {
                early.apply(&mut state);
                early
            })
        } else {
            None
        };
        // Until the group is applied (or taken back), the log in memory is not the whole truth,
        // so re-sends wait for the writer rather than being answered from it.
        state.log_unsettled = early.is_some() || !group.logs.is_empty();
        // The fsync runs without the lock, so lanes lease and ack meanwhile.
        drop(state);
        if let Some(early) = &early {
            self.announce(&early.targets);
        }
        let committed = if durable {
            txn.set_durability(ingest_durability())
                .map_err(storage)
                .and_then(|()| txn.commit().map_err(storage))
        } else {
            txn.commit().map_err(storage)
        };
        let mut state = self.state()?;
        state.log_unsettled = false;
        if let Err(e) = committed {
            if let Some(early) = early {
                early.undo(&mut state, &group);
            }
            restore(&mut state);
            return Err(e);
        }
        state.failed = false;
        let (evicted, quarantined) = (group.evicted, group.quarantined);
        // (A group handed to the lanes early has no effects left: its jobs were announced.)
        let new_work = group.new_work();
        group.apply(&mut state);
        drop(state);
        self.announce(&new_work);
        self.health.add_evicted(evicted);
        self.health.add_quarantined(quarantined);
        if durable {
            // Every group up to this one is on disk now.
            self.committed.send_modify(|c| c.durable = number);
        }
        Ok(())
    }

    /// Plans and writes one op, queueing its answer.
    fn plan(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut RedbTables<'_>,
        op: Op,
        finishes: &mut Vec<Finish>,
    ) -> Result<(), JobStoreError> {
        fn settle<T: Send + 'static>(
            reply: Reply<T>,
            planned: Planned2<T>,
            finishes: &mut Vec<Finish>,
        ) -> Result<(), JobStoreError> {
            match planned {
                Ok(answer) => {
                    finishes.push(finish(reply, answer));
                    Ok(())
                }
                Err(e) => {
                    finishes.push(failed(reply));
                    Err(e)
                }
            }
        }
        let planner = self.planner(state);
        match op {
            Op::Enqueue {
                batch,
                bodies,
                body_of,
                now,
                reply,
            } => settle(
                reply,
                planner.enqueue(g, state, t, &batch, bodies, &body_of, now),
                finishes,
            ),
            Op::DeadLetter {
                job,
                kind,
                reason,
                error,
                now,
                reply,
            } => settle(
                reply,
                planner.dead_letter(g, state, t, job, kind, reason, error, now),
                finishes,
            ),
            Op::DeadLetterTarget {
                target,
                kind,
                reason,
                now,
                reply,
            } => settle(
                reply,
                planner.dead_letter_target(g, state, t, &target, kind, reason, now),
                finishes,
            ),
            Op::Replay { id, now, reply } => {
                settle(reply, planner.replay(g, state, t, &id, now), finishes)
            }
            Op::Purge { id, reply } => settle(reply, planner.purge(g, t, &id), finishes),
            Op::Sweep { plan, now, reply } => {
                settle(reply, planner.sweep(g, state, t, &plan, now), finishes)
            }
            Op::MessageRef {
                target,
                fingerprint,
                reference,
                reply,
            } => {
                let key = (target.as_str(), fingerprint.as_u64());
                let planned = match reference {
                    Some(reference) => encode(&reference).and_then(|value| {
                        t.refs
                            .insert(key, value.as_slice())
                            .map(drop)
                            .map_err(storage)
                    }),
                    None => t.refs.remove(key).map(drop).map_err(storage),
                };
                settle(reply, planned.map(Ok), finishes)
            }
            Op::History {
                records,
                retention,
                now,
                reply,
            } => settle(
                reply,
                super::history::append(&mut t.history, records, retention, now).map(Ok),
                finishes,
            ),
            Op::Flush => Ok(()),
            Op::QuarantineDead { id } => {
                let read = match t.dead.get(id.0.as_str()).map_err(storage)? {
                    Some(value) => read_dead(value.value())
                        .err()
                        .map(|e| (value.value().to_vec(), e)),
                    None => None,
                };
                if let Some((bytes, e)) = read {
                    t.quarantine_dead(&id.0, bytes, &e)?;
                    g.dead_count = g.dead_count.saturating_sub(1);
                    g.quarantined += 1;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enqueue() -> Op {
        let (reply, _) = oneshot::channel();
        Op::Enqueue {
            batch: Arc::new(Vec::new()),
            bodies: Vec::new(),
            body_of: Vec::new(),
            now: DateTime::<Utc>::UNIX_EPOCH,
            reply,
        }
    }

    fn dead_letter() -> Op {
        let (reply, _) = oneshot::channel();
        Op::DeadLetter {
            job: JobId(1),
            kind: TargetKind::Webhook,
            reason: DeadReason::Exhausted,
            error: None,
            now: DateTime::<Utc>::UNIX_EPOCH,
            reply,
        }
    }

    /// Fresh alerts reach the lanes before their fsync only in a group that removes nothing, so
    /// a dead-letter move queued between two enqueues starts a group of its own, and the
    /// enqueue after it the next; a flush rides along with either.
    #[test]
    fn an_enqueue_and_a_dead_letter_move_are_never_in_one_group() {
        let (sender, mut receiver) = mpsc::channel(8);
        for op in [enqueue(), Op::Flush, dead_letter(), enqueue()] {
            assert!(sender.try_send(op).is_ok());
        }
        let mut held = None;
        let mut groups = Vec::new();
        let mut first = Some(enqueue());
        while let Some(op) = first.take() {
            let feed = Feed {
                first: Some(op),
                class: None,
                more: Some(&mut receiver),
                held: &mut held,
                taken: 0,
                settled: 0,
                durable: false,
            };
            let kinds: Vec<&str> = feed
                .map(|op| match op {
                    Op::Enqueue { .. } => "enqueue",
                    Op::DeadLetter { .. } => "dead letter",
                    Op::Flush => "flush",
                    _ => "other",
                })
                .collect();
            groups.push(kinds);
            first = held.take().or_else(|| receiver.try_recv().ok());
        }
        assert_eq!(
            groups,
            [
                vec!["enqueue", "enqueue", "flush"],
                vec!["dead letter"],
                vec!["enqueue"]
            ]
        );
    }
}

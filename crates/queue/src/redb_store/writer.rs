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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alert_core::{
    Admission, Admitted, AlertStatus, DeadLetter, DeadLetterId, DeadReason, EnrichedAlert,
    Fingerprint, JobError, JobId, JobStoreError, LogDecision, LogEntry, LogVerdict, MessageRef,
    Priority, SweepAction, SweepPlan, SweepReport, TargetKind, TargetName, log_verdict,
    sweep_action,
};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, Table, TableHandle, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::records::{
    ALERTS, CLOSED_CLEANLY, DEAD, JOBS, LOG, MESSAGE_REFS, META, NEXT_BODY, NEXT_JOB, QUARANTINE,
    StoredDeadLetter, StoredLog, TARGETS, encode, encode_alert, read_dead, read_dead_head, storage,
};
use super::state::{CachedLog, JobMeta, Key, Slot, State, SweepWake, put_quarantined, read_alert};
use super::{SETTLE_GATHER, Shared, ingest_durability, settle_durability};
use crate::sweep::{JobView, KnownTarget, doomed, kind_of, removal_due, sweep_job, track_targets};

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
    /// Nothing but the settlements marked dirty since the last commit (durably, when an
    /// acknowledgement asked for it).
    Flush,
    /// Moves a dead letter that a listing could not read to the quarantine, if it is still
    /// there and still unreadable. Nobody waits for it.
    QuarantineDead {
        id: DeadLetterId,
    },
}

/// One distinct alert of an ingest batch, prepared by the caller (off the writer thread): the
/// encoding of its body and its priority when firing.
pub(super) struct Prepared {
    alert: Arc<EnrichedAlert>,
    encoded: Vec<u8>,
    firing_priority: Priority,
}

/// Finds the batch's distinct alerts and encodes each once. Returns them and, for each
/// admission, the index of its alert.
pub(super) fn prepare(batch: &[Admission]) -> Result<(Vec<Prepared>, Vec<usize>), JobStoreError> {
    let mut bodies: Vec<Prepared> = Vec::new();
    let mut body_of = Vec::with_capacity(batch.len());
    for admission in batch {
        let alert = &admission.alert;
        // Ingest shares one alert between its targets' admissions, so the pointer usually
        // settles it.
        let found = bodies.iter().position(|p| {
            Arc::ptr_eq(&p.alert, alert)
                || (p.alert.alert.fingerprint() == alert.alert.fingerprint() && p.alert == *alert)
        });
        let index = match found {
            Some(index) => index,
            None => {
                bodies.push(Prepared {
                    encoded: encode_alert(alert)?,
                    firing_priority: Priority::of(alert, AlertStatus::Firing),
                    alert: Arc::clone(alert),
                });
                bodies.len() - 1
            }
        };
        body_of.push(index);
    }
    Ok((bodies, body_of))
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
            JobStoreError::Storage("the store's writer dropped the request".to_owned())
        });
        let _ = reply.send(Err(error));
    })
}

impl Op {
    /// Whether the op's commit must be on disk before it is answered.
    pub(super) fn durable(&self) -> bool {
        // Losing a quarantine move in a crash only leaves the entry for a later listing.
        !matches!(self, Self::Flush | Self::QuarantineDead { .. })
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
            Self::Purge { reply, .. } | Self::MessageRef { reply, .. } => failed(reply),
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
struct Tables<'t> {
    jobs: Table<'t, u64, &'static [u8]>,
    alerts: Table<'t, u64, &'static [u8]>,
    log: Table<'t, (u64, &'static str), &'static [u8]>,
    dead: Table<'t, &'static str, &'static [u8]>,
    refs: Table<'t, (&'static str, u64), &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    quarantine: Table<'t, (&'static str, &'static str), &'static [u8]>,
    targets: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, JobStoreError> {
        Ok(Self {
            jobs: txn.open_table(JOBS).map_err(storage)?,
            alerts: txn.open_table(ALERTS).map_err(storage)?,
            log: txn.open_table(LOG).map_err(storage)?,
            dead: txn.open_table(DEAD).map_err(storage)?,
            refs: txn.open_table(MESSAGE_REFS).map_err(storage)?,
            meta: txn.open_table(META).map_err(storage)?,
            quarantine: txn.open_table(QUARANTINE).map_err(storage)?,
            targets: txn.open_table(TARGETS).map_err(storage)?,
        })
    }

    /// Moves the dead letter `id`, whose record `bytes` could not be read (`why`), to the
    /// quarantine.
    fn quarantine_dead(
        &mut self,
        g: &mut Group,
        id: &str,
        bytes: Vec<u8>,
        why: &JobStoreError,
    ) -> Result<(), JobStoreError> {
        self.dead.remove(id).map_err(storage)?;
        put_quarantined(&mut self.quarantine, DEAD.name(), id, bytes, why)?;
        g.dead_count = g.dead_count.saturating_sub(1);
        g.quarantined += 1;
        Ok(())
    }

    fn put_job(&mut self, id: JobId, job: &JobMeta) -> Result<(), JobStoreError> {
        self.jobs
            .insert(id.0, job.record().encode()?.as_slice())
            .map_err(storage)?;
        Ok(())
    }

    fn put_log(&mut self, key: &Key, cached: &CachedLog) -> Result<(), JobStoreError> {
        let value = StoredLog::new(&cached.entry, cached.body, cached.seen_at).encode();
        self.log
            .insert((key.1.as_u64(), key.0.as_str()), value.as_slice())
            .map_err(storage)?;
        Ok(())
    }
}

/// What a group changes in the state, applied in order once its commit succeeded.
enum Effect {
    InsertBody(u64, Arc<EnrichedAlert>),
    SetLog(Key, CachedLog),
    RemoveLog(Key),
    /// Records a target the sweep saw (`Some`), or forgets it (`None`).
    SetTarget(TargetName, Option<KnownTarget>),
    Insert(JobId, JobMeta),
    /// A newer state replaced this job: a pending one is removed, a leased one is marked and
    /// removed when its lane settles it. Which it is is decided when the effect is applied,
    /// since a lane may have leased or put back the job while the group was being committed.
    Supersede(JobId),
    /// The job went to the dead-letter queue (or was dropped); the commit removed its record.
    Remove(JobId),
    /// A sweep scanned the log: when the next pass can find work there.
    SweepWake(SweepWake),
}

/// One (target, fingerprint) as a group sees it while it is being planned.
#[derive(Clone, Copy)]
struct Planned {
    slot: Slot,
    /// Whether the slot's leased job has already been superseded.
    leased_superseded: bool,
}

/// A group's view: the state as it will be once the ops planned so far are applied.
struct Group {
    slots: HashMap<Key, Planned>,
    logs: HashMap<Key, Option<CachedLog>>,
    /// Jobs this group removed (dead-lettered or superseded while pending).
    removed: HashSet<JobId>,
    next_job: u64,
    next_body: u64,
    /// Live jobs once the group is applied.
    live: u64,
    /// The jobs the group added per target (its removals are not counted, which errs on the
    /// side of the quota).
    added_to: HashMap<TargetName, u64>,
    /// Notification-log entries once the group is applied.
    log_entries: u64,
    dead_count: u64,
    /// Dead letters dropped because the queue was at its cap.
    evicted: u64,
    /// Records moved to the quarantine.
    quarantined: u64,
    effects: Vec<Effect>,
}

impl Group {
    fn new(state: &State) -> Self {
        Self {
            slots: HashMap::new(),
            logs: HashMap::new(),
            removed: HashSet::new(),
            next_job: state.next_job,
            next_body: state.next_body,
            live: state.jobs.len() as u64,
            added_to: HashMap::new(),
            log_entries: state.log.len() as u64,
            dead_count: state.dead_count,
            evicted: 0,
            quarantined: 0,
            effects: Vec::new(),
        }
    }

    fn log(&self, state: &State, key: &Key) -> Option<CachedLog> {
        match self.logs.get(key) {
            Some(planned) => planned.clone(),
            None => state.log.get(key),
        }
    }

    fn planned(&mut self, state: &State, key: &Key) -> &mut Planned {
        self.slots.entry(key.clone()).or_insert_with(|| {
            let slot = state.slot(key);
            let leased_superseded = slot
                .leased
                .and_then(|id| state.jobs.get(&id))
                .is_some_and(|j| j.superseded);
            Planned {
                slot,
                leased_superseded,
            }
        })
    }

    fn set_log(
        &mut self,
        state: &State,
        t: &mut Tables<'_>,
        key: &Key,
        cached: CachedLog,
    ) -> Result<(), JobStoreError> {
        t.put_log(key, &cached)?;
        if self.log(state, key).is_none() {
            self.log_entries += 1;
        }
        self.logs.insert(key.clone(), Some(cached.clone()));
        self.effects.push(Effect::SetLog(key.clone(), cached));
        Ok(())
    }

    /// Changes a log entry in memory only: a re-send whose move of `endsAt` need not be written.
    fn keep_log(&mut self, key: &Key, cached: CachedLog) {
        self.logs.insert(key.clone(), Some(cached.clone()));
        self.effects.push(Effect::SetLog(key.clone(), cached));
    }

    /// Stores a new alert body; the caller makes the references to it.
    fn new_body(
        &mut self,
        t: &mut Tables<'_>,
        alert: Arc<EnrichedAlert>,
    ) -> Result<u64, JobStoreError> {
        let encoded = encode_alert(&alert)?;
        self.store_body(t, alert, &encoded)
    }

    /// Stores a new alert body, already encoded.
    fn store_body(
        &mut self,
        t: &mut Tables<'_>,
        alert: Arc<EnrichedAlert>,
        encoded: &[u8],
    ) -> Result<u64, JobStoreError> {
        self.next_body += 1;
        let id = self.next_body;
        t.alerts.insert(id, encoded).map_err(storage)?;
        self.effects.push(Effect::InsertBody(id, alert));
        Ok(id)
    }

    /// Makes a pending job of `key`, due now, superseding the live job of the key as
    /// `enqueue_batch` does. Returns its id and the job it superseded.
    #[allow(clippy::too_many_arguments)]
    fn new_job(
        &mut self,
        state: &State,
        t: &mut Tables<'_>,
        key: &Key,
        body: u64,
        status: AlertStatus,
        sequence: u64,
        priority: Priority,
        now: DateTime<Utc>,
    ) -> Result<(JobId, Option<JobId>), JobStoreError> {
        self.next_job += 1;
        let id = JobId(self.next_job);
        let planned = self.planned(state, key);
        let mut replaced_pending = None;
        let superseded = if let Some(old) = planned.slot.pending {
            replaced_pending = Some(old);
            Some(old)
        } else if let Some(old) = planned.slot.leased
            && !planned.leased_superseded
        {
            // It stays until its lane settles it, and this job waits for that.
            planned.leased_superseded = true;
            Some(old)
        } else {
            None
        };
        planned.slot.pending = Some(id);
        match replaced_pending {
            Some(old) => {
                t.jobs.remove(old.0).map_err(storage)?;
                self.removed.insert(old);
            }
            // Replacing a pending job does not grow the queue; anything else does.
            None => {
                self.live += 1;
                *self.added_to.entry(key.0.clone()).or_default() += 1;
            }
        }
        if let Some(old) = superseded {
            self.effects.push(Effect::Supersede(old));
        }
        let job = JobMeta {
            target: key.0.clone(),
            fingerprint: key.1,
            body,
            status,
            sequence,
            attempts: 0,
            priority,
            enqueued_at: now,
            due: now,
            last_error: None,
            leased_until: None,
            superseded: false,
        };
        t.put_job(id, &job)?;
        self.effects.push(Effect::Insert(id, job));
        Ok((id, superseded))
    }

    /// Takes `job` out of its key's planned slot, as removing it does.
    fn forget(&mut self, state: &State, key: &Key, job: JobId) {
        let planned = self.planned(state, key);
        if planned.slot.pending == Some(job) {
            planned.slot.pending = None;
        }
        if planned.slot.leased == Some(job) {
            planned.slot.leased = None;
            planned.leased_superseded = false;
        }
        self.removed.insert(job);
        self.live = self.live.saturating_sub(1);
        self.effects.push(Effect::Remove(job));
    }

    /// Applies the group to the state, after its commit.
    fn apply(self, state: &mut State) {
        state.next_job = self.next_job;
        state.next_body = self.next_body;
        state.dead_count = self.dead_count;
        Effect::apply_all(self.effects, state);
    }
}

impl Effect {
    /// Applies a group's effects in order, holding the bodies they release until all are
    /// applied ([`State::with_bodies_held`]).
    fn apply_all(effects: Vec<Effect>, state: &mut State) {
        state.with_bodies_held(|state| {
            for effect in effects {
                effect.apply(state);
            }
        });
    }

    /// Applies one effect to the state.
    fn apply(self, state: &mut State) {
        match self {
            Effect::InsertBody(id, alert) => state.insert_body(id, alert),
            Effect::SetLog(key, cached) => state.set_log(key, cached),
            Effect::RemoveLog(key) => state.remove_log(&key),
            Effect::SetTarget(name, Some(record)) => {
                state.targets.insert(name, record);
            }
            Effect::SetTarget(name, None) => {
                state.targets.remove(&name);
            }
            Effect::Insert(id, job) => state.insert_job(id, job),
            Effect::Supersede(id) => match state.jobs.get_mut(&id) {
                Some(job) if job.leased_until.is_some() => job.superseded = true,
                // Pending now: removed, and (should a lane have put it back since the
                // group removed its record) removed on disk again by the next commit.
                Some(_) => state.settle_remove(id),
                None => {}
            },
            Effect::Remove(id) => {
                state.remove(id);
            }
            Effect::SweepWake(mut wake) => {
                // A re-send kept in memory while the pass was being committed may have moved an
                // end before what the pass saw.
                wake.lower(state.repeats_low.take());
                state.sweep_wake = Some(wake);
            }
        }
    }
}

/// The part of a group handed to the lanes before its commit's fsync: fresh alerts only, that
/// is new bodies, log entries for keys that had none, and jobs of those bodies. Nothing in it
/// replaces or removes anything, so a failed commit can take it all back (see [`Early::undo`]).
/// A group that also supersedes, removes or rewrites something is applied only after its
/// commit, as a whole.
struct Early {
    effects: Vec<Effect>,
    logs: Vec<Key>,
    jobs: Vec<JobId>,
    targets: Vec<TargetName>,
}

impl Group {
    /// Takes the group's effects out as an [`Early`] when all of them are fresh alerts' and
    /// there is at least one job among them.
    fn take_early(&mut self, state: &State) -> Option<Early> {
        let fresh: HashSet<u64> = self
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::InsertBody(id, _) => Some(*id),
                _ => None,
            })
            .collect();
        let mut jobs = Vec::new();
        let mut logs = Vec::new();
        let mut targets: Vec<TargetName> = Vec::new();
        for effect in &self.effects {
            match effect {
                Effect::InsertBody(..) => {}
                Effect::SetLog(key, cached)
                    if fresh.contains(&cached.body) && !state.log.contains_key(key) =>
                {
                    logs.push(key.clone());
                }
                Effect::Insert(id, job) if fresh.contains(&job.body) => {
                    jobs.push(*id);
                    if !targets.contains(&job.target) {
                        targets.push(job.target.clone());
                    }
                }
                _ => return None,
            }
        }
        if jobs.is_empty() {
            return None;
        }
        Some(Early {
            effects: std::mem::take(&mut self.effects),
            logs,
            jobs,
            targets,
        })
    }
}

impl Early {
    /// Applies the effects, in order, so lanes can lease the jobs at once.
    fn apply(&mut self, state: &mut State) {
        Effect::apply_all(std::mem::take(&mut self.effects), state);
    }

    /// Takes the effects back after the commit failed: the log entries and the pending jobs go
    /// (and with their last reference, the bodies). A job a lane holds is marked superseded, so
    /// its settlement removes it; its id and its body's are then never handed out again, since
    /// that lane will still settle it by id.
    fn undo(self, state: &mut State, group: &Group) {
        for key in &self.logs {
            state.remove_log(key);
        }
        let mut held = false;
        for id in self.jobs {
            match state.jobs.get_mut(&id) {
                Some(job) if job.leased_until.is_some() => {
                    job.superseded = true;
                    held = true;
                }
                Some(_) => {
                    state.remove(id);
                }
                // Delivered and acked already.
                None => {}
            }
        }
        if held {
            state.next_job = state.next_job.max(group.next_job);
            state.next_body = state.next_body.max(group.next_body);
        }
    }
}

/// The op's own answer, or a storage error that fails its whole group.
type Planned2<T> = Result<Result<T, JobStoreError>, JobStoreError>;

impl Shared {
    /// Whether the dispatcher is behind the queue: some lane has had due jobs pending for
    /// [`BEHIND`] without a break.
    pub(super) fn dispatch_behind(&self) -> bool {
        self.state()
            .is_ok_and(|state| state.index.behind(state.index.clock.0.now(), BEHIND))
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
            let mut t = Tables::open(&txn)?;
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
        if let (Some(early), Some(wake)) = (&early, self.on_new_jobs.get()) {
            early.targets.iter().for_each(wake);
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
        group.apply(&mut state);
        drop(state);
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
        t: &mut Tables<'_>,
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
        match op {
            Op::Enqueue {
                batch,
                bodies,
                body_of,
                now,
                reply,
            } => settle(
                reply,
                self.enqueue(g, state, t, &batch, bodies, &body_of, now),
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
                self.dead_letter(g, state, t, job, kind, reason, error, now),
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
                self.dead_letter_target(g, state, t, &target, kind, reason, now),
                finishes,
            ),
            Op::Replay { id, now, reply } => {
                settle(reply, self.replay(g, state, t, &id, now), finishes)
            }
            Op::Purge { id, reply } => {
                let planned = match t.dead.remove(id.0.as_str()) {
                    Ok(Some(_)) => {
                        g.dead_count = g.dead_count.saturating_sub(1);
                        Ok(Ok(()))
                    }
                    Ok(None) => Ok(Err(JobStoreError::NotFound)),
                    Err(e) => Err(storage(e)),
                };
                settle(reply, planned, finishes)
            }
            Op::Sweep { plan, now, reply } => {
                settle(reply, self.sweep(g, state, t, &plan, now), finishes)
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
            Op::Flush => Ok(()),
            Op::QuarantineDead { id } => {
                let read = match t.dead.get(id.0.as_str()).map_err(storage)? {
                    Some(value) => read_dead(value.value())
                        .err()
                        .map(|e| (value.value().to_vec(), e)),
                    None => None,
                };
                if let Some((bytes, e)) = read {
                    t.quarantine_dead(g, &id.0, bytes, &e)?;
                }
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut Tables<'_>,
        batch: &[Admission],
        prepared: Vec<Prepared>,
        body_of: &[usize],
        now: DateTime<Utc>,
    ) -> Planned2<Vec<Admitted>> {
        // First the decisions alone, so a refusal (`Full`) is known before anything is written.
        let mut logs: HashMap<Key, Option<LogEntry>> = HashMap::new();
        let mut pending: HashMap<Key, bool> = HashMap::new();
        let mut verdicts = Vec::with_capacity(batch.len());
        let mut added: u64 = 0;
        let mut added_to: HashMap<&TargetName, u64> = HashMap::new();
        let mut new_entries: u64 = 0;
        let quota = self.max_jobs_per_target.load(Ordering::Relaxed);
        for admission in batch {
            let key = (
                admission.target.clone(),
                admission.alert.alert.fingerprint(),
            );
            let previous = logs
                .entry(key.clone())
                .or_insert_with(|| g.log(state, &key).map(|c| c.entry));
            let verdict = log_verdict(previous.as_ref(), admission, now);
            match &verdict {
                LogVerdict::Enqueue { entry, .. } => {
                    let has_pending = pending.entry(key.clone()).or_insert_with(|| {
                        g.slots
                            .get(&key)
                            .map_or_else(|| state.slot(&key), |p| p.slot)
                            .pending
                            .is_some()
                    });
                    // Replacing a pending job does not grow the queue.
                    if !*has_pending {
                        let to = added_to.entry(&admission.target).or_default();
                        let live = state.index.live(&admission.target)
                            + g.added_to.get(&admission.target).copied().unwrap_or(0);
                        if live + *to >= quota {
                            // Refused alone: nothing of it is written, its log entry included.
                            verdicts.push((key, None));
                            continue;
                        }
                        *to += 1;
                        added += 1;
                        *has_pending = true;
                    }
                    if previous.is_none() {
                        new_entries += 1;
                    }
                    *previous = Some(entry.clone());
                }
                LogVerdict::Duplicate {
                    refresh: Some(entry),
                } => *previous = Some(entry.clone()),
                LogVerdict::Duplicate { refresh: None } => {}
            }
            verdicts.push((key, Some(verdict)));
        }
        let max_active_alerts = self.max_active_alerts.load(Ordering::Relaxed);
        if new_entries > 0 && g.log_entries + new_entries > max_active_alerts {
            return Ok(Err(JobStoreError::TooManyActiveAlerts {
                max_active_alerts,
            }));
        }
        if added > 0 && g.live + added > self.max_jobs {
            return Ok(Err(JobStoreError::Full {
                max_jobs: self.max_jobs,
            }));
        }

        // Then the writes. Each distinct alert of the batch is stored once, however many
        // targets it goes to; the body ids are given out as the bodies are first used.
        let priorities: Vec<Priority> = prepared.iter().map(|p| p.firing_priority).collect();
        let mut stored: Vec<Option<u64>> = vec![None; prepared.len()];
        let mut prepared: Vec<Option<Prepared>> = prepared.into_iter().map(Some).collect();
        // Alerts whose `startsAt` the log merged, which the caller could not prepare.
        let mut merged: Vec<(Arc<EnrichedAlert>, u64)> = Vec::new();
        let mut answers = Vec::with_capacity(verdicts.len());
        for ((key, verdict), (admission, &index)) in
            verdicts.into_iter().zip(batch.iter().zip(body_of))
        {
            let Some(verdict) = verdict else {
                answers.push(Admitted::TargetFull {
                    max_jobs_per_target: quota,
                });
                continue;
            };
            match verdict {
                LogVerdict::Duplicate { refresh: None } => answers.push(Admitted::Duplicate),
                LogVerdict::Duplicate {
                    refresh: Some(entry),
                } => {
                    // A refresh only extends the entry's `endsAt`; the accepted alert stays,
                    // since the re-send was not accepted as a delivery. It is written only when
                    // a restart could not make up for it (`crate::repeats`).
                    let previous = g.log(state, &key).ok_or_else(|| {
                        JobStoreError::Storage(format!(
                            "the log entry of {} {} vanished",
                            key.0, key.1
                        ))
                    })?;
                    if previous.must_write(entry.ends_at, now) {
                        let cached = CachedLog::written(entry, previous.body, now);
                        g.set_log(state, t, &key, cached)?;
                    } else {
                        g.keep_log(&key, CachedLog { entry, ..previous });
                    }
                    answers.push(Admitted::Duplicate);
                }
                LogVerdict::Enqueue {
                    merged_starts_at,
                    sequence,
                    entry,
                } => {
                    let (body, firing_priority) = match merged_starts_at {
                        None => {
                            let body = match stored[index] {
                                Some(body) => body,
                                None => {
                                    let p = prepared[index].take().ok_or_else(|| {
                                        JobStoreError::Storage("a prepared alert vanished".into())
                                    })?;
                                    let body = g.store_body(t, p.alert, &p.encoded)?;
                                    stored[index] = Some(body);
                                    body
                                }
                            };
                            (body, priorities[index])
                        }
                        Some(starts_at) => {
                            let mut alert = EnrichedAlert::clone(&admission.alert);
                            alert.alert = alert.alert.with_starts_at(starts_at).map_err(|e| {
                                JobStoreError::Storage(format!("merging startsAt: {e}"))
                            })?;
                            let priority = priorities[index];
                            let found = merged.iter().find(|(a, _)| **a == alert);
                            let body = match found {
                                Some(&(_, body)) => body,
                                None => {
                                    let alert = Arc::new(alert);
                                    let encoded = encode_alert(&alert)?;
                                    let body = g.store_body(t, Arc::clone(&alert), &encoded)?;
                                    merged.push((alert, body));
                                    body
                                }
                            };
                            (body, priority)
                        }
                    };
                    // The job's status is the log entry's: decided now, not when it is sent.
                    let status = entry.status;
                    let priority = match status {
                        AlertStatus::Resolved => Priority::Low,
                        AlertStatus::Firing => firing_priority,
                    };
                    g.set_log(state, t, &key, CachedLog::written(entry, body, now))?;
                    let (job, superseded) =
                        g.new_job(state, t, &key, body, status, sequence, priority, now)?;
                    answers.push(Admitted::Enqueued {
                        job,
                        sequence,
                        superseded,
                    });
                }
            }
        }
        Ok(Ok(answers))
    }

    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut Tables<'_>,
        id: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> Planned2<Option<DeadLetterId>> {
        if g.removed.contains(&id) {
            return Ok(Ok(None));
        }
        let Some(job) = state.jobs.get(&id) else {
            return Ok(Ok(None));
        };
        let key = (job.target.clone(), job.fingerprint);
        let superseded = job.superseded
            || g.slots
                .get(&key)
                .is_some_and(|p| p.slot.leased == Some(id) && p.leased_superseded);
        t.jobs.remove(id.0).map_err(storage)?;
        g.forget(state, &key, id);
        if superseded {
            return Ok(Ok(None));
        }
        let dead_id = state.dead_letter_id(now);
        let mut entry = self.dead_entry(state, job, dead_id.clone(), kind, reason, now)?;
        if error.is_some() {
            entry.last_error = error;
        }
        self.bury(g, state, t, &entry, now)?;
        let kept = t.dead.get(dead_id.0.as_str()).map_err(storage)?.is_some();
        Ok(Ok(kept.then_some(dead_id)))
    }

    /// The dead-letter entry of a live job. The attempt in flight counts: the lane may have
    /// sent it.
    fn dead_entry(
        &self,
        state: &State,
        job: &JobMeta,
        id: DeadLetterId,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> Result<DeadLetter, JobStoreError> {
        let alert = state.alert(job.body).ok_or_else(|| {
            JobStoreError::Storage(format!("the alert of a job ({}) is missing", job.body))
        })?;
        let mut entry = DeadLetter::new(
            id,
            job.target.clone(),
            kind,
            EnrichedAlert::clone(alert),
            reason,
            now,
        );
        entry.last_error.clone_from(&job.last_error);
        entry.status = job.status;
        entry.attempts = if job.leased_until.is_some() {
            job.attempts.saturating_add(1)
        } else {
            job.attempts
        };
        entry.sequence = job.sequence;
        entry.enqueued_at = job.enqueued_at;
        Ok(entry)
    }

    /// Stores a dead-letter entry and drops the oldest beyond the cap or the retention window.
    fn bury(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut Tables<'_>,
        entry: &DeadLetter,
        now: DateTime<Utc>,
    ) -> Result<(), JobStoreError> {
        t.dead
            .insert(
                entry.id.0.as_str(),
                encode(&StoredDeadLetter::new(entry))?.as_slice(),
            )
            .map_err(storage)?;
        g.dead_count += 1;
        let cutoff = state
            .dead_letter_retention
            .and_then(|r| chrono::Duration::from_std(r).ok())
            .and_then(|r| now.checked_sub_signed(r));
        // Ids sort by when they were made, so the oldest entries come first.
        loop {
            let Some((key, first)) = t.dead.first().map_err(storage)? else {
                break;
            };
            let over_cap = g.dead_count > state.dead_letter_cap as u64;
            let dead_at = cutoff
                .map(|_| read_dead_head(first.value()).map(|head| head.dead_at))
                .transpose();
            let dead_at = match dead_at {
                Ok(dead_at) => dead_at,
                Err(e) => {
                    // An entry that cannot be read would stop every later trim here.
                    let (id, bytes) = (key.value().to_owned(), first.value().to_vec());
                    drop((key, first));
                    t.quarantine_dead(g, &id, bytes, &e)?;
                    continue;
                }
            };
            drop((key, first));
            let expired = cutoff.zip(dead_at).is_some_and(|(cutoff, at)| at < cutoff);
            if !over_cap && !expired {
                break;
            }
            t.dead.pop_first().map_err(storage)?;
            g.dead_count -= 1;
            if !expired {
                g.evicted += 1;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dead_letter_target(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut Tables<'_>,
        target: &TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> Planned2<u64> {
        let Some(lane) = state.index.lanes.get(target) else {
            return Ok(Ok(0));
        };
        let mut ids: Vec<JobId> = lane
            .ready
            .iter()
            .flatten()
            .chain(&lane.leased)
            .map(|&(_, id)| id)
            .filter(|id| !g.removed.contains(id))
            .collect();
        // In the order they were made, so the entries' ids sort the same way.
        ids.sort_unstable();
        let mut moved = 0;
        for id in ids {
            let job = &state.jobs[&id];
            t.jobs.remove(id.0).map_err(storage)?;
            g.forget(state, &(job.target.clone(), job.fingerprint), id);
            // Its successor is moved with it; the older state would only be replayed over it.
            if job.superseded {
                continue;
            }
            let dead_id = state.dead_letter_id(now);
            let entry = self.dead_entry(state, job, dead_id, kind, reason, now)?;
            self.bury(g, state, t, &entry, now)?;
            moved += 1;
        }
        Ok(Ok(moved))
    }

    fn replay(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut Tables<'_>,
        id: &DeadLetterId,
        now: DateTime<Utc>,
    ) -> Planned2<JobId> {
        let read = match t.dead.get(id.0.as_str()).map_err(storage)? {
            Some(value) => read_dead(value.value()).map_err(|e| (value.value().to_vec(), e)),
            None => return Ok(Err(JobStoreError::NotFound)),
        };
        let entry = match read {
            Ok(entry) => entry,
            // An entry that cannot be read is set aside; there is nothing to replay.
            Err((bytes, e)) => {
                t.quarantine_dead(g, &id.0, bytes, &e)?;
                return Ok(Err(JobStoreError::NotFound));
            }
        };
        let key = (entry.target.clone(), entry.alert.alert.fingerprint());
        let newer_accepted = g
            .log(state, &key)
            .is_some_and(|log| log.entry.sequence > entry.sequence);
        // A live job of the same (target, fingerprint) is the same state or a newer one.
        let slot = g.planned(state, &key).slot;
        if newer_accepted || slot.pending.is_some() || slot.leased.is_some() {
            return Ok(Err(JobStoreError::Superseded));
        }
        if g.live >= self.max_jobs {
            return Ok(Err(JobStoreError::Full {
                max_jobs: self.max_jobs,
            }));
        }
        let quota = self.max_jobs_per_target.load(Ordering::Relaxed);
        if self.live_of(g, state, &key.0) >= quota {
            return Ok(Err(JobStoreError::TargetFull {
                target: key.0,
                max_jobs_per_target: quota,
            }));
        }
        t.dead.remove(id.0.as_str()).map_err(storage)?;
        g.dead_count = g.dead_count.saturating_sub(1);
        // A replay sends the state the job was made for, as its first attempt would have.
        let status = entry.status;
        let priority = Priority::of(&entry.alert, status);
        let body = g.new_body(t, Arc::new(entry.alert))?;
        let (job, _) = g.new_job(state, t, &key, body, status, entry.sequence, priority, now)?;
        Ok(Ok(job))
    }

    fn sweep(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut Tables<'_>,
        plan: &SweepPlan,
        now: DateTime<Utc>,
    ) -> Planned2<SweepReport> {
        let targets: HashMap<&str, Option<Duration>> = plan
            .targets
            .iter()
            .map(|(name, interval)| (name.as_str(), *interval))
            .collect();
        let mut work = Vec::new();
        let mut expired = Vec::new();
        let mut wake = SweepWake {
            targets: plan.targets.iter().cloned().collect(),
            retention: plan.log_retention,
            at: None,
        };
        let asleep = state.sweep_wake.as_ref().is_some_and(|w| {
            w.targets == wake.targets
                && w.retention == wake.retention
                && w.at.is_none_or(|at| now < at)
        });
        let scan = !asleep;
        if scan {
            // The entries this group set before the sweep are not in `state.log` yet, and
            // applying them comes before this wake: fold them in.
            for (key, cached) in &g.logs {
                if let Some(cached) = cached {
                    let due = wake.due(&key.0, cached);
                    wake.lower(due);
                }
            }
        }
        let mut visit = |target: &TargetName, fingerprint: Fingerprint, cached: CachedLog| {
            let due = wake.due(target, &cached);
            wake.lower(due);
            let action = sweep_action(
                &cached.entry,
                targets.get(target.as_str()).copied(),
                plan.log_retention,
                now,
            );
            let key = || (target.clone(), fingerprint);
            match action {
                SweepAction::Resolve { since } => work.push((since, key(), true)),
                SweepAction::Refresh { since } => work.push((since, key(), false)),
                SweepAction::Expire => expired.push(key()),
                _ => {}
            }
        };
        if scan {
            state.log.for_each(&mut visit);
        }
        if scan {
            // Before this pass's own entries, which bring it forward as they are applied.
            g.effects.push(Effect::SweepWake(wake));
        }
        let mut report = SweepReport::default();
        for key in expired {
            t.log
                .remove((key.1.as_u64(), key.0.as_str()))
                .map_err(storage)?;
            g.logs.insert(key.clone(), None);
            g.log_entries = g.log_entries.saturating_sub(1);
            g.effects.push(Effect::RemoveLog(key));
            report.expired_log_entries += 1;
        }
        self.bury_old_and_removed(g, state, t, plan, &mut report, now)?;
        let quota = self.max_jobs_per_target.load(Ordering::Relaxed);
        // Longest overdue first, so a bounded pass leaves the freshest work for the next one.
        work.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut made = 0_usize;
        for (_, key, resolve) in work {
            if made >= plan.max_jobs_per_pass {
                break;
            }
            let Some(cached) = g.log(state, &key) else {
                continue;
            };
            let slot = g.planned(state, &key).slot;
            // A refresh is for an alert that is not on its way already.
            if !resolve && (slot.pending.is_some() || slot.leased.is_some()) {
                continue;
            }
            // Replacing a pending job does not grow the queue.
            if slot.pending.is_none()
                && (g.live >= self.max_jobs || self.live_of(g, state, &key.0) >= quota)
            {
                continue;
            }
            // A delivered alert's body is not kept in memory: read it back.
            let last = match state.alert(cached.body) {
                Some(alert) => Arc::clone(alert),
                None => read_alert(&t.alerts, cached.body).map_err(|e| {
                    JobStoreError::Storage(format!(
                        "the alert of a log entry ({}): {e}",
                        cached.body
                    ))
                })?,
            };
            let LogDecision::Enqueue {
                alert,
                sequence,
                entry,
            } = sweep_job(&cached.entry, &last, now)?
            else {
                unreachable!("a sweep job is always an enqueue")
            };
            let status = entry.status;
            let priority = Priority::of(&alert, status);
            let body = g.new_body(t, Arc::new(*alert))?;
            g.set_log(state, t, &key, CachedLog::written(entry, body, now))?;
            g.new_job(state, t, &key, body, status, sequence, priority, now)?;
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
        Ok(Ok(report))
    }

    /// The live jobs of `target` once the group is applied (its removals aside).
    fn live_of(&self, g: &Group, state: &State, target: &TargetName) -> u64 {
        state.index.live(target) + g.added_to.get(target).copied().unwrap_or(0)
    }

    /// The sweep's dead-lettering: records the target set, then moves the jobs of removed
    /// targets past their grace and the jobs older than `max_age` to the dead-letter queue.
    fn bury_old_and_removed(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut Tables<'_>,
        plan: &SweepPlan,
        report: &mut SweepReport,
        now: DateTime<Utc>,
    ) -> Result<(), JobStoreError> {
        let changes = match &plan.known_targets {
            Some(known) => {
                let with_jobs = state.index.lanes.keys().cloned().collect::<Vec<_>>();
                track_targets(
                    &state.targets,
                    known,
                    with_jobs,
                    |n| state.index.live(n),
                    now,
                )
            }
            None => Vec::new(),
        };
        let removed = if plan.known_targets.is_some() {
            removal_due(&state.targets, &changes, plan.removal_grace, now)
        } else {
            HashSet::new()
        };
        let jobs = state
            .jobs
            .iter()
            .filter(|(id, _)| !g.removed.contains(id))
            .map(|(&id, job)| JobView {
                id,
                target: &job.target,
                enqueued_at: job.enqueued_at,
                leased_until: job.leased_until,
            });
        let doomed = doomed(jobs, &removed, plan.max_age, plan.max_jobs_per_pass, now);
        for (id, reason) in doomed {
            let job = &state.jobs[&id];
            t.jobs.remove(id.0).map_err(storage)?;
            g.forget(state, &(job.target.clone(), job.fingerprint), id);
            // Its successor is moved with it, or expires on its own.
            if job.superseded {
                continue;
            }
            let kind = kind_of(&state.targets, &changes, &job.target);
            let dead_id = state.dead_letter_id(now);
            let entry = self.dead_entry(state, job, dead_id, kind, reason, now)?;
            self.bury(g, state, t, &entry, now)?;
            match reason {
                DeadReason::TargetRemoved => report.removed_jobs += 1,
                _ => report.expired_jobs += 1,
            }
        }
        for (name, change) in changes {
            match &change {
                Some(record) => {
                    t.targets
                        .insert(name.as_str(), encode(record)?.as_slice())
                        .map_err(storage)?;
                }
                None => {
                    t.targets.remove(name.as_str()).map_err(storage)?;
                }
            }
            g.effects.push(Effect::SetTarget(name, change));
        }
        Ok(())
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

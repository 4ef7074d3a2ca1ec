//! Planning: a group of operations seen against the state as it will be once they are applied
//! ([`Group`]), the changes they make to the state ([`Effect`]), and the tables a store writes
//! them to ([`Tables`]). The planners themselves, one per operation, are in [`super::ops`].
//!
//! A group's effects are applied only once its writes are persisted, so a store whose write
//! fails leaves the state as it was; a store that hands fresh alerts to the lanes before its
//! fsync does it with an [`Early`], which it can take back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alert_core::{
    Admission, AlertStatus, DeadLetter, DeadLetterId, EnrichedAlert, JobId, JobStoreError,
    Priority, TargetName,
};
use chrono::{DateTime, Utc};

use super::state::{CachedLog, Job, Key, Slot, State, SweepWake};
use super::sweep::KnownTarget;

/// The tables a store persists a group to: the redb store's are its database's, in one write
/// transaction; the in-memory store keeps only what its state does not (the alert bodies, and
/// the dead letters).
///
/// A write fails only with a storage error, which fails the whole group.
pub(crate) trait Tables {
    /// Writes a live job's record.
    fn put_job(&mut self, id: JobId, job: &Job) -> Result<(), JobStoreError>;
    /// Removes a live job's record.
    fn remove_job(&mut self, id: JobId) -> Result<(), JobStoreError>;
    /// Removes the record of a pending job that a newer state of its (target, fingerprint)
    /// replaced. A store whose lanes may lease the job while the op is planned (a shared
    /// database) marks it superseded instead when it finds it leased.
    fn remove_superseded_job(&mut self, id: JobId) -> Result<(), JobStoreError> {
        self.remove_job(id)
    }
    /// Stores a new alert body; `encoded` is its encoding when the caller made it already.
    fn put_body(
        &mut self,
        id: u64,
        alert: &Arc<EnrichedAlert>,
        encoded: Option<&[u8]>,
    ) -> Result<(), JobStoreError>;
    /// Reads back a body whose alert the state does not hold (one only log entries refer to).
    fn read_body(&mut self, id: u64) -> Result<Arc<EnrichedAlert>, JobStoreError>;
    /// Writes a notification-log entry.
    fn put_log(&mut self, key: &Key, cached: &CachedLog) -> Result<(), JobStoreError>;
    /// Removes a notification-log entry.
    fn remove_log(&mut self, key: &Key) -> Result<(), JobStoreError>;
    /// Records a target the sweep saw (`Some`), or forgets it (`None`).
    fn put_target(
        &mut self,
        name: &TargetName,
        record: Option<&KnownTarget>,
    ) -> Result<(), JobStoreError>;
    /// Stores a dead letter.
    fn put_dead(&mut self, entry: &DeadLetter) -> Result<(), JobStoreError>;
    /// Whether the dead letter `id` is stored.
    fn has_dead(&mut self, id: &DeadLetterId) -> Result<bool, JobStoreError>;
    /// Reads the dead letter `id`.
    fn read_dead(&mut self, id: &DeadLetterId) -> Result<DeadRead, JobStoreError>;
    /// Removes the dead letter `id`; whether it was there.
    fn remove_dead(&mut self, id: &DeadLetterId) -> Result<bool, JobStoreError>;
    /// The oldest dead letter (ids sort by when they were made), with when it died if
    /// `with_time`.
    fn oldest_dead(&mut self, with_time: bool) -> Result<Oldest, JobStoreError>;
    /// Removes the oldest dead letter.
    fn pop_oldest_dead(&mut self) -> Result<(), JobStoreError>;
}

/// A dead letter as [`Tables::read_dead`] finds it.
pub(crate) enum DeadRead {
    Found(Box<DeadLetter>),
    Missing,
    /// It could not be read, and the store set it aside (the redb store's quarantine): it is no
    /// longer a dead letter.
    SetAside,
}

/// The oldest dead letter as [`Tables::oldest_dead`] finds it.
pub(crate) enum Oldest {
    None,
    Entry {
        dead_at: Option<DateTime<Utc>>,
    },
    /// It could not be read, and the store set it aside, as for [`DeadRead::SetAside`].
    SetAside,
}

/// One distinct alert of an ingest batch, prepared by the caller (off a store's writer): the
/// encoding of its body, for a store that writes one, and its priority when firing.
pub(crate) struct Prepared {
    pub(crate) alert: Arc<EnrichedAlert>,
    pub(crate) encoded: Option<Vec<u8>>,
    pub(crate) firing_priority: Priority,
}

/// An encoder of alert bodies, for a store that writes them.
pub(crate) type Encode = fn(&EnrichedAlert) -> Result<Vec<u8>, JobStoreError>;

/// Finds the batch's distinct alerts and encodes each once with `encode`, if any. Returns them
/// and, for each admission, the index of its alert.
pub(crate) fn prepare(
    batch: &[Admission],
    encode: Option<Encode>,
) -> Result<(Vec<Prepared>, Vec<usize>), JobStoreError> {
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
                    encoded: encode.map(|encode| encode(alert)).transpose()?,
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

/// What a group changes in the state, applied in order once it was persisted.
pub(crate) enum Effect {
    InsertBody(u64, Arc<EnrichedAlert>),
    SetLog(Key, CachedLog),
    RemoveLog(Key),
    /// Records a target the sweep saw (`Some`), or forgets it (`None`).
    SetTarget(TargetName, Option<KnownTarget>),
    Insert(JobId, Job),
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
pub(crate) struct Planned {
    pub(crate) slot: Slot,
    /// Whether the slot's leased job has already been superseded.
    pub(crate) leased_superseded: bool,
}

/// A group's view: the state as it will be once the ops planned so far are applied.
pub(crate) struct Group {
    pub(crate) slots: HashMap<Key, Planned>,
    pub(crate) logs: HashMap<Key, Option<CachedLog>>,
    /// Jobs this group removed (dead-lettered or superseded while pending).
    pub(crate) removed: HashSet<JobId>,
    pub(crate) next_job: u64,
    pub(crate) next_body: u64,
    /// Live jobs once the group is applied.
    pub(crate) live: u64,
    /// The jobs the group added per target (its removals are not counted, which errs on the
    /// side of the quota).
    pub(crate) added_to: HashMap<TargetName, u64>,
    /// Notification-log entries once the group is applied.
    pub(crate) log_entries: u64,
    pub(crate) dead_count: u64,
    /// Dead letters dropped because the queue was at its cap.
    pub(crate) evicted: u64,
    /// Records moved to the quarantine.
    pub(crate) quarantined: u64,
    pub(crate) effects: Vec<Effect>,
}

impl Group {
    pub(crate) fn new(state: &State) -> Self {
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

    pub(crate) fn log(&self, state: &State, key: &Key) -> Option<CachedLog> {
        match self.logs.get(key) {
            Some(planned) => planned.clone(),
            None => state.log.get(key),
        }
    }

    pub(crate) fn planned(&mut self, state: &State, key: &Key) -> &mut Planned {
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

    pub(crate) fn set_log(
        &mut self,
        state: &State,
        t: &mut impl Tables,
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
    pub(crate) fn keep_log(&mut self, key: &Key, cached: CachedLog) {
        self.logs.insert(key.clone(), Some(cached.clone()));
        self.effects.push(Effect::SetLog(key.clone(), cached));
    }

    /// Stores a new alert body; the caller makes the references to it.
    pub(crate) fn new_body(
        &mut self,
        t: &mut impl Tables,
        alert: Arc<EnrichedAlert>,
    ) -> Result<u64, JobStoreError> {
        self.store_body(t, alert, None)
    }

    /// Stores a new alert body, already encoded when `encoded` is given.
    pub(crate) fn store_body(
        &mut self,
        t: &mut impl Tables,
        alert: Arc<EnrichedAlert>,
        encoded: Option<&[u8]>,
    ) -> Result<u64, JobStoreError> {
        self.next_body += 1;
        let id = self.next_body;
        t.put_body(id, &alert, encoded)?;
        self.effects.push(Effect::InsertBody(id, alert));
        Ok(id)
    }

    /// Makes a pending job of `key`, due now, superseding the live job of the key as
    /// `enqueue_batch` does. Returns its id and the job it superseded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_job(
        &mut self,
        state: &State,
        t: &mut impl Tables,
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
                t.remove_superseded_job(old)?;
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
        let job = Job {
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
    pub(crate) fn forget(&mut self, state: &State, key: &Key, job: JobId) {
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

    /// The targets whose lanes get jobs when the group is applied, each once.
    pub(crate) fn new_work(&self) -> Vec<TargetName> {
        let mut targets: Vec<TargetName> = Vec::new();
        for effect in &self.effects {
            if let Effect::Insert(_, job) = effect
                && !targets.contains(&job.target)
            {
                targets.push(job.target.clone());
            }
        }
        targets
    }

    /// Applies the group to the state, after its commit.
    pub(crate) fn apply(self, state: &mut State) {
        state.next_job = self.next_job;
        state.next_body = self.next_body;
        state.dead_count = self.dead_count;
        Effect::apply_all(self.effects, state);
    }
}

impl Effect {
    /// Applies a group's effects in order, holding the bodies they release until all are
    /// applied ([`State::with_bodies_held`]).
    pub(crate) fn apply_all(effects: Vec<Effect>, state: &mut State) {
        state.with_bodies_held(|state| {
            for effect in effects {
                effect.apply(state);
            }
        });
    }

    /// Applies one effect to the state.
    pub(crate) fn apply(self, state: &mut State) {
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
pub(crate) struct Early {
    pub(crate) effects: Vec<Effect>,
    pub(crate) logs: Vec<Key>,
    pub(crate) jobs: Vec<JobId>,
    pub(crate) targets: Vec<TargetName>,
}

impl Group {
    /// Takes the group's effects out as an [`Early`] when all of them are fresh alerts' and
    /// there is at least one job among them.
    pub(crate) fn take_early(&mut self, state: &State) -> Option<Early> {
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
    pub(crate) fn apply(&mut self, state: &mut State) {
        Effect::apply_all(std::mem::take(&mut self.effects), state);
    }

    /// Takes the effects back after the commit failed: the log entries and the pending jobs go
    /// (and with their last reference, the bodies). A job a lane holds is marked superseded, so
    /// its settlement removes it; its id and its body's are then never handed out again, since
    /// that lane will still settle it by id.
    pub(crate) fn undo(self, state: &mut State, group: &Group) {
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
pub(crate) type Planned2<T> = Result<Result<T, JobStoreError>, JobStoreError>;

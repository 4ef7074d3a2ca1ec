//! The planners, one per operation of the [`alert_core::JobStore`] contract that changes what a
//! store holds: each plans its op into a [`Group`], writing to the store's [`Tables`] and
//! recording the [`Effect`]s that the store applies to its state once the writes are
//! persisted. Every store runs these same planners, so the contract's rules live here once.
//!
//! Each planner decides its op's own refusal (`Full`, `NotFound`, `Superseded`) before it
//! writes anything, so a refusal never disturbs the other ops of a group; a storage error fails
//! the whole group.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Admission, Admitted, AlertStatus, DeadLetter, DeadLetterId, DeadReason, EnrichedAlert,
    Fingerprint, JobError, JobId, JobStoreError, LogDecision, LogEntry, LogVerdict, Priority,
    StorageKind, SweepAction, SweepPlan, SweepReport, TargetKind, TargetName, log_verdict,
    sweep_action,
};
use chrono::{DateTime, Utc};

use super::plan::{DeadRead, Effect, Group, Oldest, Planned2, Prepared, Tables};
use super::state::{CachedLog, Job, Key, State, SweepWake};
use super::sweep::{JobView, doomed, kind_of, removal_due, sweep_job, track_targets};

/// The planners, under a store's bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planner {
    /// The most live jobs.
    pub(crate) max_jobs: u64,
    /// The most live jobs per target; `u64::MAX` for none.
    pub(crate) max_jobs_per_target: u64,
    /// The most notification-log entries; `u64::MAX` for none.
    pub(crate) max_active_alerts: u64,
    /// The most dead letters; the oldest beyond it are dropped.
    pub(crate) dead_letter_cap: usize,
    /// How long a dead letter is kept, if not for ever.
    pub(crate) dead_letter_retention: Option<Duration>,
}

impl Planner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn enqueue(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut impl Tables,
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
        let quota = self.max_jobs_per_target;
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
                        let live = state.live(&admission.target)
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
        let max_active_alerts = self.max_active_alerts;
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
                        JobStoreError::storage(
                            StorageKind::Broken,
                            format!("the log entry of {} {} vanished", key.0, key.1),
                        )
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
                                        JobStoreError::storage(
                                            StorageKind::Broken,
                                            "a prepared alert vanished",
                                        )
                                    })?;
                                    let body = g.store_body(t, p.alert, p.encoded.as_deref())?;
                                    stored[index] = Some(body);
                                    body
                                }
                            };
                            (body, priorities[index])
                        }
                        Some(starts_at) => {
                            let mut alert = EnrichedAlert::clone(&admission.alert);
                            alert.alert = alert.alert.with_starts_at(starts_at).map_err(|e| {
                                JobStoreError::storage(
                                    StorageKind::Corrupt,
                                    format!("merging startsAt: {e}"),
                                )
                            })?;
                            let priority = priorities[index];
                            let found = merged.iter().find(|(a, _)| **a == alert);
                            let body = match found {
                                Some(&(_, body)) => body,
                                None => {
                                    let alert = Arc::new(alert);
                                    let body = g.store_body(t, Arc::clone(&alert), None)?;
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
    pub(crate) fn dead_letter(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut impl Tables,
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
        t.remove_job(id)?;
        g.forget(state, &key, id);
        if superseded {
            return Ok(Ok(None));
        }
        let dead_id = state.dead_letter_id(now);
        let mut entry = self.dead_entry(state, job, dead_id.clone(), kind, reason, now)?;
        if error.is_some() {
            entry.last_error = error;
        }
        self.bury(g, t, &entry, now)?;
        let kept = t.has_dead(&dead_id)?;
        Ok(Ok(kept.then_some(dead_id)))
    }

    /// The dead-letter entry of a live job. The attempt in flight counts: the lane may have
    /// sent it.
    fn dead_entry(
        &self,
        state: &State,
        job: &Job,
        id: DeadLetterId,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> Result<DeadLetter, JobStoreError> {
        let alert = state.alert(job.body).ok_or_else(|| {
            JobStoreError::storage(
                StorageKind::Corrupt,
                format!("the alert of a job ({}) is missing", job.body),
            )
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
        t: &mut impl Tables,
        entry: &DeadLetter,
        now: DateTime<Utc>,
    ) -> Result<(), JobStoreError> {
        t.put_dead(entry)?;
        g.dead_count += 1;
        let cutoff = self
            .dead_letter_retention
            .and_then(|r| chrono::Duration::from_std(r).ok())
            .and_then(|r| now.checked_sub_signed(r));
        // Ids sort by when they were made, so the oldest entries come first.
        loop {
            let dead_at = match t.oldest_dead(cutoff.is_some())? {
                Oldest::None => break,
                Oldest::Entry { dead_at } => dead_at,
                // An entry that cannot be read would stop every later trim here: it was set
                // aside.
                Oldest::SetAside => {
                    g.dead_count = g.dead_count.saturating_sub(1);
                    g.quarantined += 1;
                    continue;
                }
            };
            let over_cap = g.dead_count > self.dead_letter_cap as u64;
            let expired = cutoff.zip(dead_at).is_some_and(|(cutoff, at)| at < cutoff);
            if !over_cap && !expired {
                break;
            }
            t.pop_oldest_dead()?;
            g.dead_count -= 1;
            if !expired {
                g.evicted += 1;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dead_letter_target(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut impl Tables,
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
            t.remove_job(id)?;
            g.forget(state, &(job.target.clone(), job.fingerprint), id);
            // Its successor is moved with it; the older state would only be replayed over it.
            if job.superseded {
                continue;
            }
            let dead_id = state.dead_letter_id(now);
            let entry = self.dead_entry(state, job, dead_id, kind, reason, now)?;
            self.bury(g, t, &entry, now)?;
            moved += 1;
        }
        Ok(Ok(moved))
    }

    pub(crate) fn replay(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut impl Tables,
        id: &DeadLetterId,
        now: DateTime<Utc>,
    ) -> Planned2<JobId> {
        let entry = match t.read_dead(id)? {
            DeadRead::Found(entry) => *entry,
            DeadRead::Missing => return Ok(Err(JobStoreError::NotFound)),
            // An entry that cannot be read is set aside; there is nothing to replay.
            DeadRead::SetAside => {
                g.dead_count = g.dead_count.saturating_sub(1);
                g.quarantined += 1;
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
        let quota = self.max_jobs_per_target;
        if self.live_of(g, state, &key.0) >= quota {
            return Ok(Err(JobStoreError::TargetFull {
                target: key.0,
                max_jobs_per_target: quota,
            }));
        }
        t.remove_dead(id)?;
        g.dead_count = g.dead_count.saturating_sub(1);
        // A replay sends the state the job was made for, as its first attempt would have.
        let status = entry.status;
        let priority = Priority::of(&entry.alert, status);
        let body = g.new_body(t, Arc::new(entry.alert))?;
        let (job, _) = g.new_job(state, t, &key, body, status, entry.sequence, priority, now)?;
        Ok(Ok(job))
    }

    pub(crate) fn sweep(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut impl Tables,
        plan: &SweepPlan,
        now: DateTime<Utc>,
    ) -> Planned2<SweepReport> {
        let mut work = Vec::new();
        let mut expired = Vec::new();
        // Asleep: the last scan's targets and retention are the plan's, and nothing it saw is
        // due yet. Compared with the plan as it is (its names are a set's, so unique), so that
        // an idle pass, once a second, builds no map of the targets.
        let asleep = state.sweep_wake.as_ref().is_some_and(|w| {
            w.retention == plan.log_retention
                && w.at.is_none_or(|at| now < at)
                && w.targets.len() == plan.targets.len()
                && plan
                    .targets
                    .iter()
                    .all(|(name, interval)| w.targets.get(name) == Some(interval))
        });
        if !asleep {
            let targets: HashMap<&str, Option<Duration>> = plan
                .targets
                .iter()
                .map(|(name, interval)| (name.as_str(), *interval))
                .collect();
            let mut wake = SweepWake {
                targets: plan.targets.iter().cloned().collect(),
                retention: plan.log_retention,
                at: None,
            };
            // The entries this group set before the sweep are not in `state.log` yet, and
            // applying them comes before this wake: fold them in.
            for (key, cached) in &g.logs {
                if let Some(cached) = cached {
                    let due = wake.due(&key.0, cached);
                    wake.lower(due);
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
            state.log.for_each(&mut visit);
            // Before this pass's own entries, which bring it forward as they are applied.
            g.effects.push(Effect::SweepWake(wake));
        }
        let mut report = SweepReport::default();
        for key in expired {
            t.remove_log(&key)?;
            g.logs.insert(key.clone(), None);
            g.log_entries = g.log_entries.saturating_sub(1);
            g.effects.push(Effect::RemoveLog(key));
            report.expired_log_entries += 1;
        }
        self.bury_old_and_removed(g, state, t, plan, &mut report, now)?;
        let quota = self.max_jobs_per_target;
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
                None => t.read_body(cached.body).map_err(|e| {
                    JobStoreError::storage(
                        StorageKind::Corrupt,
                        format!("the alert of a log entry ({}): {e}", cached.body),
                    )
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
        state.live(target) + g.added_to.get(target).copied().unwrap_or(0)
    }

    /// The sweep's dead-lettering: records the target set, then moves the jobs of removed
    /// targets past their grace and the jobs older than `max_age` to the dead-letter queue.
    pub(crate) fn bury_old_and_removed(
        &self,
        g: &mut Group,
        state: &State,
        t: &mut impl Tables,
        plan: &SweepPlan,
        report: &mut SweepReport,
        now: DateTime<Utc>,
    ) -> Result<(), JobStoreError> {
        let changes = match &plan.known_targets {
            Some(known) => {
                let with_jobs = state.targets_with_jobs();
                track_targets(&state.targets, known, with_jobs, |n| state.live(n), now)
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
            t.remove_job(id)?;
            g.forget(state, &(job.target.clone(), job.fingerprint), id);
            // Its successor is moved with it, or expires on its own.
            if job.superseded {
                continue;
            }
            let kind = kind_of(&state.targets, &changes, &job.target);
            let dead_id = state.dead_letter_id(now);
            let entry = self.dead_entry(state, job, dead_id, kind, reason, now)?;
            self.bury(g, t, &entry, now)?;
            match reason {
                DeadReason::TargetRemoved => report.removed_jobs += 1,
                _ => report.expired_jobs += 1,
            }
        }
        for (name, change) in changes {
            t.put_target(&name, change.as_ref())?;
            g.effects.push(Effect::SetTarget(name, change));
        }
        Ok(())
    }

    /// Plans a purge of the dead letter `id`.
    pub(crate) fn purge(
        &self,
        g: &mut Group,
        t: &mut impl Tables,
        id: &DeadLetterId,
    ) -> Planned2<()> {
        if t.remove_dead(id)? {
            g.dead_count = g.dead_count.saturating_sub(1);
            Ok(Ok(()))
        } else {
            Ok(Err(JobStoreError::NotFound))
        }
    }
}

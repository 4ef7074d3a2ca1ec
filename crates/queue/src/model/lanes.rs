//! What both stores share about leasing: the indexes of live jobs per target and per
//! (target, fingerprint), and the order in which a lane's lease slots go to the priorities.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_core::{
    Clock, Fingerprint, JobId, Priority, QueueStats, SystemClock, TargetName, TargetQueueStats,
};
use chrono::{DateTime, Utc};

/// One (target, fingerprint): the unit of ordering and of the notification log.
pub(crate) type Key = (TargetName, Fingerprint);

/// One target's indexes.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    /// Pending jobs by priority level, ordered by (due, id).
    pub(crate) ready: [BTreeSet<(DateTime<Utc>, JobId)>; 3],
    /// Leased jobs, ordered by (lease expiry, id).
    pub(crate) leased: BTreeSet<(DateTime<Utc>, JobId)>,
    /// The position in [`CYCLE`] of the next lease slot.
    pub(crate) cycle: usize,
    /// When the lane last had no due job pending: a lease took the last, or a job was filed
    /// into a lane without one. A lane that keeps up comes back here every few milliseconds.
    pub(crate) caught_up: Option<Instant>,
}

impl Lane {
    /// Whether a pending job is due at `now`.
    fn has_due(&self, now: DateTime<Utc>) -> bool {
        self.ready
            .iter()
            .any(|set| set.first().is_some_and(|(due, _)| *due <= now))
    }
}

/// The live jobs of one (target, fingerprint): at most one pending and one leased. Both are set
/// only when the leased one has been superseded by the pending one.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) pending: Option<JobId>,
    pub(crate) leased: Option<JobId>,
}

/// Where a live job is filed: what the indexes know of it.
#[derive(Clone, Copy)]
pub(crate) struct Place<'a> {
    pub(crate) target: &'a TargetName,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) priority: Priority,
    pub(crate) due: DateTime<Utc>,
    pub(crate) leased_until: Option<DateTime<Utc>>,
}

/// The indexes of the live jobs, which a store keeps beside the jobs themselves: a pending job
/// is in its lane's ready set and its slot's pending place, a leased one in its lane's leased
/// set and its slot's leased place.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) lanes: HashMap<TargetName, Lane>,
    pub(crate) slots: HashMap<Key, Slot>,
    /// The store's clock, read only for when a lane last caught up.
    pub(crate) clock: StoreClock,
}

/// The clock a store's index reads (default: [`SystemClock`]). Every job's due time comes from
/// the caller's `now`; the index reads the clock itself only where no caller hands it a time:
/// whether a job filed into a lane finds it idle, and how long a lane has been behind.
#[derive(Clone)]
pub(crate) struct StoreClock(pub(crate) Arc<dyn Clock>);

impl Default for StoreClock {
    fn default() -> Self {
        Self(Arc::new(SystemClock))
    }
}

impl fmt::Debug for StoreClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreClock")
    }
}

impl Index {
    /// Files job `id` where `place` says: pending, or leased until `place.leased_until`.
    pub(crate) fn file(&mut self, id: JobId, place: Place<'_>) {
        let lane = self.lanes.entry(place.target.clone()).or_default();
        let clock = &self.clock.0;
        // The clock is read only when the lane has pending jobs that might be due.
        let idle = || lane.ready.iter().all(BTreeSet::is_empty) || !lane.has_due(clock.now());
        if place.leased_until.is_none() && idle() {
            lane.caught_up = Some(clock.monotonic());
        }
        let slot = self
            .slots
            .entry((place.target.clone(), place.fingerprint))
            .or_default();
        match place.leased_until {
            Some(until) => {
                lane.leased.insert((until, id));
                slot.leased = Some(id);
            }
            None => {
                lane.ready[level(place.priority)].insert((place.due, id));
                slot.pending = Some(id);
            }
        }
    }

    /// Takes job `id`, filed at `place`, out of its lane's sets and its slot.
    pub(crate) fn unfile(&mut self, id: JobId, place: Place<'_>) {
        if let Some(lane) = self.lanes.get_mut(place.target) {
            match place.leased_until {
                Some(until) => lane.leased.remove(&(until, id)),
                None => lane.ready[level(place.priority)].remove(&(place.due, id)),
            };
        }
        let key = (place.target.clone(), place.fingerprint);
        if let Some(slot) = self.slots.get_mut(&key) {
            if slot.pending == Some(id) {
                slot.pending = None;
            }
            if slot.leased == Some(id) {
                slot.leased = None;
            }
            if slot.pending.is_none() && slot.leased.is_none() {
                self.slots.remove(&key);
                shrink_if_sparse(&mut self.slots);
            }
        }
    }

    /// How many live jobs (pending or leased) `target` has.
    pub(crate) fn live(&self, target: &TargetName) -> u64 {
        self.lanes.get(target).map_or(0, |lane| {
            let ready: usize = lane.ready.iter().map(BTreeSet::len).sum();
            (ready + lane.leased.len()) as u64
        })
    }

    /// The live jobs of `key`.
    pub(crate) fn slot(&self, key: &Key) -> Slot {
        self.slots.get(key).copied().unwrap_or_default()
    }

    /// The jobs of `target` whose lease has expired at `now`.
    pub(crate) fn expired(&self, target: &TargetName, now: DateTime<Utc>) -> Vec<JobId> {
        self.lanes.get(target).map_or_else(Vec::new, |lane| {
            lane.leased
                .range(..=(now, JobId(u64::MAX)))
                .map(|&(_, id)| id)
                .collect()
        })
    }

    /// Chooses up to `n` due jobs of `target`, by priority share, oldest due first per level,
    /// skipping jobs whose (target, fingerprint) has a job in flight; `fingerprint` tells a
    /// job's. Returns them with the cycle position to keep once they are leased.
    pub(crate) fn pick(
        &self,
        target: &TargetName,
        n: usize,
        now: DateTime<Utc>,
        fingerprint: impl Fn(JobId) -> Fingerprint,
    ) -> (Vec<JobId>, usize) {
        let Some(lane) = self.lanes.get(target) else {
            return (Vec::new(), 0);
        };
        let mut candidates: [VecDeque<JobId>; 3] = Default::default();
        for (ready, out) in lane.ready.iter().zip(&mut candidates) {
            *out = ready
                .range(..=(now, JobId(u64::MAX)))
                .map(|&(_, id)| id)
                .filter(|&id| {
                    self.slots
                        .get(&(target.clone(), fingerprint(id)))
                        .is_none_or(|s| s.leased.is_none())
                })
                .take(n)
                .collect();
        }
        take_by_share(candidates, lane.cycle, n)
    }

    /// Records a lease of `target` made at `now`: `cycle` is its position in [`CYCLE`] for its
    /// next lease, and a lease that left no due job pending means the lane has caught up.
    pub(crate) fn leased(&mut self, target: &TargetName, cycle: usize, now: DateTime<Utc>) {
        if let Some(lane) = self.lanes.get_mut(target) {
            lane.cycle = cycle;
            if !lane.has_due(now) {
                lane.caught_up = Some(self.clock.0.monotonic());
            }
        }
    }

    /// Whether the dispatcher is behind the queue: some lane has had a due job pending without
    /// a break for longer than `lag` (at `now`, by the wall clock, for what is due; the lag by
    /// the clock's monotonic time). A job that waits for its (target, fingerprint)'s job in
    /// flight counts as pending too.
    pub(crate) fn behind(&self, now: DateTime<Utc>, lag: Duration) -> bool {
        let mono = self.clock.0.monotonic();
        self.lanes.values().any(|lane| {
            lane.has_due(now)
                && lane
                    .caught_up
                    .is_some_and(|at| mono.saturating_duration_since(at) >= lag)
        })
    }

    /// When the earliest pending job of `target` that is not due at `now` becomes due.
    pub(crate) fn next_due(
        &self,
        target: &TargetName,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
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
}

/// The order in which a lane's 16 consecutive lease slots go to the priorities: 12 high, 3 medium
/// and 1 low, as [`Priority::share`] documents. The lower levels are spread out so that a lane
/// leasing a few jobs at a time still reaches them, and the position carries over between
/// leases, so the shares hold however many jobs each lease asks for.
pub(crate) const CYCLE: [Priority; 16] = {
    use Priority::{High as H, Low as L, Medium as M};
    [H, H, H, H, M, H, H, H, H, M, H, H, H, H, M, L]
};

/// The index of `priority` in per-level arrays: high 0, medium 1, low 2.
pub(crate) const fn level(priority: Priority) -> usize {
    match priority {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
    }
}

/// Takes up to `n` jobs from the per-level `candidates` (each oldest due first), following
/// [`CYCLE`] from position `cycle`. Returns them with the position to keep for the next lease.
pub(crate) fn take_by_share(
    mut candidates: [VecDeque<JobId>; 3],
    mut cycle: usize,
    n: usize,
) -> (Vec<JobId>, usize) {
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

/// One live job as [`queue_stats`] counts it.
pub(crate) struct Counted<'a> {
    pub(crate) target: &'a TargetName,
    pub(crate) priority: Priority,
    pub(crate) enqueued_at: DateTime<Utc>,
    pub(crate) leased: bool,
}

/// The [`QueueStats`] of the live `jobs`, beside `dead_letters` dead letters.
pub(crate) fn queue_stats<'a>(
    jobs: impl Iterator<Item = Counted<'a>>,
    dead_letters: u64,
) -> QueueStats {
    let mut by_priority = [0; 3];
    let mut by_target: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut oldest_enqueued_at = None::<DateTime<Utc>>;
    for job in jobs {
        oldest_enqueued_at =
            Some(oldest_enqueued_at.map_or(job.enqueued_at, |o| o.min(job.enqueued_at)));
        by_priority[level(job.priority)] += 1;
        let counts = by_target.entry(job.target.as_str()).or_default();
        if job.leased {
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
        dead_letters,
        oldest_enqueued_at,
    }
}

/// Gives back a map's room once it is mostly empty. A map keeps the capacity of its peak: after
/// a backlog (a fleet's first send of a million alerts, say) that is hundreds of MiB holding
/// nothing. Shrinking to twice the length once it is under an eighth of the capacity costs each
/// removal O(1), amortised.
pub(crate) fn shrink_if_sparse<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
) {
    let capacity = map.capacity();
    if capacity > 1_024 && map.len() < capacity / 8 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_gives_each_level_its_share() {
        for p in Priority::ALL {
            let slots = CYCLE.iter().filter(|&&c| c == p).count();
            assert_eq!(slots, p.share() as usize, "{}", p.as_str());
        }
    }

    #[test]
    fn the_index_is_behind_only_while_a_lane_has_had_due_jobs_pending_for_the_lag() {
        let target = TargetName::new("t").unwrap();
        let clock = Arc::new(alert_core::TestClock::new());
        let now = clock.now();
        let place = |id: u64, due, leased_until| Place {
            target: &target,
            fingerprint: Fingerprint::from_u64(id),
            priority: Priority::Low,
            due,
            leased_until,
        };
        let hour = Duration::from_secs(3600);
        let mut index = Index {
            clock: StoreClock(clock.clone()),
            ..Index::default()
        };
        assert!(!index.behind(now, Duration::ZERO), "an empty index");
        // A retry due in a minute is not pending work yet.
        index.file(JobId(1), place(1, now + chrono::Duration::minutes(1), None));
        assert!(!index.behind(now, Duration::ZERO));
        // A due job: behind once the lag has passed since the lane last caught up, which was
        // when the job arrived.
        let due = now - chrono::Duration::milliseconds(5);
        index.file(JobId(2), place(2, due, None));
        assert!(index.behind(now, Duration::ZERO));
        assert!(!index.behind(now, hour));
        // The lag is the store clock's: an hour later by it, the lane has been behind an hour.
        clock.advance(hour);
        assert!(index.behind(now, hour));
        // A lease that takes it catches the lane up.
        let (picked, cycle) = index.pick(&target, 8, now, |id| Fingerprint::from_u64(id.0));
        assert_eq!(picked, vec![JobId(2)]);
        index.unfile(JobId(2), place(2, due, None));
        index.file(
            JobId(2),
            place(2, due, Some(now + chrono::Duration::minutes(5))),
        );
        index.leased(&target, cycle, now);
        assert!(!index.behind(now, Duration::ZERO));
    }
}

//! The supervisor: a lane per enabled target that has jobs, following the target source.
//!
//! Every enabled target gets a lane when it is first seen (so jobs left from before a restart
//! are found). A lane whose store says its target has no job left ends ([`LaneEnd::Drained`]),
//! and the target is *quiet*: it holds no task until a wake-up asks for a lane again. So an idle
//! target costs its `LaneShared` and nothing more, however many are configured.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use alert_core::{TargetEntry, TargetName, TargetSet, TargetSource};
use tokio::sync::mpsc;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::lane::{EntryCell, Lane, LaneEnd};
use super::{Context, LaneShared, PauseReason, Registry};

/// The supervisor's hold on one running lane.
struct LaneControl {
    /// The lane reads its target's current entry from here, so a config change reaches it
    /// without a restart.
    entry: Arc<EntryCell>,
    /// Cancelled to stop the lane: it stops leasing, finishes its attempts in flight, and ends.
    stop: CancellationToken,
    task: Id,
}

pub(super) struct Supervisor {
    context: Arc<Context>,
    source: Arc<dyn TargetSource>,
    registry: Registry,
    shutdown: CancellationToken,
    /// Targets whose lane a wake-up found ended.
    start_requests: mpsc::UnboundedReceiver<TargetName>,
    lanes: BTreeMap<TargetName, LaneControl>,
    /// Enabled targets whose lane ended for want of jobs.
    quiet: HashSet<TargetName>,
    tasks: JoinSet<LaneEnd>,
    by_task: HashMap<Id, TargetName>,
}

impl Supervisor {
    pub(super) fn new(
        context: Arc<Context>,
        source: Arc<dyn TargetSource>,
        registry: Registry,
        start_requests: mpsc::UnboundedReceiver<TargetName>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            context,
            source,
            registry,
            shutdown,
            start_requests,
            lanes: BTreeMap::new(),
            quiet: HashSet::new(),
            tasks: JoinSet::new(),
            by_task: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self) {
        let mut targets = self.source.subscribe();
        let mut source_open = true;
        let current = targets.borrow_and_update().clone();
        self.reconcile(&current);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                changed = targets.changed(), if source_open => {
                    if changed.is_err() {
                        // The source is gone: keep the lanes we have until shutdown.
                        source_open = false;
                        continue;
                    }
                    let current = targets.borrow_and_update().clone();
                    self.reconcile(&current);
                }
                Some(target) = self.start_requests.recv() => {
                    let current = targets.borrow().clone();
                    self.start_requested(&target, &current);
                }
                Some(ended) = self.tasks.join_next_with_id() => {
                    let current = targets.borrow().clone();
                    self.ended(ended, &current);
                }
            }
        }
        // Every lane's stop token is a child of `shutdown`, so all of them are stopping now.
        while let Some(ended) = self.tasks.join_next().await {
            if let Err(err) = ended
                && err.is_panic()
            {
                tracing::error!("a dispatcher lane panicked during shutdown");
            }
        }
    }

    /// A lane's task ended: a stopped lane is forgotten; a drained one leaves its target quiet,
    /// unless a wake-up came as it ended; one that panicked is restarted if its target still
    /// wants one.
    fn ended(&mut self, ended: Result<(Id, LaneEnd), JoinError>, set: &TargetSet) {
        let (id, end) = match ended {
            Ok((id, end)) => (id, Some(end)),
            Err(err) => {
                if err.is_panic() {
                    tracing::error!("a dispatcher lane panicked; restarting it");
                }
                (err.id(), None)
            }
        };
        let Some(name) = self.by_task.remove(&id) else {
            return;
        };
        // The start runs a lane for every target with jobs, and most end once drained: the map
        // keeps no room for them.
        if self.by_task.len() * 4 < self.by_task.capacity() {
            self.by_task.shrink_to_fit();
        }
        if self.lanes.get(&name).is_none_or(|lane| lane.task != id) {
            // A lane stopped earlier, whose target has another lane by now or wants none.
            return;
        }
        self.lanes.remove(&name);
        let Some(shared) = self.shared_of(&name) else {
            return;
        };
        if end == Some(LaneEnd::Drained) && !shared.work.load(Ordering::SeqCst) {
            tracing::debug!(target = %name, "dispatcher lane ended: no jobs");
            self.quiet.insert(name);
            return;
        }
        // A wake-up came as the lane ended, or the lane panicked: its target gets another if it
        // still wants one.
        self.start_if_enabled(&name, shared, set);
    }

    /// The shared state of a target the dispatcher knows.
    fn shared_of(&self, name: &TargetName) -> Option<Arc<LaneShared>> {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Starts a lane for `name` if `set` has it enabled.
    fn start_if_enabled(&mut self, name: &TargetName, shared: Arc<LaneShared>, set: &TargetSet) {
        if let Some(entry) = set.get_shared(name.as_str())
            && entry.target.is_enabled()
        {
            let entry = Arc::clone(entry);
            self.quiet.remove(name);
            self.start_lane(&entry, shared);
        }
    }

    /// A wake-up found `target`'s lane not running: start one, if the target is enabled and has
    /// none.
    fn start_requested(&mut self, target: &TargetName, set: &TargetSet) {
        let Some(shared) = self.shared_of(target) else {
            return;
        };
        // Cleared before looking, so a wake-up after this look asks again.
        shared.start_requested.store(false, Ordering::SeqCst);
        if self.lanes.contains_key(target) {
            // Running, or ending: an ending lane's `ended` sees the wake-up's `work`.
            return;
        }
        self.start_if_enabled(target, shared, set);
    }

    /// Starts, updates and stops lanes so that exactly the enabled targets of `set` have one.
    fn reconcile(&mut self, set: &TargetSet) {
        for entry in set.iter_shared() {
            let name = &entry.target.name;
            let shared = self.shared(name, entry);
            if entry.target.is_enabled() {
                match self.lanes.get(name) {
                    Some(lane) => {
                        lane.entry.set(Arc::clone(entry));
                    }
                    // Its lane ended for want of jobs; the next job starts one with the
                    // entry current then.
                    None if self.quiet.contains(name) => {}
                    None => self.start_lane(entry, shared),
                }
            } else {
                self.stop_lane(name);
                self.quiet.remove(name);
                shared.set_pause(None, Some(PauseReason::Disabled));
            }
        }
        self.quiet.retain(|name| set.get(name.as_str()).is_some());
        let removed: Vec<TargetName> = self
            .lanes
            .keys()
            .filter(|name| set.get(name.as_str()).is_none())
            .cloned()
            .collect();
        for name in &removed {
            self.stop_lane(name);
        }
        // A removed target's jobs stay in the store; the queue owner dead-letters them after its
        // grace period. The lane status goes, since there is no target to show.
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| set.get(name.as_str()).is_some());
    }

    /// The shared state of `name`'s lane, made on first sight and kept across restarts.
    fn shared(&self, name: &TargetName, entry: &TargetEntry) -> Arc<LaneShared> {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = registry
            .entry(name.clone())
            .or_insert_with(|| Arc::new(LaneShared::new(entry.target.kind)));
        shared.set_kind(entry.target.kind);
        Arc::clone(shared)
    }

    fn start_lane(&mut self, entry: &Arc<TargetEntry>, shared: Arc<LaneShared>) {
        let name = entry.target.name.clone();
        let cell = EntryCell::new(Arc::clone(entry));
        let stop = self.shutdown.child_token();
        shared.set_pause(None, None);
        shared.running.store(true, Ordering::SeqCst);
        // A stopped lane of the same target may still be finishing its attempts in flight. Their
        // calls count in `shared`'s in-flight figure, which the new lane obeys, so the target
        // never has more calls than its limit; for that short while the jobs held are the old
        // lane's on top of the new one's.
        let lane = Lane::new(
            Arc::clone(&self.context),
            Arc::clone(&cell),
            shared,
            stop.clone(),
        );
        let task = self.tasks.spawn(lane.run()).id();
        self.by_task.insert(task, name.clone());
        self.lanes.insert(
            name,
            LaneControl {
                entry: cell,
                stop,
                task,
            },
        );
        tracing::debug!(target = %entry.target.name, "dispatcher lane started");
    }

    fn stop_lane(&mut self, name: &TargetName) {
        if let Some(lane) = self.lanes.remove(name) {
            lane.stop.cancel();
            if let Some(shared) = self.shared_of(name) {
                shared.running.store(false, Ordering::SeqCst);
            }
            tracing::debug!(target = %name, "dispatcher lane stopping");
        }
    }
}

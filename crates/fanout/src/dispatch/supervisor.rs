//! The supervisor: one lane per enabled target, following the target source.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};

use alert_core::{TargetEntry, TargetName, TargetSet, TargetSource};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use super::lane::{EntryCell, Lane};
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
    lanes: BTreeMap<TargetName, LaneControl>,
    tasks: JoinSet<()>,
    by_task: HashMap<Id, TargetName>,
}

impl Supervisor {
    pub(super) fn new(
        context: Arc<Context>,
        source: Arc<dyn TargetSource>,
        registry: Registry,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            context,
            source,
            registry,
            shutdown,
            lanes: BTreeMap::new(),
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
                Some(ended) = self.tasks.join_next_with_id() => {
                    let id = match &ended {
                        Ok((id, ())) => *id,
                        Err(err) => err.id(),
                    };
                    if let Err(err) = &ended && err.is_panic() {
                        tracing::error!("a dispatcher lane panicked; restarting it");
                    }
                    self.lane_ended(id);
                    // A lane that ends on its own (a panic) is restarted if its target still
                    // wants one; a stopped lane's target no longer does.
                    let current = targets.borrow().clone();
                    self.reconcile(&current);
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

    /// Forgets the lane that ran as task `id`, if it is still the current lane of its target.
    fn lane_ended(&mut self, id: Id) {
        if let Some(name) = self.by_task.remove(&id)
            && self.lanes.get(&name).is_some_and(|lane| lane.task == id)
        {
            self.lanes.remove(&name);
        }
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
                    None => self.start_lane(entry, shared),
                }
            } else {
                self.stop_lane(name);
                shared.set_pause(None, Some(PauseReason::Disabled));
            }
        }
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
            tracing::debug!(target = %name, "dispatcher lane stopping");
        }
    }
}

//! Two target sources served as one: the config file's and a discovered one's.

use std::sync::{Arc, Mutex, PoisonError};

use alert_core::{StaticTargetSource, TargetEntry, TargetSet, TargetSource};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A target name that both sources define. The file's target is kept; the other is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conflict {
    /// The name both define.
    pub name: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "target {:?} is defined both in the config file and by discovery; the file's target is used",
            self.name
        )
    }
}

/// The file source's targets and a discovered source's, merged into one set.
///
/// When both define the same name, that is an error: the file's target is kept, the conflict is
/// logged and listed by [`conflicts`](Self::conflicts). [`run`](Self::run) keeps the merged set
/// current, replacing it in one step whenever either source changes.
pub struct MergedSource {
    file: Arc<dyn TargetSource>,
    discovered: Arc<dyn TargetSource>,
    targets: StaticTargetSource,
    conflicts: Mutex<Vec<Conflict>>,
}

impl std::fmt::Debug for MergedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedSource")
            .field("conflicts", &self.conflicts())
            .finish_non_exhaustive()
    }
}

impl MergedSource {
    /// Merges the two sources' current sets.
    #[must_use]
    pub fn new(file: Arc<dyn TargetSource>, discovered: Arc<dyn TargetSource>) -> Self {
        let merged = Self {
            file,
            discovered,
            targets: StaticTargetSource::new(TargetSet::default()),
            conflicts: Mutex::new(Vec::new()),
        };
        merged.refresh();
        merged
    }

    /// The names both sources define, as of the last merge.
    #[must_use]
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-merges the two sources' current sets.
    pub fn refresh(&self) {
        let file = self.file.snapshot();
        let discovered = self.discovered.snapshot();
        let mut entries: Vec<TargetEntry> = file.iter().cloned().collect();
        let mut conflicts = Vec::new();
        for entry in discovered.iter() {
            if file.get(entry.target.name.as_str()).is_some() {
                conflicts.push(Conflict {
                    name: entry.target.name.to_string(),
                });
            } else {
                entries.push(entry.clone());
            }
        }
        match TargetSet::new(entries) {
            Ok(set) => self.targets.replace(set),
            Err(err) => tracing::error!(error = %err, "cannot merge the target sources"),
        }
        let mut held = self
            .conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for conflict in &conflicts {
            if !held.contains(conflict) {
                tracing::error!("{conflict}");
            }
        }
        *held = conflicts;
    }

    /// Keeps the merged set current until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut file = self.file.subscribe();
        let mut discovered = self.discovered.subscribe();
        file.mark_changed();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = file.changed() => if changed.is_err() { return },
                changed = discovered.changed() => if changed.is_err() { return },
            }
            file.mark_unchanged();
            discovered.mark_unchanged();
            self.refresh();
        }
    }
}

impl TargetSource for MergedSource {
    fn snapshot(&self) -> Arc<TargetSet> {
        self.targets.snapshot()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<TargetSet>> {
        self.targets.subscribe()
    }
}

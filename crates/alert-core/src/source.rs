//! The seam through which the current targets are read and watched.

use std::sync::Arc;

use tokio::sync::watch;

use crate::target::TargetSet;

/// Where the current targets come from: a snapshot now, and a channel that sees every new set.
pub trait TargetSource: Send + Sync + 'static {
    /// The current targets.
    fn snapshot(&self) -> Arc<TargetSet>;

    /// A receiver that is notified whenever the target set is replaced.
    fn subscribe(&self) -> watch::Receiver<Arc<TargetSet>>;
}

/// A target source whose set is replaced by hand. Discovery sources build on it; tests use it
/// directly.
#[derive(Debug)]
pub struct StaticTargetSource {
    sender: watch::Sender<Arc<TargetSet>>,
}

impl StaticTargetSource {
    /// A source holding `targets`.
    #[must_use]
    pub fn new(targets: TargetSet) -> Self {
        Self {
            sender: watch::Sender::new(Arc::new(targets)),
        }
    }

    /// Replaces the whole set in one step and notifies subscribers.
    pub fn replace(&self, targets: TargetSet) {
        self.sender.send_replace(Arc::new(targets));
    }
}

impl TargetSource for StaticTargetSource {
    fn snapshot(&self) -> Arc<TargetSet> {
        self.sender.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<TargetSet>> {
        self.sender.subscribe()
    }
}

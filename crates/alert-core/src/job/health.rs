//! How a job store is doing: what readiness and liveness probes ask it, and the counters of
//! records it set aside or dropped.

use serde::Serialize;

/// After this many consecutive failed commits a store reports
/// [`StoreCondition::Failing`]: one failed commit may be a blip, a run of them is a disk that
/// stays full.
pub const FAILING_AFTER: u64 = 3;

/// A job store's health, from [`QueueMaintenance::health`](super::QueueMaintenance::health). It is cheap to
/// read: a store answers it from memory, never from its disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StoreHealth {
    /// Whether the store can accept and persist work.
    pub condition: StoreCondition,
    /// Records found unreadable (they failed to decode) and moved to the store's quarantine
    /// since this process opened it, instead of failing the store.
    pub quarantined_records: u64,
    /// Dead letters dropped since this process opened the store because the dead-letter queue
    /// was at its cap.
    pub evicted_dead_letters: u64,
}

impl StoreHealth {
    /// A store in `condition` that has set nothing aside.
    #[must_use]
    pub fn new(condition: StoreCondition) -> Self {
        Self {
            condition,
            quarantined_records: 0,
            evicted_dead_letters: 0,
        }
    }

    /// Sets the counters.
    #[must_use]
    pub fn with_counters(mut self, quarantined_records: u64, evicted_dead_letters: u64) -> Self {
        self.quarantined_records = quarantined_records;
        self.evicted_dead_letters = evicted_dead_letters;
        self
    }
}

/// Whether a store works, and if not, whether it can heal by itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "condition", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StoreCondition {
    /// Commits succeed (or fewer than [`FAILING_AFTER`] in a row have failed).
    #[default]
    Healthy,
    /// The last `consecutive_failures` commits (or attempts to reopen the database) failed.
    /// The store keeps trying by itself, so it heals once the cause goes (a full disk that has
    /// room again): it is not ready, but it is alive.
    Failing {
        /// Failed commits and reopen attempts in a row.
        consecutive_failures: u64,
        /// The last failure, free of secrets.
        last_error: String,
    },
    /// The store cannot work again without a restart.
    Broken {
        /// Why.
        reason: BrokenReason,
    },
}

/// Why a store is [`StoreCondition::Broken`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BrokenReason {
    /// The thread or task that writes to the store has stopped (it panicked).
    WriterStopped,
    /// A panic while the store's state was locked may have left it half updated, so the
    /// store refuses to work.
    Poisoned,
}

impl StoreCondition {
    /// Whether the store should receive traffic: only a healthy one.
    #[must_use]
    pub const fn is_ready(&self) -> bool {
        matches!(self, Self::Healthy)
    }

    /// Whether the process should be left running: a failing store heals by itself, a broken
    /// one needs a restart.
    #[must_use]
    pub const fn is_live(&self) -> bool {
        !matches!(self, Self::Broken { .. })
    }

    /// A snake_case name for the condition, for error kinds and logs: `healthy`,
    /// `store_failing`, `store_writer_stopped` or `store_poisoned`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Failing { .. } => "store_failing",
            Self::Broken {
                reason: BrokenReason::WriterStopped,
            } => "store_writer_stopped",
            Self::Broken {
                reason: BrokenReason::Poisoned,
            } => "store_poisoned",
        }
    }

    /// A readable sentence about the condition.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::Healthy => "the queue's store is healthy".to_owned(),
            Self::Failing {
                consecutive_failures,
                last_error,
            } => format!(
                "the queue's last {consecutive_failures} commits failed (it retries by itself): \
                 {last_error}"
            ),
            Self::Broken {
                reason: BrokenReason::WriterStopped,
            } => "the queue's writer has stopped; restart the process".to_owned(),
            Self::Broken {
                reason: BrokenReason::Poisoned,
            } => "the queue's state is poisoned; restart the process".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_healthy_store_is_ready_and_only_a_broken_one_is_dead() {
        let failing = StoreCondition::Failing {
            consecutive_failures: 3,
            last_error: "no space left on device".to_owned(),
        };
        let broken = StoreCondition::Broken {
            reason: BrokenReason::WriterStopped,
        };
        assert!(StoreCondition::Healthy.is_ready() && StoreCondition::Healthy.is_live());
        assert!(!failing.is_ready() && failing.is_live());
        assert!(!broken.is_ready() && !broken.is_live());
        assert_eq!(failing.kind(), "store_failing");
        assert!(failing.message().contains("no space left"));
        assert_eq!(
            serde_json::to_value(&failing).unwrap(),
            serde_json::json!({
                "condition": "failing",
                "consecutive_failures": 3,
                "last_error": "no space left on device"
            })
        );
    }
}

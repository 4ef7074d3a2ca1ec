//! Hooks for metrics and logs.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::PublishError;
use crate::job::DeadReason;
use crate::publisher::Receipt;
use crate::target::Target;

/// Why a target was not called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// The target is disabled.
    Disabled,
    /// The target is unhealthy, and the health strategy skips unhealthy targets.
    Unhealthy,
    /// The target is degraded, and the health strategy skips degraded targets.
    Degraded,
    /// The target's circuit breaker is open.
    CircuitOpen,
    /// The target's filter does not match the alert.
    Filtered,
}

impl SkipReason {
    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Unhealthy => "unhealthy",
            Self::Degraded => "degraded",
            Self::CircuitOpen => "circuit_open",
            Self::Filtered => "filtered",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one call to one target.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CallOutcome {
    /// The receipt or the classified error.
    pub result: Result<Receipt, PublishError>,
    /// How long the call took.
    pub duration: Duration,
}

impl CallOutcome {
    /// An outcome.
    #[must_use]
    pub const fn new(result: Result<Receipt, PublishError>, duration: Duration) -> Self {
        Self { result, duration }
    }
}

/// The overall result of one parallel publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParallelOutcome {
    /// Every called target succeeded.
    Success,
    /// Some succeeded and some failed.
    Partial,
    /// None succeeded.
    Failure,
}

impl ParallelOutcome {
    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Failure => "failure",
        }
    }
}

/// Hooks called by the engine and the dispatcher, for metrics and logs. Every method defaults to
/// doing nothing. They run inline on the publish path, so they must be quick and must not block.
pub trait PublishObserver: Send + Sync + 'static {
    /// A call to `target` is starting.
    fn on_call_started(&self, target: &Target) {
        let _ = target;
    }

    /// A call to `target` finished (or was cancelled or timed out).
    fn on_call_finished(&self, target: &Target, outcome: &CallOutcome) {
        let _ = (target, outcome);
    }

    /// `target` was skipped.
    fn on_skipped(&self, target: &Target, reason: SkipReason) {
        let _ = (target, reason);
    }

    /// A parallel publish finished.
    fn on_parallel_publish(&self, outcome: ParallelOutcome, duration: Duration) {
        let _ = (outcome, duration);
    }

    /// The dispatcher put a job of `target` back in the queue. `consumed_attempt` is false when a
    /// gate (an open breaker or a 429) delayed it, true when a failed attempt counts.
    fn on_job_rescheduled(&self, target: &Target, consumed_attempt: bool) {
        let _ = (target, consumed_attempt);
    }

    /// The dispatcher moved a job of `target` to the dead-letter queue.
    fn on_job_dead_lettered(&self, target: &Target, reason: DeadReason) {
        let _ = (target, reason);
    }

    /// An attempt ended (the target answered, failed or timed out): what the delivery history
    /// keeps.
    fn on_attempt(&self, attempt: &AttemptEnded<'_>) {
        let _ = attempt;
    }

    /// The dispatcher delivered a job of `target`: the target accepted it `since_accepted`
    /// after ingest accepted its alert.
    fn on_job_delivered(&self, target: &Target, since_accepted: Duration) {
        let _ = (target, since_accepted);
    }
}

/// One attempt that ended, as [`PublishObserver::on_attempt`] hears of it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AttemptEnded<'a> {
    /// The target called.
    pub target: &'a Target,
    /// The alert sent.
    pub alert: &'a crate::EnrichedAlert,
    /// The state sent.
    pub status: crate::AlertStatus,
    /// The delivery and its attempt number.
    pub delivery: crate::Delivery,
    /// When the attempt started, by the caller's clock.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// What it came to.
    pub outcome: &'a CallOutcome,
    /// Which path made it.
    pub path: crate::AttemptPath,
}

impl<'a> AttemptEnded<'a> {
    /// An attempt of `path` to `target` that started at `started_at` and came to `outcome`.
    #[must_use]
    pub const fn new(
        target: &'a Target,
        alert: &'a crate::EnrichedAlert,
        (status, delivery): (crate::AlertStatus, crate::Delivery),
        started_at: chrono::DateTime<chrono::Utc>,
        outcome: &'a CallOutcome,
        path: crate::AttemptPath,
    ) -> Self {
        Self {
            target,
            alert,
            status,
            delivery,
            started_at,
            outcome,
            path,
        }
    }

    /// The delivery-history record of this attempt.
    #[must_use]
    pub fn record(&self) -> crate::DeliveryRecord {
        let outcome = &self.outcome;
        let (result, status_code, error_kind) = match &outcome.result {
            Ok(receipt) => (crate::AttemptOutcome::Delivered, receipt.status_code, None),
            Err(err) => (
                crate::AttemptOutcome::Failed,
                err.status_code,
                Some(err.kind.label()),
            ),
        };
        let ended = self.started_at
            + chrono::Duration::from_std(outcome.duration).unwrap_or(chrono::Duration::zero());
        crate::DeliveryRecord::new(
            ended,
            self.alert.alert.fingerprint(),
            self.alert.alert.labels().clone(),
            self.target.name.clone(),
            self.status,
            self.delivery.attempt,
            result,
            self.path,
        )
        .with_answer(status_code, error_kind, outcome.duration)
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl PublishObserver for NoopObserver {}

//! The health seam: how healthy is a target, as routing sees it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::observer::CallOutcome;

/// A target's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Nothing is known yet. Routing fails open: an unknown target is called.
    Unknown,
    /// Working.
    Healthy,
    /// Working, but slowly or with an auth problem.
    Degraded,
    /// Failing.
    Unhealthy,
}

impl HealthStatus {
    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current health of targets, by name, and the passive input that feeds it.
pub trait HealthView: Send + Sync + 'static {
    /// The target's current health; [`HealthStatus::Unknown`] for a target never seen.
    fn status(&self, target: &str) -> HealthStatus;

    /// Records the outcome of a call, as passive health input. The default ignores it.
    fn record(&self, target: &str, outcome: &CallOutcome) {
        let _ = (target, outcome);
    }
}

/// A health view that knows nothing: every target is [`HealthStatus::Unknown`], so routing fails
/// open and calls them all.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnknownHealth;

impl HealthView for UnknownHealth {
    fn status(&self, _target: &str) -> HealthStatus {
        HealthStatus::Unknown
    }
}

//! The circuit-breaker seam: may we call this target now, and what happened when we did.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::PublishError;
use crate::publisher::Receipt;

/// A breaker's state, as reported to selection and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One trial call at a time is let through.
    HalfOpen,
}

/// The answer to [`CircuitGate::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateDecision {
    /// Call the target. `trial` is true for the single trial call of a half-open breaker; the
    /// caller must pass it back to [`CircuitGate::record`], which frees the trial slot.
    Allow {
        /// Whether this is the half-open trial call.
        trial: bool,
    },
    /// Do not call the target now.
    Reject {
        /// When a call may next be allowed, if known.
        retry_in: Option<Duration>,
    },
}

/// What a call's result means to a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateOutcome {
    /// The target worked.
    Success,
    /// The target failed in a way that says something about its health.
    Failure,
    /// Neither: a 429, a cancellation, or a payload the target rightly refused.
    Neutral,
}

impl GateOutcome {
    /// Classifies a publish result, using [`ErrorKind::counts_against_target`](crate::ErrorKind::counts_against_target).
    #[must_use]
    pub fn of(result: &Result<Receipt, PublishError>) -> Self {
        match result {
            Ok(_) => Self::Success,
            Err(err) if err.kind.counts_against_target() => Self::Failure,
            Err(_) => Self::Neutral,
        }
    }
}

/// Per-target circuit breaking, as the engine and the dispatcher see it.
pub trait CircuitGate: Send + Sync + 'static {
    /// The breaker's current state, without taking a trial slot. Used by target selection.
    fn state(&self, target: &str) -> CircuitState;

    /// Asks to call the target now. A half-open breaker lets exactly one trial through at a time.
    fn acquire(&self, target: &str) -> GateDecision;

    /// Records the outcome of a call that [`acquire`](Self::acquire) allowed, with the `trial` flag
    /// it returned.
    fn record(&self, target: &str, trial: bool, outcome: GateOutcome);
}

/// A gate that never opens: for callers that want no circuit breaking.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysClosed;

impl CircuitGate for AlwaysClosed {
    fn state(&self, _target: &str) -> CircuitState {
        CircuitState::Closed
    }

    fn acquire(&self, _target: &str) -> GateDecision {
        GateDecision::Allow { trial: false }
    }

    fn record(&self, _target: &str, _trial: bool, _outcome: GateOutcome) {}
}

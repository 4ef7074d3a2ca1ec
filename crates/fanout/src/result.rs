//! What a parallel publish returns.

use std::time::Duration;

use alert_core::{ParallelOutcome, PublishError, SkipReason, TargetKind, TargetName, wire};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::options::OptionsError;
use crate::select::SelectError;

/// What happened to one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOutcome {
    /// The target accepted the alert.
    Success,
    /// The call failed, timed out or was cancelled; see `error`.
    Failed,
    /// The target was not called; see `skip_reason`.
    Skipped,
}

/// One target's entry in a [`ParallelPublishResult`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetResult {
    /// The target's name.
    pub target_name: TargetName,
    /// The target's kind.
    pub target_kind: TargetKind,
    /// Success, failed or skipped.
    pub outcome: TargetOutcome,
    /// Why it was skipped, for skipped targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// The HTTP status the target answered, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The classified error, for failed targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<PublishError>,
    /// Attempts made: 1 when the target was called, 0 when it was skipped or never started.
    pub attempts: u32,
    /// How long the target's call took.
    #[serde(rename = "duration_ms", with = "wire::duration_ms")]
    pub duration: Duration,
}

/// The result of one parallel publish: totals, and one entry per candidate target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParallelPublishResult {
    /// Every candidate target, called or skipped.
    pub total_targets: usize,
    /// Targets that accepted the alert.
    pub success_count: usize,
    /// Targets whose call failed, timed out or was cancelled.
    pub failure_count: usize,
    /// Targets not called.
    pub skipped_count: usize,
    /// At least one success and at least one failure.
    pub is_partial_success: bool,
    /// The overall timeout fired; unfinished targets are failed with kind `timeout`.
    pub timed_out: bool,
    /// The publish was cancelled; unfinished targets are failed with kind `cancelled`.
    pub cancelled: bool,
    /// When the publish started.
    #[serde(with = "wire::timestamp")]
    pub started_at: DateTime<Utc>,
    /// How long it took.
    #[serde(rename = "duration_ms", with = "wire::duration_ms")]
    pub duration: Duration,
    /// One entry per candidate target.
    pub results: Vec<TargetResult>,
}

impl ParallelPublishResult {
    /// At least one target succeeded.
    #[must_use]
    pub fn success(&self) -> bool {
        self.success_count > 0
    }

    /// Every called target succeeded, and at least one was called.
    #[must_use]
    pub fn all_succeeded(&self) -> bool {
        self.success_count > 0 && self.failure_count == 0
    }

    /// No called target succeeded, and at least one failed.
    #[must_use]
    pub fn all_failed(&self) -> bool {
        self.success_count == 0 && self.failure_count > 0
    }

    /// Successes over called targets, from 0 to 1; 0 when none was called.
    #[must_use]
    pub fn success_rate(&self) -> f64 {
        let called = self.success_count + self.failure_count;
        if called == 0 {
            0.0
        } else {
            // Counts are far below 2^52, so the conversion is exact.
            #[allow(clippy::cast_precision_loss)] // exact for any realistic target count
            let rate = self.success_count as f64 / called as f64;
            rate
        }
    }

    /// The overall outcome, as reported to observers and metrics.
    #[must_use]
    pub fn outcome(&self) -> ParallelOutcome {
        if self.all_failed() {
            ParallelOutcome::Failure
        } else if self.is_partial_success {
            ParallelOutcome::Partial
        } else {
            ParallelOutcome::Success
        }
    }

    /// The entry for a target.
    #[must_use]
    pub fn target(&self, name: &str) -> Option<&TargetResult> {
        self.results.iter().find(|r| r.target_name.as_str() == name)
    }
}

/// Why a parallel publish returned no plain result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// The options were invalid; nothing was sent.
    #[error("invalid options: {0}")]
    InvalidOptions(#[from] OptionsError),
    /// The named targets include unknown names; nothing was sent.
    #[error("unknown targets: {}", .0.join(", "))]
    UnknownTargets(Vec<String>),
    /// A named publish named no target; nothing was sent.
    #[error("no target names were given")]
    NoTargetsNamed,
    /// No candidate target is enabled; nothing was sent.
    #[error("no enabled targets")]
    NoEnabledTargets,
    /// Every enabled, matching target is unhealthy or behind an open breaker; nothing was sent.
    #[error("no healthy targets")]
    NoHealthyTargets,
    /// No target succeeded and at least one failed. The full result is attached.
    #[error("all {} called targets failed", .0.failure_count)]
    AllFailed(Box<ParallelPublishResult>),
}

impl FanoutError {
    /// The result, for [`FanoutError::AllFailed`].
    #[must_use]
    pub fn result(&self) -> Option<&ParallelPublishResult> {
        match self {
            Self::AllFailed(result) => Some(result),
            _ => None,
        }
    }
}

impl From<SelectError> for FanoutError {
    fn from(err: SelectError) -> Self {
        match err {
            SelectError::UnknownTargets(names) => Self::UnknownTargets(names),
            SelectError::NoEnabledTargets => Self::NoEnabledTargets,
            SelectError::NoHealthyTargets => Self::NoHealthyTargets,
            SelectError::NoTargetsNamed => Self::NoTargetsNamed,
        }
    }
}

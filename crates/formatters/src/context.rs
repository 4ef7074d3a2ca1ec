//! What the caller decided about one delivery.

use alert_core::{Alert, AlertStatus};
use chrono::{DateTime, Utc};

/// What the caller decided about this delivery: the status to publish and the instant to format
/// it at.
///
/// Formatters never read the clock and never derive the status themselves. The caller knows
/// better: the auto-resolve sweeper publishes a resolve for an alert whose own `endsAt` is unset,
/// and tests pin `now` to a fixed instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FormatContext {
    /// The status to publish.
    pub status: AlertStatus,
    /// The instant the delivery is formatted at.
    pub now: DateTime<Utc>,
}

impl FormatContext {
    /// A context with this status, formatted at `now`.
    #[must_use]
    pub fn new(status: AlertStatus, now: DateTime<Utc>) -> Self {
        Self { status, now }
    }

    /// The end to publish for `alert`. A resolve has its own `endsAt`, or `now` when the alert
    /// has none (an auto-resolve), so that a resolve never goes out without an end. A firing
    /// shows its `endsAt` only while that lies ahead of `now`: a firing delivered late, after
    /// the end it was accepted with (it waited out an outage), is still a firing, and a past end
    /// would say otherwise.
    #[must_use]
    pub fn effective_ends_at(&self, alert: &Alert) -> Option<DateTime<Utc>> {
        match (alert.ends_at(), self.status) {
            (Some(ends_at), AlertStatus::Resolved) => Some(ends_at),
            (None, AlertStatus::Resolved) => Some(self.now),
            (ends_at, AlertStatus::Firing) => ends_at.filter(|ends_at| *ends_at > self.now),
        }
    }
}

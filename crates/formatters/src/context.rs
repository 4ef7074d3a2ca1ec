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

    /// A context whose status is the alert's own at `now`, derived from `endsAt` as Alertmanager
    /// derives it.
    #[must_use]
    pub fn for_alert(alert: &Alert, now: DateTime<Utc>) -> Self {
        Self::new(alert.status_at(now), now)
    }

    /// The end to publish for `alert`: its own `endsAt`, or `now` when this delivery resolves an
    /// alert that has none (an auto-resolve), so that a resolve never goes out without an end.
    #[must_use]
    pub fn effective_ends_at(&self, alert: &Alert) -> Option<DateTime<Utc>> {
        match (alert.ends_at(), self.status) {
            (Some(ends_at), _) => Some(ends_at),
            (None, AlertStatus::Resolved) => Some(self.now),
            (None, AlertStatus::Firing) => None,
        }
    }
}

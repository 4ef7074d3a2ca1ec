//! What a sweep pass makes of one log entry, shared by both stores.

use alert_core::{EnrichedAlert, JobStoreError, LogDecision, LogEntry};
use chrono::{DateTime, Utc};

/// The job a sweep makes of a log entry whose [`sweep_action`](alert_core::sweep_action) is a resolve or a refresh: the
/// last accepted alert with the entry's effective `ends_at` (past for a resolve, ahead for a
/// refresh), the next delivery sequence, and the entry that records it.
pub(crate) fn sweep_job(
    entry: &LogEntry,
    last: &EnrichedAlert,
    now: DateTime<Utc>,
) -> Result<LogDecision, JobStoreError> {
    let mut alert = last.clone();
    alert.alert = alert
        .alert
        .with_ends_at(entry.ends_at)
        .map_err(|e| JobStoreError::Storage(format!("a logged alert is invalid: {e}")))?;
    let sequence = entry.sequence + 1;
    Ok(LogDecision::Enqueue {
        entry: LogEntry {
            status: alert.alert.status_at(now),
            starts_at: entry.starts_at,
            ends_at: entry.ends_at,
            sequence,
            accepted_at: now,
        },
        alert: Box::new(alert),
        sequence,
    })
}

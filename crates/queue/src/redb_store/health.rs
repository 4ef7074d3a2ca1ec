//! What the store knows of its own health: failed commits in a row, the backoff of reopening the
//! database after an I/O failure, and the counters of records set aside or dropped.
//!
//! The writer updates it after every group; [`RedbJobStore::health`](alert_core::JobStore::health)
//! reads it from memory, so a probe never waits for the disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alert_core::job::FAILING_AFTER;
use alert_core::{BrokenReason, JobStoreError, StorageKind, StoreCondition, StoreHealth};

/// The wait after the first failed attempt to reopen the database. Each further failure doubles
/// it, up to [`REOPEN_BACKOFF_CAP`].
pub(super) const REOPEN_BACKOFF_START: Duration = Duration::from_millis(250);

/// The longest wait between two attempts to reopen the database. Reopening reads the whole
/// file back into memory, so a full disk must not make every write (a sweep a second, every
/// ingest request) pay for it; once the disk has room again the store is back within this.
pub(super) const REOPEN_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Where the store reads the time for its reopen backoff; tests pass a clock they move.
pub(super) type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

/// See the module docs.
pub(super) struct Health {
    clock: Now,
    consecutive_failures: AtomicU64,
    last_error: Mutex<String>,
    quarantined: AtomicU64,
    evicted: AtomicU64,
    reopen: Mutex<Backoff>,
}

/// The reopen attempts that failed in a row, and when the next one may run.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

impl Health {
    pub(super) fn new(clock: Now) -> Self {
        Self {
            clock,
            consecutive_failures: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            quarantined: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            reopen: Mutex::new(Backoff::default()),
        }
    }

    /// A group committed.
    pub(super) fn committed(&self) {
        self.consecutive_failures.store(0, Ordering::SeqCst);
    }

    /// A group failed with `error`.
    pub(super) fn failed(&self, error: &JobStoreError) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = error.to_string();
        }
        self.consecutive_failures.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn add_quarantined(&self, n: u64) {
        self.quarantined.fetch_add(n, Ordering::SeqCst);
    }

    pub(super) fn add_evicted(&self, n: u64) {
        self.evicted.fetch_add(n, Ordering::SeqCst);
    }

    /// Whether the database may be reopened now: an error while the backoff after failed
    /// attempts runs.
    pub(super) fn may_reopen(&self) -> Result<(), JobStoreError> {
        let backoff = self.reopen.lock().map_err(|_| super::poisoned())?;
        match backoff.retry_at {
            Some(at) if (self.clock)() < at => Err(JobStoreError::storage(
                StorageKind::Io,
                format!(
                    "the queue's database could not be reopened after an I/O failure ({} attempts \
                 failed); the next attempt is in {} ms",
                    backoff.failures,
                    at.saturating_duration_since((self.clock)()).as_millis()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// An attempt to reopen the database failed: the next waits twice as long as the last, up to
    /// [`REOPEN_BACKOFF_CAP`]. Returns that wait.
    pub(super) fn reopen_failed(&self) -> Duration {
        let Ok(mut backoff) = self.reopen.lock() else {
            return REOPEN_BACKOFF_CAP;
        };
        backoff.failures = backoff.failures.saturating_add(1);
        let wait = reopen_wait(backoff.failures);
        backoff.retry_at = Some((self.clock)() + wait);
        wait
    }

    /// The database was reopened: the next failure starts the backoff afresh.
    pub(super) fn reopened(&self) {
        if let Ok(mut backoff) = self.reopen.lock() {
            *backoff = Backoff::default();
        }
    }

    /// The health view: `broken` when the store cannot work again, else failing after
    /// [`FAILING_AFTER`] failed groups in a row.
    pub(super) fn view(&self, broken: Option<BrokenReason>) -> StoreHealth {
        let failures = self.consecutive_failures.load(Ordering::SeqCst);
        let condition = match broken {
            Some(reason) => StoreCondition::Broken { reason },
            None if failures >= FAILING_AFTER => StoreCondition::Failing {
                consecutive_failures: failures,
                last_error: self
                    .last_error
                    .lock()
                    .map(|e| e.clone())
                    .unwrap_or_default(),
            },
            None => StoreCondition::Healthy,
        };
        StoreHealth::new(condition).with_counters(
            self.quarantined.load(Ordering::SeqCst),
            self.evicted.load(Ordering::SeqCst),
        )
    }
}

/// The wait after the `failures`-th failed reopen in a row: [`REOPEN_BACKOFF_START`], doubled for
/// each failure after the first, at most [`REOPEN_BACKOFF_CAP`].
fn reopen_wait(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    REOPEN_BACKOFF_START
        .saturating_mul(1 << doublings)
        .min(REOPEN_BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reopen_wait_doubles_up_to_its_cap() {
        let waits: Vec<u128> = (1..=10).map(|n| reopen_wait(n).as_millis()).collect();
        assert_eq!(
            waits,
            [
                250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        assert_eq!(reopen_wait(u32::MAX), REOPEN_BACKOFF_CAP);
    }
}

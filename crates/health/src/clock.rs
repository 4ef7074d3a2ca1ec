//! The monotonic clock the circuit breakers read, injectable so their timing can be tested.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A source of monotonic time for [`CircuitBreakers`](crate::CircuitBreakers).
///
/// The breakers' state machine never reads a clock itself: every transition takes `now` as an
/// argument, and the registry asks its clock once per call. Tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// tokio's clock (`tokio::time::Instant::now`), the default.
///
/// In production it is the system's monotonic clock. Under `tokio::time::pause` it is the paused
/// clock, so tests that drive the fan-out engine (whose per-attempt timeouts also use tokio's
/// clock) drive the breakers' cool-down with the same `tokio::time::advance`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A clock that moves only when told to, for tests.
///
/// ```
/// use std::time::Duration;
/// use health::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now() - start, Duration::from_secs(30));
/// ```
pub struct ManualClock {
    // A plain std lock even under loom: the clock is test scaffolding, not part of any model.
    now: Mutex<Instant>,
}

impl ManualClock {
    /// A clock standing at the current instant.
    #[must_use]
    pub fn new() -> Self {
        Self {
            now: Mutex::new(Instant::now()),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").finish_non_exhaustive()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

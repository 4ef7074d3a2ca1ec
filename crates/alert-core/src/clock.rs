//! The one clock every part of alertpub reads: wall time for what is stamped and compared with a
//! stamp, and a monotonic instant for durations measured inside the process.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The time, as alertpub reads it. The server builds one and hands it to every part.
///
/// - [`now`](Self::now) is the wall clock. Everything that is stamped (a job's `enqueued_at` and
///   due time, a lease's expiry, a dead letter, a delivery's timestamp) and everything compared
///   with a stamp (is this job due?) reads it, and only it, so a step of the system clock moves
///   every stamp and every comparison alike.
/// - [`monotonic`](Self::monotonic) never steps. It times what lives only in the process: a
///   breaker's cool-down, a lane's pause, the wait for the next poll. It must advance with
///   tokio's clock, because those waits sleep on tokio's timer.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> DateTime<Utc>;

    /// The current monotonic instant.
    fn monotonic(&self) -> Instant;
}

/// The system's clocks: `Utc::now()` and tokio's monotonic clock.
///
/// tokio's clock is the system's monotonic clock, except under `tokio::time::pause`, where it is
/// the paused clock, so timers and this clock's durations move together in tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn monotonic(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A clock for tests: it moves when told to, and optionally with tokio's (paused) clock, and
/// its wall time can be stepped forward or backward, as NTP steps a system clock.
///
/// ```
/// use std::time::Duration;
/// use alert_core::{Clock, TestClock};
/// use chrono::{TimeZone, Utc};
///
/// let clock = TestClock::starting_at(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
/// let (wall, mono) = (clock.now(), clock.monotonic());
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.monotonic() - mono, Duration::from_secs(30));
/// clock.step(chrono::Duration::hours(1));
/// assert_eq!(clock.now() - wall, chrono::Duration::seconds(3630));
/// assert_eq!(clock.monotonic() - mono, Duration::from_secs(30), "a step is wall time only");
/// ```
pub struct TestClock {
    base: DateTime<Utc>,
    origin: Instant,
    follows_tokio: bool,
    // A plain std lock: the clock is test scaffolding, never held across an await.
    moved: Mutex<Moved>,
}

#[derive(Clone, Copy, Default)]
struct Moved {
    advanced: Duration,
    stepped: chrono::Duration,
}

impl TestClock {
    /// A clock that stands at the current wall time and moves only when told to.
    #[must_use]
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock that stands at `base` and moves only when told to.
    #[must_use]
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self::build(base, false)
    }

    /// A clock that reads `base` now and moves with tokio's clock from there (besides
    /// [`advance`](Self::advance) and [`step`](Self::step)): under `tokio::time::pause`, with
    /// the paused clock, so `tokio::time::advance` moves timers and this clock together.
    #[must_use]
    pub fn on_tokio_time(base: DateTime<Utc>) -> Self {
        Self::build(base, true)
    }

    fn build(base: DateTime<Utc>, follows_tokio: bool) -> Self {
        Self {
            base,
            origin: tokio::time::Instant::now().into_std(),
            follows_tokio,
            moved: Mutex::new(Moved::default()),
        }
    }

    /// Moves both the wall clock and the monotonic clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut moved = self.moved();
        moved.advanced = moved.advanced.saturating_add(by);
    }

    /// Steps the wall clock by `by` (forward when positive, backward when negative), leaving the
    /// monotonic clock alone.
    pub fn step(&self, by: chrono::Duration) {
        let mut moved = self.moved();
        moved.stepped = moved.stepped.checked_add(&by).unwrap_or(moved.stepped);
    }

    fn moved(&self) -> std::sync::MutexGuard<'_, Moved> {
        self.moved.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn monotonic_at(&self, moved: Moved) -> Instant {
        let base = if self.follows_tokio {
            tokio::time::Instant::now().into_std()
        } else {
            self.origin
        };
        base.checked_add(moved.advanced).unwrap_or(base)
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TestClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClock")
            .field("now", &self.now())
            .field("follows_tokio", &self.follows_tokio)
            .finish_non_exhaustive()
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let moved = *self.moved();
        let elapsed = self
            .monotonic_at(moved)
            .saturating_duration_since(self.origin);
        // An elapsed time too large for chrono (hundreds of years) saturates.
        let elapsed = chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX);
        self.base
            .checked_add_signed(elapsed)
            .and_then(|at| at.checked_add_signed(moved.stepped))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn monotonic(&self) -> Instant {
        self.monotonic_at(*self.moved())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_backward_step_moves_wall_time_back_and_monotonic_time_not_at_all() {
        let base = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
        let clock = TestClock::starting_at(base);
        let mono = clock.monotonic();
        clock.step(-chrono::Duration::hours(1));
        assert_eq!(clock.now(), base - chrono::Duration::hours(1));
        assert_eq!(clock.monotonic(), mono);
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            clock.now(),
            base - chrono::Duration::hours(1) + chrono::Duration::seconds(5)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_on_tokio_time_follows_the_paused_clock() {
        let base = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
        let clock = TestClock::on_tokio_time(base);
        let mono = clock.monotonic();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), base + chrono::Duration::seconds(90));
        assert_eq!(clock.monotonic() - mono, Duration::from_secs(90));
        assert_eq!(
            SystemClock.monotonic() - mono,
            Duration::from_secs(90),
            "the system clock's monotonic time is tokio's"
        );
    }
}

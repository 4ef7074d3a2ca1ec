//! One target's circuit breaker: a pure state machine, and the lock that shares it.
//!
//! ```text
//!            failure_threshold consecutive failures
//!   Closed ─────────────────────────────────────────▶ Open
//!     ▲                                              │  ▲
//!     │ success_threshold trial successes   open_for │  │ a trial failure
//!     │                                     elapsed  ▼  │
//!     └──────────────────────────────────────────── HalfOpen (one trial at a time)
//! ```
//!
//! [`BreakerCore`] never reads a clock: every transition takes `now`. That keeps it deterministic
//! for unit tests and miri, and lets loom explore the locking around it ([`Breaker`]) without time.

use std::time::{Duration, Instant};

use alert_core::{CircuitState, GateDecision, GateOutcome, wire};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::sync::Mutex;

/// How every target's circuit breaker behaves.
///
/// In JSON, durations are integer milliseconds (`open_for_ms`, `trial_timeout_ms`); missing fields
/// take their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker. Default 5.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets a trial through. Default 30 s.
    #[serde(rename = "open_for_ms", with = "wire::duration_ms")]
    pub open_for: Duration,
    /// Consecutive successful trials that close a half-open breaker. Default 2.
    pub success_threshold: u32,
    /// How long a trial may go unreported before it is presumed lost and another trial is let
    /// through. Callers always report (the engine's `TargetCall` does so even when dropped), so
    /// this only keeps a lost report from wedging the breaker half-open. Default 60 s.
    #[serde(rename = "trial_timeout_ms", with = "wire::duration_ms")]
    pub trial_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            success_threshold: 2,
            trial_timeout: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    /// Returns the config with this failure threshold.
    #[must_use]
    pub fn with_failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Returns the config with this cool-down.
    #[must_use]
    pub fn with_open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// Returns the config with this success threshold.
    #[must_use]
    pub fn with_success_threshold(mut self, successes: u32) -> Self {
        self.success_threshold = successes;
        self
    }

    /// Returns the config with this trial timeout.
    #[must_use]
    pub fn with_trial_timeout(mut self, trial_timeout: Duration) -> Self {
        self.trial_timeout = trial_timeout;
        self
    }

    /// Checks every value. A zero `open_for` is allowed: the breaker goes half-open at once.
    ///
    /// # Errors
    /// [`ConfigError::MustBePositive`] for a zero threshold or trial timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.failure_threshold == 0 {
            return Err(ConfigError::MustBePositive("failure_threshold"));
        }
        if self.success_threshold == 0 {
            return Err(ConfigError::MustBePositive("success_threshold"));
        }
        if self.trial_timeout.is_zero() {
            return Err(ConfigError::MustBePositive("trial_timeout"));
        }
        Ok(())
    }
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed,
    Open {
        since: Instant,
    },
    HalfOpen {
        /// When the breaker last opened, kept for the API.
        opened_at: Instant,
        /// Successful trials so far.
        successes: u32,
        /// When the trial in flight was let through; `None` when the slot is free.
        trial_since: Option<Instant>,
    },
}

/// What a breaker looks like at one instant, for the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CoreView {
    pub(crate) state: CircuitState,
    pub(crate) consecutive_failures: u32,
    pub(crate) half_open_successes: u32,
    pub(crate) trial_in_flight: bool,
    pub(crate) opened_at: Option<Instant>,
    pub(crate) retry_in: Option<Duration>,
}

/// One target's breaker state machine. Pure: no clock, no lock, no I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BreakerCore {
    phase: Phase,
    consecutive_failures: u32,
}

impl Default for BreakerCore {
    fn default() -> Self {
        Self {
            phase: Phase::Closed,
            consecutive_failures: 0,
        }
    }
}

impl BreakerCore {
    /// The state at `now`, without taking the trial slot. An open breaker whose cool-down has
    /// passed reads as half-open, though it only moves there on the next `acquire`.
    pub(crate) fn state(&self, config: &BreakerConfig, now: Instant) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { since } if cooled_down(config, since, now) => CircuitState::HalfOpen,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`.
    pub(crate) fn acquire(&mut self, config: &BreakerConfig, now: Instant) -> GateDecision {
        match &mut self.phase {
            Phase::Closed => GateDecision::Allow { trial: false },
            Phase::Open { since } => {
                let since = *since;
                if cooled_down(config, since, now) {
                    self.phase = Phase::HalfOpen {
                        opened_at: since,
                        successes: 0,
                        trial_since: Some(now),
                    };
                    GateDecision::Allow { trial: true }
                } else {
                    GateDecision::Reject {
                        retry_in: reopens_at(config, since).map(|at| at.duration_since(now)),
                    }
                }
            }
            Phase::HalfOpen { trial_since, .. } => match *trial_since {
                Some(started) if now.saturating_duration_since(started) < config.trial_timeout => {
                    // Another trial is in flight; when it ends is not known.
                    GateDecision::Reject { retry_in: None }
                }
                _ => {
                    *trial_since = Some(now);
                    GateDecision::Allow { trial: true }
                }
            },
        }
    }

    /// Records the outcome of a call made at the `trial` flag `acquire` returned.
    ///
    /// - Closed: a success resets the failure count; a failure counts, and the
    ///   `failure_threshold`-th in a row opens the breaker.
    /// - Open: outcomes are ignored. They belong to calls let through before the breaker opened
    ///   (or to callers that ignore the gate), and must not extend or cut short the cool-down.
    /// - Half-open: only the trial's outcome counts. A success counts towards closing, a failure
    ///   reopens, and a neutral outcome (429, cancellation) just frees the trial slot.
    pub(crate) fn record(
        &mut self,
        config: &BreakerConfig,
        now: Instant,
        trial: bool,
        outcome: GateOutcome,
    ) {
        match (self.phase, outcome) {
            (
                Phase::HalfOpen {
                    opened_at,
                    successes,
                    ..
                },
                GateOutcome::Neutral,
            ) if trial => {
                self.phase = Phase::HalfOpen {
                    opened_at,
                    successes,
                    trial_since: None,
                };
            }
            (_, GateOutcome::Neutral) => {}
            (Phase::Closed, GateOutcome::Success) => self.consecutive_failures = 0,
            (Phase::Closed, GateOutcome::Failure) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= config.failure_threshold {
                    self.phase = Phase::Open { since: now };
                }
            }
            (Phase::Open { .. }, _) => {}
            (Phase::HalfOpen { .. }, _) if !trial => {}
            (
                Phase::HalfOpen {
                    opened_at,
                    successes,
                    ..
                },
                GateOutcome::Success,
            ) => {
                let successes = successes.saturating_add(1);
                if successes >= config.success_threshold {
                    *self = Self::default();
                } else {
                    self.phase = Phase::HalfOpen {
                        opened_at,
                        successes,
                        trial_since: None,
                    };
                }
            }
            (Phase::HalfOpen { .. }, GateOutcome::Failure) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.phase = Phase::Open { since: now };
            }
        }
    }

    /// Everything the API shows, at `now`.
    pub(crate) fn view(&self, config: &BreakerConfig, now: Instant) -> CoreView {
        let (opened_at, half_open_successes, trial_in_flight, retry_in) = match self.phase {
            Phase::Closed => (None, 0, false, None),
            Phase::Open { since } => (
                Some(since),
                0,
                false,
                reopens_at(config, since).map(|at| at.saturating_duration_since(now)),
            ),
            Phase::HalfOpen {
                opened_at,
                successes,
                trial_since,
            } => (
                Some(opened_at),
                successes,
                trial_since
                    .is_some_and(|at| now.saturating_duration_since(at) < config.trial_timeout),
                None,
            ),
        };
        CoreView {
            state: self.state(config, now),
            consecutive_failures: self.consecutive_failures,
            half_open_successes,
            trial_in_flight,
            opened_at,
            retry_in,
        }
    }
}

/// When an open breaker opened at `since` lets its first trial through; `None` if that lies
/// beyond what `Instant` can hold (it never reopens).
fn reopens_at(config: &BreakerConfig, since: Instant) -> Option<Instant> {
    since.checked_add(config.open_for)
}

fn cooled_down(config: &BreakerConfig, since: Instant, now: Instant) -> bool {
    reopens_at(config, since).is_some_and(|at| now >= at)
}

/// A [`BreakerCore`] behind a lock, shared by every caller of one target.
///
/// Every operation takes the lock once, reads or moves the state, and lets go: the counters and
/// the trial slot change together, so concurrent callers never see them torn, and exactly one of
/// several concurrent `acquire`s on a half-open breaker gets the trial. Both facts are
/// model-checked with loom (`cargo xtask loom`).
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    core: Mutex<BreakerCore>,
}

impl Breaker {
    #[cfg(test)]
    pub(crate) fn with_core(core: BreakerCore) -> Self {
        Self {
            core: Mutex::new(core),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut BreakerCore) -> R) -> R {
        // A panic while holding this lock cannot leave the core half-updated (each transition is
        // a plain assignment), so a poisoned lock is safe to keep using.
        let mut core = self
            .core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut core)
    }

    pub(crate) fn state(&self, config: &BreakerConfig, now: Instant) -> CircuitState {
        self.with(|core| core.state(config, now))
    }

    pub(crate) fn acquire(&self, config: &BreakerConfig, now: Instant) -> GateDecision {
        self.with(|core| core.acquire(config, now))
    }

    pub(crate) fn record(
        &self,
        config: &BreakerConfig,
        now: Instant,
        trial: bool,
        outcome: GateOutcome,
    ) {
        self.with(|core| core.record(config, now, trial, outcome));
    }

    pub(crate) fn view(&self, config: &BreakerConfig, now: Instant) -> CoreView {
        self.with(|core| core.view(config, now))
    }
}

#[cfg(all(test, not(alertpub_loom)))]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> BreakerConfig {
        BreakerConfig::default()
    }

    /// A breaker opened at `t0` by five failures.
    fn opened(t0: Instant) -> BreakerCore {
        let mut core = BreakerCore::default();
        for _ in 0..5 {
            core.record(&config(), t0, false, GateOutcome::Failure);
        }
        core
    }

    #[test]
    fn defaults_match_the_spec() {
        let config = BreakerConfig::default();
        assert_eq!(config.failure_threshold, 5);
        assert_eq!(config.open_for, 30 * SEC);
        assert_eq!(config.success_threshold, 2);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn zero_thresholds_are_rejected() {
        assert_eq!(
            config().with_failure_threshold(0).validate(),
            Err(ConfigError::MustBePositive("failure_threshold"))
        );
        assert_eq!(
            config().with_success_threshold(0).validate(),
            Err(ConfigError::MustBePositive("success_threshold"))
        );
        assert_eq!(
            config().with_trial_timeout(Duration::ZERO).validate(),
            Err(ConfigError::MustBePositive("trial_timeout"))
        );
        assert_eq!(config().with_open_for(Duration::ZERO).validate(), Ok(()));
    }

    #[test]
    fn config_json_uses_ms_and_defaults_missing_fields() {
        let config: BreakerConfig =
            serde_json::from_str(r#"{"failure_threshold":3,"open_for_ms":1500}"#).unwrap();
        assert_eq!(config.failure_threshold, 3);
        assert_eq!(config.open_for, Duration::from_millis(1500));
        assert_eq!(config.success_threshold, 2);
        assert_eq!(
            serde_json::to_value(BreakerConfig::default()).unwrap(),
            serde_json::json!({
                "failure_threshold": 5,
                "open_for_ms": 30000,
                "success_threshold": 2,
                "trial_timeout_ms": 60000
            })
        );
        assert!(serde_json::from_str::<BreakerConfig>(r#"{"open_for":"30s"}"#).is_err());
    }

    #[test]
    fn closed_allows_and_opens_after_consecutive_failures() {
        let t0 = Instant::now();
        let mut core = BreakerCore::default();
        for n in 1..5 {
            assert_eq!(
                core.acquire(&config(), t0),
                GateDecision::Allow { trial: false }
            );
            core.record(&config(), t0, false, GateOutcome::Failure);
            assert_eq!(core.state(&config(), t0), CircuitState::Closed, "after {n}");
            assert_eq!(core.view(&config(), t0).consecutive_failures, n);
        }
        core.record(&config(), t0, false, GateOutcome::Failure);
        assert_eq!(core.state(&config(), t0), CircuitState::Open);
        let view = core.view(&config(), t0);
        assert_eq!(view.consecutive_failures, 5);
        assert_eq!(view.opened_at, Some(t0));
        assert_eq!(view.retry_in, Some(30 * SEC));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let t0 = Instant::now();
        let mut core = BreakerCore::default();
        for _ in 0..4 {
            core.record(&config(), t0, false, GateOutcome::Failure);
        }
        core.record(&config(), t0, false, GateOutcome::Success);
        assert_eq!(core.view(&config(), t0).consecutive_failures, 0);
        for _ in 0..4 {
            core.record(&config(), t0, false, GateOutcome::Failure);
        }
        assert_eq!(core.state(&config(), t0), CircuitState::Closed);
    }

    #[test]
    fn neutral_outcomes_neither_count_nor_reset_when_closed() {
        let t0 = Instant::now();
        let mut core = BreakerCore::default();
        for _ in 0..4 {
            core.record(&config(), t0, false, GateOutcome::Failure);
            core.record(&config(), t0, false, GateOutcome::Neutral);
        }
        assert_eq!(core.view(&config(), t0).consecutive_failures, 4);
        assert_eq!(core.state(&config(), t0), CircuitState::Closed);
        core.record(&config(), t0, false, GateOutcome::Failure);
        assert_eq!(core.state(&config(), t0), CircuitState::Open);
    }

    #[test]
    fn open_rejects_until_the_cool_down_ends() {
        let t0 = Instant::now();
        let mut core = opened(t0);
        assert_eq!(
            core.acquire(&config(), t0 + 10 * SEC),
            GateDecision::Reject {
                retry_in: Some(20 * SEC)
            }
        );
        assert_eq!(
            core.acquire(&config(), t0 + 30 * SEC - Duration::from_nanos(1)),
            GateDecision::Reject {
                retry_in: Some(Duration::from_nanos(1))
            }
        );
        assert_eq!(core.state(&config(), t0 + 29 * SEC), CircuitState::Open);
        // Reading the state does not take the trial slot.
        assert_eq!(core.state(&config(), t0 + 30 * SEC), CircuitState::HalfOpen);
        assert_eq!(core.state(&config(), t0 + 30 * SEC), CircuitState::HalfOpen);
        assert_eq!(
            core.acquire(&config(), t0 + 30 * SEC),
            GateDecision::Allow { trial: true }
        );
    }

    #[test]
    fn outcomes_while_open_are_ignored() {
        let t0 = Instant::now();
        let mut core = opened(t0);
        core.record(&config(), t0 + SEC, false, GateOutcome::Success);
        core.record(&config(), t0 + SEC, false, GateOutcome::Failure);
        core.record(&config(), t0 + SEC, true, GateOutcome::Success);
        let view = core.view(&config(), t0 + SEC);
        assert_eq!(view.state, CircuitState::Open);
        assert_eq!(view.opened_at, Some(t0), "the cool-down is not extended");
        assert_eq!(view.consecutive_failures, 5);
    }

    #[test]
    fn half_open_lets_exactly_one_trial_through_at_a_time() {
        let t0 = Instant::now();
        let t1 = t0 + 30 * SEC;
        let mut core = opened(t0);
        assert_eq!(
            core.acquire(&config(), t1),
            GateDecision::Allow { trial: true }
        );
        for later in [t1, t1 + SEC, t1 + 59 * SEC] {
            assert_eq!(
                core.acquire(&config(), later),
                GateDecision::Reject { retry_in: None }
            );
        }
        let view = core.view(&config(), t1);
        assert_eq!(view.state, CircuitState::HalfOpen);
        assert!(view.trial_in_flight);
        assert_eq!(view.opened_at, Some(t0));
    }

    #[test]
    fn successful_trials_close_the_breaker() {
        let t0 = Instant::now();
        let t1 = t0 + 30 * SEC;
        let mut core = opened(t0);
        assert_eq!(
            core.acquire(&config(), t1),
            GateDecision::Allow { trial: true }
        );
        core.record(&config(), t1, true, GateOutcome::Success);
        let view = core.view(&config(), t1);
        assert_eq!(view.state, CircuitState::HalfOpen);
        assert_eq!(view.half_open_successes, 1);
        assert!(!view.trial_in_flight);
        assert_eq!(
            core.acquire(&config(), t1),
            GateDecision::Allow { trial: true }
        );
        core.record(&config(), t1, true, GateOutcome::Success);
        assert_eq!(core, BreakerCore::default());
        assert_eq!(
            core.acquire(&config(), t1),
            GateDecision::Allow { trial: false }
        );
    }

    #[test]
    fn a_failed_trial_reopens_for_a_new_cool_down() {
        let t0 = Instant::now();
        let t1 = t0 + 30 * SEC;
        let mut core = opened(t0);
        core.acquire(&config(), t1);
        core.record(&config(), t1, true, GateOutcome::Success);
        core.acquire(&config(), t1 + SEC);
        core.record(&config(), t1 + SEC, true, GateOutcome::Failure);
        let view = core.view(&config(), t1 + SEC);
        assert_eq!(view.state, CircuitState::Open);
        assert_eq!(view.opened_at, Some(t1 + SEC));
        assert_eq!(view.consecutive_failures, 6);
        assert_eq!(view.half_open_successes, 0);
        assert_eq!(
            core.acquire(&config(), t1 + 2 * SEC),
            GateDecision::Reject {
                retry_in: Some(29 * SEC)
            }
        );
        assert_eq!(
            core.acquire(&config(), t1 + 31 * SEC),
            GateDecision::Allow { trial: true }
        );
    }

    #[test]
    fn a_neutral_trial_frees_the_slot_without_counting() {
        let t0 = Instant::now();
        let t1 = t0 + 30 * SEC;
        let mut core = opened(t0);
        core.acquire(&config(), t1);
        core.record(&config(), t1, true, GateOutcome::Success);
        core.acquire(&config(), t1);
        core.record(&config(), t1, true, GateOutcome::Neutral);
        let view = core.view(&config(), t1);
        assert_eq!(view.state, CircuitState::HalfOpen);
        assert_eq!(
            view.half_open_successes, 1,
            "neutral neither counts nor resets"
        );
        assert!(!view.trial_in_flight);
        assert_eq!(
            core.acquire(&config(), t1),
            GateDecision::Allow { trial: true }
        );
        core.record(&config(), t1, true, GateOutcome::Success);
        assert_eq!(core.state(&config(), t1), CircuitState::Closed);
    }

    #[test]
    fn non_trial_outcomes_do_not_touch_a_half_open_breaker() {
        let t0 = Instant::now();
        let t1 = t0 + 30 * SEC;
        let mut core = opened(t0);
        core.acquire(&config(), t1);
        for outcome in [
            GateOutcome::Success,
            GateOutcome::Failure,
            GateOutcome::Neutral,
        ] {
            core.record(&config(), t1, false, outcome);
        }
        let view = core.view(&config(), t1);
        assert_eq!(view.state, CircuitState::HalfOpen);
        assert!(view.trial_in_flight, "only the trial's own report frees it");
        assert_eq!(view.half_open_successes, 0);
    }

    #[test]
    fn a_lost_trial_is_replaced_after_the_trial_timeout() {
        let t0 = Instant::now();
        let t1 = t0 + 30 * SEC;
        let mut core = opened(t0);
        assert_eq!(
            core.acquire(&config(), t1),
            GateDecision::Allow { trial: true }
        );
        assert_eq!(
            core.acquire(&config(), t1 + 59 * SEC),
            GateDecision::Reject { retry_in: None }
        );
        assert!(!core.view(&config(), t1 + 60 * SEC).trial_in_flight);
        assert_eq!(
            core.acquire(&config(), t1 + 60 * SEC),
            GateDecision::Allow { trial: true }
        );
    }

    #[test]
    fn zero_cool_down_goes_half_open_at_once() {
        let config = config()
            .with_failure_threshold(1)
            .with_open_for(Duration::ZERO);
        let t0 = Instant::now();
        let mut core = BreakerCore::default();
        core.record(&config, t0, false, GateOutcome::Failure);
        assert_eq!(core.state(&config, t0), CircuitState::HalfOpen);
        assert_eq!(
            core.acquire(&config, t0),
            GateDecision::Allow { trial: true }
        );
        assert_eq!(
            core.acquire(&config, t0),
            GateDecision::Reject { retry_in: None }
        );
    }

    #[test]
    fn an_unreachable_reopen_time_never_reopens() {
        let config = config().with_open_for(Duration::MAX);
        let t0 = Instant::now();
        let mut core = BreakerCore::default();
        for _ in 0..5 {
            core.record(&config, t0, false, GateOutcome::Failure);
        }
        assert_eq!(
            core.acquire(&config, t0 + 1000 * SEC),
            GateDecision::Reject { retry_in: None }
        );
    }

    #[test]
    fn the_locked_breaker_delegates_to_the_core() {
        let t0 = Instant::now();
        let breaker = Breaker::with_core(opened(t0));
        assert_eq!(breaker.state(&config(), t0), CircuitState::Open);
        assert_eq!(
            breaker.acquire(&config(), t0 + 30 * SEC),
            GateDecision::Allow { trial: true }
        );
        breaker.record(&config(), t0 + 30 * SEC, true, GateOutcome::Failure);
        assert_eq!(
            breaker.view(&config(), t0 + 30 * SEC).state,
            CircuitState::Open
        );
    }

    #[test]
    fn threads_share_one_breaker_consistently() {
        // std threads here (and under miri); loom explores the interleavings exhaustively.
        let t0 = Instant::now();
        let config = config().with_failure_threshold(40);
        let breaker = std::sync::Arc::new(Breaker::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let breaker = breaker.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        breaker.record(&config, t0, false, GateOutcome::Failure);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let view = breaker.view(&config, t0);
        assert_eq!(view.state, CircuitState::Open);
        assert_eq!(view.consecutive_failures, 40);
    }
}

/// Model checks, run by `cargo xtask loom` (`--cfg alertpub_loom`, test names containing `loom`).
/// Each model is small: two or three threads and a handful of lock operations.
#[cfg(all(test, alertpub_loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// A breaker opened at `t0`, so that at `t0 + 30 s` it is due a trial.
    fn opened(config: &BreakerConfig, t0: Instant) -> BreakerCore {
        let mut core = BreakerCore::default();
        for _ in 0..config.failure_threshold {
            core.record(config, t0, false, GateOutcome::Failure);
        }
        core
    }

    fn is_trial(decision: GateDecision) -> bool {
        decision == GateDecision::Allow { trial: true }
    }

    #[test]
    fn loom_half_open_grants_exactly_one_trial_to_three_racing_threads() {
        let t0 = Instant::now();
        loom::model(move || {
            let config = BreakerConfig::default();
            let breaker = Arc::new(Breaker::with_core(opened(&config, t0)));
            let now = t0 + 30 * SEC;
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let breaker = breaker.clone();
                    thread::spawn(move || breaker.acquire(&config, now))
                })
                .collect();
            let decisions: Vec<GateDecision> =
                threads.into_iter().map(|t| t.join().unwrap()).collect();
            assert_eq!(decisions.iter().filter(|d| is_trial(**d)).count(), 1);
            assert_eq!(
                decisions
                    .iter()
                    .filter(|d| **d == GateDecision::Reject { retry_in: None })
                    .count(),
                2
            );
            let view = breaker.view(&config, now);
            assert_eq!(view.state, CircuitState::HalfOpen);
            assert!(view.trial_in_flight);
        });
    }

    #[test]
    fn loom_a_released_trial_slot_is_never_held_twice() {
        // One thread holds the trial and reports a neutral outcome; another asks for a trial at
        // the same time. Either the second is refused (it asked before the release) or it gets
        // the freed slot, but never two trials at once: after both, at most one is in flight, and
        // it is in flight exactly when the second thread won a trial.
        let t0 = Instant::now();
        loom::model(move || {
            let config = BreakerConfig::default();
            let now = t0 + 30 * SEC;
            let mut core = opened(&config, t0);
            assert!(is_trial(core.acquire(&config, now)));
            let breaker = Arc::new(Breaker::with_core(core));
            let holder = {
                let breaker = breaker.clone();
                thread::spawn(move || breaker.record(&config, now, true, GateOutcome::Neutral))
            };
            let racer = {
                let breaker = breaker.clone();
                thread::spawn(move || breaker.acquire(&config, now))
            };
            holder.join().unwrap();
            let won = is_trial(racer.join().unwrap());
            let view = breaker.view(&config, now);
            assert_eq!(view.state, CircuitState::HalfOpen);
            assert_eq!(view.trial_in_flight, won);
            assert_eq!(view.half_open_successes, 0);
        });
    }

    #[test]
    fn loom_concurrent_failures_open_with_consistent_counts() {
        let t0 = Instant::now();
        loom::model(move || {
            let config = BreakerConfig::default().with_failure_threshold(4);
            let breaker = Arc::new(Breaker::default());
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let breaker = breaker.clone();
                    thread::spawn(move || {
                        breaker.record(&config, t0, false, GateOutcome::Failure);
                        breaker.record(&config, t0, false, GateOutcome::Failure);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            let view = breaker.view(&config, t0);
            assert_eq!(view.state, CircuitState::Open);
            assert_eq!(view.consecutive_failures, 4);
            assert_eq!(view.opened_at, Some(t0));
        });
    }

    #[test]
    fn loom_a_success_racing_failures_leaves_a_consistent_breaker() {
        // Thread A records two failures, thread B one success. The success lands first, between,
        // or last; the breaker (threshold 2) is open exactly when both failures came after it.
        let t0 = Instant::now();
        loom::model(move || {
            let config = BreakerConfig::default().with_failure_threshold(2);
            let breaker = Arc::new(Breaker::default());
            let failing = {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    breaker.record(&config, t0, false, GateOutcome::Failure);
                    breaker.record(&config, t0, false, GateOutcome::Failure);
                })
            };
            let succeeding = {
                let breaker = breaker.clone();
                thread::spawn(move || breaker.record(&config, t0, false, GateOutcome::Success))
            };
            failing.join().unwrap();
            succeeding.join().unwrap();
            let view = breaker.view(&config, t0);
            match view.state {
                CircuitState::Open => assert_eq!(view.consecutive_failures, 2),
                CircuitState::Closed => {
                    assert!(view.consecutive_failures <= 1);
                    assert_eq!(view.opened_at, None);
                }
                CircuitState::HalfOpen => panic!("nothing here moves to half-open"),
            }
        });
    }
}

//! The per-target circuit breakers, as one [`CircuitGate`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_core::{CircuitGate, CircuitState, Clock, GateDecision, GateOutcome, SystemClock, wire};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::breaker::{Breaker, BreakerConfig, CoreView};
use crate::error::ConfigError;

/// One target's breaker as the API shows it.
///
/// ```json
/// {"target":"pagerduty-prod","state":"open","consecutive_failures":5,"half_open_successes":0,
///  "trial_in_flight":false,"opened_at":"2026-11-23T12:00:00.000Z","retry_in_ms":12000}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The target's name.
    pub target: String,
    /// Closed, open or half-open (an open breaker whose cool-down has ended reads half-open).
    pub state: CircuitState,
    /// Consecutive failures counted; while open or half-open, the count that opened it.
    pub consecutive_failures: u32,
    /// Successful trials since the breaker went half-open.
    pub half_open_successes: u32,
    /// Whether the half-open trial call is in flight.
    pub trial_in_flight: bool,
    /// When the breaker last opened, while it is open or half-open.
    #[serde(with = "wire::timestamp_opt")]
    pub opened_at: Option<DateTime<Utc>>,
    /// How long an open breaker keeps refusing calls.
    #[serde(rename = "retry_in_ms", with = "wire::duration_ms_opt")]
    pub retry_in: Option<Duration>,
}

/// A circuit breaker per target, keyed by target name: the [`CircuitGate`] that the fan-out
/// engine and the dispatcher ask before each call.
///
/// A breaker is created on a target's first call, closed. After
/// [`failure_threshold`](BreakerConfig::failure_threshold) consecutive failures it opens and
/// refuses calls for [`open_for`](BreakerConfig::open_for); then it goes half-open and lets one
/// trial call through at a time; [`success_threshold`](BreakerConfig::success_threshold)
/// successful trials close it, and a failed one reopens it. What counts as a failure is
/// [`GateOutcome::of`], which follows `ErrorKind::counts_against_target`: a 429, a cancellation or
/// a refused payload is neutral.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use alert_core::{CircuitGate, CircuitState, GateDecision, GateOutcome};
/// use alert_core::TestClock;
/// use health::{BreakerConfig, CircuitBreakers};
///
/// let clock = Arc::new(TestClock::new());
/// let breakers = CircuitBreakers::with_clock(BreakerConfig::default(), clock.clone()).unwrap();
/// for _ in 0..5 {
///     assert_eq!(breakers.acquire("ops"), GateDecision::Allow { trial: false });
///     breakers.record("ops", false, GateOutcome::Failure);
/// }
/// assert_eq!(breakers.state("ops"), CircuitState::Open);
///
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(breakers.acquire("ops"), GateDecision::Allow { trial: true });
/// assert_eq!(breakers.acquire("ops"), GateDecision::Reject { retry_in: None });
/// ```
pub struct CircuitBreakers {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    // Each breaker sits behind its own `Arc`, so a call clones it out of the map and releases
    // the map's shard lock before taking the breaker's: the two locks are never nested.
    breakers: DashMap<String, Arc<Breaker>>,
}

impl CircuitBreakers {
    /// Breakers with this configuration, timed by the system's clock ([`SystemClock`]).
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration is invalid.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Breakers with this configuration, timed by `clock`: its monotonic time for cool-downs,
    /// its wall time for the `opened_at` a snapshot shows.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration is invalid.
    pub fn with_clock(config: BreakerConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            clock,
            breakers: DashMap::new(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// One target's breaker, or `None` if the target was never called (it is closed).
    #[must_use]
    pub fn get(&self, target: &str) -> Option<BreakerSnapshot> {
        let breaker = self.existing(target)?;
        Some(self.snapshot_of(target, &breaker))
    }

    /// Every known breaker, sorted by target name.
    #[must_use]
    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        let breakers: Vec<(String, Arc<Breaker>)> = self
            .breakers
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        let mut snapshots: Vec<BreakerSnapshot> = breakers
            .iter()
            .map(|(target, breaker)| self.snapshot_of(target, breaker))
            .collect();
        snapshots.sort_by(|a, b| a.target.cmp(&b.target));
        snapshots
    }

    /// Forgets a target's breaker, closing it. An operator's reset; a trial in flight reports to
    /// the new, closed breaker, where its outcome counts as an ordinary call's.
    pub fn reset(&self, target: &str) {
        self.breakers.remove(target);
    }

    /// Keeps only the breakers of targets for which `keep` is true, for when targets are removed.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.breakers.retain(|target, _| keep(target));
    }

    fn existing(&self, target: &str) -> Option<Arc<Breaker>> {
        self.breakers.get(target).map(|entry| entry.value().clone())
    }

    fn breaker(&self, target: &str) -> Arc<Breaker> {
        match self.existing(target) {
            Some(breaker) => breaker,
            None => self
                .breakers
                .entry(target.to_owned())
                .or_default()
                .value()
                .clone(),
        }
    }

    fn snapshot_of(&self, target: &str, breaker: &Breaker) -> BreakerSnapshot {
        let now = self.clock.monotonic();
        let view: CoreView = breaker.view(&self.config, now);
        BreakerSnapshot {
            target: target.to_owned(),
            state: view.state,
            consecutive_failures: view.consecutive_failures,
            half_open_successes: view.half_open_successes,
            trial_in_flight: view.trial_in_flight,
            opened_at: view
                .opened_at
                .map(|at| wall_clock(self.clock.now(), now, at)),
            retry_in: view.retry_in,
        }
    }
}

/// The wall-clock time of the monotonic instant `at`, given that the present is `wall` and `now`.
fn wall_clock(wall: DateTime<Utc>, now: Instant, at: Instant) -> DateTime<Utc> {
    let ago = chrono::Duration::from_std(now.saturating_duration_since(at))
        .unwrap_or(chrono::Duration::MAX);
    wall.checked_sub_signed(ago)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Default for CircuitBreakers {
    /// Breakers with the default configuration, timed by the system's clock.
    fn default() -> Self {
        Self {
            config: BreakerConfig::default(),
            clock: Arc::new(SystemClock),
            breakers: DashMap::new(),
        }
    }
}

impl fmt::Debug for CircuitBreakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakers")
            .field("config", &self.config)
            .field("targets", &self.breakers.len())
            .finish_non_exhaustive()
    }
}

impl CircuitGate for CircuitBreakers {
    fn state(&self, target: &str) -> CircuitState {
        match self.existing(target) {
            Some(breaker) => breaker.state(&self.config, self.clock.monotonic()),
            None => CircuitState::Closed,
        }
    }

    fn acquire(&self, target: &str) -> GateDecision {
        let breaker = self.breaker(target);
        let decision = breaker.acquire(&self.config, self.clock.monotonic());
        if decision == (GateDecision::Allow { trial: true }) {
            tracing::info!(
                target_name = target,
                "circuit half-open: letting a trial call through"
            );
        }
        decision
    }

    fn record(&self, target: &str, trial: bool, outcome: GateOutcome) {
        // Calls that ignore the gate still report, so the breaker may not exist yet.
        let breaker = self.breaker(target);
        let now = self.clock.monotonic();
        let before = breaker.state(&self.config, now);
        breaker.record(&self.config, now, trial, outcome);
        let after = breaker.state(&self.config, now);
        if before != after {
            tracing::info!(
                target_name = target,
                from = ?before,
                to = ?after,
                "circuit breaker changed state"
            );
        }
    }
}

#[cfg(all(test, not(alertpub_loom)))]
mod tests {
    use super::*;
    use alert_core::TestClock;

    const SEC: Duration = Duration::from_secs(1);

    fn breakers() -> (Arc<TestClock>, CircuitBreakers) {
        let clock = Arc::new(TestClock::new());
        let breakers = CircuitBreakers::with_clock(BreakerConfig::default(), clock.clone())
            .expect("default config is valid");
        (clock, breakers)
    }

    fn fail(breakers: &CircuitBreakers, target: &str, times: usize) {
        for _ in 0..times {
            assert_eq!(
                breakers.acquire(target),
                GateDecision::Allow { trial: false }
            );
            breakers.record(target, false, GateOutcome::Failure);
        }
    }

    #[test]
    fn unknown_targets_are_closed_and_not_created_by_reads() {
        let (_, breakers) = breakers();
        assert_eq!(breakers.state("nobody"), CircuitState::Closed);
        assert_eq!(breakers.get("nobody"), None);
        assert!(breakers.snapshot().is_empty());
    }

    #[test]
    fn an_invalid_config_is_rejected() {
        let config = BreakerConfig::default().with_success_threshold(0);
        assert_eq!(
            CircuitBreakers::new(config).err(),
            Some(ConfigError::MustBePositive("success_threshold"))
        );
    }

    #[test]
    fn the_full_cycle_through_the_gate() {
        let (clock, breakers) = breakers();
        fail(&breakers, "ops", 5);
        assert_eq!(breakers.state("ops"), CircuitState::Open);
        clock.advance(10 * SEC);
        assert_eq!(
            breakers.acquire("ops"),
            GateDecision::Reject {
                retry_in: Some(20 * SEC)
            }
        );

        clock.advance(20 * SEC);
        assert_eq!(breakers.state("ops"), CircuitState::HalfOpen);
        assert_eq!(breakers.acquire("ops"), GateDecision::Allow { trial: true });
        assert_eq!(
            breakers.acquire("ops"),
            GateDecision::Reject { retry_in: None }
        );
        breakers.record("ops", true, GateOutcome::Success);
        assert_eq!(breakers.state("ops"), CircuitState::HalfOpen);
        assert_eq!(breakers.acquire("ops"), GateDecision::Allow { trial: true });
        breakers.record("ops", true, GateOutcome::Success);
        assert_eq!(breakers.state("ops"), CircuitState::Closed);
        assert_eq!(
            breakers.acquire("ops"),
            GateDecision::Allow { trial: false }
        );
    }

    #[test]
    fn targets_have_separate_breakers() {
        let (_, breakers) = breakers();
        fail(&breakers, "a", 5);
        fail(&breakers, "b", 4);
        assert_eq!(breakers.state("a"), CircuitState::Open);
        assert_eq!(breakers.state("b"), CircuitState::Closed);
        assert_eq!(breakers.acquire("b"), GateDecision::Allow { trial: false });
    }

    #[test]
    fn outcomes_of_gate_ignoring_calls_count_while_closed() {
        let (_, breakers) = breakers();
        for _ in 0..5 {
            breakers.record("bypass", false, GateOutcome::Failure);
        }
        assert_eq!(breakers.state("bypass"), CircuitState::Open);
    }

    #[test]
    fn snapshots_show_counters_and_times() {
        let (clock, breakers) = breakers();
        fail(&breakers, "b-target", 2);
        fail(&breakers, "a-target", 5);
        let opened = clock.now();
        clock.advance(5 * SEC);
        let snapshot = breakers.snapshot();
        assert_eq!(
            snapshot
                .iter()
                .map(|s| s.target.as_str())
                .collect::<Vec<_>>(),
            ["a-target", "b-target"]
        );
        let open = &snapshot[0];
        assert_eq!(open.state, CircuitState::Open);
        assert_eq!(open.consecutive_failures, 5);
        assert_eq!(open.retry_in, Some(25 * SEC));
        let opened_at = open.opened_at.expect("an open breaker has opened_at");
        // The breaker opened five seconds before the clock's "now".
        assert_eq!(opened_at, opened);
        assert_eq!(clock.now() - opened_at, chrono::Duration::seconds(5));

        let closed = &snapshot[1];
        assert_eq!(closed.state, CircuitState::Closed);
        assert_eq!(closed.consecutive_failures, 2);
        assert_eq!(closed.opened_at, None);
        let json = serde_json::to_value(closed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "target": "b-target",
                "state": "closed",
                "consecutive_failures": 2,
                "half_open_successes": 0,
                "trial_in_flight": false,
                "opened_at": null,
                "retry_in_ms": null
            })
        );
        let json = serde_json::to_value(open).unwrap();
        assert_eq!(json["retry_in_ms"], 25_000);
        assert!(json["opened_at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn reset_and_retain_forget_breakers() {
        let (_, breakers) = breakers();
        fail(&breakers, "a", 5);
        fail(&breakers, "b", 5);
        breakers.reset("a");
        assert_eq!(breakers.state("a"), CircuitState::Closed);
        breakers.retain(|name| name != "b");
        assert_eq!(breakers.state("b"), CircuitState::Closed);
        assert!(breakers.snapshot().is_empty());
    }

    #[test]
    fn the_default_clock_is_the_systems() {
        let breakers = CircuitBreakers::default();
        fail(&breakers, "t", 5);
        assert_eq!(breakers.state("t"), CircuitState::Open);
        assert!(format!("{breakers:?}").contains("targets: 1"));
    }
}

//! Target health: the per-target state, its transitions, and the registry that holds it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    CallOutcome, Clock, ErrorKind, HealthStatus, HealthView, PermanentReason, PublishError,
    SystemClock, wire,
};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// How much each new latency sample weighs in the moving average.
const EWMA_WEIGHT: f64 = 0.3;

/// How health is tracked and probed.
///
/// In JSON, durations are integer milliseconds (`interval_ms`, `timeout_ms`,
/// `slow_threshold_ms`); missing fields take their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthConfig {
    /// How often every target is probed. Default 2 min.
    #[serde(rename = "interval_ms", with = "wire::duration_ms")]
    pub interval: Duration,
    /// One probe's deadline. Default 5 s.
    #[serde(rename = "timeout_ms", with = "wire::duration_ms")]
    pub timeout: Duration,
    /// Consecutive failures (calls or probes) that make a target unhealthy. Default 3.
    pub failure_threshold: u32,
    /// A success slower than this makes the target degraded (`slow`). Default 5 s.
    #[serde(rename = "slow_threshold_ms", with = "wire::duration_ms")]
    pub slow_threshold: Duration,
    /// The most probes in flight at once. Default 10.
    pub max_concurrent_probes: usize,
    /// How many recent outcomes the success rate is computed over. Default 20.
    pub success_window: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(120),
            timeout: Duration::from_secs(5),
            failure_threshold: 3,
            slow_threshold: Duration::from_secs(5),
            max_concurrent_probes: 10,
            success_window: 20,
        }
    }
}

impl HealthConfig {
    /// Returns the config with this probe interval.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Returns the config with this probe timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns the config with this failure threshold.
    #[must_use]
    pub fn with_failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Returns the config with this slow threshold.
    #[must_use]
    pub fn with_slow_threshold(mut self, slow: Duration) -> Self {
        self.slow_threshold = slow;
        self
    }

    /// Returns the config with this probe concurrency limit.
    #[must_use]
    pub fn with_max_concurrent_probes(mut self, probes: usize) -> Self {
        self.max_concurrent_probes = probes;
        self
    }

    /// Returns the config with this success-rate window.
    #[must_use]
    pub fn with_success_window(mut self, outcomes: usize) -> Self {
        self.success_window = outcomes;
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`ConfigError::MustBePositive`] for a zero value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (self.interval.is_zero(), "interval"),
            (self.timeout.is_zero(), "timeout"),
            (self.failure_threshold == 0, "failure_threshold"),
            (self.slow_threshold.is_zero(), "slow_threshold"),
            (self.max_concurrent_probes == 0, "max_concurrent_probes"),
            (self.success_window == 0, "success_window"),
        ];
        match checks.into_iter().find(|(zero, _)| *zero) {
            Some((_, field)) => Err(ConfigError::MustBePositive(field)),
            None => Ok(()),
        }
    }
}

/// Why a target is degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DegradedReason {
    /// A probe that carries credentials was answered 401 or 403: they are wrong or revoked.
    Auth,
    /// The last success took longer than the slow threshold.
    Slow,
}

impl DegradedReason {
    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Slow => "slow",
        }
    }
}

impl fmt::Display for DegradedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most recent failure: when, and the classified error.
///
/// It serialises flat: `{"at":"…Z","kind":"transient","status_code":503,"message":"…"}`. The
/// message comes from the HTTP stack, which has already reduced URLs to `scheme://host:port/…`
/// and scrubbed every registered secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LastFailure {
    /// When it happened.
    #[serde(with = "wire::timestamp")]
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub error: PublishError,
}

/// One target's health, as routing and the HTTP API see it.
///
/// ```json
/// {"target":"ops-webhook","status":"degraded","degraded_reason":"slow","consecutive_failures":0,
///  "status_since":"…Z","last_success_at":"…Z","last_failure":null,"success_rate":1.0,
///  "sample_count":4,"last_latency_ms":6120,"latency_ewma_ms":2210,"last_probe_at":"…Z"}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetHealth {
    /// The target's name.
    pub target: String,
    /// Unknown, healthy, degraded or unhealthy.
    pub status: HealthStatus,
    /// Why the target is degraded, when it is.
    pub degraded_reason: Option<DegradedReason>,
    /// Failures in a row, since the last success (or reachable probe).
    pub consecutive_failures: u32,
    /// When the status last changed; `None` while it has never left unknown.
    #[serde(with = "wire::timestamp_opt")]
    pub status_since: Option<DateTime<Utc>>,
    /// When the last success was seen.
    #[serde(with = "wire::timestamp_opt")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failure, with its error.
    pub last_failure: Option<LastFailure>,
    /// The share of successes among the last [`sample_count`](Self::sample_count) outcomes, from
    /// 0 to 1; `None` before the first.
    pub success_rate: Option<f64>,
    /// How many outcomes the success rate covers (at most the configured window).
    pub sample_count: usize,
    /// The latency of the last success or reachable probe.
    #[serde(rename = "last_latency_ms", with = "wire::duration_ms_opt")]
    pub last_latency: Option<Duration>,
    /// An exponentially weighted moving average of those latencies.
    #[serde(rename = "latency_ewma_ms", with = "wire::duration_ms_opt")]
    pub latency_ewma: Option<Duration>,
    /// When the target was last probed.
    #[serde(with = "wire::timestamp_opt")]
    pub last_probe_at: Option<DateTime<Utc>>,
}

impl TargetHealth {
    /// The health of a target nothing is known about.
    #[must_use]
    pub fn unknown(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            status: HealthStatus::Unknown,
            degraded_reason: None,
            consecutive_failures: 0,
            status_since: None,
            last_success_at: None,
            last_failure: None,
            success_rate: None,
            sample_count: 0,
            last_latency: None,
            latency_ewma: None,
            last_probe_at: None,
        }
    }
}

/// What one active probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeResult {
    /// The target answered over HTTP, with any status: it is reachable.
    Reachable {
        /// The HTTP status it answered.
        status: u16,
        /// How long the answer took.
        latency: Duration,
    },
    /// A probe carrying credentials was answered 401 or 403, or with a body that the probe's
    /// own check reads as refused credentials (Slack answers those with a 200): reachable, but
    /// the credentials are refused, so the target is degraded (`auth`).
    AuthRejected {
        /// The HTTP status: 401 or 403, or the status of an answer whose body refused them.
        status: u16,
        /// How long the answer took.
        latency: Duration,
    },
    /// No HTTP answer: DNS, TCP or TLS failed, or the probe timed out.
    Unreachable(PublishError),
}

/// One input to a target's health, passive or active.
#[derive(Clone, Debug)]
enum Observation {
    Success {
        latency: Duration,
    },
    AuthRejected {
        latency: Duration,
        error: PublishError,
    },
    Failure(PublishError),
}

/// One target's health plus what is needed to update it: [`TargetHealth`]'s fields without the
/// name (the registry's key) and with the success rate kept as its window, the rare last
/// failure boxed. The registry holds one per target, so it is kept small.
#[derive(Clone, Debug)]
struct Tracked {
    status: HealthStatus,
    degraded_reason: Option<DegradedReason>,
    consecutive_failures: u32,
    status_since: Option<DateTime<Utc>>,
    last_success_at: Option<DateTime<Utc>>,
    last_probe_at: Option<DateTime<Utc>>,
    last_latency: Option<Duration>,
    latency_ewma: Option<Duration>,
    last_failure: Option<Box<LastFailure>>,
    /// The most recent outcomes, newest last; `true` for a success.
    window: VecDeque<bool>,
}

impl Default for Tracked {
    /// Nothing known yet.
    fn default() -> Self {
        Self {
            status: HealthStatus::Unknown,
            degraded_reason: None,
            consecutive_failures: 0,
            status_since: None,
            last_success_at: None,
            last_probe_at: None,
            last_latency: None,
            latency_ewma: None,
            last_failure: None,
            window: VecDeque::new(),
        }
    }
}

impl Tracked {
    /// The health of `target`, as the API and routing see it.
    fn health(&self, target: &str) -> TargetHealth {
        let successes = self.window.iter().filter(|s| **s).count();
        // Both counts are at most the window size, far below f64's exact-integer range.
        #[allow(clippy::cast_precision_loss)]
        let success_rate =
            (!self.window.is_empty()).then(|| successes as f64 / self.window.len() as f64);
        TargetHealth {
            target: target.to_owned(),
            status: self.status,
            degraded_reason: self.degraded_reason,
            consecutive_failures: self.consecutive_failures,
            status_since: self.status_since,
            last_success_at: self.last_success_at,
            last_failure: self.last_failure.as_deref().cloned(),
            success_rate,
            sample_count: self.window.len(),
            last_latency: self.last_latency,
            latency_ewma: self.latency_ewma,
            last_probe_at: self.last_probe_at,
        }
    }

    /// Applies one observation. The transitions (SPEC §4):
    /// - a success makes the target healthy, or degraded (`slow`) when it took longer than the
    ///   slow threshold, and resets the failure count;
    /// - a probe whose credentials are refused (a 401/403, or a body that says so) makes it
    ///   degraded (`auth`); the target answered, so the failure count resets, but the refusal is
    ///   the last failure and counts against the success rate;
    /// - a failure counts, and the `failure_threshold`-th in a row makes the target unhealthy;
    ///   below that the status stays as it was.
    fn apply(&mut self, config: &HealthConfig, observation: Observation, at: DateTime<Utc>) {
        let (status, reason) = match observation {
            Observation::Success { latency } => {
                self.consecutive_failures = 0;
                self.last_success_at = Some(at);
                self.record_latency(latency);
                self.push(config, true);
                if latency > config.slow_threshold {
                    (HealthStatus::Degraded, Some(DegradedReason::Slow))
                } else {
                    (HealthStatus::Healthy, None)
                }
            }
            Observation::AuthRejected { latency, error } => {
                self.consecutive_failures = 0;
                self.last_failure = Some(Box::new(LastFailure { at, error }));
                self.record_latency(latency);
                self.push(config, false);
                (HealthStatus::Degraded, Some(DegradedReason::Auth))
            }
            Observation::Failure(error) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_failure = Some(Box::new(LastFailure { at, error }));
                self.push(config, false);
                if self.consecutive_failures >= config.failure_threshold {
                    (HealthStatus::Unhealthy, None)
                } else {
                    (self.status, self.degraded_reason)
                }
            }
        };
        if self.status != status {
            self.status_since = Some(at);
        }
        self.status = status;
        self.degraded_reason = reason;
    }

    fn record_latency(&mut self, latency: Duration) {
        self.last_latency = Some(latency);
        self.latency_ewma = Some(match self.latency_ewma {
            None => latency,
            Some(average) => Duration::from_secs_f64(
                average.as_secs_f64() * (1.0 - EWMA_WEIGHT) + latency.as_secs_f64() * EWMA_WEIGHT,
            ),
        });
    }

    fn push(&mut self, config: &HealthConfig, success: bool) {
        while self.window.len() >= config.success_window {
            self.window.pop_front();
        }
        self.window.push_back(success);
    }
}

/// Every target's health, keyed by target name: the [`HealthView`] the fan-out engine routes by.
///
/// Two inputs feed it. Passive: [`HealthView::record`], which the engine's `TargetCall` calls with
/// every publish outcome. Active: [`record_probe`](Self::record_probe), which the prober calls
/// with each probe's result. A failure that `ErrorKind::counts_against_target` says is not the
/// target's fault (a 429, a cancellation, a refused payload) changes nothing.
///
/// ```
/// use std::time::Duration;
/// use alert_core::{CallOutcome, ErrorKind, HealthStatus, HealthView, PublishError, Receipt};
/// use health::{HealthConfig, HealthRegistry};
///
/// let registry = HealthRegistry::new(HealthConfig::default()).unwrap();
/// let failure = || {
///     CallOutcome::new(Err(PublishError::new(ErrorKind::Transient, "HTTP 503")), Duration::ZERO)
/// };
/// for _ in 0..3 {
///     registry.record("ops", &failure());
/// }
/// assert_eq!(registry.status("ops"), HealthStatus::Unhealthy);
///
/// let ok = CallOutcome::new(Ok(Receipt::with_status(200)), Duration::from_millis(40));
/// registry.record("ops", &ok);
/// assert_eq!(registry.status("ops"), HealthStatus::Healthy);
/// assert_eq!(registry.get("ops").unwrap().consecutive_failures, 0);
/// ```
pub struct HealthRegistry {
    config: HealthConfig,
    /// Boxed: a map sized for a thousand entries has room for twice as many, and an empty slot
    /// costs its value's size.
    targets: DashMap<Box<str>, Box<Tracked>>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn HealthObserver>>,
}

/// Hears what the registry sees, for metrics. Both hooks run inline and must be quick.
pub trait HealthObserver: Send + Sync + 'static {
    /// A health check of `target` ended with `result` (`reachable`, `auth_rejected` or
    /// `unreachable`), answered after `latency` (none when nothing answered).
    fn on_probe(&self, target: &str, result: &'static str, latency: Option<std::time::Duration>) {
        let _ = (target, result, latency);
    }

    /// `target`'s health went from `from` to `to`.
    fn on_transition(&self, target: &str, from: HealthStatus, to: HealthStatus) {
        let _ = (target, from, to);
    }
}

impl HealthRegistry {
    /// A registry that knows no target yet.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration is invalid.
    pub fn new(config: HealthConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            targets: DashMap::new(),
            clock: Arc::new(SystemClock),
            observer: None,
        })
    }

    /// Tells `observer` of every probe and every change of a target's status.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn HealthObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Stamps probes and outcomes with `clock`'s wall time (default: [`SystemClock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// One target's health, or `None` if nothing was ever recorded for it (it is unknown).
    #[must_use]
    pub fn get(&self, target: &str) -> Option<TargetHealth> {
        self.targets
            .get(target)
            .map(|tracked| tracked.health(target))
    }

    /// Every known target's health, sorted by target name.
    #[must_use]
    pub fn snapshot(&self) -> Vec<TargetHealth> {
        let mut all: Vec<TargetHealth> = self
            .targets
            .iter()
            .map(|tracked| tracked.health(tracked.key()))
            .collect();
        all.sort_by(|a, b| a.target.cmp(&b.target));
        all
    }

    /// Records what a probe of `target` found, and returns the target's new health.
    pub fn record_probe(&self, target: &str, result: &ProbeResult) -> TargetHealth {
        if let Some(observer) = &self.observer {
            let (kind, latency) = match result {
                ProbeResult::Reachable { latency, .. } => ("reachable", Some(*latency)),
                ProbeResult::AuthRejected { latency, .. } => ("auth_rejected", Some(*latency)),
                ProbeResult::Unreachable(_) => ("unreachable", None),
            };
            observer.on_probe(target, kind, latency);
        }
        let at = self.clock.now();
        let observation = match result {
            ProbeResult::Reachable { latency, .. } => {
                Some(Observation::Success { latency: *latency })
            }
            ProbeResult::AuthRejected { status, latency } => Some(Observation::AuthRejected {
                latency: *latency,
                error: PublishError::new(
                    ErrorKind::Permanent {
                        reason: PermanentReason::Auth,
                    },
                    format!("the health probe's credentials were refused (HTTP {status})"),
                )
                .with_status(*status),
            }),
            ProbeResult::Unreachable(error) if error.kind.counts_against_target() => {
                Some(Observation::Failure(error.clone()))
            }
            ProbeResult::Unreachable(_) => None,
        };
        self.update(
            target,
            |tracked| {
                tracked.last_probe_at = Some(at);
                if let Some(observation) = observation {
                    tracked.apply(&self.config, observation, at);
                }
            },
            |tracked| tracked.health(target),
        )
    }

    /// Forgets a target, which becomes unknown.
    pub fn remove(&self, target: &str) {
        self.targets.remove(target);
    }

    /// Keeps only the targets for which `keep` is true, for when targets are removed.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.targets.retain(|target, _| keep(target));
    }

    /// Passive input at a given time: what [`HealthView::record`] does at the clock's `now`.
    fn record_at(&self, target: &str, outcome: &CallOutcome, at: DateTime<Utc>) {
        let observation = match &outcome.result {
            Ok(_) => Observation::Success {
                latency: outcome.duration,
            },
            Err(error) if error.kind.counts_against_target() => Observation::Failure(error.clone()),
            // Not the target's fault: the state is left exactly as it was.
            Err(_) => return,
        };
        // Once per call: nothing is built from the record but the status change.
        self.update(
            target,
            |tracked| tracked.apply(&self.config, observation, at),
            |_| (),
        );
    }

    /// Runs `change` on the target's entry (creating it), logs a status change, and returns what
    /// `read` takes from the entry then. The entry's shard lock is held only for the two.
    fn update<T>(
        &self,
        target: &str,
        change: impl FnOnce(&mut Tracked),
        read: impl FnOnce(&Tracked) -> T,
    ) -> T {
        let (before, after, read) = {
            let mut tracked = match self.targets.get_mut(target) {
                Some(tracked) => tracked,
                None => self.targets.entry(Box::from(target)).or_default(),
            };
            let before = (tracked.status, tracked.degraded_reason);
            change(&mut tracked);
            let after = (tracked.status, tracked.degraded_reason);
            (before, after, read(&tracked))
        };
        if before.0 != after.0
            && let Some(observer) = &self.observer
        {
            observer.on_transition(target, before.0, after.0);
        }
        if before != after {
            let reason = after.1.map(DegradedReason::as_str);
            match after.0 {
                HealthStatus::Unhealthy | HealthStatus::Degraded => tracing::warn!(
                    target_name = target,
                    from = %before.0,
                    to = %after.0,
                    reason,
                    "target health changed"
                ),
                HealthStatus::Healthy | HealthStatus::Unknown => tracing::info!(
                    target_name = target,
                    from = %before.0,
                    to = %after.0,
                    "target health changed"
                ),
            }
        }
        read
    }
}

impl Default for HealthRegistry {
    /// A registry with the default configuration.
    fn default() -> Self {
        Self {
            config: HealthConfig::default(),
            targets: DashMap::new(),
            clock: Arc::new(SystemClock),
            observer: None,
        }
    }
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("config", &self.config)
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}

impl HealthView for HealthRegistry {
    fn status(&self, target: &str) -> HealthStatus {
        self.targets
            .get(target)
            .map_or(HealthStatus::Unknown, |tracked| tracked.status)
    }

    fn record(&self, target: &str, outcome: &CallOutcome) {
        self.record_at(target, outcome, self.clock.now());
    }
}

#[cfg(all(test, not(alertpub_loom)))]
mod tests {
    use alert_core::Receipt;
    use chrono::TimeZone;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, second)
            .single()
            .expect("a valid time")
    }

    fn registry() -> HealthRegistry {
        HealthRegistry::new(HealthConfig::default()).expect("the default config is valid")
    }

    fn ok(latency: Duration) -> CallOutcome {
        CallOutcome::new(Ok(Receipt::with_status(202)), latency)
    }

    fn err(kind: ErrorKind) -> CallOutcome {
        CallOutcome::new(
            Err(PublishError::new(kind, "it broke").with_status(503)),
            10 * MS,
        )
    }

    #[test]
    fn defaults_match_the_spec() {
        let config = HealthConfig::default();
        assert_eq!(config.interval, Duration::from_secs(120));
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.failure_threshold, 3);
        assert_eq!(config.slow_threshold, Duration::from_secs(5));
        assert_eq!(config.max_concurrent_probes, 10);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn zero_values_are_rejected() {
        let cases = [
            (
                HealthConfig::default().with_interval(Duration::ZERO),
                "interval",
            ),
            (
                HealthConfig::default().with_timeout(Duration::ZERO),
                "timeout",
            ),
            (
                HealthConfig::default().with_failure_threshold(0),
                "failure_threshold",
            ),
            (
                HealthConfig::default().with_slow_threshold(Duration::ZERO),
                "slow_threshold",
            ),
            (
                HealthConfig::default().with_max_concurrent_probes(0),
                "max_concurrent_probes",
            ),
            (
                HealthConfig::default().with_success_window(0),
                "success_window",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(
                HealthRegistry::new(config).err(),
                Some(ConfigError::MustBePositive(field))
            );
        }
    }

    #[test]
    fn config_json_uses_ms() {
        let config: HealthConfig =
            serde_json::from_str(r#"{"interval_ms":60000,"max_concurrent_probes":4}"#).unwrap();
        assert_eq!(config.interval, Duration::from_secs(60));
        assert_eq!(config.max_concurrent_probes, 4);
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(
            serde_json::to_value(HealthConfig::default()).unwrap(),
            serde_json::json!({
                "interval_ms": 120_000,
                "timeout_ms": 5000,
                "failure_threshold": 3,
                "slow_threshold_ms": 5000,
                "max_concurrent_probes": 10,
                "success_window": 20
            })
        );
    }

    #[test]
    fn unknown_until_something_is_recorded() {
        let registry = registry();
        assert_eq!(registry.status("ops"), HealthStatus::Unknown);
        assert_eq!(registry.get("ops"), None);
        assert!(registry.snapshot().is_empty());
    }

    #[test]
    fn a_success_makes_a_target_healthy() {
        let registry = registry();
        registry.record_at("ops", &ok(40 * MS), at(0));
        let health = registry.get("ops").unwrap();
        assert_eq!(health.status, HealthStatus::Healthy);
        assert_eq!(health.degraded_reason, None);
        assert_eq!(health.status_since, Some(at(0)));
        assert_eq!(health.last_success_at, Some(at(0)));
        assert_eq!(health.last_latency, Some(40 * MS));
        assert_eq!(health.latency_ewma, Some(40 * MS));
        assert_eq!(health.success_rate, Some(1.0));
        assert_eq!(health.sample_count, 1);
    }

    #[test]
    fn three_consecutive_failures_make_it_unhealthy_and_a_success_heals_it() {
        let registry = registry();
        registry.record_at("ops", &ok(MS), at(0));
        for (n, second) in [(1, 1), (2, 2)] {
            registry.record_at("ops", &err(ErrorKind::Transient), at(second));
            let health = registry.get("ops").unwrap();
            assert_eq!(health.status, HealthStatus::Healthy, "after {n} failures");
            assert_eq!(health.consecutive_failures, n);
        }
        registry.record_at("ops", &err(ErrorKind::Timeout), at(3));
        let health = registry.get("ops").unwrap();
        assert_eq!(health.status, HealthStatus::Unhealthy);
        assert_eq!(health.status_since, Some(at(3)));
        assert_eq!(health.consecutive_failures, 3);
        let failure = health.last_failure.unwrap();
        assert_eq!(failure.at, at(3));
        assert_eq!(failure.error.kind, ErrorKind::Timeout);
        assert_eq!(health.success_rate, Some(0.25));

        registry.record_at("ops", &ok(MS), at(4));
        let health = registry.get("ops").unwrap();
        assert_eq!(health.status, HealthStatus::Healthy);
        assert_eq!(health.consecutive_failures, 0);
        assert_eq!(health.status_since, Some(at(4)));
        assert!(health.last_failure.is_some(), "the last failure is kept");
    }

    #[test]
    fn a_slow_success_degrades_and_a_fast_one_recovers() {
        let registry = registry();
        registry.record_at("ops", &ok(Duration::from_millis(5001)), at(0));
        let health = registry.get("ops").unwrap();
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.degraded_reason, Some(DegradedReason::Slow));
        // Exactly the threshold is not slow.
        registry.record_at("ops", &ok(Duration::from_secs(5)), at(1));
        assert_eq!(registry.status("ops"), HealthStatus::Healthy);
        assert_eq!(registry.get("ops").unwrap().degraded_reason, None);
    }

    #[test]
    fn failures_that_are_not_the_targets_fault_change_nothing() {
        let registry = registry();
        registry.record_at("ops", &ok(MS), at(0));
        registry.record_at("ops", &err(ErrorKind::Transient), at(1));
        let before = registry.get("ops").unwrap();
        let neutral = [
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            },
            ErrorKind::Cancelled,
            ErrorKind::Permanent {
                reason: PermanentReason::Payload,
            },
            ErrorKind::Permanent {
                reason: PermanentReason::BadRequest,
            },
        ];
        for (second, kind) in (2..).zip(neutral) {
            for _ in 0..5 {
                registry.record_at("ops", &err(kind), at(second));
            }
        }
        assert_eq!(registry.get("ops").unwrap(), before);
        // And a target only ever rate limited stays unknown, without even an entry.
        registry.record_at(
            "paced",
            &err(ErrorKind::RateLimited { retry_after: None }),
            at(9),
        );
        assert_eq!(registry.get("paced"), None);
    }

    #[test]
    fn auth_and_not_found_failures_count() {
        let registry = registry();
        for kind in [
            ErrorKind::Permanent {
                reason: PermanentReason::Auth,
            },
            ErrorKind::Permanent {
                reason: PermanentReason::NotFound,
            },
            ErrorKind::Transient,
        ] {
            registry.record_at("ops", &err(kind), at(0));
        }
        assert_eq!(registry.status("ops"), HealthStatus::Unhealthy);
    }

    #[test]
    fn probes_feed_the_same_transitions() {
        let registry = registry();
        let reachable = ProbeResult::Reachable {
            status: 405,
            latency: 3 * MS,
        };
        let health = registry.record_probe("ops", &reachable);
        assert_eq!(health.status, HealthStatus::Healthy);
        assert!(health.last_probe_at.is_some());
        assert_eq!(registry.get("ops").unwrap(), health);

        let unreachable = ProbeResult::Unreachable(PublishError::new(
            ErrorKind::Transient,
            "GET http://127.0.0.1:1/…: connection refused",
        ));
        for _ in 0..3 {
            registry.record_probe("ops", &unreachable);
        }
        assert_eq!(registry.status("ops"), HealthStatus::Unhealthy);

        let slow = ProbeResult::Reachable {
            status: 200,
            latency: Duration::from_secs(6),
        };
        let health = registry.record_probe("ops", &slow);
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.degraded_reason, Some(DegradedReason::Slow));
    }

    #[test]
    fn refused_credentials_degrade_with_reason_auth() {
        let registry = registry();
        registry.record_probe(
            "ops",
            &ProbeResult::Unreachable(PublishError::new(ErrorKind::Timeout, "slow")),
        );
        let health = registry.record_probe(
            "ops",
            &ProbeResult::AuthRejected {
                status: 401,
                latency: 2 * MS,
            },
        );
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.degraded_reason, Some(DegradedReason::Auth));
        assert_eq!(health.consecutive_failures, 0, "the target did answer");
        assert_eq!(health.success_rate, Some(0.0));
        let failure = health.last_failure.unwrap();
        assert_eq!(
            failure.error.kind,
            ErrorKind::Permanent {
                reason: PermanentReason::Auth
            }
        );
        assert_eq!(failure.error.status_code, Some(401));

        // A publish that gets through proves the credentials work again.
        registry.record("ops", &ok(MS));
        let health = registry.get("ops").unwrap();
        assert_eq!(health.status, HealthStatus::Healthy);
        assert_eq!(health.degraded_reason, None);
    }

    #[test]
    fn a_failure_below_the_threshold_keeps_a_degraded_reason() {
        let registry = registry();
        registry.record_probe(
            "ops",
            &ProbeResult::AuthRejected {
                status: 403,
                latency: MS,
            },
        );
        registry.record_at("ops", &err(ErrorKind::Transient), at(1));
        let health = registry.get("ops").unwrap();
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(health.degraded_reason, Some(DegradedReason::Auth));
    }

    #[test]
    fn the_success_rate_covers_a_sliding_window() {
        let registry = HealthRegistry::new(HealthConfig::default().with_success_window(4)).unwrap();
        for _ in 0..4 {
            registry.record_at("ops", &err(ErrorKind::Transient), at(0));
        }
        assert_eq!(registry.get("ops").unwrap().success_rate, Some(0.0));
        for (n, rate) in [(1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0), (5, 1.0)] {
            registry.record_at("ops", &ok(MS), at(1));
            let health = registry.get("ops").unwrap();
            assert_eq!(health.success_rate, Some(rate), "after {n} successes");
            assert_eq!(health.sample_count, 4);
        }
    }

    #[test]
    fn latency_is_averaged_over_successes_only() {
        let registry = registry();
        registry.record_at("ops", &ok(100 * MS), at(0));
        registry.record_at("ops", &err(ErrorKind::Timeout), at(1));
        registry.record_at("ops", &ok(200 * MS), at(2));
        let health = registry.get("ops").unwrap();
        assert_eq!(health.last_latency, Some(200 * MS));
        // 0.7 × 100 ms + 0.3 × 200 ms.
        let ewma = health.latency_ewma.unwrap();
        assert!((ewma.as_secs_f64() - 0.130).abs() < 1e-9, "{ewma:?}");
    }

    #[test]
    fn the_snapshot_serialises_with_wire_conventions() {
        let registry = registry();
        registry.record_at("b-target", &ok(Duration::from_millis(6120)), at(0));
        registry.record_at(
            "a-target",
            &CallOutcome::new(
                Err(PublishError::new(
                    ErrorKind::Transient,
                    "POST https://hooks.example.com:443/…: HTTP 503 Service Unavailable",
                )
                .with_status(503)),
                10 * MS,
            ),
            at(1),
        );
        let snapshot = registry.snapshot();
        assert_eq!(
            snapshot
                .iter()
                .map(|h| h.target.as_str())
                .collect::<Vec<_>>(),
            ["a-target", "b-target"]
        );
        assert_eq!(
            serde_json::to_value(&snapshot).unwrap(),
            serde_json::json!([
                {
                    "target": "a-target",
                    "status": "unknown",
                    "degraded_reason": null,
                    "consecutive_failures": 1,
                    "status_since": null,
                    "last_success_at": null,
                    "last_failure": {
                        "at": "2026-11-23T12:00:01.000Z",
                        "kind": "transient",
                        "status_code": 503,
                        "message": "POST https://hooks.example.com:443/…: HTTP 503 Service Unavailable"
                    },
                    "success_rate": 0.0,
                    "sample_count": 1,
                    "last_latency_ms": null,
                    "latency_ewma_ms": null,
                    "last_probe_at": null
                },
                {
                    "target": "b-target",
                    "status": "degraded",
                    "degraded_reason": "slow",
                    "consecutive_failures": 0,
                    "status_since": "2026-11-23T12:00:00.000Z",
                    "last_success_at": "2026-11-23T12:00:00.000Z",
                    "last_failure": null,
                    "success_rate": 1.0,
                    "sample_count": 1,
                    "last_latency_ms": 6120,
                    "latency_ewma_ms": 6120,
                    "last_probe_at": null
                }
            ])
        );
        let back: Vec<TargetHealth> =
            serde_json::from_value(serde_json::to_value(&snapshot).unwrap()).unwrap();
        assert_eq!(back, snapshot);
    }

    #[test]
    fn remove_and_retain_forget_targets() {
        let registry = registry();
        for name in ["a", "b", "c"] {
            registry.record_at(name, &ok(MS), at(0));
        }
        registry.remove("a");
        registry.retain(|name| name != "b");
        assert_eq!(
            registry
                .snapshot()
                .into_iter()
                .map(|h| h.target)
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(registry.status("a"), HealthStatus::Unknown);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let registry = std::sync::Arc::new(
            HealthRegistry::new(HealthConfig::default().with_failure_threshold(40)).unwrap(),
        );
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let registry = registry.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        registry.record_at("ops", &err(ErrorKind::Transient), at(0));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let health = registry.get("ops").unwrap();
        assert_eq!(health.consecutive_failures, 40);
        assert_eq!(health.status, HealthStatus::Unhealthy);
    }
}

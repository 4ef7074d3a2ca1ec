//! Options of one parallel publish, and their validation.

use std::time::Duration;

use alert_core::wire;
use serde::{Deserialize, Serialize};

/// The most targets one parallel publish may call at once.
pub const MAX_CONCURRENT_LIMIT: usize = 1000;

/// Which targets' health makes selection skip them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStrategy {
    /// Skip unhealthy targets; call degraded and unknown ones (unknown fails open).
    #[default]
    SkipUnhealthy,
    /// Skip unhealthy and degraded targets; call unknown ones.
    SkipUnhealthyAndDegraded,
    /// Call every target whatever its health.
    PublishToAll,
}

/// Why [`PublishOptions`] were rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// `timeout` must be positive.
    #[error("timeout must be greater than zero")]
    ZeroTimeout,
    /// `per_target_timeout` must be positive.
    #[error("per_target_timeout must be greater than zero")]
    ZeroPerTargetTimeout,
    /// `max_concurrent` must lie in `1..=1000`.
    #[error("max_concurrent must be between 1 and {MAX_CONCURRENT_LIMIT}, got {0}")]
    MaxConcurrentOutOfRange(usize),
}

/// How one parallel publish runs. Every field has a default; [`validate`](Self::validate) checks
/// the values, and the engine calls it before doing anything.
///
/// In JSON, durations are integer milliseconds: `timeout_ms` and `per_target_timeout_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The whole publish's deadline. Default 30 s.
    #[serde(rename = "timeout_ms", with = "wire::duration_ms")]
    pub timeout: Duration,
    /// One attempt's deadline, unless the target overrides it. Default 10 s.
    #[serde(rename = "per_target_timeout_ms", with = "wire::duration_ms")]
    pub per_target_timeout: Duration,
    /// The most targets called at once. Default 50, at most 1000. Never exceeded.
    pub max_concurrent: usize,
    /// Which unhealthy targets to skip. Default [`HealthStrategy::SkipUnhealthy`].
    pub health_strategy: HealthStrategy,
    /// Whether an open circuit breaker skips its target. Default true.
    pub respect_circuit_breakers: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            per_target_timeout: Duration::from_secs(10),
            max_concurrent: 50,
            health_strategy: HealthStrategy::SkipUnhealthy,
            respect_circuit_breakers: true,
        }
    }
}

impl PublishOptions {
    /// Returns the options with this overall timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns the options with this per-attempt timeout.
    #[must_use]
    pub fn with_per_target_timeout(mut self, timeout: Duration) -> Self {
        self.per_target_timeout = timeout;
        self
    }

    /// Returns the options with this concurrency limit.
    #[must_use]
    pub fn with_max_concurrent(mut self, max_concurrent: usize) -> Self {
        self.max_concurrent = max_concurrent;
        self
    }

    /// Returns the options with this health strategy.
    #[must_use]
    pub fn with_health_strategy(mut self, strategy: HealthStrategy) -> Self {
        self.health_strategy = strategy;
        self
    }

    /// Returns the options with circuit breakers respected or ignored.
    #[must_use]
    pub fn with_respect_circuit_breakers(mut self, respect: bool) -> Self {
        self.respect_circuit_breakers = respect;
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    /// The first [`OptionsError`] found.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.timeout.is_zero() {
            return Err(OptionsError::ZeroTimeout);
        }
        if self.per_target_timeout.is_zero() {
            return Err(OptionsError::ZeroPerTargetTimeout);
        }
        if !(1..=MAX_CONCURRENT_LIMIT).contains(&self.max_concurrent) {
            return Err(OptionsError::MaxConcurrentOutOfRange(self.max_concurrent));
        }
        Ok(())
    }
}

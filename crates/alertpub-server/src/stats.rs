//! Live totals of the synchronous publish API, for `GET /api/v1/publish/parallel/status`, and the
//! observer that feeds both them and the metrics.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{
    AttemptEnded, AttemptPath, CallOutcome, DeadReason, ParallelOutcome, PublishObserver,
    SkipReason, Target,
};
use serde::Serialize;

/// How many recent durations the percentiles are computed over. Bounded, so memory is too.
const WINDOW: usize = 1024;

/// Totals and a sliding window of durations.
#[derive(Debug, Default)]
pub(crate) struct PublishStats {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    total: u64,
    success: u64,
    partial: u64,
    failure: u64,
    recent: VecDeque<Duration>,
    /// Each target's calls by the synchronous API, by name.
    targets: BTreeMap<String, TargetTotals>,
}

/// How many recent call durations each target's percentiles are computed over.
const TARGET_WINDOW: usize = 256;

/// The most targets tracked at once; calls to others are counted only in the totals until a
/// reset (targets come and go with Kubernetes Secrets).
const MAX_TARGETS: usize = 1_024;

#[derive(Debug, Default)]
struct TargetTotals {
    calls: u64,
    success: u64,
    failed: u64,
    recent: VecDeque<Duration>,
}

/// The JSON answer of the status endpoint.
#[derive(Debug, Serialize)]
pub(crate) struct StatsView {
    total: u64,
    success: u64,
    partial: u64,
    failure: u64,
    /// How many recent publishes the percentiles cover.
    window: usize,
    latency_ms: Percentiles,
    /// Each target's calls, by name.
    targets: BTreeMap<String, TargetView>,
}

/// One target's calls by the synchronous API since the start or the last reset.
#[derive(Debug, Serialize)]
struct TargetView {
    calls: u64,
    success: u64,
    failed: u64,
    /// How many recent calls the percentiles cover.
    window: usize,
    latency_ms: Percentiles,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

impl PublishStats {
    pub(crate) fn record(&self, outcome: ParallelOutcome, duration: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.total += 1;
        match outcome {
            ParallelOutcome::Success => inner.success += 1,
            ParallelOutcome::Partial => inner.partial += 1,
            _ => inner.failure += 1,
        }
        if inner.recent.len() == WINDOW {
            inner.recent.pop_front();
        }
        inner.recent.push_back(duration);
    }

    /// Counts one call of the synchronous API to `target`.
    pub(crate) fn record_call(&self, target: &str, delivered: bool, duration: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let known = inner.targets.len();
        let totals = match inner.targets.get_mut(target) {
            Some(totals) => totals,
            None if known < MAX_TARGETS => inner.targets.entry(target.to_owned()).or_default(),
            None => return,
        };
        totals.calls += 1;
        if delivered {
            totals.success += 1;
        } else {
            totals.failed += 1;
        }
        if totals.recent.len() == TARGET_WINDOW {
            totals.recent.pop_front();
        }
        totals.recent.push_back(duration);
    }

    /// Starts every figure again from zero.
    pub(crate) fn reset(&self) {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = Inner::default();
    }

    pub(crate) fn view(&self) -> StatsView {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        StatsView {
            total: inner.total,
            success: inner.success,
            partial: inner.partial,
            failure: inner.failure,
            window: inner.recent.len(),
            latency_ms: percentiles(&inner.recent),
            targets: inner
                .targets
                .iter()
                .map(|(name, t)| {
                    let view = TargetView {
                        calls: t.calls,
                        success: t.success,
                        failed: t.failed,
                        window: t.recent.len(),
                        latency_ms: percentiles(&t.recent),
                    };
                    (name.clone(), view)
                })
                .collect(),
        }
    }
}

/// Nearest-rank percentiles of `recent`, in milliseconds.
fn percentiles(recent: &VecDeque<Duration>) -> Percentiles {
    let mut sorted: Vec<Duration> = recent.iter().copied().collect();
    sorted.sort_unstable();
    let pick = |q: f64| -> Option<f64> {
        let last = sorted.len().checked_sub(1)?;
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank within a window of at most 1024 samples"
        )]
        let rank = ((q * sorted.len() as f64).ceil() as usize).saturating_sub(1);
        Some(sorted[rank.min(last)].as_secs_f64() * 1000.0)
    };
    Percentiles {
        p50: pick(0.5),
        p90: pick(0.9),
        p99: pick(0.99),
        max: sorted.last().map(|d| d.as_secs_f64() * 1000.0),
    }
}

/// Sends every hook to the metrics and the live totals.
#[derive(Debug)]
pub(crate) struct ServerObserver {
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) stats: Arc<PublishStats>,
    /// Every attempt's record goes to the delivery history (none with a retention of 0).
    pub(crate) history: Option<Arc<crate::history::Recorder>>,
}

impl PublishObserver for ServerObserver {
    fn on_call_started(&self, target: &Target) {
        self.metrics.on_call_started(target);
    }

    fn on_call_finished(&self, target: &Target, outcome: &CallOutcome) {
        self.metrics.on_call_finished(target, outcome);
    }

    fn on_skipped(&self, target: &Target, reason: SkipReason) {
        self.metrics.on_skipped(target, reason);
        tracing::debug!(
            target = target.name.as_str(),
            reason = reason.as_str(),
            "target skipped"
        );
    }

    fn on_parallel_publish(&self, outcome: ParallelOutcome, duration: Duration) {
        self.metrics.on_parallel_publish(outcome, duration);
        self.stats.record(outcome, duration);
        // One line per parallel publish, at the level its outcome deserves.
        let duration_ms = alert_core::wire::duration_ms(duration);
        match outcome {
            ParallelOutcome::Success => {
                tracing::info!(outcome = outcome.as_str(), duration_ms, "parallel publish");
            }
            ParallelOutcome::Partial => {
                tracing::warn!(outcome = outcome.as_str(), duration_ms, "parallel publish");
            }
            _ => tracing::error!(outcome = outcome.as_str(), duration_ms, "parallel publish"),
        }
    }

    fn on_job_rescheduled(&self, target: &Target, consumed_attempt: bool) {
        if consumed_attempt {
            self.metrics.add_queue_retries(1);
        }
        tracing::debug!(
            target = target.name.as_str(),
            consumed_attempt,
            "job rescheduled"
        );
    }

    fn on_attempt(&self, attempt: &AttemptEnded<'_>) {
        if attempt.path == AttemptPath::Sync {
            self.stats.record_call(
                attempt.target.name.as_str(),
                attempt.outcome.result.is_ok(),
                attempt.outcome.duration,
            );
        }
        if let Some(history) = &self.history {
            history.push(attempt.record());
        }
    }

    fn on_job_delivered(&self, target: &Target, since_accepted: Duration) {
        self.metrics.on_job_delivered(target, since_accepted);
    }

    fn on_job_dead_lettered(&self, target: &Target, reason: DeadReason) {
        self.metrics.on_job_dead_lettered(target, reason);
        tracing::warn!(
            target = target.name.as_str(),
            reason = reason.as_str(),
            "job moved to the dead-letter queue"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_counted_and_a_reset_starts_again() {
        let stats = PublishStats::default();
        stats.record_call("pager", true, Duration::from_millis(10));
        stats.record_call("pager", false, Duration::from_millis(30));
        stats.record_call("chat", true, Duration::from_millis(5));
        let view = stats.view();
        let pager = &view.targets["pager"];
        assert_eq!((pager.calls, pager.success, pager.failed), (2, 1, 1));
        assert_eq!(pager.latency_ms.max, Some(30.0));
        assert_eq!(view.targets["chat"].calls, 1);
        stats.reset();
        let view = stats.view();
        assert!(view.targets.is_empty());
        assert_eq!(view.total, 0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let stats = PublishStats::default();
        for ms in 1..=100 {
            stats.record(ParallelOutcome::Success, Duration::from_millis(ms));
        }
        stats.record(ParallelOutcome::Partial, Duration::from_millis(1000));
        let view = stats.view();
        assert_eq!((view.total, view.success, view.partial), (101, 100, 1));
        assert_eq!(view.latency_ms.p50, Some(51.0));
        assert_eq!(view.latency_ms.max, Some(1000.0));
    }
}

/// Sends the health registry's probes and transitions to the metrics.
#[derive(Debug)]
pub(crate) struct HealthMetrics(pub(crate) Arc<metrics::Metrics>);

impl health::HealthObserver for HealthMetrics {
    fn on_probe(&self, target: &str, result: &'static str, latency: Option<Duration>) {
        self.0.record_health_check(target, result, latency);
    }

    fn on_transition(
        &self,
        target: &str,
        from: alert_core::HealthStatus,
        to: alert_core::HealthStatus,
    ) {
        self.0.add_health_transition(target, from, to);
    }
}

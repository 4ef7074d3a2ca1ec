//! Live totals of the synchronous publish API, for `GET /api/v1/publish/parallel/status`, and the
//! observer that feeds both them and the metrics.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{
    AttemptEnded, CallOutcome, DeadReason, ParallelOutcome, PublishObserver, SkipReason, Target,
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

    pub(crate) fn view(&self) -> StatsView {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sorted: Vec<Duration> = inner.recent.iter().copied().collect();
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
        StatsView {
            total: inner.total,
            success: inner.success,
            partial: inner.partial,
            failure: inner.failure,
            window: sorted.len(),
            latency_ms: Percentiles {
                p50: pick(0.5),
                p90: pick(0.9),
                p99: pick(0.99),
                max: sorted.last().map(|d| d.as_secs_f64() * 1000.0),
            },
        }
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
    }

    fn on_parallel_publish(&self, outcome: ParallelOutcome, duration: Duration) {
        self.metrics.on_parallel_publish(outcome, duration);
        self.stats.record(outcome, duration);
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

//! `TargetCall`: the single way a target is called.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use alert_core::{
    AlertStatus, AttemptEnded, AttemptPath, CallOutcome, CircuitGate, Delivery, EnrichedAlert,
    GateDecision, GateOutcome, HealthView, PublishError, PublishObserver, PublishRequest,
    TargetEntry,
};
use chrono::{DateTime, Utc};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

/// What became of one [`TargetCall`].
#[derive(Clone, Debug, PartialEq)]
pub enum CallResult {
    /// The publisher was called; here is what happened.
    Called(CallOutcome),
    /// The circuit breaker refused the call (another trial is in flight, or the breaker is open).
    Rejected {
        /// When a call may next be allowed, if the gate knows.
        retry_in: Option<Duration>,
    },
}

/// One attempt to publish one alert to one target.
///
/// It asks the circuit gate, applies the per-attempt timeout, calls the publisher, records the
/// outcome on the gate and the health view, and notifies the observer. It never retries: retries
/// happen in exactly one place, the dispatcher.
///
/// Dropping the future returned by [`call`](Self::call) cancels the attempt; the gate and observer
/// still hear of it (as a cancellation), so a half-open breaker's trial slot is always released.
#[derive(Clone, Copy)]
pub struct TargetCall<'a> {
    entry: &'a TargetEntry,
    timeout: Duration,
    gate: &'a dyn CircuitGate,
    health: &'a dyn HealthView,
    observer: &'a dyn PublishObserver,
    respect_gate: bool,
    path: AttemptPath,
}

impl<'a> TargetCall<'a> {
    /// A call to `entry` with this per-attempt `timeout`; the target's own `timeout` overrides it.
    #[must_use]
    pub fn new(
        entry: &'a TargetEntry,
        timeout: Duration,
        gate: &'a dyn CircuitGate,
        health: &'a dyn HealthView,
        observer: &'a dyn PublishObserver,
    ) -> Self {
        let timeout = entry.target.timeout.unwrap_or(timeout);
        Self {
            entry,
            timeout,
            gate,
            health,
            observer,
            respect_gate: true,
            path: AttemptPath::Queue,
        }
    }

    /// Returns the call marked as made by `path` (the queue's, unless said otherwise), for the
    /// delivery history.
    #[must_use]
    pub fn via(mut self, path: AttemptPath) -> Self {
        self.path = path;
        self
    }

    /// Returns the call set to ignore the gate's verdict (outcomes are still recorded).
    #[must_use]
    pub fn ignoring_gate(mut self) -> Self {
        self.respect_gate = false;
        self
    }

    /// The per-attempt timeout this call applies.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Makes the attempt, starting now, publishing `status` (the state the caller decided on
    /// when it made the job: the call never derives it from the clock).
    pub async fn call(
        &self,
        alert: &EnrichedAlert,
        status: AlertStatus,
        delivery: Delivery,
        at: DateTime<Utc>,
    ) -> CallResult {
        self.call_at(alert, (status, at), delivery, Instant::now())
            .await
    }

    /// Makes the attempt, taking `started` as its start: the per-attempt deadline is
    /// `started + timeout`. Callers that start many calls at one instant read the clock once.
    ///
    /// `(status, at)` is what the caller decided: the state to publish, and the attempt's wall
    /// instant from its clock.
    pub async fn call_at(
        &self,
        alert: &EnrichedAlert,
        (status, at): (AlertStatus, DateTime<Utc>),
        delivery: Delivery,
        started: Instant,
    ) -> CallResult {
        // One span per attempt. Its fields name the target and the alert, never a URL or a
        // credential: those stay inside the publisher, and its error messages are redacted.
        let target = &self.entry.target;
        let span = tracing::info_span!(
            "publish",
            target = %target.name,
            kind = %target.kind,
            fingerprint = %alert.alert.fingerprint(),
            attempt = delivery.attempt,
        );
        let result = self
            .attempt(alert, (status, at), delivery, started)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        match &result {
            CallResult::Called(outcome) => match &outcome.result {
                Ok(receipt) => tracing::debug!(
                    status = receipt.status_code,
                    duration_ms = alert_core::wire::duration_ms(outcome.duration),
                    "published"
                ),
                Err(err) => tracing::warn!(
                    error_kind = err.kind.label(),
                    status = err.status_code,
                    duration_ms = alert_core::wire::duration_ms(outcome.duration),
                    message = %err.message,
                    "publish failed"
                ),
            },
            CallResult::Rejected { .. } => {
                tracing::debug!("the circuit breaker refused the call");
            }
        }
        result
    }

    async fn attempt(
        &self,
        alert: &EnrichedAlert,
        (status, at): (AlertStatus, DateTime<Utc>),
        delivery: Delivery,
        started: Instant,
    ) -> CallResult {
        let name = self.entry.target.name.as_str();
        let trial = if self.respect_gate {
            match self.gate.acquire(name) {
                GateDecision::Allow { trial } => trial,
                GateDecision::Reject { retry_in } => return CallResult::Rejected { retry_in },
            }
        } else {
            false
        };
        self.observer.on_call_started(&self.entry.target);
        let mut guard = InFlight {
            call: self,
            trial,
            started,
            armed: true,
        };

        let publish = self
            .entry
            .publisher
            .publish(PublishRequest::new(alert, status, delivery, at));
        let result = match within(started + self.timeout, publish).await {
            Some(result) => result,
            None => Err(PublishError::timeout(self.timeout)),
        };
        guard.armed = false;
        let outcome = CallOutcome::new(result, guard.started.elapsed());
        self.finish(trial, &outcome);
        self.observer.on_attempt(&AttemptEnded::new(
            &self.entry.target,
            alert,
            (status, delivery),
            at,
            &outcome,
            self.path,
        ));
        CallResult::Called(outcome)
    }

    fn finish(&self, trial: bool, outcome: &CallOutcome) {
        let name = self.entry.target.name.as_str();
        self.gate
            .record(name, trial, GateOutcome::of(&outcome.result));
        self.health.record(name, outcome);
        self.observer.on_call_finished(&self.entry.target, outcome);
    }
}

/// `future`'s output, or `None` once `deadline` has passed while it waits.
///
/// Like tokio's `timeout_at`, it polls the future before it looks at the deadline. Unlike it, the
/// timer lives on the heap and is armed the first time the future has to wait: the attempt's
/// future stays small, and it is moved once per target into the engine's set of calls and into
/// the dispatcher's attempt task.
async fn within<F: Future>(deadline: Instant, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)))
            .as_mut()
            .poll(cx)
            .map(|()| None)
    })
    .await
}

/// Reports a cancelled attempt when the call's future is dropped before it finishes.
struct InFlight<'c, 'a> {
    call: &'c TargetCall<'a>,
    trial: bool,
    started: Instant,
    armed: bool,
}

impl Drop for InFlight<'_, '_> {
    fn drop(&mut self) {
        if self.armed {
            let outcome = CallOutcome::new(Err(PublishError::cancelled()), self.started.elapsed());
            self.call.finish(self.trial, &outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn within_gives_the_output_or_none_at_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(100);
        // A future that has to wait and finishes in time.
        let quick = tokio::time::sleep(Duration::from_millis(40));
        assert_eq!(within(deadline, quick).await, Some(()));
        assert_eq!(start.elapsed(), Duration::from_millis(40));
        // One that never finishes ends at the deadline, not before and not after.
        let stuck = within(deadline, std::future::pending::<()>());
        let ended = tokio::time::timeout(Duration::from_secs(1), stuck).await;
        assert_eq!(ended, Ok(None), "it ends at its deadline");
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        // A ready future is polled before the deadline is looked at, as with `timeout_at`.
        assert_eq!(within(deadline, async { 7 }).await, Some(7));
    }
}

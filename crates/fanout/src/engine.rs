//! The parallel engine: one attempt per selected target, all at once, within bounds.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    AlertStatus, AlwaysClosed, CircuitGate, Clock, Delivery, EnrichedAlert, ErrorKind, HealthView,
    NoopObserver, PublishError, PublishObserver, SystemClock, TargetEntry, TargetSource,
    UnknownHealth, wire,
};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::call::{CallResult, TargetCall};
use crate::options::PublishOptions;
use crate::result::{FanoutError, ParallelPublishResult, TargetOutcome, TargetResult};
use crate::select::{Selection, SelectionPolicy, select_targets};

/// Publishes one alert to many targets at once, with one attempt each.
///
/// Concurrency is bounded by construction: the engine never holds more than `max_concurrent`
/// publisher futures, and it spawns no task, so every in-flight call lives inside the future the
/// caller awaits. Dropping that future cancels every call, and no work outlives it.
#[derive(Clone)]
pub struct FanoutEngine {
    source: Arc<dyn TargetSource>,
    health: Arc<dyn HealthView>,
    gate: Arc<dyn CircuitGate>,
    observer: Arc<dyn PublishObserver>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`FanoutEngine`].
pub struct EngineBuilder {
    source: Arc<dyn TargetSource>,
    health: Arc<dyn HealthView>,
    gate: Arc<dyn CircuitGate>,
    observer: Arc<dyn PublishObserver>,
    clock: Arc<dyn Clock>,
}

impl EngineBuilder {
    /// Uses this health view (default: every target unknown, so all are called).
    #[must_use]
    pub fn health(mut self, health: Arc<dyn HealthView>) -> Self {
        self.health = health;
        self
    }

    /// Uses this circuit gate (default: never open).
    #[must_use]
    pub fn gate(mut self, gate: Arc<dyn CircuitGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Uses this observer (default: none).
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn PublishObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Uses this clock for the instant a publish starts at, which decides the alert's status
    /// and stamps every call (default: [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the engine.
    #[must_use]
    pub fn build(self) -> FanoutEngine {
        FanoutEngine {
            source: self.source,
            health: self.health,
            gate: self.gate,
            observer: self.observer,
            clock: self.clock,
        }
    }
}

impl FanoutEngine {
    /// Starts building an engine over these targets.
    #[must_use]
    pub fn builder(source: Arc<dyn TargetSource>) -> EngineBuilder {
        EngineBuilder {
            source,
            health: Arc::new(UnknownHealth),
            gate: Arc::new(AlwaysClosed),
            observer: Arc::new(NoopObserver),
            clock: Arc::new(SystemClock),
        }
    }

    /// Publishes to the named targets. An unknown name is [`FanoutError::UnknownTargets`], and
    /// nothing is sent.
    ///
    /// # Errors
    /// See [`FanoutError`].
    pub async fn publish_to<S: AsRef<str>>(
        &self,
        alert: &EnrichedAlert,
        targets: &[S],
        options: &PublishOptions,
    ) -> Result<ParallelPublishResult, FanoutError> {
        let names = targets
            .iter()
            .map(|name| name.as_ref().to_owned())
            .collect();
        self.publish(alert, &Selection::Named(names), options, None)
            .await
    }

    /// Publishes to every enabled target whose filter matches, whatever its health.
    ///
    /// # Errors
    /// See [`FanoutError`].
    pub async fn publish_to_all(
        &self,
        alert: &EnrichedAlert,
        options: &PublishOptions,
    ) -> Result<ParallelPublishResult, FanoutError> {
        self.publish(alert, &Selection::All, options, None).await
    }

    /// Publishes to every enabled target whose filter matches, skipping unhealthy ones as the
    /// options' health strategy says.
    ///
    /// # Errors
    /// See [`FanoutError`].
    pub async fn publish_to_healthy(
        &self,
        alert: &EnrichedAlert,
        options: &PublishOptions,
    ) -> Result<ParallelPublishResult, FanoutError> {
        self.publish(alert, &Selection::Healthy, options, None)
            .await
    }

    /// The general form: any selection, and an optional cancellation token. When the token is
    /// cancelled, unfinished targets are failed with kind `cancelled` and the result says
    /// `cancelled: true`.
    ///
    /// # Errors
    /// See [`FanoutError`].
    pub async fn publish(
        &self,
        alert: &EnrichedAlert,
        selection: &Selection,
        options: &PublishOptions,
        cancel: Option<&CancellationToken>,
    ) -> Result<ParallelPublishResult, FanoutError> {
        options.validate()?;
        let started = Instant::now();
        let started_at = self.clock.now();
        // The status is decided once, when the publish starts, and every target gets that one.
        let status = alert.alert.status_at(started_at);
        let targets = self.source.snapshot();
        let policy = SelectionPolicy {
            health_strategy: options.health_strategy,
            respect_circuit_breakers: options.respect_circuit_breakers,
        };
        let selected = select_targets(
            &alert.alert,
            &targets,
            selection,
            policy,
            self.health.as_ref(),
            self.gate.as_ref(),
        )?;

        let mut slots: Vec<Slot> = selected
            .candidates
            .iter()
            .map(|candidate| match candidate.skip {
                Some(reason) => {
                    self.observer.on_skipped(&candidate.entry.target, reason);
                    Slot::Done(skipped(candidate.entry, reason))
                }
                None => Slot::Pending,
            })
            .collect();
        let to_call: Vec<(usize, &TargetEntry)> = selected
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.skip.is_none())
            .map(|(index, c)| (index, c.entry))
            .collect();

        let stop = self
            .run_calls(
                // Every call publishes the state decided at the start, stamped with that instant.
                (alert, (status, started_at)),
                &to_call,
                &mut slots,
                options,
                started + options.timeout,
                cancel,
            )
            .await;

        let now = Instant::now();
        let results: Vec<TargetResult> = selected
            .candidates
            .iter()
            .zip(slots)
            .map(|(candidate, slot)| match slot {
                Slot::Done(result) => result,
                Slot::Pending => unfinished(candidate.entry, stop, options.timeout, None),
                Slot::Running(since) => {
                    unfinished(candidate.entry, stop, options.timeout, Some(now - since))
                }
            })
            .collect();
        let result = summarise(results, stop, started_at, started.elapsed());
        self.observer
            .on_parallel_publish(result.outcome(), result.duration);
        if result.all_failed() {
            Err(FanoutError::AllFailed(Box::new(result)))
        } else {
            Ok(result)
        }
    }

    /// Runs the calls, at most `max_concurrent` at a time, until all finish, the deadline passes,
    /// or the token is cancelled. In-flight calls are dropped (and so cancelled) on the way out.
    async fn run_calls(
        &self,
        (alert, decided): (&EnrichedAlert, (AlertStatus, chrono::DateTime<chrono::Utc>)),
        to_call: &[(usize, &TargetEntry)],
        slots: &mut [Slot],
        options: &PublishOptions,
        deadline: Instant,
        cancel: Option<&CancellationToken>,
    ) -> Stop {
        let mut queue = to_call.iter();
        let mut running = FuturesUnordered::new();
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let cancelled = cancelled(cancel);
        tokio::pin!(cancelled);
        loop {
            // Top up to the limit. This is the only place calls start, so `running.len()` never
            // exceeds `max_concurrent`. Calls started in one top-up start at the same instant, so
            // the clock is read once per top-up that starts any, not once per call.
            let mut now = None;
            while running.len() < options.max_concurrent {
                let Some(&(index, entry)) = queue.next() else {
                    break;
                };
                let now = *now.get_or_insert_with(Instant::now);
                slots[index] = Slot::Running(now);
                let call = TargetCall::new(
                    entry,
                    options.per_target_timeout,
                    self.gate.as_ref(),
                    self.health.as_ref(),
                    self.observer.as_ref(),
                )
                .via(alert_core::AttemptPath::Sync);
                let call = if options.respect_circuit_breakers {
                    call
                } else {
                    call.ignoring_gate()
                };
                running.push(async move {
                    (
                        index,
                        entry,
                        call.call_at(alert, decided, Delivery::first(), now).await,
                    )
                });
            }
            if running.is_empty() {
                return Stop::Finished;
            }
            tokio::select! {
                biased;
                Some((index, entry, result)) = running.next() => {
                    slots[index] = Slot::Done(finished(entry, result));
                }
                () = &mut cancelled => return Stop::Cancelled,
                () = &mut sleep => return Stop::TimedOut,
            }
        }
    }
}

/// Where a candidate stands while the publish runs.
enum Slot {
    Pending,
    Running(Instant),
    Done(TargetResult),
}

/// Why the call loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Finished,
    TimedOut,
    Cancelled,
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

fn base_result(entry: &TargetEntry, outcome: TargetOutcome) -> TargetResult {
    TargetResult {
        target_name: entry.target.name.clone(),
        target_kind: entry.target.kind,
        outcome,
        skip_reason: None,
        status_code: None,
        error: None,
        attempts: 0,
        duration: Duration::ZERO,
    }
}

fn skipped(entry: &TargetEntry, reason: alert_core::SkipReason) -> TargetResult {
    TargetResult {
        skip_reason: Some(reason),
        ..base_result(entry, TargetOutcome::Skipped)
    }
}

fn finished(entry: &TargetEntry, result: CallResult) -> TargetResult {
    match result {
        CallResult::Called(outcome) => {
            let (outcome_kind, status_code, error) = match outcome.result {
                Ok(receipt) => (TargetOutcome::Success, receipt.status_code, None),
                Err(err) => (TargetOutcome::Failed, err.status_code, Some(err)),
            };
            TargetResult {
                status_code,
                error,
                attempts: 1,
                duration: outcome.duration,
                ..base_result(entry, outcome_kind)
            }
        }
        // The breaker was peeked as not open at selection, and its half-open trial slot was taken
        // by the time the call started: that is still a circuit-open skip.
        CallResult::Rejected { .. } => skipped(entry, alert_core::SkipReason::CircuitOpen),
    }
}

fn unfinished(
    entry: &TargetEntry,
    stop: Stop,
    timeout: Duration,
    ran_for: Option<Duration>,
) -> TargetResult {
    let stage = if ran_for.is_some() {
        "before the target answered"
    } else {
        "before the call started"
    };
    let error = match stop {
        Stop::Cancelled => PublishError::new(ErrorKind::Cancelled, format!("cancelled {stage}")),
        Stop::TimedOut | Stop::Finished => PublishError::new(
            ErrorKind::Timeout,
            format!(
                "overall timeout of {} ms elapsed {stage}",
                wire::duration_ms(timeout)
            ),
        ),
    };
    TargetResult {
        error: Some(error),
        attempts: u32::from(ran_for.is_some()),
        duration: ran_for.unwrap_or_default(),
        ..base_result(entry, TargetOutcome::Failed)
    }
}

fn summarise(
    results: Vec<TargetResult>,
    stop: Stop,
    started_at: chrono::DateTime<chrono::Utc>,
    duration: Duration,
) -> ParallelPublishResult {
    let count = |outcome| results.iter().filter(|r| r.outcome == outcome).count();
    let success_count = count(TargetOutcome::Success);
    let failure_count = count(TargetOutcome::Failed);
    let skipped_count = count(TargetOutcome::Skipped);
    ParallelPublishResult {
        total_targets: results.len(),
        success_count,
        failure_count,
        skipped_count,
        is_partial_success: success_count > 0 && failure_count > 0,
        timed_out: stop == Stop::TimedOut,
        cancelled: stop == Stop::Cancelled,
        started_at,
        duration,
        results,
    }
}

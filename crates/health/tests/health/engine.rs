//! The fan-out engine wired to this crate's health view and breakers (SPEC §2 and §4).
//!
//! The publisher is in-process, so the engine's own timing is irrelevant; the breakers' cool-down
//! runs on a [`TestClock`](alert_core::TestClock), so "after 30 s" is exact and instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use alert_core::TestClock;
use alert_core::{
    BoxFuture, CircuitGate, CircuitState, ErrorKind, HealthStatus, HealthView, PublishError,
    PublishRequest, Publisher, Receipt, SkipReason, StaticTargetSource, TargetSet,
};
use fanout::{FanoutEngine, FanoutError, ParallelPublishResult, PublishOptions, TargetOutcome};
use health::{BreakerConfig, CircuitBreakers, HealthConfig, HealthRegistry};
use test_support::{FakePublisher, FakeStats, alert, entry};
use tokio::sync::{Notify, Semaphore};

/// A publisher that fails or succeeds as told, and can hold a call until released.
#[derive(Debug)]
struct Switch {
    failing: AtomicBool,
    holding: AtomicBool,
    calls: AtomicUsize,
    entered: Notify,
    release: Semaphore,
}

impl Switch {
    fn failing() -> Self {
        Self {
            failing: AtomicBool::new(true),
            holding: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            entered: Notify::new(),
            release: Semaphore::new(0),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Publisher for Switch {
    fn publish<'a>(
        &'a self,
        _request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.holding.load(Ordering::SeqCst) {
                self.entered.notify_one();
                self.release
                    .acquire()
                    .await
                    .expect("the semaphore stays open")
                    .forget();
            }
            if self.failing.load(Ordering::SeqCst) {
                Err(PublishError::new(ErrorKind::Transient, "HTTP 503").with_status(503))
            } else {
                Ok(Receipt::with_status(202))
            }
        })
    }
}

struct Setup {
    clock: Arc<TestClock>,
    health: Arc<HealthRegistry>,
    breakers: Arc<CircuitBreakers>,
    flaky: Arc<Switch>,
    engine: FanoutEngine,
}

fn setup() -> Setup {
    let clock = Arc::new(TestClock::new());
    let health = Arc::new(HealthRegistry::new(HealthConfig::default()).unwrap());
    let breakers =
        Arc::new(CircuitBreakers::with_clock(BreakerConfig::default(), clock.clone()).unwrap());
    let flaky = Arc::new(Switch::failing());
    let targets = TargetSet::new(vec![
        entry("flaky", flaky.clone()),
        entry("steady", FakePublisher::accept(FakeStats::new()).shared()),
    ])
    .unwrap();
    let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(targets)))
        .health(health.clone())
        .gate(breakers.clone())
        .build();
    Setup {
        clock,
        health,
        breakers,
        flaky,
        engine,
    }
}

fn options() -> PublishOptions {
    PublishOptions::default().with_per_target_timeout(Duration::from_secs(5))
}

fn flaky(result: &ParallelPublishResult) -> (TargetOutcome, Option<SkipReason>) {
    let flaky = result.target("flaky").expect("flaky is a candidate");
    (flaky.outcome, flaky.skip_reason)
}

async fn publish_to_all(engine: &FanoutEngine) -> ParallelPublishResult {
    match engine
        .publish_to_all(&alert(&[("alertname", "QueueBacklog")]), &options())
        .await
    {
        Ok(result) => result,
        Err(FanoutError::AllFailed(result)) => *result,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn unhealthy_targets_are_skipped_then_the_breaker_opens_then_one_trial_goes_through() {
    let Setup {
        clock,
        health,
        breakers,
        flaky: switch,
        engine,
    } = setup();

    // Three failures through the engine make the target unhealthy (health threshold 3)...
    for _ in 0..3 {
        assert_eq!(
            flaky(&publish_to_all(&engine).await),
            (TargetOutcome::Failed, None)
        );
    }
    assert_eq!(health.status("flaky"), HealthStatus::Unhealthy);
    assert_eq!(breakers.state("flaky"), CircuitState::Closed);

    // ...so publish_to_healthy skips it, as `unhealthy`, and calls the rest.
    let result = engine
        .publish_to_healthy(&alert(&[("alertname", "QueueBacklog")]), &options())
        .await
        .unwrap();
    assert_eq!(
        flaky(&result),
        (TargetOutcome::Skipped, Some(SkipReason::Unhealthy))
    );
    assert_eq!(result.success_count, 1);
    assert_eq!(switch.calls(), 3);

    // publish_to_all still calls it; two more failures open the breaker (threshold 5)...
    for _ in 0..2 {
        assert_eq!(
            flaky(&publish_to_all(&engine).await),
            (TargetOutcome::Failed, None)
        );
    }
    assert_eq!(breakers.state("flaky"), CircuitState::Open);
    let snapshot = breakers.get("flaky").unwrap();
    assert_eq!(snapshot.consecutive_failures, 5);
    assert_eq!(snapshot.retry_in, Some(Duration::from_secs(30)));

    // ...after which it is skipped as `circuit_open`, without a call.
    assert_eq!(
        flaky(&publish_to_all(&engine).await),
        (TargetOutcome::Skipped, Some(SkipReason::CircuitOpen))
    );
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        flaky(&publish_to_all(&engine).await),
        (TargetOutcome::Skipped, Some(SkipReason::CircuitOpen))
    );
    assert_eq!(switch.calls(), 5);

    // After the cool-down the breaker is half-open. The target recovers, and its first call
    // (the trial) is held inside the publisher while a second publish runs: that one is refused
    // the trial slot and skips the target as `circuit_open`.
    clock.advance(Duration::from_secs(1));
    assert_eq!(breakers.state("flaky"), CircuitState::HalfOpen);
    switch.failing.store(false, Ordering::SeqCst);
    switch.holding.store(true, Ordering::SeqCst);
    let trial = publish_to_all(&engine);
    let concurrent = async {
        switch.entered.notified().await;
        let result = publish_to_all(&engine).await;
        switch.release.add_permits(1);
        result
    };
    let (trial, concurrent) = tokio::join!(trial, concurrent);
    assert_eq!(flaky(&trial), (TargetOutcome::Success, None));
    assert_eq!(
        flaky(&concurrent),
        (TargetOutcome::Skipped, Some(SkipReason::CircuitOpen))
    );
    assert_eq!(
        concurrent.target("steady").unwrap().outcome,
        TargetOutcome::Success
    );
    assert_eq!(switch.calls(), 6, "exactly one trial went through");

    let snapshot = breakers.get("flaky").unwrap();
    assert_eq!(snapshot.state, CircuitState::HalfOpen);
    assert_eq!(snapshot.half_open_successes, 1);
    assert!(!snapshot.trial_in_flight);
    assert_eq!(
        health.status("flaky"),
        HealthStatus::Healthy,
        "a success heals"
    );

    // A second successful trial closes the breaker, and calls flow freely again.
    switch.holding.store(false, Ordering::SeqCst);
    assert_eq!(
        flaky(&publish_to_all(&engine).await),
        (TargetOutcome::Success, None)
    );
    assert_eq!(breakers.state("flaky"), CircuitState::Closed);
    assert_eq!(
        flaky(&publish_to_all(&engine).await),
        (TargetOutcome::Success, None)
    );
    assert_eq!(switch.calls(), 8);
}

#[tokio::test]
async fn a_failed_trial_reopens_the_breaker() {
    let Setup {
        clock,
        breakers,
        flaky: switch,
        engine,
        ..
    } = setup();
    for _ in 0..5 {
        publish_to_all(&engine).await;
    }
    assert_eq!(breakers.state("flaky"), CircuitState::Open);
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        flaky(&publish_to_all(&engine).await),
        (TargetOutcome::Failed, None)
    );
    assert_eq!(breakers.state("flaky"), CircuitState::Open);
    assert_eq!(
        flaky(&publish_to_all(&engine).await),
        (TargetOutcome::Skipped, Some(SkipReason::CircuitOpen))
    );
    assert_eq!(switch.calls(), 6);
}

#[tokio::test]
async fn a_cancelled_trial_frees_the_slot() {
    let Setup {
        clock,
        breakers,
        flaky: switch,
        engine,
        ..
    } = setup();
    for _ in 0..5 {
        publish_to_all(&engine).await;
    }
    clock.advance(Duration::from_secs(30));
    switch.failing.store(false, Ordering::SeqCst);
    switch.holding.store(true, Ordering::SeqCst);

    // The trial is held in the publisher when its publish is dropped: TargetCall reports the
    // cancellation, a neutral outcome, which frees the slot without counting.
    {
        let trial = publish_to_all(&engine);
        tokio::pin!(trial);
        tokio::select! {
            _ = &mut trial => panic!("the held trial cannot finish"),
            () = switch.entered.notified() => {}
        }
    }
    let snapshot = breakers.get("flaky").unwrap();
    assert_eq!(snapshot.state, CircuitState::HalfOpen);
    assert!(!snapshot.trial_in_flight);
    assert_eq!(snapshot.half_open_successes, 0);

    switch.holding.store(false, Ordering::SeqCst);
    assert_eq!(
        flaky(&publish_to_all(&engine).await),
        (TargetOutcome::Success, None)
    );
    assert_eq!(breakers.get("flaky").unwrap().half_open_successes, 1);
}

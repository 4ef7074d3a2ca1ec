//! Passive input: real publish outcomes, through the fan-out engine, moving the health state.

use alert_core::{ErrorKind, HealthStatus, HealthView};
use fanout::{FanoutEngine, FanoutError, PublishOptions, TargetOutcome};
use test_support::{MockResponse, MockTarget, alert};

use crate::support::{Fixture, HttpPublisher, Spec, client, fast_config, fixture};

fn setup(mock: &MockTarget) -> (Fixture, FanoutEngine) {
    let client = client(None);
    let publisher = HttpPublisher::new(&client, &mock.url("/hook"), None);
    let fx = fixture(
        fast_config(),
        &client,
        vec![Spec::enabled("ops", publisher)],
    );
    let engine = FanoutEngine::builder(fx.source.clone())
        .health(fx.registry.clone())
        .build();
    (fx, engine)
}

/// Publishes once to every target, whatever its health, and returns the outcome for `ops`.
async fn publish(engine: &FanoutEngine) -> TargetOutcome {
    let result = match engine
        .publish_to_all(
            &alert(&[("alertname", "DiskFull")]),
            &PublishOptions::default(),
        )
        .await
    {
        Ok(result) => result,
        Err(FanoutError::AllFailed(result)) => *result,
        Err(other) => panic!("unexpected error: {other}"),
    };
    result.target("ops").expect("ops is a candidate").outcome
}

#[tokio::test]
async fn publish_outcomes_move_the_state() {
    let mock = MockTarget::start().await;
    let (fx, engine) = setup(&mock);
    assert_eq!(fx.registry.status("ops"), HealthStatus::Unknown);

    assert_eq!(publish(&engine).await, TargetOutcome::Success);
    assert_eq!(fx.registry.status("ops"), HealthStatus::Healthy);

    mock.respond(MockResponse::status(503));
    for n in 1..=2 {
        assert_eq!(publish(&engine).await, TargetOutcome::Failed);
        let health = fx.registry.get("ops").unwrap();
        assert_eq!(health.status, HealthStatus::Healthy, "after {n} failures");
        assert_eq!(health.consecutive_failures, n);
    }
    assert_eq!(publish(&engine).await, TargetOutcome::Failed);
    let health = fx.registry.get("ops").unwrap();
    assert_eq!(health.status, HealthStatus::Unhealthy);
    let failure = health.last_failure.unwrap();
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert_eq!(failure.error.status_code, Some(503));
    assert!(
        !failure.error.message.contains("/hook"),
        "{}",
        failure.error.message
    );

    // Routing now skips it: the only target is unhealthy.
    let skipped = engine
        .publish_to_healthy(
            &alert(&[("alertname", "DiskFull")]),
            &PublishOptions::default(),
        )
        .await;
    assert!(
        matches!(skipped, Err(FanoutError::NoHealthyTargets)),
        "{skipped:?}"
    );

    mock.respond(MockResponse::status(202));
    assert_eq!(publish(&engine).await, TargetOutcome::Success);
    let health = fx.registry.get("ops").unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
    assert_eq!(health.consecutive_failures, 0);
    assert_eq!(health.sample_count, 5);
    assert_eq!(health.success_rate, Some(0.4));
    assert_eq!(mock.requests().len(), 5);
}

#[tokio::test]
async fn a_429_leaves_the_state_unchanged() {
    let mock = MockTarget::start().await;
    let (fx, engine) = setup(&mock);
    assert_eq!(publish(&engine).await, TargetOutcome::Success);
    mock.respond(MockResponse::status(500));
    for _ in 0..2 {
        assert_eq!(publish(&engine).await, TargetOutcome::Failed);
    }
    let before = fx.registry.get("ops").unwrap();
    assert_eq!(before.consecutive_failures, 2);

    mock.respond(MockResponse::status(429).header("retry-after", "7"));
    for _ in 0..4 {
        assert_eq!(publish(&engine).await, TargetOutcome::Failed);
    }
    assert_eq!(
        fx.registry.get("ops").unwrap(),
        before,
        "rate limiting is not ill health"
    );
    assert_eq!(mock.requests().len(), 7, "every 429 was a real answer");

    // A 429 on a target never seen before does not even create an entry.
    let fresh = MockTarget::start().await;
    fresh.respond(MockResponse::status(429));
    let (fx, engine) = setup(&fresh);
    assert_eq!(publish(&engine).await, TargetOutcome::Failed);
    assert_eq!(fx.registry.get("ops"), None);
    assert_eq!(fx.registry.status("ops"), HealthStatus::Unknown);
    assert_eq!(fresh.requests().len(), 1);
}

#[tokio::test]
async fn probes_and_publishes_feed_one_state() {
    let mock = MockTarget::start().await;
    let client = client(None);
    let url = mock.url("/hook");
    let publisher = HttpPublisher::new(&client, &url, Some(crate::support::probe(&url, None)));
    let fx = fixture(
        fast_config(),
        &client,
        vec![Spec::enabled("ops", publisher)],
    );
    let engine = FanoutEngine::builder(fx.source.clone())
        .health(fx.registry.clone())
        .build();

    mock.respond(MockResponse::status(503));
    for _ in 0..2 {
        publish(&engine).await;
    }
    // The probe gets an answer (503 is an answer): reachable, so the failure count resets.
    let health = fx.prober.check_now("ops").await.unwrap();
    assert_eq!(health.consecutive_failures, 0);
    assert_eq!(health.status, HealthStatus::Healthy);
    publish(&engine).await;
    assert_eq!(fx.registry.get("ops").unwrap().consecutive_failures, 1);
}

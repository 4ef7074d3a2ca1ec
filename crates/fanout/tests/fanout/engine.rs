//! The engine against in-process fakes, with tokio's clock paused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alert_core::{
    CallOutcome, CircuitState, DisabledReason, ErrorKind, GateOutcome, HealthStatus,
    ParallelOutcome, PermanentReason, PublishObserver, SkipReason, StaticTargetSource, Target,
    TargetEntry, TargetSet,
};
use fanout::{
    CancellationToken, FanoutEngine, FanoutError, OptionsError, PublishOptions, Selection,
    TargetOutcome,
};
use test_support::{FakeGate, FakePublisher, FakeStats, MapHealth, alert, entry};

const MS: Duration = Duration::from_millis(1);

fn engine(entries: Vec<TargetEntry>) -> FanoutEngine {
    FanoutEngine::builder(Arc::new(StaticTargetSource::new(
        TargetSet::new(entries).unwrap(),
    )))
    .build()
}

fn accept(stats: &Arc<FakeStats>, name: &str, latency: Duration) -> TargetEntry {
    entry(
        name,
        FakePublisher::accept(stats.clone())
            .with_latency(latency)
            .shared(),
    )
}

fn failing(stats: &Arc<FakeStats>, name: &str, status: u16) -> TargetEntry {
    entry(
        name,
        FakePublisher::fail(stats.clone(), ErrorKind::Transient, status).shared(),
    )
}

fn hanging(stats: &Arc<FakeStats>, name: &str) -> TargetEntry {
    entry(name, FakePublisher::hang(stats.clone()).shared())
}

#[tokio::test(start_paused = true)]
async fn all_succeed_in_parallel() {
    let stats = FakeStats::new();
    let engine = engine(
        (0..5)
            .map(|i| accept(&stats, &format!("t{i}"), 50 * MS))
            .collect(),
    );
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (
            result.total_targets,
            result.success_count,
            result.failure_count
        ),
        (5, 5, 0)
    );
    assert!(result.all_succeeded() && result.success() && !result.is_partial_success);
    assert_eq!(result.success_rate(), 1.0);
    // Five 50 ms targets in parallel take 50 ms, not 250 ms.
    assert_eq!(result.duration, 50 * MS);
    assert_eq!(stats.peak_in_flight(), 5);
    for target in &result.results {
        assert_eq!(
            (target.outcome, target.attempts, target.status_code),
            (TargetOutcome::Success, 1, Some(202))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn partial_success() {
    let stats = FakeStats::new();
    let engine = engine(vec![
        accept(&stats, "good", MS),
        failing(&stats, "bad", 503),
    ]);
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap();
    assert!(
        result.is_partial_success
            && result.success()
            && !result.all_succeeded()
            && !result.all_failed()
    );
    assert_eq!(result.success_rate(), 0.5);
    assert_eq!(result.outcome(), ParallelOutcome::Partial);
    let bad = result.target("bad").unwrap();
    assert_eq!(bad.outcome, TargetOutcome::Failed);
    assert_eq!(bad.status_code, Some(503));
    assert_eq!(bad.error.as_ref().unwrap().kind, ErrorKind::Transient);
}

#[tokio::test(start_paused = true)]
async fn all_failed_carries_the_result() {
    let stats = FakeStats::new();
    let engine = engine(vec![
        failing(&stats, "a", 500),
        entry(
            "b",
            FakePublisher::fail(
                stats.clone(),
                ErrorKind::Permanent {
                    reason: PermanentReason::Auth,
                },
                401,
            )
            .shared(),
        ),
    ]);
    let err = engine
        .publish_to_all(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap_err();
    let FanoutError::AllFailed(result) = &err else {
        panic!("expected AllFailed, got {err:?}")
    };
    assert_eq!((result.failure_count, result.success_count), (2, 0));
    assert!(result.all_failed());
    assert_eq!(result.outcome(), ParallelOutcome::Failure);
    assert_eq!(
        result.target("b").unwrap().error.as_ref().unwrap().kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Auth
        }
    );
    assert!(err.result().is_some());
}

#[tokio::test(start_paused = true)]
async fn unknown_targets_send_nothing() {
    let stats = FakeStats::new();
    let engine = engine(vec![accept(&stats, "known", MS)]);
    let err = engine
        .publish_to(
            &alert(&[("a", "b")]),
            &["known", "ghost"],
            &PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FanoutError::UnknownTargets(names) if names == &["ghost".to_owned()]),
        "{err:?}"
    );
    assert_eq!(stats.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_enabled_and_no_healthy_targets() {
    let stats = FakeStats::new();
    let mut off = accept(&stats, "off", MS);
    off.target.disabled = Some(DisabledReason::SecretUnavailable);
    let err = engine(vec![off])
        .publish_to_all(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FanoutError::NoEnabledTargets), "{err:?}");

    let health = Arc::new(MapHealth::default());
    health.set("sick", HealthStatus::Unhealthy);
    let set = TargetSet::new(vec![accept(&stats, "sick", MS)]).unwrap();
    let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(set)))
        .health(health)
        .build();
    let err = engine
        .publish_to_healthy(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FanoutError::NoHealthyTargets), "{err:?}");
    assert_eq!(stats.calls(), 0);
    // publish_to_all ignores health and calls it.
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(result.success_count, 1);
}

#[tokio::test(start_paused = true)]
async fn invalid_options_are_rejected() {
    let stats = FakeStats::new();
    let engine = engine(vec![accept(&stats, "t", MS)]);
    let cases = [
        (
            PublishOptions::default().with_timeout(Duration::ZERO),
            OptionsError::ZeroTimeout,
        ),
        (
            PublishOptions::default().with_per_target_timeout(Duration::ZERO),
            OptionsError::ZeroPerTargetTimeout,
        ),
        (
            PublishOptions::default().with_max_concurrent(0),
            OptionsError::MaxConcurrentOutOfRange(0),
        ),
        (
            PublishOptions::default().with_max_concurrent(1001),
            OptionsError::MaxConcurrentOutOfRange(1001),
        ),
    ];
    for (options, expected) in cases {
        let err = engine
            .publish_to_all(&alert(&[("a", "b")]), &options)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FanoutError::InvalidOptions(e) if *e == expected),
            "{err:?}"
        );
    }
    assert!(
        PublishOptions::default()
            .with_max_concurrent(1000)
            .validate()
            .is_ok()
    );
    assert_eq!(stats.calls(), 0);
    let parsed: PublishOptions =
        serde_json::from_str(r#"{"timeout_ms": 500, "max_concurrent": 3}"#).unwrap();
    assert_eq!((parsed.timeout, parsed.max_concurrent), (500 * MS, 3));
    assert!(serde_json::from_str::<PublishOptions>(r#"{"bogus": 1}"#).is_err());
}

#[tokio::test(start_paused = true)]
async fn per_target_timeout() {
    let stats = FakeStats::new();
    let mut slow_override = accept(&stats, "override", 300 * MS);
    slow_override.target =
        Target::new(slow_override.target.name.clone(), slow_override.target.kind)
            .with_timeout(500 * MS);
    let engine = engine(vec![
        accept(&stats, "fast", 10 * MS),
        hanging(&stats, "stuck"),
        slow_override,
    ]);
    let options = PublishOptions::default().with_per_target_timeout(200 * MS);
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &options)
        .await
        .unwrap();
    assert!(!result.timed_out);
    let stuck = result.target("stuck").unwrap();
    assert_eq!(stuck.error.as_ref().unwrap().kind, ErrorKind::Timeout);
    assert_eq!(stuck.duration, 200 * MS);
    assert_eq!(stuck.attempts, 1);
    // The target's own timeout (500 ms) overrides the option (200 ms), so its 300 ms answer counts.
    assert_eq!(
        result.target("override").unwrap().outcome,
        TargetOutcome::Success
    );
    assert_eq!(
        result.target("fast").unwrap().outcome,
        TargetOutcome::Success
    );
    assert_eq!(stats.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn overall_timeout_marks_unfinished_targets() {
    let stats = FakeStats::new();
    let engine = engine(vec![
        accept(&stats, "fast", 10 * MS),
        hanging(&stats, "stuck-1"),
        hanging(&stats, "stuck-2"),
        accept(&stats, "never-started", 10 * MS),
    ]);
    // With room for three at once, "never-started" waits behind the two hanging calls.
    let options = PublishOptions::default()
        .with_timeout(Duration::from_secs(1))
        .with_max_concurrent(3);
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &options)
        .await
        .unwrap();
    assert!(result.timed_out);
    assert_eq!(result.duration, Duration::from_secs(1));
    assert_eq!(
        result.target("fast").unwrap().outcome,
        TargetOutcome::Success
    );
    // "fast" freed its slot after 10 ms, so "never-started" did run.
    assert_eq!(
        result.target("never-started").unwrap().outcome,
        TargetOutcome::Success
    );
    for name in ["stuck-1", "stuck-2"] {
        let stuck = result.target(name).unwrap();
        assert_eq!(stuck.outcome, TargetOutcome::Failed);
        assert_eq!(stuck.error.as_ref().unwrap().kind, ErrorKind::Timeout);
        assert_eq!(stuck.attempts, 1);
    }
    assert_eq!(
        stats.in_flight(),
        0,
        "timed-out calls are dropped, not left running"
    );
    assert_eq!(stats.cancelled(), 2);

    // When targets are still queued at the deadline, they are failed with attempts 0.
    let stats = FakeStats::new();
    let second = self::engine(vec![hanging(&stats, "h"), accept(&stats, "queued", MS)]);
    let options = PublishOptions::default()
        .with_timeout(100 * MS)
        .with_max_concurrent(1);
    let err = second
        .publish_to_all(&alert(&[("a", "b")]), &options)
        .await
        .unwrap_err();
    let result = err.result().unwrap();
    assert!(result.timed_out);
    let queued = result.target("queued").unwrap();
    assert_eq!(
        (queued.attempts, queued.error.as_ref().unwrap().kind),
        (0, ErrorKind::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_cancels_in_flight_publishes() {
    let stats = FakeStats::new();
    let gate = Arc::new(FakeGate::default());
    gate.set("t0", CircuitState::HalfOpen);
    let set = TargetSet::new(
        (0..10)
            .map(|i| accept(&stats, &format!("t{i}"), Duration::from_secs(5)))
            .collect(),
    )
    .unwrap();
    let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(set)))
        .gate(gate.clone())
        .build();
    let alert = alert(&[("a", "b")]);
    let options = PublishOptions::default();
    let publish = engine.publish_to_all(&alert, &options);
    // The outer timeout drops the engine's future after 100 ms.
    assert!(tokio::time::timeout(100 * MS, publish).await.is_err());
    assert_eq!(stats.calls(), 10);
    assert_eq!(stats.cancelled(), 10, "every drop guard fired");
    assert_eq!(stats.in_flight(), 0);
    assert_eq!(stats.completed(), 0);
    // The half-open trial slot was released as a neutral outcome, not leaked.
    let recorded = gate.recorded();
    assert_eq!(recorded.len(), 10);
    assert!(recorded.contains(&("t0".to_owned(), true, GateOutcome::Neutral)));
}

#[tokio::test(start_paused = true)]
async fn cancellation_token_marks_unfinished_cancelled() {
    let stats = FakeStats::new();
    let engine = engine(vec![accept(&stats, "fast", MS), hanging(&stats, "stuck")]);
    let token = CancellationToken::new();
    let canceller = {
        let token = token.clone();
        async move {
            tokio::time::sleep(50 * MS).await;
            token.cancel();
        }
    };
    let alert = alert(&[("a", "b")]);
    let options = PublishOptions::default();
    let (result, ()) = tokio::join!(
        engine.publish(&alert, &Selection::All, &options, Some(&token)),
        canceller
    );
    let result = result.unwrap();
    assert!(result.cancelled && !result.timed_out);
    assert_eq!(
        result.target("stuck").unwrap().error.as_ref().unwrap().kind,
        ErrorKind::Cancelled
    );
    assert_eq!(stats.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn max_concurrent_is_never_exceeded() {
    let stats = FakeStats::new();
    let engine = engine(
        (0..200)
            .map(|i| accept(&stats, &format!("t{i}"), 10 * MS))
            .collect(),
    );
    let options = PublishOptions::default().with_max_concurrent(7);
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &options)
        .await
        .unwrap();
    assert_eq!(result.success_count, 200);
    assert_eq!(stats.calls(), 200);
    assert_eq!(
        stats.peak_in_flight(),
        7,
        "the limit is reached and never exceeded"
    );
    // 200 calls of 10 ms, 7 at a time: ceil(200 / 7) = 29 rounds.
    assert_eq!(result.duration, 290 * MS);
}

#[tokio::test(start_paused = true)]
async fn breakers_and_observers_see_every_call() {
    #[derive(Default)]
    struct Counting {
        started: AtomicUsize,
        finished: AtomicUsize,
        skipped: AtomicUsize,
        publishes: AtomicUsize,
    }
    impl PublishObserver for Counting {
        fn on_call_started(&self, _: &Target) {
            self.started.fetch_add(1, Ordering::SeqCst);
        }
        fn on_call_finished(&self, _: &Target, _: &CallOutcome) {
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
        fn on_skipped(&self, _: &Target, reason: SkipReason) {
            assert_eq!(reason, SkipReason::CircuitOpen);
            self.skipped.fetch_add(1, Ordering::SeqCst);
        }
        fn on_parallel_publish(&self, outcome: ParallelOutcome, _: Duration) {
            assert_eq!(outcome, ParallelOutcome::Partial);
            self.publishes.fetch_add(1, Ordering::SeqCst);
        }
    }
    let stats = FakeStats::new();
    let gate = Arc::new(FakeGate::default());
    gate.set("open", CircuitState::Open);
    gate.set("trial", CircuitState::HalfOpen);
    let health = Arc::new(MapHealth::default());
    let observer = Arc::new(Counting::default());
    let set = TargetSet::new(vec![
        accept(&stats, "open", MS),
        accept(&stats, "trial", MS),
        failing(&stats, "bad", 500),
    ])
    .unwrap();
    let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(set)))
        .gate(gate.clone())
        .health(health.clone())
        .observer(observer.clone())
        .build();
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(
        result.target("open").unwrap().skip_reason,
        Some(SkipReason::CircuitOpen)
    );
    assert_eq!(
        (
            result.skipped_count,
            result.success_count,
            result.failure_count
        ),
        (1, 1, 1)
    );
    let mut recorded = gate.recorded();
    recorded.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        recorded,
        vec![
            ("bad".to_owned(), false, GateOutcome::Failure),
            ("trial".to_owned(), true, GateOutcome::Success)
        ]
    );
    assert_eq!(health.records(), 2);
    assert_eq!(observer.started.load(Ordering::SeqCst), 2);
    assert_eq!(observer.finished.load(Ordering::SeqCst), 2);
    assert_eq!(observer.skipped.load(Ordering::SeqCst), 1);
    assert_eq!(observer.publishes.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn result_serialises_readably() {
    let stats = FakeStats::new();
    let mut off = accept(&stats, "off", MS);
    off.target.disabled = Some(DisabledReason::Configured);
    let engine = engine(vec![
        accept(&stats, "good", 20 * MS),
        entry(
            "limited",
            FakePublisher::fail(
                stats.clone(),
                ErrorKind::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                },
                429,
            )
            .shared(),
        ),
        off,
    ]);
    let result = engine
        .publish_to_all(&alert(&[("a", "b")]), &PublishOptions::default())
        .await
        .unwrap();
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["total_targets"], 3);
    assert_eq!(json["success_count"], 1);
    assert_eq!(json["failure_count"], 1);
    assert_eq!(json["skipped_count"], 1);
    assert_eq!(json["is_partial_success"], true);
    assert_eq!(json["timed_out"], false);
    assert_eq!(json["duration_ms"], 20);
    let started_at = json["started_at"].as_str().unwrap();
    assert_eq!(
        started_at.len(),
        "2026-01-01T00:00:00.000Z".len(),
        "{started_at}"
    );
    assert!(
        started_at.ends_with('Z') && started_at.as_bytes()[19] == b'.',
        "{started_at}"
    );
    let results = json["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        serde_json::json!({"target_name": "good", "target_kind": "webhook", "outcome": "success",
                           "status_code": 202, "attempts": 1, "duration_ms": 20})
    );
    assert_eq!(
        results[1],
        serde_json::json!({"target_name": "limited", "target_kind": "webhook", "outcome": "failed",
                           "status_code": 429, "attempts": 1, "duration_ms": 0,
                           "error": {"kind": "rate_limited", "retry_after_ms": 3000, "status_code": 429,
                                     "message": "fake failure 429"}})
    );
    assert_eq!(
        results[2],
        serde_json::json!({"target_name": "off", "target_kind": "webhook", "outcome": "skipped",
                           "skip_reason": "disabled", "attempts": 0, "duration_ms": 0})
    );
    // It round-trips, so clients in Rust can read it back.
    let back: fanout::ParallelPublishResult = serde_json::from_value(json).unwrap();
    assert_eq!(back.results.len(), 3);
}

//! `select_targets`: every cell of SPEC §2's selection table, the health strategies, and unknown
//! health failing open.

use alert_core::{CircuitState, DisabledReason, HealthStatus, Matcher, SkipReason, TargetSet};
use fanout::{HealthStrategy, SelectError, Selection, SelectionPolicy, select_targets};
use test_support::{FakeGate, FakePublisher, FakeStats, MapHealth, alert, entry};

/// The condition a single target is put in.
#[derive(Clone, Copy, Debug)]
enum Condition {
    Plain,
    Disabled,
    FilterMismatch,
    Unhealthy,
    Degraded,
    BreakerOpen,
    BreakerHalfOpen,
}

/// Builds a set of one "subject" target in `condition`, plus an always-callable "other" target so
/// that a skipped subject does not turn selection into an error.
fn world(condition: Condition) -> (TargetSet, MapHealth, FakeGate) {
    let stats = FakeStats::new();
    let mut subject = entry("subject", FakePublisher::accept(stats.clone()).shared());
    let other = entry("other", FakePublisher::accept(stats).shared());
    let health = MapHealth::default();
    let gate = FakeGate::default();
    match condition {
        Condition::Plain => {}
        Condition::Disabled => subject.target.disabled = Some(DisabledReason::Configured),
        Condition::FilterMismatch => {
            subject.target.filter = vec!["severity=\"critical\"".parse::<Matcher>().unwrap()].into()
        }
        Condition::Unhealthy => health.set("subject", HealthStatus::Unhealthy),
        Condition::Degraded => health.set("subject", HealthStatus::Degraded),
        Condition::BreakerOpen => gate.set("subject", CircuitState::Open),
        Condition::BreakerHalfOpen => gate.set("subject", CircuitState::HalfOpen),
    }
    (TargetSet::new(vec![subject, other]).unwrap(), health, gate)
}

fn subject_decision(
    selection: &Selection,
    condition: Condition,
    strategy: HealthStrategy,
) -> Option<SkipReason> {
    let (targets, health, gate) = world(condition);
    let policy = SelectionPolicy {
        health_strategy: strategy,
        respect_circuit_breakers: true,
    };
    let selected = select_targets(
        &alert(&[("alertname", "X"), ("severity", "warning")]).alert,
        &targets,
        selection,
        policy,
        &health,
        &gate,
    )
    .unwrap();
    let candidate = selected
        .candidates
        .iter()
        .find(|c| c.entry.target.name.as_str() == "subject")
        .unwrap();
    candidate.skip
}

#[test]
fn selection_table_every_cell() {
    let named = Selection::Named(vec!["subject".into(), "other".into()]);
    let strategy = HealthStrategy::SkipUnhealthyAndDegraded;
    use Condition::*;
    // (selection, condition, expected skip) — one row per cell of the table, plus the plain case.
    let table: Vec<(&Selection, Condition, Option<SkipReason>)> = vec![
        (&named, Plain, None),
        (&named, Disabled, Some(SkipReason::Disabled)),
        (&named, FilterMismatch, Some(SkipReason::Filtered)),
        (&named, Unhealthy, Some(SkipReason::Unhealthy)),
        (&named, Degraded, Some(SkipReason::Degraded)),
        (&named, BreakerOpen, Some(SkipReason::CircuitOpen)),
        (&named, BreakerHalfOpen, None),
        (&Selection::All, Plain, None),
        (&Selection::All, Disabled, Some(SkipReason::Disabled)),
        (&Selection::All, FilterMismatch, Some(SkipReason::Filtered)),
        (&Selection::All, Unhealthy, None),
        (&Selection::All, Degraded, None),
        (&Selection::All, BreakerOpen, Some(SkipReason::CircuitOpen)),
        (&Selection::All, BreakerHalfOpen, None),
        (&Selection::Healthy, Plain, None),
        (&Selection::Healthy, Disabled, Some(SkipReason::Disabled)),
        (
            &Selection::Healthy,
            FilterMismatch,
            Some(SkipReason::Filtered),
        ),
        (&Selection::Healthy, Unhealthy, Some(SkipReason::Unhealthy)),
        (&Selection::Healthy, Degraded, Some(SkipReason::Degraded)),
        (
            &Selection::Healthy,
            BreakerOpen,
            Some(SkipReason::CircuitOpen),
        ),
        (&Selection::Healthy, BreakerHalfOpen, None),
    ];
    for (selection, condition, expected) in table {
        assert_eq!(
            subject_decision(selection, condition, strategy),
            expected,
            "{selection:?} with {condition:?}"
        );
    }
}

#[test]
fn health_strategies_and_unknown_fails_open() {
    use HealthStatus::*;
    use HealthStrategy::*;
    let table = [
        (SkipUnhealthy, Unknown, None),
        (SkipUnhealthy, Healthy, None),
        (SkipUnhealthy, Degraded, None),
        (SkipUnhealthy, Unhealthy, Some(SkipReason::Unhealthy)),
        (SkipUnhealthyAndDegraded, Unknown, None),
        (SkipUnhealthyAndDegraded, Healthy, None),
        (
            SkipUnhealthyAndDegraded,
            Degraded,
            Some(SkipReason::Degraded),
        ),
        (
            SkipUnhealthyAndDegraded,
            Unhealthy,
            Some(SkipReason::Unhealthy),
        ),
        (PublishToAll, Unknown, None),
        (PublishToAll, Healthy, None),
        (PublishToAll, Degraded, None),
        (PublishToAll, Unhealthy, None),
    ];
    for (strategy, status, expected) in table {
        for selection in [
            Selection::Healthy,
            Selection::Named(vec!["subject".into(), "other".into()]),
        ] {
            let (targets, health, gate) = world(Condition::Plain);
            health.set("subject", status);
            let policy = SelectionPolicy {
                health_strategy: strategy,
                respect_circuit_breakers: true,
            };
            let selected = select_targets(
                &alert(&[("a", "b")]).alert,
                &targets,
                &selection,
                policy,
                &health,
                &gate,
            )
            .unwrap();
            let skip = selected
                .candidates
                .iter()
                .find(|c| c.entry.target.name.as_str() == "subject")
                .unwrap()
                .skip;
            assert_eq!(skip, expected, "{strategy:?} {status:?} {selection:?}");
        }
    }
}

#[test]
fn breakers_can_be_ignored() {
    let (targets, health, gate) = world(Condition::BreakerOpen);
    let policy = SelectionPolicy {
        health_strategy: HealthStrategy::default(),
        respect_circuit_breakers: false,
    };
    let selected = select_targets(
        &alert(&[("a", "b")]).alert,
        &targets,
        &Selection::All,
        policy,
        &health,
        &gate,
    )
    .unwrap();
    assert_eq!(selected.to_call().count(), 2);
}

#[test]
fn first_applicable_reason_wins() {
    // Disabled and filtered and unhealthy: disabled is reported.
    let (_, health, gate) = world(Condition::Unhealthy);
    let stats = FakeStats::new();
    let mut subject = entry("subject", FakePublisher::accept(stats.clone()).shared());
    subject.target.disabled = Some(DisabledReason::SecretUnavailable);
    subject.target.filter = vec!["x=\"y\"".parse::<Matcher>().unwrap()].into();
    let targets = TargetSet::new(vec![
        subject,
        entry("other", FakePublisher::accept(stats).shared()),
    ])
    .unwrap();
    let policy = SelectionPolicy {
        health_strategy: HealthStrategy::default(),
        respect_circuit_breakers: true,
    };
    let selected = select_targets(
        &alert(&[("a", "b")]).alert,
        &targets,
        &Selection::Healthy,
        policy,
        &health,
        &gate,
    )
    .unwrap();
    assert_eq!(
        selected.skipped().next().map(|(_, r)| r),
        Some(SkipReason::Disabled)
    );
}

#[test]
fn selection_errors() {
    let stats = FakeStats::new();
    let policy = SelectionPolicy {
        health_strategy: HealthStrategy::default(),
        respect_circuit_breakers: true,
    };
    let health = MapHealth::default();
    let gate = FakeGate::default();
    let a = alert(&[("a", "b")]);
    let one = TargetSet::new(vec![entry(
        "only",
        FakePublisher::accept(stats.clone()).shared(),
    )])
    .unwrap();

    let err = select_targets(
        &a.alert,
        &one,
        &Selection::Named(vec![
            "nope".into(),
            "only".into(),
            "also-nope".into(),
            "nope".into(),
        ]),
        policy,
        &health,
        &gate,
    )
    .unwrap_err();
    assert_eq!(
        err,
        SelectError::UnknownTargets(vec!["also-nope".into(), "nope".into()])
    );
    assert_eq!(
        select_targets(
            &a.alert,
            &one,
            &Selection::Named(vec![]),
            policy,
            &health,
            &gate
        )
        .unwrap_err(),
        SelectError::NoTargetsNamed
    );
    assert_eq!(
        select_targets(
            &a.alert,
            &TargetSet::default(),
            &Selection::All,
            policy,
            &health,
            &gate
        )
        .unwrap_err(),
        SelectError::NoEnabledTargets
    );

    let mut disabled = entry("off", FakePublisher::accept(stats.clone()).shared());
    disabled.target.disabled = Some(DisabledReason::Configured);
    let only_disabled = TargetSet::new(vec![disabled]).unwrap();
    assert_eq!(
        select_targets(
            &a.alert,
            &only_disabled,
            &Selection::Healthy,
            policy,
            &health,
            &gate
        )
        .unwrap_err(),
        SelectError::NoEnabledTargets
    );

    health.set("only", HealthStatus::Unhealthy);
    assert_eq!(
        select_targets(&a.alert, &one, &Selection::Healthy, policy, &health, &gate).unwrap_err(),
        SelectError::NoHealthyTargets
    );
    // publish_to_all ignores health, so the same target is called.
    assert_eq!(
        select_targets(&a.alert, &one, &Selection::All, policy, &health, &gate)
            .unwrap()
            .to_call()
            .count(),
        1
    );
    // Every enabled target filtered out: not an error, just nothing to call.
    let mut filtered = entry("filtered", FakePublisher::accept(stats).shared());
    filtered.target.filter = vec!["a=\"c\"".parse::<Matcher>().unwrap()].into();
    let set = TargetSet::new(vec![filtered]).unwrap();
    let selected = select_targets(&a.alert, &set, &Selection::All, policy, &health, &gate).unwrap();
    assert_eq!(selected.to_call().count(), 0);
    assert_eq!(
        selected.skipped().next().map(|(_, r)| r),
        Some(SkipReason::Filtered)
    );
}

#[test]
fn a_name_given_twice_is_called_once() {
    let (targets, health, gate) = world(Condition::Plain);
    let policy = SelectionPolicy {
        health_strategy: HealthStrategy::default(),
        respect_circuit_breakers: true,
    };
    let selection = Selection::Named(vec!["subject".into(), "subject".into()]);
    let selected = select_targets(
        &alert(&[("a", "b")]).alert,
        &targets,
        &selection,
        policy,
        &health,
        &gate,
    )
    .unwrap();
    assert_eq!(selected.candidates.len(), 1);
}

//! Hand-written timelines, each over an hour of virtual time or more, including the two ways
//! alertpub used to page wrongly.

use timeline::{End, Fault, Occurrence, Source, Timeline, Window};

use crate::{run_and_check, statuses};

const HOUR: u32 = 3600;
const PROMETHEUS: Source = Source::ApiV2 { explicit_end: true };

fn one_alert(source: Source, start: u32, end: End, faults: Vec<Window>, length: u32) -> Timeline {
    Timeline {
        targets: 1,
        occurrences: vec![Occurrence {
            alert: 0,
            source,
            start,
            end,
        }],
        faults,
        restarts: vec![],
        length,
    }
}

fn down(target: u8, from: u32, until: u32) -> Window {
    Window {
        target,
        from,
        until,
        fault: Fault::Down,
    }
}

/// Bug 1: Prometheus keeps the alert alive (`endsAt` 4 minutes ahead, re-sent every minute)
/// while the target is down for 15 minutes. The retries and the delivery after the outage are
/// firings: never a resolve.
#[test]
fn a_firing_delayed_by_an_outage_past_its_end_is_still_a_firing() {
    let t = one_alert(PROMETHEUS, 0, End::Never, vec![down(0, 0, 900)], 2 * HOUR);
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing"]);
}

/// Bug 2: an alert from the Alertmanager webhook fires for three hours, far past
/// `resolve_timeout` (5 minutes); Alertmanager does not re-send it in that time. It is never
/// resolved on our side.
#[test]
fn a_webhook_alert_stays_firing_past_resolve_timeout() {
    let t = one_alert(Source::Webhook, 60, End::Never, vec![], 3 * HOUR);
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing"]);
}

/// Alertmanager sends the resolve itself after two hours: the target gets it then, not before.
#[test]
fn a_webhook_alert_resolves_when_alertmanager_resolves_it() {
    let t = one_alert(
        Source::Webhook,
        0,
        End::Resolved(2 * HOUR),
        vec![],
        3 * HOUR,
    );
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing", "resolved"]);
    assert!(received[1].at >= f64::from(2 * HOUR));
}

/// An API v2 alert sent without `endsAt` goes silent after half an hour: it resolves on its own
/// once `resolve_timeout` passes after its last send.
#[test]
fn an_api_alert_that_goes_silent_auto_resolves_after_resolve_timeout() {
    let t = one_alert(
        Source::ApiV2 {
            explicit_end: false,
        },
        0,
        End::Silent(1800),
        vec![],
        2 * HOUR,
    );
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing", "resolved"]);
    // The last send was at 1740 s; it lapses 300 s later, and the sweeper runs once a second.
    assert!((2040.0..2043.0).contains(&received[1].at), "{received:?}");
}

/// The alert resolves during a 30-minute outage that began after its firing was delivered: the
/// resolve reaches the target when it is back.
#[test]
fn a_resolve_during_an_outage_arrives_after_it() {
    let t = one_alert(
        PROMETHEUS,
        0,
        End::Resolved(1200),
        vec![down(0, 600, 2400)],
        2 * HOUR,
    );
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing", "resolved"]);
    assert!(received[1].at >= 2400.0);
}

/// 429 without `Retry-After` (as PagerDuty answers) for 20 minutes: the lane backs off from
/// 30 s, growing, instead of re-hitting the target every second.
#[test]
fn a_429_without_retry_after_backs_off_and_the_firing_arrives() {
    let limited = Window {
        target: 0,
        from: 0,
        until: 1200,
        fault: Fault::RateLimited(None),
    };
    let t = one_alert(PROMETHEUS, 0, End::Never, vec![limited], 2 * HOUR);
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing"]);
}

/// 429 with `Retry-After: 120` for 10 minutes, then the alert resolves after the limit lifts.
#[test]
fn a_429_with_retry_after_delays_and_keeps_the_order() {
    let limited = Window {
        target: 0,
        from: 0,
        until: 600,
        fault: Fault::RateLimited(Some(120)),
    };
    let t = one_alert(PROMETHEUS, 0, End::Resolved(1800), vec![limited], 2 * HOUR);
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing", "resolved"]);
}

/// The target answers after 15 s (past the 10 s attempt timeout) for half an hour: it takes in
/// retries of the one delivery (one idempotency key), and never a second firing.
#[test]
fn a_slow_target_gets_retries_of_one_delivery_only() {
    let slow = Window {
        target: 0,
        from: 0,
        until: 1800,
        fault: Fault::Slow(15),
    };
    let t = one_alert(PROMETHEUS, 0, End::Resolved(2 * HOUR), vec![slow], 3 * HOUR);
    let received = run_and_check(&t);
    let keys: std::collections::BTreeSet<_> = received
        .iter()
        .filter(|r| r.status == "firing")
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(keys.len(), 1, "{received:?}");
}

/// `kill -9` in the middle of an outage, and again after it: the firing is delivered once the
/// target is back, and the resolve after it.
#[test]
fn kill_9_during_an_outage_loses_nothing() {
    let mut t = one_alert(
        PROMETHEUS,
        0,
        End::Resolved(3000),
        vec![down(0, 0, 1200)],
        2 * HOUR,
    );
    t.restarts = vec![600, 1500];
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["firing", "resolved"]);
}

/// The alert fires, resolves and fires again (a new occurrence) while the target is down: when
/// it is back, the target's last state is the second firing.
#[test]
fn a_flapping_alert_ends_in_its_last_state() {
    let t = Timeline {
        targets: 1,
        occurrences: vec![
            Occurrence {
                alert: 0,
                source: PROMETHEUS,
                start: 0,
                end: End::Resolved(900),
            },
            Occurrence {
                alert: 0,
                source: PROMETHEUS,
                start: 1500,
                end: End::Never,
            },
        ],
        faults: vec![down(0, 600, 2400)],
        restarts: vec![],
        length: 2 * HOUR,
    };
    let received = run_and_check(&t);
    let last = received.last().expect("deliveries");
    assert_eq!((last.status.as_str(), last.starts_at), ("firing", 1500));
}

/// The known gap (see the crate docs): an occurrence that fires and resolves inside one outage
/// reaches the target as a lone resolve. This pins today's behaviour so a fix shows up here.
#[test]
fn fire_and_resolve_inside_one_outage_reach_the_target_as_a_lone_resolve() {
    let t = one_alert(
        PROMETHEUS,
        300,
        End::Resolved(900),
        vec![down(0, 0, 1800)],
        2 * HOUR,
    );
    let received = run_and_check(&t);
    assert_eq!(statuses(&received, 0, 0), ["resolved"]);
}

/// Two targets: one down for an hour, one healthy. The healthy one gets both alerts at once and
/// is never held back; the other gets the same states when it is back.
#[test]
fn a_broken_target_never_holds_back_a_healthy_one() {
    let t = Timeline {
        targets: 2,
        occurrences: vec![
            Occurrence {
                alert: 0,
                source: PROMETHEUS,
                start: 0,
                end: End::Never,
            },
            Occurrence {
                alert: 1,
                source: Source::Webhook,
                start: 120,
                end: End::Resolved(2400),
            },
        ],
        faults: vec![down(1, 0, HOUR)],
        restarts: vec![],
        length: 2 * HOUR,
    };
    let received = run_and_check(&t);
    let first_at = |target: u8, alert: u8| {
        received
            .iter()
            .find(|r| r.target == target && r.alert == alert)
            .map(|r| r.at)
    };
    assert!(first_at(0, 0).is_some_and(|at| at < 1.0), "{received:?}");
    assert!(first_at(0, 1).is_some_and(|at| at < 121.0), "{received:?}");
    assert!(first_at(1, 0).is_some_and(|at| at >= f64::from(HOUR)));
    assert_eq!(statuses(&received, 1, 1), ["resolved"]);
}

/// Recovery is prompt: three alerts fire during an outage of 1, 10 or 60 minutes; once the
/// target is back, every queued job flows within `circuit_breaker.open_for` (30 s) + the
/// unhealthy recheck (5 s) + 1 s. Measured on paused time, so each figure is exact for its
/// timeline.
#[test]
fn after_an_outage_queued_jobs_flow_within_open_for_plus_the_recheck() {
    let bound = 30.0 + 5.0 + 1.0;
    for outage in [60, 600, HOUR] {
        let t = Timeline {
            targets: 1,
            occurrences: (0..3)
                .map(|alert| Occurrence {
                    alert,
                    source: PROMETHEUS,
                    start: 10 + u32::from(alert) * 20,
                    end: End::Never,
                })
                .collect(),
            faults: vec![down(0, 0, outage)],
            restarts: vec![],
            length: outage + HOUR,
        };
        let received = run_and_check(&t);
        let mut worst: f64 = 0.0;
        for alert in 0..3 {
            let first = received
                .iter()
                .find(|r| r.alert == alert)
                .map(|r| r.at - f64::from(outage))
                .expect("delivered after the outage");
            worst = worst.max(first);
        }
        println!(
            "recovery: after a {outage} s outage the last queued job reached the target {worst:.1} s \
             after it came back"
        );
        assert!(worst <= bound, "{worst:.1} s > {bound} s: {received:?}");
    }
}

//! The right state over an alert's lifetime, against the release binary: the two ways alertpub
//! used to page wrongly, reproduced as a new user met them.
//!
//! - A firing alert whose target was down past the alert's `endsAt` (Prometheus sets it 4 resend
//!   intervals ahead and keeps moving it) was retried as a resolve. Now a job's status is fixed
//!   when it is made: the target gets the firing when it is back, and never a resolve.
//! - Every alert received through the Alertmanager webhook was resolved after our
//!   `resolve_timeout`, while Alertmanager still held it firing. Now it stays firing until
//!   Alertmanager sends the resolve.
//!
//! Time passing is the point of both, so they wait out real (short) timeouts, and each loop is
//! bounded in count and time.

use std::time::Duration;

use alertpub_e2e::{Http, Server};
use chrono::{SecondsFormat, Utc};
use serde_json::json;
use test_support::{MockResponse, MockTarget};

use crate::interop::{
    ACT, Program, alertmanager_alerts, amtool, metric, notifying_alertpub, poll_until, programs,
    start_alertmanager, statuses,
};
use crate::{base_config, posts, webhook};

fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The target is down (503) for its first 6 s while the alert, with `endsAt` = now + 2 s, is
/// re-sent every second, as Prometheus re-sends it. When the target recovers it must get the
/// firing, and no request it ever saw may say `resolved`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_delayed_by_an_outage_reaches_the_target_as_a_firing() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(503));
    // The breaker and health would pause the lane for longer than the test runs: each gate's
    // delay is short here, and recovery is measured separately (docs/BENCHMARKS.md).
    let config = format!(
        "{}targets:\n{}",
        base_config().replace(
            "circuit_breaker:\n  failure_threshold: 10\n",
            "circuit_breaker:\n  failure_threshold: 10\n  open_for: 1s\n"
        ),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let starts_at = Utc::now();
    let started = tokio::time::Instant::now();
    let down_for = Duration::from_secs(6);
    let mut at_recovery = None;
    let mut seen = Vec::new();
    // Re-sent every second, at most 30 times: the target is down for the first 6 s, and the
    // loop ends once a request reaches it after it recovered. While the alert is re-sent, its
    // source holds it firing, so everything the target sees until then must be a firing.
    for _ in 0..30 {
        if at_recovery.is_none() && started.elapsed() >= down_for {
            at_recovery = Some(posts(&target).len());
            target.respond(MockResponse::status(200));
        }
        let alert = json!({
            "labels": {"alertname": "KeptAlive", "severity": "critical"},
            "startsAt": rfc3339(starts_at),
            "endsAt": rfc3339(Utc::now() + chrono::Duration::seconds(2)),
        });
        // A client of its own each time, as Prometheus's re-sends a second apart may outlive
        // the server's idle keep-alive.
        let answer = Http::new()
            .post_json(&server.url("/api/v2/alerts"), &json!([alert]))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        seen = statuses(&posts(&target));
        if at_recovery.is_some_and(|n| seen.len() > n) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let at_recovery = at_recovery.expect("the target recovered within the loop");
    assert!(
        seen.len() > at_recovery,
        "a request reached the target after it recovered: {seen:?}; log:\n{}",
        server.log()
    );
    assert!(
        at_recovery >= 2,
        "the target saw retries during its outage: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s == "firing"),
        "while its source re-sends it, every request the target sees must be a firing, got \
         {seen:?}; log:\n{}",
        server.log()
    );
    println!(
        "outage: the target saw {at_recovery} requests during its 6 s outage and {} after it, \
         all firing",
        seen.len() - at_recovery
    );
}

/// A real Alertmanager notifies alertpub (`send_resolved: true`, `repeat_interval` 1h) about an
/// alert that stays active there. alertpub's `resolve_timeout` is 3 s; for 8 s (over twice that)
/// the target must get nothing but the one firing, while Alertmanager still lists the alert.
/// Then Alertmanager resolves it, and the target gets the resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_from_alertmanager_stays_firing_until_alertmanager_resolves_it() {
    let Some([alertmanager_bin, amtool_bin]) = programs(
        "lifetimes::an_alert_from_alertmanager_stays_firing_until_alertmanager_resolves_it",
        [Program::Alertmanager, Program::Amtool],
    ) else {
        return;
    };
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(200));
    let config = format!(
        "{}targets:\n{}",
        base_config().replace("resolve_timeout: 5m", "resolve_timeout: 3s"),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let am_config = notifying_alertpub(&server);
    let am = start_alertmanager(&alertmanager_bin, &am_config).await;
    amtool(
        &amtool_bin,
        &am.url(""),
        &["alert", "add", "alertname=LongLived", "severity=critical"],
    )
    .await;
    poll_until(ACT, "the firing at the target", async || {
        (!posts(&target).is_empty()).then_some(())
    })
    .await;
    let fired = tokio::time::Instant::now();
    let window = Duration::from_secs(8);
    while fired.elapsed() < window {
        let seen = statuses(&posts(&target));
        assert_eq!(
            seen,
            ["firing"],
            "{:?} after the firing, alertpub's resolve_timeout (3 s) must not resolve an alert \
             Alertmanager holds; log:\n{}",
            fired.elapsed(),
            server.log()
        );
        assert_eq!(
            alertmanager_alerts(&am, "LongLived").await.len(),
            1,
            "Alertmanager still holds the alert active"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Alertmanager resolves it, and sends the resolve itself.
    let ended = rfc3339(Utc::now() - chrono::Duration::seconds(1));
    amtool(
        &amtool_bin,
        &am.url(""),
        &[
            "alert",
            "add",
            "alertname=LongLived",
            "severity=critical",
            &format!("--end={ended}"),
        ],
    )
    .await;
    let seen = poll_until(ACT, "the resolve at the target", async || {
        let seen = statuses(&posts(&target));
        (seen.len() >= 2).then_some(seen)
    })
    .await;
    assert_eq!(
        seen,
        ["firing", "resolved"],
        "the target gets the firing, then Alertmanager's resolve; log:\n{}",
        am.log()
    );
    let received = metric(
        &server,
        "alertpub_ingest_alerts_total",
        &[("source", "alertmanager_webhook")],
    )
    .await;
    println!(
        "alertmanager lifecycle: firing held for {window:?} (> 2 x resolve_timeout 3 s), then \
         resolved by Alertmanager; {received} alerts ingested from its webhook"
    );
}

/// The webhook receiver's edges: a message with `truncatedAlerts > 0` is accepted and counted,
/// a resolved alert whose `startsAt` lies after its `endsAt` (the hosts' clocks disagree) is not
/// refused, and `webhook_resolve_timeout` (here 2 s) resolves a firing alert that is not re-sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_receiver_counts_truncation_tolerates_skew_and_has_a_safety_net() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(200));
    let config = format!(
        "{}targets:\n{}",
        base_config().replace(
            "resolve_timeout: 5m",
            "resolve_timeout: 5m\n  webhook_resolve_timeout: 2s"
        ),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let now = Utc::now();
    let message = json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"Edges\"}",
        "truncatedAlerts": 3,
        "status": "firing",
        "receiver": "alertpub",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Edges", "case": "net"},
             "startsAt": rfc3339(now), "endsAt": "0001-01-01T00:00:00Z"},
            {"status": "resolved", "labels": {"alertname": "Edges", "case": "skew"},
             "startsAt": rfc3339(now + chrono::Duration::minutes(10)),
             "endsAt": rfc3339(now - chrono::Duration::seconds(1))},
        ],
    });
    let answer = http
        .post_json(&server.url("/api/v1/alerts/alertmanager"), &message)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        metric(&server, "alertpub_ingest_truncated_alerts_total", &[]).await,
        3.0
    );
    // The net: not re-sent, the firing alert resolves about 2 s later.
    let seen = poll_until(ACT, "the net's resolve", async || {
        let net: Vec<String> = posts(&target)
            .iter()
            .filter(|r| r.json()["labels"]["case"] == "net")
            .map(|r| r.json()["status"].as_str().unwrap_or_default().to_owned())
            .collect();
        (net.len() >= 2).then_some(net)
    })
    .await;
    assert_eq!(seen, ["firing", "resolved"]);
    let skewed: Vec<_> = posts(&target)
        .into_iter()
        .filter(|r| r.json()["labels"]["case"] == "skew")
        .collect();
    assert_eq!(skewed.len(), 1, "the skewed resolve is delivered");
    assert_eq!(skewed[0].json()["status"], "resolved");
}

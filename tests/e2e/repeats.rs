//! Re-sends through the real binary: they cause no delivery, and across a `kill -9` in the
//! middle of a stream of them, an alert that is still re-sent is never resolved while one that
//! stopped is resolved within the documented bound (docs/operations.md, "Restarts and
//! auto-resolve").

use std::time::{Duration, Instant};

use alertpub_e2e::{Http, Server};
use serde_json::{Value, json};
use test_support::{MockTarget, RecordedRequest};

use crate::queue::queue_config;
use crate::{ok_target, posts, wait_for_posts, webhook};

/// The configured `resolve_timeout`.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// The documented bound after a restart: `max(lead + slack, resolve_timeout)`, where the lead of
/// an alert sent without `endsAt` is `resolve_timeout` and the slack at least a second.
const RESTART_BOUND: Duration = Duration::from_secs(3);
/// What the bound leaves to the sweep (once a second) and the delivery.
const MARGIN: Duration = Duration::from_secs(2);
/// How often the sender re-sends, as Prometheus does every minute, sped up.
const RESEND_EVERY: Duration = Duration::from_millis(250);

fn alerts(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|name| json!({"labels": {"alertname": name, "job": "node"}}))
            .collect(),
    )
}

fn resolved(target: &MockTarget, name: &str) -> bool {
    posts(target)
        .iter()
        .map(RecordedRequest::json)
        .any(|b| b["alert_name"] == name && b["status"] == "resolved")
}

async fn send(http: &Http, server: &Server, names: &[&str]) {
    let answer = http
        .post_json(&server.url("/api/v2/alerts"), &alerts(names))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_re_sends_resolves_only_the_alert_that_stopped() {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        queue_config("").replace("resolve_timeout: 5m", "resolve_timeout: 2s"),
        webhook("hook", &target, "")
    );
    let mut server = Server::start(&config).await;
    let http = Http::new();
    send(&http, &server, &["Kept", "Stopped"]).await;
    wait_for_posts(&target, 2).await;

    // A stream of re-sends, each moving both ends on: they deliver nothing.
    let mut ticks = tokio::time::interval(RESEND_EVERY);
    let mut last_stopped = Instant::now();
    for _ in 0..6 {
        ticks.tick().await;
        send(&http, &server, &["Kept", "Stopped"]).await;
        last_stopped = Instant::now();
    }
    assert_eq!(posts(&target).len(), 2, "a re-send delivered something");
    assert!(!resolved(&target, "Stopped"));

    server.kill9().await;
    // Down for longer than resolve_timeout: every end the sender gave has passed by the restart.
    tokio::time::sleep(RESOLVE_TIMEOUT + Duration::from_millis(500)).await;
    let server = server.restart().await;
    let restarted = Instant::now();
    // `Kept` goes on being re-sent; `Stopped` never again. Watched for twice the bound.
    let mut stopped_resolved_at = None;
    while restarted.elapsed() < 2 * (RESTART_BOUND + MARGIN) {
        ticks.tick().await;
        send(&http, &server, &["Kept"]).await;
        if stopped_resolved_at.is_none() && resolved(&target, "Stopped") {
            stopped_resolved_at = Some(Instant::now());
        }
        assert!(
            !resolved(&target, "Kept"),
            "the alert still re-sent was resolved after the restart: {:?}",
            posts(&target)
                .iter()
                .map(RecordedRequest::json)
                .collect::<Vec<_>>()
        );
    }
    let at = stopped_resolved_at.expect("the alert that stopped was never resolved");
    assert!(
        at.duration_since(restarted) <= RESTART_BOUND + MARGIN,
        "resolved {:?} after the restart, beyond the bound",
        at.duration_since(restarted)
    );
    assert!(
        at.duration_since(last_stopped) >= RESOLVE_TIMEOUT,
        "resolved {:?} after its last send, before the end it was given",
        at.duration_since(last_stopped)
    );
}

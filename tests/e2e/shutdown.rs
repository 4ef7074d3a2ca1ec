//! SIGTERM drains in-flight work within the shutdown deadline, and the process exits 0.

use std::time::Duration;

use alertpub_e2e::{Http, Server};
use serde_json::json;
use test_support::{MockResponse, MockTarget};

use crate::{base_config, posts, wait_for_posts, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_publishes_and_exits_zero() {
    let slow = MockTarget::start().await;
    slow.respond(MockResponse::status(200).delay(Duration::from_millis(1500)));
    let queued = MockTarget::start().await;
    queued.respond(MockResponse::status(200).delay(Duration::from_millis(1500)));
    let config = format!(
        "{}targets:\n{}{}",
        base_config(),
        webhook("slow", &slow, ""),
        webhook("queued", &queued, "    filter: ['route=\"queue\"']\n"),
    );
    let mut server = Server::start(&config).await;
    let http = Http::new();

    // A queued delivery and a synchronous publish, both in flight at their targets.
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Queued", "route": "queue"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let publish = {
        let http = http.clone();
        let url = server.url("/api/v1/publish/parallel");
        tokio::spawn(async move {
            http.post_json(
                &url,
                &json!({"alert": {"labels": {"alertname": "Sync"}}, "targets": ["slow"]}),
            )
            .await
        })
    };
    wait_for_posts(&queued, 1).await;
    // `slow` has no filter, so it gets the queued alert's job as well as the publish: both
    // must have reached it, or the signal could beat the publish to the server.
    wait_for_posts(&slow, 2).await;

    server.signal("TERM");
    // The publish that was in flight is answered in full.
    let answer = publish.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["success_count"], 1);
    let status = server.wait(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    let log = server.log();
    // The queued attempt finished too: the dispatcher acknowledged it before exiting.
    assert!(
        !log.contains("left in the queue"),
        "in-flight work was abandoned:\n{log}"
    );
    assert!(log.contains("alertpub stopped"), "{log}");
    assert_eq!(posts(&queued).len(), 1);
    assert_eq!(posts(&slow).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_ends_during_shutdown_is_in_the_history_after_a_restart() {
    let slow = MockTarget::start().await;
    slow.respond(MockResponse::status(200).delay(Duration::from_millis(1500)));
    let config = format!("{}targets:\n{}", base_config(), webhook("slow", &slow, ""));
    let mut server = Server::start(&config).await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "LastOne"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // In flight at the target when the signal comes; it ends while the server drains.
    wait_for_posts(&slow, 1).await;
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());

    let server = server.restart().await;
    let history = http
        .get(&server.url("/api/v1/deliveries?target=slow"))
        .await
        .json();
    let entries = history["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["outcome"], "delivered", "{history}");
    assert_eq!(entries[0]["labels"]["alertname"], "LastOne", "{history}");
}

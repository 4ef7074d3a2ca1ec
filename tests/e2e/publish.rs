//! The synchronous publish API: one attempt per target, a `ParallelPublishResult`, and SPEC §7's
//! status codes.

use std::time::Duration;

use alertpub_e2e::{Http, Server};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget, closed_port_url};

use crate::{base_config, ok_target, webhook};

fn request(targets: &[&str], options: Value) -> Value {
    json!({
        "alert": {"labels": {"alertname": "SyncPublish", "severity": "critical"},
                  "annotations": {"summary": "sync"}},
        "targets": targets,
        "options": options,
    })
}

fn outcome_of<'a>(result: &'a Value, target: &str) -> &'a Value {
    result["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target_name"] == target)
        .unwrap_or_else(|| panic!("no result for {target} in {result}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_publish_status_codes_and_results() {
    let ok1 = ok_target().await;
    let ok2 = ok_target().await;
    let failing = MockTarget::start().await;
    failing.respond(MockResponse::status(500).body("upstream broke"));
    let slow = MockTarget::start().await;
    slow.respond(MockResponse::status(200).delay(Duration::from_secs(8)));
    let config = format!(
        "{}targets:\n{}{}{}{}",
        base_config(),
        webhook("ok-one", &ok1, ""),
        webhook("ok-two", &ok2, ""),
        webhook("failing", &failing, ""),
        webhook("slow", &slow, ""),
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let url = server.url("/api/v1/publish/parallel");

    // All succeed: 200.
    let answer = http
        .post_json(&url, &request(&["ok-one", "ok-two"], json!({})))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let result = answer.json();
    assert_eq!(result["success_count"], 2);
    assert_eq!(result["failure_count"], 0);
    assert_eq!(result["is_partial_success"], false);
    assert_eq!(outcome_of(&result, "ok-one")["attempts"], 1);
    assert_eq!(outcome_of(&result, "ok-one")["status_code"], 200);

    // Partial: 200, and the body says so.
    let answer = http
        .post_json(&url, &request(&["ok-one", "failing"], json!({})))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let result = answer.json();
    assert_eq!(result["is_partial_success"], true);
    assert_eq!(result["success_count"], 1);
    assert_eq!(result["failure_count"], 1);
    let failed = outcome_of(&result, "failing");
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["status_code"], 500);
    assert_eq!(failed["error"]["kind"], "transient");

    // All failed: 502, with the result.
    let answer = http
        .post_json(&url, &request(&["failing"], json!({})))
        .await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    let result = answer.json();
    assert_eq!(result["failure_count"], 1);
    assert_eq!(outcome_of(&result, "failing")["error"]["kind"], "transient");

    // The overall timeout: 504 with the partial result, even though one target succeeded.
    let answer = http
        .post_json(
            &url,
            &request(&["ok-one", "slow"], json!({"timeout_ms": 700})),
        )
        .await;
    assert_eq!(answer.status, 504, "{}", answer.text);
    let result = answer.json();
    assert_eq!(result["timed_out"], true);
    assert_eq!(outcome_of(&result, "ok-one")["outcome"], "success");
    assert_eq!(outcome_of(&result, "slow")["error"]["kind"], "timeout");

    // An unknown target: 404, and nothing is sent.
    let before = ok1.requests().len();
    let answer = http
        .post_json(&url, &request(&["ok-one", "nope"], json!({})))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert_eq!(answer.error_kind(), "unknown_targets");
    assert_eq!(answer.json()["targets"], json!(["nope"]));
    assert_eq!(ok1.requests().len(), before);

    // Invalid options: 400.
    let answer = http
        .post_json(&url, &request(&["ok-one"], json!({"max_concurrent": 0})))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.error_kind(), "invalid_options");

    // enqueue_failed hands the transient failure to the queue and says so.
    let answer = http
        .post_json(
            &url,
            &request(&["ok-one", "failing"], json!({"enqueue_failed": true})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let result = answer.json();
    assert_eq!(result["enqueued_count"], 1, "{result}");
    assert_eq!(outcome_of(&result, "failing")["enqueued"], true);
    assert_eq!(outcome_of(&result, "ok-one")["enqueued"], false);

    // The live totals count what happened.
    let status = http
        .get(&server.url("/api/v1/publish/parallel/status"))
        .await
        .json();
    assert!(status["total"].as_u64().unwrap() >= 5, "{status}");
    assert!(status["latency_ms"]["p50"].is_number(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_targets_is_503() {
    let config = format!(
        "{}targets:\n  - name: broken\n    kind: webhook\n    url: {}/hook\n",
        base_config(),
        closed_port_url()
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    // Three refused connections make the target unhealthy (failure_threshold: 3). `/all` calls
    // a target whatever its health, so each of these is an attempt.
    for _ in 0..3 {
        let answer = http
            .post_json(
                &server.url("/api/v1/publish/parallel/all"),
                &request(&[], json!({})),
            )
            .await;
        assert_eq!(answer.status, 502, "{}", answer.text);
    }
    let target = http.get(&server.url("/api/v1/targets/broken")).await.json();
    assert_eq!(target["health"]["status"], "unhealthy", "{target}");
    let answer = http
        .post_json(
            &server.url("/api/v1/publish/parallel/healthy"),
            &json!({"alert": {"labels": {"alertname": "X"}}}),
        )
        .await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error_kind(), "no_healthy_targets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_enabled_targets_is_503() {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        base_config(),
        webhook("off", &target, "    enabled: false\n")
    );
    let server = Server::start(&config).await;
    let answer = Http::new()
        .post_json(
            &server.url("/api/v1/publish/parallel/all"),
            &json!({"alert": {"labels": {"alertname": "X"}}}),
        )
        .await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error_kind(), "no_enabled_targets");
}

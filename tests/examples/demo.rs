//! `cargo xtask demo`: the real `alertpub` binary, three mock targets on loopback (one fast, one
//! slow, one failing), alerts sent through `/api/v2/alerts` and through the synchronous publish
//! API, and a per-target table of what happened. Everything is stopped at the end.

// A demo prints its results.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use alertpub_e2e::{Http, Server};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let fast = MockTarget::start().await;
    fast.respond(MockResponse::status(200));
    let slow = MockTarget::start().await;
    slow.respond(MockResponse::status(200).delay(Duration::from_millis(1500)));
    let failing = MockTarget::start().await;
    failing.respond(MockResponse::status(503).body("maintenance"));
    let config = format!(
        r#"
server:
  listen: "127.0.0.1:0"
queue:
  path: queue/alertpub.redb
  max_attempts: 3
  initial_backoff: 200ms
  max_backoff: 1s
health:
  interval: 1h
circuit_breaker:
  failure_threshold: 20
targets:
  - name: fast-webhook
    kind: webhook
    url: {}
  - name: slow-webhook
    kind: webhook
    url: {}
  - name: failing-webhook
    kind: webhook
    url: {}
"#,
        fast.url("/hook"),
        slow.url("/hook"),
        failing.url("/hook"),
    );
    let mut server = Server::start(&config).await;
    let http = Http::new();
    println!(
        "alertpub is listening on {} (pid {})",
        server.addr(),
        server.pid()
    );

    // 1. Ingest, as Prometheus would send it: answered once the jobs are queued.
    let started = Instant::now();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([
                {"labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"},
                 "annotations": {"summary": "Disk 95% full on db-1"}},
                {"labels": {"alertname": "HighLatency", "severity": "warning", "service": "api"},
                 "annotations": {"summary": "p99 latency over 2s"}},
            ]),
        )
        .await;
    println!(
        "\nPOST /api/v2/alerts -> {} in {} ms: {}",
        answer.status,
        started.elapsed().as_millis(),
        answer.text
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while (posts(&fast) < 2 || posts(&slow) < 2 || posts(&failing) < 6) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "\nQueued deliveries (each target has its own lane; the failing one retries 3 times, then dead-letters):"
    );
    println!("  {:<16} {:>10}", "target", "requests");
    for (name, mock) in [
        ("fast-webhook", &fast),
        ("slow-webhook", &slow),
        ("failing-webhook", &failing),
    ] {
        println!("  {name:<16} {:>10}", posts(mock));
    }

    // 2. The synchronous API: one attempt per target, a result for each.
    let answer = http
        .post_json(
            &server.url("/api/v1/publish/parallel/all"),
            &json!({"alert": {"labels": {"alertname": "DeployFailed", "severity": "critical"},
                              "annotations": {"summary": "Deploy of api v42 failed"}},
                    "options": {"timeout_ms": 5000}}),
        )
        .await;
    let result = answer.json();
    println!(
        "\nPOST /api/v1/publish/parallel/all -> {}: {} succeeded, {} failed, {} skipped in {} ms (partial: {})",
        answer.status,
        result["success_count"],
        result["failure_count"],
        result["skipped_count"],
        result["duration_ms"],
        result["is_partial_success"],
    );
    println!(
        "  {:<16} {:<8} {:>6} {:>9}  error",
        "target", "outcome", "status", "time (ms)"
    );
    for target in result["results"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} {:<8} {:>6} {:>9}  {}",
            text(&target["target_name"]),
            text(&target["outcome"]),
            text(&target["status_code"]),
            text(&target["duration_ms"]),
            target["error"]["kind"].as_str().unwrap_or("")
        );
    }

    let targets = http.get(&server.url("/api/v1/targets")).await.json();
    println!("\nGET /api/v1/targets (health and breaker, endpoints redacted):");
    for target in targets["targets"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} health {:<10} circuit {:<10} endpoint {}",
            text(&target["name"]),
            text(&target["health"]["status"]),
            text(&target["circuit"]["state"]),
            text(&target["endpoint"]),
        );
    }

    server.signal("TERM");
    let status = server.wait(Duration::from_secs(30)).await;
    println!("\nalertpub stopped on SIGTERM: {status}");
}

fn posts(mock: &MockTarget) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

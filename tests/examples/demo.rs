//! `cargo xtask demo`: the real `alertpub` binary on the example config (`examples/alertpub.yaml`),
//! with a mock target on each of its loopback ports: the ops webhook, PagerDuty, Slack (slow, 1.5 s
//! an answer), Rootly (down for maintenance: 503) and another Alertmanager. It sends alerts
//! through `/api/v2/alerts`, as Prometheus does, and through the synchronous API, prints what
//! each target got, then stays up until Ctrl-C (`--once`: it stops at once) so the API can be
//! explored.

// A demo prints its results.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use alertpub_e2e::{Http, Server, TempDir};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget};

/// The example's address, and its targets' (the Slack webhook's comes from the environment).
const LISTEN: &str = "127.0.0.1:9097";
const TARGETS: [(&str, &str); 5] = [
    ("ops-webhook", "127.0.0.1:19100"),
    ("pagerduty-oncall", "127.0.0.1:19101"),
    ("rootly-prod", "127.0.0.1:19102"),
    ("upstream-alertmanager", "127.0.0.1:19103"),
    ("slack-alerts", "127.0.0.1:19104"),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let once = std::env::args().any(|a| a == "--once");
    let mut mocks = Vec::new();
    for (name, addr) in TARGETS {
        let mock = match MockTarget::start_on(addr).await {
            Ok(mock) => mock,
            Err(err) => {
                eprintln!(
                    "cannot listen on {addr} for the example's target {name}: {err}\n\
                     (is another demo running? the example config names these ports)"
                );
                std::process::exit(1);
            }
        };
        mock.respond(match name {
            "pagerduty-oncall" => MockResponse::status(202).json(
                &json!({"status": "success", "message": "Event processed", "dedup_key": "demo"}),
            ),
            "rootly-prod" => MockResponse::status(503).body("down for maintenance"),
            "slack-alerts" => MockResponse::status(200)
                .body("ok")
                .delay(Duration::from_millis(1500)),
            _ => MockResponse::status(200),
        });
        mocks.push((name, mock));
    }

    // The example as it is, its secrets named from wherever the server runs.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = std::fs::read_to_string(root.join("examples/alertpub.yaml"))
        .expect("examples/alertpub.yaml");
    let secrets = root.join("examples/secrets/");
    let config = example.replace("examples/secrets/", &secrets.display().to_string());
    let dir = TempDir::new();
    let args = vec![
        "--config".into(),
        dir.path().join("alertpub.yaml").into(),
        "--storage.path".into(),
        dir.path().join("data").into(),
        "--log-level".into(),
        "warn".into(),
    ];
    let slack = format!("http://{}/slack", TARGETS[4].1);
    let mut server =
        Server::start_with_env(dir, &config, args, &[("SLACK_WEBHOOK_URL", &slack)]).await;
    let http = Http::new();
    println!(
        "alertpub is listening on http://{} (pid {})",
        server.addr(),
        server.pid()
    );
    if server.addr() != LISTEN {
        println!("  (the example asks for {LISTEN})");
    }

    // 1. Ingest, as Prometheus sends it: answered once the jobs are queued.
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
    // Everyone but Rootly takes both alerts (the Slack mock takes 1.5 s an answer); Rootly is
    // retried on its lane's backoff, holding nobody else back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mocks
        .iter()
        .any(|(name, mock)| *name != "rootly-prod" && posts(mock) < 2)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
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
        "\nPOST /api/v1/publish/parallel/all -> {}: {} succeeded, {} failed, {} skipped in {} ms",
        answer.status,
        result["success_count"],
        result["failure_count"],
        result["skipped_count"],
        result["duration_ms"],
    );
    // The history is written a moment after the calls end.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 3. What each target got, from the delivery history.
    let targets = http.get(&server.url("/api/v1/targets")).await.json();
    println!(
        "\n  {:<22} {:<12} {:<9} {:>9} {:>7} {:>9}  last",
        "target", "kind", "health", "requests", "ok", "failed"
    );
    for target in targets["targets"].as_array().into_iter().flatten() {
        let name = text(&target["name"]);
        let history = http
            .get(&server.url(&format!("/api/v1/deliveries?target={name}&limit=1000")))
            .await
            .json();
        let entries = history["entries"].as_array().cloned().unwrap_or_default();
        let ok = entries
            .iter()
            .filter(|e| e["outcome"] == "delivered")
            .count();
        let last = entries.first().map_or_else(String::new, |e| {
            format!(
                "{} {} ({} ms)",
                text(&e["outcome"]),
                text(&e["status_code"]),
                text(&e["latency_ms"])
            )
        });
        let requests = mocks
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, mock)| posts(mock));
        println!(
            "  {name:<22} {:<12} {:<9} {requests:>9} {ok:>7} {:>9}  {last}",
            text(&target["kind"]),
            text(&target["health"]["status"]),
            entries.len() - ok,
        );
    }

    // The demo checks itself: every target but Rootly got both alerts.
    let missing: Vec<&str> = mocks
        .iter()
        .filter(|(name, mock)| *name != "rootly-prod" && posts(mock) < 2)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "\nthese targets did not get both alerts: {}",
            missing.join(", ")
        );
        server.signal("TERM");
        let _ = server.wait(Duration::from_secs(30)).await;
        std::process::exit(1);
    }

    let base = format!("http://{}", server.addr());
    println!(
        "\nThe status page: {base}/\n\nalertpub keeps running with the example config. Try:\n  \
         curl {base}/api/v1/targets\n  \
         curl '{base}/api/v1/deliveries?target=rootly-prod'\n  \
         curl {base}/api/v1/queue\n  \
         curl {base}/metrics"
    );
    if !once {
        println!("Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
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

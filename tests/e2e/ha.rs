//! Replicas on one PostgreSQL queue (`queue.backend: postgres`), with the real binary and a real
//! cluster the test starts: every alert posted to every replica, as Prometheus posts to each
//! Alertmanager of a cluster, reaches each target once per state.

use std::collections::BTreeMap;
use std::time::Duration;

use alertpub_e2e::{Http, Server, TempDir};
use serde_json::{Value, json};
use test_support::MockTarget;
use test_support::postgres::Cluster;

use crate::{base_config, ok_target, posts, webhook};

/// A config whose queue is the database at `url` (through `url_file`, as operators keep it).
fn postgres_config(dir: &TempDir, url: &str, targets: &[(&str, &MockTarget)]) -> String {
    let url_file = dir.path().join("queue-url");
    std::fs::write(&url_file, format!("{url}\n")).expect("writing the URL file");
    let queue = format!(
        "  backend: postgres\n  url_file: {}\n  pool_size: 4\n",
        url_file.display()
    );
    let mut config = base_config().replacen("  path: queue/alertpub.redb\n", &queue, 1);
    config.push_str("targets:\n");
    for (name, mock) in targets {
        config.push_str(&webhook(name, mock, ""));
    }
    config
}

/// Each target's deliveries, as (alert name, status) → how many.
fn deliveries(mock: &MockTarget) -> BTreeMap<(String, String), u32> {
    let mut counts = BTreeMap::new();
    for request in posts(mock) {
        let body: Value = request.json();
        let name = body["alert_name"].as_str().unwrap_or_default().to_owned();
        let status = body["status"].as_str().unwrap_or_default().to_owned();
        *counts.entry((name, status)).or_insert(0) += 1;
    }
    counts
}

/// Waits until the shared queue holds no job (pending or leased), as any replica reports it.
async fn drained(http: &Http, server: &Server) {
    let deadline = tokio::time::Instant::now() + crate::DELIVERY;
    loop {
        let queue = http.get(&server.url("/api/v1/queue")).await.json();
        if queue["depth"] == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shared queue did not drain: {queue}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_database_deliver_each_state_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("ha");
    let mut mocks = Vec::new();
    for _ in 0..5 {
        mocks.push(ok_target().await);
    }
    let names = ["t0", "t1", "t2", "t3", "t4"];
    let targets: Vec<(&str, &MockTarget)> = names.iter().copied().zip(mocks.iter()).collect();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let dir = TempDir::new();
        let config = postgres_config(&dir, &url, &targets);
        replicas.push(Server::start_in(dir, &config).await);
    }
    let http = Http::new();
    let alerts = 12;
    let alert = |i: usize, ends: Option<&str>| {
        let mut a = json!({"labels": {"alertname": format!("Ha{i}"), "severity": "critical"},
                           "startsAt": "2026-12-01T00:00:00Z"});
        if let Some(ends) = ends {
            a["endsAt"] = json!(ends);
        }
        json!([a])
    };
    // Each firing to every replica, as Prometheus sends it.
    for i in 0..alerts {
        for replica in &replicas {
            let answer = http
                .post_json(&replica.url("/api/v2/alerts"), &alert(i, None))
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text);
        }
    }
    drained(&http, &replicas[0]).await;
    // Then each resolve, to every replica.
    for i in 0..alerts {
        for replica in &replicas {
            let answer = http
                .post_json(
                    &replica.url("/api/v2/alerts"),
                    &alert(i, Some("2026-12-01T00:05:00Z")),
                )
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text);
        }
    }
    drained(&http, &replicas[0]).await;
    for (name, mock) in &targets {
        let counts = deliveries(mock);
        for i in 0..alerts {
            for status in ["firing", "resolved"] {
                let key = (format!("Ha{i}"), status.to_owned());
                assert_eq!(
                    counts.get(&key).copied().unwrap_or(0),
                    1,
                    "{name} got {key:?} {:?} times: {counts:?}",
                    counts.get(&key)
                );
            }
        }
        assert_eq!(counts.len(), alerts * 2, "{name}: {counts:?}");
    }
    // The replicas agree on the queue: it is one.
    for replica in &replicas {
        let queue = http.get(&replica.url("/api/v1/queue")).await.json();
        assert_eq!(queue["depth"], 0, "{queue}");
    }
}

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

/// `kill -9` of one of three replicas while 8 senders post 2 000 alerts (each to every live
/// replica): no accepted alert is lost, the duplicates are at most what the killed replica had
/// in flight, and its lanes move to the survivors within 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_flight_loses_nothing_and_its_lanes_move() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const ALERTS: usize = 2_000;
    const SENDERS: usize = 8;
    const IN_FLIGHT: usize = 16;
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("kill");
    let mut mocks = Vec::new();
    for _ in 0..5 {
        let mock = MockTarget::start().await;
        mock.respond(test_support::MockResponse::status(200).delay(Duration::from_millis(5)));
        mocks.push(mock);
    }
    let names = ["k0", "k1", "k2", "k3", "k4"];
    let targets: Vec<(&str, &MockTarget)> = names.iter().copied().zip(mocks.iter()).collect();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let dir = TempDir::new();
        let config = postgres_config(&dir, &url, &targets);
        replicas.push(Server::start_in(dir, &config).await);
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/api/v2/alerts")).collect();
    let accepted: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (urls, accepted, next) = (urls.clone(), accepted.clone(), next.clone());
        senders.spawn(async move {
            let http = Http::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ALERTS {
                    return;
                }
                let body = json!([{"labels": {"alertname": format!("Kill{i}")},
                                   "startsAt": "2026-12-01T00:00:00Z"}]);
                let mut ok = false;
                for url in &urls {
                    ok |= http.try_post_json(url, &body).await == Some(200);
                }
                if ok {
                    accepted.lock().unwrap().insert(i);
                }
            }
        });
    }
    let http = Http::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while accepted.lock().unwrap().len() < ALERTS / 3 {
        assert!(tokio::time::Instant::now() < deadline, "ingest stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The replica that runs the most lanes is killed.
    let owners = cluster.query("kill", "SELECT target, owner FROM alertpub_lanes");
    let lanes_of = |pid: u32| -> Vec<String> {
        owners
            .lines()
            .filter_map(|line| line.split_once('|'))
            .filter(|(_, owner)| owner.contains(&format!("-{pid}-")))
            .map(|(target, _)| target.to_owned())
            .collect()
    };
    let victim = (0..replicas.len())
        .max_by_key(|&r| lanes_of(replicas[r].pid()).len())
        .unwrap();
    let moved = lanes_of(replicas[victim].pid());
    assert!(!moved.is_empty(), "no replica runs a lane: {owners}");
    let victim_pid = replicas[victim].pid();
    replicas[victim].kill9().await;
    let killed_at = tokio::time::Instant::now();
    // Its lanes resume once a survivor holds them.
    let mut resumed = None;
    while killed_at.elapsed() < Duration::from_secs(30) {
        let now = cluster.query("kill", "SELECT target, owner FROM alertpub_lanes");
        let still: Vec<&str> = now
            .lines()
            .filter(|line| line.contains(&format!("-{victim_pid}-")))
            .collect();
        if still.is_empty() {
            resumed = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let survivor = (0..replicas.len()).find(|&r| r != victim).unwrap();
    while senders.join_next().await.is_some() {}
    // The killed replica's leases lapse (three attempt timeouts) and the survivors deliver what
    // it held.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let queue = http
            .get(&replicas[survivor].url("/api/v1/queue"))
            .await
            .json();
        if queue["depth"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not drained: {queue}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = accepted.lock().unwrap().clone();
    let mut duplicates = 0;
    let mut lost = Vec::new();
    for (name, mock) in &targets {
        let counts = deliveries(mock);
        for &i in &accepted {
            let n = counts
                .get(&(format!("Kill{i}"), "firing".to_owned()))
                .copied()
                .unwrap_or(0);
            if n == 0 {
                lost.push(format!("{name}/Kill{i}"));
            }
            duplicates += n.saturating_sub(1) as usize;
        }
    }
    println!(
        "kill -9 of one of 3 replicas (it ran {moved:?}): {} of {ALERTS} alerts accepted, lost {}, duplicates {duplicates}, its lanes held by survivors after {resumed:?}",
        accepted.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "accepted alerts lost: {lost:?}");
    assert!(
        duplicates <= IN_FLIGHT * moved.len(),
        "{duplicates} duplicates: more than the killed replica had in flight"
    );
    assert!(
        resumed.is_some_and(|after| after <= Duration::from_secs(15)),
        "its lanes moved after {resumed:?}"
    );
}

/// The database goes down mid-load and comes back: ingest answers 503 `storage` while it is
/// down (and never hangs), `/readyz` turns 503, nothing accepted is lost, and alertpub recovers
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_loses_nothing_and_needs_no_restart_of_alertpub() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("outage");
    let mock = ok_target().await;
    let dir = TempDir::new();
    let config = postgres_config(&dir, &url, &[("out", &mock)]);
    let server = Server::start_in(dir, &config).await;
    let http = Http::new();
    let ingest = server.url("/api/v2/alerts");
    let alert = |i: usize| json!([{"labels": {"alertname": format!("Out{i}")}}]);
    let mut accepted = Vec::new();
    for i in 0..30 {
        let answer = http.post_json(&ingest, &alert(i)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        accepted.push(i);
    }

    cluster.stop();
    let mut refused = 0;
    for i in 30..60 {
        let started = tokio::time::Instant::now();
        let answer = http.post_json(&ingest, &alert(i)).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "an answer took {:?} while the database was down",
            started.elapsed()
        );
        match answer.status {
            200 => accepted.push(i),
            503 => {
                assert_eq!(answer.error_kind(), "storage", "{}", answer.text);
                refused += 1;
            }
            other => panic!(
                "answer {other} while the database was down: {}",
                answer.text
            ),
        }
    }
    assert!(
        refused > 0,
        "every post was accepted while the database was down"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http.get(&server.url("/readyz")).await;
        if ready.status == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {} while the database was down",
            ready.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut i = 60;
    loop {
        let answer = http.post_json(&ingest, &alert(i)).await;
        if answer.status == 200 {
            accepted.push(i);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest did not recover: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        i += 1;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = deliveries(&mock);
        let missing: Vec<usize> = accepted
            .iter()
            .copied()
            .filter(|i| !got.contains_key(&(format!("Out{i}"), "firing".to_owned())))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "accepted alerts not delivered after the database came back: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http.get(&server.url("/readyz")).await.status, 200);
    println!(
        "database restart: {} accepted, {refused} refused with 503 while it was down, all delivered",
        accepted.len()
    );
}

/// A target limited to 60 calls a minute, behind 3 replicas that each receive every alert: the
/// busiest 60 s at the target hold at most 60 calls, since one replica at a time runs its lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_replicas() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("rate");
    let mock = ok_target().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let dir = TempDir::new();
        let config = postgres_config(&dir, &url, &[]).replacen(
            "targets:\n",
            &format!(
                "targets:\n{}",
                webhook("limited", &mock, "    rate_limit:\n      per_minute: 60\n")
            ),
            1,
        );
        replicas.push(Server::start_in(dir, &config).await);
    }
    // Once a replica holds the lane, and every replica has beaten at least once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let owners = cluster.query("rate", "SELECT count(*) FROM alertpub_lanes");
        let live = cluster.query("rate", "SELECT count(*) FROM alertpub_replicas");
        if owners == "1" && live == "3" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lane owner: {owners}, {live}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = Http::new();
    // Arrivals, as seen every 50 ms for 65 s from the first post, while the alerts go in.
    let started = tokio::time::Instant::now();
    let post = async {
        for i in 0..80 {
            let body = json!([{"labels": {"alertname": format!("Rate{i}")}}]);
            for replica in &replicas {
                let answer = http.post_json(&replica.url("/api/v2/alerts"), &body).await;
                assert_eq!(answer.status, 200, "{}", answer.text);
            }
        }
    };
    let watch = async {
        let mut arrivals: Vec<Duration> = Vec::new();
        while started.elapsed() < Duration::from_secs(65) {
            let seen = posts(&mock).len();
            while arrivals.len() < seen {
                arrivals.push(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        arrivals
    };
    let ((), arrivals) = tokio::join!(post, watch);
    let busiest = arrivals
        .iter()
        .map(|&from| {
            arrivals
                .iter()
                // 60 s less the arrivals' resolution: each is seen up to 50 ms late, and a
                // bucket that refills once a second puts its 61st call 60 s after the first,
                // give or take the delivery's own jitter.
                .filter(|&&at| at >= from && at < from + Duration::from_millis(59_900))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!(
        "rate limit 60/min behind 3 replicas: {} calls in 65 s, busiest 60 s window {busiest}",
        arrivals.len()
    );
    assert!(
        arrivals.len() >= 50,
        "the lane hardly ran: {}",
        arrivals.len()
    );
    assert!(busiest <= 60, "the busiest 60 s held {busiest} calls");
}

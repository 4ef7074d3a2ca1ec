//! The durable queue through the real binary: nothing accepted is lost across `kill -9`, the
//! notification log publishes state changes and not repetitions, a resolve is never overtaken by
//! an older firing, and the dead-letter queue replays exactly what it is asked to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alertpub_e2e::{Http, Server, eventually};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget, RecordedRequest};

use crate::{base_config, ok_target, posts, wait_for_posts, webhook};

/// Waits until the queue holds no live job.
async fn wait_for_empty_queue(http: &Http, server: &Server, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let queue = http.get(&server.url("/api/v1/queue")).await.json();
        if queue["depth"] == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue did not drain within {within:?}: {queue}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs `url` every 50 ms until `done` holds of the JSON answer, or 20 s have passed; returns the
/// last answer either way, for the caller's assertions to explain.
pub(crate) async fn poll_json(http: &Http, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = http.get(url).await.json();
        if done(&answer) || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alert_name(request: &RecordedRequest) -> String {
    request.json()["alert_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn idempotency_key(request: &RecordedRequest) -> String {
    request
        .header("idempotency-key")
        .unwrap_or_default()
        .to_owned()
}

/// Deliveries by alert name, each with its idempotency keys, from `requests[from..]`.
fn deliveries(requests: &[RecordedRequest], from: usize) -> BTreeMap<String, Vec<String>> {
    let mut by_alert: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in requests.iter().skip(from).filter(|r| r.method == "POST") {
        by_alert
            .entry(alert_name(request))
            .or_default()
            .push(idempotency_key(request));
    }
    by_alert
}

pub(crate) fn queue_config(extra_queue: &str) -> String {
    base_config().replace(
        "queue:\n",
        &format!("queue:\n  max_attempts: 100\n  initial_backoff: 50ms\n{extra_queue}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_alert_reaches_every_target_across_kill_9() {
    const ALERTS: usize = 2000;
    const SENDERS: usize = 8;
    const KILL_AFTER: usize = 1000;
    let mut targets = Vec::new();
    for _ in 0..4 {
        targets.push(ok_target().await);
    }
    let failing = MockTarget::start().await;
    failing.respond(MockResponse::status(500));
    let mut config = format!(
        "{}targets:\n",
        queue_config("").replace("failure_threshold: 10", "failure_threshold: 100000")
    );
    for (i, target) in targets.iter().enumerate() {
        config.push_str(&webhook(&format!("ok-{i}"), target, ""));
    }
    config.push_str(&webhook("failing", &failing, ""));
    let mut server = Server::start(&config).await;

    // Eight senders, one alert a request; the test kills the server once 1000 were accepted.
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (accepted, next) = (accepted.clone(), next.clone());
        let url = server.url("/api/v2/alerts");
        senders.spawn(async move {
            let http = Http::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= ALERTS {
                    return;
                }
                let body =
                    json!([{"labels": {"alertname": format!("Crash{i}"), "severity": "critical"}}]);
                let Some(status) = http.try_post_json(&url, &body).await else {
                    return; // The server is gone.
                };
                if status == 200 {
                    accepted.lock().unwrap().push(i);
                }
            }
        });
    }
    eventually(Duration::from_secs(60), "1000 accepted alerts", || {
        accepted.lock().unwrap().len() >= KILL_AFTER
    })
    .await;
    server.kill9().await;
    while senders.join_next().await.is_some() {}
    let accepted = accepted.lock().unwrap().clone();
    let before_restart: Vec<usize> = targets.iter().map(|t| t.requests().len()).collect();
    let failing_before = failing.requests().len();
    println!(
        "crash: {} alerts accepted before kill -9; deliveries so far {:?}, failing target attempts {}",
        accepted.len(),
        before_restart,
        failing_before
    );

    // The failing target recovers while the server is down, flipped through its control
    // endpoint, so every delivery it records after the restart was answered 200, and every
    // attempt before it was answered 500.
    let flipped = Http::new()
        .send("POST", &failing.control_url(200), None, "")
        .await;
    assert_eq!(flipped.status, 204);
    let server = server.restart().await;
    let http = Http::new();
    wait_for_empty_queue(&http, &server, Duration::from_secs(120)).await;

    let mut duplicates = 0;
    let mut views: Vec<(String, BTreeMap<String, Vec<String>>)> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("ok-{i}"), deliveries(&t.requests(), 0)))
        .collect();
    views.push((
        "failing".to_owned(),
        deliveries(&failing.requests(), failing_before),
    ));
    for (name, delivered) in &views {
        for i in &accepted {
            let keys = delivered
                .get(&format!("Crash{i}"))
                .unwrap_or_else(|| panic!("accepted alert Crash{i} never reached {name}"));
            assert!(
                keys.iter().all(|k| k == &keys[0] && !k.is_empty()),
                "a duplicate of Crash{i} at {name} carries another idempotency key: {keys:?}"
            );
            duplicates += keys.len() - 1;
        }
    }
    println!(
        "crash: every one of {} accepted alerts reached all 5 targets; {duplicates} duplicate deliveries",
        accepted.len()
    );
    // A duplicate is a job a lane held when the process died: at most 16 calls in flight per
    // lane, and up to 48 more whose call had ended but whose ack was not yet on disk.
    assert!(
        duplicates <= 5 * 16 * 4,
        "{duplicates} duplicates is more than the in-flight work at the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_log_publishes_state_changes_not_repetitions() {
    let target = ok_target().await;
    let repeating = ok_target().await;
    let config = format!(
        "{}targets:\n{}{}",
        queue_config(""),
        webhook("hook", &target, "    filter: ['kind=\"plain\"']\n"),
        webhook(
            "repeating",
            &repeating,
            "    filter: ['kind=\"repeat\"']\n    repeat_interval: 1s\n"
        ),
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let url = server.url("/api/v2/alerts");
    let jobs_of = |answer: &alertpub_e2e::Answer| answer.json()["jobs"].as_u64().unwrap();

    // Ten re-sends with a zero startsAt, as amtool and Prometheus send them: one delivery.
    let firing = json!([{"labels": {"alertname": "Flappy", "kind": "plain"},
                         "startsAt": "0001-01-01T00:00:00Z"}]);
    let mut jobs = 0;
    for _ in 0..10 {
        let answer = http.post_json(&url, &firing).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        jobs += jobs_of(&answer);
    }
    assert_eq!(jobs, 1, "ten re-sends made {jobs} jobs");
    let first = wait_for_posts(&target, 1).await;
    assert_eq!(first[0].json()["status"], "firing");
    let firing_starts = first[0].json()["starts_at"].clone();

    // Its resolve, sent three times: one delivery.
    // It ends when it started, which is in the past by now: resolved.
    let resolve = json!([{"labels": {"alertname": "Flappy", "kind": "plain"},
                          "startsAt": firing_starts, "endsAt": firing_starts}]);
    let mut jobs = 0;
    for _ in 0..3 {
        jobs += jobs_of(&http.post_json(&url, &resolve).await);
    }
    assert_eq!(jobs, 1);
    let delivered = wait_for_posts(&target, 2).await;
    assert_eq!(delivered[1].json()["status"], "resolved");

    // A new startsAt is a new occurrence: delivered again.
    let restarted_at = alert_core::wire::format_timestamp(chrono::Utc::now());
    let again = json!([{"labels": {"alertname": "Flappy", "kind": "plain"},
                        "startsAt": restarted_at}]);
    assert_eq!(jobs_of(&http.post_json(&url, &again).await), 1);
    let delivered = wait_for_posts(&target, 3).await;
    assert_eq!(delivered[2].json()["status"], "firing");
    assert_eq!(posts(&target).len(), 3);

    // After the target's repeat_interval (1 s) the same firing alert is delivered again, with a
    // new idempotency key.
    let reminder = json!([{"labels": {"alertname": "Reminder", "kind": "repeat"}}]);
    assert_eq!(jobs_of(&http.post_json(&url, &reminder).await), 1);
    let first = wait_for_posts(&repeating, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if jobs_of(&http.post_json(&url, &reminder).await) == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no repeat after the interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let both = wait_for_posts(&repeating, 2).await;
    assert_ne!(idempotency_key(&first[0]), idempotency_key(&both[1]));

    // The log survives a restart: the same firing alert is still a repetition.
    let mut server = server;
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)).await.code(), Some(0));
    let server = server.restart().await;
    let answer = http.post_json(&server.url("/api/v2/alerts"), &again).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        jobs_of(&answer),
        0,
        "the log forgot across a restart: {}",
        answer.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_stops_arriving_is_auto_resolved_across_a_restart() {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        queue_config("").replace("resolve_timeout: 5m", "resolve_timeout: 2s"),
        webhook("hook", &target, "")
    );
    let mut server = Server::start(&config).await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Vanishing"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let firing = wait_for_posts(&target, 1).await;
    assert_eq!(firing[0].json()["status"], "firing");
    server.kill9().await;
    let _server = server.restart().await;
    // The firing may be delivered once more (its acknowledgement may not have reached the disk
    // before the kill); the resolve must come, from the durable log, without any new input.
    eventually(Duration::from_secs(30), "the auto-resolve", || {
        posts(&target)
            .iter()
            .any(|r| r.json()["status"] == "resolved")
    })
    .await;
    let resolved = posts(&target)
        .iter()
        .map(RecordedRequest::json)
        .find(|b| b["status"] == "resolved")
        .unwrap();
    assert_eq!(resolved["alert_name"], "Vanishing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_is_never_overtaken_by_an_older_firing() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(500));
    let config = format!(
        "{}targets:\n{}",
        queue_config(""),
        webhook("hook", &target, "")
    );
    let mut server = Server::start(&config).await;
    let http = Http::new();
    let url = server.url("/api/v2/alerts");
    let labels = json!({"alertname": "Ordered"});
    let answer = http
        .post_json(
            &url,
            &json!([{"labels": labels, "startsAt": "2026-11-01T00:00:00Z"}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // The firing is attempted, fails, and waits in backoff.
    wait_for_posts(&target, 1).await;
    let answer = http
        .post_json(
            &url,
            &json!([{"labels": labels, "startsAt": "2026-11-01T00:00:00Z",
                      "endsAt": "2026-11-01T01:00:00Z"}]),
        )
        .await;
    assert_eq!(answer.json()["jobs"], 1, "{}", answer.text);
    // Stop, let the target recover, start again: only what the target now accepts counts.
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)).await.code(), Some(0));
    let failed_before = target.requests().len();
    target.respond(MockResponse::status(200));
    let server = server.restart().await;
    wait_for_empty_queue(&http, &server, Duration::from_secs(30)).await;
    let statuses: Vec<String> = target
        .requests()
        .iter()
        .skip(failed_before)
        .filter(|r| r.method == "POST")
        .map(|r| r.json()["status"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        statuses == ["resolved"] || statuses == ["firing", "resolved"],
        "deliveries after recovery: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replay_exactly_what_is_asked() {
    let first = MockTarget::start().await;
    let second = MockTarget::start().await;
    for target in [&first, &second] {
        target.respond(MockResponse::status(400).body("rejected"));
    }
    let config = format!(
        "{}targets:\n{}{}",
        queue_config(""),
        webhook("first", &first, ""),
        webhook("second", &second, ""),
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let alerts: Vec<Value> = ["A", "B", "C"]
        .iter()
        .map(|n| json!({"labels": {"alertname": n}, "startsAt": "2026-11-01T00:00:00Z"}))
        .collect();
    let answer = http
        .post_json(&server.url("/api/v2/alerts"), &Value::Array(alerts))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // A permanent failure goes to the DLQ after one attempt.
    let dlq = poll_json(&http, &server.url("/api/v1/dlq"), |dlq| {
        dlq["entries"].as_array().is_some_and(|e| e.len() == 6)
    })
    .await;
    let entries = dlq["entries"].as_array().expect("a DLQ listing").clone();
    assert_eq!(entries.len(), 6, "{dlq}");
    for entry in &entries {
        assert_eq!(entry["reason"], "permanent");
        assert_eq!(entry["attempts"], 1);
        assert_eq!(entry["last_error"]["status_code"], 400);
    }
    assert_eq!(posts(&first).len(), 3);
    // Filters and the cursor.
    let page = http
        .get(&server.url("/api/v1/dlq?target=first&limit=2"))
        .await
        .json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
    let rest = http
        .get(&server.url(&format!("/api/v1/dlq?target=first&limit=2&cursor={cursor}")))
        .await
        .json();
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    for target in [&first, &second] {
        target.respond(MockResponse::status(200));
    }
    // Replaying one entry sends that entry and nothing else.
    let x = entries
        .iter()
        .find(|e| e["target"] == "first" && e["alert"]["alert"]["labels"]["alertname"] == "B")
        .or_else(|| entries.iter().find(|e| e["target"] == "first"))
        .unwrap();
    let x_name = x["alert"]["alert"]["labels"]["alertname"].clone();
    let id = x["id"].as_str().unwrap();
    let answer = http
        .post_json(&server.url(&format!("/api/v1/dlq/{id}/replay")), &json!({}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    wait_for_empty_queue(&http, &server, Duration::from_secs(20)).await;
    let sent = posts(&first);
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].json()["alert_name"], x_name);
    assert_eq!(posts(&second).len(), 3);
    // Replaying it again: it is gone.
    let answer = http
        .post_json(&server.url(&format!("/api/v1/dlq/{id}/replay")), &json!({}))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.text);

    // A filtered replay sends exactly the filtered set.
    let answer = http
        .post_json(
            &server.url("/api/v1/dlq/replay"),
            &json!({"target": "second"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["replayed"], 3, "{}", answer.text);
    wait_for_empty_queue(&http, &server, Duration::from_secs(20)).await;
    let mut names: Vec<String> = posts(&second).iter().skip(3).map(alert_name).collect();
    names.sort();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(posts(&first).len(), 4);
    let left = http.get(&server.url("/api/v1/dlq")).await.json();
    assert_eq!(left["entries"].as_array().unwrap().len(), 2, "{left}");
    assert!(
        left["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["target"] == "first")
    );

    // Delete one.
    let id = left["entries"][0]["id"].as_str().unwrap();
    let answer = http
        .send(
            "DELETE",
            &server.url(&format!("/api/v1/dlq/{id}")),
            None,
            "",
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let left = http.get(&server.url("/api/v1/dlq")).await.json();
    assert_eq!(left["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_superseded_dead_letter_is_409() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(400));
    let config = format!(
        "{}targets:\n{}",
        queue_config(""),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let url = server.url("/api/v2/alerts");
    let labels = json!({"alertname": "Superseded"});
    http.post_json(
        &url,
        &json!([{"labels": labels, "startsAt": "2026-11-01T00:00:00Z"}]),
    )
    .await;
    wait_for_posts(&target, 1).await;
    let dlq = poll_json(&http, &server.url("/api/v1/dlq"), |dlq| {
        dlq["entries"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    let id = dlq["entries"][0]["id"]
        .as_str()
        .expect("a dead letter")
        .to_owned();
    // A newer state of the same alert is accepted.
    let answer = http
        .post_json(
            &url,
            &json!([{"labels": labels, "startsAt": "2026-11-01T00:00:00Z",
                      "endsAt": "2026-11-01T01:00:00Z"}]),
        )
        .await;
    assert_eq!(answer.json()["jobs"], 1, "{}", answer.text);
    let answer = http
        .post_json(&server.url(&format!("/api/v1/dlq/{id}/replay")), &json!({}))
        .await;
    assert_eq!(answer.status, 409, "{}", answer.text);
    assert_eq!(answer.error_kind(), "superseded");
}

/// A tmpfs mounted for one test, unmounted (lazily, in case a file is still open) on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `path`, or says why it cannot.
    fn mount(path: &std::path::Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(Self(path.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system holding `path` until a write fails for lack of space.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0_u8; 64 * 1024];
    for _ in 0..10_000 {
        if file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_err()
        {
            return;
        }
    }
    panic!("the file system never filled up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_recovers_when_space_returns() {
    let dir = alertpub_e2e::TempDir::new();
    let mount = match Tmpfs::mount(&dir.path().join("queue"), "8m") {
        Ok(mount) => mount,
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("skipped: mounting a tmpfs needs root ({why})");
            return;
        }
        Err(why) => panic!("cannot mount a tmpfs for the full-disk test: {why}"),
    };
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        queue_config(""),
        webhook("hook", &target, "")
    );
    let server = Server::start_in(dir, &config).await;
    let http = Http::new();
    let url = server.url("/api/v2/alerts");
    let filler = server.dir().join("queue").join("filler");
    fill(&filler);

    // Alerts with large annotations until the store cannot write: 503, and nothing crashes.
    let note = "x".repeat(15 * 1024);
    let mut refused = None;
    for i in 0..500 {
        let answer = http
            .post_json(
                &url,
                &json!([{"labels": {"alertname": format!("Disk{i}")}, "annotations": {"a": note, "b": note, "c": note}}]),
            )
            .await;
        if answer.status != 200 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a full disk refuses ingest");
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.error_kind(), "storage", "{}", refused.text);
    assert_eq!(http.get(&server.url("/healthz")).await.status, 200);
    // The queue file cannot be written: not ready (a load balancer sends elsewhere), but alive
    // (a restart would not give the disk room). Readiness turns once three commits in a row
    // have failed; with no more traffic, the maintenance pass's commits (one a second) fail.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let ready = http.get(&server.url("/-/ready")).await;
        if ready.status == 503 || std::time::Instant::now() >= deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.error_kind(), "store_failing", "{}", ready.text);
    assert_eq!(http.get(&server.url("/-/healthy")).await.status, 200);

    // Space returns: ingest works again (once the store's next reopening attempt, on its
    // backoff, succeeds: until then a 503 says when the next one is) and the alert is
    // delivered.
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = http
            .post_json(
                &url,
                &json!([{"labels": {"alertname": "AfterTheDiskFilled"}}]),
            )
            .await;
        if answer.status != 503 || std::time::Instant::now() >= deadline {
            break answer;
        }
        assert_eq!(answer.error_kind(), "storage", "{}", answer.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(http.get(&server.url("/-/ready")).await.status, 200);
    eventually(DELIVERY_AFTER_RECOVERY, "the alert after recovery", || {
        posts(&target)
            .iter()
            .any(|r| r.json()["alert_name"] == "AfterTheDiskFilled")
    })
    .await;
    // The server's directory holds the mount point: unmount first, then remove what is left.
    let dir = server.dir().to_path_buf();
    drop(server);
    drop(mount);
    let _ = std::fs::remove_dir_all(dir);
}

const DELIVERY_AFTER_RECOVERY: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_target_pauses_and_a_removed_one_dead_letters_after_its_grace() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(500));
    let keep = ok_target().await;
    let config = |hook_extra: &str, with_hook: bool| {
        let mut config = format!(
            "{}targets:\n{}",
            queue_config("  removal_grace: 1s\n"),
            webhook("keep", &keep, "")
        );
        if with_hook {
            config.push_str(&webhook("hook", &target, hook_extra));
        }
        config
    };
    let server = Server::start(&config("", true)).await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Paused"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    wait_for_posts(&target, 1).await;

    // Disabled by a reload: its job stays, paused, and /api/v1/queue says so.
    std::fs::write(
        server.dir().join("alertpub.yaml"),
        config("    enabled: false\n", true),
    )
    .unwrap();
    let answer = http
        .post_json(&server.url("/api/v1/targets/refresh"), &json!({}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let queue = poll_json(&http, &server.url("/api/v1/queue"), |queue| {
        let hook = queue["targets"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["target"] == "hook").cloned());
        hook.is_some_and(|h| h["paused"] == "disabled" && h["pending"] == 1)
    })
    .await;
    let hook = queue["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["target"] == "hook").cloned())
        .unwrap_or_else(|| panic!("no queue line for hook: {queue}"));
    assert_eq!(hook["paused"], "disabled", "{queue}");
    assert_eq!(hook["pending"], 1, "{queue}");

    // Removed: after the grace period its job moves to the DLQ as target_removed.
    std::fs::write(server.dir().join("alertpub.yaml"), config("", false)).unwrap();
    let answer = http
        .post_json(&server.url("/api/v1/targets/refresh"), &json!({}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let dlq = poll_json(&http, &server.url("/api/v1/dlq?target=hook"), |dlq| {
        dlq["entries"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert_eq!(dlq["entries"][0]["reason"], "target_removed", "{dlq}");
    assert_eq!(
        dlq["entries"][0]["alert"]["alert"]["labels"]["alertname"],
        "Paused"
    );
    let queue = http.get(&server.url("/api/v1/queue")).await.json();
    assert_eq!(queue["depth"], 0, "{queue}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_resolve_updates_the_original_message_after_a_restart() {
    let slack = MockTarget::start().await;
    slack.respond(
        MockResponse::status(200)
            .json(&json!({"ok": true, "ts": "1700000000.000100", "channel": "C0ALERTS"})),
    );
    let dir = alertpub_e2e::TempDir::new();
    std::fs::write(dir.path().join("slack-token"), "xoxb-test-token").unwrap();
    let config = format!(
        "{}targets:\n  - name: slack\n    kind: slack\n    url: {}\n    token_file: slack-token\n    channel: \"#alerts\"\n",
        queue_config(""),
        slack.base_url()
    );
    let mut server = Server::start_in(dir, &config).await;
    let http = Http::new();
    let labels = json!({"alertname": "SlackThread"});
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": labels, "startsAt": "2026-11-01T00:00:00Z"}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let posted = wait_for_posts(&slack, 1).await;
    assert!(
        posted[0].path.ends_with("/chat.postMessage"),
        "{}",
        posted[0].path
    );

    // The message's ts is kept in the queue file, so a restart does not lose it.
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)).await.code(), Some(0));
    let server = server.restart().await;
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": labels, "startsAt": "2026-11-01T00:00:00Z",
                      "endsAt": "2026-11-01T01:00:00Z"}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let requests = wait_for_posts(&slack, 2).await;
    let update = &requests[1];
    assert!(update.path.ends_with("/chat.update"), "{}", update.path);
    assert_eq!(update.json()["ts"], "1700000000.000100");
}

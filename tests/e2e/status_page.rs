//! The status page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven by `tests/browser/status_page.py` through Debian's
//! `python3-selenium`) loads `/` from a live server, sends a test notification to a target
//! through the sync API, and replays a dead letter; the target receives the test, and the DLQ
//! shrinks. The screenshot goes to `ALERTPUB_SCREENSHOT` when set (docs/status-page.png is one).

use std::path::Path;
use std::process::Command;

use alertpub_e2e::{Http, Server, TempDir};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget};

use crate::{DELIVERY, base_config, ok_target, posts, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_sends_a_test_and_replays_a_dead_letter_in_chromium() {
    let Some([chromium, chromedriver]) = crate::interop::programs(
        "status_page::the_status_page_sends_a_test_and_replays_a_dead_letter_in_chromium",
        [
            crate::interop::Program::Chromium,
            crate::interop::Program::Chromedriver,
        ],
    ) else {
        return;
    };
    // Debian's python3-selenium is for Debian's python3, whatever else is first on PATH.
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    if !crate::interop::runs(
        "status_page::the_status_page_sends_a_test_and_replays_a_dead_letter_in_chromium",
        python,
        &["-c", "import selenium"],
        "apt-get install python3-selenium",
    ) {
        return;
    }

    let hook = ok_target().await;
    let broken = MockTarget::start().await;
    broken.respond(MockResponse::status(400).body("no such channel"));
    let dir = TempDir::new();
    std::fs::write(dir.path().join("tokens"), "page-token\n").unwrap();
    let config = format!(
        "{}targets:\n{}{}",
        crate::server_lines(&base_config(), "  auth:\n    bearer_tokens_file: tokens\n"),
        webhook("hook", &hook, ""),
        webhook("broken", &broken, "")
    );
    let server = Server::start_in(dir, &config).await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "PageDead", "severity": "critical"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    alertpub_e2e::eventually(DELIVERY, "a dead letter", || posts(&broken).len() == 1).await;
    let deadline = std::time::Instant::now() + DELIVERY;
    while http.get(&server.url("/api/v1/dlq")).await.json()["entries"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The target is fixed: a replay will be delivered.
    broken.respond(MockResponse::status(200));

    let screenshot = std::env::var("ALERTPUB_SCREENSHOT").map_or_else(
        |_| std::env::temp_dir().join(format!("alertpub-status-{}.png", std::process::id())),
        Into::into,
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/status_page.py");
    let url = server.url("/");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["--url", &url, "--token", "page-token", "--target", "hook"])
            .arg("--screenshot")
            .arg(&screenshot)
            .arg("--chromium")
            .arg(&chromium)
            .arg("--chromedriver")
            .arg(&chromedriver)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("no report: {stdout}"));
    assert_eq!(seen["title"], "alertpub", "{seen}");
    assert_eq!(seen["targets"], 2, "{seen}");
    assert!(
        seen["test_notice"]
            .as_str()
            .is_some_and(|n| n.contains("delivered to hook")),
        "{seen}"
    );
    assert!(
        seen["dlq_after"].as_u64() < seen["dlq_before"].as_u64(),
        "{seen}"
    );

    // What the page did, seen from the targets and the API.
    assert!(
        posts(&hook)
            .iter()
            .any(|r| r.json()["alert_name"] == "AlertpubTestNotification"),
        "the test notification never reached the target"
    );
    alertpub_e2e::eventually(DELIVERY, "the replayed delivery", || {
        posts(&broken).len() == 2
    })
    .await;
    let dlq = http.get(&server.url("/api/v1/dlq")).await.json();
    assert_eq!(dlq["entries"], json!([]), "{dlq}");
}

//! Vendors' documented answers that change how the queue behaves, against the release binary.

use std::time::Duration;

use alertpub_e2e::{Http, Server, TempDir};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget};

use crate::base_config;
use crate::interop::{ACT, poll_until};

/// PagerDuty answers 429 without `Retry-After` when an integration key is over its limit
/// (https://developer.pagerduty.com/docs/events-api-rate-limits). The lane pauses for 30 s, not
/// 1 s: the target is not hit again within the next few seconds, and `/api/v1/queue` shows the
/// pause as rate limited until about 30 s ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_429_without_retry_after_pauses_the_lane_for_30_s() {
    let pagerduty = MockTarget::start().await;
    pagerduty.respond(MockResponse::status(429).json(&json!({
        "status": "throttle event",
        "message": "Requests for this service are arriving too quickly.  Please retry later."
    })));
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join("routing-key"),
        "R0UTINGKEY0000000000000000000000\n",
    )
    .expect("write the routing key");
    let config = format!(
        "{}targets:\n  - name: pd\n    kind: pagerduty\n    url: {}\n    routing_key_file: routing-key\n",
        base_config().replace("max_backoff: 1s", "max_backoff: 5m"),
        pagerduty.base_url(),
    );
    let server = Server::start_in(dir, &config).await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Throttled", "severity": "critical"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    crate::wait_for_posts(&pagerduty, 1).await;
    let hit = Utc::now();
    let pause = poll_until(ACT, "the lane's rate-limit pause", async || {
        let queue: Value = http.get(&server.url("/api/v1/queue")).await.json();
        let lane = queue["targets"]
            .as_array()?
            .iter()
            .find(|t| t["target"] == "pd")?
            .clone();
        (lane["paused"] == "rate_limited").then_some(lane)
    })
    .await;
    let until: DateTime<Utc> = pause["paused_until"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("a pause with an end: {pause}"));
    let ahead = (until - hit).num_milliseconds();
    assert!(
        (25_000..=31_000).contains(&ahead),
        "paused until {ahead} ms after the 429, not about 30 s: {pause}"
    );
    // Before, the lane re-hit the target every second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // (Health probes are GETs; deliveries are POSTs.)
    assert_eq!(
        crate::posts(&pagerduty).len(),
        1,
        "the target is not sent to again during the pause: {:?}",
        pagerduty
            .requests()
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect::<Vec<_>>()
    );
}

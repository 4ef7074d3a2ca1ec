//! Delivery history through the API: every attempt of 100 alerts to 3 targets, one of them
//! refusing, listed, searched and paged by `GET /api/v1/deliveries`, and one alert's whole story
//! by `GET /api/v1/alerts/{fingerprint}`.

use std::collections::BTreeSet;

use alertpub_e2e::{Http, Server};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget};

use crate::{DELIVERY, base_config, ok_target, wait_for_posts, webhook};

const ALERTS: usize = 100;

/// Every entry of the search `query`, following the cursor, `limit` at a time.
async fn all_pages(http: &Http, server: &Server, query: &str, limit: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<u64> = None;
    for _ in 0..1_000 {
        let url = match cursor {
            Some(c) => server.url(&format!(
                "/api/v1/deliveries?{query}&limit={limit}&cursor={c}"
            )),
            None => server.url(&format!("/api/v1/deliveries?{query}&limit={limit}")),
        };
        let answer = http.get(&url).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let page = answer.json();
        let got = page["entries"].as_array().cloned().unwrap_or_default();
        assert!(got.len() <= limit);
        entries.extend(got);
        match page["next_cursor"].as_u64() {
            Some(next) => cursor = Some(next),
            None => return entries,
        }
    }
    panic!("the pages never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_listed_searched_and_paged() {
    let (a, b) = (ok_target().await, ok_target().await);
    let refusing = MockTarget::start().await;
    refusing.respond(MockResponse::status(400).body("no such channel"));
    let config = format!(
        "{}targets:\n{}{}{}",
        base_config().replace("max_alerts_per_request: 5", "max_alerts_per_request: 100"),
        webhook("hook-a", &a, ""),
        webhook("hook-b", &b, ""),
        webhook("refusing", &refusing, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let alerts: Vec<Value> = (0..ALERTS)
        .map(|i| json!({"labels": {"alertname": format!("History{i}"), "severity": if i % 2 == 0 { "critical" } else { "warning" }}}))
        .collect();
    let answer = http
        .post_json(&server.url("/api/v2/alerts"), &Value::Array(alerts))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    wait_for_posts(&a, ALERTS).await;
    wait_for_posts(&b, ALERTS).await;
    wait_for_posts(&refusing, ALERTS).await;

    // The records reach the store a moment after the calls end.
    let deadline = std::time::Instant::now() + DELIVERY;
    let mut all;
    loop {
        all = all_pages(&http, &server, "since=2000-01-01T00:00:00Z", 1_000).await;
        if all.len() >= 3 * ALERTS || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(all.len(), 3 * ALERTS, "one attempt per alert and target");
    for target in ["hook-a", "hook-b"] {
        let of: Vec<&Value> = all.iter().filter(|r| r["target"] == target).collect();
        assert_eq!(of.len(), ALERTS, "{target}");
        assert!(
            of.iter().all(|r| r["outcome"] == "delivered"
                && r["status_code"] == 200
                && r["attempt"] == 1
                && r["status"] == "firing"
                && r["path"] == "queue"),
            "{of:?}"
        );
    }
    let refused: Vec<&Value> = all.iter().filter(|r| r["target"] == "refusing").collect();
    assert_eq!(refused.len(), ALERTS);
    assert!(
        refused.iter().all(|r| r["outcome"] == "failed"
            && r["status_code"] == 400
            && r["error_kind"] == "permanent"),
        "{refused:?}"
    );
    // No message, URL or body is kept: only the fields of the record.
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains("no such channel") && !text.contains("/hook"),
        "{text}"
    );
    let ids: BTreeSet<u64> = all.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "no record twice");

    // Paging by 7 finds the same records, newest first, none twice.
    let paged = all_pages(&http, &server, "target=hook-a", 7).await;
    assert_eq!(paged.len(), ALERTS);
    let paged_ids: Vec<u64> = paged.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(paged_ids.windows(2).all(|w| w[0] > w[1]), "{paged_ids:?}");

    // By matcher: the critical half, on every target.
    let critical = all_pages(&http, &server, "matcher=severity%3D%22critical%22", 1_000).await;
    assert_eq!(critical.len(), 3 * ALERTS / 2);
    let two = all_pages(
        &http,
        &server,
        "matcher=severity%3D%22critical%22&matcher=alertname%3D~%22History1.%22",
        1_000,
    )
    .await;
    // History10, 12, 14, 16, 18 on three targets.
    assert_eq!(two.len(), 15, "{two:?}");

    // One alert's story: its labels, its state at each target, and its attempts.
    let fingerprint = refused[0]["fingerprint"].as_str().unwrap().to_owned();
    let answer = http
        .get(&server.url(&format!("/api/v1/alerts/{fingerprint}")))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let view = answer.json();
    assert_eq!(view["fingerprint"], fingerprint.as_str());
    assert!(view["labels"]["alertname"].as_str().is_some(), "{view}");
    let targets: Vec<&str> = view["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["hook-a", "hook-b", "refusing"], "{view}");
    assert!(
        view["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "firing")
    );
    assert_eq!(view["deliveries"].as_array().unwrap().len(), 3, "{view}");

    // The synchronous API's attempts are kept too, marked as such.
    let answer = http
        .post_json(
            &server.url("/api/v1/publish/parallel"),
            &json!({"alert": {"labels": {"alertname": "SyncOne"}}, "targets": ["hook-a"]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let deadline = std::time::Instant::now() + DELIVERY;
    let sync = loop {
        let sync = all_pages(&http, &server, "matcher=alertname%3D%22SyncOne%22", 10).await;
        if !sync.is_empty() || std::time::Instant::now() > deadline {
            break sync;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(sync.len(), 1, "{sync:?}");
    assert_eq!(
        (&sync[0]["path"], &sync[0]["target"]),
        (&json!("sync"), &json!("hook-a"))
    );

    // Bad input is a 400 with the error shape; an unknown alert a 404.
    for query in [
        "fingerprint=xyz",
        "matcher=%3D%3D",
        "since=yesterday",
        "cursor=-1",
        "color=red",
    ] {
        let answer = http
            .get(&server.url(&format!("/api/v1/deliveries?{query}")))
            .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
    }
    let answer = http
        .get(&server.url("/api/v1/alerts/0123456789abcdef"))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert_eq!(answer.error_kind(), "unknown_alert");
}

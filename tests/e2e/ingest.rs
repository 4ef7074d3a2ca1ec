//! Ingest through `/api/v2/alerts` and the Alertmanager webhook receiver, and Alertmanager's
//! normalisation of timestamps.

use alertpub_e2e::{Http, Server};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{base_config, ok_target, posts, wait_for_posts, webhook};

fn alert_names(requests: &[test_support::RecordedRequest]) -> Vec<String> {
    let mut names: Vec<String> = requests
        .iter()
        .map(|r| {
            r.json()["alert_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_v2_alerts_reach_every_matching_target_and_filters_hold() {
    let all = ok_target().await;
    let critical = ok_target().await;
    let config = format!(
        "{}targets:\n{}{}",
        base_config(),
        webhook("hook-all", &all, ""),
        webhook(
            "hook-critical",
            &critical,
            "    filter: ['severity=\"critical\"']\n"
        ),
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([
                {"labels": {"alertname": "DiskFull", "severity": "critical"}},
                {"labels": {"alertname": "CpuHigh", "severity": "warning"}},
            ]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // Three jobs: two for hook-all, one for hook-critical. The warning was filtered out.
    assert_eq!(answer.json()["jobs"], 3, "{}", answer.text);

    let to_all = wait_for_posts(&all, 2).await;
    assert_eq!(alert_names(&to_all), ["CpuHigh", "DiskFull"]);
    let to_critical = wait_for_posts(&critical, 1).await;
    assert_eq!(alert_names(&to_critical), ["DiskFull"]);
    assert_eq!(posts(&all).len(), 2);
    assert_eq!(posts(&critical).len(), 1);

    // A re-send of the same firing alerts is a repeat, not a new notification.
    let again = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "DiskFull", "severity": "critical"}}]),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["duplicates"], 2, "{}", again.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receiver_payload_reaches_the_targets() {
    let (target, server) = crate::one_webhook().await;
    let message = json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"Db\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "alertpub",
        "groupLabels": {"alertname": "Db"},
        "commonLabels": {"alertname": "Db"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Db", "instance": "a"},
             "annotations": {"summary": "down"}, "startsAt": "2026-11-23T10:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://127.0.0.1:9090/graph",
             "fingerprint": "0123456789abcdef"},
            {"status": "resolved", "labels": {"alertname": "Db", "instance": "b"},
             "annotations": {}, "startsAt": "2026-11-23T09:00:00Z",
             "endsAt": "2026-11-23T09:30:00Z", "generatorURL": "", "fingerprint": "fedcba9876543210"}
        ]
    });
    let answer = Http::new()
        .post_json(&server.url("/api/v1/alerts/alertmanager"), &message)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let delivered = wait_for_posts(&target, 2).await;
    let mut statuses: Vec<(String, String)> = delivered
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["labels"]["instance"].as_str().unwrap().to_owned(),
                body["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("a".to_owned(), "firing".to_owned()),
            ("b".to_owned(), "resolved".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_normalisation_of_timestamps() {
    let (target, server) = crate::one_webhook().await;
    let http = Http::new();

    // amtool sends zero timestamps: firing, starting now.
    let before = Utc::now();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Amtool"},
                     "startsAt": "0001-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]),
        )
        .await;
    let after = Utc::now();
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = wait_for_posts(&target, 1).await[0].json();
    assert_eq!(body["alert_name"], "Amtool");
    assert_eq!(body["status"], "firing");
    let starts: DateTime<Utc> = body["starts_at"].as_str().unwrap().parse().unwrap();
    let slack = chrono::Duration::milliseconds(1);
    assert!(
        starts >= before - slack && starts <= after + slack,
        "startsAt {starts} is not the time of the request ({before}..{after})"
    );

    // Only a past endsAt: resolved.
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Gone"}, "endsAt": "2026-01-01T00:00:00Z"}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let delivered = wait_for_posts(&target, 2).await;
    let gone = delivered
        .iter()
        .map(test_support::RecordedRequest::json)
        .find(|b| b["alert_name"] == "Gone")
        .expect("the resolved alert was delivered");
    assert_eq!(gone["status"], "resolved");

    // A batch of three with the middle one invalid: the others are kept, index 1 is named.
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([
                {"labels": {"alertname": "First"}},
                {"labels": {"alertname": 42}},
                {"labels": {"alertname": "Third"}},
            ]),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["error"]["kind"], "invalid_alerts");
    let invalid = body["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 1, "{body}");
    assert_eq!(invalid[0]["index"], 1);
    assert_eq!(body["accepted"], 2);
    let delivered = wait_for_posts(&target, 4).await;
    let names: Vec<Value> = delivered
        .iter()
        .map(|r| r.json()["alert_name"].clone())
        .collect();
    assert!(
        names.contains(&json!("First")) && names.contains(&json!("Third")),
        "{names:?}"
    );
    assert_eq!(delivered.len(), 4);
}

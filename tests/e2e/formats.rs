//! The webhook's `format: alertmanager` read by a real consumer of Alertmanager's webhook: a
//! second alertpub's `POST /api/v1/alerts/alertmanager`. Fingerprints hold end to end: the one
//! the first alertpub computed, the one Alertmanager's algorithm gives for the labels, and the
//! one the second alertpub delivers are the same, for the firing and for the resolve.

use alertpub_e2e::{Http, Server};
use serde_json::{Value, json};
use test_support::MockTarget;

use crate::interop::{ACT, poll_until};
use crate::{base_config, wait_for_posts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_format_webhook_is_read_by_an_alertmanager_webhook_consumer() {
    let sink = MockTarget::start().await;
    let consumer = Server::start(&format!(
        "{}targets:\n  - name: sink\n    kind: webhook\n    url: {}\n",
        base_config(),
        sink.url("/sink"),
    ))
    .await;
    let sender = Server::start(&format!(
        "{}targets:\n  - name: am-consumer\n    kind: webhook\n    url: {}\n    format: alertmanager\n    external_url: http://alertpub.example\n",
        base_config(),
        consumer.url("/api/v1/alerts/alertmanager"),
    ))
    .await;
    let http = Http::new();
    let labels = [
        json!({"alertname": "DiskFull", "instance": "db-1", "severity": "critical"}),
        json!({"alertname": "DiskFull", "instance": "db-2", "severity": "warning"}),
    ];
    let firing: Vec<Value> = labels.iter().map(|l| json!({"labels": l})).collect();
    let answer = http
        .post_json(&sender.url("/api/v2/alerts"), &Value::Array(firing))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let delivered = wait_for_posts(&sink, 2).await;
    let expected: Vec<String> = labels
        .iter()
        .map(|l| {
            let labels: alert_core::Labels = serde_json::from_value(l.clone()).unwrap();
            alert_core::Fingerprint::of(&labels).to_string()
        })
        .collect();
    let mut seen: Vec<String> = delivered
        .iter()
        .map(|r| {
            let body = r.json();
            assert_eq!(body["status"], "firing", "{body}");
            body["fingerprint"].as_str().unwrap().to_owned()
        })
        .collect();
    seen.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(
        seen, sorted,
        "the consumer's fingerprints are Alertmanager's"
    );
    // The sender's own record of what it sent names the same fingerprints (the history is
    // written in batches, so it is read until both are there).
    let sent = poll_until(ACT, "the sender's delivery history", async || {
        let history: Value = http
            .get(&sender.url("/api/v1/deliveries?target=am-consumer"))
            .await
            .json();
        let mut sent: Vec<String> = history["entries"]
            .as_array()?
            .iter()
            .filter_map(|d| d["fingerprint"].as_str().map(str::to_owned))
            .collect();
        sent.sort();
        sent.dedup();
        (sent.len() == 2).then_some(sent)
    })
    .await;
    assert_eq!(sent, sorted);

    // The resolve of the first alert reaches the consumer as a resolve of the same alert.
    let ended = chrono::Utc::now() - chrono::Duration::seconds(5);
    let resolve = json!([{"labels": labels[0], "endsAt": ended.to_rfc3339()}]);
    let answer = http
        .post_json(&sender.url("/api/v2/alerts"), &resolve)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let delivered = wait_for_posts(&sink, 3).await;
    let last = delivered[2].json();
    assert_eq!(last["status"], "resolved", "{last}");
    assert_eq!(last["fingerprint"], expected[0].as_str());
}

//! The Discord publisher against a mock webhook on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{ErrorKind, PermanentReason, Publisher};
use serde_json::json;
use test_support::kind::{build, disk_full, publish};
use test_support::{MockResponse, MockTarget};

const TOKEN: &str = "d1sc0rdW3bh00kT0k3n000000000000001";

fn publisher(target: &MockTarget, extra: serde_json::Value) -> Arc<dyn Publisher> {
    let mut settings = json!({"url": target.url(&format!("/api/webhooks/123/{TOKEN}"))});
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    build(publishers_discord::from_settings, settings, Arc::default()).unwrap()
}

#[tokio::test]
async fn messages_wait_for_the_saved_message_and_return_its_id() {
    let target = MockTarget::start().await;
    target
        .respond(MockResponse::status(200).json(&json!({"id": "1180000000000000001", "type": 0})));
    let publisher = publisher(&target, json!({"thread_id": "42", "username": "alertpub"}));
    let receipt = publish(&publisher, &disk_full(false)).await.unwrap();
    assert_eq!(receipt.message_ref.as_deref(), Some("1180000000000000001"));
    publish(&publisher, &disk_full(true)).await.unwrap();
    let requests = target.requests();
    assert_eq!(
        requests[0].path,
        format!("/api/webhooks/123/{TOKEN}?wait=true&thread_id=42")
    );
    assert_eq!(requests[0].json()["username"], "alertpub");
    assert_eq!(requests[0].json()["allowed_mentions"], json!({"parse": []}));
    assert_eq!(
        requests[1].json()["embeds"][0]["title"],
        "[RESOLVED] DiskFull on db-1"
    );
}

#[tokio::test]
async fn a_429_takes_its_retry_after_from_the_body_and_errors_never_show_the_token() {
    let target = MockTarget::start().await;
    target.enqueue(MockResponse::status(429).json(&json!({
        "message": "You are being rate limited.", "retry_after": 1.5, "global": false
    })));
    target.enqueue(MockResponse::status(404).body(format!("Unknown Webhook {TOKEN}")));
    let publisher = publisher(&target, json!({}));
    let limited = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        limited.kind,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_millis(1500))
        }
    );
    let gone = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        gone.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::NotFound
        }
    );
    let shown = format!("{gone} {gone:?} {limited} {publisher:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(
        publisher
            .health_probe()
            .unwrap()
            .url
            .expose()
            .ends_with(TOKEN)
    );
}

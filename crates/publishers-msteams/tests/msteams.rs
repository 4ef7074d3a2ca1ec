//! The Teams publisher against a mock Workflows trigger on 127.0.0.1.

use std::sync::Arc;

use alert_core::{ErrorKind, PermanentReason, Publisher};
use serde_json::json;
use test_support::kind::{build, disk_full, publish};
use test_support::{MockResponse, MockTarget};

const SIG: &str = "s1gnature0000000000000000000000001";

fn publisher(target: &MockTarget) -> Arc<dyn Publisher> {
    let url = target.url(&format!(
        "/workflows/abc/triggers/manual/paths/invoke?sig={SIG}"
    ));
    build(
        publishers_msteams::from_settings,
        json!({"url": url}),
        Arc::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_firing_and_its_resolve_are_adaptive_cards() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(202));
    publish(&publisher(&target), &disk_full(false))
        .await
        .unwrap();
    publish(&publisher(&target), &disk_full(true))
        .await
        .unwrap();
    let requests = target.requests();
    assert!(requests[0].path.ends_with(&format!("sig={SIG}")));
    let card = |i: usize| requests[i].json()["attachments"][0].clone();
    assert_eq!(
        card(0)["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(
        card(0)["content"]["body"][0]["text"],
        "[FIRING] DiskFull on db-1"
    );
    assert_eq!(
        card(1)["content"]["body"][0]["text"],
        "[RESOLVED] DiskFull on db-1"
    );
    assert_eq!(card(1)["content"]["body"][0]["color"], "Good");
}

#[tokio::test]
async fn throttling_and_errors_are_classified_and_never_show_the_signature() {
    let target = MockTarget::start().await;
    target.enqueue(
        MockResponse::status(200).body("Microsoft Teams endpoint returned HTTP error 429"),
    );
    target.enqueue(MockResponse::status(429).header("retry-after", "3"));
    target.enqueue(MockResponse::status(400).body(format!("bad flow {SIG}")));
    let publisher = publisher(&target);
    let throttled = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(throttled.kind, ErrorKind::RateLimited { retry_after: None });
    let limited = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert!(matches!(
        limited.kind,
        ErrorKind::RateLimited {
            retry_after: Some(_)
        }
    ));
    let bad = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        bad.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::BadRequest
        }
    );
    let shown = format!("{bad} {bad:?} {throttled} {publisher:?}");
    assert!(!shown.contains(SIG), "{shown}");
    assert!(publisher.health_probe().is_none());
}

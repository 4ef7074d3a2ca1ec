//! The incident.io publisher against a mock alert-events API on 127.0.0.1.

use std::sync::Arc;

use alert_core::{ErrorKind, PermanentReason, Publisher};
use serde_json::json;
use test_support::kind::{build, disk_full, publish};
use test_support::{MockResponse, MockTarget};

const TOKEN: &str = "inc-alert-source-token-000000000001";

fn publisher(target: &MockTarget) -> Arc<dyn Publisher> {
    let settings = json!({"url": target.base_url(), "source_config_id": "01HSRC", "token": TOKEN});
    build(
        publishers_incidentio::from_settings,
        settings,
        Arc::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn firing_and_resolve_share_the_deduplication_key() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(202).json(&json!({
        "deduplication_key": "k", "message": "Event accepted for processing", "status": "success"
    })));
    publish(&publisher(&target), &disk_full(false))
        .await
        .unwrap();
    publish(&publisher(&target), &disk_full(true))
        .await
        .unwrap();
    let requests = target.requests();
    for request in &requests {
        assert_eq!(request.path, "/v2/alert_events/http/01HSRC");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let (firing, resolved) = (requests[0].json(), requests[1].json());
    assert_eq!(firing["status"], "firing");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(firing["deduplication_key"], resolved["deduplication_key"]);
    assert_eq!(firing["source_url"], "http://prometheus.local/graph");
}

#[tokio::test]
async fn errors_are_classified_and_never_show_the_token() {
    let target = MockTarget::start().await;
    target.enqueue(MockResponse::status(429));
    target.enqueue(
        MockResponse::status(422).json(&json!({"type": "validation_error", "token": TOKEN})),
    );
    target.enqueue(MockResponse::status(503));
    let publisher = publisher(&target);
    let limited = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert!(matches!(limited.kind, ErrorKind::RateLimited { .. }));
    let invalid = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        invalid.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::BadRequest
        }
    );
    assert!(
        !format!("{invalid} {invalid:?}").contains(TOKEN),
        "{invalid}"
    );
    let down = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(down.kind, ErrorKind::Transient);
    assert!(publisher.health_probe().is_none());
}

#[tokio::test]
async fn a_source_id_that_is_not_an_id_is_refused() {
    let err = build(
        publishers_incidentio::from_settings,
        json!({"source_config_id": "../v1/x", "token": TOKEN}),
        Arc::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("source_config_id"), "{err}");
}

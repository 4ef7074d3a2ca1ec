//! The Opsgenie publisher against a mock Alert API on 127.0.0.1.

use std::sync::Arc;

use alert_core::{ErrorKind, PermanentReason, Publisher};
use serde_json::json;
use test_support::kind::{build, disk_full, publish};
use test_support::{MockResponse, MockTarget};

const KEY: &str = "0psg3n1e-k3y-0000-0000-000000000001";

fn publisher(target: &MockTarget) -> Arc<dyn Publisher> {
    let settings = json!({"url": target.base_url(), "api_key": KEY, "tags": ["db"]});
    build(publishers_opsgenie::from_settings, settings, Arc::default()).unwrap()
}

fn accepted() -> MockResponse {
    MockResponse::status(202)
        .json(&json!({"result": "Request will be processed", "took": 0.3, "requestId": "r-1"}))
}

#[tokio::test]
async fn a_firing_creates_and_its_resolve_closes_by_alias_from_a_fresh_instance() {
    let target = MockTarget::start().await;
    target.respond(accepted());
    let receipt = publish(&publisher(&target), &disk_full(false))
        .await
        .unwrap();
    assert_eq!(receipt.status_code, Some(202));
    publish(&publisher(&target), &disk_full(true))
        .await
        .unwrap();
    let requests = target.requests();
    let (create, close) = (&requests[0], &requests[1]);
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/v2/alerts")
    );
    assert_eq!(
        create.header("authorization"),
        Some(format!("GenieKey {KEY}").as_str())
    );
    let body = create.json();
    let alias = body["alias"].as_str().unwrap().to_owned();
    assert!(alias.starts_with("alertpub-"), "{alias}");
    assert_eq!(body["priority"], "P1");
    assert_eq!(body["tags"], json!(["db"]));
    assert_eq!(body["message"], "[FIRING] DiskFull on db-1");
    assert_eq!(
        close.path,
        format!("/v2/alerts/{alias}/close?identifierType=alias")
    );
    assert_eq!(close.json()["note"], "[RESOLVED] DiskFull on db-1");
}

#[tokio::test]
async fn errors_are_classified_and_never_show_the_key() {
    let target = MockTarget::start().await;
    target.enqueue(MockResponse::status(429).header("retry-after", "7"));
    target.enqueue(MockResponse::status(422).body(format!("bad key {KEY}")));
    target.enqueue(MockResponse::status(401));
    let publisher = publisher(&target);
    let limited = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        limited.kind,
        ErrorKind::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(7))
        }
    );
    let refused = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        refused.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::BadRequest
        }
    );
    assert!(!format!("{refused} {refused:?}").contains(KEY), "{refused}");
    let auth = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        auth.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Auth
        }
    );
    assert!(!format!("{publisher:?}").contains(KEY));
}

#[tokio::test]
async fn the_region_picks_the_base_url_and_the_probe_carries_no_key() {
    let eu = build(
        publishers_opsgenie::from_settings,
        json!({"region": "eu", "api_key": KEY}),
        Arc::default(),
    )
    .unwrap();
    let probe = eu.health_probe().unwrap();
    assert_eq!(probe.url.expose(), "https://api.eu.opsgenie.com/v2/account");
    assert!(probe.headers.is_empty());
    let missing = build(
        publishers_opsgenie::from_settings,
        json!({}),
        Arc::default(),
    )
    .unwrap_err();
    assert!(missing.is_secret_unavailable(), "{missing}");
}

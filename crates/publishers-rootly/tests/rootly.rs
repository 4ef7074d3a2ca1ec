//! The Rootly publisher against a real mock target.

use std::sync::Arc;

use alert_core::{
    Alert, Delivery, EnrichedAlert, ErrorKind, InMemoryMessageRefs, KindSettings, Labels,
    PermanentReason, PublishRequest, Publisher, TargetName,
};
use chrono::Utc;
use publisher_http::{BuildContext, ClientConfig, HttpClient};
use test_support::{MockResponse, MockTarget};

const API_KEY: &str = "rootly-SECRET-api-key";

fn build(target: &MockTarget, refs: Arc<InMemoryMessageRefs>) -> Arc<dyn Publisher> {
    let settings: KindSettings =
        serde_json::from_value(serde_json::json!({"url": target.base_url(), "api_key": API_KEY}))
            .unwrap();
    let context = BuildContext::new(
        TargetName::new("rootly-prod").unwrap(),
        HttpClient::new(&ClientConfig::default()).unwrap(),
        refs,
    );
    publishers_rootly::from_settings(&settings, &context).unwrap()
}

fn alert(resolved: bool) -> EnrichedAlert {
    let labels: Labels = [("alertname", "Outage"), ("region", "eu")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let start = Utc::now() - chrono::Duration::minutes(3);
    let end = resolved.then(|| Utc::now() - chrono::Duration::seconds(5));
    EnrichedAlert::new(Alert::build(labels, Labels::new(), start, end, None).unwrap())
}

#[tokio::test]
async fn creates_with_json_api_and_resolves_by_id() {
    let target = MockTarget::start().await;
    let refs = Arc::new(InMemoryMessageRefs::new());
    target.enqueue(
        MockResponse::status(201)
            .json(&serde_json::json!({"data": {"id": "a1b2-c3", "type": "alerts"}})),
    );
    target.enqueue(
        MockResponse::status(200)
            .json(&serde_json::json!({"data": {"id": "a1b2-c3", "type": "alerts"}})),
    );
    let receipt = build(&target, refs.clone())
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.message_ref.as_deref(), Some("a1b2-c3"));
    build(&target, refs)
        .publish(PublishRequest::made_at(
            &alert(true),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();

    let requests = target.requests();
    let create = &requests[0];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/v1/alerts")
    );
    assert_eq!(
        create.header("content-type"),
        Some("application/vnd.api+json")
    );
    assert_eq!(
        create.header("authorization"),
        Some(&*format!("Bearer {API_KEY}"))
    );
    let body = create.json();
    assert_eq!(body["data"]["type"], "alerts");
    let fingerprint = alert(false).alert.fingerprint().to_string();
    assert_eq!(body["data"]["attributes"]["external_id"], fingerprint);
    assert!(
        body["data"]["attributes"]["deduplication_key"]
            .as_str()
            .unwrap()
            .contains(&fingerprint)
    );
    assert_eq!(requests[1].path, "/v1/alerts/a1b2-c3/resolve");
    assert_eq!(
        requests[1].header("content-type"),
        Some("application/vnd.api+json")
    );
}

#[tokio::test]
async fn a_resolve_without_a_known_id_is_sent_with_the_same_deduplication_key() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(201).json(&serde_json::json!({"data": {"id": "zz"}})));
    build(&target, Arc::default())
        .publish(PublishRequest::made_at(
            &alert(true),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let request = &target.requests()[0];
    assert_eq!(request.path, "/v1/alerts");
    let attributes = &request.json()["data"]["attributes"];
    assert!(attributes["ended_at"].is_string(), "{attributes}");
    assert!(
        attributes["deduplication_key"]
            .as_str()
            .unwrap()
            .contains(&alert(true).alert.fingerprint().to_string())
    );
}

#[tokio::test]
async fn errors_are_classified_without_the_key() {
    let target = MockTarget::start().await;
    target.respond(
        MockResponse::status(401).json(&serde_json::json!({"errors": [{"title": "Unauthorized"}]})),
    );
    let err = build(&target, Arc::default())
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Auth
        }
    );
    assert!(!err.to_string().contains(API_KEY));
    target.respond(
        MockResponse::status(422)
            .json(&serde_json::json!({"errors": [{"title": "summary is missing"}]})),
    );
    let err = build(&target, Arc::default())
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::BadRequest
        }
    );
}

//! The Rootly publisher against a real mock target: the JSON:API create, the documented resolve
//! endpoint and body, a resolve with no stored id (never sent), and classification.

use std::sync::Arc;

use alert_core::{
    Alert, AlertStatus, Delivery, EnrichedAlert, ErrorKind, InMemoryMessageRefs, KindSettings,
    Labels, MessageRefStore, PermanentReason, PublishError, PublishRequest, Publisher, TargetName,
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
    let resolved = alert(true);
    let receipt = build(&target, refs.clone())
        .publish(PublishRequest::new(
            &resolved,
            AlertStatus::Resolved,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.status_code, Some(200));
    // Once resolved, the id is forgotten.
    assert_eq!(
        refs.get("rootly-prod", resolved.alert.fingerprint()).await,
        None
    );

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
    assert_eq!(requests.len(), 2);
    let resolve = &requests[1];
    assert_eq!(
        (resolve.method.as_str(), resolve.path.as_str()),
        ("POST", "/v1/alerts/a1b2-c3/resolve")
    );
    assert_eq!(
        resolve.header("content-type"),
        Some("application/vnd.api+json")
    );
    assert_eq!(
        resolve.header("authorization"),
        Some(&*format!("Bearer {API_KEY}"))
    );
    // The body Rootly documents for the resolve endpoint.
    assert_eq!(
        resolve.json(),
        serde_json::json!({
            "data": {
                "type": "alerts",
                "attributes": { "resolution_message": "[RESOLVED] Outage" },
            },
        })
    );
}

fn assert_not_resolvable(err: &PublishError) {
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Config
        }
    );
    assert_eq!(err.status_code, None);
    assert!(
        err.message.contains(
            "no Rootly alert id is stored for this alert; Rootly cannot look one up by \
             deduplication_key"
        ),
        "{err}"
    );
    // Rootly is not at fault: the target's health and breaker ignore it.
    assert!(!err.kind.counts_against_target());
    assert!(!err.to_string().contains(API_KEY));
}

#[tokio::test]
async fn a_resolve_without_a_stored_id_is_not_sent_and_fails_as_config() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(201).json(&serde_json::json!({"data": {"id": "zz"}})));
    let err = build(&target, Arc::default())
        .publish(PublishRequest::new(
            &alert(true),
            AlertStatus::Resolved,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_not_resolvable(&err);
    // Neither a second create on /v1/alerts nor anything else.
    assert!(target.requests().is_empty(), "{:?}", target.requests());
}

#[tokio::test]
async fn a_create_answered_without_a_usable_id_leaves_its_resolve_unsendable() {
    for answer in [
        serde_json::json!({"data": {"type": "alerts"}}),
        serde_json::json!({"data": {"id": "../../v1/incidents"}}),
    ] {
        let target = MockTarget::start().await;
        let refs = Arc::new(InMemoryMessageRefs::new());
        target.respond(MockResponse::status(201).json(&answer));
        let receipt = build(&target, refs.clone())
            .publish(PublishRequest::new(
                &alert(false),
                AlertStatus::Firing,
                Delivery::first(),
                chrono::Utc::now(),
            ))
            .await
            .unwrap();
        assert_eq!(receipt.message_ref, None, "{answer}");
        let err = build(&target, refs)
            .publish(PublishRequest::new(
                &alert(true),
                AlertStatus::Resolved,
                Delivery::first(),
                chrono::Utc::now(),
            ))
            .await
            .unwrap_err();
        assert_not_resolvable(&err);
        let paths: Vec<String> = target.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/v1/alerts"], "{answer}: the create only");
    }
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

//! The PagerDuty publisher against a real mock target on 127.0.0.1.

use std::sync::Arc;

use alert_core::{
    Alert, Delivery, EnrichedAlert, ErrorKind, InMemoryMessageRefs, KindSettings, Labels,
    PermanentReason, PublishRequest, Publisher, TargetName,
};
use chrono::{Duration, Utc};
use publisher_http::{BuildContext, ClientConfig, HttpClient};
use test_support::{MockResponse, MockTarget};

const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000001";

fn publisher(target: &MockTarget) -> Arc<dyn Publisher> {
    let settings: KindSettings = serde_json::from_value(serde_json::json!({
        "url": target.base_url(),
        "routing_key": ROUTING_KEY,
        "component": "db",
    }))
    .unwrap();
    let context = BuildContext::new(
        TargetName::new("pagerduty-oncall").unwrap(),
        HttpClient::new(&ClientConfig::default()).unwrap(),
        Arc::new(InMemoryMessageRefs::new()),
    );
    publishers_pagerduty::from_settings(&settings, &context).unwrap()
}

fn alert(resolved: bool) -> EnrichedAlert {
    let labels: Labels = [
        ("alertname", "DiskFull"),
        ("instance", "db-1"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let start = Utc::now() - Duration::minutes(10);
    let end = resolved.then(|| Utc::now() - Duration::minutes(1));
    let annotations = [("summary".to_owned(), "Disk 95% full".to_owned())].into();
    EnrichedAlert::new(Alert::build(labels, annotations, start, end, None).unwrap())
}

#[tokio::test]
async fn trigger_then_resolve_from_a_fresh_instance_share_the_dedup_key() {
    let target = MockTarget::start().await;
    target.respond(
        MockResponse::status(202)
            .json(&serde_json::json!({"status": "success", "message": "Event processed"})),
    );

    let receipt = publisher(&target)
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.status_code, Some(202));
    // A brand-new publisher, as after a restart: no cache carries the key over.
    publisher(&target)
        .publish(PublishRequest::made_at(
            &alert(true),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();

    let requests = target.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v2/enqueue");
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    let trigger = requests[0].json();
    let resolve = requests[1].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["component"], "db");
    let summary = trigger["payload"]["summary"].as_str().unwrap();
    assert!(summary.contains("Disk 95% full"), "{summary}");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["routing_key"], ROUTING_KEY);
    let key = trigger["dedup_key"].as_str().unwrap();
    assert_eq!(resolve["dedup_key"].as_str().unwrap(), key);
    assert!(
        key.contains(&alert(false).alert.fingerprint().to_string()),
        "{key}"
    );
}

#[tokio::test]
async fn errors_are_classified_and_never_show_the_routing_key() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(400).json(&serde_json::json!({
        "status": "invalid event", "message": "Event object is invalid",
        "errors": [format!("Length of 'routing_key' {ROUTING_KEY} is incorrect")]
    })));
    let err = publisher(&target)
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
    assert!(!err.to_string().contains(ROUTING_KEY), "{err}");
    assert!(!format!("{:?}", publisher(&target)).contains(ROUTING_KEY));

    target.respond(MockResponse::status(429).header("retry-after", "30"));
    let err = publisher(&target)
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(30))
        }
    );
}

#[test]
fn a_missing_routing_key_file_is_secret_unavailable() {
    let settings: KindSettings = serde_json::from_value(
        serde_json::json!({"routing_key_file": "/nonexistent/alertpub/key"}),
    )
    .unwrap();
    let context = BuildContext::new(
        TargetName::new("pd").unwrap(),
        HttpClient::new(&ClientConfig::default()).unwrap(),
        Arc::new(InMemoryMessageRefs::new()),
    );
    let err = publishers_pagerduty::from_settings(&settings, &context).unwrap_err();
    assert!(err.is_secret_unavailable(), "{err}");
    let unknown: KindSettings =
        serde_json::from_value(serde_json::json!({"routing_key": "k", "sevrity": "x"})).unwrap();
    assert!(publishers_pagerduty::from_settings(&unknown, &context).is_err());
}

#[tokio::test]
async fn a_summary_template_that_fails_fails_the_delivery_as_config() {
    let target = MockTarget::start().await;
    let settings = serde_json::json!({
        "url": target.base_url(),
        "routing_key": ROUTING_KEY,
        "templates": {"summary": "{{ nothing.here() }}"},
    });
    let publisher = test_support::kind::build(
        publishers_pagerduty::from_settings,
        settings,
        Arc::default(),
    )
    .unwrap();
    let err = test_support::kind::publish(&publisher, &alert(false))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Config
        }
    );
    assert!(target.requests().is_empty());
}

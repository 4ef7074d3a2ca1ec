//! The Alertmanager publisher against a real mock target speaking API v2.

use std::sync::Arc;

use alert_core::{
    Alert, Delivery, EnrichedAlert, ErrorKind, InMemoryMessageRefs, KindSettings, Labels,
    PublishRequest, Publisher, TargetName,
};
use chrono::Utc;
use publisher_http::{BuildContext, ClientConfig, HttpClient};
use test_support::{MockResponse, MockTarget};

fn build(settings: serde_json::Value) -> Result<Arc<dyn Publisher>, publisher_http::BuildError> {
    let settings: KindSettings = serde_json::from_value(settings).unwrap();
    let context = BuildContext::new(
        TargetName::new("upstream-alertmanager").unwrap(),
        HttpClient::new(&ClientConfig::default()).unwrap(),
        Arc::new(InMemoryMessageRefs::new()),
    );
    publishers_alertmanager::from_settings(&settings, &context)
}

#[tokio::test]
async fn forwards_postable_alerts_to_api_v2() {
    let target = MockTarget::start().await;
    let publisher =
        build(serde_json::json!({"url": target.base_url(), "refresh_interval": "3s"})).unwrap();
    let labels: Labels = [("alertname", "Test"), ("severity", "critical")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let start = Utc::now() - chrono::Duration::minutes(1);
    let firing = EnrichedAlert::new(
        Alert::build(
            labels,
            [("summary".to_owned(), "hi".to_owned())].into(),
            start,
            None,
            Some("http://prom/graph".into()),
        )
        .unwrap(),
    );
    publisher
        .publish(PublishRequest::made_at(
            &firing,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let request = &target.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/api/v2/alerts")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    let alerts = body.as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["labels"]["alertname"], "Test");
    assert_eq!(alerts[0]["annotations"]["summary"], "hi");
    assert_eq!(alerts[0]["generatorURL"], "http://prom/graph");
    assert!(alerts[0]["startsAt"].as_str().unwrap().ends_with('Z'));

    target.respond(MockResponse::status(400).body("bad alert"));
    let err = publisher
        .publish(PublishRequest::made_at(
            &firing,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Permanent { .. }));
}

#[test]
fn refresh_interval_is_validated() {
    assert!(
        build(serde_json::json!({"url": "http://127.0.0.1:9093", "refresh_interval": "soon"}))
            .is_err()
    );
    assert!(
        build(serde_json::json!({"url": "http://127.0.0.1:9093", "refresh_interval": "0"}))
            .is_err()
    );
    assert!(build(serde_json::json!({"url": "not a url"})).is_err());
}

//! The Alertmanager publisher against a real mock target speaking API v2.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use alert_core::{
    Alert, AlertStatus, Delivery, EnrichedAlert, ErrorKind, InMemoryMessageRefs, KindSettings,
    Labels, PermanentReason, PublishRequest, Publisher, TargetName,
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

/// Everything logged while it is the default subscriber, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn alert_from(generator_url: &str) -> EnrichedAlert {
    let labels: Labels = [("alertname", "Linked")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let start = Utc::now() - chrono::Duration::minutes(1);
    EnrichedAlert::new(
        Alert::build(
            labels,
            Labels::new(),
            start,
            None,
            Some(generator_url.to_owned()),
        )
        .unwrap(),
    )
}

/// The secret-looking part of a generator URL, which must never be logged.
const URL_TOKEN: &str = "t0ken-in-the-query";

// A current-thread runtime, so that the subscriber set for this thread sees the publisher's log.
#[tokio::test(flavor = "current_thread")]
async fn a_generator_url_alertmanager_would_refuse_is_dropped_with_a_warning() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let target = MockTarget::start().await;
    // Alertmanager answers an accepted POST /api/v2/alerts with 200 and no body.
    target.respond(MockResponse::status(200));
    let publisher = build(serde_json::json!({"url": target.base_url()})).unwrap();

    let relative = alert_from(&format!("prometheus.local/graph?auth={URL_TOKEN}"));
    let receipt = publisher
        .publish(PublishRequest::new(
            &relative,
            AlertStatus::Firing,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.status_code, Some(200));
    let absolute = alert_from("https://prom.example:9090/graph?g0.expr=up");
    publisher
        .publish(PublishRequest::new(
            &absolute,
            AlertStatus::Firing,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();

    let requests = target.requests();
    assert_eq!(requests.len(), 2);
    let dropped = requests[0].json();
    assert_eq!(dropped[0]["labels"]["alertname"], "Linked");
    assert!(
        dropped[0].get("generatorURL").is_none(),
        "the relative URL is left out: {dropped}"
    );
    assert!(!requests[0].text().contains(URL_TOKEN));
    assert_eq!(
        requests[1].json()[0]["generatorURL"],
        "https://prom.example:9090/graph?g0.expr=up"
    );

    let logged = logs.text();
    assert_eq!(
        logged.matches("WARN").count(),
        1,
        "one warning, for the dropped URL only: {logged}"
    );
    assert!(
        logged.contains("generatorURL is not an absolute URI"),
        "{logged}"
    );
    assert!(
        logged.contains(&relative.alert.fingerprint().to_string()),
        "{logged}"
    );
    assert!(!logged.contains(URL_TOKEN), "{logged}");
    assert!(!logged.contains("prometheus.local"), "{logged}");
}

#[tokio::test]
async fn a_422_from_alertmanager_is_permanent() {
    // What Alertmanager answers when go-openapi's validation fails, such as for a bad
    // generatorURL: a 422 with the validation error. Retrying cannot change it.
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(422).json(&serde_json::json!({
        "code": 601,
        "message": "0.generatorURL in body must be of type uri: \"x\"",
    })));
    let publisher = build(serde_json::json!({"url": target.base_url()})).unwrap();
    let err = publisher
        .publish(PublishRequest::new(
            &alert_from("https://prom.example/graph"),
            AlertStatus::Firing,
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
    assert_eq!(err.status_code, Some(422));
}

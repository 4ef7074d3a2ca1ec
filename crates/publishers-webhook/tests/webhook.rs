//! The webhook publisher against a real mock target: headers, auth, the HMAC signature, the
//! idempotency key, and the classification of every answer.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Alert, Delivery, EnrichedAlert, ErrorKind, InMemoryMessageRefs, KindSettings, Labels,
    PermanentReason, PublishRequest, Publisher, TargetName,
};
use hmac::{Hmac, Mac};
use publisher_http::{BuildContext, ClientConfig, HttpClient};
use sha2::Sha256;
use test_support::{MockResponse, MockTarget, closed_port_url};

const TOKEN: &str = "hook-token-SECRET-42";
const HMAC_SECRET: &str = "hmac-SECRET-key";

fn build(settings: serde_json::Value, timeout: Duration) -> Arc<dyn Publisher> {
    let settings: KindSettings = serde_json::from_value(settings).unwrap();
    let context = BuildContext::new(
        TargetName::new("ops-webhook").unwrap(),
        HttpClient::new(&ClientConfig::default().with_timeout(timeout)).unwrap(),
        Arc::new(InMemoryMessageRefs::new()),
    );
    publishers_webhook::from_settings(&settings, &context).unwrap()
}

fn alert() -> EnrichedAlert {
    let labels: Labels = [("alertname", "HighLatency"), ("service", "api")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    EnrichedAlert::new(Alert::new(labels).unwrap())
}

#[tokio::test]
async fn sends_generic_json_with_auth_signature_and_idempotency_key() {
    let target = MockTarget::start().await;
    let publisher = build(
        serde_json::json!({
            "url": target.url("/hook"),
            "headers": {"X-Team": "ops"},
            "auth": {"bearer_token": TOKEN},
            "hmac_secret": HMAC_SECRET,
        }),
        Duration::from_secs(5),
    );
    let alert = alert();
    publisher
        .publish(PublishRequest::made_at(
            &alert,
            Delivery::new(7, 1),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    publisher
        .publish(PublishRequest::made_at(
            &alert,
            Delivery::new(7, 2),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    publisher
        .publish(PublishRequest::made_at(
            &alert,
            Delivery::new(8, 1),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();

    let requests = target.requests();
    let first = &requests[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        first.header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(first.header("x-team"), Some("ops"));
    let body = first.json();
    assert_eq!(body["version"], "1");
    assert_eq!(body["alert_name"], "HighLatency");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["fingerprint"], alert.alert.fingerprint().to_string());

    // The signature verifies with the documented algorithm: HMAC-SHA256 over "<t>.<body>".
    let signature = first.header("x-alertpub-signature").unwrap();
    let (t, v1) = signature.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&first.body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies");
    let now = chrono::Utc::now().timestamp();
    assert!((now - t.parse::<i64>().unwrap()).abs() < 60);

    // Retries of one delivery reuse the key; the next delivery gets a new one.
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
}

#[tokio::test]
async fn basic_and_api_key_auth() {
    let target = MockTarget::start().await;
    let basic = build(
        serde_json::json!({"url": target.url("/b"), "method": "PUT", "auth": {"basic": {"username": "alice", "password": "pw"}}}),
        Duration::from_secs(5),
    );
    basic
        .publish(PublishRequest::made_at(
            &alert(),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let api_key = build(
        serde_json::json!({"url": target.url("/k"), "auth": {"api_key": {"header": "X-Key", "value": TOKEN}}}),
        Duration::from_secs(5),
    );
    api_key
        .publish(PublishRequest::made_at(
            &alert(),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let requests = target.requests();
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Basic YWxpY2U6cHc=")
    );
    assert_eq!(requests[1].header("x-key"), Some(TOKEN));
}

#[tokio::test]
async fn every_answer_is_classified() {
    let target = MockTarget::start().await;
    let publisher = build(
        serde_json::json!({"url": target.url("/hook"), "auth": {"bearer_token": TOKEN}}),
        Duration::from_secs(5),
    );
    let permanent = |reason| ErrorKind::Permanent { reason };
    let cases = [
        (400, permanent(PermanentReason::BadRequest)),
        (401, permanent(PermanentReason::Auth)),
        (403, permanent(PermanentReason::Auth)),
        (404, permanent(PermanentReason::NotFound)),
        (500, ErrorKind::Transient),
        (502, ErrorKind::Transient),
        (503, ErrorKind::Transient),
    ];
    for status in [200, 202] {
        target.respond(MockResponse::status(status));
        let receipt = publisher
            .publish(PublishRequest::made_at(
                &alert(),
                Delivery::first(),
                chrono::Utc::now(),
            ))
            .await
            .unwrap();
        assert_eq!(receipt.status_code, Some(status));
    }
    for (status, kind) in cases {
        target.respond(MockResponse::status(status).body(format!("echo {TOKEN}")));
        let err = publisher
            .publish(PublishRequest::made_at(
                &alert(),
                Delivery::first(),
                chrono::Utc::now(),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.kind, kind, "HTTP {status}");
        assert!(!err.to_string().contains(TOKEN), "{err}");
    }
    target.respond(MockResponse::status(429).header("retry-after", "5"));
    let err = publisher
        .publish(PublishRequest::made_at(
            &alert(),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(5))
        }
    );
    let date = httpdate_in(90);
    target.respond(MockResponse::status(429).header("retry-after", &date));
    let err = publisher
        .publish(PublishRequest::made_at(
            &alert(),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::RateLimited { retry_after: Some(d) } if d > Duration::from_secs(80)),
        "{err:?}"
    );

    // A server that never answers: a timeout, with real time and a short configured timeout.
    target.respond(MockResponse::hang());
    let short = build(
        serde_json::json!({"url": target.url("/hook")}),
        Duration::from_millis(250),
    );
    let err = short
        .publish(PublishRequest::made_at(
            &alert(),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);

    let refused = build(
        serde_json::json!({"url": format!("{}/hook", closed_port_url())}),
        Duration::from_secs(5),
    );
    let err = refused
        .publish(PublishRequest::made_at(
            &alert(),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
}

fn httpdate_in(seconds: u64) -> String {
    let at = std::time::SystemTime::now() + Duration::from_secs(seconds);
    httpdate::fmt_http_date(at)
}

/// A header value is as secret as a token: a target that echoes it in an error body does not get
/// it into the error, and the parsed config's Debug output does not show it.
#[tokio::test]
async fn header_values_are_secrets() {
    const HEADER_KEY: &str = "header-SECRET-api-key-7";
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(400).body(format!("bad key {HEADER_KEY}")));
    let settings = serde_json::json!({
        "url": target.url("/hook"),
        "headers": {"X-Api-Key": HEADER_KEY},
    });
    let publisher = build(settings.clone(), Duration::from_secs(5));
    let err = publisher
        .publish(PublishRequest::made_at(
            &alert(),
            Delivery::new(1, 1),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(target.requests()[0].header("x-api-key"), Some(HEADER_KEY));
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(HEADER_KEY), "{shown}");
    let config: publishers_webhook::Config = serde_json::from_value(settings).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(HEADER_KEY), "{debug}");
    assert!(!format!("{publisher:?}").contains(HEADER_KEY));
}

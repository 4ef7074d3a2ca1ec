//! The webhook's body and signature options: `body_template`, `format: alertmanager` and
//! `signature: standard`, against a mock receiver on 127.0.0.1. The Standard Webhooks signature
//! is verified by an independent implementation, the `standardwebhooks` package (PyPI); in CI
//! (`CI=true`) a missing package fails that test, elsewhere it is skipped.

use std::process::Stdio;
use std::sync::Arc;

use alert_core::Publisher;
use serde_json::json;
use test_support::kind::{build, disk_full, publish, python_module};
use test_support::{MockTarget, RecordedRequest};

fn publisher(target: &MockTarget, extra: serde_json::Value) -> Arc<dyn Publisher> {
    let mut settings = json!({"url": target.url("/hook")});
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    build(publishers_webhook::from_settings, settings, Arc::default()).unwrap()
}

async fn one_request(extra: serde_json::Value, resolved: bool) -> RecordedRequest {
    let target = MockTarget::start().await;
    publish(&publisher(&target, extra), &disk_full(resolved))
        .await
        .unwrap();
    target.requests().remove(0)
}

#[tokio::test]
async fn a_body_template_renders_the_body_with_its_content_type() {
    let request = one_request(
        json!({"body_template": r#"{"text": {{ (alert_name ~ " " ~ status) | tojson }}}"#}),
        false,
    )
    .await;
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json(), json!({"text": "DiskFull firing"}));
    let plain = one_request(
        json!({"body_template": "{{ alert_name }} is {{ status }}", "content_type": "text/plain"}),
        true,
    )
    .await;
    assert_eq!(plain.header("content-type"), Some("text/plain"));
    assert_eq!(plain.text(), "DiskFull is resolved");
}

#[tokio::test]
async fn a_body_template_that_is_not_json_is_refused_at_load() {
    let err = build(
        publishers_webhook::from_settings,
        json!({"url": "http://127.0.0.1:9/x", "body_template": "{\"a\": {{ alert_name }}}"}),
        Arc::default(),
    )
    .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("body_template") && shown.contains("not JSON"),
        "{shown}"
    );
    let both = build(
        publishers_webhook::from_settings,
        json!({"url": "http://127.0.0.1:9/x", "body_template": "{}", "format": "alertmanager"}),
        Arc::default(),
    )
    .unwrap_err();
    assert!(both.to_string().contains("exclude each other"), "{both}");
}

#[tokio::test]
async fn the_alertmanager_format_is_alertmanagers_webhook_message() {
    let firing = one_request(
        json!({"format": "alertmanager", "external_url": "http://alertpub.example"}),
        false,
    )
    .await
    .json();
    let fingerprint = disk_full(false).alert.fingerprint().to_string();
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["receiver"], "kind-test");
    assert_eq!(firing["externalURL"], "http://alertpub.example");
    assert_eq!(
        firing["groupKey"],
        format!("{{}}:{{fingerprint=\"{fingerprint}\"}}")
    );
    assert_eq!(firing["alerts"][0]["fingerprint"], fingerprint);
    assert_eq!(firing["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let resolved = one_request(json!({"format": "alertmanager"}), true)
        .await
        .json();
    assert_eq!(resolved["status"], "resolved");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
}

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

/// Verifies `request` with `secret` through the `standardwebhooks` package.
fn verifies(request: &RecordedRequest, secret: &str) -> bool {
    let headers = json!({
        "webhook-id": request.header("webhook-id"),
        "webhook-timestamp": request.header("webhook-timestamp"),
        "webhook-signature": request.header("webhook-signature"),
    });
    let script = "import json, sys\n\
                  from standardwebhooks.webhooks import Webhook\n\
                  secret, headers = sys.argv[1], json.loads(sys.argv[2])\n\
                  body = sys.stdin.buffer.read()\n\
                  Webhook(secret).verify(body, headers)\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret, &headers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&request.body)
        .unwrap();
    child.wait().unwrap().success()
}

#[tokio::test]
async fn standard_webhooks_signatures_verify_with_an_independent_implementation() {
    if !python_module("standardwebhooks") {
        return;
    }
    let request = one_request(
        json!({"signature": "standard", "hmac_secret": SECRET_A, "hmac_secrets": [SECRET_B]}),
        false,
    )
    .await;
    assert!(request.header("x-alertpub-signature").is_none());
    assert_eq!(
        request.header("webhook-id"),
        request.header("idempotency-key")
    );
    let signature = request.header("webhook-signature").unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert!(verifies(&request, SECRET_A), "the first secret verifies");
    assert!(verifies(&request, SECRET_B), "the rotated secret verifies");
    assert!(
        !verifies(&request, "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="),
        "another secret does not"
    );
    // A body changed on the way does not verify.
    let mut tampered = request.clone();
    tampered.body = bytes_of(&request.text().replace("DiskFull", "DiskFine"));
    assert!(!verifies(&tampered, SECRET_A));
}

fn bytes_of(text: &str) -> bytes::Bytes {
    bytes::Bytes::from(text.to_owned())
}

#[tokio::test]
async fn a_standard_secret_must_be_base64_and_is_never_shown() {
    let err = build(
        publishers_webhook::from_settings,
        json!({"url": "http://127.0.0.1:9/x", "signature": "standard", "hmac_secret": "not base64 %%%"}),
        Arc::default(),
    )
    .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("whsec_") && !shown.contains("%%%"),
        "{shown}"
    );
}

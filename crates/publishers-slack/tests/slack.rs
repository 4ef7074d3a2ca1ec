//! The Slack publisher against a real mock target: webhook mode's plain `ok`, bot mode's stored
//! `ts`, Web API error classification, and redaction of the webhook URL's token.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Alert, Delivery, EnrichedAlert, ErrorKind, InMemoryMessageRefs, KindSettings, Labels,
    MessageRefStore, PermanentReason, PublishRequest, Publisher, TargetName,
};
use chrono::Utc;
use publisher_http::{BuildContext, ClientConfig, HttpClient};
use test_support::{MockResponse, MockTarget, closed_port_url};

const WEBHOOK_TOKEN: &str = "XXXXSECRETWEBHOOKTOKENXXXX";
const BOT_TOKEN: &str = "xoxb-1234-SECRET-BOT";

fn context(refs: Arc<InMemoryMessageRefs>) -> BuildContext {
    BuildContext::new(
        TargetName::new("slack-alerts").unwrap(),
        HttpClient::new(&ClientConfig::default()).unwrap(),
        refs,
    )
}

fn build(settings: serde_json::Value, refs: Arc<InMemoryMessageRefs>) -> Arc<dyn Publisher> {
    let settings: KindSettings = serde_json::from_value(settings).unwrap();
    publishers_slack::from_settings(&settings, &context(refs)).unwrap()
}

fn alert(resolved: bool) -> EnrichedAlert {
    let labels: Labels = [("alertname", "PodCrashLooping"), ("pod", "api-7f9")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let start = Utc::now() - chrono::Duration::minutes(5);
    let end = resolved.then(|| Utc::now() - chrono::Duration::seconds(10));
    EnrichedAlert::new(Alert::build(labels, Labels::new(), start, end, None).unwrap())
}

#[tokio::test]
async fn webhook_mode_treats_plain_ok_as_success() {
    let target = MockTarget::start().await;
    target.respond(
        MockResponse::status(200)
            .header("content-type", "text/html")
            .body("ok"),
    );
    let publisher = build(
        serde_json::json!({"webhook_url": target.url(&format!("/services/T0/B0/{WEBHOOK_TOKEN}"))}),
        Arc::default(),
    );
    let receipt = publisher
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.status_code, Some(200));
    let request = &target.requests()[0];
    assert_eq!(request.path, format!("/services/T0/B0/{WEBHOOK_TOKEN}"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert!(
        body["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "{body}"
    );
    assert_eq!(body["attachments"][0]["color"], "danger");
    assert!(!format!("{publisher:?}").contains(WEBHOOK_TOKEN));
}

#[tokio::test]
async fn webhook_url_tokens_never_reach_errors() {
    let target = MockTarget::start().await;
    let url = target.url(&format!("/services/T0/B0/{WEBHOOK_TOKEN}"));
    for (status, body, kind) in [
        (
            404,
            "channel_not_found",
            ErrorKind::Permanent {
                reason: PermanentReason::NotFound,
            },
        ),
        (
            403,
            "action_prohibited",
            ErrorKind::Permanent {
                reason: PermanentReason::Auth,
            },
        ),
        (
            400,
            "invalid_payload",
            ErrorKind::Permanent {
                reason: PermanentReason::BadRequest,
            },
        ),
        (500, "rollup_error", ErrorKind::Transient),
    ] {
        target.respond(MockResponse::status(status).body(format!("{body} for {url}")));
        let publisher = build(serde_json::json!({"webhook_url": url}), Arc::default());
        let err = publisher
            .publish(PublishRequest::made_at(
                &alert(false),
                Delivery::first(),
                chrono::Utc::now(),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.kind, kind);
        for text in [
            err.to_string(),
            format!("{err:?}"),
            serde_json::to_string(&err).unwrap(),
        ] {
            assert!(!text.contains(WEBHOOK_TOKEN), "{text}");
        }
    }
    let refused = format!("{}/services/T0/B0/{WEBHOOK_TOKEN}", closed_port_url());
    let err = build(serde_json::json!({"webhook_url": refused}), Arc::default())
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(!err.to_string().contains(WEBHOOK_TOKEN), "{err}");
    // Build errors do not echo the URL either.
    let settings: KindSettings = serde_json::from_value(
        serde_json::json!({"webhook_url": format!("ftp://x/{WEBHOOK_TOKEN}")}),
    )
    .unwrap();
    let err = publishers_slack::from_settings(&settings, &context(Arc::default())).unwrap_err();
    assert!(
        !err.to_string().contains(WEBHOOK_TOKEN) && !format!("{err:?}").contains(WEBHOOK_TOKEN),
        "{err}"
    );
}

#[tokio::test]
async fn bot_mode_stores_the_ts_and_updates_the_message_on_resolve() {
    let target = MockTarget::start().await;
    let refs = Arc::new(InMemoryMessageRefs::new());
    target.enqueue(
        MockResponse::status(200)
            .json(&serde_json::json!({"ok": true, "channel": "C123", "ts": "1700000000.000100"})),
    );
    target.enqueue(
        MockResponse::status(200)
            .json(&serde_json::json!({"ok": true, "channel": "C123", "ts": "1700000000.000100"})),
    );
    let settings =
        serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C123"});

    let firing = alert(false);
    let receipt = build(settings.clone(), refs.clone())
        .publish(PublishRequest::made_at(
            &firing,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.message_ref.as_deref(), Some("1700000000.000100"));
    let stored = refs
        .get("slack-alerts", firing.alert.fingerprint())
        .await
        .unwrap();
    assert_eq!(
        (stored.container.as_str(), stored.id.as_str()),
        ("C123", "1700000000.000100")
    );

    // A fresh publisher sharing the store, as after a rebuild, resolves by updating.
    build(settings, refs.clone())
        .publish(PublishRequest::made_at(
            &alert(true),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let requests = target.requests();
    assert_eq!(requests[0].path, "/chat.postMessage");
    assert_eq!(
        requests[0].header("authorization"),
        Some(&*format!("Bearer {BOT_TOKEN}"))
    );
    assert_eq!(
        requests[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(requests[0].json()["channel"], "C123");
    assert_eq!(requests[1].path, "/chat.update");
    let update = requests[1].json();
    assert_eq!(update["ts"], "1700000000.000100");
    assert_eq!(update["channel"], "C123");
    assert_eq!(update["attachments"][0]["color"], "good");
}

#[tokio::test]
async fn bot_mode_thread_replies() {
    let target = MockTarget::start().await;
    let refs = Arc::new(InMemoryMessageRefs::new());
    target.respond(
        MockResponse::status(200)
            .json(&serde_json::json!({"ok": true, "channel": "C9", "ts": "111.222"})),
    );
    let settings = serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C9", "resolve_mode": "thread"});
    build(settings.clone(), refs.clone())
        .publish(PublishRequest::made_at(
            &alert(false),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    build(settings, refs)
        .publish(PublishRequest::made_at(
            &alert(true),
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let reply = &target.requests()[1];
    assert_eq!(reply.path, "/chat.postMessage");
    assert_eq!(reply.json()["thread_ts"], "111.222");
}

#[tokio::test]
async fn bot_mode_errors_are_classified() {
    let target = MockTarget::start().await;
    let publisher = build(
        serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C1"}),
        Arc::default(),
    );
    let cases = [
        (
            "invalid_auth",
            ErrorKind::Permanent {
                reason: PermanentReason::Auth,
            },
        ),
        (
            "channel_not_found",
            ErrorKind::Permanent {
                reason: PermanentReason::NotFound,
            },
        ),
        (
            "invalid_blocks",
            ErrorKind::Permanent {
                reason: PermanentReason::Payload,
            },
        ),
        ("internal_error", ErrorKind::Transient),
    ];
    for (code, kind) in cases {
        target.respond(
            MockResponse::status(200).json(&serde_json::json!({"ok": false, "error": code})),
        );
        let err = publisher
            .publish(PublishRequest::made_at(
                &alert(false),
                Delivery::first(),
                chrono::Utc::now(),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.kind, kind, "{code}");
        assert!(!err.to_string().contains(BOT_TOKEN));
    }
    target.respond(
        MockResponse::status(429)
            .header("retry-after", "3")
            .json(&serde_json::json!({"ok": false, "error": "ratelimited"})),
    );
    let err = publisher
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
            retry_after: Some(Duration::from_secs(3))
        }
    );
}

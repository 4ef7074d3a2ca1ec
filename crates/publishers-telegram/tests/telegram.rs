//! The Telegram publisher against a mock Bot API on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{ErrorKind, InMemoryMessageRefs, MessageRefStore, PermanentReason, Publisher};
use serde_json::json;
use test_support::kind::{build, disk_full, publish};
use test_support::{MockResponse, MockTarget};

const TOKEN: &str = "123456:T3l3gramB0tT0k3n0000000000001";

fn publisher(target: &MockTarget, refs: Arc<InMemoryMessageRefs>) -> Arc<dyn Publisher> {
    let settings = json!({"url": target.base_url(), "token": TOKEN, "chat_id": -100_777});
    build(publishers_telegram::from_settings, settings, refs).unwrap()
}

fn sent(message_id: i64) -> MockResponse {
    MockResponse::status(200).json(&json!({
        "ok": true,
        "result": {"message_id": message_id, "chat": {"id": -100_777, "type": "supergroup"}, "date": 1}
    }))
}

#[tokio::test]
async fn a_resolve_replies_to_its_firing_message_and_then_forgets_it() {
    let target = MockTarget::start().await;
    target.enqueue(sent(41));
    target.enqueue(sent(42));
    let refs = Arc::new(InMemoryMessageRefs::new());
    let firing = disk_full(false);
    let receipt = publish(&publisher(&target, refs.clone()), &firing)
        .await
        .unwrap();
    assert_eq!(receipt.message_ref.as_deref(), Some("41"));
    // A fresh instance, as after a restart: the reference comes from the store.
    publish(&publisher(&target, refs.clone()), &disk_full(true))
        .await
        .unwrap();
    let requests = target.requests();
    assert_eq!(requests[0].path, format!("/bot{TOKEN}/sendMessage"));
    let (first, reply) = (requests[0].json(), requests[1].json());
    assert_eq!(first["chat_id"], -100_777);
    assert_eq!(first["parse_mode"], "HTML");
    assert!(first.get("reply_parameters").is_none());
    assert_eq!(reply["reply_parameters"]["message_id"], 41);
    assert!(
        refs.get("kind-test", firing.alert.fingerprint())
            .await
            .is_none()
    );
}

#[tokio::test]
async fn ok_false_and_flood_control_are_classified_without_the_token() {
    let target = MockTarget::start().await;
    target.enqueue(MockResponse::status(429).json(&json!({
        "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 9",
        "parameters": {"retry_after": 9}
    })));
    target.enqueue(MockResponse::status(200).json(&json!({
        "ok": false, "error_code": 403, "description": format!("bot was kicked {TOKEN}")
    })));
    target.enqueue(MockResponse::status(400).json(&json!({
        "ok": false, "error_code": 400, "description": "Bad Request: chat not found"
    })));
    let publisher = publisher(&target, Arc::default());
    let limited = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        limited.kind,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(9))
        }
    );
    let kicked = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        kicked.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Auth
        }
    );
    let missing = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        missing.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::BadRequest
        }
    );
    let shown = format!("{kicked} {kicked:?} {missing:?} {publisher:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(
        publisher
            .health_probe()
            .unwrap()
            .url
            .expose()
            .ends_with("/getMe")
    );
}

#[tokio::test]
async fn a_chat_id_is_required() {
    let err = build(
        publishers_telegram::from_settings,
        json!({"token": TOKEN}),
        Arc::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("chat_id"), "{err}");
}

#[tokio::test]
async fn a_200_with_ok_false_is_classified_by_its_error_code() {
    let target = MockTarget::start().await;
    let refused = |code: u16, extra: serde_json::Value| {
        let mut body = json!({"ok": false, "error_code": code, "description": "no"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        MockResponse::status(200).json(&body)
    };
    target.enqueue(refused(429, json!({"parameters": {"retry_after": 4}})));
    target.enqueue(refused(502, json!({})));
    target.enqueue(refused(400, json!({})));
    target.enqueue(MockResponse::status(200).body("<html>proxy</html>"));
    target.enqueue(MockResponse::status(200).json(&json!({"ok": true})));
    let publisher = publisher(&target, Arc::default());
    let kinds = [
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(4)),
        },
        ErrorKind::Transient,
        ErrorKind::Permanent {
            reason: PermanentReason::BadRequest,
        },
        ErrorKind::Transient,
    ];
    for kind in kinds {
        let err = publish(&publisher, &disk_full(false)).await.unwrap_err();
        assert_eq!(err.kind, kind, "{err}");
    }
    // Accepted without a result: delivered, with nothing to keep.
    let receipt = publish(&publisher, &disk_full(false)).await.unwrap();
    assert_eq!(receipt.message_ref, None);
}

#[tokio::test]
async fn chat_ids_are_numbers_or_channel_names_and_a_failing_template_fails_the_delivery() {
    for (chat_id, ok) in [
        (json!("@alerts"), true),
        (json!("-100123"), true),
        (json!("alerts"), false),
        (json!("@"), false),
    ] {
        let built = build(
            publishers_telegram::from_settings,
            json!({"token": TOKEN, "chat_id": chat_id}),
            Arc::default(),
        );
        assert_eq!(built.is_ok(), ok, "{chat_id}");
    }
    let target = MockTarget::start().await;
    let settings = json!({"url": target.base_url(), "token": TOKEN, "chat_id": 1,
                          "templates": {"title": "{{ nothing.here() }}"}});
    let publisher = build(publishers_telegram::from_settings, settings, Arc::default()).unwrap();
    let err = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Config
        },
        "{err}"
    );
    assert!(target.requests().is_empty());
}

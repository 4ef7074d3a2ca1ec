//! The Slack publisher against a real mock target: webhook mode's plain `ok`, bot mode's stored
//! `ts`, the resolve posted in the thread when the message can no longer be updated, a success
//! without `ts`, Web API error classification, the `auth.test` health probe, and redaction of
//! the webhook URL's token.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Alert, AlertStatus, Delivery, EnrichedAlert, ErrorKind, HealthStatus, InMemoryMessageRefs,
    KindSettings, Labels, MessageRef, MessageRefStore, PermanentReason, PublishRequest, Publisher,
    StaticTargetSource, Target, TargetEntry, TargetKind, TargetName, TargetSet,
};
use chrono::Utc;
use health::{DegradedReason, HealthConfig, HealthRegistry, Prober};
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

fn ok_reply(channel: &str, ts: &str) -> MockResponse {
    MockResponse::status(200).json(&serde_json::json!({"ok": true, "channel": channel, "ts": ts}))
}

fn error_reply(code: &str) -> MockResponse {
    MockResponse::status(200).json(&serde_json::json!({"ok": false, "error": code}))
}

fn resolve(alert: &EnrichedAlert) -> PublishRequest<'_> {
    PublishRequest::new(
        alert,
        AlertStatus::Resolved,
        Delivery::first(),
        chrono::Utc::now(),
    )
}

/// A store that already holds the firing message of `alert`, as after an earlier post.
async fn refs_with_message(alert: &EnrichedAlert) -> Arc<InMemoryMessageRefs> {
    let refs = Arc::new(InMemoryMessageRefs::new());
    refs.put(
        "slack-alerts",
        alert.alert.fingerprint(),
        MessageRef::new("C123", "1700000000.000100"),
    )
    .await;
    refs
}

#[tokio::test]
async fn a_resolve_whose_message_cannot_be_updated_is_posted_in_its_thread() {
    for code in [
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    ] {
        let target = MockTarget::start().await;
        let resolved = alert(true);
        let refs = refs_with_message(&resolved).await;
        target.enqueue(error_reply(code));
        target.enqueue(ok_reply("C123", "1700000000.000200"));
        let publisher = build(
            serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C123"}),
            refs.clone(),
        );

        let receipt = publisher.publish(resolve(&resolved)).await.unwrap();
        assert_eq!(receipt.status_code, Some(200), "{code}");
        assert_eq!(
            receipt.message_ref.as_deref(),
            Some("1700000000.000200"),
            "{code}"
        );

        let requests = target.requests();
        assert_eq!(requests.len(), 2, "{code}: one update, then one post");
        assert_eq!(requests[0].path, "/chat.update", "{code}");
        assert_eq!(requests[0].json()["ts"], "1700000000.000100", "{code}");
        let post = &requests[1];
        assert_eq!(post.path, "/chat.postMessage", "{code}");
        assert_eq!(
            post.header("authorization"),
            Some(&*format!("Bearer {BOT_TOKEN}"))
        );
        let body = post.json();
        assert_eq!(body["channel"], "C123", "{code}");
        assert_eq!(body["thread_ts"], "1700000000.000100", "{code}");
        assert!(
            body.get("ts").is_none(),
            "{code}: a post names no ts: {body}"
        );
        assert_eq!(body["attachments"][0]["color"], "good", "{code}");
        assert_eq!(body["text"], requests[0].json()["text"], "{code}");
        // The firing message stays the one a later delivery refers to.
        let stored = refs
            .get("slack-alerts", resolved.alert.fingerprint())
            .await
            .unwrap();
        assert_eq!(stored.id, "1700000000.000100", "{code}");
    }
}

#[tokio::test]
async fn other_update_errors_fail_without_a_post() {
    for (code, kind) in [
        (
            "channel_not_found",
            ErrorKind::Permanent {
                reason: PermanentReason::NotFound,
            },
        ),
        (
            "invalid_auth",
            ErrorKind::Permanent {
                reason: PermanentReason::Auth,
            },
        ),
        ("internal_error", ErrorKind::Transient),
    ] {
        let target = MockTarget::start().await;
        let resolved = alert(true);
        target.respond(error_reply(code));
        let publisher = build(
            serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C123"}),
            refs_with_message(&resolved).await,
        );
        let err = publisher.publish(resolve(&resolved)).await.unwrap_err();
        assert_eq!(err.kind, kind, "{code}");
        let requests = target.requests();
        assert_eq!(requests.len(), 1, "{code}");
        assert_eq!(requests[0].path, "/chat.update", "{code}");
    }
}

#[tokio::test]
async fn a_failed_thread_post_after_a_failed_update_is_classified() {
    let target = MockTarget::start().await;
    let resolved = alert(true);
    target.enqueue(error_reply("message_not_found"));
    target.enqueue(error_reply("is_archived"));
    let publisher = build(
        serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C123"}),
        refs_with_message(&resolved).await,
    );
    let err = publisher.publish(resolve(&resolved)).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::NotFound
        }
    );
    assert!(err.message.contains("is_archived"), "{err}");
    assert!(!err.to_string().contains(BOT_TOKEN));
    let paths: Vec<String> = target.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/chat.update", "/chat.postMessage"]);
}

#[tokio::test]
async fn ok_without_ts_is_delivered_without_a_message_ref() {
    let target = MockTarget::start().await;
    let refs = Arc::new(InMemoryMessageRefs::new());
    target.respond(MockResponse::status(200).json(&serde_json::json!({"ok": true})));
    let publisher = build(
        serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C123"}),
        refs.clone(),
    );
    let firing = alert(false);
    let receipt = publisher
        .publish(PublishRequest::new(
            &firing,
            AlertStatus::Firing,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    assert_eq!(receipt.status_code, Some(200));
    assert_eq!(receipt.message_ref, None);
    assert_eq!(
        refs.get("slack-alerts", firing.alert.fingerprint()).await,
        None
    );

    // With nothing stored, the resolve is a message of its own, and is delivered too.
    let receipt = publisher.publish(resolve(&alert(true))).await.unwrap();
    assert_eq!(receipt.message_ref, None);
    let requests = target.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/chat.postMessage");
    assert!(requests[1].json().get("thread_ts").is_none());
}

#[tokio::test]
async fn a_ts_without_a_channel_is_stored_with_the_configured_channel() {
    let target = MockTarget::start().await;
    let refs = Arc::new(InMemoryMessageRefs::new());
    target.respond(
        MockResponse::status(200).json(&serde_json::json!({"ok": true, "ts": "1700000000.000300"})),
    );
    let firing = alert(false);
    let receipt = build(
        serde_json::json!({"url": target.base_url(), "token": BOT_TOKEN, "channel": "C777"}),
        refs.clone(),
    )
    .publish(PublishRequest::new(
        &firing,
        AlertStatus::Firing,
        Delivery::first(),
        chrono::Utc::now(),
    ))
    .await
    .unwrap();
    assert_eq!(receipt.message_ref.as_deref(), Some("1700000000.000300"));
    assert_eq!(
        refs.get("slack-alerts", firing.alert.fingerprint()).await,
        Some(MessageRef::new("C777", "1700000000.000300"))
    );
}

/// Probes a bot-mode Slack target whose `auth.test` answers `answer`, through the real prober.
async fn probe_bot(
    answer: MockResponse,
) -> (health::TargetHealth, Vec<test_support::RecordedRequest>) {
    let target = MockTarget::start().await;
    target.respond(answer);
    let publisher = build(
        serde_json::json!({"url": target.url("/api"), "token": BOT_TOKEN, "channel": "C1"}),
        Arc::default(),
    );
    let name = TargetName::new("slack-alerts").unwrap();
    let source = Arc::new(StaticTargetSource::new(
        TargetSet::new(vec![TargetEntry::new(
            Target::new(name, TargetKind::Slack),
            publisher,
        )])
        .unwrap(),
    ));
    let registry = Arc::new(HealthRegistry::new(HealthConfig::default()).unwrap());
    let prober = Prober::new(
        registry,
        source,
        HttpClient::new(&ClientConfig::default()).unwrap(),
        |entry: &TargetEntry| entry.publisher.health_probe(),
    );
    let health = prober.check_now("slack-alerts").await.unwrap();
    (health, target.requests())
}

#[tokio::test]
async fn the_bot_probe_calls_auth_test_and_a_refused_token_degrades_with_reason_auth() {
    for code in [
        "invalid_auth",
        "account_inactive",
        "not_authed",
        "token_revoked",
        "token_expired",
    ] {
        let (health, requests) = probe_bot(error_reply(code)).await;
        assert_eq!(health.status, HealthStatus::Degraded, "{code}");
        assert_eq!(health.degraded_reason, Some(DegradedReason::Auth), "{code}");
        let failure = health.last_failure.expect("the refusal is recorded");
        assert_eq!(
            failure.error.kind,
            ErrorKind::Permanent {
                reason: PermanentReason::Auth
            },
            "{code}"
        );
        assert!(!format!("{failure:?}").contains(BOT_TOKEN), "{code}");
        assert_eq!(requests.len(), 1, "{code}");
        assert_eq!(requests[0].path, "/api/auth.test", "{code}");
        assert_eq!(
            requests[0].header("authorization"),
            Some(&*format!("Bearer {BOT_TOKEN}"))
        );
    }
}

#[tokio::test]
async fn the_bot_probe_is_healthy_when_the_token_works_or_only_lacks_a_scope() {
    let (health, _) = probe_bot(
        MockResponse::status(200)
            .json(&serde_json::json!({"ok": true, "team": "T1", "user_id": "U1"})),
    )
    .await;
    assert_eq!(health.status, HealthStatus::Healthy);
    // A missing scope is a setup problem that the publishes report; the token itself works.
    let (health, _) = probe_bot(error_reply("missing_scope")).await;
    assert_eq!(health.status, HealthStatus::Healthy);
    assert_eq!(health.degraded_reason, None);
}

#[tokio::test]
async fn exactly_one_mode_is_set_and_bot_mode_names_its_channel() {
    let build = |settings: serde_json::Value| {
        let settings: KindSettings = serde_json::from_value(settings).unwrap();
        publishers_slack::from_settings(&settings, &context(Arc::default()))
    };
    let both =
        build(serde_json::json!({"webhook_url": "https://hooks.slack.com/x", "token": BOT_TOKEN}))
            .unwrap_err();
    assert!(both.to_string().contains("set either"), "{both}");
    assert!(build(serde_json::json!({})).is_err());
    let no_channel = build(serde_json::json!({"token": BOT_TOKEN})).unwrap_err();
    assert!(no_channel.to_string().contains("channel"), "{no_channel}");
    let webhook = build(serde_json::json!({
        "webhook_url": format!("https://hooks.slack.com/services/{WEBHOOK_TOKEN}")
    }))
    .unwrap();
    let probe = webhook.health_probe().unwrap();
    assert!(probe.url.expose().ends_with(WEBHOOK_TOKEN));
    assert!(probe.headers.is_empty());
}

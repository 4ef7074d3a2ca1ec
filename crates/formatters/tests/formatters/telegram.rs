//! Telegram: the exact `sendMessage` body, HTML escaping, the reply, and the 4 096 limit.

use formatters::telegram::{self, TelegramSettings};
use formatters::{TemplateConfig, Templates};
use serde_json::json;

use crate::common::{
    GENERATOR_URL, alert_with, ctx_firing, ctx_resolved, firing, pairs, parse, resolved,
};

fn settings() -> TelegramSettings {
    TelegramSettings {
        chat_id: Some(json!(-1_001_234)),
        ..TelegramSettings::default()
    }
}

#[test]
fn a_firing_message() {
    let body = telegram::send_message(
        &firing(),
        &ctx_firing(),
        &settings(),
        &Templates::defaults(),
        None,
    )
    .unwrap();
    assert_eq!(
        parse(&body),
        json!({
            "chat_id": -1_001_234,
            "text": format!(
                "<b>[FIRING] DiskFull on db-1</b>\n/var on db-1 is 95% full\n\n\
                 Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical\n\
                 <a href=\"{}\">Source</a>",
                GENERATOR_URL
            ),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        })
    );
}

#[test]
fn a_resolve_replies_to_the_firing_message() {
    let with = TelegramSettings {
        disable_notification: true,
        message_thread_id: Some(7),
        ..settings()
    };
    let body = parse(
        &telegram::send_message(
            &resolved(),
            &ctx_resolved(),
            &with,
            &Templates::defaults(),
            Some(42),
        )
        .unwrap(),
    );
    assert_eq!(
        body["reply_parameters"],
        json!({"message_id": 42, "allow_sending_without_reply": true})
    );
    assert_eq!(body["disable_notification"], true);
    assert_eq!(body["message_thread_id"], 7);
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("<b>[RESOLVED] DiskFull")
    );
}

#[test]
fn alert_text_cannot_inject_markup() {
    let alert = alert_core::EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "<b>x</b> & \"y\"")]),
        pairs(&[("description", "<a href=\"http://evil\">click</a>")]),
    ));
    let body = parse(
        &telegram::send_message(
            &alert,
            &ctx_firing(),
            &settings(),
            &Templates::defaults(),
            None,
        )
        .unwrap(),
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>[FIRING] &lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;</b>\n"),
        "{text}"
    );
    assert!(
        text.contains("&lt;a href=&quot;http://evil&quot;&gt;click&lt;/a&gt;"),
        "{text}"
    );
    assert_eq!(telegram::escape("a<b>&c"), "a&lt;b&gt;&amp;c");
}

#[test]
fn the_visible_text_is_at_most_4096_characters() {
    let templates = Templates::new(&TemplateConfig {
        description: Some("{{ '<' * 9000 }}".to_owned()),
        ..TemplateConfig::default()
    })
    .unwrap();
    let body = parse(
        &telegram::send_message(&firing(), &ctx_firing(), &settings(), &templates, None).unwrap(),
    );
    let text = body["text"].as_str().unwrap();
    // What Telegram counts: the text with its tags removed and its entities decoded.
    let visible = text
        .replace("<b>", "")
        .replace("</b>", "")
        .replace(&format!("<a href=\"{GENERATOR_URL}\">"), "")
        .replace("</a>", "")
        .replace("&lt;", "<");
    assert!(
        visible.chars().count() <= 4_096,
        "{}",
        visible.chars().count()
    );
    assert!(visible.chars().count() > 4_000);
}

//! Discord: the exact embed, and every documented limit.

use formatters::discord::{self, DiscordSettings};
use formatters::{TemplateConfig, Templates};
use serde_json::json;

use crate::common::{
    ENDS_AT, FP, GENERATOR_URL, STARTS_AT, alert_with, annotations, ctx_firing, ctx_resolved,
    firing, pairs, parse, resolved,
};

const DESCRIPTION: &str = "/var on db-1 is 95% full\n\n\
                           Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical";

#[test]
fn a_firing_message() {
    let settings = DiscordSettings {
        username: Some("alertpub".to_owned()),
        avatar_url: None,
    };
    let body =
        discord::message(&firing(), &ctx_firing(), &settings, &Templates::defaults()).unwrap();
    let field = |name: &str, value: &str| json!({"name": name, "value": value, "inline": true});
    assert_eq!(
        parse(&body),
        json!({
            "username": "alertpub",
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "type": "rich",
                "title": "[FIRING] DiskFull on db-1",
                "description": DESCRIPTION,
                "url": GENERATOR_URL,
                "color": 0x00E0_1E5A,
                "timestamp": STARTS_AT,
                "footer": {"text": format!("alertpub · {FP}")},
                "fields": [
                    field("alertname", "DiskFull"),
                    field("instance", "db-1"),
                    field("job", "node"),
                    field("severity", "critical"),
                ],
            }],
        })
    );
}

#[test]
fn a_resolve_is_green_at_its_end() {
    let body = parse(
        &discord::message(
            &resolved(),
            &ctx_resolved(),
            &DiscordSettings::default(),
            &Templates::defaults(),
        )
        .unwrap(),
    );
    assert_eq!(body["embeds"][0]["color"], 0x002E_B67D);
    assert_eq!(body["embeds"][0]["timestamp"], ENDS_AT);
    assert_eq!(body["embeds"][0]["title"], "[RESOLVED] DiskFull on db-1");
}

#[test]
fn the_embed_keeps_to_every_limit() {
    let mut labels = pairs(&[("alertname", "Big")]);
    for i in 0..40 {
        labels.insert(format!("label_{i:02}"), "v".repeat(2_000));
    }
    let templates = Templates::new(&TemplateConfig {
        title: Some("{{ 't' * 400 }}".to_owned()),
        description: Some("{{ 'd' * 9000 }}".to_owned()),
        ..TemplateConfig::default()
    })
    .unwrap();
    let alert = alert_core::EnrichedAlert::new(alert_with(labels, annotations()));
    let body = parse(
        &discord::message(
            &alert,
            &ctx_firing(),
            &DiscordSettings::default(),
            &templates,
        )
        .unwrap(),
    );
    let embed = &body["embeds"][0];
    let chars = |v: &serde_json::Value| v.as_str().unwrap().chars().count();
    assert_eq!(chars(&embed["title"]), 256);
    assert!(chars(&embed["description"]) <= 4_096);
    let fields = embed["fields"].as_array().unwrap();
    assert!(fields.len() <= 25);
    let mut total =
        chars(&embed["title"]) + chars(&embed["description"]) + chars(&embed["footer"]["text"]);
    for field in fields {
        assert!(chars(&field["value"]) <= 1_024);
        total += chars(&field["name"]) + chars(&field["value"]);
    }
    assert!(total <= 6_000, "{total}");
}

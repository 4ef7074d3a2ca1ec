//! Slack: exact messages, and every Block Kit limit.

use alert_core::{Annotations, EnrichedAlert, Labels};
use formatters::slack::{
    self, MAX_ATTACHMENT_TITLE_CHARS, MAX_BLOCKS, MAX_FIELD_CHARS, MAX_FIELDS_PER_SECTION,
    MAX_HEADER_CHARS, MAX_SECTION_CHARS, SlackSettings,
};
use formatters::{FormatContext, TemplateConfig, Templates};
use serde_json::{Value, json};

use crate::common::{
    GENERATOR_URL, alert_with, annotations, classified, ctx_firing, ctx_resolved, firing, labels,
    pairs, resolved,
};

const STARTED: &str =
    "*Started:* <!date^1767323045^{date_short_pretty} {time_secs}|2026-01-02T03:04:05.000Z>";
const ENDED: &str =
    "*Ended:* <!date^1767326706^{date_short_pretty} {time_secs}|2026-01-02T04:05:06.000Z>";

fn message(alert: &EnrichedAlert, ctx: &FormatContext) -> Value {
    slack::message(
        alert,
        ctx,
        &SlackSettings::default(),
        &Templates::defaults(),
    )
    .unwrap()
}

fn label_fields() -> Value {
    json!({
        "type": "section",
        "fields": [
            { "type": "mrkdwn", "text": "*alertname*\nDiskFull" },
            { "type": "mrkdwn", "text": "*instance*\ndb-1" },
            { "type": "mrkdwn", "text": "*job*\nnode" },
            { "type": "mrkdwn", "text": "*severity*\ncritical" },
        ],
    })
}

fn body_section() -> Value {
    json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": "Disk almost full\n/var on db-1 is 95% full" },
    })
}

fn classification_section() -> Value {
    json!({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*Classification:* critical (92% confidence)\nUsage grows 5% an hour\n\
                     *Recommendations:*\n• Expand the volume\n• Rotate logs",
        },
    })
}

#[test]
fn firing_without_classification() {
    assert_eq!(
        message(&firing(), &ctx_firing()),
        json!({
            "text": "[FIRING] DiskFull on db-1",
            "blocks": [
                {
                    "type": "header",
                    "text": { "type": "plain_text", "text": "[FIRING] DiskFull on db-1" },
                },
                body_section(),
                label_fields(),
                {
                    "type": "context",
                    "elements": [
                        { "type": "mrkdwn", "text": "*Status:* firing" },
                        { "type": "mrkdwn", "text": STARTED },
                        { "type": "mrkdwn", "text": format!("<{GENERATOR_URL}|Source>") },
                    ],
                },
            ],
            "attachments": [{
                "color": "danger",
                "title": "[FIRING] DiskFull on db-1",
                "title_link": GENERATOR_URL,
                "fallback": "[FIRING] DiskFull on db-1",
            }],
        })
    );
}

#[test]
fn firing_with_classification() {
    assert_eq!(
        message(&classified(firing()), &ctx_firing()),
        json!({
            "text": "[FIRING] DiskFull on db-1",
            "blocks": [
                {
                    "type": "header",
                    "text": { "type": "plain_text", "text": "[FIRING] DiskFull on db-1" },
                },
                body_section(),
                label_fields(),
                classification_section(),
                {
                    "type": "context",
                    "elements": [
                        { "type": "mrkdwn", "text": "*Status:* firing" },
                        { "type": "mrkdwn", "text": STARTED },
                        { "type": "mrkdwn", "text": format!("<{GENERATOR_URL}|Source>") },
                    ],
                },
            ],
            "attachments": [{
                "color": "danger",
                "title": "[FIRING] DiskFull on db-1",
                "title_link": GENERATOR_URL,
                "fallback": "[FIRING] DiskFull on db-1",
            }],
        })
    );
}

#[test]
fn resolved_without_classification() {
    assert_eq!(
        message(&resolved(), &ctx_resolved()),
        json!({
            "text": "[RESOLVED] DiskFull on db-1",
            "blocks": [
                {
                    "type": "header",
                    "text": { "type": "plain_text", "text": "[RESOLVED] DiskFull on db-1" },
                },
                body_section(),
                label_fields(),
                {
                    "type": "context",
                    "elements": [
                        { "type": "mrkdwn", "text": "*Status:* resolved" },
                        { "type": "mrkdwn", "text": STARTED },
                        { "type": "mrkdwn", "text": ENDED },
                        { "type": "mrkdwn", "text": format!("<{GENERATOR_URL}|Source>") },
                    ],
                },
            ],
            "attachments": [{
                "color": "good",
                "title": "[RESOLVED] DiskFull on db-1",
                "title_link": GENERATOR_URL,
                "fallback": "[RESOLVED] DiskFull on db-1",
            }],
        })
    );
}

#[test]
fn resolved_with_classification_and_settings() {
    let settings = SlackSettings {
        channel: Some("#alerts".to_owned()),
        username: Some("alertpub".to_owned()),
        icon_emoji: Some(":rotating_light:".to_owned()),
        icon_url: Some("https://alertpub.local/icon.png".to_owned()),
    };
    let message = slack::message(
        &classified(resolved()),
        &ctx_resolved(),
        &settings,
        &Templates::defaults(),
    )
    .unwrap();
    assert_eq!(
        message,
        json!({
            "text": "[RESOLVED] DiskFull on db-1",
            "blocks": [
                {
                    "type": "header",
                    "text": { "type": "plain_text", "text": "[RESOLVED] DiskFull on db-1" },
                },
                body_section(),
                label_fields(),
                classification_section(),
                {
                    "type": "context",
                    "elements": [
                        { "type": "mrkdwn", "text": "*Status:* resolved" },
                        { "type": "mrkdwn", "text": STARTED },
                        { "type": "mrkdwn", "text": ENDED },
                        { "type": "mrkdwn", "text": format!("<{GENERATOR_URL}|Source>") },
                    ],
                },
            ],
            "attachments": [{
                "color": "good",
                "title": "[RESOLVED] DiskFull on db-1",
                "title_link": GENERATOR_URL,
                "fallback": "[RESOLVED] DiskFull on db-1",
            }],
            "channel": "#alerts",
            "username": "alertpub",
            "icon_emoji": ":rotating_light:",
            "icon_url": "https://alertpub.local/icon.png",
        })
    );
}

#[test]
fn labels_and_classification_are_escaped_and_links_kept_intact() {
    let alert = EnrichedAlert::new(
        alert_with(
            pairs(&[("alertname", "A"), ("expr", "rate(x[5m]) > 0 & y < 1")]),
            pairs(&[("summary", "ok")]),
        )
        .with_generator_url(Some("http://p/graph?a=1&b=|".to_owned())),
    );
    let message = message(&alert, &ctx_firing());
    assert_eq!(
        message["blocks"][2]["fields"][1]["text"],
        "*expr*\nrate(x[5m]) &gt; 0 &amp; y &lt; 1"
    );
    assert_eq!(
        message["blocks"][3]["elements"][2]["text"],
        "<http://p/graph?a=1&amp;b=%7C|Source>"
    );
    // The attachment link is a JSON field, not mrkdwn: sent as it is.
    assert_eq!(
        message["attachments"][0]["title_link"],
        "http://p/graph?a=1&b=|"
    );
}

#[test]
fn no_generator_url_means_no_link() {
    let alert = EnrichedAlert::new(alert_with(labels(), annotations()).with_generator_url(None));
    let message = message(&alert, &ctx_firing());
    assert_eq!(
        message["blocks"][3]["elements"].as_array().unwrap().len(),
        2
    );
    assert!(message["attachments"][0].get("title_link").is_none());
}

#[test]
fn settings_deserialise_strictly() {
    let settings: SlackSettings = serde_json::from_str(r##"{"channel": "#ops"}"##).unwrap();
    assert_eq!(settings.channel.as_deref(), Some("#ops"));
    assert!(serde_json::from_str::<SlackSettings>(r#"{"token": "x"}"#).is_err());
}

fn with_title(title: String) -> Templates {
    Templates::new(&TemplateConfig {
        title: Some(title),
        ..TemplateConfig::default()
    })
    .unwrap()
}

#[test]
fn header_is_cut_at_150_characters() {
    let title = "ü".repeat(300);
    let message = slack::message(
        &firing(),
        &ctx_firing(),
        &SlackSettings::default(),
        &with_title(title.clone()),
    )
    .unwrap();
    let header = message["blocks"][0]["text"]["text"].as_str().unwrap();
    assert_eq!(MAX_HEADER_CHARS, 150);
    assert_eq!(header, format!("{}…", "ü".repeat(149)));
    // The attachment title allows more, so it keeps the whole title.
    assert_eq!(message["attachments"][0]["title"], title.as_str());
}

#[test]
fn section_is_cut_at_3000_characters() {
    let summary = "ß".repeat(5000);
    let alert = EnrichedAlert::new(alert_with(labels(), pairs(&[("summary", &summary)])));
    let message = message(&alert, &ctx_firing());
    let text = message["blocks"][1]["text"]["text"].as_str().unwrap();
    assert_eq!(MAX_SECTION_CHARS, 3000);
    assert_eq!(text.chars().count(), 3000);
    assert_eq!(text, format!("{}…", "ß".repeat(2999)));
}

#[test]
fn label_field_is_cut_at_2000_characters() {
    let value = "v".repeat(3000);
    let alert = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "A"), ("big", &value)]),
        Annotations::new(),
    ));
    let message = message(&alert, &ctx_firing());
    let field = message["blocks"][2]["fields"][1]["text"].as_str().unwrap();
    assert_eq!(MAX_FIELD_CHARS, 2000);
    assert_eq!(field.chars().count(), 2000);
    assert!(field.starts_with("*big*\nvvv"));
    assert!(field.ends_with("v…"));
}

fn many_labels(count: usize) -> Labels {
    let mut labels: Labels = (1..count)
        .map(|i| (format!("label_{i:04}"), format!("value {i}")))
        .collect();
    labels.insert("alertname".to_owned(), "Flood".to_owned());
    labels
}

#[test]
fn a_thousand_labels_fit_in_50_blocks() {
    let alert = EnrichedAlert::new(alert_with(many_labels(1000), Annotations::new()));
    let message = message(&alert, &ctx_firing());
    let blocks = message["blocks"].as_array().unwrap();
    assert_eq!(MAX_BLOCKS, 50);
    assert_eq!(blocks.len(), 50);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[1]["text"]["text"], "[FIRING] Flood");
    let label_sections = &blocks[2..49];
    assert!(label_sections.iter().all(|b| {
        let fields = b["fields"].as_array().unwrap();
        b["type"] == "section" && fields.len() == MAX_FIELDS_PER_SECTION
    }));
    // 47 sections of 10 show 470 labels: the first is `alertname`, the rest in name order.
    assert_eq!(label_sections[0]["fields"][0]["text"], "*alertname*\nFlood");
    assert_eq!(
        label_sections[46]["fields"][9]["text"],
        "*label_0469*\nvalue 469"
    );
    let context = &blocks[49];
    assert_eq!(context["type"], "context");
    let elements = context["elements"].as_array().unwrap();
    assert_eq!(
        elements.last().unwrap()["text"],
        "_530 more labels not shown_"
    );
}

#[test]
fn with_a_classification_the_labels_give_up_one_more_block() {
    let alert = classified(EnrichedAlert::new(alert_with(
        many_labels(1000),
        Annotations::new(),
    )));
    let message = message(&alert, &ctx_firing());
    let blocks = message["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 50);
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[48]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*Classification:*")
    );
    assert_eq!(blocks[49]["type"], "context");
    assert_eq!(
        blocks[49]["elements"].as_array().unwrap().last().unwrap()["text"],
        "_540 more labels not shown_"
    );
}

#[test]
fn labels_that_fit_are_all_shown() {
    // 470 labels need exactly the 47 sections the budget leaves: nothing is hidden.
    let alert = EnrichedAlert::new(alert_with(many_labels(470), Annotations::new()));
    let message = message(&alert, &ctx_firing());
    let blocks = message["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 50);
    assert_eq!(blocks[49]["elements"].as_array().unwrap().len(), 3);
}

#[test]
fn attachment_title_is_cut_at_1024_runes() {
    let title = "☃".repeat(2000);
    let message = slack::message(
        &firing(),
        &ctx_firing(),
        &SlackSettings::default(),
        &with_title(title),
    )
    .unwrap();
    let expected = format!("{}…", "☃".repeat(1023));
    assert_eq!(MAX_ATTACHMENT_TITLE_CHARS, 1024);
    assert_eq!(message["attachments"][0]["title"], expected.as_str());
    assert_eq!(message["attachments"][0]["fallback"], expected.as_str());
    assert_eq!(message["text"], expected.as_str());
    assert_eq!(
        message["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        150
    );
}

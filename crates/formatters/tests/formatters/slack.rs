//! Slack: exact messages, every Block Kit limit, and the budget of the whole message.

use alert_core::{Annotations, EnrichedAlert, Labels};
use formatters::slack::{
    self, BLOCK_CONTAINER_CHARS, MAX_ATTACHMENT_TITLE_CHARS, MAX_BLOCKS, MAX_BLOCKS_TEXT_CHARS,
    MAX_FIELD_CHARS, MAX_FIELDS_PER_SECTION, MAX_HEADER_CHARS, MAX_SECTION_CHARS, MIN_FIELD_CHARS,
    SlackSettings,
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
        ..Default::default()
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

/// `alertname="Flood"` and `count - 1` more labels, each short enough that 470 of them fit the
/// message budget, so that the block limit is what hides the rest.
fn many_labels(count: usize) -> Labels {
    let mut labels: Labels = (1..count)
        .map(|i| (format!("l{i:04}"), "v".to_owned()))
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
    assert_eq!(label_sections[46]["fields"][9]["text"], "*l0469*\nv");
    let context = &blocks[49];
    assert_eq!(context["type"], "context");
    let elements = context["elements"].as_array().unwrap();
    assert_eq!(
        elements.last().unwrap()["text"],
        "_530 more labels not shown_"
    );
    assert!(block_cost(&message) <= MAX_BLOCKS_TEXT_CHARS);
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

/// What a message costs against Slack's cumulative limit, counted independently of the
/// formatter: every string under a `text` key in the blocks, plus the container charge per block.
fn block_cost(message: &Value) -> usize {
    fn text_chars(value: &Value) -> usize {
        match value {
            Value::Object(map) => map
                .iter()
                .map(|(key, value)| match value {
                    Value::String(text) if key == "text" => text.chars().count(),
                    other => text_chars(other),
                })
                .sum(),
            Value::Array(items) => items.iter().map(text_chars).sum(),
            _ => 0,
        }
    }
    let blocks = message["blocks"].as_array().unwrap();
    blocks.iter().map(text_chars).sum::<usize>() + blocks.len() * BLOCK_CONTAINER_CHARS
}

fn firing_context() -> Value {
    json!({
        "type": "context",
        "elements": [
            { "type": "mrkdwn", "text": "*Status:* firing" },
            { "type": "mrkdwn", "text": STARTED },
            { "type": "mrkdwn", "text": format!("<{GENERATOR_URL}|Source>") },
        ],
    })
}

#[test]
fn the_budget_is_12000_characters_with_50_per_block() {
    assert_eq!(MAX_BLOCKS_TEXT_CHARS, 12_000);
    assert_eq!(BLOCK_CONTAINER_CHARS, 50);
    assert_eq!(MIN_FIELD_CHARS, 100);
    // The ordinary message is far within it, and untouched (the exact tests above): the header
    // (25), the body (41), the four fields (64), the context (153) and four blocks (200).
    assert_eq!(block_cost(&message(&firing(), &ctx_firing())), 483);
}

#[test]
fn long_label_values_are_cut_to_one_length_to_fit_the_budget() {
    let wide = "v".repeat(1990);
    let mut labels = pairs(&[("alertname", "Wide")]);
    for i in 1..=6 {
        labels.insert(format!("big_{i}"), wide.clone());
    }
    let alert = EnrichedAlert::new(alert_with(labels, pairs(&[("summary", "Wide labels")])));
    let message = message(&alert, &ctx_firing());

    // Each field is 1998 characters, within Slack's 2000, but six of them are not within the
    // budget. Around them: the header (13), the body (11), the context (16 + 86 + 51) and four
    // blocks (200) leave 11,623 for the fields; `alertname` (16) stays whole, and 6 × 1934 =
    // 11,604 is the most the others can keep (6 × 1935 is over).
    let cut = format!("{}…", "v".repeat(1925));
    let mut fields = vec![json!({ "type": "mrkdwn", "text": "*alertname*\nWide" })];
    for i in 1..=6 {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*big_{i}*\n{cut}") }));
    }
    assert_eq!(
        message,
        json!({
            "text": "[FIRING] Wide",
            "blocks": [
                {
                    "type": "header",
                    "text": { "type": "plain_text", "text": "[FIRING] Wide" },
                },
                {
                    "type": "section",
                    "text": { "type": "mrkdwn", "text": "Wide labels" },
                },
                { "type": "section", "fields": fields },
                firing_context(),
            ],
            "attachments": [{
                "color": "danger",
                "title": "[FIRING] Wide",
                "title_link": GENERATOR_URL,
                "fallback": "[FIRING] Wide",
            }],
        })
    );
    assert_eq!(block_cost(&message), 11_997);
}

#[test]
fn the_description_is_cut_once_the_fields_are_as_short_as_they_go() {
    let mut labels = pairs(&[("alertname", "Deep")]);
    for i in 0..99 {
        labels.insert(format!("k_{i:02}"), "w".repeat(300));
    }
    let description = "d".repeat(2500);
    let alert = EnrichedAlert::new(alert_with(
        labels,
        pairs(&[("summary", "Deep alert"), ("description", &description)]),
    ));
    let message = message(&alert, &ctx_firing());

    // 100 fields in 10 sections: cut to 100 characters they take 16 + 99 × 100 = 9,916, and with
    // the header (13), the context (153) and 13 blocks (650) that leaves 1,268 for the body: the
    // summary, the line break and 1,256 characters of the description with the ellipsis.
    let cut_field = format!("{}…", "w".repeat(92));
    let mut fields = vec![json!({ "type": "mrkdwn", "text": "*alertname*\nDeep" })];
    for i in 0..99 {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*k_{i:02}*\n{cut_field}") }));
    }
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": "[FIRING] Deep" },
        }),
        json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": format!("Deep alert\n{}…", "d".repeat(1256)),
            },
        }),
    ];
    for chunk in fields.chunks(MAX_FIELDS_PER_SECTION) {
        blocks.push(json!({ "type": "section", "fields": chunk }));
    }
    blocks.push(firing_context());
    assert_eq!(message["blocks"], Value::Array(blocks));
    assert_eq!(message["text"], "[FIRING] Deep");
    assert_eq!(block_cost(&message), MAX_BLOCKS_TEXT_CHARS);
}

#[test]
fn label_sections_are_dropped_last() {
    // 1000 labels of about 21 characters: short enough not to be cut, too many for the budget.
    let mut labels: Labels = (1..1000)
        .map(|i| (format!("label_{i:04}"), format!("value {i}")))
        .collect();
    labels.insert("alertname".to_owned(), "Flood".to_owned());
    let alert = EnrichedAlert::new(alert_with(labels, Annotations::new()));
    let message = message(&alert, &ctx_firing());
    let blocks = message["blocks"].as_array().unwrap();

    // 47 sections would cost 14 + 14 + 153 + 27 + 50 × 50 + 10,165 = 12,873 with their fields;
    // 43 sections (430 labels) are the most that fit: 11,855.
    assert_eq!(blocks.len(), 3 + 43);
    assert_eq!(blocks[1]["text"]["text"], "[FIRING] Flood");
    assert_eq!(blocks[2]["fields"][0]["text"], "*alertname*\nFlood");
    assert_eq!(blocks[44]["fields"][9]["text"], "*label_0429*\nvalue 429");
    let context = blocks[45]["elements"].as_array().unwrap();
    assert_eq!(context[2]["text"], format!("<{GENERATOR_URL}|Source>"));
    assert_eq!(context[3]["text"], "_570 more labels not shown_");
    assert_eq!(block_cost(&message), 11_855);
}

#[test]
fn a_huge_alert_stays_within_every_limit_and_keeps_its_fallback_text() {
    let labels: Labels = (0..128)
        .map(|i| (format!("n{i:03}"), "x".repeat(10_000)))
        .chain([("alertname".to_owned(), "Huge".to_owned())])
        .collect();
    let url = format!("http://prometheus.local/graph?g0.expr={}", "q".repeat(5000));
    let alert = alert_with(
        labels,
        pairs(&[
            ("summary", &"s".repeat(10_000)),
            ("description", &"d".repeat(10_000)),
        ]),
    )
    .with_generator_url(Some(url.clone()))
    .with_ends_at(Some(crate::common::at(crate::common::ENDS_AT)))
    .unwrap();
    let classification =
        alert_core::Classification::new(alert_core::Severity::Critical, 0.5, "r".repeat(10_000))
            .unwrap()
            .with_recommendations(vec!["e".repeat(5000); 20]);
    let alert = EnrichedAlert::new(alert).with_classification(classification);
    let title = "T".repeat(5000);
    let message = slack::message(
        &alert,
        &ctx_resolved(),
        &SlackSettings::default(),
        &with_title(title),
    )
    .unwrap();

    assert!(
        block_cost(&message) <= MAX_BLOCKS_TEXT_CHARS,
        "{}",
        block_cost(&message)
    );
    // The fallback text and the attachment are not blocks: cut only to their own limit.
    let fallback = format!("{}…", "T".repeat(MAX_ATTACHMENT_TITLE_CHARS - 1));
    assert_eq!(message["text"], fallback.as_str());
    assert_eq!(message["attachments"][0]["fallback"], fallback.as_str());
    assert_eq!(message["attachments"][0]["title_link"], url.as_str());

    let blocks = message["blocks"].as_array().unwrap();
    assert!(blocks.len() <= MAX_BLOCKS);
    let chars = |value: &Value| value.as_str().unwrap().chars().count();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(chars(&blocks[0]["text"]["text"]), MAX_HEADER_CHARS);
    // The summary stays, cut to its section; the description could not.
    assert_eq!(
        blocks[1]["text"]["text"],
        format!("{}…", "s".repeat(MAX_SECTION_CHARS - 1)).as_str()
    );
    let label_sections = &blocks[2..blocks.len() - 2];
    assert!(!label_sections.is_empty(), "some labels are still shown");
    let mut shown = 0;
    for section in label_sections {
        let fields = section["fields"].as_array().unwrap();
        assert!(fields.len() <= MAX_FIELDS_PER_SECTION);
        for field in fields {
            let text = field["text"].as_str().unwrap();
            // `alertname` is short and stays whole; the others are cut to one length.
            if text != "*alertname*\nHuge" {
                assert!(text.ends_with('…'), "{text}");
                assert!((MIN_FIELD_CHARS..=MAX_FIELD_CHARS).contains(&chars(&field["text"])));
            }
            shown += 1;
        }
    }
    let classification = &blocks[blocks.len() - 2]["text"]["text"];
    assert!(
        classification
            .as_str()
            .unwrap()
            .starts_with("*Classification:*")
    );
    assert_eq!(chars(classification), MAX_SECTION_CHARS);
    let context = blocks.last().unwrap();
    assert_eq!(context["type"], "context");
    let elements: Vec<&str> = context["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    // The source link is longer than a text object may be, so it is left out rather than cut.
    assert_eq!(elements.len(), 4, "{elements:?}");
    assert_eq!(elements[0], "*Status:* resolved");
    assert_eq!(elements[2], ENDED);
    assert_eq!(
        elements[3],
        format!("_{} more labels not shown_", 129 - shown)
    );
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

#[test]
fn alert_text_cannot_mention_people_unless_raw_markup_is_set() {
    let alert = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "A")]),
        pairs(&[
            (
                "summary",
                "<!channel> disk full, see <https://runbook/disk|Runbook>",
            ),
            (
                "description",
                "<!here> & <@U024BE7LH> <#C024BE7LH> <!subteam^SAZ94GDB8>",
            ),
        ]),
    ));
    let text = |settings: &SlackSettings| {
        slack::message(&alert, &ctx_firing(), settings, &Templates::defaults())
            .unwrap()
            .to_string()
    };
    let safe = text(&SlackSettings::default());
    for mention in [
        "<!channel>",
        "<!here>",
        "<@U024BE7LH>",
        "<#C024BE7LH>",
        "<!subteam^",
    ] {
        assert!(!safe.contains(mention), "{mention} in {safe}");
    }
    assert!(
        safe.contains("&lt;!channel&gt;") || safe.contains("&lt;!channel>"),
        "{safe}"
    );
    assert!(safe.contains("<https://runbook/disk|Runbook>"), "{safe}");
    let raw = text(&SlackSettings {
        raw_markup: true,
        ..Default::default()
    });
    for mention in ["<!channel>", "<!here>", "<@U024BE7LH>"] {
        assert!(raw.contains(mention), "{mention} not in {raw}");
    }
}

//! Teams: the exact Workflows envelope and Adaptive Card, and the 28 KB limit.

use formatters::msteams;
use formatters::{TemplateConfig, Templates};
use serde_json::json;

use crate::common::{
    GENERATOR_URL, alert_with, annotations, ctx_firing, ctx_resolved, firing, pairs, parse,
    resolved,
};

const DESCRIPTION: &str = "/var on db-1 is 95% full\n\n\
                           Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical";

#[test]
fn a_firing_card() {
    let body = msteams::message(&firing(), &ctx_firing(), &Templates::defaults()).unwrap();
    assert_eq!(
        parse(&body),
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": [
                        {"type": "TextBlock", "text": "[FIRING] DiskFull on db-1", "weight": "Bolder",
                         "size": "Medium", "color": "Attention", "wrap": true},
                        {"type": "TextBlock", "text": DESCRIPTION, "wrap": true},
                        {"type": "FactSet", "facts": [
                            {"title": "alertname", "value": "DiskFull"},
                            {"title": "instance", "value": "db-1"},
                            {"title": "job", "value": "node"},
                            {"title": "severity", "value": "critical"},
                        ]},
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Source", "url": GENERATOR_URL}],
                },
            }],
        })
    );
}

#[test]
fn a_resolved_card_is_green() {
    let body =
        parse(&msteams::message(&resolved(), &ctx_resolved(), &Templates::defaults()).unwrap());
    let title = &body["attachments"][0]["content"]["body"][0];
    assert_eq!(title["text"], "[RESOLVED] DiskFull on db-1");
    assert_eq!(title["color"], "Good");
}

#[test]
fn a_card_over_28_kb_loses_its_facts_then_its_description_is_cut() {
    let mut labels = pairs(&[("alertname", "Big")]);
    for i in 0..100 {
        labels.insert(format!("label_{i:03}"), "v".repeat(200));
    }
    let templates = Templates::new(&TemplateConfig {
        description: Some("{{ 'é' * 40000 }}".to_owned()),
        ..TemplateConfig::default()
    })
    .unwrap();
    let alert = alert_core::EnrichedAlert::new(alert_with(labels, annotations()));
    let body = msteams::message(&alert, &ctx_firing(), &templates).unwrap();
    assert!(body.len() <= msteams::MAX_MESSAGE_BYTES, "{}", body.len());
    let card = parse(&body);
    let blocks = card["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(blocks.len(), 2, "the facts are dropped");
    let text = blocks[1]["text"].as_str().unwrap();
    assert!(
        text.ends_with('…'),
        "{} chars: {}",
        text.chars().count(),
        &text[..40]
    );
    assert!(
        body.len() > msteams::MAX_MESSAGE_BYTES - 200,
        "cut no more than needed: {}",
        body.len()
    );
}

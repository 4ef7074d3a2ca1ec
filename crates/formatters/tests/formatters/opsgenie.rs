//! Opsgenie: exact create and close bodies, the priority mapping and the documented limits.

use alert_core::Labels;
use formatters::opsgenie::{self, OpsgenieSettings, Priority};
use formatters::{TemplateConfig, Templates};
use serde_json::json;

use crate::common::{
    FP, alert_with, annotations, ctx_firing, ctx_resolved, firing, labels, labels_json, pairs,
    parse, resolved,
};

const DESCRIPTION: &str = "/var on db-1 is 95% full\n\n\
                           Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical";

#[test]
fn a_firing_alert_is_created_under_its_alias() {
    let body = opsgenie::create_body(
        &firing(),
        &ctx_firing(),
        &OpsgenieSettings::default(),
        &Templates::defaults(),
    )
    .unwrap();
    assert_eq!(
        parse(&body),
        json!({
            "message": "[FIRING] DiskFull on db-1",
            "alias": format!("alertpub-{FP}"),
            "description": DESCRIPTION,
            "details": labels_json(),
            "entity": "db-1",
            "source": "alertpub",
            "priority": "P1",
        })
    );
}

#[test]
fn settings_add_tags_responders_and_a_fixed_priority() {
    let settings = OpsgenieSettings {
        priority: Some(Priority::P4),
        tags: vec!["db".to_owned(), "t".repeat(60)],
        responders: vec![json!({"type": "team", "name": "storage"})],
        source: Some("prometheus".to_owned()),
    };
    let body = parse(
        &opsgenie::create_body(&firing(), &ctx_firing(), &settings, &Templates::defaults())
            .unwrap(),
    );
    assert_eq!(body["priority"], "P4");
    assert_eq!(body["source"], "prometheus");
    assert_eq!(
        body["responders"],
        json!([{"type": "team", "name": "storage"}])
    );
    assert_eq!(body["tags"][0], "db");
    assert_eq!(body["tags"][1].as_str().unwrap().chars().count(), 50);
}

#[test]
fn a_resolve_closes_by_alias_with_a_note() {
    let body = opsgenie::close_body(
        &resolved(),
        &ctx_resolved(),
        &OpsgenieSettings::default(),
        &Templates::defaults(),
    )
    .unwrap();
    assert_eq!(
        parse(&body),
        json!({"source": "alertpub", "note": "[RESOLVED] DiskFull on db-1"})
    );
    assert_eq!(
        opsgenie::alias(firing().alert.fingerprint()),
        format!("alertpub-{FP}")
    );
}

#[test]
fn severities_map_to_priorities_and_the_message_is_cut_to_130() {
    for (severity, priority) in [
        ("critical", "P1"),
        ("error", "P2"),
        ("warning", "P3"),
        ("low", "P4"),
        ("info", "P5"),
        ("unheard-of", "P3"),
    ] {
        let mut labels: Labels = labels();
        labels.insert("severity".to_owned(), severity.to_owned());
        let alert = alert_core::EnrichedAlert::new(alert_with(labels, annotations()));
        let body = parse(
            &opsgenie::create_body(
                &alert,
                &ctx_firing(),
                &OpsgenieSettings::default(),
                &Templates::defaults(),
            )
            .unwrap(),
        );
        assert_eq!(body["priority"], priority, "{severity}");
    }
    let templates = Templates::new(&TemplateConfig {
        title: Some("{{ 'x' * 500 }}".to_owned()),
        ..TemplateConfig::default()
    })
    .unwrap();
    let alert =
        alert_core::EnrichedAlert::new(alert_with(pairs(&[("alertname", "A")]), annotations()));
    let body = parse(
        &opsgenie::create_body(
            &alert,
            &ctx_firing(),
            &OpsgenieSettings::default(),
            &templates,
        )
        .unwrap(),
    );
    assert_eq!(body["message"].as_str().unwrap().chars().count(), 130);
    assert!(body.get("entity").is_none());
}

//! Rootly: exact JSON:API bodies, and the resolve endpoint's body.

use alert_core::{AlertStatus, EnrichedAlert};
use formatters::rootly::{self, RootlySettings};
use formatters::{FormatContext, Templates};
use serde_json::{Value, json};

use crate::common::{
    ENDS_AT, FP, GENERATOR_URL, STARTS_AT, annotations_json, at, classification_json, classified,
    ctx_firing, ctx_resolved, enrichment_json, firing, labels_json, parse, resolved,
};

const DESCRIPTION: &str = "/var on db-1 is 95% full\n\n\
                           Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical";

fn body(alert: &EnrichedAlert, ctx: &FormatContext, settings: &RootlySettings) -> Value {
    parse(&rootly::alert_body(alert, ctx, settings, &Templates::defaults()).unwrap())
}

fn labels_list() -> Value {
    json!([
        { "key": "alertname", "value": "DiskFull" },
        { "key": "instance", "value": "db-1" },
        { "key": "job", "value": "node" },
        { "key": "severity", "value": "critical" },
    ])
}

fn routed_settings() -> RootlySettings {
    RootlySettings {
        source: Some("generic_webhook".to_owned()),
        alert_urgency_id: Some("urgency-high".to_owned()),
        service_ids: vec!["svc-db".to_owned()],
        group_ids: vec!["team-storage".to_owned()],
        environment_ids: vec!["env-prod".to_owned()],
    }
}

#[test]
fn firing_without_classification() {
    assert_eq!(
        body(&firing(), &ctx_firing(), &RootlySettings::default()),
        json!({
            "data": {
                "type": "alerts",
                "attributes": {
                    "source": "alertmanager",
                    "summary": "Disk almost full",
                    "description": DESCRIPTION,
                    "status": "open",
                    "started_at": STARTS_AT,
                    "external_id": FP,
                    "external_url": GENERATOR_URL,
                    "labels": labels_list(),
                    "deduplication_key": format!("alertpub-{FP}"),
                    "data": {
                        "labels": labels_json(),
                        "annotations": annotations_json(),
                        "fingerprint": FP,
                    },
                },
            },
        })
    );
}

#[test]
fn firing_with_classification_and_routing_settings() {
    assert_eq!(
        body(&classified(firing()), &ctx_firing(), &routed_settings()),
        json!({
            "data": {
                "type": "alerts",
                "attributes": {
                    "source": "generic_webhook",
                    "summary": "Disk almost full",
                    "description": DESCRIPTION,
                    "status": "open",
                    "started_at": STARTS_AT,
                    "external_id": FP,
                    "external_url": GENERATOR_URL,
                    "labels": labels_list(),
                    "deduplication_key": format!("alertpub-{FP}"),
                    "data": {
                        "labels": labels_json(),
                        "annotations": annotations_json(),
                        "fingerprint": FP,
                        "classification": classification_json(),
                        "enrichment": enrichment_json(),
                    },
                    "alert_urgency_id": "urgency-high",
                    "service_ids": ["svc-db"],
                    "group_ids": ["team-storage"],
                    "environment_ids": ["env-prod"],
                },
            },
        })
    );
}

#[test]
fn resolved_without_classification() {
    // Rootly's create endpoint accepts only `open` or `triggered` as a status, so a resolve is
    // told by its `ended_at` (see the module docs).
    assert_eq!(
        body(&resolved(), &ctx_resolved(), &RootlySettings::default()),
        json!({
            "data": {
                "type": "alerts",
                "attributes": {
                    "source": "alertmanager",
                    "summary": "Disk almost full",
                    "description": DESCRIPTION,
                    "started_at": STARTS_AT,
                    "ended_at": ENDS_AT,
                    "external_id": FP,
                    "external_url": GENERATOR_URL,
                    "labels": labels_list(),
                    "deduplication_key": format!("alertpub-{FP}"),
                    "data": {
                        "labels": labels_json(),
                        "annotations": annotations_json(),
                        "fingerprint": FP,
                    },
                },
            },
        })
    );
}

#[test]
fn resolved_with_classification() {
    assert_eq!(
        body(
            &classified(resolved()),
            &ctx_resolved(),
            &RootlySettings::default()
        ),
        json!({
            "data": {
                "type": "alerts",
                "attributes": {
                    "source": "alertmanager",
                    "summary": "Disk almost full",
                    "description": DESCRIPTION,
                    "started_at": STARTS_AT,
                    "ended_at": ENDS_AT,
                    "external_id": FP,
                    "external_url": GENERATOR_URL,
                    "labels": labels_list(),
                    "deduplication_key": format!("alertpub-{FP}"),
                    "data": {
                        "labels": labels_json(),
                        "annotations": annotations_json(),
                        "fingerprint": FP,
                        "classification": classification_json(),
                        "enrichment": enrichment_json(),
                    },
                },
            },
        })
    );
}

#[test]
fn auto_resolve_ends_now() {
    let ctx = FormatContext::new(AlertStatus::Resolved, at("2026-01-02T06:00:00Z"));
    let body = body(&firing(), &ctx, &RootlySettings::default());
    assert_eq!(
        body["data"]["attributes"]["ended_at"],
        "2026-01-02T06:00:00.000Z"
    );
    assert!(body["data"]["attributes"].get("status").is_none());
}

#[test]
fn dedup_key_matches_pagerduty_and_the_fingerprint() {
    let body = body(&firing(), &ctx_firing(), &RootlySettings::default());
    assert_eq!(
        body["data"]["attributes"]["deduplication_key"],
        formatters::pagerduty::dedup_key(firing().alert.fingerprint())
    );
    assert_eq!(body["data"]["attributes"]["external_id"], FP);
}

#[test]
fn resolve_endpoint_body() {
    let bytes = rootly::resolve_body(&resolved(), &ctx_resolved(), &Templates::defaults()).unwrap();
    assert_eq!(
        parse(&bytes),
        json!({
            "data": {
                "type": "alerts",
                "attributes": { "resolution_message": "[RESOLVED] DiskFull on db-1" },
            },
        })
    );
}

#[test]
fn settings_deserialise_strictly() {
    let settings: RootlySettings =
        serde_json::from_str(r#"{"source": "api", "service_ids": ["a"]}"#).unwrap();
    assert_eq!(settings.source.as_deref(), Some("api"));
    assert_eq!(settings.service_ids, ["a"]);
    assert!(settings.group_ids.is_empty());
    assert!(serde_json::from_str::<RootlySettings>(r#"{"api_key": "x"}"#).is_err());
}

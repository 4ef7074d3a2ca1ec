//! The generic webhook: exact bodies, stable key order, and the idempotency key.

use alert_core::{AlertStatus, EnrichedAlert};
use formatters::{FormatContext, webhook};
use serde_json::{Value, json};

use crate::common::{
    ENDS_AT, FP, GENERATOR_URL, STARTS_AT, annotations_json, at, classification_json, classified,
    ctx_firing, ctx_resolved, enrichment_json, firing, labels_json, parse, resolved,
};

fn body(alert: &EnrichedAlert, ctx: &FormatContext) -> Value {
    parse(&webhook::body(alert, ctx).unwrap())
}

#[test]
fn firing_without_classification() {
    assert_eq!(
        body(&firing(), &ctx_firing()),
        json!({
            "version": "1",
            "alert_name": "DiskFull",
            "fingerprint": FP,
            "status": "firing",
            "labels": labels_json(),
            "annotations": annotations_json(),
            "starts_at": STARTS_AT,
            "ends_at": null,
            "generator_url": GENERATOR_URL,
            "classification": null,
            "enrichment": null,
        })
    );
}

#[test]
fn firing_with_classification() {
    assert_eq!(
        body(&classified(firing()), &ctx_firing()),
        json!({
            "version": "1",
            "alert_name": "DiskFull",
            "fingerprint": FP,
            "status": "firing",
            "labels": labels_json(),
            "annotations": annotations_json(),
            "starts_at": STARTS_AT,
            "ends_at": null,
            "generator_url": GENERATOR_URL,
            "classification": classification_json(),
            "enrichment": enrichment_json(),
        })
    );
}

#[test]
fn resolved_without_classification() {
    assert_eq!(
        body(&resolved(), &ctx_resolved()),
        json!({
            "version": "1",
            "alert_name": "DiskFull",
            "fingerprint": FP,
            "status": "resolved",
            "labels": labels_json(),
            "annotations": annotations_json(),
            "starts_at": STARTS_AT,
            "ends_at": ENDS_AT,
            "generator_url": GENERATOR_URL,
            "classification": null,
            "enrichment": null,
        })
    );
}

#[test]
fn resolved_with_classification() {
    assert_eq!(
        body(&classified(resolved()), &ctx_resolved()),
        json!({
            "version": "1",
            "alert_name": "DiskFull",
            "fingerprint": FP,
            "status": "resolved",
            "labels": labels_json(),
            "annotations": annotations_json(),
            "starts_at": STARTS_AT,
            "ends_at": ENDS_AT,
            "generator_url": GENERATOR_URL,
            "classification": classification_json(),
            "enrichment": enrichment_json(),
        })
    );
}

#[test]
fn keys_are_all_present_in_a_stable_order() {
    let alert = EnrichedAlert::new(firing().alert.with_generator_url(None));
    let text = String::from_utf8(webhook::body(&alert, &ctx_firing()).unwrap()).unwrap();
    assert_eq!(
        text,
        format!(
            r#"{{"version":"1","alert_name":"DiskFull","fingerprint":"{FP}","status":"firing","labels":{{"alertname":"DiskFull","instance":"db-1","job":"node","severity":"critical"}},"annotations":{{"description":"/var on db-1 is 95% full","summary":"Disk almost full"}},"starts_at":"{STARTS_AT}","ends_at":null,"generator_url":null,"classification":null,"enrichment":null}}"#
        )
    );
}

#[test]
fn auto_resolve_ends_now() {
    let ctx = FormatContext::new(AlertStatus::Resolved, at("2026-01-02T06:00:00Z"));
    let body = body(&firing(), &ctx);
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["ends_at"], "2026-01-02T06:00:00.000Z");
}

#[test]
fn idempotency_key_is_fingerprint_status_start_and_sequence() {
    let alert = firing().alert;
    assert_eq!(
        webhook::idempotency_key(&alert, AlertStatus::Firing, 7),
        format!("{FP}-firing-1767323045000-7")
    );
}

#[test]
fn same_inputs_give_the_same_key() {
    // A retry of one job, even from another process, rebuilds the alert and reuses the key.
    let first = webhook::idempotency_key(&firing().alert, AlertStatus::Firing, 3);
    let again = webhook::idempotency_key(&firing().alert, AlertStatus::Firing, 3);
    assert_eq!(first, again);
}

#[test]
fn any_changed_input_gives_a_new_key() {
    let alert = firing().alert;
    let key = webhook::idempotency_key(&alert, AlertStatus::Firing, 3);
    // A `repeat_interval` reminder: a new delivery sequence.
    assert_ne!(
        key,
        webhook::idempotency_key(&alert, AlertStatus::Firing, 4)
    );
    // A status change.
    assert_ne!(
        key,
        webhook::idempotency_key(&alert, AlertStatus::Resolved, 3)
    );
    // A new occurrence: a new `startsAt`.
    let later = alert.with_starts_at(at("2026-01-02T03:04:06Z")).unwrap();
    assert_ne!(
        key,
        webhook::idempotency_key(&later, AlertStatus::Firing, 3)
    );
}

//! Alertmanager: API v2 postable alerts and the v4 webhook envelope.

use alert_core::{Alert, AlertStatus, Annotations, EnrichedAlert};
use formatters::{FormatContext, alertmanager};
use serde_json::{Value, json};

use crate::common::{
    ENDS_AT, FP, FP_DB2, GENERATOR_URL, NOW_AFTER_END, STARTS_AT, alert_with, annotations_json, at,
    classified, ctx_firing, firing, labels_json, pairs, parse, resolved,
};

fn postable(alerts: &[&Alert], now: &str) -> Value {
    // Each alert with its own status at `now`, as a job made then would carry it.
    let with_status: Vec<(&Alert, FormatContext)> = alerts
        .iter()
        .map(|alert| {
            (
                *alert,
                FormatContext::new(alert.status_at(at(now)), at(now)),
            )
        })
        .collect();
    parse(&alertmanager::postable_alerts(&with_status).unwrap())
}

/// The envelope of `alerts`, each with its own status at `now`, as Alertmanager renders a
/// notification it sends at `now`.
fn envelope_of(
    alerts: &[&EnrichedAlert],
    now: chrono::DateTime<chrono::Utc>,
    receiver: &str,
    group_key: &str,
    external_url: &str,
) -> Value {
    let with_status: Vec<(&EnrichedAlert, AlertStatus)> = alerts
        .iter()
        .map(|alert| (*alert, alert.alert.status_at(now)))
        .collect();
    alertmanager::webhook_envelope(&with_status, receiver, group_key, external_url)
}

const NOW_FIRING: &str = "2026-01-02T03:34:05Z";

#[test]
fn postable_firing_has_no_end() {
    let alert = firing().alert;
    assert_eq!(
        postable(&[&alert], NOW_FIRING),
        json!([{
            "labels": labels_json(),
            "annotations": annotations_json(),
            "startsAt": STARTS_AT,
            "generatorURL": GENERATOR_URL,
        }])
    );
}

#[test]
fn postable_leaves_out_a_generator_url_alertmanager_would_refuse() {
    // Alertmanager answers 422 to a `generatorURL` that is not an absolute URI, for the whole
    // request; without the field the alert is accepted.
    let relative = firing()
        .alert
        .with_generator_url(Some("prometheus.local/graph?g0.expr=disk".to_owned()));
    let absolute = alert_with(pairs(&[("alertname", "A")]), Annotations::new()).with_generator_url(
        Some("https://prom.example:9090/graph?g0.expr=up".to_owned()),
    );
    let ctx = FormatContext::new(AlertStatus::Firing, at(NOW_FIRING));
    assert_eq!(
        parse(&alertmanager::postable_alerts_with_context(&[&relative, &absolute], &ctx).unwrap()),
        json!([
            {
                "labels": labels_json(),
                "annotations": annotations_json(),
                "startsAt": STARTS_AT,
            },
            {
                "labels": { "alertname": "A" },
                "annotations": {},
                "startsAt": STARTS_AT,
                "generatorURL": "https://prom.example:9090/graph?g0.expr=up",
            },
        ])
    );
    assert!(!alertmanager::is_absolute_request_uri(
        "prometheus.local/graph"
    ));
    assert!(alertmanager::is_absolute_request_uri(GENERATOR_URL));
}

#[test]
fn postable_resolved_keeps_its_end() {
    let alert = resolved().alert;
    assert_eq!(
        postable(&[&alert], NOW_AFTER_END),
        json!([{
            "labels": labels_json(),
            "annotations": annotations_json(),
            "startsAt": STARTS_AT,
            "endsAt": ENDS_AT,
            "generatorURL": GENERATOR_URL,
        }])
    );
}

#[test]
fn postable_batch_keeps_each_alerts_own_state() {
    let firing =
        alert_with(pairs(&[("alertname", "A")]), Annotations::new()).with_generator_url(None);
    let resolved = resolved().alert;
    assert_eq!(
        postable(&[&firing, &resolved], NOW_FIRING),
        json!([
            {
                "labels": { "alertname": "A" },
                "annotations": {},
                "startsAt": STARTS_AT,
            },
            // Its end lies ahead, so it still fires: sent without the end (refreshes keep it).
            {
                "labels": labels_json(),
                "annotations": annotations_json(),
                "startsAt": STARTS_AT,
                "generatorURL": GENERATOR_URL,
            },
        ])
    );
    // Once the end has passed, the same alert goes out resolved, with its end.
    let body = postable(&[&resolved], NOW_AFTER_END);
    assert_eq!(body[0]["endsAt"], ENDS_AT);
}

#[test]
fn postable_auto_resolve_sends_now_as_the_end() {
    // Without an end, the upstream Alertmanager would keep the alert firing.
    let alert = firing().alert;
    let ctx = FormatContext::new(AlertStatus::Resolved, at("2026-01-02T06:00:00Z"));
    let body = parse(&alertmanager::postable_alerts_with_context(&[&alert], &ctx).unwrap());
    assert_eq!(
        body,
        json!([{
            "labels": labels_json(),
            "annotations": annotations_json(),
            "startsAt": STARTS_AT,
            "endsAt": "2026-01-02T06:00:00.000Z",
            "generatorURL": GENERATOR_URL,
        }])
    );
    // A firing context leaves an alert without an end as it is.
    let body =
        parse(&alertmanager::postable_alerts_with_context(&[&alert], &ctx_firing()).unwrap());
    assert!(body[0].get("endsAt").is_none());
}

fn db2() -> EnrichedAlert {
    EnrichedAlert::new(
        alert_with(
            pairs(&[
                ("alertname", "DiskFull"),
                ("instance", "db-2"),
                ("job", "node"),
                ("severity", "critical"),
            ]),
            pairs(&[
                ("description", "/var on db-2 is 97% full"),
                ("summary", "Disk almost full"),
            ]),
        )
        .with_generator_url(None),
    )
}

#[test]
fn envelope_with_a_firing_and_a_resolved_alert() {
    // db-2 fires (no end); db-1 resolved before `now`. Classification is not part of the shape.
    let resolved = classified(resolved());
    let firing = db2();
    let envelope = envelope_of(
        &[&resolved, &firing],
        at(NOW_AFTER_END),
        "alertpub",
        "{}:{alertname=\"DiskFull\"}",
        "http://alertpub.local:9097",
    );
    assert_eq!(
        envelope,
        json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"DiskFull\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "alertpub",
            "groupLabels": {},
            "commonLabels": { "alertname": "DiskFull", "job": "node", "severity": "critical" },
            "commonAnnotations": { "summary": "Disk almost full" },
            "externalURL": "http://alertpub.local:9097",
            "alerts": [
                {
                    "status": "resolved",
                    "labels": labels_json(),
                    "annotations": annotations_json(),
                    "startsAt": STARTS_AT,
                    "endsAt": ENDS_AT,
                    "generatorURL": GENERATOR_URL,
                    "fingerprint": FP,
                },
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "DiskFull",
                        "instance": "db-2",
                        "job": "node",
                        "severity": "critical",
                    },
                    "annotations": {
                        "description": "/var on db-2 is 97% full",
                        "summary": "Disk almost full",
                    },
                    "startsAt": STARTS_AT,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": FP_DB2,
                },
            ],
        })
    );
}

#[test]
fn envelope_of_one_firing_alert() {
    let alert = firing();
    let envelope = envelope_of(&[&alert], at("2026-01-02T03:34:05Z"), "r", "k", "http://am");
    assert_eq!(
        envelope,
        json!({
            "version": "4",
            "groupKey": "k",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "r",
            "groupLabels": {},
            "commonLabels": labels_json(),
            "commonAnnotations": annotations_json(),
            "externalURL": "http://am",
            "alerts": [{
                "status": "firing",
                "labels": labels_json(),
                "annotations": annotations_json(),
                "startsAt": STARTS_AT,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": GENERATOR_URL,
                "fingerprint": FP,
            }],
        })
    );
}

#[test]
fn envelope_is_resolved_when_every_alert_is() {
    let plain = resolved();
    let with_classification = classified(resolved());
    for alert in [&plain, &with_classification] {
        let envelope = envelope_of(&[alert], at(NOW_AFTER_END), "r", "k", "http://am");
        assert_eq!(
            envelope,
            json!({
                "version": "4",
                "groupKey": "k",
                "truncatedAlerts": 0,
                "status": "resolved",
                "receiver": "r",
                "groupLabels": {},
                "commonLabels": labels_json(),
                "commonAnnotations": annotations_json(),
                "externalURL": "http://am",
                "alerts": [{
                    "status": "resolved",
                    "labels": labels_json(),
                    "annotations": annotations_json(),
                    "startsAt": STARTS_AT,
                    "endsAt": ENDS_AT,
                    "generatorURL": GENERATOR_URL,
                    "fingerprint": FP,
                }],
            })
        );
    }
}

#[test]
fn envelope_of_no_alerts() {
    let envelope = envelope_of(&[], at(NOW_AFTER_END), "r", "k", "http://am");
    assert_eq!(envelope["status"], "resolved");
    assert_eq!(envelope["commonLabels"], json!({}));
    assert_eq!(envelope["commonAnnotations"], json!({}));
    assert_eq!(envelope["alerts"], json!([]));
}

#[test]
fn common_labels_need_equal_values_in_every_alert() {
    let a = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "A"), ("x", "1")]),
        Annotations::new(),
    ));
    let b = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "A"), ("x", "2")]),
        Annotations::new(),
    ));
    let c = EnrichedAlert::new(alert_with(pairs(&[("alertname", "A")]), Annotations::new()));
    let envelope = envelope_of(&[&a, &b], at(NOW_AFTER_END), "r", "k", "http://am");
    assert_eq!(envelope["commonLabels"], json!({ "alertname": "A" }));
    let envelope = envelope_of(&[&a, &c], at(NOW_AFTER_END), "r", "k", "http://am");
    assert_eq!(envelope["commonLabels"], json!({ "alertname": "A" }));
}

#[test]
fn postable_firing_is_sent_without_its_end_so_refreshes_keep_it_alive() {
    // Ingest gave this firing alert an effective end; upstream, the refreshes decide instead.
    let alert = resolved().alert;
    let body =
        parse(&alertmanager::postable_alerts_with_context(&[&alert], &ctx_firing()).unwrap());
    assert!(body[0].get("endsAt").is_none(), "{body}");
    assert_eq!(body[0]["startsAt"], STARTS_AT);
}

#[test]
fn one_alert_message_as_alertmanager_sends_it() {
    // Prometheus sends a firing alert with an end ahead of now; Alertmanager's webhook zeroes it.
    let ahead = alert_with(
        pairs(&[
            ("alertname", "DiskFull"),
            ("instance", "db-1"),
            ("job", "node"),
            ("severity", "critical"),
        ]),
        pairs(&[]),
    )
    .with_ends_at(Some(at(ENDS_AT)))
    .unwrap();
    let firing_alert = EnrichedAlert::new(ahead);
    let body = parse(
        &alertmanager::webhook_message(&firing_alert, &ctx_firing(), "oncall", "http://am:9093")
            .unwrap(),
    );
    assert_eq!(
        body,
        json!({
            "version": "4",
            "groupKey": format!("{{}}:{{fingerprint=\"{FP}\"}}"),
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "oncall",
            "groupLabels": {},
            "commonLabels": labels_json(),
            "commonAnnotations": {},
            "externalURL": "http://am:9093",
            "alerts": [{
                "status": "firing",
                "labels": labels_json(),
                "annotations": {},
                "startsAt": STARTS_AT,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": GENERATOR_URL,
                "fingerprint": FP,
            }],
        })
    );
    let resolve = parse(
        &alertmanager::webhook_message(&resolved(), &crate::common::ctx_resolved(), "oncall", "")
            .unwrap(),
    );
    assert_eq!(resolve["status"], "resolved");
    assert_eq!(resolve["alerts"][0]["endsAt"], ENDS_AT);
    // An auto-resolve (no end of its own) ends at the delivery's instant.
    let auto = parse(
        &alertmanager::webhook_message(&firing(), &crate::common::ctx_resolved(), "oncall", "")
            .unwrap(),
    );
    assert_eq!(auto["alerts"][0]["endsAt"], NOW_AFTER_END);
}

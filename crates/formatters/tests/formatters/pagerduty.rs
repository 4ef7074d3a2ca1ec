//! PagerDuty Events v2: exact events, severity, the dedup key and the two size limits.

use alert_core::{
    AlertStatus, Annotations, Classification, EnrichedAlert, ErrorKind, PermanentReason, Severity,
};
use formatters::pagerduty::{
    self, MAX_EVENT_BYTES, MAX_SUMMARY_CHARS, PagerDutySettings, PagerDutySeverity,
};
use formatters::{FormatContext, FormatError, Templates};
use serde_json::{Value, json};

use crate::common::{
    ENDS_AT, FP, GENERATOR_URL, STARTS_AT, alert_with, annotations, annotations_json, at,
    classification_json, classified, ctx_firing, ctx_resolved, enrichment_json, firing, labels,
    labels_json, pairs, parse, resolved,
};

const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000000";

fn event(alert: &EnrichedAlert, ctx: &FormatContext, settings: &PagerDutySettings) -> Value {
    parse(&pagerduty::event(alert, ctx, ROUTING_KEY, settings, &Templates::defaults()).unwrap())
}

fn full_settings() -> PagerDutySettings {
    PagerDutySettings {
        source: Some("storage-cluster".to_owned()),
        component: Some("disk".to_owned()),
        group: Some("db".to_owned()),
        class: Some("capacity".to_owned()),
        client: Some("alertpub".to_owned()),
        client_url: Some("https://alertpub.local".to_owned()),
        severity: None,
    }
}

#[test]
fn firing_without_classification() {
    assert_eq!(
        event(&firing(), &ctx_firing(), &PagerDutySettings::default()),
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": format!("alertpub-{FP}"),
            "payload": {
                "summary": "Disk almost full",
                "source": "db-1",
                "severity": "critical",
                "timestamp": STARTS_AT,
                "custom_details": {
                    "labels": labels_json(),
                    "annotations": annotations_json(),
                    "fingerprint": FP,
                    "starts_at": STARTS_AT,
                    "generator_url": GENERATOR_URL,
                },
            },
            "links": [{ "href": GENERATOR_URL, "text": "Source" }],
        })
    );
}

#[test]
fn firing_with_classification_and_every_setting() {
    assert_eq!(
        event(&classified(firing()), &ctx_firing(), &full_settings()),
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": format!("alertpub-{FP}"),
            "payload": {
                "summary": "Disk almost full",
                "source": "storage-cluster",
                "severity": "critical",
                "timestamp": STARTS_AT,
                "component": "disk",
                "group": "db",
                "class": "capacity",
                "custom_details": {
                    "labels": labels_json(),
                    "annotations": annotations_json(),
                    "fingerprint": FP,
                    "starts_at": STARTS_AT,
                    "generator_url": GENERATOR_URL,
                    "classification": classification_json(),
                    "enrichment": enrichment_json(),
                },
            },
            "links": [{ "href": GENERATOR_URL, "text": "Source" }],
            "client": "alertpub",
            "client_url": "https://alertpub.local",
        })
    );
}

#[test]
fn firing_with_a_future_end_reports_it() {
    let alert = EnrichedAlert::new(
        alert_with(labels(), annotations())
            .with_ends_at(Some(at(ENDS_AT)))
            .unwrap(),
    );
    let body = event(&alert, &ctx_firing(), &PagerDutySettings::default());
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["payload"]["custom_details"]["ends_at"], ENDS_AT);
}

#[test]
fn resolved_is_the_bare_resolve_event() {
    let expected = json!({
        "routing_key": ROUTING_KEY,
        "dedup_key": format!("alertpub-{FP}"),
        "event_action": "resolve",
    });
    assert_eq!(
        event(&resolved(), &ctx_resolved(), &PagerDutySettings::default()),
        expected
    );
    assert_eq!(
        event(&classified(resolved()), &ctx_resolved(), &full_settings()),
        expected
    );
}

#[test]
fn resolve_uses_the_trigger_dedup_key_from_the_fingerprint_alone() {
    // A resolve built later, from an alert that only shares the labels (as after a restart, with
    // no cache), carries the key of the trigger.
    let trigger = event(&firing(), &ctx_firing(), &PagerDutySettings::default());
    let later = EnrichedAlert::new(
        alert_with(labels(), Annotations::new())
            .with_starts_at(at("2026-01-01T00:00:00Z"))
            .unwrap()
            .with_ends_at(Some(at(ENDS_AT)))
            .unwrap(),
    );
    let resolve = event(&later, &ctx_resolved(), &PagerDutySettings::default());
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    assert_eq!(
        pagerduty::dedup_key(firing().alert.fingerprint()),
        format!("alertpub-{FP}")
    );
    let other = alert_with(pairs(&[("alertname", "DiskFull")]), Annotations::new());
    assert_ne!(
        pagerduty::dedup_key(other.fingerprint()),
        format!("alertpub-{FP}")
    );
}

#[test]
fn source_falls_back_from_instance_to_job_to_alertpub() {
    let settings = PagerDutySettings::default();
    let job_only = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "A"), ("job", "node")]),
        Annotations::new(),
    ));
    assert_eq!(
        event(&job_only, &ctx_firing(), &settings)["payload"]["source"],
        "node"
    );
    let bare = EnrichedAlert::new(alert_with(pairs(&[("alertname", "A")]), Annotations::new()));
    assert_eq!(
        event(&bare, &ctx_firing(), &settings)["payload"]["source"],
        "alertpub"
    );
}

#[test]
fn severity_label_maps_to_pagerduty_severities() {
    let cases = [
        ("critical", "critical"),
        ("Page", "critical"),
        ("error", "error"),
        ("major", "error"),
        ("HIGH", "error"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("minor", "warning"),
        ("medium", "warning"),
        ("info", "info"),
        ("informational", "info"),
        ("low", "info"),
        ("none", "info"),
        ("bogus", "error"),
    ];
    for (label, expected) in cases {
        let alert = EnrichedAlert::new(alert_with(
            pairs(&[("alertname", "A"), ("severity", label)]),
            Annotations::new(),
        ));
        assert_eq!(
            event(&alert, &ctx_firing(), &PagerDutySettings::default())["payload"]["severity"],
            expected,
            "severity label {label:?}"
        );
    }
}

#[test]
fn severity_comes_from_override_then_label_then_classification_then_error() {
    let unlabelled =
        || EnrichedAlert::new(alert_with(pairs(&[("alertname", "A")]), Annotations::new()));
    let classified_as = |severity| {
        unlabelled().with_classification(Classification::new(severity, 0.5, "").unwrap())
    };
    let default = PagerDutySettings::default();
    let severity = |alert: &EnrichedAlert, settings: &PagerDutySettings| {
        event(alert, &ctx_firing(), settings)["payload"]["severity"].clone()
    };

    assert_eq!(severity(&unlabelled(), &default), "error");
    assert_eq!(
        severity(&classified_as(Severity::Critical), &default),
        "critical"
    );
    assert_eq!(
        severity(&classified_as(Severity::Warning), &default),
        "warning"
    );
    assert_eq!(severity(&classified_as(Severity::Info), &default), "info");
    assert_eq!(severity(&classified_as(Severity::Noise), &default), "info");
    // The label wins over the classification.
    let labelled = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "A"), ("severity", "warning")]),
        Annotations::new(),
    ))
    .with_classification(Classification::new(Severity::Critical, 0.9, "").unwrap());
    assert_eq!(severity(&labelled, &default), "warning");
    // The override wins over both.
    let fixed = PagerDutySettings {
        severity: Some(PagerDutySeverity::Info),
        ..PagerDutySettings::default()
    };
    assert_eq!(severity(&labelled, &fixed), "info");
}

#[test]
fn settings_deserialise_strictly() {
    let settings: PagerDutySettings =
        serde_json::from_str(r#"{"source": "s", "severity": "warning"}"#).unwrap();
    assert_eq!(settings.severity, Some(PagerDutySeverity::Warning));
    assert_eq!(settings.source.as_deref(), Some("s"));
    assert!(serde_json::from_str::<PagerDutySettings>(r#"{"severity": "fatal"}"#).is_err());
    assert!(serde_json::from_str::<PagerDutySettings>(r#"{"routing": "x"}"#).is_err());
}

#[test]
fn summary_is_cut_at_1024_characters_not_bytes() {
    // 'é' is two bytes: a byte-based cut would stop at 512 characters, or split a character.
    let long = "é".repeat(2000);
    let alert = EnrichedAlert::new(alert_with(labels(), pairs(&[("summary", &long)])));
    let body = event(&alert, &ctx_firing(), &PagerDutySettings::default());
    let summary = body["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), MAX_SUMMARY_CHARS);
    assert_eq!(MAX_SUMMARY_CHARS, 1024);
    assert_eq!(summary, format!("{}…", "é".repeat(1023)));

    // Exactly at the limit is not cut.
    let exact = "😀".repeat(1024);
    let alert = EnrichedAlert::new(alert_with(labels(), pairs(&[("summary", &exact)])));
    let body = event(&alert, &ctx_firing(), &PagerDutySettings::default());
    assert_eq!(body["payload"]["summary"], exact.as_str());
}

#[test]
fn custom_details_are_kept_below_512_kb() {
    let blob = "x".repeat(400 * 1024);
    let alert = EnrichedAlert::new(alert_with(labels(), pairs(&[("blob", &blob)])));
    let bytes = pagerduty::event(
        &alert,
        &ctx_firing(),
        ROUTING_KEY,
        &PagerDutySettings::default(),
        &Templates::defaults(),
    )
    .unwrap();
    assert!(bytes.len() <= MAX_EVENT_BYTES);
    assert_eq!(
        parse(&bytes)["payload"]["custom_details"]["annotations"]["blob"],
        blob.as_str()
    );
}

#[test]
fn custom_details_are_dropped_above_512_kb() {
    assert_eq!(MAX_EVENT_BYTES, 524_288);
    let blob = "x".repeat(MAX_EVENT_BYTES);
    let alert = classified(EnrichedAlert::new(alert_with(
        labels(),
        pairs(&[("blob", &blob), ("summary", "Disk almost full")]),
    )));
    let bytes = pagerduty::event(
        &alert,
        &ctx_firing(),
        ROUTING_KEY,
        &PagerDutySettings::default(),
        &Templates::defaults(),
    )
    .unwrap();
    assert!(bytes.len() <= MAX_EVENT_BYTES, "{} bytes", bytes.len());
    assert_eq!(
        parse(&bytes),
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": format!("alertpub-{FP}"),
            "payload": {
                "summary": "Disk almost full",
                "source": "db-1",
                "severity": "critical",
                "timestamp": STARTS_AT,
            },
            "links": [{ "href": GENERATOR_URL, "text": "Source" }],
        })
    );
}

#[test]
fn too_large_without_custom_details_is_an_error() {
    // The generator URL is sent as a link too, so dropping the details cannot save this one.
    let url = format!("http://prometheus.local/?q={}", "x".repeat(MAX_EVENT_BYTES));
    let alert =
        EnrichedAlert::new(alert_with(labels(), annotations()).with_generator_url(Some(url)));
    let err = pagerduty::event(
        &alert,
        &ctx_firing(),
        ROUTING_KEY,
        &PagerDutySettings::default(),
        &Templates::defaults(),
    )
    .unwrap_err();
    match err {
        FormatError::TooLarge { limit, size } => {
            assert_eq!(limit, MAX_EVENT_BYTES);
            assert!(size > MAX_EVENT_BYTES, "{size}");
            // The reported size is the body without the details: about one URL's length.
            assert!(size < MAX_EVENT_BYTES + 1024, "{size}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        FormatError::TooLarge { limit: 1, size: 2 }.kind(),
        ErrorKind::Permanent {
            reason: PermanentReason::Payload
        }
    );
}

#[test]
fn a_resolve_of_an_alert_that_fires_by_its_own_end_is_still_a_resolve() {
    // The caller decides: the sweeper resolves an alert whose own `endsAt` is unset.
    let ctx = FormatContext::new(AlertStatus::Resolved, at("2026-01-02T06:00:00Z"));
    assert_eq!(
        event(&firing(), &ctx, &PagerDutySettings::default())["event_action"],
        "resolve"
    );
}

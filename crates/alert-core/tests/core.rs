//! alert-core's integration tests: the fingerprint against Prometheus's reference values, matchers,
//! serde shapes and error kinds.

use std::time::Duration;

use alert_core::{
    Alert, AlertError, AlertStatus, Classification, EnrichedAlert, ErrorKind, Fingerprint, Labels,
    MatchOp, Matcher, MatcherError, PermanentReason, PublishError, Severity, TargetName,
};
use chrono::{TimeZone, Utc};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Values from prometheus/common `model/signature_test.go` (`TestMetricToFingerprint` and the
/// `BenchmarkMetricToFingerprint*` expectations), which is the function Alertmanager uses. The
/// non-ASCII rows were computed with an independent implementation of the same algorithm, which
/// reproduces every upstream row first.
#[test]
fn fingerprint_matches_alertmanager() {
    let cases: &[(&[(&str, &str)], u64)] = &[
        (&[], 14_695_981_039_346_656_037),
        (
            &[("name", "garland, briggs"), ("fear", "love is not enough")],
            5_799_056_148_416_392_346,
        ),
        (
            &[("first-label", "first-label-value")],
            5_146_282_821_936_882_169,
        ),
        (
            &[
                ("first-label", "first-label-value"),
                ("second-label", "second-label-value"),
            ],
            3_195_800_080_984_914_717,
        ),
        (
            &[
                ("first-label", "first-label-value"),
                ("second-label", "second-label-value"),
                ("third-label", "third-label-value"),
            ],
            13_843_036_195_897_128_121,
        ),
        (
            &[
                ("alertname", "Überlast"),
                ("instance", "サーバー-1"),
                ("severity", "critical"),
            ],
            7_481_124_560_924_382_989,
        ),
        (
            &[("alertname", "DiskFull"), ("note", "😀 emoji ☃")],
            13_499_363_016_398_750_510,
        ),
    ];
    for (pairs, expected) in cases {
        let fingerprint = Fingerprint::of(&labels(pairs));
        assert_eq!(fingerprint.as_u64(), *expected, "labels {pairs:?}");
    }
}

#[test]
fn fingerprint_prints_as_16_hex_digits_and_round_trips() {
    let fp = Fingerprint::of(&labels(&[("alertname", "Test"), ("severity", "critical")]));
    assert_eq!(fp.to_string(), "efcaa50ee41c2d76");
    assert_eq!(
        Fingerprint::of(&Labels::new()).to_string(),
        "cbf29ce484222325"
    );
    assert_eq!(Fingerprint::parse_hex("efcaa50ee41c2d76"), Some(fp));
    assert_eq!(Fingerprint::parse_hex("xyz"), None);
    assert_eq!(serde_json::to_string(&fp).unwrap(), "\"efcaa50ee41c2d76\"");
}

#[test]
fn fingerprint_ignores_order_of_insertion_and_annotations() {
    let a = Alert::new(labels(&[("b", "2"), ("a", "1")])).unwrap();
    let b = Alert::new(labels(&[("a", "1"), ("b", "2")]))
        .unwrap()
        .with_annotations(labels(&[("summary", "differs")]));
    assert_eq!(a.fingerprint(), b.fingerprint());
    let c = Alert::new(labels(&[("a", "1"), ("b", "3")])).unwrap();
    assert_ne!(a.fingerprint(), c.fingerprint());
}

#[test]
fn alert_needs_labels_and_a_sane_end() {
    assert_eq!(Alert::new(Labels::new()).unwrap_err(), AlertError::NoLabels);
    assert_eq!(
        Alert::new(labels(&[("", "x")])).unwrap_err(),
        AlertError::EmptyLabelName
    );
    let start = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let err = Alert::build(
        labels(&[("a", "b")]),
        Labels::new(),
        start,
        Some(start - chrono::Duration::seconds(1)),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, AlertError::EndsBeforeStart { .. }), "{err}");
}

#[test]
fn status_derives_from_ends_at() {
    let start = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let end = start + chrono::Duration::minutes(5);
    let alert = Alert::build(labels(&[("a", "b")]), Labels::new(), start, Some(end), None).unwrap();
    assert_eq!(alert.status_at(start), AlertStatus::Firing);
    assert_eq!(alert.status_at(end), AlertStatus::Resolved);
    let open = alert.with_ends_at(None).unwrap();
    assert_eq!(
        open.status_at(end + chrono::Duration::days(365)),
        AlertStatus::Firing
    );
}

#[test]
fn alert_serde_uses_alertmanager_names_and_millisecond_utc() {
    let start = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let alert = Alert::build(
        labels(&[("alertname", "Test")]),
        labels(&[("summary", "hi")]),
        start,
        None,
        Some("http://prom/graph".to_owned()),
    )
    .unwrap();
    let json = serde_json::to_value(&alert).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "labels": {"alertname": "Test"},
            "annotations": {"summary": "hi"},
            "startsAt": "2026-01-02T03:04:05.000Z",
            "generatorURL": "http://prom/graph",
            "fingerprint": alert.fingerprint().to_string(),
        })
    );
    // Offsets and nanoseconds, as Alertmanager sends them, parse and normalise to UTC.
    let parsed: Alert = serde_json::from_value(serde_json::json!({
        "labels": {"alertname": "Test"},
        "startsAt": "2026-01-02T04:04:05.123456789+01:00",
        "endsAt": "2026-01-02T05:00:00Z",
    }))
    .unwrap();
    assert_eq!(
        parsed.starts_at(),
        start + chrono::Duration::nanoseconds(123_456_789)
    );
    let err = serde_json::from_value::<Alert>(
        serde_json::json!({"labels": {}, "startsAt": "2026-01-02T03:04:05Z"}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least one label"), "{err}");
}

#[test]
fn enriched_alert_and_classification_validate() {
    assert!(Classification::new(Severity::Critical, 1.5, "x").is_err());
    let classification = Classification::new(Severity::Warning, 0.75, "disk trend")
        .unwrap()
        .with_recommendations(vec!["expand volume".into()]);
    let enriched = EnrichedAlert::new(Alert::new(labels(&[("a", "b")])).unwrap())
        .with_classification(classification);
    let json = serde_json::to_value(&enriched).unwrap();
    assert_eq!(json["classification"]["severity"], "warning");
    assert_eq!(
        json["classification"]["recommendations"][0],
        "expand volume"
    );
    let bad = serde_json::json!({"alert": json["alert"], "classification": {"severity": "info", "confidence": -1.0, "reasoning": ""}});
    assert!(serde_json::from_value::<EnrichedAlert>(bad).is_err());
}

#[test]
fn matchers_parse_and_anchor() {
    let l = labels(&[
        ("severity", "critical"),
        ("team", "ops"),
        ("svc", "api-gateway"),
    ]);
    let cases = [
        ("severity=critical", true),
        ("severity=\"critical\"", true),
        ("severity = \"critical\"", true),
        ("severity!=critical", false),
        ("severity=~\"critical|warning\"", true),
        ("severity=~crit", false),
        ("severity=~\"crit.*\"", true),
        ("severity!~\"crit.*\"", false),
        ("svc=~\"api\"", false),
        ("svc=~\".*gateway\"", true),
        ("missing=\"\"", true),
        ("missing!=\"x\"", true),
        ("missing=~\".+\"", false),
        ("team=\"o\\\"ps\"", false),
    ];
    for (text, expected) in cases {
        let matcher: Matcher = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(matcher.matches(&l), expected, "{text}");
    }
    let parsed: Matcher = "team=\"o\\\"ps\"".parse().unwrap();
    assert_eq!(parsed.value(), "o\"ps");
    assert_eq!(parsed.op(), MatchOp::Equal);
}

#[test]
fn matcher_errors_are_typed() {
    assert!(matches!(
        "severity".parse::<Matcher>(),
        Err(MatcherError::MissingOperator(_))
    ));
    assert!(matches!(
        "9bad=x".parse::<Matcher>(),
        Err(MatcherError::InvalidName(_))
    ));
    assert!(matches!(
        "=x".parse::<Matcher>(),
        Err(MatcherError::InvalidName(_))
    ));
    assert!(matches!(
        "a=\"open".parse::<Matcher>(),
        Err(MatcherError::BadQuoting(_))
    ));
    assert!(matches!(
        "a=~\"(\"".parse::<Matcher>(),
        Err(MatcherError::InvalidRegex { .. })
    ));
    let json: Matcher = serde_json::from_str("\"severity=~\\\"a|b\\\"\"").unwrap();
    assert_eq!(
        serde_json::to_string(&json).unwrap(),
        "\"severity=~\\\"a|b\\\"\""
    );
}

#[test]
fn error_kinds_serialise_readably() {
    let cases = [
        (
            ErrorKind::Transient,
            serde_json::json!({"kind": "transient"}),
        ),
        (
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_millis(2500)),
            },
            serde_json::json!({"kind": "rate_limited", "retry_after_ms": 2500}),
        ),
        (
            ErrorKind::Permanent {
                reason: PermanentReason::Auth,
            },
            serde_json::json!({"kind": "permanent", "reason": "auth"}),
        ),
        (ErrorKind::Timeout, serde_json::json!({"kind": "timeout"})),
        (
            ErrorKind::Cancelled,
            serde_json::json!({"kind": "cancelled"}),
        ),
    ];
    for (kind, expected) in cases {
        assert_eq!(serde_json::to_value(kind).unwrap(), expected);
        assert_eq!(serde_json::from_value::<ErrorKind>(expected).unwrap(), kind);
    }
    let err = PublishError::new(
        ErrorKind::Permanent {
            reason: PermanentReason::NotFound,
        },
        "no such path",
    )
    .with_status(404);
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        serde_json::json!({"kind": "permanent", "reason": "not_found", "status_code": 404, "message": "no such path"})
    );
    assert_eq!(err.to_string(), "permanent (not_found): no such path");
    assert!(!err.kind.is_retryable());
    assert!(ErrorKind::Timeout.is_retryable());
    assert!(!ErrorKind::RateLimited { retry_after: None }.counts_against_target());
    assert!(ErrorKind::Transient.counts_against_target());
}

#[test]
fn target_names_are_dns_labels() {
    for good in ["a", "ops-webhook", "pagerduty-1", &"x".repeat(63)] {
        assert!(TargetName::new(good).is_ok(), "{good}");
    }
    for bad in ["", "Ops", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
        assert!(TargetName::new(bad).is_err(), "{bad}");
    }
}

//! The rendered exposition: every SPEC §8 family, the expected values, and the text format.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alert_core::{
    CallOutcome, CircuitState, ErrorKind, HealthStatus, ParallelOutcome, PublishError,
    PublishObserver, Receipt, SkipReason, StoreCondition, StoreHealth, Target, TargetKind,
    TargetName,
};
use metrics::Metrics;

/// One sample: metric name and its labels, sorted.
type Key = (String, BTreeMap<String, String>);

/// What a parsed exposition holds.
#[derive(Debug, Default)]
struct Exposition {
    help: BTreeSet<String>,
    types: BTreeMap<String, String>,
    samples: BTreeMap<Key, f64>,
}

/// Parses `{a="x",b="y"}` (no escapes needed for our labels, but `\"` is handled).
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("no '=' in labels {s:?}"))?;
        let name = &rest[..eq];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {name:?} in {s:?}"));
        }
        let after = &rest[eq + 1..];
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| format!("unquoted label value in {s:?}"))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, e) = chars.next().ok_or("dangling escape")?;
                    value.push(e);
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in {s:?}"))?;
        out.insert(name.to_owned(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(out)
}

/// A small check of the Prometheus text format: comments are `# HELP name text` or
/// `# TYPE name type`, every other non-empty line is `name{labels} value` with a numeric value,
/// and every sample belongs to a family that has both HELP and TYPE.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let name = parts.next().ok_or_else(|| format!("no name: {line:?}"))?;
            let rest = parts.next().ok_or_else(|| format!("no text: {line:?}"))?;
            match keyword {
                "HELP" => {
                    if rest.trim().is_empty() {
                        return Err(format!("empty HELP: {line:?}"));
                    }
                    exp.help.insert(name.to_owned());
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                        return Err(format!("bad TYPE: {line:?}"));
                    }
                    exp.types.insert(name.to_owned(), rest.to_owned());
                }
                _ => return Err(format!("unknown comment: {line:?}")),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line:?}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .map_err(|_| format!("non-numeric value: {line:?}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels: {line:?}"))?;
                (name, parse_labels(labels)?)
            }
            None => (series, BTreeMap::new()),
        };
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("bad metric name: {line:?}"));
        }
        let family = exp
            .types
            .keys()
            .filter(|f| {
                name == f.as_str()
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f.as_str()))
            })
            .max_by_key(|f| f.len())
            .cloned()
            .ok_or_else(|| format!("sample without TYPE: {line:?}"))?;
        if !exp.help.contains(&family) {
            return Err(format!("family {family} without HELP"));
        }
        if exp
            .samples
            .insert((name.to_owned(), labels), value)
            .is_some()
        {
            return Err(format!("duplicate series: {line:?}"));
        }
    }
    Ok(exp)
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut map: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert("otel_scope_name".to_owned(), "alertpub".to_owned());
    (name.to_owned(), map)
}

fn value(exp: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    let k = key(name, labels);
    match exp.samples.get(&k) {
        Some(v) => *v,
        None => panic!(
            "missing sample {k:?}; have: {:#?}",
            exp.samples
                .keys()
                .filter(|(n, _)| n == name)
                .collect::<Vec<_>>()
        ),
    }
}

fn target(name: &str, kind: TargetKind) -> Target {
    Target::new(TargetName::new(name).expect("valid name"), kind)
}

fn exercised() -> (Metrics, String, String) {
    let metrics = Metrics::new().expect("metrics");
    let slack = target("slack-main", TargetKind::Slack);
    let hook = target("hook-a", TargetKind::Webhook);
    let pd = target("pd-1", TargetKind::Pagerduty);

    metrics.on_call_started(&slack);
    metrics.on_call_started(&hook);
    metrics.on_call_started(&hook);
    metrics.on_call_finished(
        &slack,
        &CallOutcome::new(Ok(Receipt::with_status(200)), Duration::from_millis(30)),
    );
    metrics.on_call_finished(
        &hook,
        &CallOutcome::new(
            Err(PublishError::new(ErrorKind::Transient, "502 from target").with_status(502)),
            Duration::from_millis(700),
        ),
    );
    metrics.on_skipped(&pd, SkipReason::CircuitOpen);
    metrics.on_parallel_publish(ParallelOutcome::Partial, Duration::from_millis(720));

    metrics.set_target_health("hook-a", HealthStatus::Unhealthy);
    metrics.set_target_health("slack-main", HealthStatus::Healthy);
    metrics.set_circuit_state("pd-1", CircuitState::Open);
    metrics.set_circuit_state("slack-main", CircuitState::HalfOpen);
    metrics.set_queue_depth("high", 4);
    metrics.set_queue_depth("low", 9);
    metrics.set_queue_depth("high", 2);
    metrics.add_queue_retries(2);
    metrics.add_queue_retries(3);
    metrics.set_dlq_size(7);
    metrics.add_ingested("alertmanager", 5);
    metrics.add_ingested("alertmanager", 1);
    metrics.add_ingested("api", 2);
    metrics.record_http_request("POST", "/api/v2/alerts", 202, Duration::from_millis(3));
    metrics.record_http_request("POST", "/api/v2/alerts", 202, Duration::from_millis(4));
    metrics.record_http_request("GET", "/metrics", 200, Duration::from_millis(1));

    let (content_type, body) = metrics.render();
    let text = String::from_utf8(body).expect("utf-8 exposition");
    (metrics, content_type, text)
}

const FAMILIES: &[(&str, &str)] = &[
    ("alertpub_parallel_publish_duration_seconds", "histogram"),
    ("alertpub_parallel_publish_total", "counter"),
    ("alertpub_target_publish_total", "counter"),
    ("alertpub_target_publish_failures_total", "counter"),
    ("alertpub_target_publish_skipped_total", "counter"),
    ("alertpub_target_publish_duration_seconds", "histogram"),
    ("alertpub_publish_in_flight", "gauge"),
    ("alertpub_target_health_status", "gauge"),
    ("alertpub_circuit_breaker_state", "gauge"),
    ("alertpub_queue_depth", "gauge"),
    ("alertpub_queue_retries_total", "counter"),
    ("alertpub_dlq_size", "gauge"),
    ("alertpub_ingest_alerts_total", "counter"),
    ("alertpub_http_requests_total", "counter"),
    ("alertpub_http_request_duration_seconds", "histogram"),
];

#[test]
fn every_spec_family_is_rendered_with_its_exact_name_and_type() {
    let (_, content_type, text) = exercised();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(content_type.contains("version=0.0.4"), "{content_type}");
    for (name, kind) in FAMILIES {
        let type_line = format!("# TYPE {name} {kind}\n");
        assert!(
            text.contains(&type_line),
            "missing {type_line:?} in:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "missing HELP for {name}"
        );
    }
    let exp = parse(&text).expect("valid exposition");
    let rendered: BTreeSet<&str> = exp.types.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = FAMILIES.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        rendered, expected,
        "exactly the spec families, no doubled suffixes"
    );
    assert!(!text.contains("_total_total") && !text.contains("_seconds_seconds"));
}

#[test]
fn observer_counters_have_the_expected_values() {
    let (_, _, text) = exercised();
    let exp = parse(&text).expect("valid exposition");

    let ok = [
        ("target", "slack-main"),
        ("kind", "slack"),
        ("outcome", "success"),
    ];
    let failed = [
        ("target", "hook-a"),
        ("kind", "webhook"),
        ("outcome", "failed"),
    ];
    assert_eq!(value(&exp, "alertpub_target_publish_total", &ok), 1.0);
    assert_eq!(value(&exp, "alertpub_target_publish_total", &failed), 1.0);
    assert_eq!(
        value(
            &exp,
            "alertpub_target_publish_failures_total",
            &[("target", "hook-a"), ("reason", "transient")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &exp,
            "alertpub_target_publish_skipped_total",
            &[("target", "pd-1"), ("reason", "circuit_open")]
        ),
        1.0
    );
    // Three started, two finished.
    assert_eq!(value(&exp, "alertpub_publish_in_flight", &[]), 1.0);
    assert_eq!(
        value(
            &exp,
            "alertpub_parallel_publish_total",
            &[("result", "partial")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &exp,
            "alertpub_parallel_publish_duration_seconds_count",
            &[("result", "partial")]
        ),
        1.0
    );
    let sum = value(
        &exp,
        "alertpub_parallel_publish_duration_seconds_sum",
        &[("result", "partial")],
    );
    assert!((sum - 0.72).abs() < 1e-9, "{sum}");
}

#[test]
fn target_duration_histogram_has_buckets_up_to_60_seconds() {
    let (_, _, text) = exercised();
    let exp = parse(&text).expect("valid exposition");
    let hook = [("target", "hook-a"), ("kind", "webhook")];
    let bucket = |le: &str| {
        let mut labels = hook.to_vec();
        labels.push(("le", le));
        value(
            &exp,
            "alertpub_target_publish_duration_seconds_bucket",
            &labels,
        )
    };
    assert_eq!(bucket("0.5"), 0.0, "700 ms is above 0.5 s");
    assert_eq!(bucket("1"), 1.0);
    assert_eq!(bucket("60"), 1.0);
    assert_eq!(bucket("+Inf"), 1.0);
    assert_eq!(
        value(
            &exp,
            "alertpub_target_publish_duration_seconds_count",
            &hook
        ),
        1.0
    );
    assert!(text.contains("alertpub_target_publish_duration_seconds_bucket{"));
    assert!(text.contains("le=\"60\""));
}

#[test]
fn plain_methods_set_their_metrics() {
    let (_, _, text) = exercised();
    let exp = parse(&text).expect("valid exposition");
    let v = |name: &str, labels: &[(&str, &str)]| value(&exp, name, labels);

    assert_eq!(
        v("alertpub_target_health_status", &[("target", "hook-a")]),
        3.0
    );
    assert_eq!(
        v("alertpub_target_health_status", &[("target", "slack-main")]),
        1.0
    );
    assert_eq!(
        v("alertpub_circuit_breaker_state", &[("target", "pd-1")]),
        2.0
    );
    assert_eq!(
        v(
            "alertpub_circuit_breaker_state",
            &[("target", "slack-main")]
        ),
        1.0
    );
    assert_eq!(v("alertpub_queue_depth", &[("priority", "high")]), 2.0);
    assert_eq!(v("alertpub_queue_depth", &[("priority", "low")]), 9.0);
    assert_eq!(v("alertpub_queue_retries_total", &[]), 5.0);
    assert_eq!(v("alertpub_dlq_size", &[]), 7.0);
    assert_eq!(
        v(
            "alertpub_ingest_alerts_total",
            &[("source", "alertmanager")]
        ),
        6.0
    );
    assert_eq!(v("alertpub_ingest_alerts_total", &[("source", "api")]), 2.0);
    let post = [
        ("method", "POST"),
        ("route", "/api/v2/alerts"),
        ("status", "202"),
    ];
    assert_eq!(v("alertpub_http_requests_total", &post), 2.0);
    let get = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert_eq!(v("alertpub_http_requests_total", &get), 1.0);
    assert_eq!(
        v(
            "alertpub_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/api/v2/alerts")]
        ),
        2.0
    );
}

#[test]
fn help_texts_explain_gauge_values() {
    let (_, _, text) = exercised();
    let help = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("# HELP {name} ")))
            .unwrap_or_else(|| panic!("no HELP for {name}"))
            .to_owned()
    };
    let circuit = help("alertpub_circuit_breaker_state");
    for part in ["0 = closed", "1 = half_open", "2 = open"] {
        assert!(circuit.contains(part), "{circuit}");
    }
    let health = help("alertpub_target_health_status");
    for part in [
        "0 = unknown",
        "1 = healthy",
        "2 = degraded",
        "3 = unhealthy",
    ] {
        assert!(health.contains(part), "{health}");
    }
}

#[test]
fn clones_share_the_registry() {
    let (metrics, _, _) = exercised();
    let clone = metrics.clone();
    clone.add_queue_retries(10);
    let (_, body) = metrics.render();
    let exp = parse(&String::from_utf8(body).expect("utf-8")).expect("valid exposition");
    assert_eq!(value(&exp, "alertpub_queue_retries_total", &[]), 15.0);
}

#[test]
fn the_format_check_rejects_bad_text() {
    assert!(parse("foo 1\n").is_err(), "sample without TYPE/HELP");
    assert!(parse("# HELP foo x\n# TYPE foo counter\nfoo abc\n").is_err());
    assert!(parse("# HELP foo x\n# TYPE foo counter\nfoo{a=\"1\" 1\n").is_err());
    assert!(parse("# TYPE foo counter\nfoo 1\n").is_err(), "no HELP");
    assert!(parse("# HELP foo x\n# TYPE foo counter\nfoo{a=\"1\"} 1\n").is_ok());
}

#[test]
fn separate_instances_do_not_share_state() {
    let a = Metrics::new().expect("a");
    let b = Metrics::new().expect("b");
    a.add_queue_retries(1);
    let (_, body) = b.render();
    let exp = parse(&String::from_utf8(body).expect("utf-8")).expect("valid exposition");
    assert!(
        !exp.samples
            .keys()
            .any(|(n, _)| n == "alertpub_queue_retries_total"),
        "b saw a's counter"
    );
}

#[test]
fn store_health_sets_its_condition_and_counts_only_what_is_new() {
    let metrics = Metrics::new().expect("metrics");
    let failing = StoreCondition::Failing {
        consecutive_failures: 3,
        last_error: "no space left on device".to_owned(),
    };
    metrics.record_store_health(&StoreHealth::new(StoreCondition::Healthy).with_counters(2, 5));
    // The store's totals are read again at every scrape: only the growth counts.
    metrics.record_store_health(&StoreHealth::new(StoreCondition::Healthy).with_counters(2, 5));
    metrics.record_store_health(&StoreHealth::new(failing).with_counters(3, 9));
    let text = String::from_utf8(metrics.render().1).expect("utf-8 exposition");
    let exp = parse(&text).expect("valid exposition");
    assert_eq!(
        exp.types["alertpub_queue_quarantined_records_total"],
        "counter"
    );
    assert_eq!(exp.types["alertpub_dlq_evicted_total"], "counter");
    assert_eq!(
        value(&exp, "alertpub_queue_quarantined_records_total", &[]),
        3.0
    );
    assert_eq!(value(&exp, "alertpub_dlq_evicted_total", &[]), 9.0);
    assert_eq!(value(&exp, "alertpub_queue_store_condition", &[]), 1.0);
}

#[test]
fn invalid_secrets_follow_the_discoverys_count_without_counting_twice() {
    let metrics = Metrics::new().unwrap();
    metrics.init_counters();
    let read = |metrics: &Metrics| {
        let (_, body) = metrics.render();
        let exp = parse(&String::from_utf8(body).unwrap()).unwrap();
        value(&exp, "alertpub_discovery_invalid_secrets_total", &[])
    };
    assert_eq!(read(&metrics), 0.0);
    metrics.record_invalid_secrets(2);
    metrics.record_invalid_secrets(2);
    assert_eq!(
        read(&metrics),
        2.0,
        "the same count read again adds nothing"
    );
    metrics.record_invalid_secrets(5);
    assert_eq!(read(&metrics), 5.0);
}

#[test]
fn a_fleet_of_targets_keeps_a_series_of_its_own_for_every_target() {
    // 1 000 targets × 5 failure reasons is 5 000 series of one family: more than the 2 000 an
    // OpenTelemetry instrument keeps before it folds the rest into one overflow series.
    let metrics = Metrics::new().expect("metrics");
    let names: Vec<String> = (0..1_000).map(|i| format!("t{i:04}")).collect();
    for name in &names {
        metrics.init_target(&target(name, TargetKind::Webhook));
        metrics.record_health_check(name, "reachable", Some(Duration::from_millis(2)));
    }
    let last = target(&names[999], TargetKind::Webhook);
    let failed = CallOutcome::new(
        Err(PublishError::new(ErrorKind::Timeout, "slow")),
        Duration::from_secs(2),
    );
    metrics.on_call_finished(&last, &failed);
    metrics.on_skipped(&last, SkipReason::CircuitOpen);
    let (_, body) = metrics.render();
    let text = String::from_utf8(body).expect("utf-8 exposition");
    assert!(!text.contains("otel_metric_overflow"));
    let exp = parse(&text).expect("valid exposition");
    let per_family = |family: &str| {
        exp.samples
            .keys()
            .filter(|(name, _)| name == family)
            .count()
    };
    assert_eq!(per_family("alertpub_target_publish_failures_total"), 5_000);
    assert_eq!(per_family("alertpub_target_publish_skipped_total"), 5_000);
    assert_eq!(per_family("alertpub_target_publish_total"), 2_000);
    assert_eq!(per_family("alertpub_health_checks_total"), 3_000);
    assert_eq!(
        per_family("alertpub_health_check_duration_seconds_count"),
        1_000
    );
    let t = ("target", names[999].as_str());
    assert_eq!(
        value(
            &exp,
            "alertpub_target_publish_failures_total",
            &[t, ("reason", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &exp,
            "alertpub_target_publish_skipped_total",
            &[t, ("reason", "circuit_open")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &exp,
            "alertpub_health_checks_total",
            &[("target", names[0].as_str()), ("result", "reachable")]
        ),
        1.0
    );
}

#[test]
fn a_removed_targets_series_leave_the_output() {
    let metrics = Metrics::new().expect("metrics");
    for name in ["kept", "removed"] {
        let t = target(name, TargetKind::Webhook);
        metrics.init_target(&t);
        metrics.set_circuit_state(name, CircuitState::Closed);
        metrics.on_job_delivered(&t, Duration::from_millis(5));
    }
    metrics.retain_targets(|name| name == "kept");
    let (_, body) = metrics.render();
    let text = String::from_utf8(body).expect("utf-8 exposition");
    assert!(!text.contains("target=\"removed\""), "{text}");
    let exp = parse(&text).expect("valid exposition");
    assert_eq!(
        value(
            &exp,
            "alertpub_delivery_latency_seconds_count",
            &[("target", "kept")]
        ),
        1.0
    );
}

//! `/metrics` after a publish: Prometheus text with the SPEC §8 families, clean under
//! `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use alertpub_e2e::Http;
use serde_json::json;

use crate::wait_for_posts;

const FAMILIES: [&str; 15] = [
    "alertpub_parallel_publish_duration_seconds",
    "alertpub_parallel_publish_total",
    "alertpub_target_publish_total",
    "alertpub_target_publish_failures_total",
    "alertpub_target_publish_skipped_total",
    "alertpub_target_publish_duration_seconds",
    "alertpub_publish_in_flight",
    "alertpub_target_health_status",
    "alertpub_circuit_breaker_state",
    "alertpub_queue_depth",
    "alertpub_queue_retries_total",
    "alertpub_dlq_size",
    "alertpub_ingest_alerts_total",
    "alertpub_http_requests_total",
    "alertpub_http_request_duration_seconds",
];

/// Checks the text exposition format line by line: `# HELP`/`# TYPE` comments, and samples of the
/// form `name{labels} value` whose family was declared by a `# TYPE` line.
fn parse_exposition(text: &str) -> Vec<String> {
    let mut families = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_owned();
            let kind = parts.next().unwrap_or_default();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE line: {line}"
            );
            families.push(name);
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value in {line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        assert!(
            families.iter().any(|f| name == f
                || name
                    .strip_prefix(f.as_str())
                    .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))),
            "sample {name} has no TYPE line"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels in {line}"
            );
        }
    }
    families
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_pass_promtool_after_a_publish() {
    let (target, server) = crate::one_webhook().await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v1/publish/parallel"),
            &json!({"alert": {"labels": {"alertname": "Metrics"}}, "targets": ["hook"]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Queued"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    wait_for_posts(&target, 2).await;

    let metrics = http.get(&server.url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    let content_type = metrics.headers["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let families = parse_exposition(&metrics.text);
    for family in FAMILIES {
        let declared = families
            .iter()
            .any(|f| f == family || f.strip_suffix("_total") == Some(family));
        assert!(
            declared,
            "{family} is missing from /metrics:\n{}",
            metrics.text
        );
    }
    assert!(
        metrics.text.contains(r#"alertpub_target_publish_total{"#)
            && metrics.text.contains(r#"target="hook""#),
        "{}",
        metrics.text
    );

    // promtool, from Debian's prometheus package (.ci/run installs it), must report nothing.
    let Some([promtool]) = crate::interop::programs(
        "metrics::metrics_parse_and_pass_promtool_after_a_publish",
        [crate::interop::Program::Promtool],
    ) else {
        return;
    };
    let mut promtool = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool failed: {report}");
    assert!(report.trim().is_empty(), "promtool reported: {report}");
}

//! The small languages of the config file: label matchers, durations and the minijinja text
//! templates, the last rendered into every target's payload.
//!
//! The input is split at NUL bytes: the first part is read as a matcher and as a duration and
//! is the title template; the second and third are the summary and description templates (empty
//! means the default); a fourth, when it is an alert that ingest accepts, is the alert rendered.

#![no_main]

use std::time::{Duration, SystemTime};

use alert_core::wire::{duration_ms, parse_duration};
use alert_core::{AlertStatus, EnrichedAlert, Labels, MatchOp, Matcher};
use alertpub_fuzz::{normalise_and_check, now};
use alertpub_server::ingest::OpenEnd;
use formatters::{FormatContext, TemplateConfig, Templates};
use libfuzzer_sys::fuzz_target;

fn check_matcher(text: &str) {
    let Ok(matcher) = text.parse::<Matcher>() else {
        return;
    };
    // A matcher is shown (the targets API, Debug) and serialised as its Display form, which
    // must parse back to the same matcher.
    let shown = matcher.to_string();
    match shown.parse::<Matcher>() {
        Ok(again) => assert_eq!(again, matcher, "{text:?} is shown as {shown:?}"),
        Err(err) => panic!("{text:?} is shown as {shown:?}, which does not parse: {err}"),
    }
    let mut labels = Labels::new();
    labels.insert(matcher.name().to_owned(), matcher.value().to_owned());
    match matcher.op() {
        MatchOp::Equal => assert!(matcher.matches(&labels)),
        MatchOp::NotEqual => assert!(!matcher.matches(&labels)),
        // Any other label value: the regex decides, and must not panic.
        _ => {
            let _ = matcher.matches(&labels);
        }
    }
}

fn check_duration(text: &str) {
    if let Ok(duration) = parse_duration(text) {
        // The config shows a duration in milliseconds; a shown duration reads back the same
        // whenever its milliseconds fit the wire's u64.
        let ms = duration_ms(duration);
        if u128::from(ms) == duration.as_millis() {
            assert_eq!(parse_duration(&format!("{ms}ms")), Ok(duration), "{text:?}");
        }
    }
    let _ = serde_json::from_value::<discovery::Dur>(serde_json::Value::String(text.to_owned()));
    let _ = publisher_http::parse_retry_after(
        text,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    );
}

fn small_alert() -> EnrichedAlert {
    let raw = serde_json::json!({
        "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
        "annotations": {"summary": "The disk is full", "description": "Only 1% left on /var"},
        "startsAt": "2026-11-23T11:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "classification": {"severity": "critical", "confidence": 0.9, "reasoning": "disk"},
    });
    normalise_and_check(&raw, OpenEnd::Keep)
        .expect("the small alert is valid")
        .alert
}

fn check_templates(parts: &[&str]) {
    let template = |i: usize| {
        parts
            .get(i)
            .filter(|t| !t.is_empty())
            .map(|t| (*t).to_owned())
    };
    let config = TemplateConfig {
        title: template(0),
        summary: template(1),
        description: template(2),
    };
    let Ok(templates) = Templates::new(&config) else {
        return;
    };
    let alert = parts
        .get(3)
        .and_then(|raw| serde_json::from_str(raw).ok())
        .and_then(|raw| normalise_and_check(&raw, OpenEnd::Keep))
        .map_or_else(small_alert, |normalised| normalised.alert);
    for status in [AlertStatus::Firing, AlertStatus::Resolved] {
        let ctx = FormatContext::new(status, now());
        // A template may fail at render time (a bad filter call, fuel); when it renders, the
        // title and summary are never empty, as the targets rely on.
        if let Ok(title) = templates.title(&alert, &ctx) {
            assert!(!title.is_empty(), "an empty title");
        }
        if let Ok(summary) = templates.summary(&alert, &ctx) {
            assert!(!summary.is_empty(), "an empty summary");
        }
        let _ = templates.description(&alert, &ctx);
        let _ = formatters::slack::message(&alert, &ctx, &Default::default(), &templates);
        let _ =
            formatters::pagerduty::event(&alert, &ctx, "routing", &Default::default(), &templates);
        let _ = formatters::rootly::alert_body(&alert, &ctx, &Default::default(), &templates);
        let _ = formatters::webhook::body(&alert, &ctx);
        let _ = formatters::alertmanager::postable_alerts(&[(&alert.alert, ctx)]);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = text.splitn(4, '\0').collect();
    check_matcher(parts[0]);
    check_duration(parts[0]);
    check_templates(&parts);
});

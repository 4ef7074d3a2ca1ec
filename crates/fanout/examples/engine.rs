//! The fan-out engine on its own, in process: one alert published in parallel to four fake
//! targets — fast, slow, failing and disabled — with a per-target result table.
//!
//! Run it with `cargo run -p fanout --example engine`. `cargo xtask demo` shows the whole server
//! with real mock targets on loopback.

#![allow(clippy::print_stdout)] // a demo prints its results

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    DisabledReason, ErrorKind, Publisher, StaticTargetSource, TargetEntry, TargetKind, TargetSet,
};
use fanout::{FanoutEngine, FanoutError, ParallelPublishResult, PublishOptions};
use test_support::{FakePublisher, FakeStats, alert, entry};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let stats = FakeStats::new();
    let mut disabled = of_kind(
        "rootly-prod",
        TargetKind::Rootly,
        FakePublisher::accept(stats.clone()).shared(),
    );
    disabled.target.disabled = Some(DisabledReason::SecretUnavailable);
    let targets = TargetSet::new(vec![
        of_kind(
            "ops-webhook",
            TargetKind::Webhook,
            FakePublisher::accept(stats.clone())
                .with_latency(Duration::from_millis(20))
                .shared(),
        ),
        of_kind(
            "slack-alerts",
            TargetKind::Slack,
            FakePublisher::accept(stats.clone())
                .with_latency(Duration::from_millis(400))
                .shared(),
        ),
        of_kind(
            "pagerduty-oncall",
            TargetKind::Pagerduty,
            FakePublisher::fail(stats.clone(), ErrorKind::Transient, 503).shared(),
        ),
        disabled,
    ])
    .expect("unique names");
    let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(targets))).build();
    let alert = alert(&[
        ("alertname", "DiskFull"),
        ("instance", "db-1"),
        ("severity", "critical"),
    ]);
    println!(
        "publishing alert DiskFull ({}) to every target at once",
        alert.alert.fingerprint()
    );

    let options = PublishOptions::default().with_per_target_timeout(Duration::from_secs(2));
    match engine.publish_to_all(&alert, &options).await {
        Ok(result) => print_table(&result),
        Err(FanoutError::AllFailed(result)) => print_table(&result),
        Err(err) => println!("publish failed: {err}"),
    }
    println!("peak targets in flight at once: {}", stats.peak_in_flight());
}

fn of_kind(name: &str, kind: TargetKind, publisher: Arc<dyn Publisher>) -> TargetEntry {
    let mut entry = entry(name, publisher);
    entry.target.kind = kind;
    entry
}

fn print_table(result: &ParallelPublishResult) {
    println!();
    println!(
        "{:<18} {:<12} {:<8} {:>6} {:>8}  detail",
        "target", "kind", "outcome", "status", "ms"
    );
    for r in &result.results {
        let outcome = serde_json::to_value(r.outcome).expect("serialisable");
        let detail = match (&r.error, r.skip_reason) {
            (Some(err), _) => err.to_string(),
            (None, Some(reason)) => format!("skipped: {reason}"),
            (None, None) => String::new(),
        };
        println!(
            "{:<18} {:<12} {:<8} {:>6} {:>8}  {detail}",
            r.target_name.as_str(),
            r.target_kind.as_str(),
            outcome.as_str().unwrap_or("?"),
            r.status_code
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            r.duration.as_millis(),
        );
    }
    println!();
    println!(
        "{} targets: {} succeeded, {} failed, {} skipped in {} ms (partial: {}); \
         the slowest target set the pace, not the sum",
        result.total_targets,
        result.success_count,
        result.failure_count,
        result.skipped_count,
        result.duration.as_millis(),
        result.is_partial_success,
    );
}

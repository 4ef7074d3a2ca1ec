//! The timeline suite: hand-written timelines of an hour or more, and generated ones, run against
//! the real dispatcher, queue and publishers on paused time and checked against the model.

// The suite prints what it ran and found, for the record.
#![allow(clippy::print_stdout)]

mod generated;
mod named;

use timeline::{Received, Timeline, check, harness, report};

/// Runs `timeline` on a fresh runtime with paused time and checks it; panics with the broken
/// invariants and the timeline as Rust.
fn run_and_check(timeline: &Timeline) -> Vec<Received> {
    let received = run(timeline);
    let violations = check(timeline, &received);
    assert!(
        violations.is_empty(),
        "{}\n\nreceived: {received:#?}",
        report(timeline, &violations)
    );
    received
}

fn run(timeline: &Timeline) -> Vec<Received> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
        .block_on(harness::run(timeline))
}

/// The statuses `target` received for `alert`, in order.
fn statuses(received: &[Received], target: u8, alert: u8) -> Vec<&str> {
    received
        .iter()
        .filter(|r| r.target == target && r.alert == alert)
        .map(|r| r.status.as_str())
        .collect()
}

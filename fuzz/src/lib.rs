//! What the fuzz targets share: the instant they run at, and the properties every alert that
//! ingest accepts must have.
//!
//! Each target lives in `fuzz_targets/` and is run by `cargo xtask fuzz` (cargo-fuzz, nightly)
//! from the seed corpus in `corpus/<target>/`.

use std::time::Duration;

use alert_core::EnrichedAlert;
use alertpub_server::ingest::{AlertLimits, Normalised, OpenEnd, normalise};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The instant every target runs at, so a crash reproduces.
#[must_use]
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// The most alerts of one input a target normalises: the server's own cap is far higher, but
/// each alert costs the same, and more of them only slow the fuzzer down.
pub const MAX_ALERTS: usize = 64;

/// The ways a missing `endsAt` is treated: ingest's default resolve timeout, the webhook's
/// (off), and a timeout so long that the end must saturate.
pub const OPEN_ENDS: [OpenEnd; 3] = [
    OpenEnd::ResolveAfter(Duration::from_secs(300)),
    OpenEnd::Keep,
    OpenEnd::ResolveAfter(Duration::from_secs(u64::MAX)),
];

/// Normalises one alert as ingest does and checks what an accepted alert must satisfy.
///
/// # Panics
/// When an accepted alert breaks one of them.
pub fn normalise_and_check(raw: &Value, open_end: OpenEnd) -> Option<Normalised> {
    let limits = AlertLimits::default();
    let normalised = normalise(raw, now(), open_end, &limits).ok()?;
    check_accepted(&normalised.alert, open_end, &limits);
    Some(normalised)
}

/// The properties of an accepted alert.
fn check_accepted(alert: &EnrichedAlert, open_end: OpenEnd, limits: &AlertLimits) {
    let inner = &alert.alert;
    let labels = inner.labels();
    assert!(!labels.is_empty(), "an accepted alert has labels");
    assert!(labels.len() <= limits.max_labels, "too many labels");
    for (name, value) in labels {
        assert!(
            !name.is_empty() && name.len() <= limits.max_name_bytes,
            "label name {name:?}"
        );
        assert!(
            value.len() <= limits.max_value_bytes,
            "label value of {name:?}"
        );
    }
    if let Some(ends_at) = inner.ends_at() {
        assert!(
            ends_at >= inner.starts_at(),
            "ends before it starts: {inner:?}"
        );
    }
    if matches!(open_end, OpenEnd::ResolveAfter(_)) {
        assert!(inner.ends_at().is_some(), "ingest gives every alert an end");
    }
    // What we accepted, we must be able to send on: the wire form (Alertmanager's shape, which
    // the webhook and Alertmanager targets send) must read back as the same alert.
    let wire = serde_json::to_value(inner).expect("an accepted alert serialises");
    let unbounded = AlertLimits {
        max_alert_bytes: usize::MAX,
        ..*limits
    };
    let again = match normalise(&wire, now(), OpenEnd::Keep, &unbounded) {
        Ok(again) => again.alert.alert,
        Err(err) => panic!(
            "the wire form {wire} of an accepted alert is refused: {}",
            err.0
        ),
    };
    assert_eq!(
        again.fingerprint(),
        inner.fingerprint(),
        "fingerprint after a round trip"
    );
    assert_eq!(
        again.annotations(),
        inner.annotations(),
        "annotations after a round trip"
    );
    assert_eq!(
        again.generator_url(),
        inner.generator_url(),
        "generator URL after a round trip"
    );
}

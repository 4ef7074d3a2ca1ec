//! The vocabulary's names and printed forms: every wire name is distinct and parses back where
//! the type parses, `Debug` stays compact (and redacted where it must), and a storage failure
//! keeps its kind and its cause.

use std::collections::HashSet;
use std::error::Error as _;
use std::time::Duration;

use alert_core::{
    Admitted, Alert, AlertStatus, Clock, DeadLetterId, DeadReason, EnrichedAlert, Fingerprint,
    HealthStatus, JobStoreError, KindSettings, Labels, MatchOp, Matcher, Secret, Severity,
    SkipReason, StorageError, StorageKind, StoreCondition, SweepPlan, TargetKind, TargetName,
    TestClock,
};
use chrono::{DateTime, Utc};

fn distinct(names: &[&str]) {
    let set: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(set.len(), names.len(), "wire names repeat: {names:?}");
    assert!(names.iter().all(|n| !n.is_empty()));
}

#[test]
fn wire_names_are_distinct_and_parse_back() {
    distinct(&[
        Severity::Critical.as_str(),
        Severity::Warning.as_str(),
        Severity::Info.as_str(),
        Severity::Noise.as_str(),
    ]);
    distinct(&[
        SkipReason::Disabled.as_str(),
        SkipReason::Unhealthy.as_str(),
        SkipReason::Degraded.as_str(),
        SkipReason::CircuitOpen.as_str(),
        SkipReason::Filtered.as_str(),
    ]);
    assert_eq!(SkipReason::CircuitOpen.to_string(), "circuit_open");
    distinct(&[
        HealthStatus::Unknown.as_str(),
        HealthStatus::Healthy.as_str(),
        HealthStatus::Degraded.as_str(),
        HealthStatus::Unhealthy.as_str(),
    ]);
    distinct(&[
        DeadReason::Exhausted.as_str(),
        DeadReason::Permanent.as_str(),
        DeadReason::Expired.as_str(),
        DeadReason::TargetRemoved.as_str(),
    ]);
    let kinds = [
        StorageKind::Io,
        StorageKind::Unavailable,
        StorageKind::Corrupt,
        StorageKind::Encoding,
        StorageKind::Contended,
        StorageKind::Broken,
    ];
    distinct(&kinds.map(StorageKind::as_str));
    for kind in kinds {
        assert_eq!(kind.to_string(), kind.as_str());
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::json!(kind.as_str()),
            "the JSON name is the wire name"
        );
    }
    for kind in TargetKind::ALL {
        assert_eq!(kind.as_str().parse::<TargetKind>(), Ok(kind));
    }
    let unknown = "carrier-pigeon".parse::<TargetKind>().unwrap_err();
    assert!(unknown.contains("carrier-pigeon"), "{unknown}");
    assert_eq!(
        "pager".parse::<TargetName>().unwrap(),
        TargetName::new("pager").unwrap()
    );
    assert!("".parse::<TargetName>().is_err());
}

#[test]
fn a_storage_failure_keeps_its_kind_its_message_and_its_causes() {
    #[derive(Debug, thiserror::Error)]
    #[error("write failed")]
    struct Outer(#[source] std::io::Error);

    let err = StorageError::new(StorageKind::Io, "appending the log")
        .with_source(Outer(std::io::Error::other("no space left on device")));
    assert_eq!(err.kind(), StorageKind::Io);
    assert_eq!(err.message(), "appending the log");
    let cause = err.source().expect("the cause");
    assert_eq!(cause.to_string(), "write failed");
    assert_eq!(
        cause.source().map(ToString::to_string).as_deref(),
        Some("no space left on device"),
        "the cause's own cause is kept"
    );
    let store = JobStoreError::Storage(err.clone());
    assert_eq!(store.storage_kind(), Some(StorageKind::Io));
    assert_eq!(store, JobStoreError::Storage(err));
    assert_ne!(
        store,
        JobStoreError::storage(StorageKind::Io, "appending the log"),
        "a failure with a cause differs from one without"
    );
}

#[test]
fn compact_and_redacted_debug() {
    let labels: Labels = [("alertname".to_owned(), "DiskFull".to_owned())].into();
    let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let alert = Alert::new(labels).unwrap().with_starts_at(at).unwrap();
    let debug = format!("{alert:?}");
    assert!(
        debug.contains("DiskFull") && debug.contains("2027-"),
        "{debug}"
    );
    assert_eq!(alert.status(), AlertStatus::Firing, "no end: firing now");
    let enriched: EnrichedAlert = alert.clone().into();
    assert_eq!(enriched.alert, alert);

    let fingerprint = alert.fingerprint();
    assert_eq!(
        format!("{fingerprint:?}"),
        format!("Fingerprint({fingerprint})")
    );
    let parsed: Fingerprint = serde_json::from_value(serde_json::json!(fingerprint.to_string()))
        .expect("a fingerprint reads back from its hex form");
    assert_eq!(parsed, fingerprint);
    assert!(serde_json::from_value::<Fingerprint>(serde_json::json!("not hex")).is_err());

    let settings: KindSettings = serde_json::from_value(serde_json::json!({
        "routing_key": "R0UT1NG-K3Y",
        "url": "https://hooks.example/T0KEN"
    }))
    .unwrap();
    let debug = format!("{settings:?}");
    assert_eq!(debug, "KindSettings(2 keys)");

    let secret: Secret<String> = "hunter2".to_owned().into();
    assert!(!format!("{secret:?}{secret}").contains("hunter2"));

    let clock = TestClock::default();
    let debug = format!("{clock:?}");
    assert!(debug.starts_with("TestClock"), "{debug}");
    assert!(clock.now() > DateTime::<Utc>::UNIX_EPOCH);

    let matcher = Matcher::new("severity", MatchOp::Equal, "critical").unwrap();
    assert_eq!(matcher.name(), "severity");
    assert_eq!(format!("{matcher:?}"), format!("Matcher({matcher})"));
}

#[test]
fn small_answers() {
    assert!(
        Admitted::TargetFull {
            max_jobs_per_target: 3
        }
        .is_refused()
    );
    assert!(!Admitted::Duplicate.is_refused());
    assert_eq!(DeadLetterId("0190".to_owned()).to_string(), "0190");
    let plan = SweepPlan::new(
        vec![
            (
                TargetName::new("am").unwrap(),
                Some(Duration::from_secs(60)),
            ),
            (TargetName::new("pager").unwrap(), None),
        ],
        Duration::ZERO,
    );
    assert_eq!(plan.target("am"), Some(Some(Duration::from_secs(60))));
    assert_eq!(plan.target("pager"), Some(None));
    assert_eq!(plan.target("gone"), None);
    assert_eq!(StoreCondition::Healthy.kind(), "healthy");
    assert!(StoreCondition::Healthy.message().contains("healthy"));
}

//! The delivery history's contract ([`DeliveryHistory`]): what every store keeps, how it is
//! searched and paged, and its retention, on the contract's fixed synthetic times.

use std::time::Duration;

use alert_core::{
    AlertStatus, AttemptOutcome, AttemptPath, DeliveryHistory, DeliveryRecord, HistoryFilter,
    HistoryRetention, IngestQueue, TargetName,
};

use crate::{admit, alert, at, firing};

fn record(secs: i64, name: &str, target: &str, outcome: AttemptOutcome) -> DeliveryRecord {
    let alert = alert(name, Some("critical"), 0, 0);
    DeliveryRecord::new(
        at(secs),
        alert.alert.fingerprint(),
        alert.alert.labels().clone(),
        TargetName::new(target).unwrap(),
        AlertStatus::Firing,
        1,
        outcome,
        AttemptPath::Queue,
    )
    .with_answer(
        Some(if outcome == AttemptOutcome::Delivered {
            200
        } else {
            503
        }),
        (outcome == AttemptOutcome::Failed).then_some("transient"),
        Duration::from_millis(12),
    )
}

const KEEP_ALL: HistoryRetention = HistoryRetention {
    max_records: 1_000,
    max_age: Duration::from_secs(3600),
};

/// Records are kept with increasing ids, listed newest first, searched by target, fingerprint,
/// matcher and time, and paged with a cursor that loses nothing and repeats nothing.
pub async fn history_is_kept_searched_and_paged<S: DeliveryHistory + ?Sized>(store: &S) {
    let mut batch = Vec::new();
    for i in 0..10 {
        let target = if i % 2 == 0 { "pager" } else { "chat" };
        let outcome = if i % 5 == 4 {
            AttemptOutcome::Failed
        } else {
            AttemptOutcome::Delivered
        };
        batch.push(record(i, &format!("Alert{}", i % 3), target, outcome));
    }
    store.record(batch, KEEP_ALL, at(10)).await.unwrap();

    let all = store
        .deliveries(&HistoryFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(all.entries.len(), 10, "every record is kept");
    assert_eq!(all.next_cursor, None);
    let ids: Vec<u64> = all.entries.iter().map(|r| r.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, by increasing ids: {ids:?}"
    );
    assert_eq!(all.entries[0].at, at(9), "the newest record first");
    assert_eq!(
        all.entries[1].status_code,
        Some(200),
        "record 8 was delivered"
    );
    let failed = all
        .entries
        .iter()
        .find(|r| r.outcome == AttemptOutcome::Failed)
        .unwrap();
    assert_eq!(
        (
            failed.status_code,
            failed.error_kind.as_deref(),
            failed.latency_ms
        ),
        (Some(503), Some("transient"), 12)
    );

    let pager = HistoryFilter {
        target: Some("pager".to_owned()),
        ..HistoryFilter::default()
    };
    let first = store.deliveries(&pager, None, 3).await.unwrap();
    assert_eq!(first.entries.len(), 3);
    assert!(first.entries.iter().all(|r| r.target.as_str() == "pager"));
    let cursor = first.next_cursor.expect("a full page says where to go on");
    let rest = store.deliveries(&pager, Some(cursor), 3).await.unwrap();
    assert_eq!(rest.entries.len(), 2, "five pager records in all");
    assert!(rest.entries.iter().all(|r| r.id < cursor));

    let alert0 = alert("Alert0", Some("critical"), 0, 0);
    let by_alert = HistoryFilter {
        fingerprint: Some(alert0.alert.fingerprint()),
        ..HistoryFilter::default()
    };
    let found = store.deliveries(&by_alert, None, 100).await.unwrap();
    assert_eq!(found.entries.len(), 4, "Alert0 is records 0, 3, 6 and 9");
    let by_matcher = HistoryFilter {
        matchers: vec!["alertname=~\"Alert[12]\"".parse().unwrap()],
        since: Some(at(5)),
        ..HistoryFilter::default()
    };
    let found = store.deliveries(&by_matcher, None, 100).await.unwrap();
    let seconds: Vec<i64> = found
        .entries
        .iter()
        .map(|r| r.at.timestamp() - at(0).timestamp())
        .collect();
    assert_eq!(seconds, [8, 7, 5], "Alert1 and Alert2 from second 5 on");
}

/// The history holds at most `max_records`, the newest, and nothing older than `max_age`, by the
/// `now` each append is given.
pub async fn history_retention_holds<S: DeliveryHistory + ?Sized>(store: &S) {
    let retention = HistoryRetention {
        max_records: 4,
        max_age: Duration::from_secs(60),
    };
    let batch: Vec<_> = (0..6)
        .map(|i| record(i, "Count", "pager", AttemptOutcome::Delivered))
        .collect();
    store.record(batch, retention, at(6)).await.unwrap();
    let kept = store
        .deliveries(&HistoryFilter::default(), None, 100)
        .await
        .unwrap();
    let seconds: Vec<i64> = kept
        .entries
        .iter()
        .map(|r| r.at.timestamp() - at(0).timestamp())
        .collect();
    assert_eq!(seconds, [5, 4, 3, 2], "the newest four");

    // Two minutes on, one more record: the four are past `max_age` and go.
    store
        .record(
            vec![record(120, "Late", "pager", AttemptOutcome::Delivered)],
            retention,
            at(121),
        )
        .await
        .unwrap();
    let kept = store
        .deliveries(&HistoryFilter::default(), None, 100)
        .await
        .unwrap();
    let seconds: Vec<i64> = kept
        .entries
        .iter()
        .map(|r| r.at.timestamp() - at(0).timestamp())
        .collect();
    assert_eq!(seconds, [120], "only the record within max_age");
}

/// An alert's notification-log entries, by target, as ingest left them.
pub async fn log_of_an_alert_lists_each_target<S: DeliveryHistory + IngestQueue + ?Sized>(
    store: &S,
) {
    let alert = firing("Logged");
    let fingerprint = alert.alert.fingerprint();
    let batch = vec![admit("chat", alert.clone()), admit("pager", alert)];
    store.enqueue_batch(batch, at(1)).await.unwrap();
    let entries = store.log_of(fingerprint).await.unwrap();
    let targets: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(targets, ["chat", "pager"]);
    assert!(entries.iter().all(|(_, e)| e.status == AlertStatus::Firing));
    let other = alert_core::Fingerprint::from_u64(7);
    assert!(store.log_of(other).await.unwrap().is_empty());
}

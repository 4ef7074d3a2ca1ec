//! The queue crate's stores against the `JobStore` contract, plus what is particular to each.
//!
//! `MemoryJobStore`: the dead-letter cap, the notification log's inspection and the lease share
//! across small leases. `RedbJobStore` (in `redb_store`): a clean reopen and a real crash.

mod postgres;
mod redb_store;

use std::time::Duration;

use alert_core::{
    Admission, Alert, AlertStatus, Annotations, DeadLetterFilter, DeadLetterQueue, DeadReason,
    EnrichedAlert, IngestQueue, JobStore, Labels, LaneQueue, Priority, QueueMaintenance, SweepPlan,
    TargetKind, TargetName,
};
use chrono::{DateTime, Utc};
use job_contract as contract;
use queue::MemoryJobStore;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn alert(name: &str, severity: Option<&str>, ends: i64) -> EnrichedAlert {
    let mut labels: Labels = [("alertname".to_owned(), name.to_owned())].into();
    if let Some(severity) = severity {
        labels.insert("severity".to_owned(), severity.to_owned());
    }
    EnrichedAlert::new(
        Alert::build(labels, Annotations::new(), at(0), Some(at(ends)), None).unwrap(),
    )
}

fn admit(target: &TargetName, alert: EnrichedAlert) -> Admission {
    Admission::new(target.clone(), alert, None)
}

#[tokio::test]
async fn memory_store_passes_the_contract() {
    contract::run_all(|| MemoryJobStore::new(1_000)).await;
    contract::history_is_kept_searched_and_paged(&MemoryJobStore::new(1_000)).await;
    contract::history_retention_holds(&MemoryJobStore::new(1_000)).await;
    contract::log_of_an_alert_lists_each_target(&MemoryJobStore::new(1_000)).await;
}

#[tokio::test]
async fn memory_store_refuses_a_full_target_alone() {
    let store = MemoryJobStore::new(1_000).with_max_jobs_per_target(3);
    contract::target_quota_refuses_that_target_alone(&store).await;
}

#[tokio::test]
async fn memory_store_bounds_the_active_alerts() {
    let store = MemoryJobStore::new(1_000).with_max_active_alerts(4);
    contract::active_alerts_are_bounded(&store).await;
}

#[tokio::test]
async fn memory_store_counts_the_dead_letters_it_drops_at_its_cap() {
    let store = MemoryJobStore::new(1_000).with_dead_letter_cap(4);
    contract::evicted_dead_letters_are_counted(&store, 4).await;
}

#[tokio::test]
async fn dead_letters_beyond_the_cap_drop_the_oldest() {
    let store = MemoryJobStore::new(100).with_dead_letter_cap(2);
    let target = TargetName::new("t").unwrap();
    let mut made = Vec::new();
    for i in 0..3 {
        let batch = vec![admit(&target, alert(&format!("Cap{i}"), None, 86_400))];
        store.enqueue_batch(batch, at(i)).await.unwrap();
        let lease = store
            .lease(&target, 1, Duration::from_secs(60), at(i))
            .await
            .unwrap();
        let id = store
            .dead_letter(
                lease.jobs[0].id,
                TargetKind::Webhook,
                DeadReason::Permanent,
                None,
                at(i),
            )
            .await
            .unwrap()
            .unwrap();
        made.push(id);
    }
    let page = store
        .dead_letters(&DeadLetterFilter::default(), None, 10)
        .await
        .unwrap();
    let ids: Vec<_> = page.entries.into_iter().map(|d| d.id).collect();
    assert_eq!(ids, made[1..], "the oldest entry is dropped first");
    assert_eq!(store.stats().await.unwrap().dead_letters, 2);
}

#[tokio::test]
async fn the_log_entry_follows_accepted_states_and_refreshes() {
    let store = MemoryJobStore::new(100);
    let target = TargetName::new("t").unwrap();
    let firing = alert("Logged", None, 300);
    let fingerprint = firing.alert.fingerprint();
    assert_eq!(store.log_entry("t", fingerprint), None);

    store
        .enqueue_batch(vec![admit(&target, firing)], at(10))
        .await
        .unwrap();
    let entry = store.log_entry("t", fingerprint).unwrap();
    assert_eq!(
        (entry.status, entry.sequence, entry.accepted_at),
        (AlertStatus::Firing, 1, at(10))
    );
    assert_eq!(entry.ends_at, Some(at(300)));

    // A re-send that extends endsAt is a duplicate whose refresh is stored.
    store
        .enqueue_batch(vec![admit(&target, alert("Logged", None, 600))], at(20))
        .await
        .unwrap();
    let entry = store.log_entry("t", fingerprint).unwrap();
    assert_eq!(
        (entry.sequence, entry.ends_at, entry.accepted_at),
        (1, Some(at(600)), at(10))
    );

    store
        .enqueue_batch(vec![admit(&target, alert("Logged", None, 25))], at(30))
        .await
        .unwrap();
    let entry = store.log_entry("t", fingerprint).unwrap();
    assert_eq!((entry.status, entry.sequence), (AlertStatus::Resolved, 2));
    assert_eq!(store.log_entry("other", fingerprint), None);
    assert_eq!(store.log_entry("Not A Name", fingerprint), None);
}

#[tokio::test]
async fn small_leases_still_reach_every_level() {
    let store = MemoryJobStore::new(1_000);
    let target = TargetName::new("t").unwrap();
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push(admit(
            &target,
            alert(&format!("H{i}"), Some("critical"), 86_400),
        ));
        batch.push(admit(&target, alert(&format!("M{i}"), None, 86_400)));
        batch.push(admit(
            &target,
            alert(&format!("L{i}"), Some("info"), 86_400),
        ));
    }
    store.enqueue_batch(batch, at(0)).await.unwrap();
    // A lane that leases one job at a time gets the same shares as one that leases 16.
    let mut counts = [0; 3];
    for _ in 0..16 {
        let lease = store
            .lease(&target, 1, Duration::from_secs(60), at(1))
            .await
            .unwrap();
        let job = &lease.jobs[0];
        counts[Priority::ALL
            .iter()
            .position(|&p| p == job.priority)
            .unwrap()] += 1;
        store.ack(job.id, at(1)).await.unwrap();
    }
    assert_eq!(counts, [12, 3, 1]);
}

#[tokio::test]
async fn replay_is_refused_when_full() {
    let store = MemoryJobStore::new(1);
    let target = TargetName::new("t").unwrap();
    store
        .enqueue_batch(vec![admit(&target, alert("A", None, 86_400))], at(0))
        .await
        .unwrap();
    let lease = store
        .lease(&target, 1, Duration::from_secs(60), at(0))
        .await
        .unwrap();
    let id = store
        .dead_letter(
            lease.jobs[0].id,
            TargetKind::Slack,
            DeadReason::Exhausted,
            None,
            at(1),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .enqueue_batch(vec![admit(&target, alert("B", None, 86_400))], at(2))
        .await
        .unwrap();
    assert_eq!(
        store.replay(&id, at(3)).await,
        Err(alert_core::JobStoreError::Full { max_jobs: 1 })
    );
    assert_eq!(
        store.stats().await.unwrap().dead_letters,
        1,
        "the entry is kept"
    );
}

/// A sweep on a store with `max_jobs` 2 holding two live jobs: a resolve that replaces a pending
/// job still fits, one that would grow the queue waits for room, and the pass does not fail.
async fn sweep_makes_what_fits_under_max_jobs(store: &dyn JobStore) {
    let target = TargetName::new("t").unwrap();
    let ttl = Duration::from_secs(60);
    store
        .enqueue_batch(
            vec![
                admit(&target, alert("Pending", None, 300)),
                admit(&target, alert("Acked", None, 310)),
            ],
            at(0),
        )
        .await
        .unwrap();
    let lease = store.lease(&target, 10, ttl, at(1)).await.unwrap();
    let acked = lease
        .jobs
        .iter()
        .find(|j| j.alert.alert.name() == Some("Acked"))
        .unwrap();
    store.ack(acked.id, at(1)).await.unwrap();
    let pending = lease
        .jobs
        .iter()
        .find(|j| j.alert.alert.name() == Some("Pending"))
        .unwrap();
    store
        .reschedule(pending.id, alert_core::Reschedule::new(at(1), false), at(1))
        .await
        .unwrap();
    store
        .enqueue_batch(vec![admit(&target, alert("Long", None, 86_400))], at(2))
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().depth(), 2, "the store is full");

    let plan = SweepPlan::new(vec![(target.clone(), None)], Duration::ZERO);
    let report = store.sweep(&plan, at(400)).await.unwrap();
    assert_eq!(
        (report.resolved, report.refreshed),
        (1, 0),
        "Pending's resolve replaces its job; Acked's would exceed max_jobs and waits"
    );
    assert_eq!(store.stats().await.unwrap().depth(), 2);
    let jobs = store.lease(&target, 10, ttl, at(400)).await.unwrap().jobs;
    let mut names: Vec<_> = jobs
        .iter()
        .map(|j| {
            (
                j.alert.alert.name().unwrap().to_owned(),
                j.delivery.sequence,
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, [("Long".to_owned(), 1), ("Pending".to_owned(), 2)]);
    for job in &jobs {
        store.ack(job.id, at(401)).await.unwrap();
    }
    let report = store.sweep(&plan, at(402)).await.unwrap();
    assert_eq!(
        report.resolved, 1,
        "with room again, Acked's resolve is made"
    );
    let jobs = store.lease(&target, 10, ttl, at(402)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].alert.alert.name(), Some("Acked"));
    assert_eq!(jobs[0].alert.alert.ends_at(), Some(at(310)));
}

#[tokio::test]
async fn memory_sweep_makes_what_fits_under_max_jobs() {
    sweep_makes_what_fits_under_max_jobs(&MemoryJobStore::new(2)).await;
}

#[tokio::test]
async fn memory_store_keeps_the_accepted_alert_through_refreshes() {
    let store = MemoryJobStore::new(100);
    let target = TargetName::new("t").unwrap();
    let first = alert("Kept", None, 300);
    let fingerprint = first.alert.fingerprint();
    store
        .enqueue_batch(vec![admit(&target, first.clone())], at(0))
        .await
        .unwrap();
    assert_eq!(
        store.last_accepted_alert("t", fingerprint),
        Some(first.clone())
    );
    let mut resent = alert("Kept", None, 600);
    resent.alert = resent
        .alert
        .with_annotations([("summary".to_owned(), "new".to_owned())].into());
    store
        .enqueue_batch(vec![admit(&target, resent)], at(10))
        .await
        .unwrap();
    assert_eq!(
        store.last_accepted_alert("t", fingerprint),
        Some(first),
        "a refresh changes the entry's endsAt, not the accepted alert"
    );
    assert_eq!(
        store.log_entry("t", fingerprint).unwrap().ends_at,
        Some(at(600))
    );
    assert_eq!(store.last_accepted_alert("other", fingerprint), None);
}

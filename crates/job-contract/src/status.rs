//! The status-at-acceptance rule: a job publishes the state it was made for, however late it is
//! leased.

use super::{
    AlertStatus, DeadReason, JobStore, Reschedule, TargetKind, admit, alert, at, enqueue_new,
    filter_of, lease_jobs, list, plan, sweep, transient,
};

/// A firing job leased after its alert's `endsAt` has passed (its target was down meanwhile) is
/// still a firing, through reschedules, the dead-letter queue and a replay; a resolve is a
/// resolve; an auto-resolve made by the sweeper is a resolve.
pub async fn status_is_fixed_when_the_job_is_made(store: &dyn JobStore) {
    // Prometheus's kind of alert: endsAt = now + 4 x its resend interval, here 10 s ahead.
    let short = alert("StatusShort", Some("critical"), 0, 10);
    enqueue_new(store, admit("status-a", short.clone()), at(0)).await;
    let late = lease_jobs(store, "status-a", at(3_600)).await;
    assert_eq!(late.len(), 1, "the firing job is due, got {late:?}");
    assert_eq!(
        late[0].status,
        AlertStatus::Firing,
        "a firing job leased an hour after its endsAt is still a firing"
    );
    assert_eq!(
        *late[0].alert, short,
        "the job keeps the alert it was accepted with"
    );
    let how = Reschedule::new(at(3_601), true).with_error(transient());
    store
        .reschedule(late[0].id, how, at(3_600))
        .await
        .unwrap_or_else(|e| panic!("reschedule failed: {e}"));
    let again = lease_jobs(store, "status-a", at(7_200)).await;
    assert_eq!(
        again.iter().map(|j| j.status).collect::<Vec<_>>(),
        [AlertStatus::Firing],
        "a rescheduled firing job stays a firing"
    );

    // Dead-lettered late and replayed later still: the entry and the replay keep the status.
    store
        .dead_letter(
            again[0].id,
            TargetKind::Webhook,
            DeadReason::Exhausted,
            Some(transient()),
            at(7_200),
        )
        .await
        .unwrap_or_else(|e| panic!("dead_letter failed: {e}"));
    let filter = filter_of(Some("status-a"), None, None, None);
    let entries = list(store, &filter).await;
    assert_eq!(entries.len(), 1, "one dead letter, got {entries:?}");
    assert_eq!(
        entries[0].status,
        AlertStatus::Firing,
        "a dead letter keeps its job's status"
    );
    store
        .replay(&entries[0].id, at(9_000))
        .await
        .unwrap_or_else(|e| panic!("replay failed: {e}"));
    let replayed = lease_jobs(store, "status-a", at(9_000)).await;
    assert_eq!(
        replayed.iter().map(|j| j.status).collect::<Vec<_>>(),
        [AlertStatus::Firing],
        "a replay sends the state its job was made for"
    );

    // A resolve accepted as one is a resolve.
    let ended = alert("StatusEnded", None, 0, 5);
    enqueue_new(store, admit("status-b", ended), at(20)).await;
    let resolve = lease_jobs(store, "status-b", at(20)).await;
    assert_eq!(
        resolve.iter().map(|j| j.status).collect::<Vec<_>>(),
        [AlertStatus::Resolved]
    );

    // The sweeper's auto-resolve is a resolve, with the entry's end.
    let lapsing = alert("StatusLapsing", None, 0, 30);
    enqueue_new(store, admit("status-c", lapsing), at(0)).await;
    for job in lease_jobs(store, "status-c", at(1)).await {
        assert_eq!(job.status, AlertStatus::Firing);
        store
            .ack(job.id, at(1))
            .await
            .unwrap_or_else(|e| panic!("ack failed: {e}"));
    }
    let report = sweep(store, &plan(&[("status-c", None)], 0), at(60)).await;
    assert_eq!(report.resolved, 1, "the lapsed alert resolves: {report:?}");
    let auto = lease_jobs(store, "status-c", at(60)).await;
    assert_eq!(
        auto.iter().map(|j| j.status).collect::<Vec<_>>(),
        [AlertStatus::Resolved],
        "an auto-resolve job is a resolve"
    );
    assert_eq!(auto[0].alert.alert.ends_at(), Some(at(30)));
}

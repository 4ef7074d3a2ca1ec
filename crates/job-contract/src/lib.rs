//! The contract every [`JobStore`] backend must pass: the suite each store's tests run, kept
//! out of `alert-core` (which holds the contract's vocabulary) so that it builds only for tests.
//!
//! Each function takes a fresh store and panics with a readable message when the store breaks the
//! contract. A backend's tests call [`run_all`] (or the functions one by one) from its own
//! integration test binary.
//!
//! Every function uses fixed synthetic times around 2027-01-15 (`1_800_000_000` seconds after the
//! epoch), never a clock, so a store must take time only from the `now` it is given.
//!
//! [`max_jobs_bound`] needs a store whose `max_jobs` is at least 100 and at most 10,000; the other
//! functions need a `max_jobs` of at least 100.

use std::time::Duration;

use chrono::{DateTime, Utc};

use alert_core::{
    Admission, Admitted, Alert, AlertStatus, Annotations, DeadLetter, DeadLetterFilter,
    DeadLetterId, DeadReason, EnrichedAlert, ErrorKind, JobError, JobId, JobStore, JobStoreError,
    Labels, Lease, LeasedJob, Priority, QueueStats, Reschedule, StoreCondition, SweepPlan,
    SweepReport, TargetKind, TargetName, TargetQueueStats,
};

mod announce;
mod bounds;
mod health;
mod history;
mod status;
pub use announce::new_work_is_announced;
pub use bounds::{
    active_alerts_are_bounded, removed_targets_jobs_move_after_the_grace, sweep_expires_old_jobs,
    target_quota_refuses_that_target_alone,
};
pub use health::{a_working_store_is_healthy, evicted_dead_letters_are_counted};
pub use history::{
    history_is_kept_searched_and_paged, history_retention_holds, log_of_an_alert_lists_each_target,
};
pub use status::status_is_fixed_when_the_job_is_made;

/// The lease time-to-live the contract uses unless a check is about expiry.
const TTL: Duration = Duration::from_secs(60);

/// The largest `max_jobs` [`max_jobs_bound`] will fill up to.
const MAX_FILL: u64 = 10_000;

/// Runs every contract check, each against a fresh store from `make`.
///
/// `make` must build an empty store with a `max_jobs` between 100 and 10,000.
pub async fn run_all<S: JobStore>(make: impl Fn() -> S) {
    enqueue_then_lease(&make()).await;
    lease_expiry_makes_a_job_leasable_again(&make()).await;
    notification_log(&make()).await;
    repeat_interval(&make()).await;
    supersede_pending(&make()).await;
    supersede_leased(&make()).await;
    targets_and_fingerprints_are_independent(&make()).await;
    ack_removes(&make()).await;
    reschedule_delays_and_counts_attempts(&make()).await;
    lease_limit_and_due_order(&make()).await;
    priority_shares(&make()).await;
    max_jobs_bound(&make()).await;
    dead_letter_queue(&make()).await;
    replay_and_purge(&make()).await;
    stats_by_priority_and_target(&make()).await;
    auto_resolve(&make()).await;
    auto_resolve_supersedes(&make()).await;
    refresh_forwarding(&make()).await;
    sweep_is_bounded_per_pass(&make()).await;
    log_retention(&make()).await;
    dead_letter_target(&make()).await;
    oldest_enqueued_at(&make()).await;
    status_is_fixed_when_the_job_is_made(&make()).await;
    a_working_store_is_healthy(&make()).await;
    sweep_expires_old_jobs(&make()).await;
    removed_targets_jobs_move_after_the_grace(&make()).await;
    new_work_is_announced(&make()).await;
}

// === Helpers ===

/// The synthetic time `secs` seconds after the contract's epoch.
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("a valid synthetic time")
}

fn target(name: &str) -> TargetName {
    TargetName::new(name).expect("a valid target name")
}

/// An alert named `name` with an optional `severity` label, starting at `starts` and ending at
/// `ends` (all in seconds from the contract's epoch).
fn alert(name: &str, severity: Option<&str>, starts: i64, ends: i64) -> EnrichedAlert {
    let mut labels: Labels = [("alertname".to_owned(), name.to_owned())].into();
    if let Some(severity) = severity {
        labels.insert("severity".to_owned(), severity.to_owned());
    }
    let alert = Alert::build(labels, Annotations::new(), at(starts), Some(at(ends)), None)
        .expect("a valid alert");
    EnrichedAlert::new(alert)
}

/// A medium-priority alert firing from second 0 for a day.
fn firing(name: &str) -> EnrichedAlert {
    alert(name, None, 0, 86_400)
}

/// The same alert as [`firing`], resolved at second 5.
fn resolved(name: &str) -> EnrichedAlert {
    alert(name, None, 0, 5)
}

fn admit(to: &str, alert: EnrichedAlert) -> Admission {
    Admission::new(target(to), alert, None)
}

async fn enqueue(store: &dyn JobStore, batch: Vec<Admission>, now: DateTime<Utc>) -> Vec<Admitted> {
    let len = batch.len();
    let answers = store
        .enqueue_batch(batch, now)
        .await
        .unwrap_or_else(|e| panic!("enqueue_batch of {len} admissions failed: {e}"));
    assert_eq!(
        answers.len(),
        len,
        "enqueue_batch must answer once per admission, in order"
    );
    answers
}

async fn enqueue_one(store: &dyn JobStore, admission: Admission, now: DateTime<Utc>) -> Admitted {
    enqueue(store, vec![admission], now).await[0]
}

/// Enqueues one admission that must become a job; returns (job, sequence, superseded).
async fn enqueue_new(
    store: &dyn JobStore,
    admission: Admission,
    now: DateTime<Utc>,
) -> (JobId, u64, Option<JobId>) {
    let what = describe(&admission, now);
    match enqueue_one(store, admission, now).await {
        Admitted::Enqueued {
            job,
            sequence,
            superseded,
        } => (job, sequence, superseded),
        Admitted::Duplicate => panic!("{what} should have been enqueued, but was a duplicate"),
        Admitted::TargetFull { .. } => {
            panic!("{what} should have been enqueued, but its target's queue was full")
        }
        other => panic!("{what} should have been enqueued, but was {other:?}"),
    }
}

/// A dead-letter filter, built field by field (the type is non-exhaustive).
fn filter_of(
    target: Option<&str>,
    kind: Option<TargetKind>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> DeadLetterFilter {
    let mut filter = DeadLetterFilter::default();
    filter.target = target.map(str::to_owned);
    filter.kind = kind;
    filter.since = since;
    filter.until = until;
    filter
}

fn describe(admission: &Admission, now: DateTime<Utc>) -> String {
    format!(
        "{} for target {} (status {} at endsAt {:?})",
        admission.alert.alert.name().unwrap_or("?"),
        admission.target.as_str(),
        admission.alert.alert.status_at(now),
        admission.alert.alert.ends_at(),
    )
}

async fn lease(store: &dyn JobStore, to: &str, n: usize, now: DateTime<Utc>) -> Lease {
    store
        .lease(&target(to), n, TTL, now)
        .await
        .unwrap_or_else(|e| panic!("lease on {to} failed: {e}"))
}

async fn lease_jobs(store: &dyn JobStore, to: &str, now: DateTime<Utc>) -> Vec<LeasedJob> {
    lease(store, to, 100, now).await.jobs
}

fn ids(jobs: &[LeasedJob]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

async fn ack(store: &dyn JobStore, job: JobId, now: DateTime<Utc>) {
    store
        .ack(job, now)
        .await
        .unwrap_or_else(|e| panic!("ack of job {job} failed: {e}"));
}

async fn reschedule(store: &dyn JobStore, job: JobId, how: Reschedule, now: DateTime<Utc>) {
    store
        .reschedule(job, how, now)
        .await
        .unwrap_or_else(|e| panic!("reschedule of job {job} failed: {e}"));
}

async fn dead_letter(
    store: &dyn JobStore,
    job: JobId,
    kind: TargetKind,
    now: DateTime<Utc>,
) -> Option<DeadLetterId> {
    store
        .dead_letter(job, kind, DeadReason::Exhausted, Some(transient()), now)
        .await
        .unwrap_or_else(|e| panic!("dead_letter of job {job} failed: {e}"))
}

fn transient() -> JobError {
    JobError {
        kind: ErrorKind::Transient,
        status_code: Some(503),
        message: "service unavailable".to_owned(),
    }
}

async fn stats(store: &dyn JobStore) -> QueueStats {
    store
        .stats()
        .await
        .unwrap_or_else(|e| panic!("stats failed: {e}"))
}

/// A sweep plan over `targets` (each with its refresh interval in seconds) keeping log entries
/// for `retention` seconds (0: forever).
fn plan(targets: &[(&str, Option<u64>)], retention: u64) -> SweepPlan {
    let targets = targets
        .iter()
        .map(|&(name, interval)| (target(name), interval.map(Duration::from_secs)))
        .collect();
    SweepPlan::new(targets, Duration::from_secs(retention))
}

async fn sweep(store: &dyn JobStore, plan: &SweepPlan, now: DateTime<Utc>) -> SweepReport {
    store
        .sweep(plan, now)
        .await
        .unwrap_or_else(|e| panic!("sweep at {now} failed: {e}"))
}

/// What a report says, as (resolved, refreshed, expired log entries, woken targets).
fn summary(report: &SweepReport) -> (u64, u64, u64, Vec<&str>) {
    (
        report.resolved,
        report.refreshed,
        report.expired_log_entries,
        report.targets.iter().map(TargetName::as_str).collect(),
    )
}

/// Leases everything due on `to` and acks it, so the log entries stay but no job is live.
async fn drain(store: &dyn JobStore, to: &str, now: DateTime<Utc>) {
    for job in lease_jobs(store, to, now).await {
        ack(store, job.id, now).await;
    }
}

/// `alert` with its `endsAt` moved to `ends` seconds from the contract's epoch.
fn ending(alert: &EnrichedAlert, ends: i64) -> EnrichedAlert {
    let mut alert = alert.clone();
    alert.alert = alert
        .alert
        .with_ends_at(Some(at(ends)))
        .expect("a valid endsAt");
    alert
}

async fn list(store: &dyn JobStore, filter: &DeadLetterFilter) -> Vec<DeadLetter> {
    let page = store
        .dead_letters(filter, None, 1_000)
        .await
        .unwrap_or_else(|e| panic!("dead_letters({filter:?}) failed: {e}"));
    page.entries
}

// === Checks ===

/// A new alert becomes a job with sequence 1 and attempt 1; a leased job is not leased twice.
pub async fn enqueue_then_lease(store: &dyn JobStore) {
    let a = firing("EnqueueLease");
    let (job, sequence, superseded) = enqueue_new(store, admit("t1", a.clone()), at(10)).await;
    assert_eq!(sequence, 1, "a new alert's first job must carry sequence 1");
    assert_eq!(superseded, None, "a new alert supersedes nothing");

    let leased = lease_jobs(store, "t1", at(11)).await;
    assert_eq!(ids(&leased), [job], "the enqueued job must be leasable");
    let j = &leased[0];
    assert_eq!(j.target.as_str(), "t1", "leased job's target");
    assert_eq!(*j.alert, a, "leased job's alert must be the one enqueued");
    assert_eq!(j.delivery.sequence, 1, "leased job's delivery sequence");
    assert_eq!(j.delivery.attempt, 1, "a first lease is attempt 1");
    assert_eq!(
        j.priority,
        Priority::Medium,
        "a firing alert without severity is medium"
    );
    assert_eq!(j.enqueued_at, at(10), "enqueued_at is the enqueue's `now`");

    assert!(
        lease_jobs(store, "t1", at(12)).await.is_empty(),
        "a job must not be leased again while its lease is held"
    );
    assert!(
        lease_jobs(store, "other", at(12)).await.is_empty(),
        "a lease returns only the asked target's jobs"
    );
}

/// A lease that expires unsettled (the lane crashed) makes the job leasable again.
pub async fn lease_expiry_makes_a_job_leasable_again(store: &dyn JobStore) {
    let (job, _, _) = enqueue_new(store, admit("t1", firing("Crash")), at(0)).await;
    let first = store
        .lease(&target("t1"), 10, Duration::from_secs(30), at(1))
        .await
        .expect("lease");
    assert_eq!(ids(&first.jobs), [job], "the job must be leasable");
    assert!(
        lease_jobs(store, "t1", at(30)).await.is_empty(),
        "the job must stay leased until its ttl has passed"
    );
    let again = lease_jobs(store, "t1", at(32)).await;
    assert_eq!(
        ids(&again),
        [job],
        "after the lease's ttl passed, the job must be leasable again"
    );
    assert_eq!(
        again[0].delivery.sequence, 1,
        "the sequence does not change"
    );
    assert!(
        again[0].delivery.attempt >= 1,
        "attempts start at 1, got {}",
        again[0].delivery.attempt
    );
}

/// The notification log: repetitions are duplicates, status changes are new jobs, a resolve is
/// delivered once, `bypass_log` always enqueues, and a refreshed `endsAt` is remembered.
pub async fn notification_log(store: &dyn JobStore) {
    let (first, seq, _) = enqueue_new(store, admit("t1", firing("Log")), at(10)).await;
    assert_eq!(seq, 1);
    ack(store, first, at(11)).await;

    let again = enqueue_one(store, admit("t1", firing("Log")), at(70)).await;
    assert_eq!(
        again,
        Admitted::Duplicate,
        "the same firing alert re-sent must be a duplicate"
    );
    assert!(
        lease_jobs(store, "t1", at(71)).await.is_empty(),
        "a duplicate must not make a job"
    );

    let (resolve, seq, superseded) = enqueue_new(store, admit("t1", resolved("Log")), at(80)).await;
    assert_eq!(seq, 2, "firing → resolved must be enqueued with sequence 2");
    assert_eq!(
        superseded, None,
        "the firing job was acked, nothing to supersede"
    );
    let leased = lease_jobs(store, "t1", at(81)).await;
    assert_eq!(ids(&leased), [resolve]);
    assert_eq!(leased[0].delivery.sequence, 2);
    assert_eq!(
        leased[0].priority,
        Priority::Low,
        "a resolve is low priority"
    );
    ack(store, resolve, at(82)).await;

    assert_eq!(
        enqueue_one(store, admit("t1", resolved("Log")), at(90)).await,
        Admitted::Duplicate,
        "a resolve re-sent must be a duplicate: a resolve is delivered once"
    );

    let (bypass, seq, _) =
        enqueue_new(store, admit("t1", resolved("Log")).bypassing_log(), at(100)).await;
    assert_eq!(seq, 3, "bypass_log enqueues with the next sequence");
    let leased = lease_jobs(store, "t1", at(101)).await;
    assert_eq!(
        ids(&leased),
        [bypass],
        "a bypassing admission must be leasable"
    );
    ack(store, bypass, at(102)).await;

    // A re-sent firing alert that extends its endsAt refreshes the log entry. Whether the store
    // kept the refresh shows later: a re-send with a defaulted startsAt merges only with an entry
    // that is still active at that time.
    let (job, _, _) = enqueue_new(store, admit("t2", alert("Refresh", None, 0, 300)), at(0)).await;
    ack(store, job, at(1)).await;
    assert_eq!(
        enqueue_one(store, admit("t2", alert("Refresh", None, 0, 500)), at(200)).await,
        Admitted::Duplicate,
        "a re-send with a later endsAt is a duplicate"
    );
    let defaulted = admit("t2", alert("Refresh", None, 400, 700)).with_starts_at_defaulted(true);
    assert_eq!(
        enqueue_one(store, defaulted, at(400)).await,
        Admitted::Duplicate,
        "the log entry's endsAt must have been refreshed to 500 by the re-send at 200, so a \
         re-send at 400 with a defaulted startsAt merges with it and is a duplicate"
    );

    // The whole batch is decided admission by admission, in order.
    let answers = enqueue(
        store,
        vec![
            admit("t3", firing("Batch")),
            admit("t3", firing("Batch")),
            admit("t3", resolved("Batch")),
        ],
        at(10),
    )
    .await;
    assert!(answers[0].is_enqueued(), "the first of a batch is new");
    assert_eq!(
        answers[1],
        Admitted::Duplicate,
        "a repeat within one batch is a duplicate of the earlier admission"
    );
    let Admitted::Enqueued {
        sequence,
        superseded,
        ..
    } = answers[2]
    else {
        panic!("a resolve after a firing in one batch must be enqueued");
    };
    assert_eq!(
        sequence, 2,
        "a status change within one batch gets sequence 2"
    );
    let Admitted::Enqueued { job: first, .. } = answers[0] else {
        unreachable!("checked above")
    };
    assert_eq!(
        superseded,
        Some(first),
        "the resolve supersedes the firing job of the same batch"
    );
}

/// `repeat_interval`: a firing alert is re-delivered once the interval has passed since the last
/// accepted delivery, never with no interval.
pub async fn repeat_interval(store: &dyn JobStore) {
    let hourly =
        |name: &str| Admission::new(target("t1"), firing(name), Some(Duration::from_secs(3_600)));
    let (job, _, _) = enqueue_new(store, hourly("Repeat"), at(0)).await;
    ack(store, job, at(1)).await;
    assert_eq!(
        enqueue_one(store, hourly("Repeat"), at(3_599)).await,
        Admitted::Duplicate,
        "a re-send before repeat_interval has passed is a duplicate"
    );
    let (_, seq, _) = enqueue_new(store, hourly("Repeat"), at(3_600)).await;
    assert_eq!(
        seq, 2,
        "once repeat_interval has passed, the firing alert is enqueued again with sequence 2"
    );

    let (job, _, _) = enqueue_new(store, admit("t1", firing("Never")), at(0)).await;
    ack(store, job, at(1)).await;
    assert_eq!(
        enqueue_one(store, admit("t1", firing("Never")), at(86_000)).await,
        Admitted::Duplicate,
        "without a repeat_interval a firing alert is never repeated"
    );
}

/// A newer state of the same (target, fingerprint) replaces a pending job.
pub async fn supersede_pending(store: &dyn JobStore) {
    let (old, _, _) = enqueue_new(store, admit("t1", firing("Sup")), at(0)).await;
    let (new, seq, superseded) = enqueue_new(store, admit("t1", resolved("Sup")), at(10)).await;
    assert_eq!(seq, 2);
    assert_eq!(
        superseded,
        Some(old),
        "the resolve must report the pending firing job it replaced"
    );
    let leased = lease_jobs(store, "t1", at(11)).await;
    assert_eq!(
        ids(&leased),
        [new],
        "only the newer state may be leased after a supersede"
    );
    assert_eq!(stats(store).await.depth(), 1, "the superseded job is gone");
    // Settling the superseded job is settling a job that no longer exists.
    store
        .ack(old, at(12))
        .await
        .expect("ack of a superseded job must succeed");
}

/// A newer state of a job that is leased waits until the old one is settled, and settling the
/// old one removes it, whichever way it is settled.
pub async fn supersede_leased(store: &dyn JobStore) {
    for (case, name) in [
        (0, "SupAck"),
        (1, "SupResched"),
        (2, "SupDead"),
        (3, "SupExpire"),
    ] {
        let (old, _, _) = enqueue_new(store, admit("t1", firing(name)), at(0)).await;
        let leased = lease_jobs(store, "t1", at(1)).await;
        assert_eq!(
            ids(&leased),
            [old],
            "{name}: the firing job must be leasable"
        );
        let (new, _, superseded) = enqueue_new(store, admit("t1", resolved(name)), at(10)).await;
        assert_eq!(
            superseded,
            Some(old),
            "{name}: the resolve must report the leased firing job it replaces"
        );
        assert!(
            lease_jobs(store, "t1", at(11)).await.is_empty(),
            "{name}: the newer state must not be leased while the older one is in flight"
        );
        let later = match case {
            0 => {
                ack(store, old, at(12)).await;
                at(12)
            }
            1 => {
                reschedule(store, old, Reschedule::new(at(12), true), at(12)).await;
                at(12)
            }
            2 => {
                let made = dead_letter(store, old, TargetKind::Webhook, at(12)).await;
                assert_eq!(
                    made, None,
                    "{name}: dead-lettering a superseded job removes it and makes no entry"
                );
                assert_eq!(stats(store).await.dead_letters, 0);
                at(12)
            }
            _ => at(62),
        };
        let leased = lease_jobs(store, "t1", later).await;
        assert_eq!(
            ids(&leased),
            [new],
            "{name}: once the old job is settled (or its lease expired), only the newer state \
             is leased; the old one must not come back"
        );
        ack(store, new, later).await;
        assert!(
            lease_jobs(store, "t1", at(1_000)).await.is_empty(),
            "{name}: the superseded job must be gone for good"
        );
        assert_eq!(stats(store).await.depth(), 0, "{name}: no live jobs remain");
    }
}

/// Jobs of different targets, and of different fingerprints on one target, do not interact.
pub async fn targets_and_fingerprints_are_independent(store: &dyn JobStore) {
    let answers = enqueue(
        store,
        vec![
            admit("ta", firing("Indep")),
            admit("tb", firing("Indep")),
            admit("ta", firing("Other")),
        ],
        at(0),
    )
    .await;
    for (i, answer) in answers.iter().enumerate() {
        let Admitted::Enqueued {
            sequence,
            superseded,
            ..
        } = answer
        else {
            panic!("admission {i}: a new (target, fingerprint) must be enqueued");
        };
        assert_eq!(
            *sequence, 1,
            "admission {i}: each (target, fingerprint) starts at 1"
        );
        assert_eq!(*superseded, None, "admission {i}: nothing to supersede");
    }
    let a = lease(store, "ta", 1, at(1)).await.jobs;
    assert_eq!(a.len(), 1);
    let a2 = lease_jobs(store, "ta", at(1)).await;
    assert_eq!(
        a2.len(),
        1,
        "a leased job must not block another fingerprint of the same target"
    );
    let b = lease_jobs(store, "tb", at(1)).await;
    assert_eq!(
        b.len(),
        1,
        "a job leased on one target must not block the same alert on another"
    );
    assert_eq!(b[0].target.as_str(), "tb");
    let (_, _, superseded) = enqueue_new(store, admit("tb", resolved("Indep")), at(10)).await;
    assert_eq!(
        superseded,
        b.first().map(|j| j.id),
        "a resolve on tb supersedes tb's job only"
    );
    ack(store, a[0].id, at(11)).await;
    ack(store, a2[0].id, at(11)).await;
    let st = stats(store).await;
    assert_eq!(
        st.by_target,
        [TargetQueueStats {
            target: "tb".to_owned(),
            pending: 1,
            leased: 1,
        }],
        "ta is empty; tb has its leased firing job and its pending resolve"
    );
}

/// `ack` removes a job; acking an unknown or already settled job succeeds and does nothing.
pub async fn ack_removes(store: &dyn JobStore) {
    let (job, _, _) = enqueue_new(store, admit("t1", firing("Ack")), at(0)).await;
    lease_jobs(store, "t1", at(1)).await;
    ack(store, job, at(2)).await;
    assert!(
        lease_jobs(store, "t1", at(1_000)).await.is_empty(),
        "an acked job must never be leased again"
    );
    assert_eq!(stats(store).await.depth(), 0, "an acked job is removed");
    ack(store, job, at(3)).await;
    ack(store, JobId(u64::MAX), at(3)).await;
    store
        .reschedule(JobId(u64::MAX), Reschedule::new(at(4), true), at(3))
        .await
        .expect("rescheduling an unknown job must succeed and do nothing");
    let made = store
        .dead_letter(
            JobId(u64::MAX),
            TargetKind::Slack,
            DeadReason::Permanent,
            None,
            at(3),
        )
        .await
        .expect("dead-lettering an unknown job must succeed and do nothing");
    assert_eq!(made, None, "no entry is made for an unknown job");
    assert_eq!(stats(store).await, QueueStats::default());
}

/// `reschedule` hides a job until `not_before`, counts the attempt only when asked, and
/// `Lease::next_due` reports the earliest not-yet-due job.
pub async fn reschedule_delays_and_counts_attempts(store: &dyn JobStore) {
    let (a, _, _) = enqueue_new(store, admit("t1", firing("ReschedA")), at(0)).await;
    let (b, _, _) = enqueue_new(store, admit("t1", firing("ReschedB")), at(0)).await;
    let leased = lease_jobs(store, "t1", at(1)).await;
    assert_eq!(leased.len(), 2);
    reschedule(
        store,
        a,
        Reschedule::new(at(100), true).with_error(transient()),
        at(2),
    )
    .await;
    reschedule(store, b, Reschedule::new(at(50), false), at(2)).await;

    let none = lease(store, "t1", 10, at(3)).await;
    assert!(
        none.jobs.is_empty(),
        "rescheduled jobs are hidden until not_before"
    );
    assert_eq!(
        none.next_due,
        Some(at(50)),
        "next_due must report the earliest not-yet-due job"
    );
    assert!(
        lease(store, "t1", 10, at(49)).await.jobs.is_empty(),
        "still hidden just before not_before"
    );

    let due_b = lease(store, "t1", 10, at(50)).await;
    assert_eq!(ids(&due_b.jobs), [b], "b is due at its not_before");
    assert_eq!(
        due_b.jobs[0].delivery.attempt, 1,
        "consume_attempt: false must not count the attempt"
    );
    assert_eq!(due_b.next_due, Some(at(100)), "a is due next, at 100");

    let due_a = lease_jobs(store, "t1", at(100)).await;
    assert_eq!(ids(&due_a), [a]);
    assert_eq!(
        due_a[0].delivery.attempt, 2,
        "consume_attempt: true makes the next lease attempt 2"
    );
    assert_eq!(
        due_a[0].delivery.sequence, 1,
        "rescheduling keeps the sequence"
    );
    reschedule(store, a, Reschedule::new(at(100), false), at(101)).await;
    let again = lease_jobs(store, "t1", at(101)).await;
    assert_eq!(
        again[0].delivery.attempt, 2,
        "a gate delay (consume_attempt: false) keeps the attempt number"
    );
    assert_eq!(lease(store, "t1", 10, at(101)).await.next_due, None);
}

/// A lease returns at most `n` jobs, due ones only, oldest due first within a priority.
pub async fn lease_limit_and_due_order(store: &dyn JobStore) {
    let mut jobs = Vec::new();
    for i in 0..5 {
        let (job, _, _) =
            enqueue_new(store, admit("t1", firing(&format!("Limit{i}"))), at(i)).await;
        jobs.push(job);
    }
    let first = lease(store, "t1", 2, at(10)).await.jobs;
    assert_eq!(
        ids(&first),
        jobs[..2],
        "a lease of 2 returns the 2 oldest due jobs, oldest first"
    );
    let rest = lease(store, "t1", 10, at(10)).await.jobs;
    assert_eq!(ids(&rest), jobs[2..], "then the remaining 3, oldest first");
    assert!(lease(store, "t1", 10, at(10)).await.jobs.is_empty());

    // A job rescheduled to 30 is due after one enqueued at 20.
    reschedule(store, jobs[0], Reschedule::new(at(30), false), at(11)).await;
    let (late, _, _) = enqueue_new(store, admit("t1", firing("Late")), at(20)).await;
    let order = lease(store, "t1", 10, at(40)).await.jobs;
    assert_eq!(
        ids(&order),
        [late, jobs[0]],
        "within a priority, the job due earlier is leased first"
    );
}

/// Priorities are leased with their shares: of 16, high 12, medium 3, low 1 while all wait; an
/// empty level's share goes to the others.
pub async fn priority_shares(store: &dyn JobStore) {
    async fn fill(store: &dyn JobStore, to: &str, levels: &[(Option<&str>, usize)]) {
        let mut t = 0;
        for (severity, count) in levels {
            for i in 0..*count {
                let name = format!("P{}{i}", severity.unwrap_or("medium"));
                let admission = admit(to, alert(&name, *severity, 0, 86_400));
                enqueue_new(store, admission, at(t)).await;
                t += 1;
            }
        }
    }
    fn count(jobs: &[LeasedJob], p: Priority) -> usize {
        jobs.iter().filter(|j| j.priority == p).count()
    }
    fn counts(jobs: &[LeasedJob]) -> [usize; 3] {
        Priority::ALL.map(|p| count(jobs, p))
    }

    fill(
        store,
        "all",
        &[(Some("critical"), 20), (None, 20), (Some("info"), 20)],
    )
    .await;
    let jobs = lease(store, "all", 16, at(1_000)).await.jobs;
    assert_eq!(
        counts(&jobs),
        [12, 3, 1],
        "with all levels waiting, 16 leases give high 12, medium 3, low 1"
    );
    for p in Priority::ALL {
        let level: Vec<_> = jobs.iter().filter(|j| j.priority == p).collect();
        assert!(
            level
                .windows(2)
                .all(|w| w[0].enqueued_at < w[1].enqueued_at),
            "within {}, jobs must be leased oldest first",
            p.as_str()
        );
    }
    let high: Vec<_> = jobs
        .iter()
        .filter(|j| j.priority == Priority::High)
        .collect();
    assert_eq!(
        high.first().map(|j| j.enqueued_at),
        Some(at(0)),
        "the oldest high job comes first"
    );
    let next = lease(store, "all", 16, at(1_000)).await.jobs;
    let [h, m, l] = counts(&next);
    assert!(
        h == 8 && h + m + l == 16 && m >= 3 && l >= 1,
        "the next 16 take the 8 remaining high jobs, and medium and low share the rest, each at \
         least its share; got high {h}, medium {m}, low {l}"
    );

    fill(store, "no-high", &[(None, 20), (Some("info"), 20)]).await;
    let jobs = lease(store, "no-high", 16, at(1_000)).await.jobs;
    let [h, m, l] = counts(&jobs);
    assert!(
        h == 0 && m + l == 16 && m >= 3 && l >= 1,
        "with no high jobs, 16 leases go to medium and low (each at least its share); got \
         high {h}, medium {m}, low {l}"
    );

    fill(
        store,
        "no-medium",
        &[(Some("critical"), 20), (Some("info"), 20)],
    )
    .await;
    let jobs = lease(store, "no-medium", 16, at(1_000)).await.jobs;
    let [h, m, l] = counts(&jobs);
    assert!(
        m == 0 && h + l == 16 && h >= 12 && l >= 1,
        "with no medium jobs, 16 leases go to high and low (each at least its share); got \
         high {h}, medium {m}, low {l}"
    );

    fill(store, "low-only", &[(Some("info"), 20)]).await;
    let jobs = lease(store, "low-only", 16, at(1_000)).await.jobs;
    assert_eq!(counts(&jobs), [0, 0, 16], "a lone level gets every lease");
}

/// `max_jobs`: a batch that would exceed it is refused whole and persists nothing; duplicates do
/// not count against it.
pub async fn max_jobs_bound(store: &dyn JobStore) {
    // Learn the bound from the store's own error, filling in batches.
    let mut n = 0_u64;
    let max_jobs = loop {
        assert!(
            n <= MAX_FILL,
            "the store accepted more than {MAX_FILL} jobs; run the contract with a smaller max_jobs"
        );
        let batch: Vec<_> = (n..n + 50)
            .map(|i| admit("full", firing(&format!("Fill{i}"))))
            .collect();
        match store.enqueue_batch(batch, at(0)).await {
            Ok(_) => n += 50,
            Err(JobStoreError::Full { max_jobs }) => break max_jobs,
            Err(e) => panic!("filling the store failed: {e}"),
        }
    };
    let depth = stats(store).await.depth();
    assert!(
        depth <= max_jobs && depth + 50 > max_jobs,
        "a batch was refused as full at depth {depth}, but max_jobs is {max_jobs}"
    );
    assert_eq!(depth, n, "the refused batch must have persisted nothing");
    while n < max_jobs {
        enqueue_new(store, admit("full", firing(&format!("Fill{n}"))), at(0)).await;
        n += 1;
    }
    let before = stats(store).await;
    assert_eq!(before.depth(), max_jobs);

    // One duplicate and one new alert: refused whole.
    let batch = vec![
        admit("full", firing("Fill0")),
        admit("full", firing("Overflow")),
    ];
    let refused = store.enqueue_batch(batch, at(1)).await;
    assert_eq!(
        refused.err(),
        Some(JobStoreError::Full { max_jobs }),
        "a batch that would exceed max_jobs must fail with Full"
    );
    assert_eq!(
        stats(store).await,
        before,
        "a refused batch must change nothing"
    );

    // Only duplicates: accepted even when full.
    let dups = enqueue(
        store,
        vec![
            admit("full", firing("Fill0")),
            admit("full", firing("Fill1")),
        ],
        at(2),
    )
    .await;
    assert!(
        dups.iter().all(|a| *a == Admitted::Duplicate),
        "re-sent alerts are duplicates, got {dups:?}"
    );

    // Make room: the refused alert's log entry must not have been written, so it is new.
    let leased = lease(store, "full", 1, at(3)).await.jobs;
    ack(store, leased[0].id, at(3)).await;
    let (_, seq, _) = enqueue_new(store, admit("full", firing("Overflow")), at(4)).await;
    assert_eq!(
        seq, 1,
        "the refused batch must not have updated the notification log"
    );
    assert!(
        store
            .enqueue_batch(vec![admit("full", firing("Overflow2"))], at(5))
            .await
            .is_err(),
        "full again"
    );
}

/// Dead-lettering moves a job to the dead-letter queue, which lists oldest first with a cursor
/// and filters by target, kind and time.
pub async fn dead_letter_queue(store: &dyn JobStore) {
    let plan = [
        ("dl-a", "DlOne", TargetKind::Webhook, 1),
        ("dl-a", "DlTwo", TargetKind::Webhook, 2),
        ("dl-b", "DlThree", TargetKind::Slack, 3),
        ("dl-a", "DlFour", TargetKind::Webhook, 4),
    ];
    let mut made = Vec::new();
    for (to, name, kind, t) in plan {
        let (job, _, _) = enqueue_new(store, admit(to, firing(name)), at(0)).await;
        lease_jobs(store, to, at(0)).await;
        if t == 2 {
            // A consumed attempt before dying: the entry says 2 attempts.
            let how = Reschedule::new(at(0), true).with_error(transient());
            reschedule(store, job, how, at(0)).await;
            let again = lease_jobs(store, to, at(0)).await;
            assert_eq!(again[0].delivery.attempt, 2);
        }
        // Without an error of its own, the entry keeps the one the job was rescheduled with.
        let error = (t != 2).then(transient);
        let id = store
            .dead_letter(job, kind, DeadReason::Exhausted, error, at(t))
            .await
            .unwrap_or_else(|e| panic!("dead_letter of job {job} failed: {e}"))
            .unwrap_or_else(|| panic!("dead-lettering live job {job} must make an entry"));
        assert_eq!(
            id.0.len(),
            36,
            "dead-letter ids are canonical hyphenated UUIDs, got {id}"
        );
        let hyphens: Vec<_> = id.0.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(hyphens, [8, 13, 18, 23], "hyphenated UUID form, got {id}");
        assert!(
            id.0.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            "hex digits only, got {id}"
        );
        assert_eq!(&id.0[14..15], "7", "dead-letter ids are UUIDv7, got {id}");
        made.push(id);
    }
    assert!(
        made.windows(2).all(|w| w[0] < w[1]),
        "dead-letter ids made one after another must increase: {made:?}"
    );
    let st = stats(store).await;
    assert_eq!(st.dead_letters, 4, "stats count dead letters");
    assert_eq!(st.depth(), 0, "dead-lettered jobs are no longer live");
    assert!(lease_jobs(store, "dl-a", at(100)).await.is_empty());

    let all = list(store, &DeadLetterFilter::default()).await;
    let got: Vec<_> = all.iter().map(|d| d.id.clone()).collect();
    assert_eq!(got, made, "an empty filter lists every entry, oldest first");
    let two = &all[1];
    assert_eq!(two.target.as_str(), "dl-a");
    assert_eq!(two.kind, TargetKind::Webhook);
    assert_eq!(two.alert, firing("DlTwo"), "the entry holds the alert");
    assert_eq!(two.reason, DeadReason::Exhausted);
    assert_eq!(
        two.last_error,
        Some(transient()),
        "the entry holds the last error"
    );
    assert_eq!(two.attempts, 2, "attempts made");
    assert_eq!(two.sequence, 1);
    assert_eq!(two.enqueued_at, at(0));
    assert_eq!(two.dead_at, at(2));

    // Pages of 3, then 1, then the end.
    let page = store
        .dead_letters(&DeadLetterFilter::default(), None, 3)
        .await
        .expect("dead_letters");
    assert_eq!(
        page.entries.len(),
        3,
        "a page holds at most `limit` entries"
    );
    let cursor = page
        .next_cursor
        .expect("a page with more entries after it must give a cursor");
    let page2 = store
        .dead_letters(&DeadLetterFilter::default(), Some(&cursor), 3)
        .await
        .expect("dead_letters");
    let ids2: Vec<_> = page2.entries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids2, made[3..], "the cursor continues after the last entry");
    assert_eq!(page2.next_cursor, None, "the last page has no cursor");
    let exact = store
        .dead_letters(&DeadLetterFilter::default(), None, 4)
        .await
        .expect("dead_letters");
    assert_eq!(
        exact.next_cursor, None,
        "a page that reaches the end has no cursor"
    );

    let cases = [
        (filter_of(Some("dl-b"), None, None, None), vec![2]),
        (
            filter_of(None, Some(TargetKind::Webhook), None, None),
            vec![0, 1, 3],
        ),
        (filter_of(None, None, Some(at(2)), None), vec![1, 2, 3]),
        (filter_of(None, None, None, Some(at(3))), vec![0, 1]),
        (
            filter_of(Some("dl-a"), None, Some(at(2)), Some(at(4))),
            vec![1],
        ),
    ];
    for (filter, want) in cases {
        let got: Vec<_> = list(store, &filter)
            .await
            .into_iter()
            .map(|d| d.id)
            .collect();
        let want: Vec<_> = want.iter().map(|&i| made[i].clone()).collect();
        assert_eq!(got, want, "filter {filter:?}");
    }
    // A filtered page's cursor continues within the filter.
    let webhook = filter_of(None, Some(TargetKind::Webhook), None, None);
    let page = store
        .dead_letters(&webhook, None, 1)
        .await
        .expect("dead_letters");
    let page = store
        .dead_letters(&webhook, page.next_cursor.as_ref(), 1)
        .await
        .expect("dead_letters");
    let page = store
        .dead_letters(&webhook, page.next_cursor.as_ref(), 5)
        .await
        .expect("dead_letters");
    let ids3: Vec<_> = page.entries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(
        ids3,
        [made[3].clone()],
        "filtered pagination skips other entries"
    );
}

/// `replay` makes a fresh job of a dead letter unless a newer state was accepted since; `purge`
/// removes an entry.
pub async fn replay_and_purge(store: &dyn JobStore) {
    let mut entries = Vec::new();
    for name in ["ReplayA", "ReplayB", "ReplayC"] {
        let (job, _, _) = enqueue_new(store, admit("t1", firing(name)), at(0)).await;
        lease_jobs(store, "t1", at(0)).await;
        reschedule(store, job, Reschedule::new(at(0), true), at(0)).await;
        lease_jobs(store, "t1", at(0)).await;
        let id = dead_letter(store, job, TargetKind::Webhook, at(1))
            .await
            .expect("an entry");
        entries.push((job, id));
    }

    let (old_job, id) = &entries[0];
    let replayed = store.replay(id, at(10)).await.expect("replay of an entry");
    assert_ne!(replayed, *old_job, "a replay makes a new job");
    let leased = lease_jobs(store, "t1", at(10)).await;
    assert_eq!(
        ids(&leased),
        [replayed],
        "a replayed job is leasable at once"
    );
    assert_eq!(
        leased[0].delivery.attempt, 1,
        "a replay starts from attempt 1"
    );
    assert_eq!(
        leased[0].delivery.sequence, 1,
        "a replay keeps the entry's sequence"
    );
    assert_eq!(
        *leased[0].alert,
        firing("ReplayA"),
        "a replay carries the same alert"
    );
    assert_eq!(
        stats(store).await.dead_letters,
        2,
        "a replayed entry leaves the queue"
    );
    assert!(
        list(store, &DeadLetterFilter::default())
            .await
            .iter()
            .all(|d| d.id != *id),
        "a replayed entry is no longer listed"
    );
    assert_eq!(
        store.replay(id, at(11)).await,
        Err(JobStoreError::NotFound),
        "replaying an entry twice: the second time it is gone"
    );

    // ReplayB's alert resolved after it died, and the resolve was delivered: replaying the older
    // firing state is refused, though no job of it is live any more.
    let (resolve, _, _) = enqueue_new(store, admit("t1", resolved("ReplayB")), at(20)).await;
    let leased = lease_jobs(store, "t1", at(20)).await;
    assert_eq!(ids(&leased), [resolve]);
    ack(store, resolve, at(20)).await;
    assert_eq!(
        store.replay(&entries[1].1, at(21)).await,
        Err(JobStoreError::Superseded),
        "an entry whose (target, fingerprint) has a newer accepted state cannot be replayed"
    );
    assert_eq!(
        stats(store).await.dead_letters,
        2,
        "a refused replay keeps the entry"
    );

    store.purge(&entries[2].1).await.expect("purge of an entry");
    assert_eq!(
        store.purge(&entries[2].1).await,
        Err(JobStoreError::NotFound),
        "purging an entry twice: the second time it is gone"
    );
    let unknown = DeadLetterId("01890a5d-ac96-774b-bcce-b302099a8057".to_owned());
    assert_eq!(store.purge(&unknown).await, Err(JobStoreError::NotFound));
    assert_eq!(
        store.replay(&unknown, at(30)).await,
        Err(JobStoreError::NotFound)
    );
    let left: Vec<_> = list(store, &DeadLetterFilter::default())
        .await
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        left,
        [entries[1].1.clone()],
        "only the superseded entry is left"
    );
}

/// `stats` counts live jobs by priority and by target (pending and leased), sorted by name.
pub async fn stats_by_priority_and_target(store: &dyn JobStore) {
    assert_eq!(
        stats(store).await,
        QueueStats::default(),
        "a fresh store is empty"
    );
    enqueue(
        store,
        vec![
            admit("s-b", alert("StatLow", Some("info"), 0, 86_400)),
            admit("s-a", alert("StatHigh1", Some("critical"), 0, 86_400)),
            admit("s-a", alert("StatHigh2", Some("critical"), 0, 86_400)),
            admit("s-a", firing("StatMedium")),
        ],
        at(0),
    )
    .await;
    let leased = lease(store, "s-a", 1, at(1)).await.jobs;
    assert_eq!(leased[0].priority, Priority::High, "high is leased first");
    let st = stats(store).await;
    assert_eq!(
        st.by_priority,
        [2, 1, 1],
        "live jobs by priority: high, medium, low"
    );
    assert_eq!(st.depth(), 4);
    assert_eq!(
        st.by_target,
        [
            TargetQueueStats {
                target: "s-a".to_owned(),
                pending: 2,
                leased: 1,
            },
            TargetQueueStats {
                target: "s-b".to_owned(),
                pending: 1,
                leased: 0,
            },
        ],
        "live jobs by target, sorted by name"
    );
    assert_eq!(st.dead_letters, 0);
}

/// Auto-resolve: a firing entry whose effective `endsAt` passed without a refresh becomes one
/// resolve job (the last accepted alert, sequence + 1, low priority); a refreshed alert waits for
/// its new `endsAt`; a target outside the plan is skipped; a resolve is made once.
pub async fn auto_resolve(store: &dyn JobStore) {
    let gone = alert("AutoGone", Some("critical"), 0, 300);
    enqueue_new(store, admit("t1", gone.clone()), at(0)).await;
    let kept = alert("AutoKept", None, 0, 300);
    enqueue_new(store, admit("t1", kept.clone()), at(0)).await;
    enqueue_new(store, admit("off", alert("AutoOff", None, 0, 300)), at(0)).await;
    drain(store, "t1", at(1)).await;
    drain(store, "off", at(1)).await;
    // AutoKept is re-sent with a later endsAt and a changed annotation: a duplicate that
    // refreshes the entry's endsAt, while the accepted alert stays the one re-sent later.
    let mut resent = ending(&kept, 600);
    resent.alert = resent
        .alert
        .with_annotations([("summary".to_owned(), "changed".to_owned())].into());
    assert_eq!(
        enqueue_one(store, admit("t1", resent), at(200)).await,
        Admitted::Duplicate,
        "a re-send with a later endsAt is a duplicate"
    );

    let plan = plan(&[("t1", None)], 0);
    assert_eq!(
        summary(&sweep(store, &plan, at(299)).await),
        (0, 0, 0, vec![]),
        "nothing has ended at 299"
    );
    let report = sweep(store, &plan, at(400)).await;
    assert_eq!(
        summary(&report),
        (1, 0, 0, vec!["t1"]),
        "at 400 only AutoGone (ended at 300, not refreshed) resolves; AutoKept was refreshed to \
         600, and `off` is not in the plan"
    );
    let leased = lease_jobs(store, "t1", at(400)).await;
    assert_eq!(leased.len(), 1, "one resolve job, got {leased:?}");
    let job = &leased[0];
    assert_eq!(
        *job.alert,
        ending(&gone, 300),
        "the resolve carries the last accepted alert with the entry's endsAt"
    );
    assert_eq!(job.alert.alert.status_at(at(400)), AlertStatus::Resolved);
    assert_eq!(
        job.delivery.sequence, 2,
        "a resolve gets the entry's sequence + 1"
    );
    assert_eq!(
        job.priority,
        Priority::Low,
        "a resolve is low priority, whatever the severity"
    );
    assert_eq!(
        job.enqueued_at,
        at(400),
        "the resolve is enqueued at the sweep's `now`"
    );
    assert!(
        lease_jobs(store, "off", at(400)).await.is_empty(),
        "a target outside the plan gets no resolve"
    );

    assert_eq!(
        summary(&sweep(store, &plan, at(401)).await),
        (0, 0, 0, vec![]),
        "a second sweep makes nothing while the resolve is queued"
    );
    ack(store, job.id, at(402)).await;
    assert_eq!(
        summary(&sweep(store, &plan, at(500)).await),
        (0, 0, 0, vec![]),
        "a resolve is made once: the entry is resolved now"
    );
    assert_eq!(
        enqueue_one(store, admit("t1", gone.clone()), at(501)).await,
        Admitted::Duplicate,
        "the entry records the resolve: the same resolved alert re-sent is a duplicate"
    );

    let report = sweep(store, &plan, at(700)).await;
    assert_eq!(
        summary(&report),
        (1, 0, 0, vec!["t1"]),
        "AutoKept resolves once its refreshed endsAt (600) has passed"
    );
    let leased = lease_jobs(store, "t1", at(700)).await;
    assert_eq!(ids(&leased).len(), 1);
    assert_eq!(
        *leased[0].alert,
        ending(&kept, 600),
        "the resolve uses the refreshed endsAt and the accepted alert (not the re-send's \
         annotations)"
    );
    assert_eq!(leased[0].delivery.sequence, 2);

    // A later firing is a new state again after the auto-resolve.
    let (_, seq, _) = enqueue_new(store, admit("t1", ending(&gone, 86_400)), at(800)).await;
    assert_eq!(
        seq, 3,
        "firing after an auto-resolve gets the next sequence"
    );
}

/// The auto-resolve supersedes a pending firing job exactly as `enqueue_batch` does, and waits
/// behind a leased one.
pub async fn auto_resolve_supersedes(store: &dyn JobStore) {
    let (old, _, _) = enqueue_new(store, admit("t1", alert("AutoSup", None, 0, 300)), at(0)).await;
    let plan = plan(&[("t1", None), ("t2", None)], 0);
    assert_eq!(
        summary(&sweep(store, &plan, at(400)).await),
        (1, 0, 0, vec!["t1"])
    );
    assert_eq!(
        stats(store).await.depth(),
        1,
        "the resolve replaced the pending firing job"
    );
    let leased = lease_jobs(store, "t1", at(400)).await;
    assert_eq!(leased.len(), 1);
    assert_ne!(leased[0].id, old, "only the resolve is leased");
    assert_eq!(leased[0].delivery.sequence, 2);
    assert_eq!(
        leased[0].alert.alert.status_at(at(400)),
        AlertStatus::Resolved
    );
    ack(store, old, at(401)).await;
    ack(store, leased[0].id, at(401)).await;

    // In flight: the firing job is leased when its endsAt passes.
    let (firing_job, _, _) = enqueue_new(
        store,
        admit("t2", alert("AutoSupLeased", None, 0, 300)),
        at(0),
    )
    .await;
    let first = store
        .lease(&target("t2"), 10, Duration::from_secs(3_600), at(1))
        .await
        .expect("lease");
    assert_eq!(ids(&first.jobs), [firing_job]);
    assert_eq!(
        summary(&sweep(store, &plan, at(400)).await),
        (1, 0, 0, vec!["t2"])
    );
    assert!(
        lease_jobs(store, "t2", at(401)).await.is_empty(),
        "the resolve must wait while the firing job is in flight"
    );
    assert_eq!(
        summary(&sweep(store, &plan, at(402)).await),
        (0, 0, 0, vec![]),
        "nothing more to resolve"
    );
    ack(store, firing_job, at(403)).await;
    let leased = lease_jobs(store, "t2", at(403)).await;
    assert_eq!(
        leased.len(),
        1,
        "once the firing job is settled, the resolve is leased"
    );
    assert_eq!(leased[0].delivery.sequence, 2);
    ack(store, leased[0].id, at(404)).await;
    assert_eq!(stats(store).await.depth(), 0);
}

/// Refresh forwarding: a target with a refresh interval gets its firing alerts re-forwarded once
/// the interval has passed since the last accepted job, never while a job of the alert is live;
/// a target without one never.
pub async fn refresh_forwarding(store: &dyn JobStore) {
    let fwd = alert("Fwd", Some("critical"), 0, 3_600);
    for to in ["am", "plain"] {
        enqueue_new(store, admit(to, fwd.clone()), at(0)).await;
    }
    let plan = plan(&[("am", Some(60)), ("plain", None)], 0);
    assert_eq!(
        summary(&sweep(store, &plan, at(100)).await),
        (0, 0, 0, vec![]),
        "no refresh while the first job is still pending"
    );
    let leased = lease_jobs(store, "am", at(100)).await;
    assert_eq!(
        summary(&sweep(store, &plan, at(100)).await),
        (0, 0, 0, vec![]),
        "no refresh while the first job is leased"
    );
    ack(store, leased[0].id, at(100)).await;
    drain(store, "plain", at(100)).await;

    let report = sweep(store, &plan, at(100)).await;
    assert_eq!(
        summary(&report),
        (0, 1, 0, vec!["am"]),
        "once the interval has passed and no job is live, am gets one refresh; plain none"
    );
    let leased = lease_jobs(store, "am", at(100)).await;
    assert_eq!(leased.len(), 1);
    assert_eq!(
        *leased[0].alert, fwd,
        "a refresh carries the accepted alert"
    );
    assert_eq!(
        leased[0].delivery.sequence, 2,
        "a refresh gets the next sequence"
    );
    assert_eq!(
        leased[0].priority,
        Priority::High,
        "a refresh keeps the firing priority"
    );
    assert!(lease_jobs(store, "plain", at(100)).await.is_empty());
    ack(store, leased[0].id, at(101)).await;

    assert_eq!(
        summary(&sweep(store, &plan, at(159)).await),
        (0, 0, 0, vec![]),
        "the refresh restarted the interval: nothing before 160"
    );
    // A re-send extends the entry's endsAt; the next refresh forwards the extended one.
    assert_eq!(
        enqueue_one(store, admit("am", ending(&fwd, 7_200)), at(150)).await,
        Admitted::Duplicate
    );
    assert_eq!(
        summary(&sweep(store, &plan, at(160)).await),
        (0, 1, 0, vec!["am"])
    );
    let leased = lease_jobs(store, "am", at(160)).await;
    assert_eq!(leased.len(), 1);
    assert_eq!(
        *leased[0].alert,
        ending(&fwd, 7_200),
        "the refresh carries the entry's current endsAt"
    );
    assert_eq!(leased[0].delivery.sequence, 3);
    ack(store, leased[0].id, at(160)).await;

    // Past its endsAt the alert resolves instead of refreshing.
    let report = sweep(store, &plan, at(7_200)).await;
    assert_eq!(summary(&report), (2, 0, 0, vec!["am", "plain"]));
}

/// `max_jobs_per_pass` bounds a pass: it makes as many jobs as fit, longest overdue first, and
/// the next pass makes the rest.
pub async fn sweep_is_bounded_per_pass(store: &dyn JobStore) {
    for (name, ends) in [("BoundC", 330), ("BoundA", 310), ("BoundB", 320)] {
        enqueue_new(store, admit("t1", alert(name, None, 0, ends)), at(0)).await;
    }
    drain(store, "t1", at(1)).await;
    let plan = plan(&[("t1", None)], 0).with_max_jobs_per_pass(2);
    assert_eq!(
        summary(&sweep(store, &plan, at(400)).await),
        (2, 0, 0, vec!["t1"]),
        "a pass makes at most max_jobs_per_pass jobs"
    );
    let mut names: Vec<_> = lease_jobs(store, "t1", at(400))
        .await
        .iter()
        .map(|j| j.alert.alert.name().unwrap_or("?").to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["BoundA", "BoundB"], "the longest overdue go first");
    assert_eq!(
        summary(&sweep(store, &plan, at(401)).await),
        (1, 0, 0, vec!["t1"]),
        "the next pass makes the rest"
    );
    assert_eq!(
        summary(&sweep(store, &plan, at(402)).await),
        (0, 0, 0, vec![])
    );
}

/// Log retention: resolved entries, and firing ones past their `endsAt`, expire once
/// `accepted_at + retention` has passed (and `endsAt + retention` for firing ones); zero keeps
/// them forever. An expired entry is forgotten: the alert is new again.
pub async fn log_retention(store: &dyn JobStore) {
    enqueue_new(store, admit("t1", firing("RetResolved")), at(0)).await;
    enqueue_new(store, admit("t1", resolved("RetResolved")), at(10)).await;
    drain(store, "t1", at(10)).await;
    // Entries of a target outside the plan: never resolved by the sweep, but they expire.
    enqueue_new(store, admit("gone", alert("RetEnded", None, 0, 500)), at(0)).await;
    enqueue_new(
        store,
        admit("gone", alert("RetLong", None, 0, 86_400)),
        at(0),
    )
    .await;
    drain(store, "gone", at(10)).await;

    let forever = plan(&[("t1", None)], 0);
    assert_eq!(
        summary(&sweep(store, &forever, at(1_000_000)).await),
        (0, 0, 0, vec![]),
        "a zero retention keeps every entry"
    );
    let plan = plan(&[("t1", None)], 1_000);
    assert_eq!(
        summary(&sweep(store, &plan, at(1_009)).await),
        (0, 0, 0, vec![]),
        "the resolved entry was accepted at 10: kept until 1010"
    );
    assert_eq!(
        summary(&sweep(store, &plan, at(1_010)).await),
        (0, 0, 1, vec![]),
        "at 1010 the resolved entry expires; the firing ones ended too recently"
    );
    assert_eq!(
        summary(&sweep(store, &plan, at(1_499)).await),
        (0, 0, 0, vec![])
    );
    assert_eq!(
        summary(&sweep(store, &plan, at(1_500)).await),
        (0, 0, 1, vec![]),
        "at 1500 the firing entry that ended at 500 expires; the one ending at 86400 stays"
    );

    let (_, seq, _) = enqueue_new(store, admit("t1", resolved("RetResolved")), at(1_600)).await;
    assert_eq!(
        seq, 1,
        "an expired entry is forgotten: the alert is new again"
    );
    let (_, seq, _) = enqueue_new(
        store,
        admit("gone", alert("RetEnded", None, 0, 500)),
        at(1_600),
    )
    .await;
    assert_eq!(seq, 1, "the ended firing entry was forgotten too");
    assert_eq!(
        enqueue_one(
            store,
            admit("gone", alert("RetLong", None, 0, 86_400)),
            at(1_600)
        )
        .await,
        Admitted::Duplicate,
        "a firing entry still within its endsAt is kept"
    );
}

/// `dead_letter_target` moves every live job of a target, leased ones included, to the
/// dead-letter queue in one call; other targets are untouched, and settling a moved job later is
/// a no-op.
pub async fn dead_letter_target(store: &dyn JobStore) {
    let (a, _, _) = enqueue_new(store, admit("gone", firing("MoveA")), at(0)).await;
    let (b, _, _) = enqueue_new(store, admit("gone", firing("MoveB")), at(0)).await;
    let (c, _, _) = enqueue_new(store, admit("gone", firing("MoveC")), at(0)).await;
    let (d, _, _) = enqueue_new(store, admit("gone", firing("MoveD")), at(0)).await;
    let (stay, _, _) = enqueue_new(store, admit("stay", firing("MoveA")), at(0)).await;
    let leased = lease_jobs(store, "gone", at(1)).await;
    assert_eq!(leased.len(), 4);
    // a stays leased (attempt 1 in flight); b failed once and waits; c was gated and waits; d
    // stays leased while its resolve, which supersedes it, waits.
    let how = Reschedule::new(at(1_000), true).with_error(transient());
    reschedule(store, b, how, at(2)).await;
    reschedule(store, c, Reschedule::new(at(3), false), at(2)).await;
    let (d_resolve, _, superseded) =
        enqueue_new(store, admit("gone", resolved("MoveD")), at(5)).await;
    assert_eq!(superseded, Some(d));

    let moved = store
        .dead_letter_target(
            &target("gone"),
            TargetKind::Webhook,
            DeadReason::TargetRemoved,
            at(10),
        )
        .await
        .expect("dead_letter_target");
    assert_eq!(
        moved, 4,
        "a (leased), b, c and d's resolve move; d, superseded in flight, is only removed"
    );
    let st = stats(store).await;
    assert_eq!(st.dead_letters, 4);
    assert_eq!(
        st.by_target,
        [TargetQueueStats {
            target: "stay".to_owned(),
            pending: 1,
            leased: 0,
        }],
        "no live job of the target is left; other targets are untouched"
    );

    let entries = list(store, &DeadLetterFilter::default()).await;
    let by_name = |name: &str| {
        entries
            .iter()
            .find(|e| {
                e.alert.alert.name() == Some(name)
                    && e.alert.alert.status_at(at(10)) == AlertStatus::Firing
            })
            .unwrap_or_else(|| panic!("no dead letter of {name}: {entries:?}"))
    };
    for e in &entries {
        assert_eq!(e.target.as_str(), "gone");
        assert_eq!(e.kind, TargetKind::Webhook);
        assert_eq!(e.reason, DeadReason::TargetRemoved);
        assert_eq!(e.dead_at, at(10));
        assert_eq!(e.enqueued_at, if e.sequence == 2 { at(5) } else { at(0) });
    }
    assert_eq!(
        (
            by_name("MoveA").attempts,
            by_name("MoveA").last_error.clone()
        ),
        (1, None),
        "a leased job's entry counts the attempt in flight"
    );
    assert_eq!(
        (
            by_name("MoveB").attempts,
            by_name("MoveB").last_error.clone()
        ),
        (1, Some(transient())),
        "an entry keeps the job's attempts and its recorded error"
    );
    assert_eq!(
        (
            by_name("MoveC").attempts,
            by_name("MoveC").last_error.clone()
        ),
        (0, None)
    );
    let resolve = entries
        .iter()
        .find(|e| e.sequence == 2)
        .expect("d's resolve is dead-lettered");
    assert_eq!(resolve.alert, resolved("MoveD"));

    // The lanes settle the jobs they still hold: nothing happens, no second entry is made.
    ack(store, a, at(11)).await;
    reschedule(store, a, Reschedule::new(at(12), true), at(11)).await;
    assert_eq!(
        dead_letter(store, a, TargetKind::Webhook, at(11)).await,
        None
    );
    assert_eq!(
        dead_letter(store, d, TargetKind::Webhook, at(11)).await,
        None
    );
    ack(store, d, at(11)).await;
    ack(store, d_resolve, at(11)).await;
    assert_eq!(
        stats(store).await.dead_letters,
        4,
        "settling moved jobs makes no entry"
    );
    assert!(lease_jobs(store, "gone", at(2_000)).await.is_empty());
    let kept = lease_jobs(store, "stay", at(2_000)).await;
    assert_eq!(ids(&kept), [stay], "the other target's job is still there");

    let again = store
        .dead_letter_target(
            &target("gone"),
            TargetKind::Webhook,
            DeadReason::TargetRemoved,
            at(20),
        )
        .await
        .expect("dead_letter_target");
    assert_eq!(again, 0, "nothing is left to move");
    let unknown = store
        .dead_letter_target(
            &target("never"),
            TargetKind::Slack,
            DeadReason::TargetRemoved,
            at(20),
        )
        .await
        .expect("dead_letter_target of an unknown target");
    assert_eq!(unknown, 0);
    assert_eq!(stats(store).await.dead_letters, 4);
}

/// `QueueStats::oldest_enqueued_at` is the `enqueued_at` of the oldest live job, leased or not.
pub async fn oldest_enqueued_at(store: &dyn JobStore) {
    assert_eq!(
        stats(store).await.oldest_enqueued_at,
        None,
        "an empty store has none"
    );
    let (x, _, _) = enqueue_new(store, admit("t1", firing("OldX")), at(5)).await;
    enqueue_new(store, admit("t1", firing("OldY")), at(7)).await;
    enqueue_new(store, admit("t2", firing("OldZ")), at(6)).await;
    assert_eq!(stats(store).await.oldest_enqueued_at, Some(at(5)));
    let leased = lease(store, "t1", 1, at(8)).await.jobs;
    assert_eq!(ids(&leased), [x]);
    assert_eq!(
        stats(store).await.oldest_enqueued_at,
        Some(at(5)),
        "a leased job is live"
    );
    ack(store, x, at(9)).await;
    assert_eq!(stats(store).await.oldest_enqueued_at, Some(at(6)));
    drain(store, "t2", at(9)).await;
    assert_eq!(stats(store).await.oldest_enqueued_at, Some(at(7)));
    enqueue_new(store, admit("t1", resolved("OldY")), at(10)).await;
    assert_eq!(
        stats(store).await.oldest_enqueued_at,
        Some(at(10)),
        "a superseded job no longer counts"
    );
    drain(store, "t1", at(11)).await;
    assert_eq!(stats(store).await.oldest_enqueued_at, None);
}

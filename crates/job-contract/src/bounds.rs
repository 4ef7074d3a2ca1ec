//! The bounds on what a store holds: live jobs past `max_age` and the jobs of removed targets
//! leave through the sweep, a target's quota refuses that target's admissions alone, and the
//! notification log holds at most `max_active_alerts` entries.

use std::time::Duration;

use super::{
    Admitted, DeadReason, JobStore, JobStoreError, SweepPlan, TargetKind, TargetQueueStats, ack,
    admit, at, dead_letter, drain, enqueue, enqueue_new, filter_of, firing, lease_jobs, list, plan,
    resolved, stats, sweep, target,
};

/// A plan that expires jobs older than `max_age` seconds and knows `known` as the target set.
fn aging(known: Option<&[(&str, TargetKind)]>, max_age: u64, grace: u64) -> SweepPlan {
    let plan = plan(&[("live", None)], 0).with_max_age(Duration::from_secs(max_age));
    match known {
        Some(known) => plan.with_known_targets(
            known.iter().map(|&(n, k)| (target(n), k)).collect(),
            Duration::from_secs(grace),
        ),
        None => plan,
    }
}

/// The dead letters of `to`, as (alert name, reason, kind).
async fn dead_of(store: &dyn JobStore, to: &str) -> Vec<(String, DeadReason, TargetKind)> {
    let filter = filter_of(Some(to), None, None, None);
    let mut out: Vec<_> = list(store, &filter)
        .await
        .into_iter()
        .map(|e| {
            (
                e.alert.alert.name().unwrap_or("?").to_owned(),
                e.reason,
                e.kind,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// With `max_age`, a sweep moves every live job older than it to the dead-letter queue as
/// expired, whether its target is in the plan (a lane) or not (disabled, or removed while the
/// store was closed); a job whose lease still runs is left to its lane, one whose lease ran out
/// is not. Without `max_age` nothing expires.
pub async fn sweep_expires_old_jobs(store: &dyn JobStore) {
    enqueue_new(store, admit("paused", firing("OldA")), at(0)).await;
    enqueue_new(store, admit("paused", firing("OldB")), at(50)).await;
    enqueue_new(store, admit("live", firing("OldC")), at(0)).await;
    enqueue_new(store, admit("held", firing("OldD")), at(0)).await;
    enqueue_new(store, admit("lapsed", firing("OldE")), at(0)).await;
    // `held` keeps a lease running past the sweep; `lapsed` had one that ran out (a lane gone).
    lease_jobs(store, "lapsed", at(1)).await;
    let known = [
        ("paused", TargetKind::Slack),
        ("live", TargetKind::Pagerduty),
        ("held", TargetKind::Webhook),
        ("lapsed", TargetKind::Rootly),
    ];
    let report = sweep(store, &plan(&[("live", None)], 0), at(200)).await;
    assert_eq!(
        report.expired_jobs, 0,
        "no max_age, nothing expires: {report:?}"
    );
    lease_jobs(store, "held", at(100)).await;

    let report = sweep(store, &aging(Some(&known), 100, 3_600), at(120)).await;
    assert_eq!(
        (report.expired_jobs, report.removed_jobs),
        (3, 0),
        "OldA, OldC and OldE are older than 100 s (OldE's lease ran out at 61); OldB is not; \
         OldD is held by a running lease (leased at 100 for 60 s): {report:?}"
    );
    assert_eq!(
        dead_of(store, "paused").await,
        [("OldA".to_owned(), DeadReason::Expired, TargetKind::Slack)]
    );
    assert_eq!(
        dead_of(store, "live").await,
        [(
            "OldC".to_owned(),
            DeadReason::Expired,
            TargetKind::Pagerduty
        )]
    );
    assert_eq!(
        dead_of(store, "lapsed").await,
        [("OldE".to_owned(), DeadReason::Expired, TargetKind::Rootly)],
        "a job whose lease ran out expires like any other"
    );
    let report = sweep(store, &aging(Some(&known), 100, 3_600), at(200)).await;
    assert_eq!(report.expired_jobs, 2, "{report:?}");
    // OldD's lease (until 160) has run out by 200, and OldB is 150 s old.
    assert_eq!(
        dead_of(store, "held").await,
        [("OldD".to_owned(), DeadReason::Expired, TargetKind::Webhook)]
    );
    assert_eq!(
        dead_of(store, "paused").await,
        [
            ("OldA".to_owned(), DeadReason::Expired, TargetKind::Slack),
            ("OldB".to_owned(), DeadReason::Expired, TargetKind::Slack),
        ]
    );
    let st = stats(store).await;
    assert_eq!(
        st.depth(),
        0,
        "every job is delivered or dead-lettered: {st:?}"
    );
    assert_eq!(st.dead_letters, 5);
}

/// With the target set in the plan, a target that left it has its live jobs moved to the
/// dead-letter queue as `target_removed` once the grace has passed since a pass first found it
/// gone, with the kind it had; a target back before then keeps its jobs; a target with jobs that
/// was never in a plan's set (removed while the store was closed) is found gone by the first
/// pass and moved after the grace.
pub async fn removed_targets_jobs_move_after_the_grace(store: &dyn JobStore) {
    let all = [
        ("stay", TargetKind::Webhook),
        ("gone", TargetKind::Slack),
        ("back", TargetKind::Rootly),
    ];
    let one = [("stay", TargetKind::Webhook)];
    let with_back = [("stay", TargetKind::Webhook), ("back", TargetKind::Rootly)];
    let known = |set: &[(&str, TargetKind)]| {
        plan(&[("stay", None)], 0).with_known_targets(
            set.iter().map(|&(n, k)| (target(n), k)).collect(),
            Duration::from_secs(300),
        )
    };
    let removed_at = async |set: &[(&str, TargetKind)], secs: i64| {
        sweep(store, &known(set), at(secs)).await.removed_jobs
    };
    enqueue_new(store, admit("stay", firing("RmA")), at(0)).await;
    enqueue_new(store, admit("gone", firing("RmA")), at(0)).await;
    enqueue_new(store, admit("gone", firing("RmB")), at(0)).await;
    enqueue_new(store, admit("back", firing("RmA")), at(0)).await;
    enqueue_new(store, admit("unseen", firing("RmA")), at(0)).await;
    // `unseen` was never in the set: the first pass, at 10, finds it gone.
    assert_eq!(removed_at(&all, 10).await, 0);
    // `gone` and `back` leave the set at 20; `back` returns at 200, before its grace is over.
    assert_eq!(removed_at(&one, 20).await, 0, "the grace has not passed");
    assert_eq!(removed_at(&with_back, 200).await, 0);
    assert_eq!(
        removed_at(&with_back, 309).await,
        0,
        "unseen: one second short"
    );
    assert_eq!(
        removed_at(&with_back, 310).await,
        1,
        "unseen moves at 10 + 300 s"
    );
    assert_eq!(
        removed_at(&with_back, 319).await,
        0,
        "gone: one second short"
    );
    assert_eq!(
        removed_at(&with_back, 320).await,
        2,
        "gone's two jobs move at 20 + 300 s"
    );
    assert_eq!(
        dead_of(store, "gone").await,
        [
            (
                "RmA".to_owned(),
                DeadReason::TargetRemoved,
                TargetKind::Slack
            ),
            (
                "RmB".to_owned(),
                DeadReason::TargetRemoved,
                TargetKind::Slack
            ),
        ],
        "the entries take the kind the target had"
    );
    let unseen = dead_of(store, "unseen").await;
    assert_eq!(unseen.len(), 1, "{unseen:?}");
    assert_eq!(unseen[0].1, DeadReason::TargetRemoved);
    let st = stats(store).await;
    let targets: Vec<&str> = st.by_target.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(
        targets,
        ["back", "stay"],
        "back came back, so it keeps its job"
    );
    // Leaving again starts a new grace.
    assert_eq!(removed_at(&one, 330).await, 0);
    assert_eq!(removed_at(&one, 629).await, 0);
    assert_eq!(removed_at(&one, 630).await, 1, "back moves at 330 + 300 s");
    assert_eq!(
        dead_of(store, "back").await,
        [(
            "RmA".to_owned(),
            DeadReason::TargetRemoved,
            TargetKind::Rootly
        )]
    );
    let st = stats(store).await;
    assert_eq!(st.depth(), 1, "only stay's job is left: {st:?}");
}

/// A store built with a per-target quota of 3 refuses the admissions that would add a job to a
/// target holding 3, alone: the batch's other admissions are committed, nothing of the refused
/// ones is (their log entries included, so a re-send is admitted once there is room), a job
/// replacing a pending one is still admitted, and a replay into a full target is refused.
pub async fn target_quota_refuses_that_target_alone(store: &dyn JobStore) {
    for name in ["QA", "QB", "QC"] {
        enqueue_new(store, admit("full", firing(name)), at(0)).await;
    }
    let answers = enqueue(
        store,
        vec![
            admit("full", firing("QD")),
            admit("other", firing("QD")),
            admit("full", firing("QE")),
            admit("other", firing("QE")),
            // Replaces QA's pending job: the queue of `full` does not grow.
            admit("full", resolved("QA")),
        ],
        at(10),
    )
    .await;
    let refused = Admitted::TargetFull {
        max_jobs_per_target: 3,
    };
    assert_eq!(answers[0], refused, "{answers:?}");
    assert!(answers[1].is_enqueued(), "{answers:?}");
    assert_eq!(answers[2], refused, "{answers:?}");
    assert!(answers[3].is_enqueued(), "{answers:?}");
    assert!(
        matches!(
            answers[4],
            Admitted::Enqueued {
                superseded: Some(_),
                ..
            }
        ),
        "a job that replaces a pending one is admitted: {answers:?}"
    );
    let st = stats(store).await;
    assert_eq!(
        st.by_target,
        [
            TargetQueueStats {
                target: "full".to_owned(),
                pending: 3,
                leased: 0
            },
            TargetQueueStats {
                target: "other".to_owned(),
                pending: 2,
                leased: 0
            },
        ]
    );
    // The refused admissions left no log entry: once there is room, the re-send is admitted.
    let leased = lease_jobs(store, "full", at(20)).await;
    ack(store, leased[0].id, at(21)).await;
    let again = enqueue(
        store,
        vec![admit("full", firing("QD")), admit("other", firing("QD"))],
        at(30),
    )
    .await;
    assert!(again[0].is_enqueued(), "{again:?}");
    assert_eq!(again[1], Admitted::Duplicate, "{again:?}");
    // A replay into a full target is refused and the entry stays.
    let job = leased[1].id;
    let dead = dead_letter(store, job, TargetKind::Webhook, at(31))
        .await
        .expect("a dead letter");
    enqueue_new(store, admit("full", firing("QF")), at(32)).await;
    match store.replay(&dead, at(33)).await {
        Err(JobStoreError::TargetFull {
            target: t,
            max_jobs_per_target: 3,
        }) => assert_eq!(t.as_str(), "full"),
        other => panic!("a replay into a full target must be refused, got {other:?}"),
    }
    assert_eq!(stats(store).await.dead_letters, 1);
}

/// A store built with `max_active_alerts` of 4 refuses a batch that would make its log hold more
/// than 4 entries, whole (nothing of it is committed), while re-sends and new states of alerts
/// it holds are still accepted; entries dropped by retention make room again.
pub async fn active_alerts_are_bounded(store: &dyn JobStore) {
    enqueue_new(store, admit("t1", firing("ActA")), at(0)).await;
    enqueue_new(store, admit("t2", firing("ActA")), at(0)).await;
    enqueue_new(store, admit("t1", firing("ActB")), at(0)).await;
    let over = store
        .enqueue_batch(
            vec![
                admit("t1", firing("ActC")),
                admit("t2", firing("ActC")),
                admit("t1", resolved("ActA")),
            ],
            at(10),
        )
        .await;
    assert_eq!(
        over.map(|_| ()),
        Err(JobStoreError::TooManyActiveAlerts {
            max_active_alerts: 4
        }),
        "3 entries + 2 new is more than 4"
    );
    let st = stats(store).await;
    assert_eq!(
        st.depth(),
        3,
        "nothing of the refused batch is committed: {st:?}"
    );
    // ActA's resolve was part of the refused batch, so it is still new.
    let answers = enqueue(
        store,
        vec![
            admit("t1", resolved("ActA")),
            admit("t2", firing("ActA")),
            admit("t1", firing("ActC")),
        ],
        at(20),
    )
    .await;
    assert!(answers[0].is_enqueued(), "{answers:?}");
    assert_eq!(answers[1], Admitted::Duplicate, "{answers:?}");
    assert!(
        answers[2].is_enqueued(),
        "the fourth entry fits: {answers:?}"
    );
    // At the cap: what the log holds is still accepted, a new entry is not.
    let held = enqueue(
        store,
        vec![admit("t1", firing("ActB")), admit("t1", resolved("ActB"))],
        at(30),
    )
    .await;
    assert_eq!(held[0], Admitted::Duplicate, "{held:?}");
    assert!(held[1].is_enqueued(), "{held:?}");
    let refused = store
        .enqueue_batch(vec![admit("t3", firing("ActA"))], at(30))
        .await;
    assert!(
        matches!(refused, Err(JobStoreError::TooManyActiveAlerts { .. })),
        "{refused:?}"
    );
    // Retention drops the resolved entries; their room is free again.
    for to in ["t1", "t2"] {
        drain(store, to, at(40)).await;
    }
    let report = sweep(store, &plan(&[], 60), at(200)).await;
    assert!(report.expired_log_entries >= 2, "{report:?}");
    enqueue_new(store, admit("t3", firing("ActA")), at(200)).await;
}

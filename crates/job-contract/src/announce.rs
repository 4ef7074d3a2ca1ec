//! New work is announced: a store tells the lanes of each target that got jobs, so they need
//! not poll ([`alert_core::LaneQueue::on_new_work`]).

use std::sync::{Arc, Mutex, PoisonError};

use super::{
    JobStore, TargetKind, TargetName, ack, admit, alert, at, dead_letter, drain, enqueue, firing,
    lease_jobs, plan, sweep,
};

/// Each ingest batch, replay and sweep that makes jobs announces their targets, by the time it
/// returns and once each: a re-send that makes no job announces nothing.
pub async fn new_work_is_announced(store: &dyn JobStore) {
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&heard);
    store.on_new_work(Arc::new(move |target: &TargetName| {
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(target.to_string());
    }));
    let take = || {
        let mut got = std::mem::take(&mut *heard.lock().unwrap_or_else(PoisonError::into_inner));
        got.sort_unstable();
        got
    };

    let batch = vec![
        admit("nw-a", firing("NewWork")),
        admit("nw-b", firing("NewWork")),
        admit("nw-b", firing("NewWorkToo")),
    ];
    enqueue(store, batch, at(0)).await;
    assert_eq!(
        take(),
        ["nw-a", "nw-b"],
        "an ingest batch announces each target that got jobs, once"
    );

    enqueue(store, vec![admit("nw-a", firing("NewWork"))], at(1)).await;
    assert_eq!(
        take(),
        Vec::<String>::new(),
        "a re-send that makes no job announces nothing"
    );

    let jobs = lease_jobs(store, "nw-b", at(2)).await;
    let dead = dead_letter(store, jobs[0].id, TargetKind::Webhook, at(2))
        .await
        .expect("a dead letter is made");
    ack(store, jobs[1].id, at(2)).await;
    assert_eq!(
        take(),
        Vec::<String>::new(),
        "settling jobs announces nothing"
    );
    store
        .replay(&dead, at(3))
        .await
        .unwrap_or_else(|e| panic!("replay failed: {e}"));
    assert_eq!(take(), ["nw-b"], "a replay announces its target");

    enqueue(
        store,
        vec![admit("nw-c", alert("Short", None, 0, 5))],
        at(4),
    )
    .await;
    drain(store, "nw-c", at(4)).await;
    take();
    let report = sweep(store, &plan(&[("nw-c", None)], 0), at(10)).await;
    assert_eq!(report.resolved, 1, "the ended alert is resolved");
    assert_eq!(
        take(),
        ["nw-c"],
        "a sweep announces the targets of its jobs"
    );
}

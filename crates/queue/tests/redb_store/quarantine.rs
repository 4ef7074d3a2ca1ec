//! Records that cannot be read are set aside in the quarantine, and the store opens with the rest.

use std::time::Duration;

use alert_core::{
    DeadLetterFilter, DeadLetterQueue, DeadReason, IngestQueue, JobStoreError, LaneQueue,
    QueueMaintenance, TargetKind, TargetName,
};
use redb::{Database, TableDefinition};

use super::TempDir;
use crate::{admit, alert, at};

const JOBS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("queue_jobs");
const ALERTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("alerts");
const LOG: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("notification_log_by_fingerprint");
const DEAD: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("dead_letters");

/// The id of the unreadable dead letter: the oldest possible, so a listing meets it first.
const BAD_DEAD: &str = "00000000-0000-7000-8000-000000000000";

#[tokio::test]
async fn unreadable_records_are_quarantined_and_counted_and_the_store_opens() {
    let dir = TempDir::new("quarantine");
    let path = dir.db();
    let target = TargetName::new("t").unwrap();
    let ttl = Duration::from_secs(60);
    {
        let store = queue::RedbJobStore::open(&path, 100).unwrap();
        let batch = vec![
            admit(&target, alert("Good1", None, 86_400)),
            admit(&target, alert("Good2", None, 86_400)),
            admit(&target, alert("Dead", None, 86_400)),
        ];
        store.enqueue_batch(batch, at(0)).await.unwrap();
        let lease = store.lease(&target, 3, ttl, at(1)).await.unwrap();
        let dead = lease
            .jobs
            .iter()
            .find(|j| j.alert.alert.name() == Some("Dead"))
            .unwrap();
        store
            .dead_letter(
                dead.id,
                TargetKind::Webhook,
                DeadReason::Permanent,
                None,
                at(2),
            )
            .await
            .unwrap()
            .unwrap();
    }
    {
        // Bytes no build of the store wrote: a truncated job, an alert that is not JSON, a log
        // entry of an unknown format and a dead letter that is not JSON.
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(JOBS)
            .unwrap()
            .insert(9_000, &[2_u8, 1][..])
            .unwrap();
        txn.open_table(ALERTS)
            .unwrap()
            .insert(9_001, &b"{not json"[..])
            .unwrap();
        txn.open_table(LOG)
            .unwrap()
            .insert((42, "t"), &[99_u8][..])
            .unwrap();
        txn.open_table(DEAD)
            .unwrap()
            .insert(BAD_DEAD, &b"{not json"[..])
            .unwrap();
        txn.commit().unwrap();
    }

    let store = queue::RedbJobStore::open(&path, 100).unwrap();
    let health = store.health();
    assert_eq!(health.quarantined_records, 3, "{health:?}");
    assert!(health.condition.is_ready(), "{health:?}");
    let mut names: Vec<_> = store
        .lease(&target, 10, ttl, at(3))
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.alert.alert.name().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Good1", "Good2"], "the good jobs are all there");
    let mut set_aside: Vec<_> = store
        .quarantined(10)
        .unwrap()
        .into_iter()
        .map(|(table, key, _)| (table, key))
        .collect();
    set_aside.sort();
    assert_eq!(
        set_aside,
        [
            ("alerts".to_owned(), "9001".to_owned()),
            (
                "notification_log_by_fingerprint".to_owned(),
                "42/t".to_owned()
            ),
            ("queue_jobs".to_owned(), "9000".to_owned()),
        ]
    );

    // The dead-letter queue lists the readable entry; the unreadable one is set aside by the
    // writer, which has done so once a later op of the writer is answered.
    let page = store
        .dead_letters(&DeadLetterFilter::default(), None, 10)
        .await
        .unwrap();
    let listed: Vec<_> = page
        .entries
        .iter()
        .map(|d| d.alert.alert.name().unwrap())
        .collect();
    assert_eq!(listed, ["Dead"]);
    let missing = alert_core::DeadLetterId("0".to_owned());
    assert_eq!(store.purge(&missing).await, Err(JobStoreError::NotFound));
    let health = store.health();
    assert_eq!(health.quarantined_records, 4, "{health:?}");
    assert_eq!(store.stats().await.unwrap().dead_letters, 1);
    assert!(
        store
            .quarantined(10)
            .unwrap()
            .iter()
            .any(|(table, key, _)| table == "dead_letters" && key == BAD_DEAD)
    );
    // Replaying an id that is unreadable is "not found", and fails nothing else.
    drop(store);
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(DEAD)
            .unwrap()
            .insert(BAD_DEAD, &b"[]"[..])
            .unwrap();
        txn.commit().unwrap();
    }
    let store = queue::RedbJobStore::open(&path, 100).unwrap();
    let bad = alert_core::DeadLetterId(BAD_DEAD.to_owned());
    assert_eq!(
        store.replay(&bad, at(4)).await,
        Err(JobStoreError::NotFound)
    );
    assert_eq!(store.stats().await.unwrap().dead_letters, 1);
    assert_eq!(store.health().quarantined_records, 1);
}

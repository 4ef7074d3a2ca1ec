//! `PgJobStore` on a real PostgreSQL cluster that the test starts (Debian's `postgresql`): the
//! contract, each store on a fresh database. Without PostgreSQL the tests skip, except in CI.

use std::sync::Mutex;

use job_contract as contract;
use queue::PgJobStore;
use test_support::postgres::Cluster;

/// How many checks `contract::run_all` runs, each on a store of its own.
const CHECKS: usize = 27;

/// A firing alert named `name` for `target`, started at `at`.
fn admission(
    target: &alert_core::TargetName,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> alert_core::Admission {
    use alert_core::{Alert, EnrichedAlert, Labels};
    let labels: Labels = [("alertname".to_owned(), name.to_owned())].into();
    let alert = EnrichedAlert::new(Alert::new(labels).unwrap().with_starts_at(at).unwrap());
    alert_core::Admission::new(target.clone(), alert, None)
}

async fn store(cluster: &Cluster, name: &str, max_jobs: u64) -> PgJobStore {
    let url = cluster.database(name);
    PgJobStore::connect(&url, 4, max_jobs)
        .await
        .unwrap_or_else(|e| panic!("connecting to {name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_contract() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let mut stores = Vec::with_capacity(CHECKS);
    for i in 0..CHECKS {
        stores.push(store(&cluster, &format!("contract{i}"), 1_000).await);
    }
    stores.reverse();
    let stores = Mutex::new(stores);
    contract::run_all(|| {
        stores
            .lock()
            .unwrap()
            .pop()
            .expect("a fresh database for every check")
    })
    .await;
    assert!(
        stores.lock().unwrap().is_empty(),
        "one fresh database per check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_delivery_history() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    contract::history_is_kept_searched_and_paged(&store(&cluster, "history", 1_000).await).await;
    contract::history_retention_holds(&store(&cluster, "retention", 1_000).await).await;
    contract::log_of_an_alert_lists_each_target(&store(&cluster, "logof", 1_000).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_bounds_targets_active_alerts_and_dead_letters() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let quota = store(&cluster, "quota", 1_000)
        .await
        .with_max_jobs_per_target(3);
    contract::target_quota_refuses_that_target_alone(&quota).await;
    let active = store(&cluster, "active", 1_000)
        .await
        .with_max_active_alerts(4);
    contract::active_alerts_are_bounded(&active).await;
    let capped = store(&cluster, "capped", 1_000)
        .await
        .with_dead_letter_cap(4);
    contract::evicted_dead_letters_are_counted(&capped, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_message_refs_are_kept_replaced_and_removed() {
    use alert_core::{Fingerprint, MessageRef};

    let Some(cluster) = Cluster::start() else {
        return;
    };
    let refs = store(&cluster, "refs", 1_000).await.message_refs();
    let fingerprint = Fingerprint::from_u64(u64::MAX - 7);
    assert_eq!(refs.get("slack", fingerprint).await, None);
    let first = MessageRef::new("C024BE91L", "1700000000.000100");
    refs.put("slack", fingerprint, first.clone()).await;
    assert_eq!(refs.get("slack", fingerprint).await, Some(first));
    assert_eq!(
        refs.get("other", fingerprint).await,
        None,
        "references are per target"
    );
    let second = MessageRef::new("C024BE91L", "1700000000.000200");
    refs.put("slack", fingerprint, second.clone()).await;
    assert_eq!(refs.get("slack", fingerprint).await, Some(second));
    refs.remove("slack", fingerprint).await;
    assert_eq!(refs.get("slack", fingerprint).await, None);
}

/// A job made through one replica wakes the lanes of every other replica, through `NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_work_reaches_the_other_replicas() {
    use std::sync::Arc;
    use std::time::Duration;

    use alert_core::{IngestQueue, LaneQueue, TargetName};

    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("notify");
    let here = PgJobStore::connect(&url, 2, 1_000).await.unwrap();
    let there = PgJobStore::connect(&url, 2, 1_000).await.unwrap();
    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
    there.on_new_work(Arc::new(move |target: &TargetName| {
        let _ = heard.send(target.to_string());
    }));
    let target = TargetName::new("notified").unwrap();
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    // The other replica's listener connects in the background: new alerts go in until it hears
    // one (each a fresh job), for at most ten seconds.
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        for i in 0.. {
            here.enqueue_batch(vec![admission(&target, &format!("Notify{i}"), now)], now)
                .await
                .unwrap();
            if let Ok(Some(name)) =
                tokio::time::timeout(Duration::from_millis(200), hearing.recv()).await
            {
                return name;
            }
        }
        unreachable!()
    })
    .await
    .expect("the other replica heard of the new job within 10 s");
    assert_eq!(got, "notified");
}

/// Replicas whose clocks disagree by 2 s take no job twice and strand none: the leases a lane's
/// last owner took lapse by the database's clock, not by the clock of the replica that runs
/// the lane now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_two_seconds_apart_take_no_job_twice() {
    use std::time::Duration;

    use alert_core::{IngestQueue, LaneQueue, TargetName};

    let Some(cluster) = Cluster::start() else {
        return;
    };
    let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let skew = chrono::Duration::seconds(2);
    let target = TargetName::new("skewed").unwrap();
    let ttl = Duration::from_secs(2);
    for (name, ahead) in [("skew_ahead", true), ("skew_behind", false)] {
        let url = cluster.database(name);
        // The first replica, alone, leases a job for 2 s of its clock.
        let first = PgJobStore::connect(&url, 2, 1_000).await.unwrap();
        first
            .enqueue_batch(vec![admission(&target, "Skew", t0)], t0)
            .await
            .unwrap();
        let leased = first.lease(&target, 10, ttl, t0).await.unwrap();
        assert_eq!(
            leased.jobs.len(),
            1,
            "{name}: the first replica leases the job"
        );
        let job = leased.jobs[0].id;
        // It stops beating (a stall, a partition): its lane's lease lapses, and the second
        // replica, whose clock is 2 s ahead of or behind the first's, runs the lane.
        let _ = cluster.query(
            name,
            "DELETE FROM alertpub_replicas; UPDATE alertpub_lanes SET lease_until = 0",
        );
        let second = PgJobStore::connect(&url, 2, 1_000).await.unwrap();
        let its = |at: chrono::DateTime<chrono::Utc>| if ahead { at + skew } else { at - skew };
        if ahead {
            // By the second replica's clock the lease ended (t0 + 2 s), but the database's
            // 2 s have not passed: the job is still in flight on the first replica.
            let taken = second.lease(&target, 10, ttl, its(t0)).await.unwrap();
            assert!(
                taken.jobs.is_empty(),
                "{name}: a clock 2 s ahead took a job another replica has in flight"
            );
            // The first replica's call ends and its ack lands: the job was sent once.
            first
                .ack(job, t0 + chrono::Duration::milliseconds(100))
                .await
                .unwrap();
            let after = second
                .lease(&target, 10, ttl, its(t0 + skew))
                .await
                .unwrap();
            assert!(after.jobs.is_empty(), "{name}: the acked job came back");
        } else {
            // The database's 2 s pass (moved on explicitly rather than waited for), with the
            // first replica's ack never landing. By the second replica's clock the lease has 2 s
            // left, but it lapsed: the job is leasable again, due at t0 by the clock that made
            // it, which the lane is told, and takes at t0 by its own (a delay of the skew).
            let _ = cluster.query(
                name,
                "UPDATE alertpub_jobs SET lease_db_until = lease_db_until - 3000000000",
            );
            let early = second
                .lease(
                    &target,
                    10,
                    ttl,
                    its(t0 + chrono::Duration::milliseconds(100)),
                )
                .await
                .unwrap();
            assert!(early.jobs.is_empty(), "{name}: the job is not due yet");
            assert_eq!(
                early.next_due,
                Some(t0),
                "{name}: a lapsed lease's job must be leasable again, due when it was made"
            );
            let retaken = second
                .lease(&target, 10, ttl, its(t0 + skew))
                .await
                .unwrap();
            assert_eq!(
                retaken.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
                [job],
                "{name}: the lane takes the job once its clock reaches the job's due time"
            );
            // The first replica wakes up and acks late: fenced, the second replica's lease holds.
            first.ack(job, t0 + skew).await.unwrap();
            second.ack(job, its(t0 + skew)).await.unwrap();
            let after = second
                .lease(&target, 10, ttl, its(t0 + skew * 2))
                .await
                .unwrap();
            assert!(after.jobs.is_empty(), "{name}: the acked job came back");
        }
    }
}

/// TLS to the database: with the server's CA file the store connects encrypted, verifies the
/// server and works (its connections show as TLS in `pg_stat_ssl`); without it, a server it
/// cannot authenticate is refused with a storage error; `sslmode=disable` stays plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_are_verified() {
    use alert_core::{IngestQueue, LaneQueue, TargetName};

    let Some((cluster, ca)) = Cluster::start_tls() else {
        return;
    };
    let plain = cluster.database("tls");
    let ca_file = std::env::temp_dir().join(format!("alertpub-pg-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &ca).unwrap();
    let verified = format!(
        "{plain}?sslmode=verify-full&sslrootcert={}&application_name=alertpub-tls",
        ca_file.display()
    );
    let store = PgJobStore::connect(&verified, 2, 1_000)
        .await
        .expect("a verified TLS connection");
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let target = TargetName::new("tls").unwrap();
    store
        .enqueue_batch(vec![admission(&target, "Tls", now)], now)
        .await
        .unwrap();
    let lease = store
        .lease(&target, 10, std::time::Duration::from_secs(30), now)
        .await
        .unwrap();
    assert_eq!(lease.jobs.len(), 1, "the store works over TLS");
    let encrypted = cluster.query(
        "tls",
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'alertpub-tls'",
    );
    let (tls, all) = encrypted.split_once('|').expect("two counts");
    assert!(
        all != "0" && tls == all,
        "every connection is encrypted: {encrypted}"
    );

    // Without the CA file, the self-signed server is not trusted: no connection at all.
    let unverified = format!("{plain}?sslmode=require");
    let refused = PgJobStore::connect(&unverified, 2, 1_000)
        .await
        .expect_err("an unauthenticated server is refused");
    assert!(
        matches!(refused, alert_core::JobStoreError::Storage(_)),
        "{refused:?}"
    );
    assert!(
        !refused.to_string().contains("postgres@"),
        "the URL stays out: {refused}"
    );

    let disabled = format!("{plain}?sslmode=disable&application_name=alertpub-plain");
    let _plain_store = PgJobStore::connect(&disabled, 2, 1_000)
        .await
        .expect("a plain connection");
    let plain_count = cluster.query(
        "tls",
        "SELECT count(*) FILTER (WHERE s.ssl) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'alertpub-plain'",
    );
    assert_eq!(plain_count, "0", "sslmode=disable stays plain");
    let _ = std::fs::remove_file(&ca_file);
}

/// Ingest calls that arrive together are decided in one transaction, each on what the ones
/// before it decided: the same alert sent by many calls at once is one job, and a call that a
/// bound refuses writes nothing while the calls beside it go in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingest_calls_decide_as_if_one_after_another() {
    use alert_core::{Admitted, IngestQueue, JobStoreError, LaneQueue, TargetName};

    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("grouped");
    let store = PgJobStore::connect(&url, 4, 1_000)
        .await
        .unwrap()
        .with_max_active_alerts(12);
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let target = TargetName::new("grouped").unwrap();

    // Twenty calls at once: ten of the same alert, ten of an alert each.
    let calls = (0..20).map(|i| {
        let name = if i % 2 == 0 {
            "Same".to_owned()
        } else {
            format!("Own{i}")
        };
        store.enqueue_batch(vec![admission(&target, &name, now)], now)
    });
    let answers = futures_util::future::join_all(calls).await;
    let same: Vec<&Admitted> = answers
        .iter()
        .step_by(2)
        .map(|a| &a.as_ref().expect("accepted")[0])
        .collect();
    assert_eq!(
        same.iter()
            .filter(|a| matches!(a, Admitted::Enqueued { .. }))
            .count(),
        1,
        "one job for the alert that ten calls sent at once: {same:?}"
    );
    assert!(
        same.iter()
            .all(|a| matches!(a, Admitted::Enqueued { .. } | Admitted::Duplicate))
    );
    // Eleven entries in the log now; of ten more alerts sent at once, one fits.
    let more = (0..10)
        .map(|i| store.enqueue_batch(vec![admission(&target, &format!("More{i}"), now)], now));
    let answers = futures_util::future::join_all(more).await;
    let (accepted, refused): (Vec<_>, Vec<_>) = answers.iter().partition(|a| a.is_ok());
    assert_eq!(accepted.len(), 1, "{answers:?}");
    assert!(
        refused
            .iter()
            .all(|a| matches!(a, Err(JobStoreError::TooManyActiveAlerts { .. }))),
        "{refused:?}"
    );
    let lease = store
        .lease(&target, 100, std::time::Duration::from_secs(30), now)
        .await
        .unwrap();
    assert_eq!(
        lease.jobs.len(),
        12,
        "the accepted calls' jobs, and no refused one's"
    );
}

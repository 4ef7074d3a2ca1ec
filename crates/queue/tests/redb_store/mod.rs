//! `RedbJobStore`: the contract, a clean reopen, and a real crash (`kill -9`) of a process that
//! is committing batches.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alert_core::{
    Admitted, AlertStatus, DeadLetterFilter, DeadLetterQueue, DeadReason, ErrorKind, IngestQueue,
    JobError, LaneQueue, Priority, QueueMaintenance, Reschedule, SweepPlan, TargetKind, TargetName,
};
use job_contract as contract;
use queue::RedbJobStore;

use super::{admit, alert, at, sweep_makes_what_fits_under_max_jobs};

mod quarantine;
mod repeats;

/// Selects the child mode of [`crash_child`]: the database path to commit to.
const CRASH_CHILD_ENV: &str = "ALERTPUB_QUEUE_CRASH_CHILD";
/// How many admissions the crash child commits per batch.
const CRASH_BATCH: u64 = 10;

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "alertpub-queue-{what}-{}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn db(&self) -> PathBuf {
        // A subdirectory that does not exist yet, so `open` must create it.
        self.0.join("state").join("queue.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn redb_store_passes_the_contract() {
    let dirs = Mutex::new(Vec::new());
    contract::run_all(|| {
        let dir = TempDir::new("contract");
        let store = RedbJobStore::open(&dir.db(), 1_000).unwrap();
        dirs.lock().unwrap().push(dir);
        store
    })
    .await;
    assert_eq!(dirs.lock().unwrap().len(), 27, "one fresh file per check");
}

#[tokio::test]
async fn redb_store_keeps_the_delivery_history() {
    let dir = TempDir::new("history");
    let store = RedbJobStore::open(&dir.db(), 1_000).unwrap();
    contract::history_is_kept_searched_and_paged(&store).await;
    let dir = TempDir::new("history-retention");
    let store = RedbJobStore::open(&dir.db(), 1_000).unwrap();
    contract::history_retention_holds(&store).await;
    contract::log_of_an_alert_lists_each_target(&store).await;
    // The history is in the file: a store opened again finds it.
    drop(store);
    let store = RedbJobStore::open(&dir.db(), 1_000).unwrap();
    let page = alert_core::DeliveryHistory::deliveries(
        &store,
        &alert_core::HistoryFilter::default(),
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(page.entries.len(), 1, "the record the retention kept");
}

#[tokio::test]
async fn redb_store_refuses_a_full_target_alone() {
    let dir = TempDir::new("quota");
    let store = RedbJobStore::open(&dir.db(), 1_000)
        .unwrap()
        .with_max_jobs_per_target(3);
    contract::target_quota_refuses_that_target_alone(&store).await;
}

#[tokio::test]
async fn redb_store_bounds_the_active_alerts() {
    let dir = TempDir::new("active");
    let store = RedbJobStore::open(&dir.db(), 1_000)
        .unwrap()
        .with_max_active_alerts(4);
    contract::active_alerts_are_bounded(&store).await;
}

/// A target removed while the store was open keeps its grace across a restart, counted from
/// when a pass first found it gone, and its dead letters take the kind it had; a job older than
/// `max_age` expires after a restart too.
#[tokio::test]
async fn removal_marks_and_ages_survive_a_restart() {
    let dir = TempDir::new("removal");
    let (stay, gone) = (
        TargetName::new("stay").unwrap(),
        TargetName::new("gone").unwrap(),
    );
    let set = |names: &[(&TargetName, TargetKind)]| {
        SweepPlan::new(vec![(stay.clone(), None)], Duration::ZERO)
            .with_known_targets(
                names.iter().map(|&(n, k)| (n.clone(), k)).collect(),
                Duration::from_secs(300),
            )
            .with_max_age(Duration::from_secs(3_600))
    };
    {
        let store = RedbJobStore::open(&dir.db(), 1_000).unwrap();
        let batch = vec![
            admit(&gone, alert("Gone", None, 86_400)),
            admit(&stay, alert("Old", None, 86_400)),
        ];
        store.enqueue_batch(batch, at(0)).await.unwrap();
        let both = [(&stay, TargetKind::Webhook), (&gone, TargetKind::Slack)];
        store.sweep(&set(&both), at(10)).await.unwrap();
        let report = store
            .sweep(&set(&[(&stay, TargetKind::Webhook)]), at(20))
            .await
            .unwrap();
        assert_eq!(report.removed_jobs, 0);
    }
    let store = RedbJobStore::open(&dir.db(), 1_000).unwrap();
    let one = set(&[(&stay, TargetKind::Webhook)]);
    let report = store.sweep(&one, at(319)).await.unwrap();
    assert_eq!(report.removed_jobs, 0, "{report:?}");
    let report = store.sweep(&one, at(320)).await.unwrap();
    assert_eq!(
        report.removed_jobs, 1,
        "gone since 20, so moved at 320: {report:?}"
    );
    let entries = store
        .dead_letters(&DeadLetterFilter::default(), None, 10)
        .await
        .unwrap()
        .entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].reason, entries[0].kind),
        (DeadReason::TargetRemoved, TargetKind::Slack)
    );
    drop(store);
    let store = RedbJobStore::open(&dir.db(), 1_000).unwrap();
    let report = store.sweep(&one, at(3_601)).await.unwrap();
    assert_eq!(report.expired_jobs, 1, "{report:?}");
    assert_eq!(store.stats().await.unwrap().depth(), 0);
}

#[tokio::test]
async fn redb_store_counts_the_dead_letters_it_drops_at_its_cap() {
    let dir = TempDir::new("evicted");
    let store = RedbJobStore::open(&dir.db(), 1_000)
        .unwrap()
        .with_dead_letter_cap(4);
    contract::evicted_dead_letters_are_counted(&store, 4).await;
}

fn transient() -> JobError {
    JobError {
        kind: ErrorKind::Transient,
        status_code: Some(503),
        message: "service unavailable".to_owned(),
    }
}

#[tokio::test]
async fn a_reopened_store_keeps_jobs_attempts_the_log_and_dead_letters() {
    let dir = TempDir::new("reopen");
    let path = dir.db();
    let target = TargetName::new("t").unwrap();
    let ttl = Duration::from_secs(60);

    let (resched, dead, pending, superseded_new, last_id);
    {
        let store = RedbJobStore::open(&path, 100).unwrap();
        let answers = store
            .enqueue_batch(
                vec![
                    admit(&target, alert("Resched", None, 86_400)),
                    admit(&target, alert("Dead", Some("critical"), 86_400)),
                    admit(&target, alert("Pending", None, 86_400)),
                    admit(&target, alert("Sup", None, 86_400)),
                ],
                at(0),
            )
            .await
            .unwrap();
        let nth = |i: usize| match answers[i] {
            Admitted::Enqueued { job, .. } => job,
            Admitted::Duplicate => panic!("admission {i} must be enqueued"),
            _ => unreachable!(),
        };
        (resched, dead, pending) = (nth(0), nth(1), nth(2));
        let leased = store.lease(&target, 10, ttl, at(1)).await.unwrap().jobs;
        assert_eq!(leased.len(), 4);

        let how = Reschedule::new(at(100), true).with_error(transient());
        store.reschedule(resched, how, at(2)).await.unwrap();
        store
            .dead_letter(
                dead,
                TargetKind::Webhook,
                DeadReason::Exhausted,
                None,
                at(3),
            )
            .await
            .unwrap()
            .expect("an entry");
        // A newer state of a leased job: both are live until the old one is settled.
        let Admitted::Enqueued {
            job, superseded, ..
        } = store
            .enqueue_batch(vec![admit(&target, alert("Sup", None, 4))], at(5))
            .await
            .unwrap()[0]
        else {
            panic!("the resolve must be enqueued");
        };
        assert_eq!(superseded, Some(nth(3)));
        superseded_new = job;
        last_id = job;
        assert_eq!(store.stats().await.unwrap().depth(), 4);
        // The store is dropped here with `pending` and the superseded job still leased.
    }

    let store = RedbJobStore::open(&path, 100).unwrap();
    let st = store.stats().await.unwrap();
    assert_eq!(
        st.depth(),
        3,
        "the superseded job is dropped at open: nothing is in flight after a restart"
    );
    assert_eq!(st.dead_letters, 1);

    let lease = store.lease(&target, 10, ttl, at(6)).await.unwrap();
    let mut got: Vec<_> = lease
        .jobs
        .iter()
        .map(|j| (j.id, j.delivery.attempt, j.delivery.sequence))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [(pending, 1, 1), (superseded_new, 1, 2)],
        "leases are forgotten by a restart, so the leased jobs are leasable at once; only the \
         newer state of the superseded pair comes back"
    );
    assert_eq!(
        lease.next_due,
        Some(at(100)),
        "the rescheduled job keeps its not_before"
    );
    for job in &lease.jobs {
        store.ack(job.id, at(7)).await.unwrap();
    }
    assert!(
        store
            .lease(&target, 10, ttl, at(99))
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    let again = store.lease(&target, 10, ttl, at(100)).await.unwrap().jobs;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, resched);
    assert_eq!(
        again[0].delivery.attempt, 2,
        "the consumed attempt was kept"
    );
    assert_eq!(*again[0].alert, alert("Resched", None, 86_400));

    // The notification log survived: the same alert re-sent is a duplicate.
    assert_eq!(
        store
            .enqueue_batch(
                vec![admit(&target, alert("Pending", None, 86_400))],
                at(101)
            )
            .await
            .unwrap(),
        [Admitted::Duplicate]
    );
    let fingerprint = alert("Pending", None, 86_400).alert.fingerprint();
    let entry = store.log_entry("t", fingerprint).unwrap().unwrap();
    assert_eq!((entry.status, entry.sequence), (AlertStatus::Firing, 1));
    assert_eq!(
        store.last_accepted_alert("t", fingerprint).unwrap(),
        Some(alert("Pending", None, 86_400)),
        "the log keeps the last accepted alert for the auto-resolve sweeper"
    );

    // The dead letter survived and can be replayed, as a job with a never-used id.
    let page = store
        .dead_letters(&DeadLetterFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    let entry = &page.entries[0];
    assert_eq!(entry.alert, alert("Dead", Some("critical"), 86_400));
    assert_eq!(
        (entry.attempts, entry.kind),
        (1, TargetKind::Webhook),
        "the attempt in flight counts"
    );
    let replayed = store.replay(&entry.id, at(102)).await.unwrap();
    assert!(
        replayed > last_id,
        "job ids are never reused across a restart"
    );
    let leased = store.lease(&target, 10, ttl, at(102)).await.unwrap().jobs;
    assert_eq!(leased.len(), 1);
    assert_eq!((leased[0].id, leased[0].delivery.attempt), (replayed, 1));
    assert_eq!(store.stats().await.unwrap().dead_letters, 0);
}

#[tokio::test]
async fn dead_letters_beyond_the_cap_or_the_retention_are_dropped() {
    let dir = TempDir::new("cap");
    let store = RedbJobStore::open(&dir.db(), 100)
        .unwrap()
        .with_dead_letter_cap(2)
        .with_dead_letter_retention(Duration::from_secs(100));
    let target = TargetName::new("t").unwrap();
    let mut made = Vec::new();
    for (i, t) in [0, 1, 2, 150].into_iter().enumerate() {
        let batch = vec![admit(&target, alert(&format!("Cap{i}"), None, 86_400))];
        store.enqueue_batch(batch, at(t)).await.unwrap();
        let lease = store
            .lease(&target, 1, Duration::from_secs(60), at(t))
            .await
            .unwrap();
        let id = store
            .dead_letter(
                lease.jobs[0].id,
                TargetKind::Webhook,
                DeadReason::Permanent,
                None,
                at(t),
            )
            .await
            .unwrap()
            .unwrap();
        made.push(id);
        let ids: Vec<_> = store
            .dead_letters(&DeadLetterFilter::default(), None, 10)
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|d| d.id)
            .collect();
        let want = match i {
            0 | 1 => made.clone(),
            // The cap drops the oldest.
            2 => made[1..].to_vec(),
            // At 150 the entries made at 1 and 2 are older than the 100 s retention.
            _ => made[3..].to_vec(),
        };
        assert_eq!(ids, want, "after dead letter {i}");
        assert_eq!(store.stats().await.unwrap().dead_letters, want.len() as u64);
    }
}

#[test]
fn opening_a_path_whose_parent_is_a_file_is_a_storage_error() {
    let dir = TempDir::new("bad");
    let file = dir.0.join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = RedbJobStore::open(&file.join("queue.redb"), 10).unwrap_err();
    assert!(
        matches!(err, alert_core::JobStoreError::Storage(_)),
        "{err:?}"
    );
}

/// The crash test's child: does nothing unless [`CRASH_CHILD_ENV`] names a database. Then it
/// commits batches in a loop, bounded in count and time, and reports each committed batch's last
/// job id on stdout, until the parent kills it.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RedbJobStore::open(Path::new(&path), 10_000_000).unwrap();
        let target = TargetName::new("crash").unwrap();
        let started = Instant::now();
        let mut out = std::io::stdout().lock();
        for batch in 0..5_000_u64 {
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
            let admissions = (0..CRASH_BATCH)
                .map(|i| admit(&target, alert(&format!("Crash{batch}-{i}"), None, 86_400)))
                .collect();
            let answers = store.enqueue_batch(admissions, at(0)).await.unwrap();
            let Some(Admitted::Enqueued { job, .. }) = answers.last() else {
                panic!("a new alert must be enqueued");
            };
            // The line goes out only after the commit returned: everything it reports is
            // accepted, and must survive the kill.
            writeln!(out, "committed {}", job.0).unwrap();
            out.flush().unwrap();
        }
    });
}

#[tokio::test]
async fn every_reported_commit_survives_kill_9() {
    let dir = TempDir::new("crash");
    let path = dir.db();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "redb_store::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut reported = 0_u64;
    let mut seen = 0;
    // Kill it in the middle of its stream of commits.
    while seen < 200 {
        let Some(line) = lines.next() else { break };
        if let Some(id) = line.unwrap().strip_prefix("committed ") {
            reported = id.parse().unwrap();
            seen += 1;
        }
    }
    child.kill().unwrap();
    // Lines already in the pipe were committed before the kill too.
    for line in lines {
        if let Some(id) = line.unwrap().strip_prefix("committed ") {
            reported = id.parse().unwrap();
        }
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        seen >= 200,
        "the child stopped after {seen} commits ({status}): {stderr}"
    );
    assert!(
        !status.success(),
        "the child must have been killed, not finished"
    );

    let store = RedbJobStore::open(&path, 10_000_000).unwrap();
    let target = TargetName::new("crash").unwrap();
    let leased = store
        .lease(&target, usize::MAX, Duration::from_secs(60), at(1))
        .await
        .unwrap()
        .jobs;
    let mut ids: Vec<u64> = leased.iter().map(|j| j.id.0).collect();
    ids.sort_unstable();
    assert!(
        ids.len() as u64 >= reported,
        "{} jobs survived, but {reported} were reported committed",
        ids.len()
    );
    assert_eq!(
        ids[..usize::try_from(reported).unwrap()],
        (1..=reported).collect::<Vec<_>>(),
        "every job of every reported commit is present and leasable after kill -9"
    );
    assert_eq!(reported % CRASH_BATCH, 0);
    // Whatever the child committed but had not reported yet is whole batches too: a batch is
    // one transaction.
    assert_eq!(ids.len() as u64 % CRASH_BATCH, 0, "no partial batch");
    assert!(leased.iter().all(|j| j.delivery.attempt == 1));
    assert_eq!(
        store.stats().await.unwrap().depth(),
        ids.len() as u64,
        "every surviving job is leased"
    );
    eprintln!(
        "kill -9: {reported} reported jobs verified, {} present",
        ids.len()
    );
}

#[tokio::test]
async fn redb_sweep_makes_what_fits_under_max_jobs() {
    let dir = TempDir::new("sweep-full");
    let store = RedbJobStore::open(&dir.db(), 2).unwrap();
    sweep_makes_what_fits_under_max_jobs(&store).await;
}

#[tokio::test]
async fn auto_resolve_survives_a_reopen() {
    let dir = TempDir::new("auto-resolve");
    let path = dir.db();
    let target = TargetName::new("t").unwrap();
    let ttl = Duration::from_secs(60);
    let firing = alert("Reopened", Some("critical"), 300);
    {
        let store = RedbJobStore::open(&path, 100).unwrap();
        store
            .enqueue_batch(vec![admit(&target, firing.clone())], at(0))
            .await
            .unwrap();
        let job = store.lease(&target, 10, ttl, at(1)).await.unwrap().jobs[0].id;
        store.ack(job, at(2)).await.unwrap();
        // A re-send extends the endsAt; the accepted alert stays.
        store
            .enqueue_batch(
                vec![admit(&target, alert("Reopened", Some("critical"), 500))],
                at(100),
            )
            .await
            .unwrap();
    }
    let store = RedbJobStore::open(&path, 100).unwrap();
    let plan = SweepPlan::new(vec![(target.clone(), None)], Duration::ZERO);
    let early = store.sweep(&plan, at(499)).await.unwrap();
    assert_eq!(
        early.resolved, 0,
        "the refreshed endsAt (500) survived the reopen"
    );
    let report = store.sweep(&plan, at(600)).await.unwrap();
    assert_eq!(
        (report.resolved, report.targets.clone()),
        (1, vec![target.clone()])
    );
    let jobs = store.lease(&target, 10, ttl, at(600)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(*jobs[0].alert, alert("Reopened", Some("critical"), 500));
    assert_eq!(
        jobs[0].alert.alert.status_at(at(600)),
        AlertStatus::Resolved
    );
    assert_eq!(
        (jobs[0].delivery.sequence, jobs[0].priority),
        (2, Priority::Low)
    );
    drop(jobs);
    drop(store);

    // The resolve itself and the resolved entry are durable: after another reopen the job is
    // still queued and a sweep makes nothing new.
    let store = RedbJobStore::open(&path, 100).unwrap();
    let report = store.sweep(&plan, at(700)).await.unwrap();
    assert_eq!(
        report.resolved, 0,
        "a resolve is made once, across restarts too"
    );
    let jobs = store.lease(&target, 10, ttl, at(700)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1, "the resolve job survived the reopen");
    assert_eq!(jobs[0].delivery.sequence, 2);
    let fingerprint = firing.alert.fingerprint();
    let entry = store.log_entry("t", fingerprint).unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.sequence, entry.accepted_at),
        (AlertStatus::Resolved, 2, at(600))
    );
}

#[tokio::test]
async fn message_refs_survive_a_reopen() {
    use alert_core::MessageRef;

    let dir = TempDir::new("message-refs");
    let path = dir.db();
    let fingerprint = alert("Slack", None, 86_400).alert.fingerprint();
    let other = alert("Other", None, 86_400).alert.fingerprint();
    {
        let store = RedbJobStore::open(&path, 100).unwrap();
        let refs = store.message_refs();
        assert_eq!(refs.get("slack", fingerprint).await, None);
        refs.put(
            "slack",
            fingerprint,
            MessageRef::new("C123", "1700000000.000100"),
        )
        .await;
        refs.put("rootly", fingerprint, MessageRef::new("", "alert-42"))
            .await;
        refs.put("slack", other, MessageRef::new("C123", "1700000000.000200"))
            .await;
        refs.remove("slack", other).await;
        // A later put replaces the earlier one.
        refs.put("rootly", fingerprint, MessageRef::new("", "alert-43"))
            .await;
    }

    let store = RedbJobStore::open(&path, 100).unwrap();
    let refs = store.message_refs();
    assert_eq!(
        refs.get("slack", fingerprint).await,
        Some(MessageRef::new("C123", "1700000000.000100"))
    );
    assert_eq!(
        refs.get("rootly", fingerprint).await,
        Some(MessageRef::new("", "alert-43"))
    );
    assert_eq!(
        refs.get("slack", other).await,
        None,
        "removed before the reopen"
    );
    assert_eq!(refs.get("pager", fingerprint).await, None);

    // The references do not keep the store open: once it is gone they find and keep nothing.
    drop(store);
    assert_eq!(refs.get("slack", fingerprint).await, None);
    refs.put("slack", other, MessageRef::new("C1", "1")).await;
    let store = RedbJobStore::open(&path, 100).unwrap();
    assert_eq!(store.message_refs().get("slack", other).await, None);
}

#[tokio::test]
async fn concurrent_batches_refused_as_full_leave_the_others_committed() {
    let dir = TempDir::new("group-full");
    let path = dir.db();
    let target = TargetName::new("t").unwrap();
    let accepted: Vec<usize>;
    {
        let store = RedbJobStore::open(&path, 5).unwrap();
        // Sent together, so the writer commits several of them in one group: the refusal of the
        // batches that do not fit must not touch the ones that do.
        let answers = futures_join_all(
            (0..10)
                .map(|i| {
                    store.enqueue_batch(
                        vec![admit(&target, alert(&format!("G{i}"), None, 86_400))],
                        at(0),
                    )
                })
                .collect(),
        )
        .await;
        accepted = (0..10).filter(|&i| answers[i].is_ok()).collect();
        assert_eq!(accepted.len(), 5, "{answers:?}");
        for (i, answer) in answers.iter().enumerate() {
            if !accepted.contains(&i) {
                assert_eq!(
                    answer.as_ref().unwrap_err(),
                    &alert_core::JobStoreError::Full { max_jobs: 5 }
                );
            }
        }
        // Two acks, answered from memory; the clean close below makes them durable.
        let leased = store
            .lease(&target, 2, Duration::from_secs(60), at(1))
            .await
            .unwrap()
            .jobs;
        for job in &leased {
            store.ack(job.id, at(1)).await.unwrap();
        }
        assert_eq!(store.stats().await.unwrap().depth(), 3);
    }
    let store = RedbJobStore::open(&path, 5).unwrap();
    assert_eq!(
        store.stats().await.unwrap().depth(),
        3,
        "the acks made before the clean close were persisted"
    );
    for i in 0..10 {
        let fingerprint = alert(&format!("G{i}"), None, 86_400).alert.fingerprint();
        let logged = store.log_entry("t", fingerprint).unwrap().is_some();
        assert_eq!(
            logged,
            accepted.contains(&i),
            "G{i}: only an accepted batch wrote its log entry"
        );
        assert_eq!(
            store
                .last_accepted_alert("t", fingerprint)
                .unwrap()
                .is_some(),
            logged,
            "G{i}: a log entry keeps its accepted alert"
        );
    }
}

/// Polls `futures` together on the current task, as `join_all` does.
async fn futures_join_all<T>(futures: Vec<alert_core::BoxFuture<'_, T>>) -> Vec<T> {
    let mut futures: Vec<Option<alert_core::BoxFuture<'_, T>>> =
        futures.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in futures.iter_mut().zip(out.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *result = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}

#[tokio::test]
async fn a_notification_log_keyed_by_target_is_moved_to_the_fingerprint_keyed_table() {
    let dir = TempDir::new("log-migration");
    let path = dir.db();
    let target = TargetName::new("t").unwrap();
    let firing = alert("Migrated", None, 86_400);
    let fingerprint = firing.alert.fingerprint();
    {
        let store = RedbJobStore::open(&path, 100).unwrap();
        store
            .enqueue_batch(vec![admit(&target, firing.clone())], at(0))
            .await
            .unwrap();
    }
    // Rewrite the file as an earlier build left it: the log under (target, fingerprint).
    let old = redb::TableDefinition::<'_, (&str, u64), &[u8]>::new("queue_notification_log");
    let new =
        redb::TableDefinition::<'_, (u64, &str), &[u8]>::new("notification_log_by_fingerprint");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut from = txn.open_table(new).unwrap();
            let mut to = txn.open_table(old).unwrap();
            let rows: Vec<((u64, String), Vec<u8>)> = redb::ReadableTable::iter(&from)
                .unwrap()
                .map(|row| {
                    let (k, v) = row.unwrap();
                    let (fp, t) = k.value();
                    ((fp, t.to_owned()), v.value().to_vec())
                })
                .collect();
            assert_eq!(rows.len(), 1);
            for ((fp, t), v) in rows {
                to.insert((t.as_str(), fp), v.as_slice()).unwrap();
                from.remove((fp, t.as_str())).unwrap();
            }
        }
        txn.delete_table(new).unwrap();
        txn.commit().unwrap();
    }
    let store = RedbJobStore::open(&path, 100).unwrap();
    let entry = store.log_entry("t", fingerprint).unwrap();
    assert!(entry.is_some(), "the migrated entry is in the log");
    // A re-send of the same alert is a duplicate: the log decides from the migrated entry.
    let again = store
        .enqueue_batch(vec![admit(&target, firing)], at(1))
        .await
        .unwrap();
    assert!(matches!(again[0], Admitted::Duplicate), "{again:?}");
    drop(store);
    let db = redb::Database::create(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert!(
        !names.contains(&"queue_notification_log".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"notification_log_by_fingerprint".to_owned()),
        "{names:?}"
    );
}

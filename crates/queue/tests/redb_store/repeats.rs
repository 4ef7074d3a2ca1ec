//! Re-sends that only move an alert's `endsAt` are kept in memory: a clean close writes them,
//! and after a `kill -9` the restored ends are never earlier than the lost re-sends' and are
//! granted the restart grace.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alert_core::{
    Admitted, AlertStatus, EnrichedAlert, IngestQueue, QueueMaintenance, SweepPlan, TargetName,
};
use queue::RedbJobStore;

use super::TempDir;
use crate::{admit, alert, at};

/// Selects the child mode of [`repeats_child`]: the database path.
const REPEATS_CHILD_ENV: &str = "ALERTPUB_QUEUE_REPEATS_CHILD";
const GRACE: Duration = Duration::from_secs(300);

/// The timeline both tests play, with the last re-send at 600 s:
/// - `Steady` is accepted at 0 ending at 240 (a four-minute lead), then re-sent every minute
///   with the same lead: nothing of that needs a write;
/// - `Longer` is accepted at 0 ending at 240, then re-sent at 60 ending at 1 060, further ahead
///   than its lead allows in memory only: that re-send is written.
async fn play(store: &RedbJobStore, target: &TargetName) {
    let first = store
        .enqueue_batch(
            vec![
                admit(target, alert("Steady", None, 240)),
                admit(target, alert("Longer", None, 240)),
            ],
            at(0),
        )
        .await
        .unwrap();
    assert!(
        first.iter().all(|a| matches!(a, Admitted::Enqueued { .. })),
        "{first:?}"
    );
    for minute in 1..=10 {
        let now = minute * 60;
        let mut batch = vec![admit(target, alert("Steady", None, now + 240))];
        if minute == 1 {
            batch.push(admit(target, alert("Longer", None, 1_060)));
        }
        let answers = store.enqueue_batch(batch, at(now)).await.unwrap();
        assert!(
            answers.iter().all(|a| *a == Admitted::Duplicate),
            "{answers:?}"
        );
    }
}

fn ends_of(store: &RedbJobStore, alert: &EnrichedAlert) -> Option<chrono::DateTime<chrono::Utc>> {
    store
        .log_entry("t", alert.alert.fingerprint())
        .unwrap()
        .unwrap()
        .ends_at
}

/// The crash test's child: does nothing unless [`REPEATS_CHILD_ENV`] names a database. Then it
/// plays the timeline, says so on stdout, and waits (at most 30 s) to be killed.
#[test]
fn repeats_child() {
    let Some(path) = std::env::var_os(REPEATS_CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RedbJobStore::open(Path::new(&path), 1_000).unwrap();
        play(&store, &TargetName::new("t").unwrap()).await;
        let mut out = std::io::stdout().lock();
        writeln!(out, "played").unwrap();
        out.flush().unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            std::thread::park_timeout(Duration::from_secs(1));
        }
        drop(store);
    });
}

#[tokio::test]
async fn after_kill_9_the_restored_ends_cover_every_lost_re_send() {
    let dir = TempDir::new("repeats-crash");
    let path = dir.db();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "redb_store::repeats::repeats_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(REPEATS_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest may print the test's name on the same line first.
    let played = lines.any(|line| line.is_ok_and(|l| l.ends_with("played")));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        played,
        "the child did not play the timeline ({status}): {stderr}"
    );

    let store = RedbJobStore::open(&path, 1_000)
        .unwrap()
        .with_restart_grace(GRACE);
    let target = TargetName::new("t").unwrap();
    let (steady, longer) = (alert("Steady", None, 0), alert("Longer", None, 0));
    // The database holds what was written: the steady re-sends were not.
    assert_eq!(ends_of(&store, &steady), Some(at(240)));
    assert_eq!(ends_of(&store, &longer), Some(at(1_060)));

    // Loaded (first swept) at 1 000. `Steady` gets the grace, longer than its lead plus slack
    // (270 s); `Longer` its lead (1 000 s) plus slack (125 s).
    let plan = SweepPlan::new(vec![(target.clone(), None)], Duration::ZERO);
    let report = store.sweep(&plan, at(1_000)).await.unwrap();
    assert_eq!(report.resolved, 0, "no alert is resolved by the restart");
    assert_eq!(ends_of(&store, &steady), Some(at(1_300)));
    assert_eq!(ends_of(&store, &longer), Some(at(2_125)));
    // Every end a lost re-send set (at most 840) is covered.
    assert_eq!(store.sweep(&plan, at(1_299)).await.unwrap().resolved, 0);
    let report = store.sweep(&plan, at(1_300)).await.unwrap();
    assert_eq!(
        report.resolved, 1,
        "the stopped alert resolves at the grace"
    );
    let report = store.sweep(&plan, at(2_125)).await.unwrap();
    assert_eq!(report.resolved, 1);
    let entry = store
        .log_entry("t", steady.alert.fingerprint())
        .unwrap()
        .unwrap();
    assert_eq!(entry.status, AlertStatus::Resolved);
}

#[tokio::test]
async fn a_re_send_after_the_restart_keeps_an_alert_firing() {
    let dir = TempDir::new("repeats-resend");
    let path = dir.db();
    let target = TargetName::new("t").unwrap();
    {
        let store = RedbJobStore::open(&path, 1_000).unwrap();
        play(&store, &target).await;
        // A clean close writes the ends kept in memory.
    }
    let store = RedbJobStore::open(&path, 1_000)
        .unwrap()
        .with_restart_grace(GRACE);
    let steady = alert("Steady", None, 0);
    assert_eq!(
        ends_of(&store, &steady),
        Some(at(840)),
        "written at the close"
    );
    let plan = SweepPlan::new(vec![(target.clone(), None)], Duration::ZERO);
    // No grace after a clean close: the ends are exact.
    assert_eq!(store.sweep(&plan, at(839)).await.unwrap().resolved, 0);
    // The sender goes on re-sending, and is answered without a job.
    let answers = store
        .enqueue_batch(vec![admit(&target, alert("Steady", None, 1_079))], at(839))
        .await
        .unwrap();
    assert_eq!(answers, vec![Admitted::Duplicate]);
    // `Longer` resolves at the end its written re-send gave, `Steady` at its new one.
    assert_eq!(store.sweep(&plan, at(1_070)).await.unwrap().resolved, 1);
    assert_eq!(store.sweep(&plan, at(1_078)).await.unwrap().resolved, 0);
    assert_eq!(store.sweep(&plan, at(1_079)).await.unwrap().resolved, 1);
}

#[tokio::test]
async fn a_refused_batch_moves_no_end() {
    let dir = TempDir::new("repeats-refused");
    let store = RedbJobStore::open(&dir.db(), 1_000)
        .unwrap()
        .with_max_active_alerts(1);
    let target = TargetName::new("t").unwrap();
    let steady = alert("Steady", None, 240);
    store
        .enqueue_batch(vec![admit(&target, steady.clone())], at(0))
        .await
        .unwrap();
    // The re-send alone would be kept in memory; with a new alert beside it the batch goes to
    // the writer, which refuses it whole.
    let refused = store
        .enqueue_batch(
            vec![
                admit(&target, alert("Steady", None, 300)),
                admit(&target, alert("New", None, 300)),
            ],
            at(60),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(ends_of(&store, &steady), Some(at(240)), "nothing partial");
}

//! The store's health view, the reopen backoff and the dead-letter scans' own limit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alert_core::{
    BrokenReason, DeadLetterFilter, DeadLetterQueue, IngestQueue, JobStoreError, QueueMaintenance,
    StoreCondition,
};
use redb::Database;
use redb::backends::InMemoryBackend;

use super::DLQ_SCANS;
use super::RedbJobStore;
use super::health::REOPEN_BACKOFF_CAP;
use super::health::REOPEN_BACKOFF_START;
use super::tests::{FlakyDisk, admission, at, store_on_a_flaky_disk};

#[tokio::test]
async fn a_store_whose_commits_keep_failing_is_failing_until_one_succeeds() {
    let disk = FlakyStore::new();
    let store = &disk.store;
    store
        .enqueue_batch(vec![admission("Before")], at(0))
        .await
        .unwrap();
    assert_eq!(store.health().condition, StoreCondition::Healthy);

    disk.failing.store(true, Ordering::SeqCst);
    for i in 0..alert_core::job::FAILING_AFTER {
        assert_eq!(
            store.health().condition,
            StoreCondition::Healthy,
            "{i} failures in a row are not yet a failing store"
        );
        let refused = store.enqueue_batch(vec![admission("During")], at(1)).await;
        assert!(
            matches!(refused, Err(JobStoreError::Storage(_))),
            "{refused:?}"
        );
    }
    let condition = store.health().condition;
    assert!(
        matches!(
            &condition,
            StoreCondition::Failing {
                consecutive_failures: 3,
                ..
            }
        ),
        "{condition:?}"
    );
    assert!(!condition.is_ready() && condition.is_live());

    // Once the disk has room and the backoff has passed, the next commit heals the store.
    disk.failing.store(false, Ordering::SeqCst);
    disk.advance(REOPEN_BACKOFF_CAP);
    store
        .enqueue_batch(vec![admission("After")], at(2))
        .await
        .unwrap();
    assert_eq!(store.health().condition, StoreCondition::Healthy);
}

/// A store on an in-memory disk whose writes fail while `failing` is set, which counts the
/// times its database is opened and reads a clock the test moves.
struct FlakyStore {
    store: RedbJobStore,
    failing: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    now: Arc<Mutex<Instant>>,
}

impl FlakyStore {
    fn new() -> Self {
        let failing = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let memory = Arc::new(InMemoryBackend::new());
        let (flag, count) = (Arc::clone(&failing), Arc::clone(&opened));
        let opener = move || {
            count.fetch_add(1, Ordering::SeqCst);
            Database::builder().create_with_backend(FlakyDisk {
                inner: Arc::clone(&memory),
                failing: Arc::clone(&flag),
                slow: Arc::new(Mutex::new(())),
            })
        };
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = Arc::clone(&now);
        let store = RedbJobStore::with_opener_and_clock(
            std::path::PathBuf::from("memory"),
            100,
            Box::new(opener),
            Arc::new(move || *read.lock().unwrap()),
        )
        .unwrap();
        Self {
            store,
            failing,
            opened,
            now,
        }
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }

    fn opens(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }
}

#[test]
fn a_store_whose_writer_stopped_is_broken() {
    let (mut store, _) = store_on_a_flaky_disk();
    assert!(store.health().condition.is_live());
    // The writer ends once its channel closes, as it would if it panicked.
    drop(store.ops.take());
    if let Some(writer) = store.writer.take() {
        writer.join().unwrap();
    }
    let condition = store.health().condition;
    assert_eq!(
        condition,
        StoreCondition::Broken {
            reason: BrokenReason::WriterStopped
        }
    );
    assert!(!condition.is_ready() && !condition.is_live());
    assert_eq!(condition.kind(), "store_writer_stopped");
}

#[test]
fn a_store_whose_state_is_poisoned_is_broken() {
    let (store, _) = store_on_a_flaky_disk();
    let shared = Arc::clone(&store.shared);
    let panicked = std::thread::spawn(move || {
        let _state = shared.state.lock().unwrap();
        panic!("a panic while the state is locked");
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(
        store.health().condition,
        StoreCondition::Broken {
            reason: BrokenReason::Poisoned
        }
    );
}

#[tokio::test]
async fn reopening_after_an_io_failure_backs_off_exponentially() {
    let disk = FlakyStore::new();
    let write = || disk.store.enqueue_batch(vec![admission("Full")], at(1));
    assert_eq!(disk.opens(), 1);

    // The first failure latches the handle; the next write reopens it, which fails too.
    disk.failing.store(true, Ordering::SeqCst);
    assert!(write().await.is_err());
    assert!(write().await.is_err());
    assert_eq!(disk.opens(), 2, "one reopen attempt");
    // Until the backoff has passed, writes fail without trying again.
    for _ in 0..20 {
        let refused = write().await;
        assert!(
            matches!(&refused, Err(JobStoreError::Storage(m)) if m.to_string().contains("next attempt")),
            "{refused:?}"
        );
    }
    assert_eq!(disk.opens(), 2, "no reopen while backing off");
    // The waits double: 250 ms, then 500 ms, then 1 s.
    let mut expected = 2;
    for wait in [1, 2, 4] {
        disk.advance(REOPEN_BACKOFF_START * wait - Duration::from_millis(1));
        assert!(write().await.is_err());
        assert_eq!(
            disk.opens(),
            expected,
            "still backing off, {wait} x the start"
        );
        disk.advance(Duration::from_millis(1));
        assert!(write().await.is_err());
        expected += 1;
        assert_eq!(
            disk.opens(),
            expected,
            "the attempt after {wait} x the start"
        );
    }

    // Once the disk has room and the backoff has passed, the next write reopens and succeeds.
    disk.failing.store(false, Ordering::SeqCst);
    disk.advance(REOPEN_BACKOFF_START * 8);
    write().await.unwrap();
    assert_eq!(disk.opens(), expected + 1);
    assert_eq!(disk.store.health().condition, StoreCondition::Healthy);
}

// The std lock stands for a slow scan: holding it across awaits keeps the scans on their
// blocking threads.
#[allow(clippy::await_holding_lock)]
#[test]
fn dead_letter_scans_leave_the_blocking_pool_to_others() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(DLQ_SCANS + 1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (store, _) = store_on_a_flaky_disk();
        let store = Arc::new(store);
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (entered, scans_entered) = std::sync::mpsc::channel();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            let gate = Arc::clone(&gate);
            let hook = move || {
                let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                let _ = entered.send(());
                drop(gate.lock());
                running.fetch_sub(1, Ordering::SeqCst);
            };
            assert!(store.shared.scan_hook.set(Box::new(hook)).is_ok());
        }
        let scans: Vec<_> = (0..6)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store
                        .dead_letters(&DeadLetterFilter::default(), None, 10)
                        .await
                        .map(|page| page.entries.len())
                })
            })
            .collect();
        for _ in 0..DLQ_SCANS {
            scans_entered
                .recv_timeout(Duration::from_secs(10))
                .expect("a scan starts");
        }
        // Another user of the blocking pool (the HTTP client resolving a host name) still gets
        // a thread while the scans are stuck.
        let other = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(|| "resolved"),
        )
        .await;
        assert!(
            matches!(other, Ok(Ok("resolved"))),
            "the blocking pool is starved"
        );
        drop(held);
        for scan in scans {
            assert_eq!(scan.await.unwrap(), Ok(0));
        }
        assert_eq!(most.load(Ordering::SeqCst), DLQ_SCANS);
    });
}

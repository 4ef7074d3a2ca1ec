//! Enqueue+complete throughput of the redb job store, beside a bare redb commit loop measured in
//! the same process (SPEC §9, issue 6 acceptance 9).
//!
//! - **store**: 10 targets. 32 concurrent "ingest" tasks each commit one alert per
//!   `enqueue_batch` (10 admissions, one per target), while 4 consumer tasks per target each
//!   lease up to 16 jobs at a time and ack them, until every job of `ALERTS` alerts is acked. One
//!   criterion iteration is one such run on a fresh database file.
//! - **bare**: one `Durability::Immediate` write transaction per insert of a ~1 KB value, the
//!   floor any durable ingest pays per commit. The samples together make as many commits as one
//!   store run makes ingest requests (each iteration makes a tenth of them, so the whole bench
//!   stays within a couple of minutes on a disk whose fsync takes milliseconds).
//!
//! Besides criterion's own report it prints one summary line,
//! `queue_throughput: alerts/s=… jobs/s=… bare_commits/s=… bare_p99_ms=…` (medians over the
//! samples; the p99 over every bare commit), and writes the same figures as JSON to
//! `<target>/bench/queue_throughput.json`, where `<target>` is `CARGO_TARGET_DIR` when it is an
//! absolute path, else the target directory this binary was built in.
//!
//! The database files live under the system's temporary directory, which must be on a real disk
//! for the figures to mean anything (a tmpfs makes fsync free).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alert_core::{
    Admission, Alert, Annotations, EnrichedAlert, IngestQueue, Labels, LaneQueue, TargetName,
};
use chrono::Utc;
use criterion::{Criterion, SamplingMode, Throughput};
use queue::RedbJobStore;
use redb::{Database, Durability, TableDefinition};
use tokio::sync::Notify;

/// Targets per alert.
const TARGETS: usize = 10;
/// Concurrent ingest tasks, as concurrent HTTP requests would be.
const INGEST_TASKS: usize = 32;
/// Jobs per lease, as a dispatcher lane asks: its in-flight limit.
const LEASE: usize = 16;
/// Leases a target's consumers hold at once: a lane holds up to four times its in-flight limit,
/// jobs in calls and those whose acks wait for the disk.
const LEASES_PER_TARGET: usize = 4;
/// The bare loop's iterations each make this fraction of a store run's ingest requests.
const BARE_SPLIT: u64 = 10;

/// Alerts per store run; `QUEUE_BENCH_ALERTS` overrides the default 2,000.
fn alerts_per_run() -> u64 {
    std::env::var("QUEUE_BENCH_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2_000)
}

/// A directory under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "alertpub-queue-bench-{what}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("creating the bench's scratch directory");
        Self(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("queue.redb")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A realistic alert of about 1 KB, distinct per `i`.
fn alert(i: u64) -> EnrichedAlert {
    let labels: Labels = [
        ("alertname", format!("BenchAlert{i}")),
        ("instance", format!("node-{}.example.internal:9100", i % 97)),
        ("job", "node-exporter".to_owned()),
        ("severity", "warning".to_owned()),
        ("namespace", "monitoring".to_owned()),
        ("cluster", "eu-west-1-prod".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let annotations: Annotations = [
        (
            "summary".to_owned(),
            format!("Filesystem on node-{} is almost full", i % 97),
        ),
        ("description".to_owned(), "x".repeat(600)),
        (
            "runbook_url".to_owned(),
            "https://runbooks.example.com/node/filesystem-almost-full".to_owned(),
        ),
    ]
    .into();
    let now = Utc::now();
    let ends = now + chrono::Duration::hours(1);
    EnrichedAlert::new(
        Alert::build(
            labels,
            annotations,
            now,
            Some(ends),
            Some("https://prometheus.example.com/graph".to_owned()),
        )
        .expect("a valid alert"),
    )
}

/// One store run: `alerts` alerts through ingest, lease and ack. Returns the time from the first
/// enqueue to the last ack.
async fn store_run(store: Arc<RedbJobStore>, alerts: u64) -> Duration {
    let targets: Arc<Vec<TargetName>> = Arc::new(
        (0..TARGETS)
            .map(|t| TargetName::new(&format!("target-{t}")).expect("a valid name"))
            .collect(),
    );
    // One wake-up per consumer, `LEASES_PER_TARGET` for each target in turn.
    let wakers: Arc<Vec<Notify>> = Arc::new(
        (0..TARGETS * LEASES_PER_TARGET)
            .map(|_| Notify::new())
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..TARGETS).map(|_| AtomicU64::new(0)).collect());
    for t in 0..TARGETS {
        for c in 0..LEASES_PER_TARGET {
            let (store, targets, wakers, acked) = (
                Arc::clone(&store),
                Arc::clone(&targets),
                Arc::clone(&wakers),
                Arc::clone(&acked),
            );
            tasks.push(tokio::spawn(async move {
                let target = &targets[t];
                while acked[t].load(Ordering::Relaxed) < alerts {
                    let lease = store
                        .lease(target, LEASE, Duration::from_secs(300), Utc::now())
                        .await
                        .expect("lease");
                    if lease.jobs.is_empty() {
                        // `notify_one` keeps a permit when no one waits, so a wake-up sent
                        // between the lease and this await is not lost.
                        wakers[t * LEASES_PER_TARGET + c].notified().await;
                        continue;
                    }
                    // A lane runs its attempts concurrently and each acks when it finishes, so
                    // the acks of one lease wait for the same durable commit, as they do in the
                    // server.
                    let acks = lease.jobs.iter().map(|job| store.ack(job.id, Utc::now()));
                    for ack in futures_util::future::join_all(acks).await {
                        ack.expect("ack");
                        acked[t].fetch_add(1, Ordering::Relaxed);
                    }
                }
                // The target's last jobs are acked: its other consumers may be waiting.
                for waker in &wakers[t * LEASES_PER_TARGET..(t + 1) * LEASES_PER_TARGET] {
                    waker.notify_one();
                }
            }));
        }
    }
    for _ in 0..INGEST_TASKS {
        let (store, targets, wakers, next) = (
            Arc::clone(&store),
            Arc::clone(&targets),
            Arc::clone(&wakers),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= alerts {
                    break;
                }
                let alert = alert(i);
                let batch = targets
                    .iter()
                    .map(|t| Admission::new(t.clone(), alert.clone(), None))
                    .collect();
                let answers = store
                    .enqueue_batch(batch, Utc::now())
                    .await
                    .expect("enqueue");
                assert!(answers.iter().all(|a| a.is_enqueued()));
                for waker in wakers.iter() {
                    waker.notify_one();
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a bench task panicked");
    }
    started.elapsed()
}

/// What the samples measured, for the summary line and the JSON file.
#[derive(Default)]
struct Figures {
    alerts_per_sec: Vec<f64>,
    commits_per_sec: Vec<f64>,
    commit_latencies: Vec<Duration>,
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn bench_store(c: &mut Criterion, figures: &Mutex<Figures>, runtime: &tokio::runtime::Runtime) {
    let alerts = alerts_per_run();
    let mut group = c.benchmark_group("queue_throughput");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(alerts));
    group.bench_function("store_alerts", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let scratch = Scratch::new("store");
                let store =
                    Arc::new(RedbJobStore::open(&scratch.file(), 10_000_000).expect("open"));
                let took = runtime.block_on(store_run(Arc::clone(&store), alerts));
                // Closing the store (its writer's last commit) is not part of the run.
                drop(store);
                figures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .alerts_per_sec
                    .push(alerts as f64 / took.as_secs_f64());
                total += took;
            }
            total
        });
    });
    group.finish();
}

const BARE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("bare");

fn bench_bare(c: &mut Criterion, figures: &Mutex<Figures>) {
    let commits = (alerts_per_run() / BARE_SPLIT).max(1);
    let value = vec![0xa5_u8; 1024];
    let mut group = c.benchmark_group("queue_throughput");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(commits));
    group.bench_function("bare_redb_commits", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let scratch = Scratch::new("bare");
                let db = Database::create(scratch.file()).expect("create");
                let mut latencies = Vec::with_capacity(usize::try_from(commits).unwrap_or(0));
                let started = Instant::now();
                for i in 0..commits {
                    let t0 = Instant::now();
                    let mut txn = db.begin_write().expect("begin");
                    txn.set_durability(Durability::Immediate)
                        .expect("durability");
                    txn.open_table(BARE)
                        .expect("table")
                        .insert(i, value.as_slice())
                        .expect("insert");
                    txn.commit().expect("commit");
                    latencies.push(t0.elapsed());
                }
                let took = started.elapsed();
                let mut f = figures.lock().unwrap_or_else(PoisonError::into_inner);
                f.commits_per_sec.push(commits as f64 / took.as_secs_f64());
                f.commit_latencies.extend(latencies);
                total += took;
            }
            total
        });
    });
    group.finish();
}

/// Where the JSON goes: `CARGO_TARGET_DIR` when absolute (a relative one is relative to wherever
/// cargo was started, which this process cannot know), else the target directory this binary
/// sits in (`<target>/<profile>/deps/<bench>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn report(figures: Figures) {
    let Figures {
        mut alerts_per_sec,
        mut commits_per_sec,
        mut commit_latencies,
    } = figures;
    if alerts_per_sec.is_empty() && commits_per_sec.is_empty() {
        return;
    }
    let alerts = median(&mut alerts_per_sec);
    let jobs = alerts * TARGETS as f64;
    let commits = median(&mut commits_per_sec);
    commit_latencies.sort_unstable();
    let p99_ms = commit_latencies
        .get(
            (commit_latencies.len() * 99)
                .div_ceil(100)
                .saturating_sub(1),
        )
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let line = format!(
        "queue_throughput: alerts/s={alerts:.0} jobs/s={jobs:.0} bare_commits/s={commits:.0} \
         bare_p99_ms={p99_ms:.2}"
    );
    // The summary line is this binary's output, for people and for `cargo xtask bench`.
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
    let json = serde_json::json!({
        "queue_throughput": {
            "targets": TARGETS,
            "ingest_tasks": INGEST_TASKS,
            "alerts_per_run": alerts_per_run(),
            "alerts_per_sec": alerts,
            "jobs_per_sec": jobs,
            "samples": alerts_per_sec.len(),
            "bare_commits_per_sec": commits,
            "bare_p99_ms": p99_ms,
            "bare_commits": commit_latencies.len(),
        }
    });
    let dir = target_dir().join("bench");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("queue_throughput.json"),
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
    });
    if let Err(e) = written {
        eprintln!("queue_throughput: writing {}: {e}", dir.display());
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime");
    let figures = Mutex::new(Figures::default());
    let mut c = Criterion::default().configure_from_args();
    bench_store(&mut c, &figures, &runtime);
    bench_bare(&mut c, &figures);
    c.final_summary();
    report(figures.into_inner().unwrap_or_else(PoisonError::into_inner));
}

//! S5, the fleet's steady state: N active alerts re-sent, as Prometheus re-sends every firing
//! alert every minute or so.
//!
//! N alerts labelled like a node-exporter fleet (`alertname`, `instance`, `job`, `severity`, a
//! `summary` annotation, and the runner's `bench_id`) go to 10 instant webhook targets. They are
//! primed once, in 1 000-alert POSTs from 8 connections, until every target has all of them;
//! then the same alerts are re-sent, with `endsAt` four minutes ahead as Prometheus sets it ([`lead`]), in
//! 1 000-alert POSTs from 8 connections for 20 s. A re-send changes nothing a target sees, so the
//! figures are how many it absorbs per second, the p99 of a POST, the memory it holds (after
//! priming and after the re-sends), the deliveries the re-sends caused (which must be none), and
//! the size of the queue file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::load::Sender;
use crate::mock::{Behaviour, MockPool};
use crate::report::{percentile, show};
use crate::server::{Alertpub, Binary, cpu_seconds, peak_rss_kib, rss_kib};
use crate::{MIB, config};

/// Alerts per POST.
const PER_POST: u64 = 1_000;
/// Connections posting at once.
const CONNECTIONS: usize = 8;
/// How long the re-sends run.
const REPEATS_FOR: Duration = Duration::from_secs(20);
/// Targets.
const TARGETS: usize = 10;
/// The most priming may take before the scenario gives up: five minutes, plus a second per
/// thousand alerts (ten thousand deliveries), so a million alerts get 22 minutes.
fn prime_timeout(alerts: u64) -> Duration {
    Duration::from_secs(300 + alerts / 1_000)
}

/// What S5 measured.
pub(crate) struct S5 {
    pub(crate) alerts: u64,
    /// Seconds from the first priming POST until every target had every alert (or the wait
    /// gave up: see `primed`).
    pub(crate) prime_s: f64,
    /// Whether every target got every alert before the re-sends began.
    pub(crate) primed: bool,
    /// Priming POSTs refused (the queue full) or failed, each sent again.
    pub(crate) failed_prime_posts: u64,
    /// Re-sent alerts answered 2xx per second.
    pub(crate) repeats_per_s: f64,
    /// The server's CPU time (user and system) per re-sent alert, in µs: the load generator
    /// shares the two cores, so this says what a re-send costs the server whatever the pace.
    pub(crate) cpu_us_per_repeat: f64,
    /// POSTs that failed during the re-sends.
    pub(crate) failed_posts: u64,
    /// The p50 and p99 of a 1 000-alert POST during the re-sends, in ms.
    pub(crate) post_p50: f64,
    pub(crate) post_p99: f64,
    /// RSS once priming was delivered, and after the re-sends, in MiB.
    pub(crate) rss_primed: f64,
    pub(crate) rss_after: f64,
    /// The peak resident set over the whole run (priming's backlog included), in MiB.
    pub(crate) rss_peak: f64,
    /// Deliveries the targets received during the re-sends.
    pub(crate) new_deliveries: u64,
    /// The queue file's size after the re-sends, in MiB (`None` for a peer without one).
    pub(crate) queue_file_mib: Option<f64>,
}

impl S5 {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "alerts": self.alerts, "prime_s": self.prime_s, "primed": self.primed,
            "failed_prime_posts": self.failed_prime_posts, "repeats_per_s": self.repeats_per_s,
            "cpu_us_per_repeat": self.cpu_us_per_repeat,
            "failed_posts": self.failed_posts, "post_p50_ms": self.post_p50,
            "post_p99_ms": self.post_p99, "rss_primed_mib": self.rss_primed,
            "rss_after_mib": self.rss_after, "rss_peak_mib": self.rss_peak,
            "new_deliveries": self.new_deliveries,
            "queue_file_mib": self.queue_file_mib,
        })
    }

    fn print(&self, who: &str) {
        println!(
            "  {who}: primed {} alerts in {}, {} repeats/s ({} CPU each, POST p50 {} p99 {}, {} failed), RSS {} primed / {} after / {} peak, {} new deliveries{}",
            self.alerts,
            show(self.prime_s, "s"),
            show(self.repeats_per_s, ""),
            show(self.cpu_us_per_repeat, "µs"),
            show(self.post_p50, "ms"),
            show(self.post_p99, "ms"),
            self.failed_posts,
            show(self.rss_primed, "MiB"),
            show(self.rss_after, "MiB"),
            show(self.rss_peak, "MiB"),
            self.new_deliveries,
            self.queue_file_mib
                .map(|m| format!(", queue file {}", show(m, "MiB")))
                .unwrap_or_default(),
        );
    }
}

/// How far ahead each alert's `endsAt` is set (its lead): four minutes, as Prometheus sets it
/// with its defaults. Prometheus re-sends every firing alert each minute, so an alert never
/// outlives its lead; this runner sends each alert once while it primes, and priming a million
/// alerts (ten million deliveries) takes longer than four minutes here, so above 100 000
/// alerts the lead is 30 minutes, as a Prometheus with a longer evaluation interval sets it.
/// The re-sends keep the same lead, so either way they change nothing a target sees.
fn lead(alerts: u64) -> chrono::Duration {
    if alerts > 100_000 {
        chrono::Duration::minutes(30)
    } else {
        chrono::Duration::minutes(4)
    }
}

/// One POST's body: alerts `first..first + PER_POST` (bounded by `alerts`), as Prometheus sends
/// them, starting at `starts_at` and ending [`lead`] from now.
fn body(first: u64, alerts: u64, starts_at: &str) -> Bytes {
    let ends_at = (Utc::now() + lead(alerts)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut out = String::with_capacity(260 * PER_POST as usize);
    out.push('[');
    for id in first..(first + PER_POST).min(alerts) {
        if id > first {
            out.push(',');
        }
        let name = ["NodeDown", "HighLoad", "DiskFull", "MemoryPressure"][(id % 4) as usize];
        let severity = if id % 3 == 0 { "critical" } else { "warning" };
        out.push_str(&format!(
            r#"{{"labels":{{"alertname":"{name}","instance":"node-{id}.fleet.example:9100","job":"node","severity":"{severity}","bench_id":"{id}"}},"annotations":{{"summary":"{name} on node-{id}.fleet.example"}},"startsAt":"{starts_at}","endsAt":"{ends_at}"}}"#
        ));
    }
    out.push(']');
    Bytes::from(out)
}

/// How long a priming loop waits before it sends a refused POST again.
const PRIME_RETRY_AFTER: Duration = Duration::from_millis(250);

/// Posts every alert once, from [`CONNECTIONS`] loops; returns how many POSTs were refused (or
/// failed). A refused POST is sent again after [`PRIME_RETRY_AFTER`], as Prometheus sends the
/// same firing alerts again at its next evaluation, until `deadline`: the server's queue bound
/// (`queue.max_jobs`, a million jobs by default) refuses a fleet's first send while its backlog
/// is full, and that bound, not the size of the fleet, is what the backlog may cost.
async fn prime(sender: &Sender, url: &str, alerts: u64, starts_at: &str, deadline: Instant) -> u64 {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (sender, url, next, failed) = (
            sender.clone(),
            url.to_owned(),
            Arc::clone(&next),
            Arc::clone(&failed),
        );
        let starts_at = starts_at.to_owned();
        tasks.spawn(async move {
            loop {
                let first = next.fetch_add(PER_POST, Ordering::Relaxed);
                if first >= alerts {
                    break;
                }
                while !sender.post(&url, body(first, alerts, &starts_at)).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(PRIME_RETRY_AFTER).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    failed.load(Ordering::Relaxed)
}

/// Re-sends every alert, round after round, from [`CONNECTIONS`] loops for [`REPEATS_FOR`].
/// Returns the alerts answered 2xx, the failed POSTs, each POST's time in ms, and the elapsed
/// time.
async fn repeat(
    sender: &Sender,
    url: &str,
    alerts: u64,
    starts_at: &str,
) -> (u64, u64, Vec<f64>, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + REPEATS_FOR;
    let mut tasks = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (sender, url, next) = (sender.clone(), url.to_owned(), Arc::clone(&next));
        let starts_at = starts_at.to_owned();
        tasks.spawn(async move {
            let (mut absorbed, mut failed, mut times) = (0_u64, 0_u64, Vec::new());
            // Bounded by the deadline, and by a count no 20 s could reach.
            for _ in 0..1_000_000 {
                if Instant::now() >= deadline {
                    break;
                }
                let first = (next.fetch_add(PER_POST, Ordering::Relaxed)) % alerts.max(1);
                let body = body(first, alerts, &starts_at);
                let count = (first + PER_POST).min(alerts) - first;
                let at = Instant::now();
                if sender.post(&url, body).await {
                    absorbed += count;
                } else {
                    failed += 1;
                }
                times.push(at.elapsed().as_secs_f64() * 1e3);
            }
            (absorbed, failed, times)
        });
    }
    let (mut absorbed, mut failed, mut times) = (0, 0, Vec::new());
    while let Some(Ok((a, f, t))) = tasks.join_next().await {
        absorbed += a;
        failed += f;
        times.extend(t);
    }
    (absorbed, failed, times, started.elapsed())
}

/// Where S5 sends, and how its memory and queue file are read.
pub(crate) trait Peer {
    fn ingest_url(&self) -> String;
    fn pid(&self) -> u32;
    fn queue_file_bytes(&self) -> Option<u64>;
}

impl Peer for Alertpub {
    fn ingest_url(&self) -> String {
        self.url("/api/v2/alerts")
    }
    fn pid(&self) -> u32 {
        Alertpub::pid(self)
    }
    fn queue_file_bytes(&self) -> Option<u64> {
        Some(Alertpub::queue_file_bytes(self))
    }
}

/// Runs S5 against whatever `start` starts in front of the pool.
pub(crate) async fn run<P: Peer>(alerts: u64, pool: &MockPool, peer: &P) -> Result<S5> {
    let all: Vec<usize> = (0..TARGETS).collect();
    let sender = Sender::new();
    let url = peer.ingest_url();
    let starts_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let started = Instant::now();
    let failed = prime(
        &sender,
        &url,
        alerts,
        &starts_at,
        started + prime_timeout(alerts),
    )
    .await;
    let posted_s = started.elapsed().as_secs_f64();
    if failed > 0 {
        println!("  {failed} priming POSTs refused and sent again (after {posted_s:.1} s)");
    }
    let left = prime_timeout(alerts).saturating_sub(started.elapsed());
    let primed = pool.wait_for(&all, alerts, left).await;
    let prime_s = started.elapsed().as_secs_f64();
    if !primed {
        println!(
            "  not every primed alert was delivered within {:?} (POSTs took {posted_s:.1} s); unique deliveries per target: {:?}",
            prime_timeout(alerts),
            pool.unique_per_target()
        );
    }
    let rss_primed = rss_kib(peer.pid())? as f64 / MIB;
    let delivered = pool.arrivals_count();
    let cpu_before = cpu_seconds(peer.pid())?;
    let (absorbed, failed_posts, times, elapsed) = repeat(&sender, &url, alerts, &starts_at).await;
    let cpu_repeats = cpu_seconds(peer.pid())? - cpu_before;
    // Whatever the re-sends caused has had a moment to arrive: a second, as a target would see.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let new_deliveries = pool.arrivals_count() - delivered;
    Ok(S5 {
        alerts,
        prime_s,
        primed,
        failed_prime_posts: failed,
        repeats_per_s: absorbed as f64 / elapsed.as_secs_f64(),
        cpu_us_per_repeat: cpu_repeats * 1e6 / (absorbed.max(1) as f64),
        failed_posts,
        post_p50: percentile(&times, 0.50),
        post_p99: percentile(&times, 0.99),
        rss_primed,
        rss_after: rss_kib(peer.pid())? as f64 / MIB,
        rss_peak: peak_rss_kib(peer.pid())? as f64 / MIB,
        new_deliveries,
        queue_file_mib: peer.queue_file_bytes().map(|b| b as f64 / MIB / MIB),
    })
}

/// S5 against alertpub.
pub(crate) async fn alertpub(bin: &Binary, alerts: u64) -> Result<S5> {
    let pool = MockPool::start(&[Behaviour::ok_after(0); TARGETS]).await?;
    // Room for every active alert on every target; the queue keeps its default bound.
    let config = config(&pool).replace(
        "queue:\n",
        &format!(
            "ingest:\n  max_active_alerts: {}\nqueue:\n",
            alerts * TARGETS as u64 * 2,
        ),
    );
    let server = Alertpub::start(bin, &config).await?;
    let run = run(alerts, &pool, &server).await?;
    run.print("alertpub");
    server.stop().await?;
    Ok(run)
}

/// S5 against Alertmanager, on its own mocks.
pub(crate) async fn alertmanager(program: &std::path::PathBuf, alerts: u64) -> Result<S5> {
    let pool = MockPool::start(&[Behaviour::ok_after(0); TARGETS]).await?;
    let peer = crate::peer::Alertmanager::start(program, &pool).await?;
    let run = run(alerts, &pool, &peer).await?;
    run.print("Alertmanager");
    peer.stop();
    Ok(run)
}

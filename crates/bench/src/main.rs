//! The end-to-end benchmark runner behind `cargo xtask bench` (SPEC §9, issue 7).
//!
//! It starts the release `alertpub` binary once per scenario, in a fresh directory with a fresh
//! queue file, in front of mock targets built for benchmarking ([`mock`]), drives it with the
//! load generator ([`load`]) and measures latency as SPEC §9 defines it: from just before an alert
//! is sent to the moment its request headers reach the mock target, "to the last target" being
//! the latest of that alert's targets.
//!
//! - **S1**: 5 targets at 50 ms, 20 alerts/s for 15 s; baseline: the same with 0 ms targets, and
//!   the same 5 targets called one after another by the runner (sequential).
//! - **S2**: 10 instant targets, 5 000 alerts from 32 concurrent senders; baseline: the same
//!   requests sent straight to the mocks with the same client (the loopback limit). It runs in
//!   rounds (`--s2-rounds`, 3), each the direct limit and then alertpub; the ratio is the median
//!   round's, and loss, memory and connections must hold in every round.
//! - **S3**: 3 healthy targets at 20 ms, 2 answering 500, 1 refusing connections; 10 alerts/s
//!   for 15 s; baseline: S1's 0 ms p99.
//! - **S4**: 100 instant targets, 200 alerts from 8 concurrent senders.
//! - **targets**: anonymous RSS with 100 and with 1 000 configured targets, idle and after 200
//!   alerts, as bytes per target.
//! - **S5**: the fleet's steady state: `--s5-alerts` active alerts on 10 instant targets,
//!   primed once, then re-sent in 1 000-alert POSTs from 8 connections for 20 s ([`s5`]).
//!
//! It prints a table, and writes `e2e.json` and `latency.svg` to `--out`. Everything binds to
//! 127.0.0.1; every loop is bounded in count and time; the server is stopped by PID.

// A benchmark runner's output is its table.
#![allow(clippy::print_stdout)]

mod load;
mod mock;
mod peer;
mod pg;
mod report;
mod s5;
mod server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::load::{Sender, Sent};
use crate::mock::{Arrival, Behaviour, MockPool};
use crate::report::{Figure, LatencyRow, percentile, show};
use crate::server::{Alertpub, Binary, Resources};

/// The lanes' in-flight limit the scenarios configure (the default), which bounds connections.
const PER_TARGET_IN_FLIGHT: u64 = 16;
/// How long the scenarios wait for the last deliveries once sending is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a concurrent-senders phase may run.
const SEND_TIMEOUT: Duration = Duration::from_secs(300);
const MIB: f64 = 1024.0;

/// Runs the end-to-end scenarios against a release `alertpub` binary.
#[derive(Parser)]
struct Args {
    /// The `alertpub` binary (a release build).
    #[arg(long)]
    alertpub: PathBuf,
    /// Where `e2e.json` and `latency.svg` go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Run only these scenarios, comma-separated (s1,s2,s3,s4,s5,targets,pg).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Alerts in S2 (fewer when profiling: the profiler slows the server fifty-fold).
    #[arg(long, default_value_t = 5_000)]
    s2_alerts: u64,
    /// S2 rounds, each the direct limit and then alertpub, on fresh mocks and a fresh server.
    /// The ratio reported is the median round's, since a shared host's load moves a single
    /// round's direct limit by a third; every round is printed and in the JSON.
    #[arg(long, default_value_t = 3)]
    s2_rounds: usize,
    /// Rounds of S2 on PostgreSQL, each Alertmanager's S2 and then 1, 2 and 3 replicas; each
    /// figure is the median round's (by its ratio to that round's Alertmanager), with the
    /// spread of all rounds printed and in the JSON.
    #[arg(long, default_value_t = 3)]
    pg_rounds: usize,
    /// The replica counts S2 on PostgreSQL runs with, in each round.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 3])]
    pg_replicas: Vec<usize>,
    /// Run the scenarios that have a peer figure (S2, S5) on this peer too, in the same run:
    /// `alertmanager`.
    #[arg(long)]
    peer: Option<String>,
    /// Active alerts in S5.
    #[arg(long, default_value_t = 20_000)]
    s5_alerts: u64,
    /// A command to start the server under, split on spaces, e.g.
    /// `valgrind --tool=callgrind --callgrind-out-file=target/bench/s2.callgrind`.
    #[arg(long)]
    wrap: Option<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let wanted =
        |s: &str| args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(s));
    if !args.alertpub.exists() {
        bail!("{} does not exist", args.alertpub.display());
    }
    std::fs::create_dir_all(&args.out)?;
    // The server runs in its own directory, so a relative path would no longer name it.
    let bin = std::fs::canonicalize(&args.alertpub)?;
    let wrap: Vec<String> = args
        .wrap
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let bin = &Binary { path: bin, wrap };
    let mut figures = Vec::new();
    let mut details = Vec::new();
    let mut chart = Vec::new();
    let mut s1_base_p99 = None;
    let peer_program = match args.peer.as_deref() {
        Some("alertmanager") => Some(peer::alertmanager_binary()?),
        Some(other) => bail!("unknown peer {other}: the one peer is alertmanager"),
        None => None,
    };

    if wanted("s1") || wanted("s3") {
        println!("S1 baseline: 5 targets at 0 ms, 20 alerts/s for 15 s");
        let base = s1(bin, 0).await?;
        s1_base_p99 = Some(base.p99);
        chart.push(base.row("S1 baseline (0 ms targets)"));
        if wanted("s1") {
            println!("S1: 5 targets at 50 ms, 20 alerts/s for 15 s");
            let run = s1(bin, 50).await?;
            chart.push(run.row("S1 (50 ms targets)"));
            figures.push(
                Figure::new("S1", "p50 to the last target", run.p50, "ms")
                    .baseline("0 ms targets", base.p50),
            );
            let pass = run.p99 <= 1.5 * base.p99 && run.p99 <= 10.0;
            figures.push(
                Figure::new("S1", "p99 to the last target", run.p99, "ms")
                    .baseline("0 ms targets", base.p99)
                    .bar("<= 1.5x baseline and <= 10 ms", pass),
            );
            figures.push(complete_figure("S1", &run));
            println!("S1 sequential: the same 5 targets at 50 ms called one after another");
            let (seq_p50, seq_p99) = s1_sequential(50).await?;
            println!(
                "  sequential: p50 {} p99 {} to the last target",
                show(seq_p50, "ms"),
                show(seq_p99, "ms")
            );
            figures.push(
                Figure::new("S1", "p50 to the last target vs sequential", run.p50, "ms")
                    .baseline("5 calls one after another", seq_p50),
            );
            details.push(("s1", run.to_json()));
            details.push((
                "s1_sequential",
                json!({"p50_ms": seq_p50, "p99_ms": seq_p99}),
            ));
        }
        details.push(("s1_baseline", base.to_json()));
    }

    if wanted("s2") {
        println!(
            "S2: 10 instant targets, 5 000 alerts, 32 concurrent senders (and the direct limit)"
        );
        let mut rounds = Vec::new();
        for round in 1..=args.s2_rounds.max(1) {
            let (run, direct) = s2(bin, args.s2_alerts).await?;
            println!(
                "  round {round}: {} vs {} deliveries/s direct = {:.2}x",
                show(run.deliveries_per_s, ""),
                show(direct, ""),
                run.deliveries_per_s / direct
            );
            rounds.push((run, direct));
        }
        let rounds_json: Vec<Value> = rounds
            .iter()
            .map(|(run, direct)| json!({"direct_deliveries_per_s": direct, "run": run.to_json()}))
            .collect();
        // Every round must lose nothing and stay within the bounds; the throughput is the
        // median round's.
        let lost: u64 = rounds.iter().map(|(r, _)| r.lost).sum();
        let duplicates: u64 = rounds.iter().map(|(r, _)| r.duplicates).sum();
        let peak_rss_kib = rounds
            .iter()
            .map(|(r, _)| r.resources.peak_rss_kib)
            .max()
            .unwrap_or(0);
        let max_conn = rounds
            .iter()
            .flat_map(|(r, _)| r.delivery_connections.iter().copied())
            .max()
            .unwrap_or(0);
        let max_accepted = rounds
            .iter()
            .flat_map(|(r, _)| r.connections.iter().copied())
            .max()
            .unwrap_or(0);
        let max_open = rounds
            .iter()
            .flat_map(|(r, _)| r.peak_open.iter().copied())
            .max()
            .unwrap_or(0);
        rounds.sort_by(|(a, da), (b, db)| {
            (a.deliveries_per_s / da).total_cmp(&(b.deliveries_per_s / db))
        });
        let (run, direct) = rounds.swap_remove(rounds.len() / 2);
        if let Some(program) = &peer_program {
            let am = s2_alertmanager(program, args.s2_alerts).await?;
            figures.push(
                Figure::new(
                    "S2",
                    "deliveries/s vs Alertmanager",
                    run.deliveries_per_s,
                    "/s",
                )
                .baseline("Alertmanager", am)
                .bar(">= 2x Alertmanager", run.deliveries_per_s >= 2.0 * am),
            );
            details.push(("s2_alertmanager", json!({"deliveries_per_s": am})));
        }
        chart.push(run.row("S2 (32 senders, 10 targets)"));
        figures.push(
            Figure::new("S2", "deliveries/s", run.deliveries_per_s, "/s")
                .baseline("direct to the mocks", direct)
                .bar(">= 50% of direct", run.deliveries_per_s >= 0.5 * direct),
        );
        figures.push(
            Figure::new(
                "S2",
                "lost + duplicated deliveries",
                (lost + duplicates) as f64,
                "",
            )
            .bar("0", lost == 0 && duplicates == 0),
        );
        let rss_mib = peak_rss_kib as f64 / MIB;
        figures
            .push(Figure::new("S2", "peak RSS", rss_mib, "MiB").bar("<= 64 MB", rss_mib <= 64.0));
        figures.push(Figure::new(
            "S2",
            "CPU time",
            run.resources.cpu_seconds,
            "s",
        ));
        figures.push(
            Figure::new(
                "S2",
                "max TCP connections per target that carried deliveries",
                max_conn as f64,
                "",
            )
            .bar(
                "<= per_target_in_flight (16)",
                max_conn <= PER_TARGET_IN_FLIGHT,
            ),
        );
        figures.push(Figure::new(
            "S2",
            "max TCP connections accepted per target (health probes' included)",
            max_accepted as f64,
            "",
        ));
        figures.push(
            Figure::new(
                "S2",
                "max connections open at once per target",
                max_open as f64,
                "",
            )
            .bar(
                "<= per_target_in_flight (16)",
                max_open <= PER_TARGET_IN_FLIGHT,
            ),
        );
        figures.push(Figure::new("S2", "p50 to the last target", run.p50, "ms"));
        figures.push(Figure::new("S2", "p99 to the last target", run.p99, "ms"));
        details.push(("s2", run.to_json()));
        details.push(("s2_direct", json!({"deliveries_per_s": direct})));
        details.push(("s2_rounds", Value::Array(rounds_json)));
    }

    if wanted("pg") {
        println!("S2 on PostgreSQL: 1, 2 and 3 replicas sharing one database, each alert to one");
        let cluster = pg::cluster()?;
        // Each round: Alertmanager's S2 (when asked for), then 1, 2 and 3 replicas.
        let mut rounds: Vec<(Option<f64>, Vec<pg::PgRun>)> = Vec::new();
        for round in 1..=args.pg_rounds.max(1) {
            let am = match &peer_program {
                Some(program) => Some(s2_alertmanager(program, args.s2_alerts).await?),
                None => None,
            };
            let mut runs = Vec::new();
            for &replicas in &args.pg_replicas {
                let run = pg::s2(bin, &cluster, args.s2_alerts, replicas, round).await?;
                runs.push(run);
            }
            rounds.push((am, runs));
        }
        let mut medians = Vec::new();
        for (index, &replicas) in args.pg_replicas.iter().enumerate() {
            // (this round's run, this round's Alertmanager), ordered by the ratio between them
            // (or by throughput alone without a peer).
            let mut of: Vec<(&pg::PgRun, Option<f64>)> = rounds
                .iter()
                .map(|(am, runs)| (&runs[index], *am))
                .collect();
            let key = |(run, am): &(&pg::PgRun, Option<f64>)| {
                am.map_or(run.deliveries_per_s, |am| run.deliveries_per_s / am)
            };
            of.sort_by(|a, b| key(a).total_cmp(&key(b)));
            let spread = (key(&of[0]), key(&of[of.len() - 1]));
            let (run, am) = of[of.len() / 2];
            println!(
                "  {replicas} replica(s), median of {} rounds: {:.0} deliveries/s{}",
                of.len(),
                run.deliveries_per_s,
                am.map_or(String::new(), |am| format!(
                    ", {:.2}x Alertmanager ({:.0}/s; rounds {:.2}x to {:.2}x)",
                    run.deliveries_per_s / am,
                    am,
                    spread.0,
                    spread.1
                ))
            );
            let label = format!("deliveries/s, {replicas} replica(s)");
            let mut figure = Figure::new("S2 on PostgreSQL", &label, run.deliveries_per_s, "/s");
            if let Some(am) = am {
                figure = figure.baseline("Alertmanager", am);
                if replicas == 3 {
                    figure = figure.bar(">= 1x Alertmanager", run.deliveries_per_s >= am);
                }
            }
            figures.push(figure);
            figures.push(Figure::new(
                "S2 on PostgreSQL",
                &format!("ingest p99, {replicas} replica(s)"),
                run.ingest_p99_ms,
                "ms",
            ));
            figures.push(Figure::new(
                "S2 on PostgreSQL",
                &format!("database CPU, {replicas} replica(s)"),
                run.db_cpu_s,
                "s",
            ));
            figures.push(Figure::new(
                "S2 on PostgreSQL",
                &format!("replicas' CPU, {replicas} replica(s)"),
                run.replicas_cpu_s,
                "s",
            ));
            let (lost, duplicates): (u64, u64) = rounds
                .iter()
                .map(|(_, runs)| (runs[index].lost, runs[index].duplicates))
                .fold((0, 0), |(l, d), (a, b)| (l + a, d + b));
            figures.push(
                Figure::new(
                    "S2 on PostgreSQL",
                    &format!("lost + duplicated, {replicas} replica(s), all rounds"),
                    (lost + duplicates) as f64,
                    "",
                )
                .bar("0", lost == 0 && duplicates == 0),
            );
            medians.push(json!({
                "replicas": replicas,
                "median": run.to_json(),
                "alertmanager": am,
                "spread": [spread.0, spread.1],
            }));
        }
        let all: Vec<Value> = rounds
            .iter()
            .map(|(am, runs)| {
                json!({
                    "alertmanager": am,
                    "runs": runs.iter().map(pg::PgRun::to_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        details.push(("s2_postgres", json!({"medians": medians, "rounds": all})));
    }

    if wanted("s3") {
        println!(
            "S3: 3 healthy targets at 20 ms, 2 answering 500, 1 refusing; 10 alerts/s for 15 s"
        );
        let run = s3(bin).await?;
        chart.push(run.row("S3 healthy targets"));
        let base = s1_base_p99.unwrap_or(f64::NAN);
        figures.push(
            Figure::new("S3", "healthy targets' p99", run.p99, "ms")
                .baseline("S1 0 ms p99", base)
                .bar("<= 1.5x S1 0 ms p99", run.p99 <= 1.5 * base),
        );
        figures.push(complete_figure("S3", &run));
        details.push(("s3", run.to_json()));
    }

    if wanted("s4") {
        println!("S4: 100 instant targets, 200 alerts, 8 concurrent senders");
        let run = s4(bin).await?;
        chart.push(run.row("S4 (100 targets)"));
        figures.push(Figure::new(
            "S4",
            "deliveries/s",
            run.deliveries_per_s,
            "/s",
        ));
        figures.push(Figure::new("S4", "p50 to the last target", run.p50, "ms"));
        figures.push(Figure::new("S4", "p99 to the last target", run.p99, "ms"));
        let rss_mib = run.resources.peak_rss_kib as f64 / MIB;
        figures
            .push(Figure::new("S4", "peak RSS", rss_mib, "MiB").bar("<= 128 MB", rss_mib <= 128.0));
        figures.push(Figure::new(
            "S4",
            "CPU time",
            run.resources.cpu_seconds,
            "s",
        ));
        figures.push(complete_figure("S4", &run));
        details.push(("s4", run.to_json()));
    }

    if wanted("targets") {
        println!(
            "Memory per target: anonymous RSS with 100 and with 1 000 webhook targets, idle and after 200 \
             alerts to 100 of them"
        );
        let memory = per_target_memory(bin).await?;
        let (idle, loaded) = (memory.idle, memory.loaded);
        figures.push(
            Figure::new("targets", "RSS per configured target, idle", idle, "B")
                .bar("< 3 KB", idle < 3_000.0),
        );
        figures.push(
            Figure::new(
                "targets",
                "RSS per configured target, under S4-like load",
                loaded,
                "B",
            )
            .bar("< 3 KB", loaded < 3_000.0),
        );
        figures.push(Figure::new(
            "targets",
            "RSS added per target that took the load (its connections, log entries, jobs)",
            memory.per_loaded,
            "B",
        ));
        details.push((
            "per_target_bytes",
            json!({"idle": idle, "under_load": loaded, "per_loaded_target": memory.per_loaded}),
        ));
    }

    if wanted("s5") {
        println!(
            "S5: {} active alerts on 10 targets, primed, then re-sent for 20 s",
            args.s5_alerts
        );
        let am = match &peer_program {
            Some(program) => Some(s5::alertmanager(program, args.s5_alerts).await?),
            None => None,
        };
        let run = s5::alertpub(bin, args.s5_alerts).await?;
        let mut repeats = Figure::new("S5", "repeats absorbed/s", run.repeats_per_s, "/s");
        let mut rss = Figure::new("S5", "RSS after the re-sends", run.rss_after, "MiB");
        if let Some(am) = &am {
            repeats = repeats.baseline("Alertmanager", am.repeats_per_s).bar(
                ">= 3x Alertmanager",
                run.repeats_per_s >= 3.0 * am.repeats_per_s,
            );
            rss = rss.baseline("Alertmanager", am.rss_after).bar(
                "<= 1/5 of Alertmanager",
                run.rss_after * 5.0 <= am.rss_after,
            );
            figures.push(Figure::new(
                "S5",
                "Alertmanager deliveries caused by re-sends",
                am.new_deliveries as f64,
                "",
            ));
            details.push(("s5_alertmanager", am.to_json()));
        }
        // Issue 18's bars for a million active alerts: a million re-sends a minute, in 1 GB.
        if args.s5_alerts >= 1_000_000 {
            repeats = repeats.bar(">= 17k/s at 1M", run.repeats_per_s >= 17_000.0);
            rss = rss.bar("<= 1 GB at 1M", run.rss_after <= 1_024.0);
        }
        figures.push(repeats);
        figures.push(rss);
        figures.push(Figure::new(
            "S5",
            "peak RSS (priming included)",
            run.rss_peak,
            "MiB",
        ));
        let mut cpu = Figure::new("S5", "server CPU per re-send", run.cpu_us_per_repeat, "µs");
        if let Some(am) = &am {
            cpu = cpu.baseline("Alertmanager", am.cpu_us_per_repeat);
        }
        figures.push(cpu);
        figures.push(Figure::new(
            "S5",
            "p99 of a 1 000-alert POST",
            run.post_p99,
            "ms",
        ));
        figures.push(Figure::new(
            "S5",
            "RSS after priming",
            run.rss_primed,
            "MiB",
        ));
        figures.push(
            Figure::new(
                "S5",
                "deliveries caused by re-sends",
                run.new_deliveries as f64,
                "",
            )
            .bar("0", run.new_deliveries == 0),
        );
        figures.push(Figure::new("S5", "time to prime", run.prime_s, "s"));
        if let Some(mib) = run.queue_file_mib {
            figures.push(Figure::new("S5", "queue file", mib, "MiB"));
        }
        details.push(("s5", run.to_json()));
    }

    println!();
    print!("{}", report::table(&figures));
    let json_path = args.out.join("e2e.json");
    report::write_json(&json_path, &figures, &details)?;
    let svg_path = args.out.join("latency.svg");
    let caption = format!(
        "alertpub release binary, mock targets on loopback, {} CPUs",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    std::fs::write(&svg_path, report::latency_svg(&chart, &caption))?;
    println!("wrote {} and {}", json_path.display(), svg_path.display());
    Ok(())
}

/// What one scenario measured against alertpub.
#[derive(Default)]
struct Run {
    alerts: u64,
    accepted: u64,
    targets: usize,
    /// Alerts that reached every measured target.
    complete: u64,
    p50: f64,
    p99: f64,
    /// How long ingest took to answer (its commit included), p50 and p99, in ms.
    ingest_p50: f64,
    ingest_p99: f64,
    deliveries_per_s: f64,
    lost: u64,
    duplicates: u64,
    /// TCP connections each target accepted, health probes' included.
    connections: Vec<u64>,
    /// TCP connections each target accepted that carried a delivery.
    delivery_connections: Vec<u64>,
    peak_open: Vec<u64>,
    resources: Resources,
    queue: Value,
    /// Deliveries each target received (retries included).
    requests: Vec<u64>,
    /// Other requests each target received (health probes).
    probes: Vec<u64>,
    /// The queue file's size at the end.
    queue_file_bytes: u64,
}

impl Run {
    fn row(&self, label: &str) -> LatencyRow {
        LatencyRow {
            label: label.to_owned(),
            p50_ms: self.p50,
            p99_ms: self.p99,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "alerts": self.alerts, "accepted": self.accepted, "targets": self.targets,
            "complete": self.complete, "p50_ms": self.p50, "p99_ms": self.p99,
            "ingest_p50_ms": self.ingest_p50, "ingest_p99_ms": self.ingest_p99,
            "deliveries_per_s": self.deliveries_per_s, "lost": self.lost,
            "duplicates": self.duplicates, "connections_per_target": self.connections,
            "delivery_connections_per_target": self.delivery_connections,
            "peak_open_connections_per_target": self.peak_open,
            "peak_rss_kib": self.resources.peak_rss_kib, "cpu_seconds": self.resources.cpu_seconds,
            "threads_at_end": self.resources.threads, "queue_file_bytes": self.queue_file_bytes,
            "requests_per_target": self.requests, "probes_per_target": self.probes,
            "queue_at_end": self.queue,
        })
    }
}

fn complete_figure(scenario: &'static str, run: &Run) -> Figure {
    Figure::new(scenario, "alerts complete", run.complete as f64, "")
        .baseline("alerts sent", run.alerts as f64)
        .bar("all", run.complete == run.alerts)
}

/// The server config for a pool of mocks, all `webhook` targets: a short attempt timeout and
/// backoff so failing targets dead-letter within the scenario, health probes out of the way.
fn config(pool: &MockPool) -> String {
    config_with(pool, |_| "")
}

/// `config`'s settings with `extra(i)` (indented YAML lines) added to target `i`.
fn config_with(pool: &MockPool, extra: impl Fn(usize) -> &'static str) -> String {
    let mut targets = String::new();
    for i in 0..pool.len() {
        targets.push_str(&format!(
            "  - name: t{i:03}\n    kind: webhook\n    url: {}\n{}",
            pool.url(i),
            extra(i)
        ));
    }
    format!(
        r#"server:
  listen: "127.0.0.1:0"
  max_connections: 4096
publishing:
  per_target_timeout: 2s
queue:
  path: queue/alertpub.redb
  max_attempts: 3
  initial_backoff: 100ms
  max_backoff: 1s
  per_target_in_flight: {PER_TARGET_IN_FLIGHT}
health:
  interval: 1h
targets:
{targets}"#
    )
}

/// Latency to the last of `targets` for every accepted alert, in ms, and how many alerts reached
/// them all.
fn latencies(sent: &[Sent], arrivals: &[Arrival], targets: &[usize]) -> (Vec<f64>, u64) {
    let mut first: HashMap<(usize, u64), Instant> = HashMap::new();
    for a in arrivals {
        first
            .entry((a.target, a.id))
            .and_modify(|at| *at = (*at).min(a.at))
            .or_insert(a.at);
    }
    let mut out = Vec::with_capacity(sent.len());
    for s in sent.iter().filter(|s| s.ok) {
        let last = targets
            .iter()
            .map(|&t| first.get(&(t, s.id)).copied())
            .collect::<Option<Vec<_>>>()
            .and_then(|ats| ats.into_iter().max());
        if let Some(last) = last {
            out.push(last.saturating_duration_since(s.at).as_secs_f64() * 1000.0);
        }
    }
    let complete = out.len() as u64;
    (out, complete)
}

/// Deliveries per second from the first send to the last arrival.
fn rate(sent: &[Sent], arrivals: &[Arrival]) -> f64 {
    let start = sent.iter().map(|s| s.at).min();
    let end = arrivals.iter().map(|a| a.at).max();
    match (start, end) {
        (Some(start), Some(end)) if end > start => {
            arrivals.len() as f64 / (end - start).as_secs_f64()
        }
        _ => f64::NAN,
    }
}

/// Finishes a scenario: waits for `targets` to have every alert, reads the server's resources
/// and queue, stops it, and measures.
async fn finish(
    server: Alertpub,
    pool: &MockPool,
    sender: &Sender,
    sent: &[Sent],
    targets: &[usize],
) -> Result<Run> {
    let accepted = sent.iter().filter(|s| s.ok).count() as u64;
    if !pool.wait_for(targets, accepted, DRAIN_TIMEOUT).await {
        println!("  not every delivery arrived within {DRAIN_TIMEOUT:?}");
    }
    let resources = server.resources()?;
    let queue_file_bytes = server.queue_file_bytes();
    let queue = sender
        .get_json(&server.url("/api/v1/queue"))
        .await
        .map(|q| json!({"depth": q["depth"], "dead_letters": q["dead_letters"]}))
        .unwrap_or(Value::Null);
    let log = server.log();
    server.stop().await.context("stopping alertpub")?;
    let arrivals = pool.arrivals();
    let (lat, complete) = latencies(sent, &arrivals, targets);
    let answers: Vec<f64> = sent
        .iter()
        .map(|s| (s.answered - s.at).as_secs_f64() * 1e3)
        .collect();
    let measured: Vec<Arrival> = arrivals
        .iter()
        .filter(|a| targets.contains(&a.target))
        .copied()
        .collect();
    let unique: u64 = pool
        .unique_per_target()
        .iter()
        .enumerate()
        .filter(|(t, _)| targets.contains(t))
        .map(|(_, n)| n)
        .sum();
    let expected = accepted * targets.len() as u64;
    let mut requests = vec![0u64; pool.len()];
    for a in &arrivals {
        requests[a.target] += 1;
    }
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    if errors > 0 {
        println!("  the server logged {errors} errors");
    }
    let run = Run {
        alerts: sent.len() as u64,
        accepted,
        targets: targets.len(),
        complete,
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        ingest_p50: percentile(&answers, 0.50),
        ingest_p99: percentile(&answers, 0.99),
        deliveries_per_s: rate(sent, &measured),
        lost: expected.saturating_sub(unique),
        duplicates: measured.len() as u64 - unique,
        connections: pool.connections(),
        delivery_connections: pool.delivery_connections(),
        peak_open: pool.peak_open_connections(),
        resources,
        queue,
        requests,
        probes: pool.others_per_target(),
        queue_file_bytes,
    };
    println!(
        "  {}/{} accepted (answered in p50 {} p99 {}), {} complete, p50 {} p99 {}, {} deliveries/s, peak RSS {}, CPU {}, {} threads, queue file {}",
        run.accepted,
        run.alerts,
        show(run.ingest_p50, "ms"),
        show(run.ingest_p99, "ms"),
        run.complete,
        show(run.p50, "ms"),
        show(run.p99, "ms"),
        show(run.deliveries_per_s, ""),
        show(run.resources.peak_rss_kib as f64 / MIB, "MiB"),
        show(run.resources.cpu_seconds, "s"),
        run.resources.threads,
        show(run.queue_file_bytes as f64 / MIB / MIB, "MiB"),
    );
    Ok(run)
}

async fn s1(bin: &Binary, delay_ms: u64) -> Result<Run> {
    let pool = MockPool::start(&[Behaviour::ok_after(delay_ms); 5]).await?;
    let server = Alertpub::start(bin, &config(&pool)).await?;
    let sender = Sender::new();
    let sent = load::at_rate(&sender, &server.url("/api/v2/alerts"), 20, 15).await;
    finish(server, &pool, &sender, &sent, &[0, 1, 2, 3, 4]).await
}

/// S2 against alertpub, and the direct limit (deliveries/s) in the same run.
async fn s2(bin: &Binary, alerts: u64) -> Result<(Run, f64)> {
    const SENDERS: usize = 32;
    let all: Vec<usize> = (0..10).collect();
    // The direct limit first, on its own mocks, so alertpub's connection counts stay clean.
    let direct = {
        let pool = MockPool::start(&[Behaviour::ok_after(0); 10]).await?;
        let urls: std::sync::Arc<Vec<String>> =
            std::sync::Arc::new((0..10).map(|i| pool.url(i)).collect());
        let sender = Sender::new();
        let sent = load::concurrent(alerts, SENDERS, SEND_TIMEOUT, move |id| {
            let (sender, urls) = (sender.clone(), std::sync::Arc::clone(&urls));
            async move {
                let body = load::webhook_body(id);
                join_all(urls.iter().map(|url| sender.post(url, body.clone())))
                    .await
                    .into_iter()
                    .all(|ok| ok)
            }
        })
        .await;
        let arrivals = pool.arrivals();
        let per_s = rate(&sent, &arrivals);
        println!(
            "  direct: {} of {} alerts to all 10 mocks, {} deliveries/s",
            sent.iter().filter(|s| s.ok).count(),
            alerts,
            show(per_s, "")
        );
        per_s
    };
    let pool = MockPool::start(&[Behaviour::ok_after(0); 10]).await?;
    let server = Alertpub::start(bin, &config(&pool)).await?;
    let sender = Sender::new();
    let url = server.url("/api/v2/alerts");
    let client = sender.clone();
    let sent = load::concurrent(alerts, SENDERS, SEND_TIMEOUT, move |id| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(&url, load::ingest_body(id)).await }
    })
    .await;
    let run = finish(server, &pool, &sender, &sent, &all).await?;
    Ok((run, direct))
}

async fn s3(bin: &Binary) -> Result<Run> {
    let failing = Behaviour::Answer {
        delay: Duration::ZERO,
        status: 500,
    };
    let pool = MockPool::start(&[
        Behaviour::ok_after(20),
        Behaviour::ok_after(20),
        Behaviour::ok_after(20),
        failing,
        failing,
        Behaviour::Refuse,
    ])
    .await?;
    let server = Alertpub::start(bin, &config(&pool)).await?;
    let sender = Sender::new();
    let sent = load::at_rate(&sender, &server.url("/api/v2/alerts"), 10, 15).await;
    finish(server, &pool, &sender, &sent, &[0, 1, 2]).await
}

async fn s4(bin: &Binary) -> Result<Run> {
    const ALERTS: u64 = 200;
    let pool = MockPool::start(&[Behaviour::ok_after(0); 100]).await?;
    let server = Alertpub::start(bin, &config(&pool)).await?;
    let sender = Sender::new();
    let url = server.url("/api/v2/alerts");
    let client = sender.clone();
    let sent = load::concurrent(ALERTS, 8, SEND_TIMEOUT, move |id| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(&url, load::ingest_body(id)).await }
    })
    .await;
    let all: Vec<usize> = (0..100).collect();
    finish(server, &pool, &sender, &sent, &all).await
}

/// S1's sequential baseline: each alert POSTed straight to the 5 targets at `delay_ms`, one after
/// another, at S1's rate; the p50 and p99 to the last target, in ms.
async fn s1_sequential(delay_ms: u64) -> Result<(f64, f64)> {
    let pool = MockPool::start(&[Behaviour::ok_after(delay_ms); 5]).await?;
    let urls: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new((0..5).map(|i| pool.url(i)).collect());
    let sender = Sender::new();
    let sent = load::at_rate_by(20, 15, move |id| {
        let (sender, urls) = (sender.clone(), std::sync::Arc::clone(&urls));
        async move {
            let body = load::webhook_body(id);
            let mut ok = true;
            for url in urls.iter() {
                ok &= sender.post(url, body.clone()).await;
            }
            ok
        }
    })
    .await;
    let (lat, _) = latencies(&sent, &pool.arrivals(), &[0, 1, 2, 3, 4]);
    Ok((percentile(&lat, 0.50), percentile(&lat, 0.99)))
}

/// RSS per configured target, in bytes: the difference in anonymous RSS (the heap and stacks, not
/// the binary's shared code pages) between 1 000 and 100 webhook targets,
/// idle (once the server is up) and after 200 alerts from 8 senders reached the first 100.
async fn per_target_memory(bin: &Binary) -> Result<TargetMemory> {
    const LOADED: usize = 100;
    const ALERTS: u64 = 200;
    // (targets, idle RSS, RSS after the load), in KiB.
    let mut measured = Vec::new();
    for targets in [LOADED, 1_000] {
        let pool = MockPool::start(&vec![Behaviour::ok_after(0); targets]).await?;
        let server = Alertpub::start(bin, &memory_config(&pool, LOADED)).await?;
        let sender = Sender::new();
        // Idle means after the startup probes: every target's health is known.
        if !probed(&sender, &server, targets).await {
            println!("  {targets} targets: not every startup probe was recorded within 60 s");
        }
        let idle = server::settled_anon_kib(server.pid()).await?;
        // S4's load, on the same 100 targets in both runs: the others are configured and filter
        // these alerts out.
        let url = server.url("/api/v2/alerts");
        let client = sender.clone();
        let sent = load::concurrent(ALERTS, 8, SEND_TIMEOUT, move |id| {
            let (client, url) = (client.clone(), url.clone());
            async move { client.post(&url, load::ingest_body(id)).await }
        })
        .await;
        let accepted = sent.iter().filter(|s| s.ok).count() as u64;
        let loaded_targets: Vec<usize> = (0..LOADED).collect();
        if !pool
            .wait_for(&loaded_targets, accepted, DRAIN_TIMEOUT)
            .await
        {
            println!("  {targets} targets: not every delivery arrived within {DRAIN_TIMEOUT:?}");
        }
        let loaded = server::settled_anon_kib(server.pid()).await?;
        println!(
            "  {targets} targets: anonymous RSS {} idle, {} after {accepted} alerts to {LOADED} of them",
            show(idle as f64 / MIB, "MiB"),
            show(loaded as f64 / MIB, "MiB")
        );
        server.stop().await?;
        measured.push((targets, idle, loaded));
    }
    let (small, large) = (measured[0], measured[1]);
    let per = |a: u64, b: u64| (b as f64 - a as f64) * 1024.0 / (large.0 - small.0) as f64;
    Ok(TargetMemory {
        idle: per(small.1, large.1),
        loaded: per(small.2, large.2),
        per_loaded: (small.2 as f64 - small.1 as f64) * 1024.0 / LOADED as f64,
    })
}

/// What a target costs in RSS, in bytes.
struct TargetMemory {
    /// Per configured target, idle: (RSS with 1 000 targets − RSS with 100) / 900, both after
    /// every startup probe, once the RSS has settled.
    idle: f64,
    /// The same, both after the same 200 alerts delivered to the same 100 targets.
    loaded: f64,
    /// What the load added per target that took it, with 100 targets: its pooled connections,
    /// its notification-log entries and the jobs' records.
    per_loaded: f64,
}

/// `config`'s settings with every target past the first `loaded` filtering out the bench's
/// alerts, and the first `loaded` with one call in flight each: the load's own memory is then the
/// same in both runs (one pooled connection a target; with 16, how many each target ends up
/// holding varies by a few MiB between runs, more than the 900 idle targets' difference).
fn memory_config(pool: &MockPool, loaded: usize) -> String {
    config_with(pool, |i| {
        if i < loaded {
            "    in_flight: 1\n"
        } else {
            "    filter: ['service=\"elsewhere\"']\n"
        }
    })
}

/// Waits (polling, at most 60 s) until the server has recorded a probe of each of its
/// `targets`.
async fn probed(sender: &Sender, server: &Alertpub, targets: usize) -> bool {
    let url = server.url("/api/v1/targets");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(view) = sender.get_json(&url).await {
            let known = view["targets"].as_array().map_or(0, |all| {
                all.iter()
                    .filter(|t| t["health"]["status"].as_str() != Some("unknown"))
                    .count()
            });
            if known >= targets {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// S2's load against Alertmanager on its own 10 instant mocks: deliveries/s from the first send
/// to the last arrival.
async fn s2_alertmanager(program: &PathBuf, alerts: u64) -> Result<f64> {
    let pool = MockPool::start(&[Behaviour::ok_after(0); 10]).await?;
    let am = peer::Alertmanager::start(program, &pool).await?;
    let sender = Sender::new();
    let url = s5::Peer::ingest_url(&am);
    let client = sender.clone();
    let sent = load::concurrent(alerts, 32, SEND_TIMEOUT, move |id| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(&url, load::ingest_body(id)).await }
    })
    .await;
    let accepted = sent.iter().filter(|s| s.ok).count() as u64;
    let all: Vec<usize> = (0..10).collect();
    if !pool.wait_for(&all, accepted, DRAIN_TIMEOUT).await {
        println!("  Alertmanager: not every delivery arrived within {DRAIN_TIMEOUT:?}");
    }
    let per_s = rate(&sent, &pool.arrivals());
    println!(
        "  Alertmanager: {accepted} of {alerts} alerts accepted, {} deliveries/s",
        show(per_s, "")
    );
    am.stop();
    Ok(per_s)
}

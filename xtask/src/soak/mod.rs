//! `cargo xtask soak`: the real `alertpub` binary under mixed load for `--minutes N` (10 by
//! default), with faults a long-running server meets, and a verdict at the end.
//!
//! During the run (every moment drawn from one seeded RNG, its seed printed):
//! - `kill -9` of the server at random moments, at least 10 in a full run, each followed by a
//!   restart on the same redb queue file;
//! - a disk-full window: the queue lives on a small tmpfs, which a filler file fills to the last
//!   byte; ingest must refuse (503/507) rather than accept what it cannot keep, and recover once
//!   the filler is gone;
//! - targets that misbehave: one answers at 1 byte/s, one with a 100 MB body, one resets the
//!   connection; a healthy one records every delivery;
//! - an h2c flood: hundreds of prior-knowledge HTTP/2 connections that open and sit idle;
//! - clock steps: the server's wall clock (only) jumps 10 minutes ahead, later back by part of
//!   that (2 minutes; 10 s in the CI run), through libfaketime.
//!
//! At the end, after a final `kill -9`, restart and drain, it prints kills, alerts sent and
//! accepted, lost (accepted but neither delivered nor dead-lettered: must be 0), duplicates
//! (within what the crashes can repeat), peak RSS (at most [`RSS_BOUND_MIB`]), and whether every
//! job was delivered or dead-lettered; any violation exits non-zero. `--short` is the CI run:
//! about a minute of load with every fault in it.
//!
//! Everything runs on loopback; every thread belongs to one `std::thread::scope`; every loop is
//! bounded by the run's deadline; the server is stopped by its PID.

mod check;
mod http;
mod load;
mod mocks;
mod plan;
mod report;
mod server;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use self::check::{Observed, judge};
use self::http::Client;
use self::load::{FloodReport, Ledger, Phase, h2c_flood, sender};
use self::mocks::{Behaviour, Mock};
use self::plan::{Event, Plan};
use self::report::{humanize, report, write_json};
use self::server::{FakeClock, Launch, Server, Tmpfs, fill, memory_kib};
use crate::util::{cargo, run as run_cmd, target_dir};

/// The peak resident set the server may reach.
pub(crate) const RSS_BOUND_MIB: u64 = 512;
/// Each lane's in-flight limit in the soak's config (the default).
const IN_FLIGHT: u64 = 16;
/// After the filler is removed, ingest must accept again within this.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);
/// Outside the disk-full window, an up server must accept something this often.
const STALL_BOUND: Duration = Duration::from_secs(20);

/// `cargo xtask soak` options.
#[derive(clap::Args)]
pub(crate) struct SoakArgs {
    /// The CI run: about 60 s of load with every fault in it (3 kills), on the debug binary.
    #[arg(long)]
    short: bool,
    /// Minutes of load in the full run.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// The RNG seed (default: drawn from the clock, and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Soak the debug binary (the full run soaks the release one).
    #[arg(long)]
    debug: bool,
}

/// SplitMix64: small, seedable, and good enough to draw moments and routes.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The CI step: `cargo xtask soak --short` with a fresh seed.
pub(crate) fn run_short() -> Result<()> {
    run(&SoakArgs {
        short: true,
        minutes: 1,
        seed: None,
        debug: true,
    })
}

pub(crate) fn run(args: &SoakArgs) -> Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let plan = if args.short {
        Plan::short(seed)
    } else {
        Plan::full(seed, args.minutes)
    };
    let debug = args.debug || args.short;
    // The CI run soaks the binary its test step built, with the same flags, so nothing rebuilds.
    if debug {
        run_cmd(cargo().args([
            "build",
            "--workspace",
            "--all-features",
            "--bin",
            "alertpub",
        ]))?;
    } else {
        run_cmd(cargo().args([
            "build",
            "--release",
            "-p",
            "alertpub-server",
            "--bin",
            "alertpub",
        ]))?;
    }
    let binary = target_dir()
        .join(if debug { "debug" } else { "release" })
        .join("alertpub");
    println!(
        "soak: seed {seed} ({} of load, {} kills planned, binary {})",
        humanize(plan.load),
        plan.kill_count(),
        binary.display()
    );
    let dir = target_dir().join("soak").join(seed.to_string());
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("queue"))?;
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");

    // The queue on a tmpfs of its own, so the disk-full window fills only it.
    let tmpfs = match Tmpfs::mount(&dir.join("queue"), plan.tmpfs_mib) {
        Ok(tmpfs) => Some(tmpfs),
        Err(err) if in_ci => return Err(err.context("the disk-full window needs a tmpfs (root)")),
        Err(err) => {
            println!("soak: no disk-full window: {err:#}");
            None
        }
    };
    let clock = FakeClock::new(&dir)?;
    if clock.is_none() {
        if in_ci {
            bail!("the clock step needs libfaketime (Debian package faketime)");
        }
        println!("soak: no clock step: libfaketime is not installed (Debian package faketime)");
    }

    let healthy = Mock::bind(Behaviour::Healthy)?;
    let faults: Vec<Mock> = Behaviour::FAULTS
        .into_iter()
        .map(Mock::bind)
        .collect::<std::io::Result<_>>()?;
    let config = dir.join("alertpub.yaml");
    fs::write(&config, config_yaml(&healthy, &faults))?;
    let launch = Launch {
        binary,
        dir: dir.clone(),
        config,
        clock,
    };
    let ledger = Ledger::new(&seed.to_string());
    let mocks_stop = AtomicBool::new(false);
    let pid = AtomicU32::new(0);
    let peak_hwm = AtomicU64::new(0);
    let started = Instant::now();

    let outcome = std::thread::scope(|scope| {
        healthy.serve(scope, &mocks_stop);
        for mock in &faults {
            mock.serve(scope, &mocks_stop);
        }
        // Peak RSS: the kernel's high-water mark of each incarnation, read 4 times a second.
        scope.spawn(|| {
            while !mocks_stop.load(Ordering::Relaxed) {
                if let Some((_, hwm)) = memory_kib(pid.load(Ordering::Relaxed)) {
                    peak_hwm.fetch_max(hwm, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let mut rng = Rng::new(seed);
        for _ in 0..plan.senders {
            let sender_seed = rng.next_u64();
            let ledger = &ledger;
            let per_second = plan.requests_per_sender;
            scope.spawn(move || sender(ledger, sender_seed, per_second));
        }
        let mut soak = Soak {
            launch: &launch,
            plan: &plan,
            ledger: &ledger,
            pid: &pid,
            peak_hwm: &peak_hwm,
            filler: tmpfs.as_ref().map(|_| dir.join("queue").join("filler")),
            server: None,
            incarnation: 0,
            kills: 0,
            flood: None,
            violations: Vec::new(),
            storage_windows: 0,
            clock_steps_ahead: 0,
        };
        let result = soak.drive(started);
        ledger.stop.store(true, Ordering::Relaxed);
        let result = result.and_then(|()| soak.finish(&healthy, &faults));
        mocks_stop.store(true, Ordering::Relaxed);
        healthy.wake();
        for mock in &faults {
            mock.wake();
        }
        result
    });
    drop(tmpfs);
    let (observed, flood) = outcome?;
    let verdict = judge(&observed);
    report(
        &plan,
        seed,
        &ledger,
        &observed,
        &verdict,
        flood.as_ref(),
        &faults,
        started.elapsed(),
    );
    write_json(&dir, seed, &ledger, &observed, &verdict)?;
    if verdict.passed() {
        println!("soak: PASSED (seed {seed}; logs in {})", dir.display());
        Ok(())
    } else {
        for v in &verdict.violations {
            println!("soak: VIOLATION: {v}");
        }
        bail!(
            "soak: {} violations (seed {seed}; server log in {})",
            verdict.violations.len(),
            dir.join("server.log").display()
        )
    }
}

/// The orchestrator's state while the load runs.
struct Soak<'a> {
    launch: &'a Launch,
    plan: &'a Plan,
    ledger: &'a Ledger,
    pid: &'a AtomicU32,
    peak_hwm: &'a AtomicU64,
    filler: Option<std::path::PathBuf>,
    server: Option<Server>,
    incarnation: u32,
    kills: u64,
    flood: Option<FloodReport>,
    violations: Vec<String>,
    storage_windows: u64,
    clock_steps_ahead: u64,
}

impl Soak<'_> {
    fn start_server(&mut self) -> Result<()> {
        self.incarnation += 1;
        let server = self.launch.start(self.incarnation)?;
        self.pid.store(server.pid(), Ordering::Relaxed);
        self.ledger.set_addr(Some(server.addr.clone()));
        self.server = Some(server);
        Ok(())
    }

    fn kill_and_restart(&mut self, base: Phase) -> Result<()> {
        self.ledger.set_phase(Phase::Restarting);
        self.ledger.set_addr(None);
        if let Some(server) = self.server.take() {
            if let Some((_, hwm)) = memory_kib(server.pid()) {
                self.peak_hwm.fetch_max(hwm, Ordering::Relaxed);
            }
            server.kill9()?;
            self.kills += 1;
        }
        self.start_server()?;
        self.ledger.set_phase(base);
        Ok(())
    }

    /// Runs the plan's events in order while the senders load the server.
    fn drive(&mut self, started: Instant) -> Result<()> {
        self.start_server()?;
        let mut events = self.plan.events.iter().peekable();
        let mut base = Phase::Normal;
        let mut disk_full = false;
        let mut freed_at: Option<Instant> = None;
        let mut recovered = false;
        let mut last_restart = Instant::now();
        let deadline = started + self.plan.load;
        while Instant::now() < deadline {
            if let Some(server) = self.server.as_mut()
                && let Some(status) = server.exited()
            {
                self.violations.push(format!(
                    "the server exited on its own with {status} at {:.0?}",
                    started.elapsed()
                ));
                self.server = None;
                self.start_server()?;
                last_restart = Instant::now();
            }
            if let Some(&&(at, event)) = events.peek()
                && started + at <= Instant::now()
            {
                events.next();
                println!(
                    "soak: {:>6.1}s {}",
                    started.elapsed().as_secs_f64(),
                    event.describe()
                );
                match event {
                    Event::Kill => {
                        self.kill_and_restart(base)?;
                        last_restart = Instant::now();
                    }
                    Event::DiskFill => {
                        if let Some(filler) = &self.filler {
                            let bytes = fill(filler)?;
                            println!(
                                "soak:         filled the queue's tmpfs with {} MiB",
                                bytes >> 20
                            );
                            disk_full = true;
                            self.storage_windows += 1;
                            self.ledger.set_phase(Phase::DiskFull);
                        }
                    }
                    Event::DiskFree => {
                        if let Some(filler) = &self.filler
                            && disk_full
                        {
                            fs::remove_file(filler)?;
                            disk_full = false;
                            freed_at = Some(Instant::now());
                            self.ledger.set_phase(Phase::DiskFreed);
                        }
                    }
                    Event::Flood => {
                        self.ledger.set_phase(Phase::Flood);
                        let addr = self
                            .server
                            .as_ref()
                            .map(|s| s.addr.clone())
                            .unwrap_or_default();
                        let report = h2c_flood(
                            &addr,
                            self.plan.flood_connections,
                            self.plan.flood_hold,
                            &self.ledger.stop,
                        );
                        println!("soak:         {report:?}");
                        self.flood = Some(report);
                        self.ledger.set_phase(base);
                    }
                    Event::ClockAhead | Event::ClockBack => {
                        if let Some(clock) = &self.launch.clock {
                            let ahead = event == Event::ClockAhead;
                            self.clock_steps_ahead += u64::from(ahead);
                            let ahead_by = self.plan.clock_ahead_secs;
                            clock.set_offset_secs(if ahead {
                                ahead_by
                            } else {
                                ahead_by - self.plan.clock_back_secs
                            })?;
                            base = if ahead {
                                Phase::ClockAhead
                            } else {
                                Phase::ClockBack
                            };
                            self.ledger.set_phase(base);
                        }
                    }
                }
                continue;
            }
            if disk_full && let Some(filler) = &self.filler {
                // The server may free pages of its own; the filler takes them back.
                fill(filler)?;
            }
            if let Some(freed) = freed_at
                && !recovered
                && self.ledger.last_accept().is_some_and(|at| at > freed)
            {
                recovered = true;
                println!(
                    "soak:         ingest accepts again, {:.1}s after the disk was freed",
                    freed.elapsed().as_secs_f64()
                );
            }
            if let Some(freed) = freed_at
                && freed.elapsed() >= RECOVERY_BOUND
            {
                if self.ledger.last_accept().is_none_or(|at| at < freed) {
                    self.violations.push(format!(
                        "ingest did not accept again within {RECOVERY_BOUND:?} of the disk being freed"
                    ));
                }
                freed_at = None;
                self.ledger.set_phase(base);
            }
            let quiet = self
                .ledger
                .last_accept()
                .map_or(last_restart, |at| at.max(last_restart));
            if !disk_full && freed_at.is_none() && quiet.elapsed() >= STALL_BOUND {
                self.violations.push(format!(
                    "ingest accepted nothing for {STALL_BOUND:?} at {:.0?} ({})",
                    started.elapsed(),
                    self.ledger.phase_name()
                ));
                last_restart = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if disk_full && let Some(filler) = &self.filler {
            fs::remove_file(filler)?;
        }
        if self.filler.is_some()
            && self.ledger.answers(Phase::DiskFull, 503) + self.ledger.answers(Phase::DiskFull, 507)
                == 0
        {
            self.violations
                .push("the disk-full window refused no alert: the filler did not bite".to_owned());
        }
        if self.flood.is_some() && self.ledger.answers(Phase::Flood, 200) == 0 {
            self.violations
                .push("ingest accepted nothing during the h2c flood".to_owned());
        }
        for (phase, status, n) in self.ledger.answer_table() {
            if !matches!(status, 0 | 200 | 503 | 507) {
                self.violations.push(format!(
                    "{n} answers {status} to valid alerts ({})",
                    phase.name()
                ));
            }
        }
        Ok(())
    }

    /// The final `kill -9`, restart and drain; then the DLQ and the mocks' records.
    fn finish(
        &mut self,
        healthy: &Mock,
        faults: &[Mock],
    ) -> Result<(Observed, Option<FloodReport>)> {
        println!("soak: load stopped; final kill -9, restart and drain");
        self.kill_and_restart(Phase::Normal)?;
        let addr = self
            .server
            .as_ref()
            .map(|s| s.addr.clone())
            .unwrap_or_default();
        let mut client = Client::new(&addr, Duration::from_secs(10));
        let drain_started = Instant::now();
        let mut drained = false;
        let mut last = Value::Null;
        while drain_started.elapsed() < self.plan.drain {
            let queue = client
                .request("GET", "/api/v1/queue", None)
                .map(|r| r.json());
            let metrics = client.request("GET", "/metrics", None);
            if let (Ok(queue), Ok(metrics)) = (queue, metrics) {
                let gauge = queue_depth_gauge(&String::from_utf8_lossy(&metrics.body));
                if queue["depth"] == 0 && gauge == Some(0.0) {
                    drained = true;
                    break;
                }
                last = json!({"queue": queue, "alertpub_queue_depth": gauge});
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        println!(
            "soak: drain {} after {:.1}s{}",
            if drained { "complete" } else { "INCOMPLETE" },
            drain_started.elapsed().as_secs_f64(),
            if drained {
                String::new()
            } else {
                format!(": {last}")
            }
        );
        let dead_letters = read_dlq(&mut client)?;
        if let Some((_, hwm)) = self.server.as_ref().and_then(|s| memory_kib(s.pid())) {
            self.peak_hwm.fetch_max(hwm, Ordering::Relaxed);
        }
        if let Some(server) = self.server.take()
            && let Err(err) = server.terminate()
        {
            self.violations.push(format!("{err:#}"));
        }
        let observed = Observed {
            accepted: self.ledger.accepted(),
            refused: self.ledger.refused(),
            healthy: healthy
                .recorded
                .deliveries
                .lock()
                .expect("not poisoned")
                .clone(),
            seen_by_fault: faults
                .iter()
                .map(|m| {
                    (
                        m.behaviour,
                        m.recorded.seen.lock().expect("not poisoned").clone(),
                    )
                })
                .collect(),
            dead_letters,
            kills: self.kills,
            storage_windows: self.storage_windows,
            clock_steps_ahead: self.clock_steps_ahead,
            in_flight: IN_FLIGHT,
            drained,
            peak_rss_kib: self.peak_hwm.load(Ordering::Relaxed),
            rss_bound_kib: RSS_BOUND_MIB * 1024,
            run_violations: std::mem::take(&mut self.violations),
        };
        Ok((observed, self.flood.take()))
    }
}

/// The sum of `alertpub_queue_depth` over its series, if the family is there.
fn queue_depth_gauge(metrics: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("alertpub_queue_depth{") || l.starts_with("alertpub_queue_depth ")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Every DLQ entry as (target, alert name), page by page (at most 10 000 pages).
fn read_dlq(client: &mut Client) -> Result<Vec<(String, String)>> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/dlq?limit=1000&cursor={c}"),
            None => "/api/v1/dlq?limit=1000".to_owned(),
        };
        let response = client
            .request("GET", &path, None)
            .context("GET /api/v1/dlq")?;
        if response.status != 200 {
            bail!("GET {path} answered {}", response.status);
        }
        let page = response.json();
        for entry in page["entries"].as_array().into_iter().flatten() {
            entries.push((
                entry["target"].as_str().unwrap_or_default().to_owned(),
                entry["alert"]["alert"]["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(entries),
        }
    }
    bail!("the DLQ has more than 10 000 pages")
}

/// The server's config: the queue on the tmpfs, the healthy target for every alert, each
/// faulty target for the alerts routed to it. Health and breaker thresholds are out of reach,
/// so a faulty target's jobs use up their attempts and reach the DLQ within the drain instead of
/// waiting behind an open breaker for `max_age`.
fn config_yaml(healthy: &Mock, faults: &[Mock]) -> String {
    let mut config = format!(
        r#"server:
  listen: "127.0.0.1:0"
  max_alerts_per_request: 10
  header_read_timeout: 2s
  body_read_timeout: 5s
  shutdown_timeout: 10s
ingest:
  resolve_timeout: 24h
queue:
  path: queue/alertpub.redb
  max_attempts: 3
  initial_backoff: 100ms
  max_backoff: 1s
  per_target_in_flight: {IN_FLIGHT}
health:
  interval: 1h
  failure_threshold: 1000000
circuit_breaker:
  failure_threshold: 1000000
targets:
  - name: healthy
    kind: webhook
    url: {}
"#,
        healthy.url()
    );
    for mock in faults {
        let name = mock.behaviour.name();
        config.push_str(&format!(
            "  - name: {name}\n    kind: webhook\n    url: {}\n    filter: ['fault=\"{name}\"']\n    timeout: 1s\n",
            mock.url()
        ));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_gauge_is_summed_over_its_series() {
        let text = "# HELP alertpub_queue_depth x\nalertpub_queue_depth{priority=\"high\"} 2\n\
                    alertpub_queue_depth{priority=\"low\"} 3\nalertpub_queue_depth_other 9\n";
        assert_eq!(queue_depth_gauge(text), Some(5.0));
        assert_eq!(queue_depth_gauge("up 1\n"), None);
    }

    #[test]
    fn the_rng_is_reproducible_from_its_seed() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..8).map(|_| rng.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}

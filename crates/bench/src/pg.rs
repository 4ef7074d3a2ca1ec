//! S2 on the PostgreSQL queue (`queue.backend: postgres`): the same 10 instant targets and the
//! same load as S2, against 1, 2 or 3 replicas sharing one database on a throw-away cluster.
//! Each alert is posted to one replica, in turn (a load balancer's spread: what scaling out
//! buys); the database's CPU is read from /proc for the postmaster and its backends.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use test_support::postgres::Cluster;

use crate::load::{self, Sender};
use crate::mock::{Behaviour, MockPool};
use crate::report::percentile;
use crate::server::{Alertpub, Binary};
use crate::{DRAIN_TIMEOUT, SEND_TIMEOUT, config, rate};

/// One run of S2 on PostgreSQL.
pub(crate) struct PgRun {
    pub(crate) replicas: usize,
    pub(crate) deliveries_per_s: f64,
    pub(crate) ingest_p99_ms: f64,
    /// The database's CPU time over the run, in seconds.
    pub(crate) db_cpu_s: f64,
    /// The replicas' CPU time over the run, in seconds, all together.
    pub(crate) replicas_cpu_s: f64,
    pub(crate) accepted: u64,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
}

impl PgRun {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "replicas": self.replicas,
            "deliveries_per_s": self.deliveries_per_s,
            "ingest_p99_ms": self.ingest_p99_ms,
            "db_cpu_seconds": self.db_cpu_s,
            "replicas_cpu_seconds": self.replicas_cpu_s,
            "accepted": self.accepted,
            "lost": self.lost,
            "duplicates": self.duplicates,
        })
    }
}

/// Runs S2 against `replicas` replicas on a fresh database of `cluster`.
pub(crate) async fn s2(
    bin: &Binary,
    cluster: &Cluster,
    alerts: u64,
    replicas: usize,
    round: usize,
) -> Result<PgRun> {
    const SENDERS: usize = 32;
    let db = format!("s2_{replicas}_{round}");
    let url = cluster.database(&db);
    let pool = MockPool::start(&[Behaviour::ok_after(0); 10]).await?;
    let queue = format!("  backend: postgres\n  url: {url}\n  pool_size: 16\n");
    let text = config(&pool).replacen("  path: queue/alertpub.redb\n", &queue, 1);
    let mut servers = Vec::with_capacity(replicas);
    for _ in 0..replicas {
        servers.push(Alertpub::start(bin, &text).await?);
    }
    let urls: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new(servers.iter().map(|s| s.url("/api/v2/alerts")).collect());
    let cpu_before = db_cpu_ticks(cluster);
    let replicas_before = replicas_cpu(&servers);
    let sender = Sender::new();
    let client = sender.clone();
    let started = Instant::now();
    let sent = load::concurrent(alerts, SENDERS, SEND_TIMEOUT, move |id| {
        let (client, urls) = (client.clone(), std::sync::Arc::clone(&urls));
        async move {
            let url = &urls[usize::try_from(id).unwrap_or(0) % urls.len()];
            client.post(url, load::ingest_body(id)).await
        }
    })
    .await;
    let accepted = sent.iter().filter(|s| s.ok).count() as u64;
    let all: Vec<usize> = (0..10).collect();
    if !pool.wait_for(&all, accepted, DRAIN_TIMEOUT).await {
        println!("  not every delivery arrived within {DRAIN_TIMEOUT:?}");
    }
    let cpu = db_cpu_ticks(cluster).saturating_sub(cpu_before) as f64 / ticks_per_second();
    let replicas_cpu_s = replicas_cpu(&servers) - replicas_before;
    if std::env::var("ALERTPUB_PG_OPTIONS").is_ok_and(|o| o.contains("pg_stat_statements")) {
        // The statements that cost the database the most, for a profile of the run.
        let _ = cluster.query(&db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
        println!(
            "{}",
            cluster.query(
                &db,
                "SELECT round(total_exec_time)::text || ' ms, ' || calls || ' calls, ' || rows || ' rows: ' \
                 || left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
                 FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database \
                 WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 16"
            )
        );
    }
    let arrivals = pool.arrivals();
    let logs: Vec<String> = servers.iter().map(Alertpub::log).collect();
    // The replicas' counts of failed calls and retries, to tell a retry's duplicate (a call
    // that timed out after the target had it) from the queue's.
    let mut retries = Vec::new();
    for server in &servers {
        let text = sender
            .get_text(&server.url("/metrics"))
            .await
            .unwrap_or_default();
        retries.push(
            text.lines()
                .filter(|l| {
                    !l.starts_with('#')
                        && (l.contains("retries")
                            || (l.contains("calls_total") && !l.contains("outcome=\"success\"")))
                })
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
    }
    for server in servers {
        server.stop().await.context("stopping alertpub")?;
    }
    // The run's database goes with it: autovacuum catching up on an old run's tables would
    // otherwise bill its CPU to the next run.
    let _ = cluster.query("postgres", &format!("DROP DATABASE {db}"));
    let unique: u64 = pool.unique_per_target().iter().sum();
    let expected = accepted * all.len() as u64;
    let answers: Vec<f64> = sent
        .iter()
        .map(|s| (s.answered - s.at).as_secs_f64() * 1e3)
        .collect();
    let run = PgRun {
        replicas,
        deliveries_per_s: rate(&sent, &arrivals),
        ingest_p99_ms: percentile(&answers, 0.99),
        db_cpu_s: cpu,
        replicas_cpu_s,
        accepted,
        lost: expected.saturating_sub(unique),
        duplicates: (arrivals.len() as u64).saturating_sub(unique),
    };
    println!(
        "  round {round}, {replicas} replica(s) on PostgreSQL: {accepted} of {alerts} alerts accepted in {:.1} s, {:.0} deliveries/s, ingest p99 {:.1} ms, database CPU {cpu:.1} s, replicas' CPU {replicas_cpu_s:.1} s, lost {}, duplicates {}",
        started.elapsed().as_secs_f64(),
        run.deliveries_per_s,
        run.ingest_p99_ms,
        run.lost,
        run.duplicates
    );
    if run.duplicates > 0 {
        // What the replicas said about it: a duplicate without a crash needs a reason.
        for (i, log) in logs.iter().enumerate() {
            let lines: Vec<&str> = log.lines().collect();
            println!(
                "  replica {i} warnings ({} lines, the last 10):",
                lines.len()
            );
            for line in &lines[lines.len().saturating_sub(10)..] {
                println!("    {line}");
            }
            for line in retries.get(i).into_iter().flatten() {
                println!("    metric: {line}");
            }
        }
    }
    Ok(run)
}

/// The replicas' CPU time so far, in seconds, all together.
fn replicas_cpu(servers: &[Alertpub]) -> f64 {
    servers
        .iter()
        .filter_map(|s| crate::server::cpu_seconds(s.pid()).ok())
        .sum()
}

/// Starts the cluster S2 on PostgreSQL runs on.
pub(crate) fn cluster() -> Result<Cluster> {
    match Cluster::start() {
        Some(cluster) => Ok(cluster),
        None => bail!("PostgreSQL is not installed (Debian's `postgresql`)"),
    }
}

/// The CPU ticks the cluster has used: the postmaster's own and its reaped backends', and its
/// living children's.
fn db_cpu_ticks(cluster: &Cluster) -> u64 {
    let Some(postmaster) = cluster.pid() else {
        return 0;
    };
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command's closing parenthesis: state, ppid, …, utime (14),
        // stime (15), cutime (16), cstime (17), counted from 1 over the whole line.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let ppid = field(4).unwrap_or(0);
        if pid == postmaster {
            total += field(14).unwrap_or(0)
                + field(15).unwrap_or(0)
                + field(16).unwrap_or(0)
                + field(17).unwrap_or(0);
        } else if ppid == u64::from(postmaster) {
            total += field(14).unwrap_or(0) + field(15).unwrap_or(0);
        }
    }
    total
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 on Linux.
fn ticks_per_second() -> f64 {
    100.0
}

//! [`PgJobStore`]: the [`JobStore`](alert_core::JobStore) contract on PostgreSQL, so that several
//! replicas can share one queue.
//!
//! The database is the truth: each operation is one transaction that loads what it needs into a
//! scratch [`State`] (the log entries and live jobs of the keys it touches, the counts its bounds
//! need), runs the queue's one set of planners on it ([`crate::model::ops`]), and writes what
//! they wrote ([`tables::PgTables`]) before it commits. Ingest takes a transaction-scoped
//! advisory lock on each (target, fingerprint) of its batch, in one order, so two replicas that
//! receive the same alert decide it one after the other: exactly one job per state.
//!
//! Leases are rows (`leased_until`, `lease_owner`), taken with `FOR UPDATE SKIP LOCKED`: a lease
//! round is one statement, its own transaction, unless a lane's lease must be taken, renewed or
//! handed over or its expired leases looked for. A settlement is fenced by its owner, so a
//! replica that lost a lease cannot settle the job. A pending job that a newer state replaces is
//! removed unless a lane leased it meanwhile, in which case it is marked superseded (and its
//! settlement removes it).
//!
//! Re-sends that only move an alert's `endsAt` are written only when a restart could not make up
//! for them ([`crate::model::repeats`]); this replica keeps the rest in memory and lays it over
//! what it reads, and grants the entries it has not seen re-sent since it started the restart's
//! grace, as the redb store does after a crash.

mod batch;
mod cursor;
mod error;
mod history;
mod ingest;
mod leases;
mod notify;
mod queues;
mod reads;
mod refs;
mod rows;
mod schema;
mod sql;
mod sweep;
mod tables;
mod tls;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use alert_core::job::FAILING_AFTER;
use alert_core::{
    Admission, Admitted, BoxFuture, Clock, DeadLetterFilter, DeadLetterId, DeadLetterPage,
    DeadLetterQueue, DeadReason, IngestQueue, JobError, JobId, JobStoreError, LaneQueue, Lease,
    NewWork, QueueMaintenance, QueueStats, Reschedule, StorageKind, StoreCondition, StoreHealth,
    SweepPlan, SweepReport, SystemClock, TargetKind, TargetName, TargetQueueStats,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::ContextV7;

use self::error::db;
pub use self::refs::PgMessageRefs;
use self::rows::{
    JOB_COLUMN_COUNT, JOB_COLUMNS, add_job_rows, add_jobs, add_log_rows, dead_of, id, key_arrays,
    ns, time, unsigned,
};
use self::tables::PgTables;
use crate::model::ops::Planner;
use crate::model::plan::{Effect, Group, Planned2, prepare};
use crate::model::state::{CachedLog, DEFAULT_DEAD_LETTER_CAP, Key};
use crate::model::sweep::KnownTarget;
use crate::model::{State, lanes, repeats};
use crate::redb_store::records::{decode, encode_alert};

/// A transaction on a pooled connection.
pub(crate) type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// How long an operation waits for a connection, and a connection for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most log entries one sweep pass reads: the rest wait for the next pass.
const SWEEP_SCAN: i64 = 10_000;

/// The oldest dead letters an op that buries loads for the cap and the retention.
const OLDEST_DEAD: i64 = 64;

/// The database's clock, in nanoseconds: what lane leases and heartbeats are compared with, so
/// the replicas' own clocks may disagree.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000000000)::bigint";

/// A replica whose last heartbeat is older than this is gone, and its lanes move.
const REPLICA_TTL: Duration = Duration::from_secs(5);

/// How long a lane's lease lasts without its owner's renewal (each lease call renews it).
const LANE_TTL: Duration = Duration::from_secs(5);

/// How often a replica beats and reads who is alive: at most once a second.
const MEMBERS_EVERY: Duration = Duration::from_secs(1);

/// How long a replica waits before it claims again a lane whose lease another replica held at
/// its last claim (that replica hands the lane over once it reads who is alive, or its lease
/// lapses): its lane's calls meanwhile ask the database nothing.
const CLAIM_RETRY: Duration = Duration::from_millis(200);

/// How long, while acks come together, the first waits for others, and how many end the wait:
/// a busy replica removes its acked jobs in fewer, larger statements. A job waits for its ack
/// outside its call's slot, so this delays a delivery only when its lane already holds its bound
/// of jobs waiting for their acks.
const ACK_GATHER: (Duration, usize) = (Duration::from_millis(10), 64);

/// How long, while the lanes' lease calls come together, the first waits for others, and how
/// many end the wait.
const LEASE_GATHER: (Duration, usize) = (Duration::from_millis(2), 4);

/// How long, while ingest calls come together, the first waits for others, and how many end
/// the wait: a busy replica decides its alerts in fewer, larger transactions.
const INGEST_GATHER: (Duration, usize) = (Duration::from_millis(5), 16);

/// How long the counts the bounds are checked against may be reused, while no count is near
/// its bound: counting every row for every op would cost more than the op.
const COUNTS_EVERY: Duration = Duration::from_secs(1);

/// How long they may be reused while every count is far from its bound: under a quarter of it
/// and [`FAR_HEADROOM`] short of it, which no ingest rate fills in this time. A count of the jobs
/// reads every row the acks left for the vacuum: with three replicas under S2 of
/// `cargo xtask bench`, counting once a second each took a tenth of the database's CPU.
const COUNTS_EVERY_FAR: Duration = Duration::from_secs(5);

/// See [`COUNTS_EVERY_FAR`]: five seconds of 20 000 new jobs a second.
const FAR_HEADROOM: u64 = 100_000;

/// The advisory lock whose holder runs the maintenance pass: one replica at a time.
const MAINTENANCE_LOCK: i64 = 0x616c_6572_746d_6e74;

/// See the module docs.
pub struct PgJobStore {
    pool: Pool,
    /// Connections whose commits do not wait for the WAL flush: leases and settlements.
    fast: Pool,
    planner: Planner,
    /// This replica's name, which its leases carry.
    owner: String,
    clock: Arc<dyn Clock>,
    announce: Arc<RwLock<Option<NewWork>>>,
    /// The task that hears other replicas' new work ([`notify`]).
    listener: tokio::task::JoinHandle<()>,
    /// Each lane's place in the priority cycle.
    cycles: Mutex<HashMap<TargetName, usize>>,
    /// Makes this replica's dead-letter ids increase.
    ids: Mutex<Option<ContextV7>>,
    /// Ends that re-sends moved and that were not written: (key) → (the entry's sequence, end).
    overlay: Mutex<HashMap<Key, (u64, DateTime<Utc>)>>,
    started_at: DateTime<Utc>,
    restart_grace: Duration,
    evicted: AtomicU64,
    failures: Mutex<(u64, String)>,
    /// The live replicas, as last read, and when.
    members: Mutex<Option<(std::time::Instant, Vec<String>)>>,
    /// The counts the bounds are checked against, as last read, and when.
    counts: Mutex<Option<(std::time::Instant, Counts)>>,
    /// The lanes this replica holds, each with when it last renewed the lane's lease.
    lanes: Mutex<HashMap<TargetName, std::time::Instant>>,
    /// The lanes this replica should run whose lease another held at its last claim, and when.
    refused: Mutex<HashMap<TargetName, std::time::Instant>>,
    /// Each lane's last look for expired leases, by the time the lane gave.
    expiry_checked: Mutex<HashMap<TargetName, DateTime<Utc>>>,
    /// Acks waiting to be removed together.
    acks: batch::Batcher<i64, Result<(), JobStoreError>>,
    /// Lanes' calls for jobs waiting to be leased together.
    leases: batch::Batcher<leases::LeaseCall, Result<Lease, JobStoreError>>,
    /// Where each lane's scan for due jobs starts.
    cursors: Arc<cursor::Cursors>,
    /// Ingest calls waiting to be decided together.
    ingests: batch::Batcher<ingest::EnqueueCall, Result<Vec<Admitted>, JobStoreError>>,
}

/// What the store holds, counted.
#[derive(Clone, Debug, Default)]
struct Counts {
    jobs: u64,
    logs: u64,
    dead: u64,
    per_target: HashMap<TargetName, u64>,
}

/// Counts the rows the bounds are about.
async fn read_counts(tx: &Tx<'_>) -> Result<Counts, JobStoreError> {
    // The jobs are counted once, by target; their total is the sum.
    let row = sql::query_one(
        tx,
        "SELECT (SELECT count(*) FROM alertpub_log), (SELECT count(*) FROM alertpub_dead)",
        &[],
    )
    .await
    .map_err(db)?;
    let rows = sql::query(
        tx,
        "SELECT target, count(*) FROM alertpub_jobs GROUP BY target",
        &[],
    )
    .await
    .map_err(db)?;
    let mut per_target = HashMap::with_capacity(rows.len());
    let mut jobs = 0;
    for row in &rows {
        let n = unsigned(row.get(1));
        jobs += n;
        if let Ok(target) = TargetName::new(row.get::<_, &str>(0)) {
            per_target.insert(target, n);
        }
    }
    Ok(Counts {
        jobs,
        logs: unsigned(row.get(0)),
        dead: unsigned(row.get(1)),
        per_target,
    })
}

/// How long `counts` may be reused: not at all near a bound, [`COUNTS_EVERY_FAR`] far from
/// every bound, and [`COUNTS_EVERY`] between.
fn reuse_for(planner: &Planner, counts: &Counts) -> Duration {
    if near_a_bound(planner, counts) {
        return Duration::ZERO;
    }
    let far =
        |count: u64, bound: u64| count < bound / 4 && count.saturating_add(FAR_HEADROOM) < bound;
    let quota = planner.max_jobs_per_target;
    let every_far = far(counts.jobs, planner.max_jobs)
        && far(counts.logs, planner.max_active_alerts)
        // The dead-letter cap is kept by dropping the oldest entries, never by refusing: a
        // count a few seconds old only delays a trim.
        && counts.dead < planner.dead_letter_cap as u64 / 4
        && counts.per_target.values().all(|&n| far(n, quota));
    if every_far {
        COUNTS_EVERY_FAR
    } else {
        COUNTS_EVERY
    }
}

/// Whether `counts` are within a tenth of a bound (or of 1 000 under it), where a count a
/// second old could let a bound be passed: then the op counts afresh.
fn near_a_bound(planner: &Planner, counts: &Counts) -> bool {
    let near = |count: u64, bound: u64| count.saturating_add((bound / 10).max(1_000)) >= bound;
    let quota = planner.max_jobs_per_target;
    near(counts.jobs, planner.max_jobs)
        || near(counts.logs, planner.max_active_alerts)
        || near(counts.dead, planner.dead_letter_cap as u64)
        || counts.per_target.values().any(|&n| near(n, quota))
}

impl PgJobStore {
    /// Connects to the database at `url` (a `postgres://` URL) with a pool of at most
    /// `pool_size` connections, brings its schema up to date, and holds at most `max_jobs` live
    /// jobs and 100,000 dead letters.
    ///
    /// # Errors
    /// [`JobStoreError::Storage`] when the URL is invalid, the database cannot be reached within
    /// 5 s, or its schema is newer than this build's.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        max_jobs: u64,
    ) -> Result<Self, JobStoreError> {
        let split = tls::split(url);
        let tls = tls::connector(split.root_cert.as_deref())?;
        let mut config: tokio_postgres::Config = split.url.parse().map_err(|e| {
            JobStoreError::storage(
                StorageKind::Broken,
                format!("the PostgreSQL URL is invalid: {e}"),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("alertpub");
        }
        // Every statement finds its rows by an index. A queue's tables swing between empty and
        // large faster than autovacuum's ANALYZE follows, and a connection keeps the plan it
        // made for a prepared statement: one made while a table was small would read the
        // whole table, at every call, once it is large. With no JIT: a plan that must still
        // scan (a handful of heartbeat rows) costs more than `jit_above_cost` once scans are
        // off, and compiling it took 60-80 ms of the database's CPU at every call. With generic
        // plans only: a prepared statement whose arrays' sizes change between calls was
        // planned again at every call (about a seventh of the database's CPU under S2 with
        // three replicas), since the generic plan's estimate never beat the custom ones'.
        config.options(format!(
            "{} -c enable_seqscan=off -c jit=off -c plan_cache_mode=force_generic_plan",
            config.get_options().unwrap_or_default()
        ));
        // Leases and settlements go through connections that do not wait for the WAL flush at
        // commit: a crash of the database can only make them happen again, never lose one.
        let mut fast = config.clone();
        fast.options(format!(
            "{} -c synchronous_commit=off",
            config.get_options().unwrap_or_default()
        ));
        let listen_config = config.clone();
        let pool = pool_of(config, pool_size, tls.clone())?;
        let fast = pool_of(fast, pool_size, tls.clone())?;
        let mut client = pool.get().await.map_err(error::pool)?;
        schema::migrate(&mut client).await.map_err(|e| match e {
            schema::MigrateError::Database(e) => db(e),
            schema::MigrateError::Newer(version) => JobStoreError::storage(
                StorageKind::Corrupt,
                format!(
                    "the database's schema (version {version}) is newer than this build's; \
                     run the build that wrote it"
                ),
            ),
        })?;
        drop(client);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let announce: Arc<RwLock<Option<NewWork>>> = Arc::default();
        let cursors: Arc<cursor::Cursors> = Arc::default();
        // The host (a pod's name), the process, and a few random bits for a process that
        // restarts with the same pid (pid 1 in a container).
        let owner = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        Ok(Self {
            pool,
            fast,
            planner: Planner {
                max_jobs,
                max_jobs_per_target: u64::MAX,
                max_active_alerts: u64::MAX,
                dead_letter_cap: DEFAULT_DEAD_LETTER_CAP,
                dead_letter_retention: None,
            },
            started_at: clock.now(),
            clock,
            listener: notify::listen(
                listen_config,
                tls,
                owner.clone(),
                Arc::clone(&announce),
                Arc::clone(&cursors),
            ),
            owner,
            announce,
            cycles: Mutex::default(),
            ids: Mutex::new(Some(ContextV7::new())),
            overlay: Mutex::default(),
            restart_grace: Duration::ZERO,
            evicted: AtomicU64::new(0),
            failures: Mutex::new((0, String::new())),
            members: Mutex::new(None),
            counts: Mutex::new(None),
            lanes: Mutex::default(),
            refused: Mutex::default(),
            expiry_checked: Mutex::default(),
            acks: batch::Batcher::gathering(ACK_GATHER.0, ACK_GATHER.1),
            leases: batch::Batcher::gathering(LEASE_GATHER.0, LEASE_GATHER.1),
            ingests: batch::Batcher::gathering(INGEST_GATHER.0, INGEST_GATHER.1),
            cursors,
        })
    }

    /// Reads `clock` for when this replica started (see the module docs); give it the clock
    /// that stamps the store's jobs.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.started_at = clock.now();
        self.clock = clock;
        self
    }

    /// The time an alert that is still being re-sent has to be heard again after this replica
    /// starts (the server gives `resolve_timeout`); see the module docs.
    #[must_use]
    pub fn with_restart_grace(mut self, grace: Duration) -> Self {
        self.restart_grace = grace;
        self
    }

    /// Holds at most `n` live jobs per target, as [`crate::MemoryJobStore`] does.
    #[must_use]
    pub fn with_max_jobs_per_target(mut self, n: u64) -> Self {
        self.planner.max_jobs_per_target = n;
        self
    }

    /// Holds at most `n` notification-log entries, as [`crate::MemoryJobStore`] does.
    #[must_use]
    pub fn with_max_active_alerts(mut self, n: u64) -> Self {
        self.planner.max_active_alerts = n;
        self
    }

    /// Keeps at most `cap` dead letters.
    #[must_use]
    pub fn with_dead_letter_cap(mut self, cap: usize) -> Self {
        self.planner.dead_letter_cap = cap;
        self
    }

    /// Drops dead letters older than `retention` whenever a new one is added.
    #[must_use]
    pub fn with_dead_letter_retention(mut self, retention: Duration) -> Self {
        self.planner.dead_letter_retention = Some(retention);
        self
    }

    /// The message references, in the same database.
    #[must_use]
    pub fn message_refs(&self) -> Arc<dyn alert_core::MessageRefStore> {
        Arc::new(PgMessageRefs::new(self.pool.clone()))
    }

    /// Runs `work` in one transaction and commits it; a storage failure is counted for
    /// [`QueueMaintenance::health`].
    async fn transaction<T>(
        &self,
        work: impl AsyncFnOnce(&Tx<'_>) -> Result<T, JobStoreError>,
    ) -> Result<T, JobStoreError> {
        self.transaction_with(true, work).await
    }

    /// [`Self::transaction`]; a commit that is not `durable` does not wait for the database's
    /// WAL flush (a connection of the `fast` pool): for leases and settlements, which a crash of
    /// the database (not of a replica) can only make happen again, never lose.
    async fn transaction_with<T>(
        &self,
        durable: bool,
        work: impl AsyncFnOnce(&Tx<'_>) -> Result<T, JobStoreError>,
    ) -> Result<T, JobStoreError> {
        let result = async {
            let pool = if durable { &self.pool } else { &self.fast };
            let mut client = pool.get().await.map_err(error::pool)?;
            let tx = client.transaction().await.map_err(db)?;
            let answer = work(&tx).await?;
            tx.commit().await.map_err(db)?;
            Ok(answer)
        }
        .await;
        self.count(&result);
        result
    }

    fn count<T>(&self, result: &Result<T, JobStoreError>) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Err(e @ JobStoreError::Storage(_)) => {
                failures.0 += 1;
                failures.1 = e.to_string();
            }
            _ => failures.0 = 0,
        }
    }

    /// A scratch state for one op: this replica's clock and dead-letter ids, and the live-job
    /// counts of every target.
    fn scratch(&self) -> State {
        let mut state = State::default();
        state.index.clock = lanes::StoreClock(Arc::clone(&self.clock));
        if let Some(ids) = self
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            state.ids = ids;
        }
        state.dead_letter_cap = self.planner.dead_letter_cap;
        state.dead_letter_retention = self.planner.dead_letter_retention;
        state
    }

    /// Gives the scratch state's dead-letter ids back.
    fn done(&self, state: State) {
        *self.ids.lock().unwrap_or_else(PoisonError::into_inner) = Some(state.ids);
    }

    /// The end a loaded entry has for this replica: the end it holds, or a later one that a
    /// re-send kept in memory here, or the grace granted since this replica started.
    fn end_of(&self, key: &Key, cached: &CachedLog) -> Option<DateTime<Utc>> {
        let ends = cached.entry.ends_at;
        if cached.entry.status != alert_core::AlertStatus::Firing {
            return ends;
        }
        let kept = self
            .overlay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|(sequence, _)| *sequence == cached.entry.sequence)
            .map(|&(_, at)| at);
        let restored = repeats::restored_ends_at(
            cached.durable_ends_at,
            cached.seen_at,
            self.started_at,
            self.restart_grace,
        );
        [ends, kept, restored].into_iter().flatten().max().or(ends)
    }

    /// Loads the log entries and live jobs of `keys`.
    async fn load_keys(
        &self,
        tx: &Tx<'_>,
        state: &mut State,
        keys: &[Key],
    ) -> Result<Vec<u64>, JobStoreError> {
        Ok(self.lock_load(tx, state, keys, false).await?.0)
    }

    /// Locks `keys` for this transaction (in one order across replicas) if `lock`, loads their
    /// log entries and live jobs, and takes a block of ids if `lock` (ingest's first
    /// statements): the statements sent together, one round trip. Returns the bodies loaded,
    /// and the block's base if taken.
    async fn lock_load(
        &self,
        tx: &Tx<'_>,
        state: &mut State,
        keys: &[Key],
        lock: bool,
    ) -> Result<(Vec<u64>, Option<u64>), JobStoreError> {
        let mut locks: Vec<i64> = keys.iter().map(key_lock).collect();
        locks.sort_unstable();
        locks.dedup();
        let (fingerprints, targets) = key_arrays(keys);
        let jobs = format!(
            "SELECT {JOB_COLUMNS} FROM alertpub_jobs j
             JOIN unnest($1::bigint[], $2::text[]) AS k(f, t)
               ON j.fingerprint = k.f AND j.target = k.t"
        );
        let mut statements: Vec<(&str, Vec<&(dyn ToSql + Sync)>)> = Vec::with_capacity(4);
        if lock && !keys.is_empty() {
            statements.push((
                "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
                vec![&locks],
            ));
        }
        if !keys.is_empty() {
            statements.push((&jobs, vec![&fingerprints, &targets]));
            statements.push((
                "SELECT l.fingerprint, l.target, l.record FROM alertpub_log l
                 JOIN unnest($1::bigint[], $2::text[]) AS k(f, t)
                   ON l.fingerprint = k.f AND l.target = k.t",
                vec![&fingerprints, &targets],
            ));
        }
        if lock {
            statements.push(("SELECT nextval('alertpub_ids')", Vec::new()));
        }
        let mut answers = sql::query_all(tx, &statements)
            .await
            .map_err(db)?
            .into_iter();
        if lock && !keys.is_empty() {
            answers.next();
        }
        let mut bodies = Vec::new();
        if !keys.is_empty() {
            let jobs = answers.next().unwrap_or_default();
            let logs = answers.next().unwrap_or_default();
            bodies = add_job_rows(tx, state, &jobs).await?;
            bodies.extend(add_log_rows(state, &logs, |key, cached| {
                self.end_of(key, cached)
            })?);
        }
        let base = match answers.next() {
            Some(rows) => {
                let first: i64 = rows.first().map(|row| row.get(0)).ok_or_else(|| {
                    JobStoreError::storage(StorageKind::Broken, "nextval returned no row")
                })?;
                let base = unsigned(first).saturating_sub(1);
                state.next_job = base;
                state.next_body = base;
                Some(base)
            }
            None => None,
        };
        Ok((bodies, base))
    }

    /// The counts the bounds need, set on the group and the state.
    async fn counts(
        &self,
        tx: &Tx<'_>,
        state: &mut State,
        g: &mut Group,
    ) -> Result<(), JobStoreError> {
        let cached = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|(at, counts)| at.elapsed() < reuse_for(&self.planner, counts));
        let counts = match cached {
            Some((_, counts)) => counts,
            None => {
                let counts = read_counts(tx).await?;
                *self.counts.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((std::time::Instant::now(), counts.clone()));
                counts
            }
        };
        g.live = counts.jobs;
        g.log_entries = counts.logs;
        g.dead_count = counts.dead;
        state.live_counts = Some(counts.per_target);
        Ok(())
    }

    /// Takes one block of ids for the jobs and bodies the op makes.
    async fn id_block(&self, tx: &Tx<'_>, state: &mut State) -> Result<u64, JobStoreError> {
        let first: i64 = sql::query_one(tx, "SELECT nextval('alertpub_ids')", &[])
            .await
            .map_err(db)?
            .get(0);
        let base = unsigned(first).saturating_sub(1);
        state.next_job = base;
        state.next_body = base;
        Ok(base)
    }

    /// The oldest dead letters, for the planners' cap and retention.
    async fn oldest_dead(&self, tx: &Tx<'_>, t: &mut PgTables) -> Result<(), JobStoreError> {
        let rows = sql::query(
            tx,
            "SELECT id, dead_at FROM alertpub_dead ORDER BY id LIMIT $1",
            &[&OLDEST_DEAD],
        )
        .await
        .map_err(db)?;
        t.oldest = rows
            .iter()
            .map(|row| (DeadLetterId(row.get::<_, String>(0)), time(row.get(1))))
            .collect::<VecDeque<_>>();
        Ok(())
    }

    /// Writes a planned group: its tables, the bodies it released, and the ids it took.
    async fn persist(
        &self,
        tx: &Tx<'_>,
        g: &Group,
        t: PgTables,
        base: u64,
        released: Vec<u64>,
    ) -> Result<(), JobStoreError> {
        let used = g.next_job.max(g.next_body).saturating_sub(base);
        if used > schema::ID_BLOCK {
            return Err(JobStoreError::storage(
                StorageKind::Broken,
                format!("one operation took {used} ids, more than a block holds"),
            ));
        }
        // The op's writes, one pipeline: one round trip however many statements.
        let mut p = sql::Pipeline::default();
        if !t.is_empty() {
            t.flush(
                &mut p,
                base.saturating_add(1)..=base.saturating_add(schema::ID_BLOCK),
            );
        }
        // A job a newer state superseded in flight is removed when its lane settles it.
        let superseded: Vec<i64> = g
            .effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Supersede(job) => Some(id(job.0)),
                _ => None,
            })
            .collect();
        if !superseded.is_empty() {
            p.push(
                "UPDATE alertpub_jobs SET superseded = TRUE
                 WHERE id = ANY($1) AND leased_until IS NOT NULL",
                vec![Box::new(superseded)],
            );
        }
        release_bodies_in(&mut p, released);
        // The lanes of other replicas hear of their jobs at the commit, with where the earliest
        // of each target's and level's sits in its range.
        let targets: Vec<String> = earliest_jobs(g)
            .into_iter()
            .map(|((target, level), at)| notify::payload(&self.owner, target.as_str(), level, at))
            .collect();
        if !targets.is_empty() {
            p.push(
                "SELECT pg_notify($1, t) FROM unnest($2::text[]) AS t",
                vec![Box::new(notify::CHANNEL), Box::new(targets)],
            );
        }
        if !p.is_empty() {
            p.run(tx).await.map_err(db)?;
        }
        Ok(())
    }

    /// After a commit: the ends kept in memory, and the lanes told of their jobs.
    fn applied(&self, g: &Group) {
        // This replica's lanes scan from its new jobs on.
        for ((target, level), at) in earliest_jobs(g) {
            self.cursors.lower(&target, level, at);
        }
        let mut overlay = self.overlay.lock().unwrap_or_else(PoisonError::into_inner);
        for effect in &g.effects {
            match effect {
                Effect::SetLog(key, cached) => match cached.entry.ends_at {
                    Some(ends) if Some(ends) != cached.durable_ends_at => {
                        overlay.insert(key.clone(), (cached.entry.sequence, ends));
                    }
                    _ => {
                        overlay.remove(key);
                    }
                },
                Effect::RemoveLog(key) => {
                    overlay.remove(key);
                }
                _ => {}
            }
        }
        drop(overlay);
        self.evicted.fetch_add(g.evicted, Ordering::Relaxed);
        let targets = g.new_work();
        if targets.is_empty() {
            return;
        }
        let announce = self
            .announce
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(announce) = announce {
            targets.iter().for_each(|target| announce(target));
        }
    }

    /// Plans one op on a scratch state that `load` fills, persists it, and commits.
    async fn run<T>(
        &self,
        load: impl AsyncFnOnce(&Tx<'_>, &mut State, &mut PgTables) -> Result<Vec<u64>, JobStoreError>,
        plan: impl FnOnce(&Planner, &mut Group, &State, &mut PgTables) -> Planned2<T>,
    ) -> Result<T, JobStoreError> {
        let mut state = self.scratch();
        let outcome = self
            .transaction(async |tx| {
                let mut t = PgTables::default();
                let released = load(tx, &mut state, &mut t).await?;
                let base = self.id_block(tx, &mut state).await?;
                let mut g = Group::new(&state);
                self.counts(tx, &mut state, &mut g).await?;
                let answer = plan(&self.planner, &mut g, &state, &mut t)?;
                if answer.is_ok() {
                    self.persist(tx, &g, t, base, released).await?;
                }
                Ok((answer, g))
            })
            .await;
        self.done(state);
        let (answer, g) = outcome?;
        if answer.is_ok() {
            self.applied(&g);
        }
        answer
    }

    /// Locks the keys of a batch for this transaction, in one order across replicas.
    async fn lock_keys(&self, tx: &Tx<'_>, keys: &[Key]) -> Result<(), JobStoreError> {
        let mut locks: Vec<i64> = keys.iter().map(key_lock).collect();
        locks.sort_unstable();
        locks.dedup();
        sql::execute(
            tx,
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
            &[&locks],
        )
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// For each (target, level) the group made jobs on, where the earliest of them sits in its
/// lane's range: (due, id).
fn earliest_jobs(g: &Group) -> BTreeMap<(TargetName, usize), (i64, i64)> {
    let mut earliest: BTreeMap<(TargetName, usize), (i64, i64)> = BTreeMap::new();
    for effect in &g.effects {
        if let Effect::Insert(job_id, job) = effect {
            let level = usize::try_from(rows::priority_code(job.priority)).unwrap_or(0);
            let at = (ns(job.due), id(job_id.0));
            earliest
                .entry((job.target.clone(), level))
                .and_modify(|now| *now = (*now).min(at))
                .or_insert(at);
        }
    }
    earliest
}

/// A pool of at most `size` connections made with `config`.
fn pool_of(
    config: tokio_postgres::Config,
    size: usize,
    tls: MakeRustlsConnect,
) -> Result<Pool, JobStoreError> {
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        // The connection returned last is the next one out: a replica whose calls need a few
        // connections at a time keeps using the same few (warm backends, statements already
        // prepared) rather than cycling through the whole pool.
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| JobStoreError::storage(StorageKind::Broken, format!("the pool: {e}")))
}

/// `ago` before `now`, as the schema keeps times (the earliest when it reaches further back).
fn before(now: DateTime<Utc>, ago: Duration) -> i64 {
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| now.checked_sub_signed(ago))
        .map_or(i64::MIN, ns)
}

/// Removes the bodies among `candidates` that no job and no log entry refers to any more.
async fn release_bodies(tx: &Tx<'_>, candidates: Vec<u64>) -> Result<(), JobStoreError> {
    let mut p = sql::Pipeline::default();
    release_bodies_in(&mut p, candidates);
    if !p.is_empty() {
        p.run(tx).await.map_err(db)?;
    }
    Ok(())
}

/// [`release_bodies`], as a statement of `p`.
fn release_bodies_in(p: &mut sql::Pipeline, candidates: Vec<u64>) {
    if candidates.is_empty() {
        return;
    }
    let ids: Vec<i64> = candidates
        .into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .map(id)
        .collect();
    p.push(
        "DELETE FROM alertpub_bodies b WHERE b.id = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM alertpub_jobs j WHERE j.body = b.id)
           AND NOT EXISTS (SELECT 1 FROM alertpub_log l WHERE l.body = b.id)",
        vec![Box::new(ids)],
    );
}

/// The advisory-lock key of a (target, fingerprint): FNV-1a over both, the same in every
/// replica.
fn key_lock((target, fingerprint): &Key) -> i64 {
    use self::leases::fnv;
    let hash = fnv(target
        .as_str()
        .bytes()
        .chain(fingerprint.as_u64().to_le_bytes()));
    i64::from_ne_bytes(hash.to_ne_bytes())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "alertpub".to_owned())
}

impl Drop for PgJobStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl fmt::Debug for PgJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: it is not kept, and the pool's config is not printed.
        f.debug_struct("PgJobStore")
            .field("owner", &self.owner)
            .field("max_jobs", &self.planner.max_jobs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner() -> Planner {
        Planner {
            max_jobs: 1_000_000,
            max_jobs_per_target: 250_000,
            max_active_alerts: 1_000_000,
            dead_letter_cap: 100_000,
            dead_letter_retention: None,
        }
    }

    fn counts(jobs: u64, per_target: u64) -> Counts {
        Counts {
            jobs,
            logs: jobs / 10,
            dead: 0,
            per_target: [(TargetName::new("ops").unwrap(), per_target)].into(),
        }
    }

    #[test]
    fn counts_are_reused_longest_far_from_every_bound_and_not_at_all_near_one() {
        let planner = planner();
        assert_eq!(
            reuse_for(&planner, &counts(50_000, 50_000)),
            COUNTS_EVERY_FAR
        );
        // Past a quarter of a bound, or within the headroom of one: a second.
        assert_eq!(reuse_for(&planner, &counts(300_000, 50_000)), COUNTS_EVERY);
        assert_eq!(reuse_for(&planner, &counts(50_000, 70_000)), COUNTS_EVERY);
        // Within a tenth of a bound: counted afresh for every op.
        assert_eq!(
            reuse_for(&planner, &counts(950_000, 50_000)),
            Duration::ZERO
        );
        assert_eq!(
            reuse_for(&planner, &counts(50_000, 240_000)),
            Duration::ZERO
        );
        // Small bounds are never far: five seconds of ingest could pass them.
        let small = Planner {
            max_jobs: 50_000,
            max_jobs_per_target: 50_000,
            ..planner
        };
        assert_eq!(reuse_for(&small, &counts(10, 10)), COUNTS_EVERY);
    }
}

//! The database's schema: plain versioned SQL, applied in one transaction at start-up under an
//! advisory lock, so replicas that start together apply each migration once.
//!
//! Times are `BIGINT` nanoseconds since the epoch (chrono's whole precision, which the store
//! compares exactly); fingerprints are the `u64` bit pattern as `BIGINT`; records the store never
//! filters on (an alert body, a log entry, a dead letter) are the redb store's binary or JSON
//! encodings as `BYTEA`, beside the columns the queries filter on.

use tokio_postgres::Client;

/// The advisory lock that serialises migrations: "alertpub" in ASCII.
const MIGRATION_LOCK: i64 = 0x616c_6572_7470_7562;

/// The migrations, in order. A migration is never edited once released: a change is a new one.
const MIGRATIONS: &[(i32, &str)] = &[(1, V1), (2, V2), (3, V3), (4, V4)];

const V1: &str = r"
-- Job and body ids: each operation takes one block of ids (see `ID_BLOCK`), so replicas never
-- hand out the same id and one operation needs one round trip for all of its ids.
CREATE SEQUENCE alertpub_ids INCREMENT BY 1048576 START WITH 1;

-- Alert bodies, stored once per ingest batch however many targets they go to.
CREATE TABLE alertpub_bodies (
    id BIGINT PRIMARY KEY,
    alert BYTEA NOT NULL
);

CREATE TABLE alertpub_jobs (
    id BIGINT PRIMARY KEY,
    target TEXT NOT NULL,
    fingerprint BIGINT NOT NULL,
    body BIGINT NOT NULL,
    status SMALLINT NOT NULL,
    sequence BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    priority SMALLINT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    due BIGINT NOT NULL,
    last_error BYTEA,
    leased_until BIGINT,
    lease_owner TEXT,
    superseded BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX alertpub_jobs_key ON alertpub_jobs (target, fingerprint);
CREATE INDEX alertpub_jobs_ready ON alertpub_jobs (target, priority, due, id)
    WHERE leased_until IS NULL;
CREATE INDEX alertpub_jobs_leased ON alertpub_jobs (target, leased_until)
    WHERE leased_until IS NOT NULL;
CREATE INDEX alertpub_jobs_body ON alertpub_jobs (body);
CREATE INDEX alertpub_jobs_age ON alertpub_jobs (enqueued_at);

-- The notification log: one entry per (fingerprint, target).
CREATE TABLE alertpub_log (
    fingerprint BIGINT NOT NULL,
    target TEXT NOT NULL,
    record BYTEA NOT NULL,
    body BIGINT NOT NULL,
    firing BOOLEAN NOT NULL,
    ends_at BIGINT,
    accepted_at BIGINT NOT NULL,
    PRIMARY KEY (fingerprint, target)
);
CREATE INDEX alertpub_log_body ON alertpub_log (body);
CREATE INDEX alertpub_log_ends ON alertpub_log (ends_at) WHERE firing;
CREATE INDEX alertpub_log_accepted ON alertpub_log (accepted_at);

-- The dead-letter queue, by UUIDv7 id (so by when each entry was made).
CREATE TABLE alertpub_dead (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    dead_at BIGINT NOT NULL,
    record BYTEA NOT NULL
);

CREATE TABLE alertpub_message_refs (
    target TEXT NOT NULL,
    fingerprint BIGINT NOT NULL,
    reference BYTEA NOT NULL,
    PRIMARY KEY (target, fingerprint)
);

-- The targets the sweeps have seen, and the removal marks.
CREATE TABLE alertpub_targets (
    name TEXT PRIMARY KEY,
    record BYTEA NOT NULL
);
";

const V2: &str = r"
-- The replicas, each with its last heartbeat (the database's clock, in nanoseconds), so lanes
-- are spread over the live ones by rendezvous hashing.
CREATE TABLE alertpub_replicas (
    id TEXT PRIMARY KEY,
    heartbeat BIGINT NOT NULL
);

-- Which replica runs each target's lane, until when (the database's clock): one at a time.
CREATE TABLE alertpub_lanes (
    target TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
";

const V3: &str = r"
-- A lease is marked in place as a heap-only update: no index names the lease's columns, and
-- each page keeps room for the new version. The leased jobs of a lane are at most its
-- in-flight limit, which the ready index's readers skip on the heap.
DROP INDEX alertpub_jobs_leased;
DROP INDEX alertpub_jobs_ready;
CREATE INDEX alertpub_jobs_ready ON alertpub_jobs (target, priority, due, id);
ALTER TABLE alertpub_jobs SET (fillfactor = 80);

-- When a lease lapses by the database's clock: a lane that moved judges the leases its last
-- owner took by this, not by its own clock, so clocks that disagree take no job twice.
ALTER TABLE alertpub_jobs ADD COLUMN lease_db_until BIGINT;
";

const V4: &str = r"
-- The delivery history: every attempt's outcome, newest by id, trimmed by age (`at`, the
-- database-independent time the replica's clock gave) and by count.
CREATE TABLE alertpub_history (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    fingerprint BIGINT NOT NULL,
    target TEXT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX alertpub_history_at ON alertpub_history (at);
CREATE INDEX alertpub_history_fingerprint ON alertpub_history (fingerprint, id);
";

/// How many ids one operation may take from `alertpub_ids` (its `INCREMENT BY`).
pub(super) const ID_BLOCK: u64 = 1_048_576;

/// Why the schema could not be brought up to date.
#[derive(Debug)]
pub(super) enum MigrateError {
    Database(tokio_postgres::Error),
    /// The database holds a schema newer than this build knows.
    Newer(i32),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(e)
    }
}

/// Applies the migrations the database lacks, in one transaction.
pub(super) async fn migrate(client: &mut Client) -> Result<(), MigrateError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS alertpub_schema (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(max(version), 0) FROM alertpub_schema", &[])
        .await?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |&(v, _)| v);
    if current > known {
        return Err(MigrateError::Newer(current));
    }
    for &(version, sql) in MIGRATIONS {
        if version > current {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO alertpub_schema (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

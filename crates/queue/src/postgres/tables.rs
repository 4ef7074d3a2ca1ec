//! [`PgTables`]: the planners' [`Tables`] for PostgreSQL. The planners are synchronous, so the
//! writes are gathered (the last one per row wins, as it would in a transaction) and sent by
//! [`PgTables::flush`] in a handful of set-based statements; what the planners read (a body,
//! a dead letter, the oldest dead letters) is loaded before they run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;

use alert_core::{
    DeadLetter, DeadLetterId, EnrichedAlert, JobId, JobStoreError, StorageKind, TargetName,
};
use chrono::{DateTime, Utc};

use super::rows::{fp, id, ns, priority_code, status_code};
use super::sql::Pipeline;
use crate::model::plan::{DeadRead, Oldest, Tables};
use crate::model::state::{CachedLog, Job, Key};
use crate::model::sweep::KnownTarget;
use crate::redb_store::records::{StoredDeadLetter, StoredLog, encode, encode_alert};

/// A job row to write.
struct JobRow {
    target: String,
    fingerprint: i64,
    body: i64,
    status: i16,
    sequence: i64,
    attempts: i32,
    priority: i16,
    enqueued_at: i64,
    due: i64,
    last_error: Option<Vec<u8>>,
}

/// A log row to write.
struct LogRow {
    record: Vec<u8>,
    body: i64,
    firing: bool,
    ends_at: Option<i64>,
    accepted_at: i64,
}

/// A dead letter to write.
struct DeadRow {
    target: String,
    kind: String,
    dead_at: i64,
    record: Vec<u8>,
}

/// See the module docs.
#[derive(Default)]
pub(super) struct PgTables {
    jobs: HashMap<JobId, Option<JobRow>>,
    /// Jobs a newer state replaced while pending: removed unless a lane leased them meanwhile,
    /// in which case they are marked superseded instead.
    replaced: HashSet<JobId>,
    bodies: Vec<(u64, Vec<u8>)>,
    logs: HashMap<Key, Option<LogRow>>,
    targets: HashMap<String, Option<Vec<u8>>>,
    dead: HashMap<String, Option<DeadRow>>,
    /// Alerts the planners may read back: loaded, and those stored by this op.
    pub(super) alerts: HashMap<u64, Arc<EnrichedAlert>>,
    /// Dead letters the planners may read (a replay's), loaded.
    pub(super) stored_dead: HashMap<String, DeadLetter>,
    /// The oldest stored dead letters, loaded, then those this op adds, oldest first.
    pub(super) oldest: VecDeque<(DeadLetterId, DateTime<Utc>)>,
    added_dead: VecDeque<(DeadLetterId, DateTime<Utc>)>,
    /// The op is not to be planned: another replica holds the maintenance lock for this pass.
    pub(super) skip: bool,
}

impl PgTables {
    /// Whether the op wrote nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.replaced.is_empty()
            && self.bodies.is_empty()
            && self.logs.is_empty()
            && self.targets.is_empty()
            && self.dead.is_empty()
    }

    /// Sends the writes, in the order that keeps every row as the op left it. The jobs whose
    /// ids are in `fresh` (the op's block of ids) are new, so no row can hold them yet.
    pub(super) fn flush(self, p: &mut Pipeline, fresh: RangeInclusive<u64>) {
        if !self.bodies.is_empty() {
            let (ids, alerts): (Vec<i64>, Vec<Vec<u8>>) = self
                .bodies
                .into_iter()
                .map(|(body, bytes)| (id(body), bytes))
                .unzip();
            p.push(
                "INSERT INTO alertpub_bodies (id, alert) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
                vec![Box::new(ids), Box::new(alerts)],
            );
        }
        let mut removed: Vec<i64> = Vec::new();
        let (mut put, mut new) = (JobColumns::default(), JobColumns::default());
        for (job_id, row) in self.jobs {
            match row {
                Some(row) if fresh.contains(&job_id.0) => new.push(job_id, row),
                Some(row) => put.push(job_id, row),
                None if self.replaced.contains(&job_id) => {}
                None => removed.push(id(job_id.0)),
            }
        }
        if !removed.is_empty() {
            p.push(
                "DELETE FROM alertpub_jobs WHERE id = ANY($1)",
                vec![Box::new(removed)],
            );
        }
        if !self.replaced.is_empty() {
            let replaced: Vec<i64> = self.replaced.iter().map(|j| id(j.0)).collect();
            // A lane may have leased the job since it was read: it is then superseded in
            // flight, and its settlement removes it.
            p.push(
                "WITH gone AS (
                    DELETE FROM alertpub_jobs WHERE id = ANY($1) AND leased_until IS NULL
                    RETURNING id
                )
                UPDATE alertpub_jobs SET superseded = TRUE
                WHERE id = ANY($1) AND id NOT IN (SELECT id FROM gone)",
                vec![Box::new(replaced)],
            );
        }
        put.write(p);
        new.insert(p);
        let mut log_gone: (Vec<i64>, Vec<String>) = (Vec::new(), Vec::new());
        let mut log_put = LogColumns::default();
        for ((target, fingerprint), row) in self.logs {
            match row {
                Some(row) => log_put.push(fp(fingerprint), target.as_str().to_owned(), row),
                None => {
                    log_gone.0.push(fp(fingerprint));
                    log_gone.1.push(target.as_str().to_owned());
                }
            }
        }
        if !log_gone.0.is_empty() {
            p.push(
                "DELETE FROM alertpub_log l USING unnest($1::bigint[], $2::text[]) AS k(f, t)
                 WHERE l.fingerprint = k.f AND l.target = k.t",
                vec![Box::new(log_gone.0), Box::new(log_gone.1)],
            );
        }
        log_put.write(p);
        for (name, record) in self.targets {
            match record {
                Some(record) => p.push(
                    "INSERT INTO alertpub_targets (name, record) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
                    vec![Box::new(name), Box::new(record)],
                ),
                None => p.push(
                    "DELETE FROM alertpub_targets WHERE name = $1",
                    vec![Box::new(name)],
                ),
            }
        }
        let mut dead_gone: Vec<String> = Vec::new();
        let mut dead_put = DeadColumns::default();
        for (dead_id, row) in self.dead {
            match row {
                Some(row) => dead_put.push(dead_id, row),
                None => dead_gone.push(dead_id),
            }
        }
        // Dead letters go in as one statement however many an op makes (a removed target's
        // whole queue, say).
        if !dead_put.id.is_empty() {
            p.push(
                "INSERT INTO alertpub_dead (id, target, kind, dead_at, record)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                     $5::bytea[])",
                vec![
                    Box::new(dead_put.id),
                    Box::new(dead_put.target),
                    Box::new(dead_put.kind),
                    Box::new(dead_put.dead_at),
                    Box::new(dead_put.record),
                ],
            );
        }
        if !dead_gone.is_empty() {
            p.push(
                "DELETE FROM alertpub_dead WHERE id = ANY($1)",
                vec![Box::new(dead_gone)],
            );
        }
    }

    fn live_dead(&self, dead_id: &str) -> bool {
        match self.dead.get(dead_id) {
            Some(row) => row.is_some(),
            None => {
                self.stored_dead.contains_key(dead_id)
                    || self.oldest.iter().any(|(d, _)| d.0 == dead_id)
            }
        }
    }
}

/// Job rows as parallel arrays, for one `INSERT … SELECT * FROM unnest(…)`.
#[derive(Default)]
struct JobColumns {
    id: Vec<i64>,
    target: Vec<String>,
    fingerprint: Vec<i64>,
    body: Vec<i64>,
    status: Vec<i16>,
    sequence: Vec<i64>,
    attempts: Vec<i32>,
    priority: Vec<i16>,
    enqueued_at: Vec<i64>,
    due: Vec<i64>,
    last_error: Vec<Option<Vec<u8>>>,
}

impl JobColumns {
    fn push(&mut self, job_id: JobId, row: JobRow) {
        self.id.push(id(job_id.0));
        self.target.push(row.target);
        self.fingerprint.push(row.fingerprint);
        self.body.push(row.body);
        self.status.push(row.status);
        self.sequence.push(row.sequence);
        self.attempts.push(row.attempts);
        self.priority.push(row.priority);
        self.enqueued_at.push(row.enqueued_at);
        self.due.push(row.due);
        self.last_error.push(row.last_error);
    }

    /// Inserts new jobs: a plain insert, which costs the database a fifth less than one that
    /// must look for a conflict first.
    fn insert(self, p: &mut Pipeline) {
        if self.id.is_empty() {
            return;
        }
        p.push(
            "INSERT INTO alertpub_jobs (id, target, fingerprint, body, status, sequence, attempts,
                 priority, enqueued_at, due, last_error)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],
                 $5::smallint[], $6::bigint[], $7::integer[], $8::smallint[], $9::bigint[],
                 $10::bigint[], $11::bytea[])",
            self.params(),
        );
    }

    fn params(self) -> super::sql::Params {
        vec![
            Box::new(self.id),
            Box::new(self.target),
            Box::new(self.fingerprint),
            Box::new(self.body),
            Box::new(self.status),
            Box::new(self.sequence),
            Box::new(self.attempts),
            Box::new(self.priority),
            Box::new(self.enqueued_at),
            Box::new(self.due),
            Box::new(self.last_error),
        ]
    }

    fn write(self, p: &mut Pipeline) {
        if self.id.is_empty() {
            return;
        }
        // A job written again (a settlement the planners rewrote) keeps its lease columns.
        p.push(
            "INSERT INTO alertpub_jobs (id, target, fingerprint, body, status, sequence, attempts,
                 priority, enqueued_at, due, last_error)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],
                 $5::smallint[], $6::bigint[], $7::integer[], $8::smallint[], $9::bigint[],
                 $10::bigint[], $11::bytea[])
             ON CONFLICT (id) DO UPDATE SET target = EXCLUDED.target,
                 fingerprint = EXCLUDED.fingerprint, body = EXCLUDED.body,
                 status = EXCLUDED.status, sequence = EXCLUDED.sequence,
                 attempts = EXCLUDED.attempts, priority = EXCLUDED.priority,
                 enqueued_at = EXCLUDED.enqueued_at, due = EXCLUDED.due,
                 last_error = EXCLUDED.last_error",
            self.params(),
        );
    }
}

/// Dead letters as parallel arrays.
#[derive(Default)]
struct DeadColumns {
    id: Vec<String>,
    target: Vec<String>,
    kind: Vec<String>,
    dead_at: Vec<i64>,
    record: Vec<Vec<u8>>,
}

impl DeadColumns {
    fn push(&mut self, id: String, row: DeadRow) {
        self.id.push(id);
        self.target.push(row.target);
        self.kind.push(row.kind);
        self.dead_at.push(row.dead_at);
        self.record.push(row.record);
    }
}

/// Log rows as parallel arrays.
#[derive(Default)]
struct LogColumns {
    fingerprint: Vec<i64>,
    target: Vec<String>,
    record: Vec<Vec<u8>>,
    body: Vec<i64>,
    firing: Vec<bool>,
    ends_at: Vec<Option<i64>>,
    accepted_at: Vec<i64>,
}

impl LogColumns {
    fn push(&mut self, fingerprint: i64, target: String, row: LogRow) {
        self.fingerprint.push(fingerprint);
        self.target.push(target);
        self.record.push(row.record);
        self.body.push(row.body);
        self.firing.push(row.firing);
        self.ends_at.push(row.ends_at);
        self.accepted_at.push(row.accepted_at);
    }

    fn write(self, p: &mut Pipeline) {
        if self.fingerprint.is_empty() {
            return;
        }
        p.push(
            "INSERT INTO alertpub_log (fingerprint, target, record, body, firing, ends_at,
                 accepted_at)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bigint[],
                 $5::boolean[], $6::bigint[], $7::bigint[])
             ON CONFLICT (fingerprint, target) DO UPDATE SET record = EXCLUDED.record,
                 body = EXCLUDED.body, firing = EXCLUDED.firing, ends_at = EXCLUDED.ends_at,
                 accepted_at = EXCLUDED.accepted_at",
            vec![
                Box::new(self.fingerprint),
                Box::new(self.target),
                Box::new(self.record),
                Box::new(self.body),
                Box::new(self.firing),
                Box::new(self.ends_at),
                Box::new(self.accepted_at),
            ],
        );
    }
}

impl Tables for PgTables {
    fn put_job(&mut self, job_id: JobId, job: &Job) -> Result<(), JobStoreError> {
        let last_error = job.last_error.as_ref().map(encode).transpose()?;
        self.jobs.insert(
            job_id,
            Some(JobRow {
                target: job.target.as_str().to_owned(),
                fingerprint: fp(job.fingerprint),
                body: id(job.body),
                status: status_code(job.status),
                sequence: id(job.sequence),
                attempts: i32::try_from(job.attempts).unwrap_or(i32::MAX),
                priority: priority_code(job.priority),
                enqueued_at: ns(job.enqueued_at),
                due: ns(job.due),
                last_error,
            }),
        );
        self.replaced.remove(&job_id);
        Ok(())
    }

    fn remove_job(&mut self, job_id: JobId) -> Result<(), JobStoreError> {
        self.jobs.insert(job_id, None);
        Ok(())
    }

    fn remove_superseded_job(&mut self, job_id: JobId) -> Result<(), JobStoreError> {
        self.jobs.insert(job_id, None);
        self.replaced.insert(job_id);
        Ok(())
    }

    fn put_body(
        &mut self,
        body: u64,
        alert: &Arc<EnrichedAlert>,
        encoded: Option<&[u8]>,
    ) -> Result<(), JobStoreError> {
        let bytes = match encoded {
            Some(bytes) => bytes.to_vec(),
            None => encode_alert(alert)?,
        };
        self.bodies.push((body, bytes));
        self.alerts.insert(body, Arc::clone(alert));
        Ok(())
    }

    fn read_body(&mut self, body: u64) -> Result<Arc<EnrichedAlert>, JobStoreError> {
        self.alerts.get(&body).cloned().ok_or_else(|| {
            JobStoreError::storage(
                StorageKind::Corrupt,
                format!("the alert {body} is not stored"),
            )
        })
    }

    fn put_log(&mut self, key: &Key, cached: &CachedLog) -> Result<(), JobStoreError> {
        let record = StoredLog::new(&cached.entry, cached.body, cached.seen_at).encode();
        self.logs.insert(
            key.clone(),
            Some(LogRow {
                record,
                body: id(cached.body),
                firing: cached.entry.status == alert_core::AlertStatus::Firing,
                ends_at: cached.entry.ends_at.map(ns),
                accepted_at: ns(cached.entry.accepted_at),
            }),
        );
        Ok(())
    }

    fn remove_log(&mut self, key: &Key) -> Result<(), JobStoreError> {
        self.logs.insert(key.clone(), None);
        Ok(())
    }

    fn put_target(
        &mut self,
        name: &TargetName,
        record: Option<&KnownTarget>,
    ) -> Result<(), JobStoreError> {
        let record = record.map(encode).transpose()?;
        self.targets.insert(name.as_str().to_owned(), record);
        Ok(())
    }

    fn put_dead(&mut self, entry: &DeadLetter) -> Result<(), JobStoreError> {
        self.dead.insert(
            entry.id.0.clone(),
            Some(DeadRow {
                target: entry.target.as_str().to_owned(),
                kind: entry.kind.as_str().to_owned(),
                dead_at: ns(entry.dead_at),
                record: encode(&StoredDeadLetter::new(entry))?,
            }),
        );
        self.added_dead.push_back((entry.id.clone(), entry.dead_at));
        Ok(())
    }

    fn has_dead(&mut self, dead_id: &DeadLetterId) -> Result<bool, JobStoreError> {
        Ok(self.live_dead(&dead_id.0))
    }

    fn read_dead(&mut self, dead_id: &DeadLetterId) -> Result<DeadRead, JobStoreError> {
        if matches!(self.dead.get(&dead_id.0), Some(None)) {
            return Ok(DeadRead::Missing);
        }
        Ok(self
            .stored_dead
            .get(&dead_id.0)
            .map_or(DeadRead::Missing, |entry| {
                DeadRead::Found(Box::new(entry.clone()))
            }))
    }

    fn remove_dead(&mut self, dead_id: &DeadLetterId) -> Result<bool, JobStoreError> {
        let was = self.live_dead(&dead_id.0);
        self.dead.insert(dead_id.0.clone(), None);
        Ok(was)
    }

    fn oldest_dead(&mut self, with_time: bool) -> Result<Oldest, JobStoreError> {
        loop {
            let front = self
                .oldest
                .front()
                .or_else(|| self.added_dead.front())
                .cloned();
            let Some((dead_id, dead_at)) = front else {
                return Ok(Oldest::None);
            };
            if self.live_dead(&dead_id.0) {
                return Ok(Oldest::Entry {
                    dead_at: with_time.then_some(dead_at),
                });
            }
            // Removed by this op already (a replay of it, say).
            self.pop_front();
        }
    }

    fn pop_oldest_dead(&mut self) -> Result<(), JobStoreError> {
        if let Some((dead_id, _)) = self.pop_front() {
            self.dead.insert(dead_id.0, None);
        }
        Ok(())
    }
}

impl PgTables {
    fn pop_front(&mut self) -> Option<(DeadLetterId, DateTime<Utc>)> {
        self.oldest
            .pop_front()
            .or_else(|| self.added_dead.pop_front())
    }
}

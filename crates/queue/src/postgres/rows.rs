//! Rows to the queue's model and back, and the loading of what one operation needs into a
//! scratch [`State`]: the planners run on it as they run on the redb store's whole state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alert_core::{
    AlertStatus, DeadLetter, EnrichedAlert, Fingerprint, JobError, JobId, JobStoreError, Priority,
    StorageKind, TargetName,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::error::db;
use super::{Tx, sql};
use crate::model::State;
use crate::model::state::{CachedLog, Job, Key};
use crate::redb_store::records::{StoredLog, decode, decode_alert, read_dead};

/// The columns of a job row, in the order [`job_of`] reads them.
pub(super) const JOB_COLUMNS: &str = "id, target, fingerprint, body, status, sequence, attempts, \
     priority, enqueued_at, due, last_error, leased_until, superseded";

pub(super) const JOB_COLUMN_COUNT: usize = 13;

/// A time as the schema keeps it: nanoseconds since the epoch, clamped to what `i64` holds
/// (1677 to 2262), which leaves "for ever" leases and ends as far ahead as they can be.
pub(super) fn ns(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(super) fn time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// A fingerprint's bits as a `BIGINT`.
pub(super) fn fp(fingerprint: Fingerprint) -> i64 {
    i64::from_ne_bytes(fingerprint.as_u64().to_ne_bytes())
}

pub(super) fn fingerprint(bits: i64) -> Fingerprint {
    Fingerprint::from_u64(u64::from_ne_bytes(bits.to_ne_bytes()))
}

/// An id as a `BIGINT` (ids come from a sequence, so they are positive).
pub(super) fn id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

pub(super) fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn status_code(status: AlertStatus) -> i16 {
    match status {
        AlertStatus::Firing => 0,
        AlertStatus::Resolved => 1,
    }
}

pub(super) fn priority_code(priority: Priority) -> i16 {
    match priority {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
    }
}

fn corrupt(what: impl std::fmt::Display) -> JobStoreError {
    JobStoreError::storage(
        StorageKind::Corrupt,
        format!("a stored record is unreadable: {what}"),
    )
}

/// A job row, read with [`JOB_COLUMNS`].
pub(super) fn job_of(row: &Row) -> Result<(JobId, Job), JobStoreError> {
    let target = TargetName::new(row.get::<_, &str>(1)).map_err(corrupt)?;
    let status = match row.get::<_, i16>(4) {
        0 => AlertStatus::Firing,
        1 => AlertStatus::Resolved,
        other => return Err(corrupt(format!("status {other}"))),
    };
    let priority = match row.get::<_, i16>(7) {
        0 => Priority::High,
        1 => Priority::Medium,
        2 => Priority::Low,
        other => return Err(corrupt(format!("priority {other}"))),
    };
    let last_error: Option<JobError> = row.get::<_, Option<&[u8]>>(10).map(decode).transpose()?;
    let job = Job {
        target,
        fingerprint: fingerprint(row.get(2)),
        body: unsigned(row.get(3)),
        status,
        sequence: unsigned(row.get(5)),
        attempts: u32::try_from(row.get::<_, i32>(6)).unwrap_or(0),
        priority,
        enqueued_at: time(row.get(8)),
        due: time(row.get(9)),
        last_error,
        leased_until: row.get::<_, Option<i64>>(11).map(time),
        superseded: row.get(12),
    };
    Ok((JobId(unsigned(row.get(0))), job))
}

/// A log row (`fingerprint, target, record`) as the state caches it.
pub(super) fn log_of(row: &Row) -> Result<(Key, CachedLog), JobStoreError> {
    let target = TargetName::new(row.get::<_, &str>(1)).map_err(corrupt)?;
    let stored = StoredLog::decode(row.get(2))?;
    let cached = CachedLog {
        entry: stored.entry(),
        body: stored.body,
        durable_ends_at: stored.ends_at,
        seen_at: stored.seen_at,
    };
    Ok(((target, fingerprint(row.get(0))), cached))
}

/// A dead-letter row's record.
pub(super) fn dead_of(row: &Row, column: usize) -> Result<DeadLetter, JobStoreError> {
    read_dead(row.get(column))
}

/// The keys as two parallel arrays, for `unnest`.
pub(super) fn key_arrays(keys: &[Key]) -> (Vec<i64>, Vec<String>) {
    keys.iter()
        .map(|(target, f)| (fp(*f), target.as_str().to_owned()))
        .unzip()
}

/// Reads the alerts of `ids`.
pub(super) async fn alerts<C: GenericClient + ?Sized>(
    tx: &C,
    ids: &[u64],
) -> Result<HashMap<u64, Arc<EnrichedAlert>>, JobStoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = ids.iter().map(|&i| id(i)).collect();
    let rows = sql::query(
        tx,
        "SELECT id, alert FROM alertpub_bodies WHERE id = ANY($1)",
        &[&ids],
    )
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| Ok((unsigned(row.get(0)), Arc::new(decode_alert(row.get(1))?))))
        .collect()
}

/// The jobs `sql` selects (with [`JOB_COLUMNS`], and optionally their alert's record after
/// them) added to `state` with their bodies' alerts; returns the bodies they refer to.
pub(super) async fn add_jobs(
    tx: &Tx<'_>,
    state: &mut State,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<u64>, JobStoreError> {
    let rows = sql::query(tx, sql, params).await.map_err(db)?;
    add_job_rows(tx, state, &rows).await
}

/// [`add_jobs`] for rows already read; a row whose id is NULL (an outer join's empty side) is
/// skipped.
pub(super) async fn add_job_rows<C: GenericClient + ?Sized>(
    tx: &C,
    state: &mut State,
    rows: &[Row],
) -> Result<Vec<u64>, JobStoreError> {
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        if row.get::<_, Option<i64>>(0).is_none() {
            continue;
        }
        let (job_id, job) = job_of(row)?;
        if row.len() > JOB_COLUMN_COUNT
            && state.alert(job.body).is_none()
            && let Some(record) = row.get::<_, Option<&[u8]>>(JOB_COLUMN_COUNT)
        {
            let alert = Arc::new(decode_alert(record)?);
            match state.bodies.get_mut(&job.body) {
                Some(known) => known.alert = Some(alert),
                None => state.insert_body(job.body, alert),
            }
        }
        if !state.jobs.contains_key(&job_id) {
            jobs.push((job_id, job));
        }
    }
    let needed: Vec<u64> = jobs
        .iter()
        .map(|(_, job)| job.body)
        .filter(|body| state.alert(*body).is_none())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    for (body, alert) in alerts(tx, &needed).await? {
        match state.bodies.get_mut(&body) {
            Some(known) => known.alert = Some(alert),
            None => state.insert_body(body, alert),
        }
    }
    let mut bodies = Vec::with_capacity(jobs.len());
    for (job_id, job) in jobs {
        if state.alert(job.body).is_none() {
            return Err(JobStoreError::storage(
                StorageKind::Corrupt,
                format!(
                    "job {job_id} refers to alert {}, which is not stored",
                    job.body
                ),
            ));
        }
        bodies.push(job.body);
        state.insert_job(job_id, job);
    }
    Ok(bodies)
}

/// The log entries of `rows` (`fingerprint, target, record`) added to `state`, each end
/// adjusted by `end`; returns the bodies they refer to.
pub(super) fn add_log_rows(
    state: &mut State,
    rows: &[Row],
    end: impl Fn(&Key, &CachedLog) -> Option<DateTime<Utc>>,
) -> Result<Vec<u64>, JobStoreError> {
    let mut bodies = Vec::with_capacity(rows.len());
    for row in rows {
        let (key, mut cached) = log_of(row)?;
        if state.log.get(&key).is_some() {
            continue;
        }
        cached.entry.ends_at = end(&key, &cached);
        state.bodies.entry(cached.body).or_default();
        bodies.push(cached.body);
        state.set_log(key, cached);
    }
    Ok(bodies)
}

//! Opening the redb store: the state rebuilt from its tables, and what a crash or an unreadable
//! record leaves behind tidied.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    AlertStatus, EnrichedAlert, Fingerprint, JobId, JobStoreError, StorageKind, TargetName,
};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableHandle};

use super::records::{
    ALERTS, CLOSED_CLEANLY, DEAD, JOBS, LEGACY_TABLES, LOG, LOG_BY_TARGET, MESSAGE_REFS, META,
    NEXT_BODY, NEXT_JOB, QUARANTINE, Quarantined, StoredLog, TARGETS, decode, decode_alert,
    decode_job, storage,
};
use crate::model::State;
use crate::model::state::{Body, CachedLog, DEFAULT_DEAD_LETTER_CAP};
use crate::model::sweep::KnownTarget;

/// The quarantine table while the store is being loaded, and how many records it got.
pub(crate) struct Quarantine<'t> {
    table: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(crate) moved: u64,
}

impl<'t> Quarantine<'t> {
    pub(crate) fn open(txn: &'t redb::WriteTransaction) -> Result<Self, JobStoreError> {
        Ok(Self {
            table: txn.open_table(QUARANTINE).map_err(storage)?,
            moved: 0,
        })
    }

    /// Sets aside the record `key` of `table`, with its bytes and why it could not be read.
    pub(crate) fn put(
        &mut self,
        table: &str,
        key: &str,
        bytes: Vec<u8>,
        why: &JobStoreError,
    ) -> Result<(), JobStoreError> {
        put_quarantined(&mut self.table, table, key, bytes, why)?;
        self.moved += 1;
        Ok(())
    }
}

/// Writes one record into the quarantine table.
pub(crate) fn put_quarantined(
    table: &mut redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
    from: &str,
    key: &str,
    bytes: Vec<u8>,
    why: &JobStoreError,
) -> Result<(), JobStoreError> {
    let record = Quarantined {
        reason: why.to_string(),
        bytes,
    };
    table
        .insert((from, key), record.encode().as_slice())
        .map_err(storage)?;
    Ok(())
}

impl State {
    /// Reads the database into a fresh state, in one durable write transaction that also tidies
    /// what a crash can leave behind:
    /// - of two jobs of one (target, fingerprint), which a crash can leave when a newer state
    ///   superseded a leased job, the newer one is kept: with the lease gone, nothing is in
    ///   flight that the newer state must wait for;
    /// - an alert body no job and no log entry refers to (its last reference went in a commit
    ///   whose body removal had not been committed yet) is removed.
    pub(crate) fn load(db: &Database) -> Result<Self, JobStoreError> {
        let mut txn = db.begin_write().map_err(storage)?;
        txn.set_durability(super::ingest_durability())
            .map_err(storage)?;
        let mut state = Self::default();
        state.dead_letter_cap = DEFAULT_DEAD_LETTER_CAP;
        let legacy: Vec<String> = txn
            .list_tables()
            .map_err(storage)?
            .map(|t| t.name().to_owned())
            .filter(|name| LEGACY_TABLES.contains(&name.as_str()))
            .collect();
        for name in legacy {
            let def = redb::TableDefinition::<'_, u64, &[u8]>::new(&name);
            let empty = match name.as_str() {
                "jobs" => txn.open_table(def).map_err(storage)?.is_empty(),
                _ => txn
                    .open_table(redb::TableDefinition::<'_, (&str, u64), &[u8]>::new(&name))
                    .map_err(storage)?
                    .is_empty(),
            }
            .map_err(storage)?;
            if !empty {
                return Err(JobStoreError::storage(
                    StorageKind::Corrupt,
                    format!(
                        "the queue file holds a table ({name}) in the format of an earlier alertpub \
                     build; drain the queue with that build, or move the file aside"
                    ),
                ));
            }
            txn.delete_table(def).map_err(storage)?;
        }
        migrate_log(&txn)?;
        {
            let mut jobs = txn.open_table(JOBS).map_err(storage)?;
            let mut alerts = txn.open_table(ALERTS).map_err(storage)?;
            let mut log = txn.open_table(LOG).map_err(storage)?;
            let mut quarantine = Quarantine::open(&txn)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            let dead = txn.open_table(DEAD).map_err(storage)?;
            txn.open_table(MESSAGE_REFS).map_err(storage)?;
            {
                let mut targets = txn.open_table(TARGETS).map_err(storage)?;
                let mut unreadable = Vec::new();
                for row in targets.iter().map_err(storage)? {
                    let (name, value) = row.map_err(storage)?;
                    let read = TargetName::new(name.value())
                        .map_err(|e| JobStoreError::storage(StorageKind::Corrupt, e.to_string()))
                        .and_then(|n| decode::<KnownTarget>(value.value()).map(|r| (n, r)));
                    match read {
                        Ok((name, record)) => {
                            state.targets.insert(name, record);
                        }
                        Err(e) => {
                            unreadable.push((name.value().to_owned(), value.value().to_vec(), e))
                        }
                    }
                }
                // The next sweep records the target again (as removed now, if it is gone).
                for (name, bytes, e) in unreadable {
                    targets.remove(name.as_str()).map_err(storage)?;
                    quarantine.put(TARGETS.name(), &name, bytes, &e)?;
                }
            }
            state.dead_count = dead.len().map_err(storage)?;
            state.next_job = meta
                .get(NEXT_JOB)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            state.next_body = meta
                .get(NEXT_BODY)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            // After anything but a clean close, the ends kept in memory are lost.
            if meta.remove(CLOSED_CLEANLY).map_err(storage)?.is_none() {
                state.restore = Some(Duration::ZERO);
            }
            // A record that fails to decode (or refers to an alert that is not stored) is moved
            // to the quarantine rather than failing the open: one bad record must not keep the
            // server from starting. The rows are moved after each scan, since a table cannot
            // change while it is read.
            let mut bad: Vec<(u64, Vec<u8>, JobStoreError)> = Vec::new();
            for row in alerts.iter().map_err(storage)? {
                let (id, value) = row.map_err(storage)?;
                let id = id.value();
                state.next_body = state.next_body.max(id);
                // Every body is decoded, so an unreadable one is found now, but its alert is
                // kept only once a job refers to it.
                match decode_alert(value.value()) {
                    Ok(_) => {
                        state.bodies.insert(id, Body::default());
                    }
                    Err(e) => bad.push((id, value.value().to_vec(), e)),
                }
            }
            for (id, bytes, e) in bad.drain(..) {
                alerts.remove(id).map_err(storage)?;
                quarantine.put(ALERTS.name(), &id.to_string(), bytes, &e)?;
            }
            let mut bad_log: Vec<((u64, String), Vec<u8>, JobStoreError)> = Vec::new();
            for row in log.iter().map_err(storage)? {
                let (key, value) = row.map_err(storage)?;
                let (fingerprint, target) = key.value();
                let read = StoredLog::decode(value.value()).and_then(|stored| {
                    let target = TargetName::new(target).map_err(|e| {
                        JobStoreError::storage(
                            StorageKind::Corrupt,
                            format!("a logged target name is invalid: {e}"),
                        )
                    })?;
                    state.check_body(stored.body)?;
                    Ok((target, stored))
                });
                match read {
                    Ok((target, stored)) => state.set_log(
                        (target, Fingerprint::from_u64(fingerprint)),
                        CachedLog {
                            entry: stored.entry(),
                            body: stored.body,
                            durable_ends_at: stored.ends_at,
                            seen_at: stored.seen_at,
                        },
                    ),
                    Err(e) => {
                        bad_log.push(((fingerprint, target.to_owned()), value.value().to_vec(), e))
                    }
                }
            }
            for ((fingerprint, target), bytes, e) in bad_log {
                log.remove((fingerprint, target.as_str()))
                    .map_err(storage)?;
                let key = format!("{fingerprint}/{target}");
                quarantine.put(LOG.name(), &key, bytes, &e)?;
            }
            let mut stale = Vec::new();
            for row in jobs.iter().map_err(storage)? {
                let (id, value) = row.map_err(storage)?;
                let id = JobId(id.value());
                state.next_job = state.next_job.max(id.0);
                let decoded = match decode_job(value.value()).and_then(|decoded| {
                    state.check_body(decoded.job.body)?;
                    state.load_alert(&alerts, decoded.job.body)?;
                    Ok(decoded)
                }) {
                    Ok(decoded) => decoded,
                    Err(e) => {
                        bad.push((id.0, value.value().to_vec(), e));
                        continue;
                    }
                };
                let mut job = decoded.job;
                // A record of the first format kept no status: ingest decided it from the
                // alert's end when it enqueued the job.
                if !decoded.status_kept {
                    job.status = state
                        .alert(job.body)
                        .map_or(AlertStatus::Firing, |a| a.alert.status_at(job.enqueued_at));
                }
                let key = (job.target.clone(), job.fingerprint);
                // Ids grow, so a job met later is the newer state of its key.
                if let Some(older) = state.slot(&key).pending {
                    state.remove(older);
                    stale.push(older);
                }
                state.insert_job(id, job);
            }
            for id in stale {
                jobs.remove(id.0).map_err(storage)?;
            }
            for (id, bytes, e) in bad {
                jobs.remove(id).map_err(storage)?;
                quarantine.put(JOBS.name(), &id.to_string(), bytes, &e)?;
            }
            state.quarantined = quarantine.moved;
            let mut orphans: Vec<u64> = state
                .bodies
                .iter()
                .filter(|(_, b)| b.jobs == 0 && b.logs == 0)
                .map(|(&id, _)| id)
                .collect();
            for id in &orphans {
                state.bodies.remove(id);
            }
            // The stale jobs' bodies, when those were their last references.
            orphans.append(&mut state.dirty_bodies);
            for id in orphans {
                alerts.remove(id).map_err(storage)?;
            }
            meta.insert(NEXT_JOB, state.next_job).map_err(storage)?;
            meta.insert(NEXT_BODY, state.next_body).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(state)
    }

    fn check_body(&self, body: u64) -> Result<(), JobStoreError> {
        if self.bodies.contains_key(&body) {
            Ok(())
        } else {
            Err(JobStoreError::storage(
                StorageKind::Corrupt,
                format!("a stored record refers to alert {body}, which is not stored"),
            ))
        }
    }

    /// Reads the alert of `body` from `alerts` into memory, unless it is there already.
    fn load_alert(
        &mut self,
        alerts: &impl ReadableTable<u64, &'static [u8]>,
        body: u64,
    ) -> Result<(), JobStoreError> {
        if self.alert(body).is_some() {
            return Ok(());
        }
        let alert = read_alert(alerts, body)?;
        if let Some(b) = self.bodies.get_mut(&body) {
            b.alert = Some(alert);
        }
        Ok(())
    }
}

/// Moves the notification log of an earlier build, keyed by (target, fingerprint), into
/// [`LOG`], keyed by (fingerprint, target), and drops the old table. It runs in the opening
/// transaction, so a crash midway leaves the old table as it was.
fn migrate_log(txn: &redb::WriteTransaction) -> Result<(), JobStoreError> {
    let exists = txn
        .list_tables()
        .map_err(storage)?
        .any(|t| t.name() == LOG_BY_TARGET.name());
    if !exists {
        return Ok(());
    }
    {
        let old = txn.open_table(LOG_BY_TARGET).map_err(storage)?;
        let mut log = txn.open_table(LOG).map_err(storage)?;
        for row in old.iter().map_err(storage)? {
            let (key, value) = row.map_err(storage)?;
            let (target, fingerprint) = key.value();
            log.insert((fingerprint, target), value.value())
                .map_err(storage)?;
        }
    }
    txn.delete_table(LOG_BY_TARGET).map_err(storage)?;
    Ok(())
}

/// Reads and decodes the alert `body` from the alerts table.
pub(crate) fn read_alert(
    alerts: &impl ReadableTable<u64, &'static [u8]>,
    body: u64,
) -> Result<Arc<EnrichedAlert>, JobStoreError> {
    let value = alerts.get(body).map_err(storage)?.ok_or_else(|| {
        JobStoreError::storage(
            StorageKind::Corrupt,
            format!("the alert {body} is not stored"),
        )
    })?;
    decode_alert(value.value()).map(Arc::new)
}

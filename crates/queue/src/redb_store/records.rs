//! What the database holds: the tables, their records and how they are encoded.

use alert_core::{
    Alert, AlertStatus, Annotations, Classification, DeadLetter, DeadLetterId, DeadReason,
    EnrichedAlert, Fingerprint, JobError, JobStoreError, Labels, LogEntry, Priority, StorageError,
    StorageKind, TargetKind, TargetName,
};
use chrono::{DateTime, Utc};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::model::Job;

/// Live jobs by id: a job record ([`encode_job`]). The alert is not in the record: it is in [`ALERTS`],
/// stored once for every job and log entry of an ingest batch that carries it.
pub(crate) const JOBS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("queue_jobs");
/// Alert bodies by their id: a [`StoredAlert`] as JSON. A body is removed once no job and no log
/// entry refers to it any more.
pub(crate) const ALERTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("alerts");
/// The notification log by (fingerprint, target): a [`StoredLog`]. The fingerprint comes first
/// so the entries an alert makes for its targets, written in one commit, share a leaf page: an
/// alert sent to ten targets dirties one page of this table rather than ten. (The whole table
/// is read into memory when the store is opened, so the key's order serves only the writes.)
pub(crate) const LOG: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("notification_log_by_fingerprint");
/// The notification log of earlier builds, keyed by (target, fingerprint); opening the store
/// moves its entries into [`LOG`].
pub(crate) const LOG_BY_TARGET: TableDefinition<'_, (&str, u64), &[u8]> =
    TableDefinition::new("queue_notification_log");
/// The dead-letter queue by UUIDv7 id, so the table's order is the order they were made in: a
/// [`StoredDeadLetter`] as JSON. An entry holds its own alert, since it outlives the jobs.
pub(crate) const DEAD: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("dead_letters");
/// Message references by (target, fingerprint): an [`alert_core::MessageRef`] as JSON.
pub(crate) const MESSAGE_REFS: TableDefinition<'_, (&str, u64), &[u8]> =
    TableDefinition::new("message_refs");
/// Records that failed to decode, set aside rather than failing the store: by (the table they
/// were in, their key there as text), a [`Quarantined`] in the binary form of
/// [`Quarantined::encode`].
pub(crate) const QUARANTINE: TableDefinition<'_, (&str, &str), &[u8]> =
    TableDefinition::new("quarantine");
/// The targets the sweeps have seen, by name: a [`crate::sweep::KnownTarget`] as JSON (its kind,
/// and since when it has been gone from the set), so a removed target's grace period and the
/// kind its dead letters take survive a restart.
pub(crate) const TARGETS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("known_targets");
/// Counters that must survive a restart.
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The [`META`] key of the last job id handed out, so ids are never reused.
pub(crate) const NEXT_JOB: &str = "next_job";
/// The [`META`] key of the last alert-body id handed out.
pub(crate) const NEXT_BODY: &str = "next_body";
/// The [`META`] key a clean close sets, once it has written every end kept in memory; opening
/// removes it. Without it, the log's ends are restored as after a crash (`crate::repeats`).
pub(crate) const CLOSED_CLEANLY: &str = "closed_cleanly";
/// The tables of the first format, which kept a whole alert in every job and log entry. A file
/// holding them is refused rather than silently ignored.
pub(crate) const LEGACY_TABLES: [&str; 2] = ["jobs", "notification_log"];

/// A job decoded from the jobs table; `status_kept` is false for a record of the first
/// format, which did not keep the job's status: the store then takes its alert's status when it
/// was enqueued, which is what ingest decided then.
#[derive(Debug)]
pub(crate) struct DecodedJob {
    pub(crate) job: Job,
    pub(crate) status_kept: bool,
}

/// The first byte of every binary record, so a later format can be told apart.
const RECORD_V1: u8 = 1;
/// The first byte of a job record that keeps the job's status after its priority.
const RECORD_V2: u8 = 2;

/// A compact binary form of a live job (leases are not stored: a restart forgets them). Every job is written once at ingest and again at each
/// settlement, so this is on the hot path, and JSON (with its text timestamps) cost more than
/// the rest of the write. The rare last error stays JSON, at the end.
pub(crate) fn encode_job(job: &Job) -> Result<Vec<u8>, JobStoreError> {
    let mut out = Vec::with_capacity(64 + job.target.as_str().len());
    out.push(RECORD_V2);
    put_str(&mut out, job.target.as_str())?;
    out.extend_from_slice(&job.fingerprint.as_u64().to_le_bytes());
    out.extend_from_slice(&job.body.to_le_bytes());
    out.extend_from_slice(&job.sequence.to_le_bytes());
    out.extend_from_slice(&job.attempts.to_le_bytes());
    out.push(match job.priority {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
    });
    out.push(match job.status {
        AlertStatus::Firing => 0,
        AlertStatus::Resolved => 1,
    });
    put_time(&mut out, job.enqueued_at);
    put_time(&mut out, job.due);
    if let Some(error) = &job.last_error {
        out.extend_from_slice(&encode(error)?);
    }
    Ok(out)
}

pub(crate) fn decode_job(bytes: &[u8]) -> Result<DecodedJob, JobStoreError> {
    let mut r = Reader::new(bytes)?;
    let target = TargetName::new(r.str()?).map_err(|e| {
        JobStoreError::storage(
            StorageKind::Corrupt,
            format!("a stored target name is invalid: {e}"),
        )
    })?;
    let fingerprint = Fingerprint::from_u64(r.u64()?);
    let body = r.u64()?;
    let sequence = r.u64()?;
    let attempts = r.u32()?;
    let priority = match r.u8()? {
        0 => Priority::High,
        1 => Priority::Medium,
        2 => Priority::Low,
        other => return Err(unreadable(&format!("priority {other}"))),
    };
    let status = if r.1 == RECORD_V1 {
        None
    } else {
        match r.u8()? {
            0 => Some(AlertStatus::Firing),
            1 => Some(AlertStatus::Resolved),
            2 => None,
            other => return Err(unreadable(&format!("status {other}"))),
        }
    };
    let enqueued_at = r.time()?;
    let due = r.time()?;
    let rest = r.rest();
    let last_error = if rest.is_empty() {
        None
    } else {
        Some(decode(rest)?)
    };
    Ok(DecodedJob {
        status_kept: status.is_some(),
        job: Job {
            target,
            fingerprint,
            body,
            status: status.unwrap_or(AlertStatus::Firing),
            sequence,
            attempts,
            priority,
            enqueued_at,
            due,
            last_error,
            leased_until: None,
            superseded: false,
        },
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), JobStoreError> {
    let len = u16::try_from(s.len()).map_err(|_| unreadable("a name is too long"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A time as seconds and nanoseconds, chrono's full precision.
fn put_time(out: &mut Vec<u8>, at: DateTime<Utc>) {
    out.extend_from_slice(&at.timestamp().to_le_bytes());
    out.extend_from_slice(&at.timestamp_subsec_nanos().to_le_bytes());
}

fn unreadable(what: &str) -> JobStoreError {
    JobStoreError::storage(
        StorageKind::Corrupt,
        format!("a stored record is unreadable: {what}"),
    )
}

/// Reads a binary record.
struct Reader<'a>(&'a [u8], u8);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, JobStoreError> {
        match bytes.split_first() {
            Some((&version @ (RECORD_V1 | RECORD_V2), rest)) => Ok(Self(rest, version)),
            Some((version, _)) => Err(unreadable(&format!("unknown format {version}"))),
            None => Err(unreadable("empty")),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], JobStoreError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| unreadable("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, JobStoreError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, JobStoreError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, JobStoreError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn str(&mut self) -> Result<&'a str, JobStoreError> {
        let len = usize::from(u16::from_le_bytes(self.take()?));
        if self.0.len() < len {
            return Err(unreadable("truncated"));
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s).map_err(|_| unreadable("a name is not UTF-8"))
    }

    fn time(&mut self) -> Result<DateTime<Utc>, JobStoreError> {
        let secs = i64::from_le_bytes(self.take()?);
        let nanos = self.u32()?;
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| unreadable("a time is out of range"))
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// One notification-log entry and the id of the alert it accepted, in the binary form of
/// [`StoredLog::encode`]. The times keep chrono's full precision rather than the wire's
/// milliseconds, so a `startsAt` with finer precision still compares equal to itself after a
/// round trip.
#[derive(Debug)]
pub(crate) struct StoredLog {
    pub(crate) status: AlertStatus,
    pub(crate) starts_at: DateTime<Utc>,
    pub(crate) ends_at: Option<DateTime<Utc>>,
    pub(crate) sequence: u64,
    pub(crate) accepted_at: DateTime<Utc>,
    /// The id of the last accepted alert in [`ALERTS`].
    pub(crate) body: u64,
    /// When `ends_at` was seen, which tells its lead (`crate::repeats`). Records written before
    /// it was kept end without it and read as `accepted_at`.
    pub(crate) seen_at: DateTime<Utc>,
}

impl StoredLog {
    pub(crate) fn new(entry: &LogEntry, body: u64, seen_at: DateTime<Utc>) -> Self {
        Self {
            status: entry.status,
            starts_at: entry.starts_at,
            ends_at: entry.ends_at,
            sequence: entry.sequence,
            accepted_at: entry.accepted_at,
            body,
            seen_at,
        }
    }

    pub(crate) fn entry(&self) -> LogEntry {
        LogEntry {
            status: self.status,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            sequence: self.sequence,
            accepted_at: self.accepted_at,
        }
    }

    /// A compact binary form, for the same reason as [`encode_job`]: ingest writes one
    /// entry per admission.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(RECORD_V1);
        out.push(match self.status {
            AlertStatus::Firing => 0,
            AlertStatus::Resolved => 1,
        });
        put_time(&mut out, self.starts_at);
        match self.ends_at {
            Some(ends_at) => {
                out.push(1);
                put_time(&mut out, ends_at);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.sequence.to_le_bytes());
        put_time(&mut out, self.accepted_at);
        out.extend_from_slice(&self.body.to_le_bytes());
        put_time(&mut out, self.seen_at);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, JobStoreError> {
        let mut r = Reader::new(bytes)?;
        let status = match r.u8()? {
            0 => AlertStatus::Firing,
            1 => AlertStatus::Resolved,
            other => return Err(unreadable(&format!("status {other}"))),
        };
        let starts_at = r.time()?;
        let ends_at = match r.u8()? {
            0 => None,
            _ => Some(r.time()?),
        };
        let sequence = r.u64()?;
        let accepted_at = r.time()?;
        let body = r.u64()?;
        let seen_at = if r.0.is_empty() {
            accepted_at
        } else {
            r.time()?
        };
        Ok(Self {
            status,
            starts_at,
            ends_at,
            sequence,
            accepted_at,
            body,
            seen_at,
        })
    }
}

/// An alert as the database holds it. `EnrichedAlert`'s own JSON is the Alertmanager wire shape,
/// which writes the computed fingerprint but refuses it on input, and keeps times to the
/// millisecond; this form reads back exactly what was written.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredAlert {
    labels: Labels,
    annotations: Annotations,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generator_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enrichment: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Writes an alert in the [`StoredAlert`] form without copying it.
#[derive(Serialize)]
struct StoredAlertRef<'a> {
    labels: &'a Labels,
    annotations: &'a Annotations,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'a Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrichment: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// Encodes `alert` in the [`StoredAlert`] form.
pub(crate) fn encode_alert(alert: &EnrichedAlert) -> Result<Vec<u8>, JobStoreError> {
    let a = &alert.alert;
    encode(&StoredAlertRef {
        labels: a.labels(),
        annotations: a.annotations(),
        starts_at: a.starts_at(),
        ends_at: a.ends_at(),
        generator_url: a.generator_url(),
        classification: alert.classification.as_ref(),
        enrichment: alert.enrichment.as_ref(),
    })
}

impl StoredAlert {
    fn new(alert: &EnrichedAlert) -> Self {
        let a = &alert.alert;
        Self {
            labels: a.labels().clone(),
            annotations: a.annotations().clone(),
            starts_at: a.starts_at(),
            ends_at: a.ends_at(),
            generator_url: a.generator_url().map(str::to_owned),
            classification: alert.classification.clone(),
            enrichment: alert.enrichment.clone(),
        }
    }

    pub(crate) fn into_alert(self) -> Result<EnrichedAlert, JobStoreError> {
        let alert = Alert::build(
            self.labels,
            self.annotations,
            self.starts_at,
            self.ends_at,
            self.generator_url,
        )
        .map_err(|e| {
            JobStoreError::storage(
                StorageKind::Corrupt,
                format!("a stored alert is invalid: {e}"),
            )
        })?;
        let mut alert = EnrichedAlert::new(alert);
        if let Some(classification) = self.classification {
            alert = alert.with_classification(classification);
        }
        if let Some(enrichment) = self.enrichment {
            alert = alert.with_enrichment(enrichment);
        }
        Ok(alert)
    }
}

/// Decodes an alert body written by [`encode_alert`].
pub(crate) fn decode_alert(bytes: &[u8]) -> Result<EnrichedAlert, JobStoreError> {
    decode::<StoredAlert>(bytes)?.into_alert()
}

/// A dead letter as the database holds it, with its alert as a [`StoredAlert`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredDeadLetter {
    id: DeadLetterId,
    target: TargetName,
    kind: TargetKind,
    alert: StoredAlert,
    reason: DeadReason,
    /// The state its job was made for; absent in entries of earlier builds, which replay the
    /// alert's status when it was enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<AlertStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<JobError>,
    attempts: u32,
    sequence: u64,
    enqueued_at: DateTime<Utc>,
    pub(crate) dead_at: DateTime<Utc>,
}

impl StoredDeadLetter {
    pub(crate) fn new(entry: &DeadLetter) -> Self {
        Self {
            id: entry.id.clone(),
            target: entry.target.clone(),
            kind: entry.kind,
            alert: StoredAlert::new(&entry.alert),
            reason: entry.reason,
            status: Some(entry.status),
            last_error: entry.last_error.clone(),
            attempts: entry.attempts,
            sequence: entry.sequence,
            enqueued_at: entry.enqueued_at,
            dead_at: entry.dead_at,
        }
    }

    fn into_entry(self) -> Result<DeadLetter, JobStoreError> {
        let mut entry = DeadLetter::new(
            self.id,
            self.target,
            self.kind,
            self.alert.into_alert()?,
            self.reason,
            self.dead_at,
        );
        entry.status = self
            .status
            .unwrap_or_else(|| entry.alert.alert.status_at(self.enqueued_at));
        entry.last_error = self.last_error;
        entry.attempts = self.attempts;
        entry.sequence = self.sequence;
        entry.enqueued_at = self.enqueued_at;
        Ok(entry)
    }
}

pub(crate) fn read_dead(bytes: &[u8]) -> Result<DeadLetter, JobStoreError> {
    decode::<StoredDeadLetter>(bytes)?.into_entry()
}

/// A redb error as the store's: its kind, its text, and the error itself as the cause.
pub(crate) fn storage(e: impl Into<redb::Error>) -> JobStoreError {
    let e: redb::Error = e.into();
    let message = e.to_string();
    redb_error(message, e)
}

/// A redb error met while doing `what`, as [`storage`] makes it.
pub(crate) fn storage_while(what: &str, e: impl Into<redb::Error>) -> JobStoreError {
    let e: redb::Error = e.into();
    let message = format!("{what}: {e}");
    redb_error(message, e)
}

fn redb_error(message: String, e: redb::Error) -> JobStoreError {
    use redb::Error as E;
    let kind = match &e {
        E::Io(_) | E::PreviousIo | E::Backend(_) => StorageKind::Io,
        E::Corrupted(_)
        | E::UpgradeRequired(_)
        | E::ValueTooLarge(_)
        | E::TableTypeMismatch { .. }
        | E::TypeDefinitionChanged { .. }
        | E::TableIsMultimap(_)
        | E::TableIsNotMultimap(_) => StorageKind::Corrupt,
        E::DatabaseAlreadyOpen | E::LockProtocolMismatch | E::WouldBlock => {
            StorageKind::Unavailable
        }
        _ => StorageKind::Broken,
    };
    JobStoreError::Storage(StorageError::new(kind, message).with_source(e))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, JobStoreError> {
    serde_json::to_vec(value)
        .map_err(|e| JobStoreError::storage(StorageKind::Encoding, format!("encoding: {e}")))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, JobStoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        JobStoreError::storage(
            StorageKind::Corrupt,
            format!("a stored record is unreadable: {e}"),
        )
    })
}

/// A record set aside in [`QUARANTINE`]: why it could not be read, and its bytes as they were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Quarantined {
    pub(crate) reason: String,
    pub(crate) bytes: Vec<u8>,
}

impl Quarantined {
    /// The version byte, the reason (length-prefixed, cut to fit) and the bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut reason = self.reason.as_str();
        while reason.len() > usize::from(u16::MAX) {
            let mut cut = usize::from(u16::MAX);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason = &reason[..cut];
        }
        let mut out = Vec::with_capacity(3 + reason.len() + self.bytes.len());
        out.push(RECORD_V1);
        // The length fits: the reason was cut to it above.
        let _ = put_str(&mut out, reason);
        out.extend_from_slice(&self.bytes);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, JobStoreError> {
        let mut r = Reader::new(bytes)?;
        let reason = r.str()?.to_owned();
        Ok(Self {
            reason,
            bytes: r.rest().to_vec(),
        })
    }
}

/// The fields of a stored dead letter that the dead-letter queue's filters look at, read
/// without decoding the alert it holds.
#[derive(Debug, Deserialize)]
pub(crate) struct DeadHead<'a> {
    #[serde(borrow)]
    pub(crate) target: std::borrow::Cow<'a, str>,
    pub(crate) kind: TargetKind,
    pub(crate) dead_at: DateTime<Utc>,
}

/// Reads the [`DeadHead`] of a stored dead letter.
pub(crate) fn read_dead_head(bytes: &[u8]) -> Result<DeadHead<'_>, JobStoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        JobStoreError::storage(
            StorageKind::Corrupt,
            format!("a stored record is unreadable: {e}"),
        )
    })
}

impl DeadHead<'_> {
    /// Whether the entry passes `filter`, as [`alert_core::DeadLetterFilter::matches`] decides
    /// for the whole entry.
    pub(crate) fn matches(&self, filter: &alert_core::DeadLetterFilter) -> bool {
        filter.target.as_deref().is_none_or(|t| self.target == t)
            && filter.kind.is_none_or(|k| self.kind == k)
            && filter.since.is_none_or(|s| self.dead_at >= s)
            && filter.until.is_none_or(|u| self.dead_at < u)
    }
}

/// The smallest dead-letter id made at or after `at`: ids are UUIDv7s in their hyphenated text
/// form, whose first 48 bits (12 hex digits) are the Unix time in milliseconds they were made
/// for, so every id made for a time at or after `at` sorts at or after this prefix.
pub(crate) fn dead_id_floor(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_id_made_at_a_time_sorts_at_or_after_its_floor() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        let ms = u64::try_from(at.timestamp_millis()).unwrap();
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            ms / 1000,
            u32::try_from(ms % 1000).unwrap() * 1_000_000,
        ))
        .to_string();
        let floor = dead_id_floor(at);
        assert!(id.as_str() >= floor.as_str(), "{id} < {floor}");
        assert!(id.starts_with(&floor), "{id} does not start with {floor}");
        let later = dead_id_floor(at + chrono::Duration::milliseconds(1));
        assert!(id.as_str() < later.as_str(), "{id} >= {later}");
    }

    #[test]
    fn a_quarantined_record_keeps_its_bytes_and_reason() {
        let q = Quarantined {
            reason: "truncated".to_owned(),
            bytes: vec![0, 255, 7],
        };
        assert_eq!(Quarantined::decode(&q.encode()).unwrap(), q);
    }
}

//! The delivery history's one model for the stores that keep it in memory (the in-memory
//! store), and the compact record encoding the durable ones share. The filter, the retention and the
//! paging are `alert_core::history`'s, which every store calls.

use std::collections::VecDeque;

use alert_core::history::page;
use alert_core::{
    AlertStatus, AttemptOutcome, AttemptPath, DeliveryRecord, Fingerprint, HistoryFilter,
    HistoryPage, HistoryRetention, JobStoreError, Labels, StorageKind, TargetName,
};
use chrono::{DateTime, Utc};

/// Records in id order, oldest first.
#[derive(Debug, Default)]
pub(crate) struct HistoryLog {
    records: VecDeque<DeliveryRecord>,
    next_id: u64,
}

impl HistoryLog {
    /// Keeps `records` with the next ids, then drops what `retention` no longer keeps.
    pub(crate) fn record(
        &mut self,
        records: Vec<DeliveryRecord>,
        retention: HistoryRetention,
        now: DateTime<Utc>,
    ) {
        for mut record in records {
            self.next_id += 1;
            record.id = self.next_id;
            self.records.push_back(record);
        }
        while self
            .records
            .front()
            .is_some_and(|r| !retention.keeps(r.at, now))
        {
            self.records.pop_front();
        }
        let over = retention.over(self.records.len() as u64);
        self.records.drain(
            ..usize::try_from(over)
                .unwrap_or(usize::MAX)
                .min(self.records.len()),
        );
    }

    /// A page, newest first, older than `cursor`.
    pub(crate) fn page(
        &self,
        filter: &HistoryFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> HistoryPage {
        page(
            self.records
                .iter()
                .rev()
                .filter(|r| cursor.is_none_or(|c| r.id < c))
                .cloned(),
            filter,
            limit,
        )
    }
}

/// The format of a kept record.
const FORMAT_V1: u8 = 1;

/// A record as the durable stores keep it: a compact binary form (about 100 bytes with a few
/// labels), since every attempt writes one. Its id is the row's key, not part of it.
pub(crate) fn encode(record: &DeliveryRecord) -> Result<Vec<u8>, JobStoreError> {
    let mut out = Vec::with_capacity(96);
    out.push(FORMAT_V1);
    out.extend_from_slice(&record.at.timestamp().to_le_bytes());
    out.extend_from_slice(&record.at.timestamp_subsec_nanos().to_le_bytes());
    out.extend_from_slice(&record.fingerprint.as_u64().to_le_bytes());
    put_str(&mut out, record.target.as_str())?;
    out.push(match record.status {
        AlertStatus::Firing => 0,
        AlertStatus::Resolved => 1,
    });
    out.extend_from_slice(&record.attempt.to_le_bytes());
    out.push(match record.outcome {
        AttemptOutcome::Delivered => 0,
        _ => 1,
    });
    out.push(match record.path {
        AttemptPath::Queue => 0,
        _ => 1,
    });
    out.extend_from_slice(&record.status_code.unwrap_or(0).to_le_bytes());
    put_str(&mut out, record.error_kind.as_deref().unwrap_or(""))?;
    out.extend_from_slice(&record.latency_ms.to_le_bytes());
    let count = u16::try_from(record.labels.len()).map_err(|_| too_long("labels"))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (name, value) in &record.labels {
        put_str(&mut out, name)?;
        put_str(&mut out, value)?;
    }
    Ok(out)
}

/// A kept record, with its id.
pub(crate) fn decode(id: u64, bytes: &[u8]) -> Result<DeliveryRecord, JobStoreError> {
    let mut r = Reader(bytes);
    if r.take::<1>()?[0] != FORMAT_V1 {
        return Err(unreadable("unknown format"));
    }
    let secs = i64::from_le_bytes(r.take()?);
    let nanos = u32::from_le_bytes(r.take()?);
    let at = DateTime::from_timestamp(secs, nanos).ok_or_else(|| unreadable("time"))?;
    let fingerprint = Fingerprint::from_u64(u64::from_le_bytes(r.take()?));
    let target = TargetName::new(r.str()?).map_err(|_| unreadable("target"))?;
    let status = match r.take::<1>()?[0] {
        0 => AlertStatus::Firing,
        _ => AlertStatus::Resolved,
    };
    let attempt = u32::from_le_bytes(r.take()?);
    let outcome = match r.take::<1>()?[0] {
        0 => AttemptOutcome::Delivered,
        _ => AttemptOutcome::Failed,
    };
    let path = match r.take::<1>()?[0] {
        0 => AttemptPath::Queue,
        _ => AttemptPath::Sync,
    };
    let status_code = Some(u16::from_le_bytes(r.take()?)).filter(|&c| c != 0);
    let error_kind = Some(r.str()?).filter(|k| !k.is_empty());
    let latency_ms = u64::from_le_bytes(r.take()?);
    let count = u16::from_le_bytes(r.take()?);
    let mut labels = Labels::new();
    for _ in 0..count {
        let name = r.str()?.to_owned();
        labels.insert(name, r.str()?.to_owned());
    }
    let mut record = DeliveryRecord::new(
        at,
        fingerprint,
        labels,
        target,
        status,
        attempt,
        outcome,
        path,
    );
    record.id = id;
    record.status_code = status_code;
    record.error_kind = error_kind.map(str::to_owned);
    record.latency_ms = latency_ms;
    Ok(record)
}

fn put_str(out: &mut Vec<u8>, text: &str) -> Result<(), JobStoreError> {
    let len = u16::try_from(text.len()).map_err(|_| too_long("a label"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], JobStoreError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| unreadable("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn str(&mut self) -> Result<&'a str, JobStoreError> {
        let len = usize::from(u16::from_le_bytes(self.take()?));
        if self.0.len() < len {
            return Err(unreadable("truncated"));
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).map_err(|_| unreadable("not UTF-8"))
    }
}

fn unreadable(what: &str) -> JobStoreError {
    JobStoreError::storage(
        StorageKind::Corrupt,
        format!("a delivery record is unreadable: {what}"),
    )
}

fn too_long(what: &str) -> JobStoreError {
    JobStoreError::storage(
        StorageKind::Encoding,
        format!("a delivery record could not be encoded: {what} is too long"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let labels: Labels = [
            ("alertname".to_owned(), "DiskFull".to_owned()),
            ("instance".to_owned(), "db-1:9100".to_owned()),
        ]
        .into();
        let mut record = DeliveryRecord::new(
            DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap(),
            Fingerprint::of(&labels),
            labels,
            TargetName::new("pager").unwrap(),
            AlertStatus::Resolved,
            3,
            AttemptOutcome::Failed,
            AttemptPath::Sync,
        )
        .with_answer(Some(503), Some("transient"), Duration::from_millis(1_234));
        let bytes = encode(&record).unwrap();
        assert!(bytes.len() <= 100, "{} bytes", bytes.len());
        record.id = 42;
        assert_eq!(decode(42, &bytes).unwrap(), record);
        let plain = DeliveryRecord::new(
            record.at,
            record.fingerprint,
            Labels::new(),
            record.target,
            AlertStatus::Firing,
            1,
            AttemptOutcome::Delivered,
            AttemptPath::Queue,
        );
        let back = decode(0, &encode(&plain).unwrap()).unwrap();
        assert_eq!(back, plain);
        assert!(decode(1, &bytes[..bytes.len() - 1]).is_err());
        assert!(decode(1, &[9]).is_err());
    }
}

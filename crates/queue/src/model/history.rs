//! The delivery history's one model for the stores that keep it in memory (the in-memory
//! store), and the record encoding the durable ones share. The filter, the retention and the
//! paging are `alert_core::history`'s, which every store calls.

use std::collections::VecDeque;

use alert_core::history::page;
use alert_core::{
    DeliveryRecord, HistoryFilter, HistoryPage, HistoryRetention, JobStoreError, StorageKind,
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

/// A record as the durable stores keep it (JSON: small, and readable by hand).
pub(crate) fn encode(record: &DeliveryRecord) -> Result<Vec<u8>, JobStoreError> {
    serde_json::to_vec(record).map_err(|e| {
        JobStoreError::storage(
            StorageKind::Encoding,
            format!("encoding a delivery record: {e}"),
        )
    })
}

/// A kept record, with its id.
pub(crate) fn decode(id: u64, bytes: &[u8]) -> Result<DeliveryRecord, JobStoreError> {
    let mut record: DeliveryRecord = serde_json::from_slice(bytes).map_err(|e| {
        JobStoreError::storage(
            StorageKind::Corrupt,
            format!("a delivery record is unreadable: {e}"),
        )
    })?;
    record.id = id;
    Ok(record)
}

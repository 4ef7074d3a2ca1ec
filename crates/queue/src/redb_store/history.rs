//! The delivery history in the store's file: a table of records by id. The writer appends and
//! trims it beside its other ops, in commits that do not wait for the disk (a crash may lose
//! the last moments of history, never a job); pages are read in a read transaction of their own.

use alert_core::history::page;
use alert_core::{
    BoxFuture, DeliveryHistory, DeliveryRecord, Fingerprint, HistoryFilter, HistoryPage,
    HistoryRetention, JobStoreError, LogEntry, TargetName,
};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, TableError};

use super::RedbJobStore;
use super::records::storage;
use super::writer::Op;
use crate::model::history::{decode, encode};

/// The records, by id.
pub(crate) const HISTORY: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("delivery_history");

/// The most records one append drops; a retention that shrank is caught up over the next ones.
const TRIM_PER_APPEND: u64 = 10_000;

/// Appends `records` with the next ids, then drops what `retention` no longer keeps at `now`,
/// oldest first.
pub(super) fn append(
    table: &mut Table<'_, u64, &'static [u8]>,
    records: Vec<DeliveryRecord>,
    retention: HistoryRetention,
    now: DateTime<Utc>,
) -> Result<(), JobStoreError> {
    let mut next = table
        .last()
        .map_err(storage)?
        .map_or(0, |(key, _)| key.value());
    for record in &records {
        next += 1;
        table
            .insert(next, encode(record)?.as_slice())
            .map_err(storage)?;
    }
    let mut over = retention.over(table.len().map_err(storage)?);
    for _ in 0..TRIM_PER_APPEND {
        let Some((id, old)) = table.first().map_err(storage)?.map(|(key, value)| {
            let id = key.value();
            // A record that cannot be read is as good as gone.
            let old = decode(id, value.value()).map_or(true, |r| !retention.keeps(r.at, now));
            (id, old)
        }) else {
            break;
        };
        if over == 0 && !old {
            break;
        }
        table.remove(id).map_err(storage)?;
        over = over.saturating_sub(1);
    }
    Ok(())
}

impl DeliveryHistory for RedbJobStore {
    fn record<'a>(
        &'a self,
        records: Vec<DeliveryRecord>,
        retention: HistoryRetention,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            self.call(|reply| Op::History {
                records,
                retention,
                now,
                reply,
            })
            .await
        })
    }

    fn deliveries<'a>(
        &'a self,
        filter: &'a HistoryFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, JobStoreError>> {
        let shared = self.shared.clone();
        let filter = filter.clone();
        Box::pin(async move {
            let read = move || -> Result<HistoryPage, JobStoreError> {
                let txn = shared.begin_read()?;
                let table = match txn.open_table(HISTORY) {
                    Ok(table) => table,
                    Err(TableError::TableDoesNotExist(_)) => return Ok(HistoryPage::default()),
                    Err(e) => return Err(storage(e)),
                };
                let range = table.range(..cursor.unwrap_or(u64::MAX)).map_err(storage)?;
                // An unreadable record is left out of the page rather than failing it.
                let records = range
                    .rev()
                    .filter_map(Result::ok)
                    .filter_map(|(key, value)| decode(key.value(), value.value()).ok());
                Ok(page(records, &filter, limit))
            };
            tokio::task::spawn_blocking(read).await.map_err(|e| {
                JobStoreError::storage(alert_core::StorageKind::Broken, e.to_string())
            })?
        })
    }

    fn log_of(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<(TargetName, LogEntry)>, JobStoreError>> {
        Box::pin(async move {
            Ok(self
                .shared
                .state()?
                .log
                .of_fingerprint(fingerprint)
                .into_iter()
                .map(|(target, cached)| (target, cached.entry))
                .collect())
        })
    }
}

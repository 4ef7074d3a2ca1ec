//! The delivery history in the queue's database (`alertpub_history`), so every replica's
//! attempts are in one place and any replica answers for all of them. Appends commit without
//! waiting for the WAL flush: a crash of the database may lose the last moments of history,
//! never a job.

use alert_core::history::{PAGE_SCAN, page};
use alert_core::{
    BoxFuture, DeliveryHistory, DeliveryRecord, Fingerprint, HistoryFilter, HistoryPage,
    HistoryRetention, JobStoreError, LogEntry, TargetName,
};
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::rows::{fp, log_of, ns};
use super::{PgJobStore, db, sql};
use crate::model::history::{decode, encode};

impl DeliveryHistory for PgJobStore {
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
            let mut ats = Vec::with_capacity(records.len());
            let mut fingerprints = Vec::with_capacity(records.len());
            let mut targets: Vec<String> = Vec::with_capacity(records.len());
            let mut bodies = Vec::with_capacity(records.len());
            for record in &records {
                ats.push(ns(record.at));
                fingerprints.push(fp(record.fingerprint));
                targets.push(record.target.as_str().to_owned());
                bodies.push(encode(record)?);
            }
            let cutoff = ns(retention.cutoff(now));
            let keep = i64::try_from(retention.max_records).unwrap_or(i64::MAX);
            let mut p = sql::Pipeline::default();
            p.push(
                "INSERT INTO alertpub_history (at, fingerprint, target, record)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[])",
                vec![
                    Box::new(ats),
                    Box::new(fingerprints),
                    Box::new(targets),
                    Box::new(bodies),
                ],
            );
            p.push(
                "DELETE FROM alertpub_history WHERE at < $1",
                vec![Box::new(cutoff)],
            );
            p.push(
                "DELETE FROM alertpub_history
                 WHERE id <= (SELECT max(id) FROM alertpub_history) - $1",
                vec![Box::new(keep)],
            );
            self.transaction_with(false, async |tx| {
                p.run(tx).await.map_err(db)?;
                Ok(())
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
        Box::pin(async move {
            let cursor = cursor.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
            let fingerprint = filter.fingerprint.map(fp);
            let since = filter.since.map(ns);
            let scan = i64::try_from(PAGE_SCAN).unwrap_or(i64::MAX);
            // The database narrows by the indexed fields; the matchers are applied here, by the
            // same filter every store uses. Only the fields given are named, so each shape of
            // filter is a statement of its own whose (generic) plan can use the index its
            // fields have.
            let mut clauses: Vec<String> = Vec::new();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
            let given: [(&str, Option<&(dyn ToSql + Sync)>); 4] = [
                ("id <", cursor.as_ref().map(|v| v as &(dyn ToSql + Sync))),
                (
                    "fingerprint =",
                    fingerprint.as_ref().map(|v| v as &(dyn ToSql + Sync)),
                ),
                (
                    "target =",
                    filter.target.as_ref().map(|v| v as &(dyn ToSql + Sync)),
                ),
                ("at >=", since.as_ref().map(|v| v as &(dyn ToSql + Sync))),
            ];
            for (clause, value) in given {
                if let Some(value) = value {
                    params.push(value);
                    clauses.push(format!("{clause} ${}", params.len()));
                }
            }
            params.push(&scan);
            let statement = format!(
                "SELECT id, record FROM alertpub_history {} ORDER BY id DESC LIMIT ${}",
                if clauses.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", clauses.join(" AND "))
                },
                params.len()
            );
            let rows = self
                .transaction_with(false, async |tx| {
                    sql::query(tx, &statement, &params).await.map_err(db)
                })
                .await?;
            let records = rows.iter().filter_map(|row| {
                let id = u64::try_from(row.get::<_, i64>(0)).ok()?;
                decode(id, row.get(1)).ok()
            });
            Ok(page(records, filter, limit))
        })
    }

    fn log_of(
        &self,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'_, Result<Vec<(TargetName, LogEntry)>, JobStoreError>> {
        Box::pin(async move {
            let rows = self
                .transaction_with(false, async |tx| {
                    sql::query(
                        tx,
                        "SELECT fingerprint, target, record FROM alertpub_log
                         WHERE fingerprint = $1 ORDER BY target",
                        &[&fp(fingerprint)],
                    )
                    .await
                    .map_err(db)
                })
                .await?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                let (key, cached) = log_of(row)?;
                let ends_at = self.end_of(&key, &cached);
                let mut entry = cached.entry;
                entry.ends_at = ends_at;
                entries.push((key.0, entry));
            }
            Ok(entries)
        })
    }
}

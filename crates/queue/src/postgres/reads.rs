//! What the store answers from the database without planning: the queue's counts by target
//! and priority, and pages of the dead-letter queue.

use super::*;

impl PgJobStore {
    pub(super) async fn stats_now(&self) -> Result<QueueStats, JobStoreError> {
        self.transaction(async |tx| {
            let rows = sql::query(
                tx,
                "SELECT target, priority, leased_until IS NOT NULL, count(*), min(enqueued_at)
                     FROM alertpub_jobs GROUP BY 1, 2, 3",
                &[],
            )
            .await
            .map_err(db)?;
            let mut by_priority = [0_u64; 3];
            let mut by_target: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            let mut oldest: Option<i64> = None;
            for row in &rows {
                let count = unsigned(row.get(3));
                let level = usize::try_from(row.get::<_, i16>(1)).unwrap_or(1).min(2);
                by_priority[level] += count;
                let counts = by_target.entry(row.get::<_, String>(0)).or_default();
                if row.get::<_, bool>(2) {
                    counts.1 += count;
                } else {
                    counts.0 += count;
                }
                let first: i64 = row.get(4);
                oldest = Some(oldest.map_or(first, |o| o.min(first)));
            }
            let dead: i64 = sql::query_one(tx, "SELECT count(*) FROM alertpub_dead", &[])
                .await
                .map_err(db)?
                .get(0);
            Ok(QueueStats {
                by_priority,
                by_target: by_target
                    .into_iter()
                    .map(|(target, (pending, leased))| TargetQueueStats {
                        target,
                        pending,
                        leased,
                    })
                    .collect(),
                dead_letters: unsigned(dead),
                oldest_enqueued_at: oldest.map(time),
            })
        })
        .await
    }

    pub(super) async fn dead_letters_now(
        &self,
        filter: &DeadLetterFilter,
        cursor: Option<&DeadLetterId>,
        limit: usize,
    ) -> Result<DeadLetterPage, JobStoreError> {
        let cursor = cursor.map(|c| c.0.clone());
        let kind = filter.kind.map(|k| k.as_str().to_owned());
        let since = filter.since.map(ns);
        let until = filter.until.map(ns);
        let take = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        self.transaction(async |tx| {
            let rows = sql::query(
                tx,
                "SELECT record FROM alertpub_dead
                     WHERE ($1::text IS NULL OR id > $1) AND ($2::text IS NULL OR target = $2)
                       AND ($3::text IS NULL OR kind = $3) AND ($4::bigint IS NULL OR dead_at >= $4)
                       AND ($5::bigint IS NULL OR dead_at < $5)
                     ORDER BY id LIMIT $6",
                &[&cursor, &filter.target, &kind, &since, &until, &take],
            )
            .await
            .map_err(db)?;
            let mut entries = rows
                .iter()
                .map(|row| dead_of(row, 0))
                .collect::<Result<Vec<_>, _>>()?;
            // A cursor only when something matching follows, so the last page says it is the
            // last.
            let more = entries.len() > limit;
            entries.truncate(limit);
            let next_cursor = if more {
                entries.last().map(|e| e.id.clone())
            } else {
                None
            };
            Ok(DeadLetterPage {
                entries,
                next_cursor,
            })
        })
        .await
    }
}

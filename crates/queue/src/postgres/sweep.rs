//! What a maintenance pass loads before the shared planner acts: the log entries that may be
//! due (their keys locked as ingest locks them), the targets the store has seen, and the jobs
//! old or orphaned enough for the dead-letter queue.

use super::*;

impl PgJobStore {
    /// Loads what a sweep pass can act on: the log entries that may be due (with their keys'
    /// jobs and their alerts), the targets it has seen, and the jobs old or orphaned enough
    /// to move to the dead-letter queue.
    pub(super) async fn load_sweep(
        &self,
        tx: &Tx<'_>,
        state: &mut State,
        t: &mut PgTables,
        plan: &SweepPlan,
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, JobStoreError> {
        // One replica at a time runs the pass: the one that holds the maintenance lock for it.
        let leader: bool = sql::query_one(
            tx,
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&MAINTENANCE_LOCK],
        )
        .await
        .map_err(db)?
        .get(0);
        if !leader {
            t.skip = true;
            return Ok(Vec::new());
        }
        let now_ns = ns(now);
        let planned: Vec<String> = plan
            .targets
            .iter()
            .map(|(name, _)| name.as_str().to_owned())
            .collect();
        let refreshed: Vec<String> = plan
            .targets
            .iter()
            .filter(|(_, interval)| interval.is_some_and(|i| !i.is_zero()))
            .map(|(name, _)| name.as_str().to_owned())
            .collect();
        let shortest = plan
            .targets
            .iter()
            .filter_map(|(_, interval)| interval.filter(|i| !i.is_zero()))
            .min()
            .unwrap_or(Duration::MAX);
        let refresh_before = before(now, shortest);
        let retention = (!plan.log_retention.is_zero()).then(|| before(now, plan.log_retention));
        // A superset of the due entries: the end this replica keeps in memory is only ever
        // later than the stored one, and `sweep_action` decides on the exact entry. Their keys
        // are locked, as ingest locks them, before they are read for good.
        let rows = sql::query(
            tx,
            "SELECT fingerprint, target FROM alertpub_log
                 WHERE (firing AND target = ANY($1) AND ends_at <= $2)
                    OR (firing AND target = ANY($3) AND accepted_at <= $4)
                    OR ($5::bigint IS NOT NULL AND accepted_at <= $5)
                 LIMIT $6",
            &[
                &planned,
                &now_ns,
                &refreshed,
                &refresh_before,
                &retention,
                &SWEEP_SCAN,
            ],
        )
        .await
        .map_err(db)?;
        let mut keys: Vec<Key> = rows
            .iter()
            .filter_map(|row| {
                let target = TargetName::new(row.get::<_, &str>(1)).ok()?;
                Some((target, rows::fingerprint(row.get(0))))
            })
            .collect();
        keys.sort_unstable();
        self.lock_keys(tx, &keys).await?;
        let mut bodies = self.load_keys(tx, state, &keys).await?;
        let log_bodies: Vec<u64> = {
            let mut ids = Vec::new();
            state.log.for_each(|_, _, cached| ids.push(cached.body));
            ids
        };
        t.alerts.extend(rows::alerts(tx, &log_bodies).await?);
        for row in sql::query(tx, "SELECT name, record FROM alertpub_targets", &[])
            .await
            .map_err(db)?
        {
            if let Ok(name) = TargetName::new(row.get::<_, &str>(0))
                && let Ok(record) = decode::<KnownTarget>(row.get(1))
            {
                state.targets.insert(name, record);
            }
        }
        let per_pass = i64::try_from(plan.max_jobs_per_pass).unwrap_or(i64::MAX);
        if let Some(max_age) = plan.max_age {
            let before = before(now, max_age);
            bodies.extend(
                add_jobs(
                    tx,
                    state,
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM alertpub_jobs
                         WHERE enqueued_at <= $1 ORDER BY enqueued_at LIMIT $2"
                    ),
                    &[&before, &per_pass],
                )
                .await?,
            );
        }
        if let Some(known) = &plan.known_targets {
            // Targets with jobs that left the set, or that a pass marked removed.
            let known: HashSet<&str> = known.iter().map(|(name, _)| name.as_str()).collect();
            let with_jobs: Vec<String> =
                // One index probe per target, not a read of every job.
                sql::query(
                    tx,
                    "WITH RECURSIVE t(target) AS (
                         SELECT min(target) FROM alertpub_jobs
                         UNION ALL
                         SELECT (SELECT min(target) FROM alertpub_jobs WHERE target > t.target)
                         FROM t WHERE t.target IS NOT NULL)
                     SELECT target FROM t WHERE target IS NOT NULL",
                    &[],
                )
                    .await
                    .map_err(db)?
                    .iter()
                    .map(|row| row.get::<_, String>(0))
                    .collect();
            let gone: Vec<String> = with_jobs
                .into_iter()
                .filter(|name| {
                    !known.contains(name.as_str())
                        || TargetName::new(name)
                            .ok()
                            .and_then(|n| state.targets.get(&n))
                            .is_some_and(|record| record.removed_since.is_some())
                })
                .collect();
            if !gone.is_empty() {
                bodies.extend(
                    add_jobs(
                        tx,
                        state,
                        &format!(
                            "SELECT {JOB_COLUMNS} FROM alertpub_jobs
                             WHERE target = ANY($1) ORDER BY enqueued_at LIMIT $2"
                        ),
                        &[&gone, &per_pass],
                    )
                    .await?,
                );
            }
        }
        self.oldest_dead(tx, t).await?;
        Ok(bodies)
    }
}

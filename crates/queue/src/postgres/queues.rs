//! The contract's four faces on [`PgJobStore`]: ingest, the lanes, the dead-letter queue and
//! maintenance, each a thin call into the store's operations.

use super::*;

impl IngestQueue for PgJobStore {
    fn enqueue_batch<'a>(
        &'a self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Admitted>, JobStoreError>> {
        Box::pin(self.enqueue_now(batch, now))
    }
}

impl LaneQueue for PgJobStore {
    fn lease<'a>(
        &'a self,
        target: &'a TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease, JobStoreError>> {
        Box::pin(self.lease_now(target, n, ttl, now))
    }

    fn ack<'a>(
        &'a self,
        job: JobId,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(self.settle(job, None))
    }

    fn reschedule<'a>(
        &'a self,
        job: JobId,
        how: Reschedule,
        _now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(self.settle(job, Some(how)))
    }

    fn dead_letter<'a>(
        &'a self,
        job: JobId,
        kind: TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DeadLetterId>, JobStoreError>> {
        Box::pin(async move {
            self.run(
                async |tx, state, t| {
                    let bodies = add_jobs(
                        tx,
                        state,
                        &format!(
                            "SELECT {JOB_COLUMNS} FROM alertpub_jobs
                         WHERE (target, fingerprint) IN
                           (SELECT target, fingerprint FROM alertpub_jobs WHERE id = $1
                              AND (lease_owner IS NULL OR lease_owner = $2))"
                        ),
                        &[&id(job.0), &self.owner],
                    )
                    .await?;
                    self.oldest_dead(tx, t).await?;
                    Ok(bodies)
                },
                |p, g, state, t| p.dead_letter(g, state, t, job, kind, reason, error, now),
            )
            .await
        })
    }

    fn on_new_work(&self, announce: NewWork) {
        *self
            .announce
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(announce);
    }
}

impl DeadLetterQueue for PgJobStore {
    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        cursor: Option<&'a DeadLetterId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<DeadLetterPage, JobStoreError>> {
        Box::pin(self.dead_letters_now(filter, cursor, limit))
    }

    fn replay<'a>(
        &'a self,
        dead: &'a DeadLetterId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobId, JobStoreError>> {
        Box::pin(async move {
            self.run(
                async |tx, state, t| {
                    let rows = sql::query(
                        tx,
                        "SELECT record FROM alertpub_dead WHERE id = $1 FOR UPDATE",
                        &[&dead.0],
                    )
                    .await
                    .map_err(db)?;
                    let Some(row) = rows.first() else {
                        return Ok(Vec::new());
                    };
                    let entry = dead_of(row, 0)?;
                    let key = (entry.target.clone(), entry.alert.alert.fingerprint());
                    t.stored_dead.insert(dead.0.clone(), entry);
                    self.lock_keys(tx, std::slice::from_ref(&key)).await?;
                    self.load_keys(tx, state, &[key]).await
                },
                |p, g, state, t| p.replay(g, state, t, dead, now),
            )
            .await
        })
    }

    fn purge<'a>(&'a self, dead: &'a DeadLetterId) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move {
            let removed = self
                .transaction(async |tx| {
                    sql::execute(tx, "DELETE FROM alertpub_dead WHERE id = $1", &[&dead.0])
                        .await
                        .map_err(db)
                })
                .await?;
            if removed == 0 {
                Err(JobStoreError::NotFound)
            } else {
                Ok(())
            }
        })
    }
}

impl QueueMaintenance for PgJobStore {
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, JobStoreError>> {
        Box::pin(self.stats_now())
    }

    fn sweep<'a>(
        &'a self,
        plan: &'a SweepPlan,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<SweepReport, JobStoreError>> {
        Box::pin(async move {
            self.run(
                async |tx, state, t| self.load_sweep(tx, state, t, plan, now).await,
                |p, g, state, t| {
                    if t.skip {
                        // Another replica is running the pass now.
                        return Ok(Ok(SweepReport::default()));
                    }
                    p.sweep(g, state, t, plan, now)
                },
            )
            .await
        })
    }

    fn health(&self) -> StoreHealth {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let condition = if failures.0 >= FAILING_AFTER {
            StoreCondition::Failing {
                consecutive_failures: failures.0,
                last_error: failures.1.clone(),
            }
        } else {
            StoreCondition::Healthy
        };
        StoreHealth::new(condition).with_counters(0, self.evicted.load(Ordering::Relaxed))
    }

    fn dead_letter_target<'a>(
        &'a self,
        target: &'a TargetName,
        kind: TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, JobStoreError>> {
        Box::pin(async move {
            self.run(
                async |tx, state, t| {
                    let bodies = add_jobs(
                        tx,
                        state,
                        &format!("SELECT {JOB_COLUMNS} FROM alertpub_jobs WHERE target = $1"),
                        &[&target.as_str()],
                    )
                    .await?;
                    self.oldest_dead(tx, t).await?;
                    Ok(bodies)
                },
                |p, g, state, t| p.dead_letter_target(g, state, t, target, kind, reason, now),
            )
            .await
        })
    }
}

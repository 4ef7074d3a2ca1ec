//! Leases on PostgreSQL: which replica runs each (the heartbeats and the lanes' leases),
//! leasing a lane's due jobs, and settling them.

use super::*;

impl PgJobStore {
    /// The live replicas, this one included: read, with this replica's heartbeat, at most once
    /// a second, outside any other transaction (so a lease never waits on a heartbeat's lock).
    pub(super) async fn members(&self) -> Result<Vec<String>, JobStoreError> {
        if let Some((at, live)) = &*self.members.lock().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < MEMBERS_EVERY
        {
            return Ok(live.clone());
        }
        let ttl = i64::try_from(REPLICA_TTL.as_nanos()).unwrap_or(i64::MAX);
        let mut live: Vec<String> = self
            .transaction_with(false, async |tx| {
                sql::execute(
                    tx,
                    &format!(
                        "INSERT INTO alertpub_replicas (id, heartbeat) VALUES ($1, {DB_NOW})
                         ON CONFLICT (id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat"
                    ),
                    &[&self.owner],
                )
                .await
                .map_err(db)?;
                // A replica gone for an hour is forgotten.
                sql::execute(
                    tx,
                    &format!(
                        "DELETE FROM alertpub_replicas WHERE heartbeat < {DB_NOW} - 3600000000000"
                    ),
                    &[],
                )
                .await
                .map_err(db)?;
                Ok(sql::query(
                    tx,
                    &format!("SELECT id FROM alertpub_replicas WHERE heartbeat > {DB_NOW} - $1"),
                    &[&ttl],
                )
                .await
                .map_err(db)?
                .iter()
                .map(|row| row.get(0))
                .collect())
            })
            .await?;
        if !live.contains(&self.owner) {
            live.push(self.owner.clone());
        }
        *self.members.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((std::time::Instant::now(), live.clone()));
        Ok(live)
    }

    /// Whether this replica runs `target`'s lane now. The live replica that rendezvous hashing
    /// picks for the target takes the lane's lease (or renews it) once the last holder's lapsed
    /// or it handed the lane over; a replica that holds a lane another one should run hands it
    /// over.
    pub(super) async fn own_lane(
        &self,
        tx: &Tx<'_>,
        target: &TargetName,
        live: &[String],
    ) -> Result<bool, JobStoreError> {
        let name = target.as_str();
        if rendezvous(name, live) != self.owner.as_str() {
            let held = self
                .lanes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(target)
                .is_some();
            if !held {
                return Ok(false);
            }
            sql::execute(
                tx,
                "DELETE FROM alertpub_lanes WHERE target = $1 AND owner = $2",
                &[&name, &self.owner],
            )
            .await
            .map_err(db)?;
            return Ok(false);
        }
        // A lease renewed within the last second has four left.
        if self
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            .is_some_and(|renewed| renewed.elapsed() < MEMBERS_EVERY)
        {
            return Ok(true);
        }
        let ttl = i64::try_from(LANE_TTL.as_nanos()).unwrap_or(i64::MAX);
        let row = sql::query_opt(
            tx,
            &format!(
                "INSERT INTO alertpub_lanes (target, owner, lease_until)
                     VALUES ($1, $2, {DB_NOW} + $3)
                     ON CONFLICT (target) DO UPDATE
                       SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
                     WHERE alertpub_lanes.owner = EXCLUDED.owner
                        OR alertpub_lanes.lease_until < {DB_NOW}
                     RETURNING owner"
            ),
            &[&name, &self.owner, &ttl],
        )
        .await
        .map_err(db)?;
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if row.is_some() {
            lanes.insert(target.clone(), std::time::Instant::now());
        } else {
            lanes.remove(target);
        }
        Ok(row.is_some())
    }

    pub(super) async fn lease_now(
        &self,
        target: &TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, JobStoreError> {
        let name = target.as_str();
        let now_ns = ns(now);
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let mut state = self.scratch();
        if let Some(&cycle) = self
            .cycles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
        {
            state.index.lanes.entry(target.clone()).or_default().cycle = cycle;
        }
        let live = self.members().await?;
        let outcome = self
            .transaction_with(false, async |tx| {
                if !self.own_lane(tx, target, &live).await? {
                    // Another replica runs this lane.
                    return Ok(Lease {
                        jobs: Vec::new(),
                        next_due: None,
                    });
                }
                // Expired leases (looked for once a second of the lane's time): a superseded job
                // is settled by the expiry, and removed; the others are leasable again, with the
                // attempt counted (the lane may have sent the job before it lost the lease).
                let look = {
                    let mut checked = self
                        .expiry_checked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let due = checked.get(target).is_none_or(|&last| {
                        now < last || now - last >= chrono::Duration::seconds(1)
                    });
                    if due {
                        checked.insert(target.clone(), now);
                    }
                    due
                };
                if look {
                    let gone: Vec<i64> = sql::query(
                        tx,
                        "DELETE FROM alertpub_jobs
                         WHERE target = $1 AND leased_until <= $2 AND superseded RETURNING body",
                        &[&name, &now_ns],
                    )
                    .await
                    .map_err(db)?
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                    sql::execute(
                        tx,
                        "UPDATE alertpub_jobs
                     SET leased_until = NULL, lease_owner = NULL, attempts = attempts + 1
                     WHERE target = $1 AND leased_until <= $2",
                        &[&name, &now_ns],
                    )
                    .await
                    .map_err(db)?;
                    release_bodies(tx, gone.into_iter().map(unsigned).collect()).await?;
                }
                // The due jobs of each level, oldest first, whose (target, fingerprint) has no
                // job in flight: the priority shares then choose among them.
                for level in 0_i16..3 {
                    add_jobs(
                        tx,
                        &mut state,
                        &format!(
                            "SELECT {JOB_COLUMNS} FROM alertpub_jobs j
                             WHERE j.target = $1 AND j.priority = $2 AND j.leased_until IS NULL
                               AND j.due <= $3
                               AND NOT EXISTS (SELECT 1 FROM alertpub_jobs l
                                   WHERE l.target = j.target AND l.fingerprint = j.fingerprint
                                     AND l.leased_until IS NOT NULL)
                             ORDER BY j.due, j.id LIMIT $4
                             FOR UPDATE OF j SKIP LOCKED"
                        ),
                        &[&name, &level, &now_ns, &limit],
                    )
                    .await?;
                }
                let mut lease = state.lease(target, n, ttl, now)?;
                let until = ns(now
                    .checked_add_signed(
                        chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
                    )
                    .unwrap_or(DateTime::<Utc>::MAX_UTC));
                let leased: Vec<i64> = lease.jobs.iter().map(|job| id(job.id.0)).collect();
                if !leased.is_empty() {
                    sql::execute(
                        tx,
                        "UPDATE alertpub_jobs SET leased_until = $2, lease_owner = $3
                         WHERE id = ANY($1)",
                        &[&leased, &until, &self.owner],
                    )
                    .await
                    .map_err(db)?;
                }
                // A lane that got all it asked for comes back for more anyway.
                if lease.jobs.len() < n {
                    let next: Option<i64> = sql::query_one(
                        tx,
                        "SELECT min(due) FROM alertpub_jobs
                         WHERE target = $1 AND leased_until IS NULL AND due > $2",
                        &[&name, &now_ns],
                    )
                    .await
                    .map_err(db)?
                    .get(0);
                    lease.next_due = next.map(time);
                }
                Ok(lease)
            })
            .await;
        if let Some(lane) = state.index.lanes.get(target) {
            self.cycles
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(target.clone(), lane.cycle);
        }
        self.done(state);
        outcome
    }

    /// Settles a leased job: rescheduled with `how`, or acked with `None`, unless another
    /// replica holds its lease now.
    pub(super) async fn settle(
        &self,
        job: JobId,
        how: Option<Reschedule>,
    ) -> Result<(), JobStoreError> {
        let job_id = id(job.0);
        if how.is_none() {
            // Acked (or superseded while in flight): one statement, which releases its body when
            // nothing else refers to it.
            let result = async {
                let client = self.fast.get().await.map_err(error::pool)?;
                let statement = client
                    .prepare_cached(
                        "WITH gone AS (
                            DELETE FROM alertpub_jobs
                            WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2)
                            RETURNING body
                        )
                        DELETE FROM alertpub_bodies b USING gone WHERE b.id = gone.body
                          AND NOT EXISTS (SELECT 1 FROM alertpub_jobs j
                                          WHERE j.body = b.id AND j.id <> $1)
                          AND NOT EXISTS (SELECT 1 FROM alertpub_log l WHERE l.body = b.id)",
                    )
                    .await
                    .map_err(db)?;
                client
                    .execute(&statement, &[&job_id, &self.owner])
                    .await
                    .map_err(db)?;
                Ok(())
            }
            .await;
            self.count(&result);
            return result;
        }
        self.transaction_with(false, async |tx| {
            // Acked, or superseded while in flight: its newer state is already queued.
            let sql = match &how {
                None => {
                    "DELETE FROM alertpub_jobs
                     WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2) RETURNING body"
                }
                Some(_) => {
                    "DELETE FROM alertpub_jobs
                     WHERE id = $1 AND superseded AND (lease_owner IS NULL OR lease_owner = $2)
                     RETURNING body"
                }
            };
            let removed: Vec<i64> = sql::query(tx, sql, &[&job_id, &self.owner])
                .await
                .map_err(db)?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if let Some(how) = &how
                && removed.is_empty()
            {
                let error = how
                    .error
                    .as_ref()
                    .map(crate::redb_store::records::encode)
                    .transpose()?;
                sql::execute(
                    tx,
                    "UPDATE alertpub_jobs
                     SET due = $3, attempts = attempts + $4, last_error = COALESCE($5, last_error),
                         leased_until = NULL, lease_owner = NULL
                     WHERE id = $1 AND NOT superseded
                       AND (lease_owner IS NULL OR lease_owner = $2)",
                    &[
                        &job_id,
                        &self.owner,
                        &ns(how.not_before),
                        &i32::from(how.consume_attempt),
                        &error,
                    ],
                )
                .await
                .map_err(db)?;
            }
            release_bodies(tx, removed.into_iter().map(unsigned).collect()).await
        })
        .await
    }
}

/// FNV-1a over `bytes`: the same in every replica.
pub(super) fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The replica among `live` that runs `target`'s lane: the highest hash of (target, replica),
/// so a replica that leaves moves only its own lanes, and one that joins takes a fair share.
fn rendezvous<'a>(target: &str, live: &'a [String]) -> &'a str {
    live.iter()
        .max_by_key(|replica| fnv(target.bytes().chain([0]).chain(replica.bytes())))
        .map_or("", String::as_str)
}

//! Leases on PostgreSQL: which replica runs each (the heartbeats and the lanes' leases),
//! leasing a lane's due jobs, and settling them.

use deadpool_postgres::GenericClient;

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

    /// What this replica can tell of `target`'s lane without asking the database.
    fn claim(&self, target: &TargetName, live: &[String]) -> Claim {
        let held = self
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            .copied();
        if rendezvous(target.as_str(), live) != self.owner.as_str() {
            return if held.is_some() {
                Claim::HandOver
            } else {
                Claim::Foreign
            };
        }
        // A lease renewed within the last second has four left.
        if held.is_some_and(|renewed| renewed.elapsed() < MEMBERS_EVERY) {
            return Claim::Held;
        }
        if self
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            .is_some_and(|at| at.elapsed() < CLAIM_RETRY)
        {
            return Claim::Waiting;
        }
        Claim::Take
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
        match self.claim(target, live) {
            Claim::Foreign | Claim::Waiting => return Ok(false),
            Claim::Held => return Ok(true),
            Claim::HandOver => {
                self.lanes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(target);
                sql::execute(
                    tx,
                    "DELETE FROM alertpub_lanes WHERE target = $1 AND owner = $2",
                    &[&name, &self.owner],
                )
                .await
                .map_err(db)?;
                return Ok(false);
            }
            Claim::Take => {}
        }
        let ttl = i64::try_from(LANE_TTL.as_nanos()).unwrap_or(i64::MAX);
        let row = sql::query_opt(
            tx,
            &format!(
                "WITH last AS (SELECT owner FROM alertpub_lanes WHERE target = $1)
                 INSERT INTO alertpub_lanes (target, owner, lease_until)
                     VALUES ($1, $2, {DB_NOW} + $3)
                     ON CONFLICT (target) DO UPDATE
                       SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
                     WHERE alertpub_lanes.owner = EXCLUDED.owner
                        OR alertpub_lanes.lease_until < {DB_NOW}
                     RETURNING (SELECT owner FROM last)"
            ),
            &[&name, &self.owner, &ttl],
        )
        .await
        .map_err(db)?;
        if let Some(last) = row.as_ref().and_then(|row| row.get::<_, Option<String>>(0))
            && last != self.owner
        {
            // The last owner did not hand the lane over: its lease lapsed. Its calls in flight
            // are sent again once their own leases lapse too.
            tracing::warn!(
                target = name,
                last_owner = %last,
                "took over a lane whose owner stopped renewing it"
            );
        }
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if row.is_some() {
            refused.remove(target);
        } else {
            refused.insert(target.clone(), std::time::Instant::now());
        }
        drop(refused);
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if row.is_some() {
            if !lanes.contains_key(target) {
                // A lane this replica takes (again) scans from the start: its cursor is from
                // the last time it ran the lane, if ever.
                self.cursors.forget(target);
            }
            lanes.insert(target.clone(), std::time::Instant::now());
        } else {
            lanes.remove(target);
        }
        Ok(row.is_some())
    }

    /// Leases up to `n` of `target`'s due jobs, with the lease calls of other lanes that arrive
    /// meanwhile: one transaction for all of them.
    pub(super) async fn lease_now(
        &self,
        target: &TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, JobStoreError> {
        let call = LeaseCall {
            target: target.clone(),
            n,
            ttl,
            now,
            made: std::time::Instant::now(),
        };
        self.leases
            .call(call, |calls| async move { self.lease_all(calls).await })
            .await
            .unwrap_or_else(|| Err(interrupted()))
    }

    /// Answers `calls` in order: the first call of each target together, then the calls of a
    /// target that asked again, so a lane's calls never share a transaction.
    async fn lease_all(&self, calls: Vec<LeaseCall>) -> Vec<Result<Lease, JobStoreError>> {
        let mut answers: Vec<Option<Result<Lease, JobStoreError>>> = vec![None; calls.len()];
        let mut left: Vec<usize> = (0..calls.len()).collect();
        while !left.is_empty() {
            let mut seen = HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) = left
                .into_iter()
                .partition(|&i| seen.insert(&calls[i].target));
            // One order of lanes in every replica, so two rounds that take lane rows never
            // deadlock on them.
            let mut round = round;
            round.sort_by(|&a, &b| calls[a].target.cmp(&calls[b].target));
            let round_calls: Vec<&LeaseCall> = round.iter().map(|&i| &calls[i]).collect();
            let mut result = self.lease_round(&round_calls).await;
            for _ in 0..error::CONTENDED_RETRIES {
                if !error::contended(&result) {
                    break;
                }
                result = self.lease_round(&round_calls).await;
            }
            match result {
                Ok(leases) => {
                    for (i, lease) in round.iter().zip(leases) {
                        answers[*i] = Some(Ok(lease));
                    }
                }
                Err(e) => {
                    for i in &round {
                        answers[*i] = Some(Err(e.clone()));
                    }
                }
            }
            left = later;
        }
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err(interrupted())))
            .collect()
    }

    /// One transaction for `calls`, one per target: the lanes this replica runs, their expired
    /// leases, their due jobs in one statement, the priority shares, and the leases in one.
    async fn lease_round(&self, calls: &[&LeaseCall]) -> Result<Vec<Lease>, JobStoreError> {
        let mut state = self.scratch();
        {
            let cycles = self.cycles.lock().unwrap_or_else(PoisonError::into_inner);
            for call in calls {
                if let Some(&cycle) = cycles.get(&call.target) {
                    state
                        .index
                        .lanes
                        .entry(call.target.clone())
                        .or_default()
                        .cycle = cycle;
                }
            }
        }
        let outcome = match self.members().await {
            Err(e) => Err(e),
            Ok(live) => {
                let claims: Vec<Claim> = calls
                    .iter()
                    .map(|call| self.claim(&call.target, &live))
                    .collect();
                if claims
                    .iter()
                    .all(|claim| matches!(claim, Claim::Foreign | Claim::Waiting))
                {
                    // No lane of the round is this replica's to run or to hand over: nothing
                    // to ask.
                    Ok(calls.iter().map(|_| not_mine()).collect())
                } else if calls.iter().zip(&claims).all(|(call, claim)| match claim {
                    Claim::Foreign | Claim::Waiting => true,
                    Claim::Held => !self.expiry_due(&call.target, call.now),
                    Claim::HandOver | Claim::Take => false,
                }) {
                    // No lane lease to take, renew or hand over and no expiry to look for: the
                    // leases are one statement, on its own.
                    let owned: Vec<bool> = claims
                        .iter()
                        .map(|claim| matches!(claim, Claim::Held))
                        .collect();
                    let result = async {
                        let client = self.fast.get().await.map_err(error::pool)?;
                        self.lease_jobs(&client, &mut state, calls, &owned).await
                    }
                    .await;
                    self.count(&result);
                    result
                } else {
                    self.transaction_with(false, async |tx| {
                        self.lease_in(tx, &mut state, calls, &live).await
                    })
                    .await
                }
            }
        };
        if outcome.is_err() {
            // The lane leases this transaction renewed were not renewed: ask the database again
            // next time rather than trust them.
            let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            for call in calls {
                lanes.remove(&call.target);
            }
        }
        {
            let mut cycles = self.cycles.lock().unwrap_or_else(PoisonError::into_inner);
            for call in calls {
                if let Some(lane) = state.index.lanes.get(&call.target) {
                    cycles.insert(call.target.clone(), lane.cycle);
                }
            }
        }
        self.done(state);
        outcome
    }

    async fn lease_in(
        &self,
        tx: &Tx<'_>,
        state: &mut State,
        calls: &[&LeaseCall],
        live: &[String],
    ) -> Result<Vec<Lease>, JobStoreError> {
        let mut owned = Vec::with_capacity(calls.len());
        for call in calls {
            // Another replica may run this lane.
            owned.push(self.own_lane(tx, &call.target, live).await?);
        }
        for call in calls
            .iter()
            .zip(&owned)
            .filter(|(_, o)| **o)
            .map(|(c, _)| c)
        {
            self.expire(tx, &call.target, call.now).await?;
        }
        self.lease_jobs(tx, state, calls, &owned).await
    }

    /// Leases the due jobs of the lanes of `calls` this replica runs (`owned`) in one
    /// statement: each lane's and level's due jobs from its cursor, oldest first, whose (target,
    /// fingerprint) has no job in flight, are marked leased and come back with their alerts;
    /// the priority shares then choose among them, and any they leave are let go again.
    async fn lease_jobs<C: GenericClient + ?Sized>(
        &self,
        client: &C,
        state: &mut State,
        calls: &[&LeaseCall],
        owned: &[bool],
    ) -> Result<Vec<Lease>, JobStoreError> {
        let mine: Vec<&&LeaseCall> = calls
            .iter()
            .zip(owned)
            .filter(|(_, o)| **o)
            .map(|(c, _)| c)
            .collect();
        let mut taken: HashSet<i64> = HashSet::new();
        if !mine.is_empty() {
            // One row per lane and level: where its scan starts (see `cursor`).
            let scans: Vec<cursor::Scan> =
                mine.iter().map(|c| self.cursors.scan(&c.target)).collect();
            let mut targets = Vec::new();
            let (mut levels, mut nows, mut limits) = (Vec::new(), Vec::new(), Vec::new());
            let (mut from_due, mut from_id) = (Vec::new(), Vec::new());
            let (mut untils, mut ttls) = (Vec::new(), Vec::new());
            for (call, scan) in mine.iter().zip(&scans) {
                // The lease runs from when this statement runs: a call that waited behind a
                // slow batch would otherwise get a lease shorter by the wait, and lapse while
                // its job is sent.
                let ttl = chrono::Duration::from_std(call.ttl.saturating_add(call.made.elapsed()))
                    .unwrap_or(chrono::Duration::MAX);
                let until = ns(call
                    .now
                    .checked_add_signed(ttl)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC));
                for (level, from) in (0_i16..).zip(scan.from) {
                    targets.push(call.target.as_str());
                    levels.push(level);
                    nows.push(ns(call.now));
                    limits.push(i64::try_from(call.n).unwrap_or(i64::MAX));
                    from_due.push(from.0);
                    from_id.push(from.1);
                    untils.push(until);
                    ttls.push(i64::try_from(call.ttl.as_nanos()).unwrap_or(i64::MAX));
                }
            }
            let columns: Vec<String> = JOB_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
            // `c`: the candidates, locked (another replica's leases of the lane's last owner
            // are skipped); `u` marks them leased. The main query reads the rows as they were
            // before, with each lane's and level's first pending job, which its cursor moves
            // to. The in-flight check is a subquery of its own (`OFFSET 0`) that finds the
            // job's (target, fingerprint) by its index: as a join, a plan made while the table
            // was small read every job of the lane for each candidate.
            let rows = sql::query(
                client,
                &format!(
                    "WITH r AS (SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[],
                                    $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
                                    $8::bigint[])
                            WITH ORDINALITY AS r(lane, level, lane_now, lim, from_due, from_id,
                                                 until, ttl, i)),
                     c AS MATERIALIZED (SELECT j.*, r.i AS lane_i, r.until AS lane_until,
                                               r.ttl AS lane_ttl
                         FROM r CROSS JOIN LATERAL (SELECT * FROM alertpub_jobs j
                             WHERE j.target = r.lane AND j.priority = r.level
                               AND j.leased_until IS NULL AND j.due <= r.lane_now
                               AND (j.due, j.id) >= (r.from_due, r.from_id)
                               AND NOT EXISTS (SELECT 1 FROM alertpub_jobs l
                                   WHERE l.target = j.target AND l.fingerprint = j.fingerprint
                                     AND l.leased_until IS NOT NULL OFFSET 0)
                             ORDER BY j.due, j.id LIMIT r.lim
                             FOR UPDATE OF j SKIP LOCKED) j),
                     u AS (UPDATE alertpub_jobs t
                         SET leased_until = c.lane_until, lease_owner = $9,
                             lease_db_until = {DB_NOW} + c.lane_ttl
                         FROM c WHERE t.id = c.id)
                     SELECT {}, (SELECT b.alert FROM alertpub_bodies b WHERE b.id = c.body),
                            r.i, f.due, f.id
                     FROM r
                     LEFT JOIN LATERAL (SELECT p.due, p.id FROM alertpub_jobs p
                         WHERE p.target = r.lane AND p.priority = r.level
                           AND p.leased_until IS NULL AND (p.due, p.id) >= (r.from_due, r.from_id)
                         ORDER BY p.due, p.id LIMIT 1) f ON TRUE
                     LEFT JOIN c ON c.lane_i = r.i",
                    columns.join(", ")
                ),
                &[
                    &targets,
                    &levels,
                    &nows,
                    &limits,
                    &from_due,
                    &from_id,
                    &untils,
                    &ttls,
                    &self.owner,
                ],
            )
            .await
            .map_err(db)?;
            for row in &rows {
                if let Some(job) = row.get::<_, Option<i64>>(0) {
                    taken.insert(job);
                }
            }
            add_job_rows(client, state, &rows).await?;
            let mut first: Vec<Option<(i64, i64)>> = vec![None; targets.len()];
            for row in &rows {
                let i = usize::try_from(row.get::<_, i64>(JOB_COLUMN_COUNT + 1)).unwrap_or(0);
                if let (Some(slot), Some(due), Some(job)) = (
                    i.checked_sub(1).and_then(|i| first.get_mut(i)),
                    row.get::<_, Option<i64>>(JOB_COLUMN_COUNT + 2),
                    row.get::<_, Option<i64>>(JOB_COLUMN_COUNT + 3),
                ) {
                    *slot = Some((due, job));
                }
            }
            for ((call, scan), firsts) in mine.iter().zip(&scans).zip(first.chunks(3)) {
                self.cursors
                    .advance(&call.target, scan, [firsts[0], firsts[1], firsts[2]]);
            }
        }
        let mut leases = Vec::with_capacity(calls.len());
        for (call, owned) in calls.iter().zip(owned) {
            if !owned {
                leases.push(not_mine());
                continue;
            }
            let mut lease = state.lease(&call.target, call.n, call.ttl, call.now)?;
            // Whether another replica has this target's jobs, or will own its lane, this replica
            // cannot tell from its own state: its lane keeps polling.
            lease.drained = false;
            for job in &lease.jobs {
                taken.remove(&id(job.id.0));
            }
            leases.push(lease);
        }
        if !taken.is_empty() {
            // The candidates the shares did not choose (or a second job of a (target,
            // fingerprint) already chosen) are pending again, as they were.
            let left: Vec<i64> = taken.into_iter().collect();
            sql::execute(
                client,
                "UPDATE alertpub_jobs
                 SET leased_until = NULL, lease_owner = NULL, lease_db_until = NULL
                 WHERE id = ANY($1) AND lease_owner = $2",
                &[&left, &self.owner],
            )
            .await
            .map_err(db)?;
        }
        // A lane that got all it asked for comes back for more anyway; the others learn when
        // their next job is due.
        let short: Vec<usize> = (0..calls.len())
            .filter(|&i| owned[i] && leases[i].jobs.len() < calls[i].n)
            .collect();
        if !short.is_empty() {
            let targets: Vec<&str> = short.iter().map(|&i| calls[i].target.as_str()).collect();
            let nows: Vec<i64> = short.iter().map(|&i| ns(calls[i].now)).collect();
            // Each level's first by the ready index, which leads with the level: a range on
            // `due` alone read every entry of the target.
            let rows = sql::query(
                client,
                "SELECT (SELECT min(n.due) FROM unnest('{0,1,2}'::smallint[]) AS v(level)
                         CROSS JOIN LATERAL (SELECT due FROM alertpub_jobs
                             WHERE target = r.target AND priority = v.level
                               AND leased_until IS NULL AND due > r.now
                             ORDER BY due, id LIMIT 1) n)
                 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r(target, now, i)
                 ORDER BY r.i",
                &[&targets, &nows],
            )
            .await
            .map_err(db)?;
            for (&i, row) in short.iter().zip(&rows) {
                leases[i].next_due = row.get::<_, Option<i64>>(0).map(time);
            }
        }
        Ok(leases)
    }

    /// Whether `target`'s lane looks for expired leases at `now` (see [`Self::expire`]).
    fn expiry_due(&self, target: &TargetName, now: DateTime<Utc>) -> bool {
        self.expiry_checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            .is_none_or(|&last| now < last || now - last >= chrono::Duration::seconds(1))
    }

    /// Looks for `target`'s expired leases once a second of the lane's time: a superseded job
    /// is settled by the expiry, and removed; the others are leasable again, with the attempt
    /// counted (the lane may have sent the job before it lost the lease).
    async fn expire(
        &self,
        tx: &Tx<'_>,
        target: &TargetName,
        now: DateTime<Utc>,
    ) -> Result<(), JobStoreError> {
        if !self.expiry_due(target, now) {
            return Ok(());
        }
        // A lane's lease calls never share a round, so nothing looks for this lane meanwhile.
        self.expiry_checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.clone(), now);
        let (name, now_ns) = (target.as_str(), ns(now));
        // This replica's own leases lapse by its clock (the one `now` comes from); those of the
        // lane's last owner by the database's.
        let lapsed = format!(
            "target = $1 AND leased_until IS NOT NULL
             AND CASE WHEN lease_owner = $3 OR lease_db_until IS NULL
                      THEN leased_until <= $2
                      ELSE lease_db_until <= {DB_NOW} END"
        );
        let gone: Vec<i64> = sql::query(
            tx,
            &format!("DELETE FROM alertpub_jobs WHERE {lapsed} AND superseded RETURNING body"),
            &[&name, &now_ns, &self.owner],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|row| row.get(0))
        .collect();
        let lapsed_rows = sql::query(
            tx,
            &format!(
                "WITH old AS (SELECT id, lease_owner FROM alertpub_jobs WHERE {lapsed} FOR UPDATE)
                 UPDATE alertpub_jobs j
                 SET leased_until = NULL, lease_owner = NULL, lease_db_until = NULL,
                     attempts = j.attempts + 1
                 FROM old WHERE j.id = old.id
                 RETURNING old.lease_owner"
            ),
            &[&name, &now_ns, &self.owner],
        )
        .await
        .map_err(db)?;
        if !lapsed_rows.is_empty() || !gone.is_empty() {
            // Jobs put back keep their place in the range, which may be before the cursor.
            self.cursors.forget(target);
        }
        if !lapsed_rows.is_empty() {
            // Calls whose lease lapsed before they were settled: this replica's (a call that
            // outlived its lease) or another's (it stopped). Sent again, as at least once
            // promises; the first call may have reached the target.
            let foreign = lapsed_rows
                .iter()
                .filter(|row| row.get::<_, Option<&str>>(0) != Some(self.owner.as_str()))
                .count();
            tracing::warn!(
                target = name,
                jobs = lapsed_rows.len(),
                of_other_replicas = foreign,
                "jobs whose lease lapsed before they were settled are sent again"
            );
        }
        release_bodies(tx, gone.into_iter().map(unsigned).collect()).await
    }

    /// Settles a leased job: rescheduled with `how`, or acked with `None`, unless another
    /// replica holds its lease now.
    pub(super) async fn settle(
        &self,
        job: JobId,
        how: Option<Reschedule>,
    ) -> Result<(), JobStoreError> {
        let job_id = id(job.0);
        let Some(how) = how else {
            // Acked (or superseded while in flight): with the acks that arrive meanwhile.
            let result = self
                .acks
                .call(job_id, |ids| async move {
                    let answer = self.ack_all(&ids).await;
                    vec![answer; ids.len()]
                })
                .await
                .unwrap_or_else(|| Err(interrupted()));
            self.count(&result);
            return result;
        };
        self.transaction_with(false, async |tx| {
            // Superseded while in flight: its newer state is already queued, so it goes.
            let removed: Vec<i64> = sql::query(
                tx,
                "DELETE FROM alertpub_jobs
                 WHERE id = $1 AND superseded AND (lease_owner IS NULL OR lease_owner = $2)
                 RETURNING body",
                &[&job_id, &self.owner],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|row| row.get(0))
            .collect();
            if removed.is_empty() {
                let error = how
                    .error
                    .as_ref()
                    .map(crate::redb_store::records::encode)
                    .transpose()?;
                let put_back = sql::query(
                    tx,
                    "UPDATE alertpub_jobs
                     SET due = $3, attempts = attempts + $4, last_error = COALESCE($5, last_error),
                         leased_until = NULL, lease_owner = NULL, lease_db_until = NULL
                     WHERE id = $1 AND NOT superseded
                       AND (lease_owner IS NULL OR lease_owner = $2)
                     RETURNING target, priority",
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
                // The job's lane scans from it on (it may sit before the cursor).
                for row in &put_back {
                    if let Ok(target) = TargetName::new(row.get::<_, &str>(0)) {
                        let level = usize::try_from(row.get::<_, i16>(1)).unwrap_or(0);
                        self.cursors
                            .lower(&target, level, (ns(how.not_before), job_id));
                    }
                }
            }
            release_bodies(tx, removed.into_iter().map(unsigned).collect()).await
        })
        .await
    }
}

impl PgJobStore {
    /// Removes the acked jobs `ids` (those this replica holds, or that none holds) in one
    /// statement, and the bodies nothing else refers to.
    async fn ack_all(&self, ids: &[i64]) -> Result<(), JobStoreError> {
        let mut result = self.ack_once(ids).await;
        for _ in 0..error::CONTENDED_RETRIES {
            if !error::contended(&result) {
                break;
            }
            result = self.ack_once(ids).await;
        }
        result
    }

    async fn ack_once(&self, ids: &[i64]) -> Result<(), JobStoreError> {
        let client = self.fast.get().await.map_err(error::pool)?;
        // The bodies are locked in id order, so acks of other replicas that release the same
        // bodies wait for each other instead of deadlocking. A body the log still names (most
        // of them: the log keeps the last state it decided) is ruled out first, by one look at
        // the log's index, before its row and its other jobs are looked at.
        let statement = client
            .prepare_cached(
                "WITH gone AS (
                    DELETE FROM alertpub_jobs
                    WHERE id = ANY($1) AND (lease_owner IS NULL OR lease_owner = $2)
                    RETURNING id, body
                ), unlogged AS (
                    SELECT DISTINCT g.body FROM gone g
                    WHERE NOT EXISTS (SELECT 1 FROM alertpub_log l WHERE l.body = g.body)
                ), doomed AS (
                    SELECT b.id FROM alertpub_bodies b
                    WHERE b.id IN (SELECT body FROM unlogged)
                      AND NOT EXISTS (SELECT 1 FROM alertpub_jobs j
                                      WHERE j.body = b.id AND j.id NOT IN (SELECT id FROM gone))
                    ORDER BY b.id FOR UPDATE OF b
                )
                DELETE FROM alertpub_bodies WHERE id IN (SELECT id FROM doomed)",
            )
            .await
            .map_err(db)?;
        client
            .execute(&statement, &[&ids, &self.owner])
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// What a replica can tell of a lane without the database (see `PgJobStore::claim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// Another replica should run it, and this one holds no lease on it.
    Foreign,
    /// Another replica should run it, and this one holds its lease: it hands the lane over.
    HandOver,
    /// This replica runs it and renewed its lease within the last second.
    Held,
    /// This replica should run it, but another held its lease a moment ago.
    Waiting,
    /// This replica should run it: it takes the lease or renews it.
    Take,
}

/// The answer to a lane this replica does not run (another replica's, or none's yet): no jobs,
/// and not drained, so the lane keeps polling for its ownership.
fn not_mine() -> Lease {
    Lease {
        jobs: Vec::new(),
        next_due: None,
        drained: false,
    }
}

/// One lane's call for jobs.
pub(super) struct LeaseCall {
    target: TargetName,
    n: usize,
    ttl: Duration,
    now: DateTime<Utc>,
    /// When the call was made, so its lease runs from when its batch ran, not from `now`.
    made: std::time::Instant,
}

/// A batch dropped before it was answered (its leader's caller went away): nothing of it is
/// known to have happened.
pub(super) fn interrupted() -> JobStoreError {
    JobStoreError::storage(
        StorageKind::Unavailable,
        "the call was interrupted before PostgreSQL answered",
    )
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

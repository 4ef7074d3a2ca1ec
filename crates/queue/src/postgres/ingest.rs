//! Ingest on PostgreSQL: the calls that arrive together are decided in one transaction, as the
//! redb store's writer groups its ops into one commit. Each call is planned on the group the
//! calls before it left, so each sees their jobs and log entries, and a call refused by a bound
//! (`Full`, `TooManyActiveAlerts`) writes nothing while the others go in. A storage failure
//! fails them all: nothing of any of them committed.

use super::*;

/// One `enqueue_batch` call, its bodies already encoded.
pub(super) struct EnqueueCall {
    batch: Vec<Admission>,
    bodies: Vec<crate::model::plan::Prepared>,
    body_of: Vec<usize>,
    now: DateTime<Utc>,
}

impl PgJobStore {
    /// Decides `batch`, with the ingest calls that arrive meanwhile.
    pub(super) async fn enqueue_now(
        &self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Admitted>, JobStoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (bodies, body_of) = prepare(&batch, Some(encode_alert))?;
        let call = EnqueueCall {
            batch,
            bodies,
            body_of,
            now,
        };
        self.ingests
            .call(call, |calls| async move { self.enqueue_all(calls).await })
            .await
            .unwrap_or_else(|| Err(leases::interrupted()))
    }

    /// One transaction for `calls`: their keys locked (in one order) and loaded together, each
    /// call planned on what the calls before it planned, one write of it all, one commit.
    async fn enqueue_all(
        &self,
        calls: Vec<EnqueueCall>,
    ) -> Vec<Result<Vec<Admitted>, JobStoreError>> {
        let count = calls.len();
        let mut keys: Vec<Key> = calls
            .iter()
            .flat_map(|call| call.batch.iter())
            .map(|a| (a.target.clone(), a.alert.alert.fingerprint()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut state = self.scratch();
        let outcome = self
            .transaction(async |tx| {
                let mut t = PgTables::default();
                let (released, base) = self.lock_load(tx, &mut state, &keys, true).await?;
                let base = match base {
                    Some(base) => base,
                    None => self.id_block(tx, &mut state).await?,
                };
                let mut g = Group::new(&state);
                self.counts(tx, &mut state, &mut g).await?;
                let mut answers = Vec::with_capacity(count);
                for call in calls {
                    let answer = self.planner.enqueue(
                        &mut g,
                        &state,
                        &mut t,
                        &call.batch,
                        call.bodies,
                        &call.body_of,
                        call.now,
                    )?;
                    answers.push(answer);
                }
                if answers.iter().any(Result::is_ok) {
                    self.persist(tx, &g, t, base, released).await?;
                }
                Ok((answers, g))
            })
            .await;
        self.done(state);
        match outcome {
            Ok((answers, g)) => {
                if answers.iter().any(Result::is_ok) {
                    self.applied(&g);
                }
                answers
            }
            Err(e) => vec![Err(e); count],
        }
    }
}

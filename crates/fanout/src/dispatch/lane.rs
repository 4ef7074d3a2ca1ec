//! One target's lane: gate → rate limit → in-flight limit → `TargetCall`, then settle.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{
    CircuitState, DeadReason, ErrorKind, HealthStatus, JobError, JobId, LeasedJob, RateLimit,
    Reschedule, Target, TargetEntry,
};
use chrono::{DateTime, Utc};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::{SplitMix64, backoff_ceiling};
use super::rate::{TokenBucket, default_rate_limit};
use super::settle::{Decision, LaneView, Settlement, decide_in};
use super::{Context, LaneShared, PauseReason};
use crate::call::{CallResult, TargetCall};

/// How many leased jobs a lane may hold per call it may make. A call's slot is freed as soon as
/// the target has answered, but its job stays leased, and its attempt task alive, until the
/// settlement is answered, and a durable store answers an ack only once it is on disk, which
/// can take a group commit's wait and an fsync. Counting those jobs against the call limit
/// would leave the target idle while the disk catches up; not bounding them at all would make
/// the deliveries a crash repeats unbounded. So a lane holds at most this many times its
/// in-flight limit, which is also the bound on the deliveries a crash repeats per target.
///
/// A lane delivers at most this many jobs per ack latency, and under load a group commit
/// gathers for up to 10 ms: with 2, S2 of `cargo xtask bench` (10 targets at 16 calls each)
/// stalled at about 2 200 deliveries/s per target with a fifth of the CPU idle; with 4 it keeps
/// up with ingest.
pub(super) const SETTLING_PER_CALL: usize = 4;

/// A busy lane (one with attempts running) leases once half its in-flight limit is free, or
/// once a slot has been free this long, whichever comes first. Against a fast target a lease
/// per freed slot is a store round trip per delivery: S2 on PostgreSQL made about one lease
/// transaction per 5 deliveries, and the database's CPU was the limit; at a quarter of the
/// slots, one lease per 10 deliveries still cost the database a tenth more CPU than at half,
/// with three replicas. Waiting for half the slots batches them, and the linger bounds what a
/// slow target's lane pays for it: a job waits at most this much longer while the target is
/// busy with others.
pub(super) const LEASE_LINGER: Duration = Duration::from_millis(2);

/// What an attempt tells its lane when it ends.
#[derive(Debug, Default)]
struct AttemptEnd {
    /// Pause the whole lane for this long, for this reason.
    pause: Option<(Duration, PauseReason)>,
    /// How the lane's run of 429s without `Retry-After` changes.
    streak: Streak,
}

/// How an attempt's outcome changes the lane's run of 429s without `Retry-After`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Streak {
    /// Neither: a failure of another kind, or no call.
    #[default]
    Keep,
    /// Another 429 without `Retry-After`.
    Grow,
    /// The target accepted a delivery.
    Reset,
}

impl Streak {
    fn of(result: &CallResult) -> Self {
        match result {
            CallResult::Called(outcome) => match &outcome.result {
                Ok(_) => Self::Reset,
                Err(err) if err.kind == (ErrorKind::RateLimited { retry_after: None }) => {
                    Self::Grow
                }
                Err(_) => Self::Keep,
            },
            CallResult::Rejected { .. } => Self::Keep,
        }
    }
}

/// How a lane's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LaneEnd {
    /// Stopped (shutdown, or its target was disabled or removed), after its attempts ended.
    Stopped,
    /// The store had no job of its target left, pending or leased, and nothing of the lane's
    /// own was running or waiting: it ended so that an idle target holds no task. The next job
    /// starts a lane again ([`DispatcherWaker::wake`](super::DispatcherWaker::wake)).
    Drained,
}

/// What a lease found.
enum Leased {
    /// Jobs whose attempts have started, a failed lease (its backoff is set) or a stop: the
    /// lane takes its next step at once.
    Again,
    /// None due: wait until this instant or a wake-up.
    Nothing(Instant),
    /// None at all, pending or leased: the lane may end, or else wait as for `Nothing`.
    Drained(Instant),
}

/// What the lane does next.
enum Step {
    /// Lease up to this many jobs.
    Lease(usize),
    /// Wait until `until` (if any), an attempt ends, shutdown, or (if `wake`) a wake-up.
    Wait { until: Option<Instant>, wake: bool },
}

/// A lane's target as it is now: the supervisor replaces it when the configuration changes, and
/// the lane reads it at each step. A `watch` channel did the same at ten times the size, and the
/// lane never waits for a change.
pub(super) struct EntryCell(Mutex<Arc<TargetEntry>>);

impl EntryCell {
    pub(super) fn new(entry: Arc<TargetEntry>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(entry)))
    }

    pub(super) fn get(&self) -> Arc<TargetEntry> {
        Arc::clone(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn set(&self, entry: Arc<TargetEntry>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = entry;
    }
}

pub(super) struct Lane {
    context: Arc<Context>,
    entry: Arc<EntryCell>,
    shared: Arc<LaneShared>,
    stop: CancellationToken,
    rng: SplitMix64,
    bucket: Option<TokenBucket>,
    /// A pause ordered by an attempt's outcome (a 429 or a breaker rejection).
    pause: Option<(Instant, PauseReason)>,
    /// When the lane last let an attempt through while the target was unhealthy.
    unhealthy_probe: Option<Instant>,
    /// 429s without `Retry-After` met in a row; each one pauses the lane twice as long.
    rate_limited_streak: u32,
    /// Consecutive failed leases, for the lane's backoff.
    store_failures: u32,
    /// After a failed lease, the lane leases again no earlier than this.
    lease_retry_at: Option<Instant>,
    /// Since when a slot has been free while the lane waits for half of them (see
    /// [`LEASE_LINGER`]).
    free_since: Option<Instant>,
    /// Since when every lease has found the target drained: the lane ends once that has lasted
    /// an `idle_poll`.
    drained_since: Option<Instant>,
    /// The rate limit of the entry it was worked out for (see [`Self::bucket_for`]).
    rate_of: Option<(Arc<TargetEntry>, Option<RateLimit>)>,
    /// Whether a lease has given the lane a job: a lane that never had one (started with the
    /// dispatcher, for a target without jobs) ends at its first drained lease.
    leased: bool,
    attempts: JoinSet<AttemptEnd>,
}

impl Lane {
    pub(super) fn new(
        context: Arc<Context>,
        entry: Arc<EntryCell>,
        shared: Arc<LaneShared>,
        stop: CancellationToken,
    ) -> Box<Self> {
        let rng = SplitMix64::seeded_from(entry.get().target.name.as_str());
        // Boxed: the task's future then holds a pointer, not the lane, and an idle lane's task
        // is its wait and little more (one task per configured target).
        Box::new(Self {
            context,
            entry,
            shared,
            stop,
            rng,
            bucket: None,
            pause: None,
            unhealthy_probe: None,
            rate_limited_streak: 0,
            store_failures: 0,
            lease_retry_at: None,
            free_since: None,
            drained_since: None,
            rate_of: None,
            leased: false,
            attempts: JoinSet::new(),
        })
    }

    pub(super) async fn run(mut self: Box<Self>) -> LaneEnd {
        while !self.stop.is_cancelled() {
            let entry = self.entry.get();
            match self.next_step(&entry) {
                Step::Wait { until, wake } => self.wait(until, wake).await,
                Step::Lease(n) => {
                    // The lease's own wait happens here, not inside it, so the task's future
                    // never holds the two at once.
                    match self.lease(&entry, n).await {
                        Leased::Again => {}
                        Leased::Drained(_) if self.may_end() => return LaneEnd::Drained,
                        Leased::Nothing(until) | Leased::Drained(until) => {
                            self.wait(Some(until), true).await;
                        }
                    }
                }
            }
        }
        // Shutdown or stop: lease nothing more, and let the attempts in flight finish. The
        // caller bounds this with its own deadline by dropping the dispatcher handle, which
        // aborts this task and its attempts.
        while let Some(ended) = self.attempts.join_next().await {
            self.attempt_ended(ended);
        }
        LaneEnd::Stopped
    }

    /// Whether the lane may end now that the store has no job of its target: it has had none
    /// for an `idle_poll` (a target with a steady trickle of jobs keeps its lane, and pays no
    /// restart per job) or never had one (the dispatcher's start makes no task per configured
    /// target that outlives the first lease), and nothing of its own runs or waits (an attempt, a pause, a run of
    /// 429s, a store's backoff, tokens spent from its bucket), so a lane started afresh for the
    /// next job behaves as this one would. Marks the lane as not running first, and then looks
    /// for a wake-up since its lease: one that came too late for this look finds the lane not
    /// running and has the supervisor start another
    /// ([`DispatcherWaker::wake`](super::DispatcherWaker::wake)).
    fn may_end(&mut self) -> bool {
        let now = self.instant();
        let since = *self.drained_since.get_or_insert(now);
        let waited =
            !self.leased || now.saturating_duration_since(since) >= self.context.config.idle_poll;
        let quiet = waited
            && self.attempts.is_empty()
            && self.shared.in_flight.load(Ordering::Relaxed) == 0
            && self.pause.is_none()
            && self.rate_limited_streak == 0
            && self.store_failures == 0
            && self
                .bucket
                .as_mut()
                .is_none_or(|bucket| bucket.is_full(now));
        if !quiet {
            return false;
        }
        self.shared.running.store(false, Ordering::SeqCst);
        if self.shared.work.load(Ordering::SeqCst) {
            self.shared.running.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The clock's monotonic time, on tokio's timeline, for the lane's pauses and waits.
    fn instant(&self) -> Instant {
        Instant::from_std(self.context.clock.monotonic())
    }

    /// Walks the layers from the outside in and says what to do now.
    fn next_step(&mut self, entry: &Arc<TargetEntry>) -> Step {
        let config = &self.context.config;
        let target = &entry.target;
        let name = target.name.as_str();
        let now = self.instant();
        let running = self.attempts.len();
        let mut limit = target
            .in_flight_limit
            .unwrap_or(config.default_in_flight)
            .max(1);

        // Gate: a pause an outcome ordered (a 429 or a breaker rejection), the breaker's state,
        // then health. Each delays; none fails a job.
        if let Some((until, reason)) = self.pause {
            if until > now {
                self.show_pause(Some(until), reason);
                return Step::Wait {
                    until: Some(until),
                    wake: false,
                };
            }
            self.pause = None;
        }
        match self.context.gate.state(name) {
            CircuitState::Open => {
                // The breaker does not say when it will half-open without taking a trial slot,
                // so look again shortly.
                let until = now + config.initial_backoff.min(config.max_backoff);
                self.show_pause(Some(until), PauseReason::CircuitOpen);
                return Step::Wait {
                    until: Some(until),
                    wake: false,
                };
            }
            // A half-open breaker lets one trial through; more would only be rejected.
            CircuitState::HalfOpen => limit = 1,
            CircuitState::Closed => {}
        }
        if self.context.health.status(name) == HealthStatus::Unhealthy {
            // While unhealthy, one attempt at a time, once per `unhealthy_recheck`: enough for
            // passive outcomes to heal the target, without pouring jobs into it.
            let recheck = config.unhealthy_recheck.min(config.max_backoff);
            let next_probe = self.unhealthy_probe.map(|at| at + recheck);
            if running > 0 || next_probe.is_some_and(|at| at > now) {
                let until = next_probe.filter(|at| *at > now).unwrap_or(now + recheck);
                self.show_pause(Some(until), PauseReason::Unhealthy);
                return Step::Wait {
                    until: Some(until),
                    wake: false,
                };
            }
            limit = 1;
        } else {
            self.unhealthy_probe = None;
        }
        self.shared.set_pause(None, None);

        // A store that just failed is given its backoff before the next lease.
        if let Some(at) = self.lease_retry_at.filter(|at| *at > now) {
            return Step::Wait {
                until: Some(at),
                wake: false,
            };
        }

        // Rate limit: a token per attempt; wait for one, never fail.
        let tokens = match self.bucket_for(entry, now) {
            Some(bucket) => {
                let tokens = bucket.available(now);
                if tokens == 0 {
                    return Step::Wait {
                        until: Some(bucket.next_token_at(now)),
                        wake: false,
                    };
                }
                tokens
            }
            None => usize::MAX,
        };

        // In-flight limit: the only place attempts start is `lease`, and it starts at most
        // `free` of them, so the lane never makes more than `limit` calls at once, and never
        // holds more than `SETTLING_PER_CALL` times that many leased jobs (see there).
        let calls = self.shared.in_flight.load(Ordering::Relaxed);
        let free = limit
            .saturating_sub(calls)
            .min((limit * SETTLING_PER_CALL).saturating_sub(running));
        if free == 0 {
            self.free_since = None;
            return Step::Wait {
                until: None,
                wake: false,
            };
        }
        if running > 0 && free < limit / 2 {
            let until = *self.free_since.get_or_insert(now) + LEASE_LINGER;
            if until > now {
                return Step::Wait {
                    until: Some(until),
                    wake: false,
                };
            }
        }
        self.free_since = None;
        Step::Lease(free.min(tokens))
    }

    /// The token bucket for the target's current rate limit, rebuilt when the limit changes.
    fn bucket_for(&mut self, entry: &Arc<TargetEntry>, now: Instant) -> Option<&mut TokenBucket> {
        // A kind's default may read the target's settings, which are kept as text: worked out
        // once per entry, not at every step.
        let limit = match &self.rate_of {
            Some((of, limit)) if Arc::ptr_eq(of, entry) => *limit,
            _ => {
                let limit = default_rate_limit(&entry.target);
                self.rate_of = Some((Arc::clone(entry), limit));
                limit
            }
        };
        let Some(limit) = limit else {
            self.bucket = None;
            return None;
        };
        if self.bucket.as_ref().is_none_or(|b| b.limit() != limit) {
            self.bucket = Some(TokenBucket::new(limit, now));
        }
        self.bucket.as_mut()
    }

    fn show_pause(&self, until: Option<Instant>, reason: PauseReason) {
        let until = until.map(|at| {
            let left = at.saturating_duration_since(self.instant());
            self.context.clock.now() + chrono_duration(left)
        });
        self.shared.set_pause(until, Some(reason));
    }

    async fn wait(&mut self, until: Option<Instant>, wake: bool) {
        let stop = self.stop.clone();
        let shared = Arc::clone(&self.shared);
        let sleep = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => {}
            Some(ended) = self.attempts.join_next() => self.attempt_ended(ended),
            () = sleep => {}
            () = shared.wake.notified(), if wake => {}
            () = shared.call_ended.notified() => {}
        }
    }

    fn attempt_ended(&mut self, ended: Result<AttemptEnd, JoinError>) {
        if let Ok(end) = &ended {
            match end.streak {
                Streak::Keep => {}
                Streak::Grow => {
                    self.rate_limited_streak = self.rate_limited_streak.saturating_add(1)
                }
                Streak::Reset => self.rate_limited_streak = 0,
            }
        }
        match ended {
            Ok(AttemptEnd {
                pause: Some((after, reason)),
                ..
            }) => {
                let until = self.instant() + after;
                // Keep the later of two pauses: a second 429 with a shorter Retry-After does not
                // shorten the first.
                if self.pause.is_none_or(|(current, _)| current < until) {
                    self.pause = Some((until, reason));
                }
            }
            Ok(AttemptEnd { pause: None, .. }) => {}
            Err(err) if err.is_panic() => {
                tracing::error!(
                    "a dispatcher attempt panicked; its job is redelivered after its lease"
                );
            }
            Err(_) => {}
        }
    }

    /// Leases up to `n` jobs and starts their attempts.
    async fn lease(&mut self, entry: &Arc<TargetEntry>, n: usize) -> Leased {
        let context = Arc::clone(&self.context);
        let config = &context.config;
        let target = &entry.target;
        let call_timeout = target.timeout.unwrap_or(config.per_target_timeout);
        // The lease must outlast the attempt and its settlement, or the job could be leased again
        // while it is still in flight.
        let ttl = config.lease_ttl.max(call_timeout.saturating_mul(3));
        let now = context.clock.now();
        // A wake-up from here on is for work this lease may not see: the lane does not end on it.
        self.shared.work.store(false, Ordering::SeqCst);
        let lease = tokio::select! {
            lease = context.store.lease(&target.name, n, ttl, now) => lease,
            () = self.stop.cancelled() => return Leased::Again,
        };
        let lease = match lease {
            Ok(lease) => {
                self.store_failures = 0;
                lease
            }
            Err(err) => {
                self.store_failures = self.store_failures.saturating_add(1);
                let delay = backoff_ceiling(
                    self.store_failures,
                    config.initial_backoff,
                    config.max_backoff,
                );
                tracing::warn!(target = %target.name, error = %err, "leasing jobs failed; backing off");
                self.lease_retry_at = Some(self.instant() + delay);
                return Leased::Again;
            }
        };
        if !lease.drained {
            self.drained_since = None;
        }
        if lease.jobs.is_empty() {
            // Whether a job is due is the store's comparison with the clock's wall time, the
            // time the job was stamped by. The lane sleeps on monotonic time until the next one
            // is due, but never longer than `idle_poll`: the wall clock may step meanwhile
            // (forward, and the job is due sooner; backward, and later), and each poll asks the
            // store again with the clock's new reading.
            let mono = self.instant();
            let mut until = mono + config.idle_poll;
            if let Some(due) = lease.next_due {
                let left = (due - context.clock.now()).to_std().unwrap_or_default();
                until = until.min(mono + left);
            }
            return if lease.drained {
                Leased::Drained(until)
            } else {
                Leased::Nothing(until)
            };
        }
        self.leased = true;
        let started = self.instant();
        // What the lane knows of the target, once for the whole lease: when it is known to be
        // down, each attempt probes it for the lane.
        let unhealthy = self.context.health.status(target.name.as_str()) == HealthStatus::Unhealthy;
        let probing =
            unhealthy || self.context.gate.state(target.name.as_str()) == CircuitState::HalfOpen;
        let view = LaneView {
            probing,
            rate_limited_streak: self.rate_limited_streak,
        };
        for job in lease.jobs {
            let age = (now - job.enqueued_at).to_std().unwrap_or_default();
            let guard = InFlight::new(Arc::clone(&self.shared));
            if age > config.max_age {
                self.attempts.spawn(expire(
                    Arc::clone(&context),
                    Arc::clone(entry),
                    job.id,
                    self.stop.clone(),
                    guard,
                ));
                continue;
            }
            if let Some(bucket) = self.bucket.as_mut() {
                bucket.take(started);
            }
            if unhealthy {
                self.unhealthy_probe = Some(started);
            }
            self.attempts.spawn(attempt(
                Arc::clone(&context),
                Arc::clone(entry),
                job,
                view,
                self.rng.next_u64(),
                self.stop.clone(),
                guard,
            ));
        }
        Leased::Again
    }
}

/// Counts a call in its lane's in-flight figure until the target has answered or the attempt's
/// task ends, including when it is aborted, and then tells the lane that a slot is free.
struct InFlight(Arc<LaneShared>);

impl InFlight {
    fn new(shared: Arc<LaneShared>) -> Self {
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.call_ended.notify_one();
    }
}

/// One attempt: call the target once through `TargetCall`, then settle the job exactly once.
async fn attempt(
    context: Arc<Context>,
    entry: Arc<TargetEntry>,
    job: LeasedJob,
    view: LaneView,
    random: u64,
    stop: CancellationToken,
    in_flight: InFlight,
) -> AttemptEnd {
    let call = TargetCall::new(
        &entry,
        context.config.per_target_timeout,
        context.gate.as_ref(),
        context.health.as_ref(),
        context.observer.as_ref(),
    );
    let result = call
        .call(&job.alert, job.status, job.delivery, context.clock.now())
        .await;
    // The target has answered: free the call's slot while the settlement is made durable.
    drop(in_flight);
    let answered = context.clock.now();
    let Decision { settlement, pause } =
        decide_in(&result, job.delivery.attempt, view, &context.config, random);
    let delivered = matches!(settlement, Settlement::Ack);
    if settle(&context, &entry.target, job.id, settlement, &stop).await && delivered {
        let since = (answered - job.enqueued_at).to_std().unwrap_or_default();
        context.observer.on_job_delivered(&entry.target, since);
    }
    AttemptEnd {
        pause,
        streak: Streak::of(&result),
    }
}

/// A job older than `max_age`: dead-lettered as expired, without a call.
async fn expire(
    context: Arc<Context>,
    entry: Arc<TargetEntry>,
    job: JobId,
    stop: CancellationToken,
    _in_flight: InFlight,
) -> AttemptEnd {
    let settlement = Settlement::DeadLetter {
        reason: DeadReason::Expired,
        error: None,
    };
    settle(&context, &entry.target, job, settlement, &stop).await;
    AttemptEnd::default()
}

/// Applies a settlement, retrying with backoff while the store fails, and says whether it was
/// applied. At shutdown it gives up after the current try: the job's lease then expires and it
/// is delivered again, which the delivery's idempotency key makes harmless.
async fn settle(
    context: &Context,
    target: &Target,
    job: JobId,
    settlement: Settlement,
    stop: &CancellationToken,
) -> bool {
    let config = &context.config;
    let mut failures = 0_u32;
    loop {
        let now = context.clock.now();
        let result = match &settlement {
            Settlement::Leave => return false,
            Settlement::Ack => context.store.ack(job, now).await,
            Settlement::Reschedule {
                after,
                consume_attempt,
                error,
            } => {
                let how = reschedule(
                    now + chrono_duration(*after),
                    *consume_attempt,
                    error.clone(),
                );
                context.store.reschedule(job, how, now).await
            }
            Settlement::DeadLetter { reason, error } => context
                .store
                .dead_letter(job, target.kind, *reason, error.clone(), now)
                .await
                .map(drop),
        };
        match result {
            Ok(()) => break,
            Err(err) => {
                failures = failures.saturating_add(1);
                tracing::warn!(
                    target = %target.name,
                    job = %job,
                    error = %err,
                    "settling a job failed; retrying"
                );
                if stop.is_cancelled() {
                    return false;
                }
                let delay = backoff_ceiling(failures, config.initial_backoff, config.max_backoff);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return false,
                }
            }
        }
    }
    match settlement {
        Settlement::Reschedule {
            consume_attempt, ..
        } => context.observer.on_job_rescheduled(target, consume_attempt),
        Settlement::DeadLetter { reason, .. } => {
            tracing::warn!(target = %target.name, job = %job, reason = reason.as_str(), "job dead-lettered");
            context.observer.on_job_dead_lettered(target, reason);
        }
        Settlement::Ack | Settlement::Leave => {}
    }
    true
}

fn reschedule(
    not_before: DateTime<Utc>,
    consume_attempt: bool,
    error: Option<JobError>,
) -> Reschedule {
    let how = Reschedule::new(not_before, consume_attempt);
    match error {
        Some(error) => how.with_error(error),
        None => how,
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

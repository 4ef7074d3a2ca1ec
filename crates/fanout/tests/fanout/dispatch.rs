//! The dispatcher against `queue::MemoryJobStore` and scripted in-process publishers, with tokio's
//! clock paused: timers fire in virtual time, so minutes of backoff and rate limiting take no real
//! time, and call instants are exact.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::Clock as _;
use alert_core::{
    Admission, BoxFuture, CircuitState, DeadLetterFilter, DeadLetterId, DeadLetterPage,
    DeadLetterQueue, DeadReason, Delivery, DisabledReason, ErrorKind, Fingerprint, IngestQueue,
    JobError, JobId, JobStoreError, LaneQueue, Lease, PermanentReason, PublishError,
    PublishObserver, PublishRequest, Publisher, QueueMaintenance, QueueStats, RateLimit, Receipt,
    Reschedule, StaticTargetSource, Target, TargetEntry, TargetName, TargetSet, TestClock,
};
use chrono::{DateTime, Utc};
use fanout::{CancellationToken, Dispatcher, DispatcherConfig, DispatcherHandle, PauseReason};
use queue::MemoryJobStore;
use test_support::{FakeGate, MapHealth, alert, entry};
use tokio::sync::watch;
use tokio::time::Instant;

const SEC: Duration = Duration::from_secs(1);
/// A bound on every wait, in virtual time: a broken dispatcher fails a test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(24 * 3600);

// === A scripted publisher ===

/// What a [`Scripted`] publisher does with one call.
#[derive(Clone, Debug)]
enum Step {
    /// Answer 202 after this latency.
    Accept(Duration),
    /// Fail with this error at once.
    Fail(PublishError),
    /// Panic, as a publisher with a bug would.
    Panic,
}

/// One call a [`Scripted`] publisher received.
#[derive(Clone, Debug)]
struct Call {
    at: Instant,
    fingerprint: Fingerprint,
    delivery: Delivery,
}

type Script = dyn Fn(usize) -> Step + Send + Sync;

/// A publisher whose answer to its n-th call (from 0) a closure decides. It records every call and
/// tracks how many run at once, and its peak.
struct Scripted {
    script: Box<Script>,
    calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

impl Scripted {
    fn new(script: impl Fn(usize) -> Step + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    fn accepting(latency: Duration) -> Arc<Self> {
        Self::new(move |_| Step::Accept(latency))
    }

    fn failing(kind: ErrorKind, status: u16) -> Arc<Self> {
        Self::new(move |_| {
            Step::Fail(PublishError::new(kind, format!("scripted {status}")).with_status(status))
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn call_count(&self) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Publisher for Scripted {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async move {
            let index = {
                let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
                calls.push(Call {
                    at: Instant::now(),
                    fingerprint: request.alert.alert.fingerprint(),
                    delivery: request.delivery,
                });
                calls.len() - 1
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let _running = Running(&self.in_flight);
            match (self.script)(index) {
                Step::Accept(latency) => {
                    if latency.is_zero() {
                        // Yield once so that instant calls still overlap, as real I/O would.
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(latency).await;
                    }
                    Ok(Receipt::with_status(202))
                }
                Step::Fail(error) => Err(error),
                Step::Panic => panic!("a scripted publisher bug"),
            }
        })
    }
}

// === A store that signals its settlements ===

/// How many settlements a store has seen, per target.
#[derive(Clone, Debug, Default)]
struct Settled {
    acks: BTreeMap<String, usize>,
    reschedules: usize,
    dead: usize,
    failed_acks: usize,
}

impl Settled {
    fn acks(&self, target: &str) -> usize {
        self.acks.get(target).copied().unwrap_or(0)
    }
}

/// `MemoryJobStore`, with a watch channel that counts its settlements so tests wait on explicit
/// signals instead of sleeping.
#[derive(Debug)]
struct Signalling {
    inner: MemoryJobStore,
    owners: Mutex<BTreeMap<JobId, String>>,
    settled: watch::Sender<Settled>,
    /// How many of the next acks fail with a storage error.
    failing_acks: AtomicUsize,
    /// How long an ack takes to be answered, as a durable store's wait for its fsync.
    ack_latency: Mutex<Duration>,
    /// Jobs leased and not yet settled, and their peak.
    held: AtomicUsize,
    peak_held: AtomicUsize,
    /// Lease calls that returned jobs.
    leases: AtomicUsize,
}

impl Signalling {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryJobStore::new(100_000),
            owners: Mutex::new(BTreeMap::new()),
            settled: watch::Sender::new(Settled::default()),
            failing_acks: AtomicUsize::new(0),
            ack_latency: Mutex::new(Duration::ZERO),
            held: AtomicUsize::new(0),
            peak_held: AtomicUsize::new(0),
            leases: AtomicUsize::new(0),
        })
    }

    fn set_ack_latency(&self, latency: Duration) {
        *self
            .ack_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = latency;
    }

    fn settled_one(&self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    fn owner(&self, job: JobId) -> String {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&job)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (in virtual time) until `done` holds for the settlement counts.
    async fn until(&self, what: &str, done: impl Fn(&Settled) -> bool) -> Settled {
        let mut rx = self.settled.subscribe();
        let waited = tokio::time::timeout(PATIENCE, rx.wait_for(|s| done(s)))
            .await
            .map(|settled| settled.map(|s| s.clone()));
        match waited {
            Ok(Ok(settled)) => settled,
            _ => panic!("timed out waiting for {what}: {:?}", *self.settled.borrow()),
        }
    }

    async fn dead_letters(&self) -> Vec<alert_core::DeadLetter> {
        self.inner
            .dead_letters(&DeadLetterFilter::default(), None, 1000)
            .await
            .unwrap()
            .entries
    }

    async fn pending(&self, target: &str) -> u64 {
        let stats = self.inner.stats().await.unwrap();
        stats
            .by_target
            .iter()
            .find(|t| t.target == target)
            .map_or(0, |t| t.pending + t.leased)
    }
}

impl IngestQueue for Signalling {
    fn enqueue_batch<'a>(
        &'a self,
        batch: Vec<Admission>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<alert_core::Admitted>, JobStoreError>> {
        self.inner.enqueue_batch(batch, now)
    }
}

impl LaneQueue for Signalling {
    fn lease<'a>(
        &'a self,
        target: &'a TargetName,
        n: usize,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease, JobStoreError>> {
        Box::pin(async move {
            let lease = self.inner.lease(target, n, ttl, now).await?;
            let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
            for job in &lease.jobs {
                owners.insert(job.id, job.target.to_string());
            }
            if !lease.jobs.is_empty() {
                self.leases.fetch_add(1, Ordering::SeqCst);
            }
            let held = self.held.fetch_add(lease.jobs.len(), Ordering::SeqCst) + lease.jobs.len();
            self.peak_held.fetch_max(held, Ordering::SeqCst);
            Ok(lease)
        })
    }

    fn ack<'a>(
        &'a self,
        job: JobId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move {
            let fail = self
                .failing_acks
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if fail {
                self.settled.send_modify(|s| s.failed_acks += 1);
                return Err(JobStoreError::storage(
                    alert_core::StorageKind::Io,
                    "scripted disk failure",
                ));
            }
            let latency = *self
                .ack_latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            self.inner.ack(job, now).await?;
            self.settled_one();
            let owner = self.owner(job);
            self.settled
                .send_modify(|s| *s.acks.entry(owner).or_default() += 1);
            Ok(())
        })
    }

    fn reschedule<'a>(
        &'a self,
        job: JobId,
        how: Reschedule,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        Box::pin(async move {
            self.inner.reschedule(job, how, now).await?;
            self.settled_one();
            self.settled.send_modify(|s| s.reschedules += 1);
            Ok(())
        })
    }

    fn dead_letter<'a>(
        &'a self,
        job: JobId,
        kind: alert_core::TargetKind,
        reason: DeadReason,
        error: Option<JobError>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<DeadLetterId>, JobStoreError>> {
        Box::pin(async move {
            let id = self
                .inner
                .dead_letter(job, kind, reason, error, now)
                .await?;
            self.settled_one();
            self.settled.send_modify(|s| s.dead += 1);
            Ok(id)
        })
    }

    fn on_new_work(&self, announce: alert_core::NewWork) {
        self.inner.on_new_work(announce);
    }
}

impl DeadLetterQueue for Signalling {
    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        cursor: Option<&'a DeadLetterId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<DeadLetterPage, JobStoreError>> {
        self.inner.dead_letters(filter, cursor, limit)
    }

    fn replay<'a>(
        &'a self,
        id: &'a DeadLetterId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<JobId, JobStoreError>> {
        self.inner.replay(id, now)
    }

    fn purge<'a>(&'a self, id: &'a DeadLetterId) -> BoxFuture<'a, Result<(), JobStoreError>> {
        self.inner.purge(id)
    }
}

impl QueueMaintenance for Signalling {
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, JobStoreError>> {
        self.inner.stats()
    }

    fn sweep<'a>(
        &'a self,
        plan: &'a alert_core::SweepPlan,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<alert_core::SweepReport, JobStoreError>> {
        self.inner.sweep(plan, now)
    }

    fn dead_letter_target<'a>(
        &'a self,
        target: &'a TargetName,
        kind: alert_core::TargetKind,
        reason: DeadReason,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64, JobStoreError>> {
        self.inner.dead_letter_target(target, kind, reason, now)
    }
}

// === An observer that counts the dispatcher's hooks ===

#[derive(Debug, Default)]
struct Hooks {
    rescheduled: Mutex<Vec<bool>>,
    dead: Mutex<Vec<DeadReason>>,
}

impl PublishObserver for Hooks {
    fn on_job_rescheduled(&self, _target: &Target, consumed_attempt: bool) {
        self.rescheduled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(consumed_attempt);
    }

    fn on_job_dead_lettered(&self, _target: &Target, reason: DeadReason) {
        self.dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(reason);
    }
}

// === Fixtures ===

struct Rig {
    store: Arc<Signalling>,
    source: Arc<StaticTargetSource>,
    clock: Arc<TestClock>,
    hooks: Arc<Hooks>,
    gate: Arc<FakeGate>,
    health: Arc<MapHealth>,
    shutdown: CancellationToken,
    handle: DispatcherHandle,
    start: Instant,
}

fn target_entry(name: &str, publisher: &Arc<Scripted>) -> TargetEntry {
    entry(name, Arc::clone(publisher) as Arc<dyn Publisher>)
}

fn with_in_flight(mut entry: TargetEntry, limit: usize) -> TargetEntry {
    entry.target.in_flight_limit = Some(limit);
    entry
}

fn start(entries: Vec<TargetEntry>, config: DispatcherConfig) -> Rig {
    let store = Signalling::new();
    let source = Arc::new(StaticTargetSource::new(TargetSet::new(entries).unwrap()));
    let clock = Arc::new(TestClock::on_tokio_time(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let hooks = Arc::new(Hooks::default());
    let gate = Arc::new(FakeGate::default());
    let health = Arc::new(MapHealth::default());
    let shutdown = CancellationToken::new();
    let handle = Dispatcher::builder(store.clone(), source.clone())
        .gate(gate.clone())
        .health(health.clone())
        .observer(hooks.clone())
        .clock(clock.clone())
        .config(config)
        .build()
        .start(shutdown.clone());
    Rig {
        store,
        source,
        clock,
        hooks,
        gate,
        health,
        shutdown,
        handle,
        start: Instant::now(),
    }
}

impl Rig {
    /// Enqueues `count` distinct alerts for `target`, accepted `age` ago, and wakes its lane.
    async fn enqueue_aged(&self, target: &str, count: usize, tag: &str, age: Duration) {
        let name = TargetName::new(target).unwrap();
        let batch = (0..count)
            .map(|i| {
                let index = i.to_string();
                let a = alert(&[("alertname", "Dispatch"), ("job", tag), ("n", &index)]);
                Admission::new(name.clone(), a, None)
            })
            .collect();
        let now = self.clock.now() - chrono::Duration::from_std(age).unwrap();
        let admitted = self.store.enqueue_batch(batch, now).await.unwrap();
        assert!(admitted.iter().all(|a| a.is_enqueued()));
        self.handle.wake(&name);
    }

    async fn enqueue(&self, target: &str, count: usize, tag: &str) {
        self.enqueue_aged(target, count, tag, Duration::ZERO).await;
    }

    fn since_start(&self, at: Instant) -> Duration {
        at - self.start
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.handle.join())
            .await
            .expect("the dispatcher stops");
    }
}

fn config() -> DispatcherConfig {
    DispatcherConfig::default()
}

// === 1. Lanes are isolated ===

#[tokio::test(start_paused = true)]
async fn a_slow_target_fills_only_its_own_lane() {
    const JOBS: usize = 50;
    let fast_a = Scripted::accepting(10 * Duration::from_millis(1));
    let fast_b = Scripted::accepting(Duration::ZERO);
    // An hour is far beyond the attempt timeout: the slow target never answers in time.
    let slow = Scripted::accepting(3600 * SEC);
    let mut cfg = config();
    cfg.per_target_timeout = 60 * SEC;
    let rig = start(
        vec![
            target_entry("fast-a", &fast_a),
            target_entry("fast-b", &fast_b),
            with_in_flight(target_entry("slow", &slow), 4),
        ],
        cfg,
    );
    rig.enqueue("slow", JOBS, "slow").await;
    rig.enqueue("fast-a", JOBS, "a").await;
    rig.enqueue("fast-b", JOBS, "b").await;

    rig.store
        .until("both fast targets to deliver everything", |s| {
            s.acks("fast-a") == JOBS && s.acks("fast-b") == JOBS
        })
        .await;
    // The slow lane is still stuck on its first attempts: exactly its in-flight limit, none
    // finished, and none of them timed out yet.
    assert!(rig.since_start(Instant::now()) < 60 * SEC);
    assert_eq!(slow.call_count(), 4);
    assert_eq!(slow.in_flight.load(Ordering::SeqCst), 4);
    assert_eq!(rig.store.settled.borrow().acks("slow"), 0);
    assert_eq!(fast_a.call_count(), JOBS);
    assert_eq!(fast_b.call_count(), JOBS);
    let lanes = rig.handle.lanes();
    let slow_lane = lanes.iter().find(|l| l.name.as_str() == "slow").unwrap();
    assert_eq!(slow_lane.in_flight, 4);
    assert_eq!(rig.store.pending("slow").await, JOBS as u64);

    // Dropping the handle, instead of a graceful stop, aborts the lanes and their attempts.
    let Rig { handle, .. } = rig;
    drop(handle);
    settle_tasks().await;
    assert_eq!(slow.in_flight.load(Ordering::SeqCst), 0);
}

/// Lets every runnable task run, advancing virtual time by a millisecond.
async fn settle_tasks() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

// === 2. A 429 pauses the lane without consuming an attempt ===

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_the_lane_without_consuming_an_attempt() {
    let limited = Scripted::new(|index| {
        if index == 0 {
            Step::Fail(
                PublishError::new(
                    ErrorKind::RateLimited {
                        retry_after: Some(30 * SEC),
                    },
                    "slow down",
                )
                .with_status(429),
            )
        } else {
            Step::Accept(Duration::ZERO)
        }
    });
    let other = Scripted::accepting(Duration::ZERO);
    let rig = start(
        vec![
            target_entry("limited", &limited),
            target_entry("other", &other),
        ],
        config(),
    );
    rig.enqueue("limited", 1, "first").await;
    rig.store
        .until("the 429 to be rescheduled", |s| s.reschedules == 1)
        .await;
    let paused_at = rig.clock.now();
    settle_tasks().await;
    let paused = rig.handle.lanes();
    let lane = paused
        .iter()
        .find(|l| l.name.as_str() == "limited")
        .unwrap();
    assert_eq!(lane.reason, Some(PauseReason::RateLimited));
    assert_eq!(
        lane.paused_until,
        Some(paused_at + chrono::Duration::seconds(30))
    );

    // During the pause, a new job for the limited target waits, and the other target is served.
    tokio::time::sleep(5 * SEC).await;
    rig.enqueue("limited", 1, "second").await;
    rig.enqueue("other", 5, "other").await;
    rig.store
        .until("the other target to deliver", |s| s.acks("other") == 5)
        .await;
    assert!(rig.since_start(Instant::now()) < 6 * SEC);
    assert_eq!(limited.call_count(), 1, "no call during the pause");

    rig.store
        .until("the limited target to deliver both", |s| {
            s.acks("limited") == 2
        })
        .await;
    let calls = limited.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(rig.since_start(calls[0].at), Duration::ZERO);
    for call in &calls[1..] {
        assert_eq!(
            rig.since_start(call.at),
            30 * SEC,
            "resumes when Retry-After ends"
        );
    }
    // The retried job carries the same attempt number: the 429 consumed none.
    let retried = calls[1..]
        .iter()
        .find(|c| c.fingerprint == calls[0].fingerprint)
        .unwrap();
    assert_eq!(retried.delivery.attempt, calls[0].delivery.attempt);
    assert_eq!(retried.delivery.attempt, 1);
    assert_eq!(
        *rig.hooks.rescheduled.lock().unwrap(),
        vec![false],
        "rescheduled once, without consuming an attempt"
    );
    rig.stop().await;
}

// === 3. The token bucket ===

#[tokio::test(start_paused = true)]
async fn the_rate_limit_holds_over_every_window() {
    const JOBS: usize = 200;
    let limited = Scripted::accepting(Duration::ZERO);
    let mut limited_entry = target_entry("limited", &limited);
    limited_entry.target.rate_limit = Some(RateLimit { per_minute: 60 });
    let rig = start(vec![limited_entry], config());
    rig.enqueue("limited", JOBS, "flood").await;
    rig.store
        .until("every job to be delivered", |s| s.acks("limited") == JOBS)
        .await;

    let times: Vec<Duration> = limited
        .calls()
        .iter()
        .map(|c| rig.since_start(c.at))
        .collect();
    assert_eq!(times.len(), JOBS);
    // Capacity is max(1, ceil(60 / 60)) = 1 token.
    let bound = 60 + 1;
    let mut busiest = 0;
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|t| **t < *start + 60 * SEC)
            .count();
        busiest = busiest.max(in_window);
    }
    assert!(busiest <= bound, "{busiest} calls in one 60 s window");
    // Close to the limit, not far below: one call a second after the first token.
    assert!(busiest >= 60, "only {busiest} calls in the busiest window");
    let last = *times.last().unwrap();
    assert!(
        last >= 198 * SEC && last <= 200 * SEC,
        "200 calls at 1/s took {last:?}"
    );
    rig.stop().await;
}

// === 4. The in-flight limit ===

#[tokio::test(start_paused = true)]
async fn the_in_flight_limit_is_never_exceeded() {
    const JOBS: usize = 100;
    let publisher = Scripted::accepting(100 * Duration::from_millis(1));
    let rig = start(
        vec![with_in_flight(target_entry("bounded", &publisher), 4)],
        config(),
    );
    rig.enqueue("bounded", JOBS, "many").await;
    rig.store
        .until("every job to be delivered", |s| s.acks("bounded") == JOBS)
        .await;
    assert_eq!(publisher.peak.load(Ordering::SeqCst), 4);
    assert_eq!(publisher.call_count(), JOBS);
    // Four at a time, 100 ms each: the lane keeps its slots full rather than going one by one.
    assert!(rig.since_start(Instant::now()) <= 2600 * Duration::from_millis(1));
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_lane_leases_half_its_slots_at_a_time() {
    const JOBS: usize = 320;
    // Calls that end at staggered times, as a fast target's do: two slots free every
    // millisecond (the timer's grain).
    let publisher = Scripted::new(|i| Step::Accept(Duration::from_millis(1 + i as u64 % 8)));
    let rig = start(
        vec![with_in_flight(target_entry("fast", &publisher), 16)],
        config(),
    );
    rig.enqueue("fast", JOBS, "many").await;
    rig.store
        .until("every job to be delivered", |s| s.acks("fast") == JOBS)
        .await;
    assert_eq!(publisher.peak.load(Ordering::SeqCst), 16);
    // Leasing whatever is free at each end made 88 store calls here; half the slots (eight)
    // at a time makes at most 320 / 8.
    let leases = rig.store.leases.load(Ordering::SeqCst);
    assert!(leases <= JOBS / 8, "{leases} leases for {JOBS} jobs");
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_free_slot_beside_hanging_calls_is_filled_within_the_linger() {
    // Fifteen calls hang for an hour; the sixteenth slot stays free.
    let publisher =
        Scripted::new(|i| Step::Accept(if i < 15 { 3600 * SEC } else { Duration::ZERO }));
    let mut cfg = config();
    cfg.per_target_timeout = 7200 * SEC;
    let rig = start(
        vec![with_in_flight(target_entry("busy", &publisher), 16)],
        cfg,
    );
    rig.enqueue("busy", 15, "hanging").await;
    while publisher.call_count() < 15 {
        settle_tasks().await;
    }
    tokio::time::sleep(10 * SEC).await;
    let sent = Instant::now();
    rig.enqueue("busy", 1, "one-more").await;
    rig.store
        .until("the sixteenth job to be delivered", |s| s.acks("busy") == 1)
        .await;
    let calls = publisher.calls();
    let waited = calls[15].at - sent;
    assert!(
        waited <= Duration::from_millis(5),
        "the free slot was filled {waited:?} after the job came"
    );
    let Rig { handle, .. } = rig;
    drop(handle);
    settle_tasks().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_frees_its_slot_when_answered_while_its_ack_waits_for_the_disk() {
    const JOBS: usize = 40;
    let publisher = Scripted::accepting(100 * Duration::from_millis(1));
    let rig = start(
        vec![with_in_flight(target_entry("durable", &publisher), 4)],
        config(),
    );
    // Each ack takes a second to be answered, as a store waiting for its fsync would.
    rig.store.set_ack_latency(SEC);
    rig.enqueue("durable", JOBS, "slow-acks").await;
    rig.store
        .until("every job to be acked", |s| s.acks("durable") == JOBS)
        .await;
    // Never more than four calls, and never more than sixteen jobs held: four in calls and
    // twelve waiting for their acks.
    assert_eq!(publisher.peak.load(Ordering::SeqCst), 4);
    assert_eq!(rig.store.peak_held.load(Ordering::SeqCst), 16);
    // Sixteen jobs per 1.1 s (a 100 ms call, then a 1 s ack) is about 3.3 s for forty; a slot
    // held until its ack is answered would make it four per 1.1 s, 11 s.
    let took = rig.since_start(Instant::now());
    assert!(
        took <= 3500 * Duration::from_millis(1),
        "forty jobs took {took:?}"
    );
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_attempt_ends_alone_and_its_job_is_delivered_again() {
    // The first call panics while the second is still waiting for its target's answer.
    let publisher = Scripted::new(|n| match n {
        0 => Step::Panic,
        1 => Step::Accept(2 * SEC),
        _ => Step::Accept(Duration::ZERO),
    });
    let rig = start(vec![target_entry("fragile", &publisher)], config());
    rig.enqueue("fragile", 2, "fragile").await;
    rig.store
        .until("both jobs to be acked", |s| s.acks("fragile") == 2)
        .await;
    // The second call was not disturbed: it finished and was acked, and only the panicked job
    // was delivered again, once its lease expired. Had the panic taken the lane down, the
    // second call would have been dropped and made again too.
    let calls = publisher.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[2].fingerprint, calls[0].fingerprint);
    let lanes = rig.handle.lanes();
    assert_eq!(lanes[0].in_flight, 0, "the panicked call freed its slot");
    rig.stop().await;
}

// === 5. Retries, the dead-letter queue, gates and expiry ===

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_and_end_exhausted() {
    let publisher = Scripted::failing(ErrorKind::Transient, 503);
    let cfg = config();
    let rig = start(vec![target_entry("flaky", &publisher)], cfg.clone());
    rig.enqueue("flaky", 1, "flaky").await;
    rig.store.until("the job to die", |s| s.dead == 1).await;

    let calls = publisher.calls();
    assert_eq!(calls.len(), cfg.max_attempts as usize);
    let attempts: Vec<u32> = calls.iter().map(|c| c.delivery.attempt).collect();
    assert_eq!(attempts, (1..=cfg.max_attempts).collect::<Vec<_>>());
    // Each gap is a full-jitter draw under the doubling ceiling of 1 s, 2 s, 4 s, ...
    for (n, pair) in calls.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let ceiling = SEC * (1 << n);
        assert!(gap <= ceiling, "gap {n} was {gap:?}, over {ceiling:?}");
    }
    // Full jitter spreads the seven backoffs (ceilings 1 s to 64 s) over about a minute; all of
    // them adding up to under a second is vanishingly unlikely unless nothing backs off at all.
    let span = calls.last().unwrap().at - calls[0].at;
    assert!(span >= SEC, "seven backoffs took only {span:?}");
    let dead = rig.store.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadReason::Exhausted);
    assert_eq!(dead[0].attempts, cfg.max_attempts);
    let last = dead[0].last_error.as_ref().unwrap();
    assert_eq!(
        (last.kind, last.status_code),
        (ErrorKind::Transient, Some(503))
    );
    assert_eq!(
        *rig.hooks.rescheduled.lock().unwrap(),
        vec![true; cfg.max_attempts as usize - 1]
    );
    assert_eq!(*rig.hooks.dead.lock().unwrap(), vec![DeadReason::Exhausted]);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_goes_straight_to_the_dead_letter_queue() {
    let publisher = Scripted::failing(
        ErrorKind::Permanent {
            reason: PermanentReason::Auth,
        },
        401,
    );
    let rig = start(vec![target_entry("denied", &publisher)], config());
    rig.enqueue("denied", 1, "denied").await;
    rig.store.until("the job to die", |s| s.dead == 1).await;
    assert_eq!(publisher.call_count(), 1);
    let dead = rig.store.dead_letters().await;
    assert_eq!(dead[0].reason, DeadReason::Permanent);
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].last_error.as_ref().unwrap().status_code, Some(401));
    assert_eq!(rig.store.settled.borrow().reschedules, 0);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_delays_without_consuming_attempts() {
    let publisher = Scripted::accepting(Duration::ZERO);
    let rig = start(vec![target_entry("broken", &publisher)], config());
    rig.gate.set("broken", CircuitState::Open);
    rig.enqueue("broken", 3, "held").await;
    tokio::time::sleep(120 * SEC).await;
    assert_eq!(
        publisher.call_count(),
        0,
        "no call while the breaker is open"
    );
    // The lane leased nothing: the breaker delayed the jobs without even a rejected attempt.
    assert_eq!(rig.store.settled.borrow().reschedules, 0);
    let lanes = rig.handle.lanes();
    assert_eq!(lanes[0].reason, Some(PauseReason::CircuitOpen));
    assert!(lanes[0].paused_until.is_some());
    assert_eq!(rig.store.pending("broken").await, 3);

    rig.gate.set("broken", CircuitState::Closed);
    rig.store
        .until("the held jobs to be delivered", |s| s.acks("broken") == 3)
        .await;
    assert!(publisher.calls().iter().all(|c| c.delivery.attempt == 1));
    // The lane looked again within a second of the breaker closing.
    let first = publisher.calls()[0].at;
    assert!(rig.since_start(first) <= 121 * SEC);
    assert_eq!(rig.handle.lanes()[0].reason, None);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn jobs_older_than_max_age_expire_without_a_call() {
    let publisher = Scripted::accepting(Duration::ZERO);
    let mut cfg = config();
    cfg.max_age = 3600 * SEC;
    let rig = start(vec![target_entry("late", &publisher)], cfg);
    rig.enqueue_aged("late", 2, "old", 2 * 3600 * SEC).await;
    rig.enqueue("late", 1, "fresh").await;
    rig.store
        .until("the old jobs to die and the fresh one to go", |s| {
            s.dead == 2 && s.acks("late") == 1
        })
        .await;
    assert_eq!(publisher.call_count(), 1);
    let dead = rig.store.dead_letters().await;
    assert!(dead.iter().all(|d| d.reason == DeadReason::Expired));
    assert_eq!(
        *rig.hooks.dead.lock().unwrap(),
        vec![DeadReason::Expired, DeadReason::Expired]
    );
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_target_gets_one_attempt_per_recheck() {
    let publisher = Scripted::accepting(Duration::ZERO);
    let cfg = config();
    let rig = start(vec![target_entry("sick", &publisher)], cfg.clone());
    rig.health.set("sick", alert_core::HealthStatus::Unhealthy);
    rig.enqueue("sick", 4, "sick").await;
    rig.store
        .until("the jobs to trickle through", |s| s.acks("sick") == 4)
        .await;
    assert_eq!(publisher.peak.load(Ordering::SeqCst), 1);
    let times: Vec<Duration> = publisher
        .calls()
        .iter()
        .map(|c| rig.since_start(c.at))
        .collect();
    let expected: Vec<Duration> = (0..4).map(|i| cfg.unhealthy_recheck * i).collect();
    assert_eq!(times, expected, "one attempt per unhealthy_recheck");
    assert_eq!(rig.handle.lanes()[0].reason, Some(PauseReason::Unhealthy));

    // Once the target is healthy again, the lane runs at full speed.
    rig.health.set("sick", alert_core::HealthStatus::Healthy);
    rig.enqueue("sick", 10, "healed").await;
    rig.store
        .until("the rest to go at once", |s| s.acks("sick") == 14)
        .await;
    assert_eq!(publisher.peak.load(Ordering::SeqCst), 10);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_delays_the_settlement_but_never_loses_it() {
    let publisher = Scripted::accepting(Duration::ZERO);
    let rig = start(vec![target_entry("steady", &publisher)], config());
    rig.store.failing_acks.store(3, Ordering::SeqCst);
    rig.enqueue("steady", 1, "steady").await;
    let settled = rig
        .store
        .until("the ack to get through", |s| s.acks("steady") == 1)
        .await;
    assert_eq!(settled.failed_acks, 3);
    // The settlement was retried, not the call.
    assert_eq!(publisher.call_count(), 1);
    assert_eq!(rig.store.pending("steady").await, 0);
    rig.stop().await;
}

// === 6. Lanes follow the target source ===

#[tokio::test(start_paused = true)]
async fn lanes_follow_the_target_source() {
    let first = Scripted::accepting(Duration::ZERO);
    let later = Scripted::accepting(Duration::ZERO);
    let rig = start(vec![target_entry("first", &first)], config());
    rig.enqueue("later", 2, "later").await;
    rig.enqueue("first", 2, "first").await;
    rig.store
        .until("the first target to deliver", |s| s.acks("first") == 2)
        .await;
    assert_eq!(later.call_count(), 0);
    assert_eq!(rig.handle.lanes().len(), 1);

    // A target added later gets a lane, which finds the jobs already waiting for it.
    rig.source.replace(
        TargetSet::new(vec![
            target_entry("first", &first),
            target_entry("later", &later),
        ])
        .unwrap(),
    );
    rig.store
        .until("the added target to deliver", |s| s.acks("later") == 2)
        .await;

    // A disabled target's lane stops; its jobs stay pending in the store.
    let disabled = target_entry("first", &first);
    let disabled = TargetEntry::new(
        disabled
            .target
            .with_disabled(Some(DisabledReason::Configured)),
        disabled.publisher,
    );
    rig.source
        .replace(TargetSet::new(vec![disabled, target_entry("later", &later)]).unwrap());
    settle_tasks().await;
    rig.enqueue("first", 3, "paused").await;
    rig.enqueue("later", 1, "still").await;
    rig.store
        .until("the enabled target to keep delivering", |s| {
            s.acks("later") == 3
        })
        .await;
    tokio::time::sleep(60 * SEC).await;
    assert_eq!(first.call_count(), 2, "a disabled target is not called");
    assert_eq!(rig.store.pending("first").await, 3);
    let lanes = rig.handle.lanes();
    let first_lane = lanes.iter().find(|l| l.name.as_str() == "first").unwrap();
    assert_eq!(first_lane.reason, Some(PauseReason::Disabled));
    rig.stop().await;
}

// === Idle targets hold no lane ===

#[tokio::test(start_paused = true)]
async fn an_idle_targets_lane_ends_and_its_next_job_starts_another() {
    let publishers: Vec<Arc<Scripted>> = (0..50)
        .map(|_| Scripted::accepting(Duration::ZERO))
        .collect();
    let entries = publishers
        .iter()
        .enumerate()
        .map(|(i, p)| target_entry(&format!("t{i}"), p))
        .collect();
    let rig = start(entries, config());
    settle_tasks().await;
    // A lane that never had a job ends at its first lease that finds none: the start makes no
    // task per target that outlives it.
    assert_eq!(rig.handle.running_lanes(), 0);

    // Each job starts its target's lane again, whether the lane has ended by then (every third
    // round), is ending as the job comes (the rounds whose job comes as the idle poll ends),
    // or still runs (the others): a lane that has had a job waits an idle poll before it ends,
    // so a trickle of jobs keeps it.
    for round in 0..60 {
        rig.enqueue("t7", 1, &format!("round-{round}")).await;
        rig.store
            .until("the job to be delivered", |s| s.acks("t7") == round + 1)
            .await;
        match round % 3 {
            0 => {
                tokio::time::sleep(config().idle_poll * 2).await;
                assert_eq!(rig.handle.running_lanes(), 0, "round {round}");
            }
            1 => tokio::time::sleep(config().idle_poll).await,
            _ => {}
        }
    }
    assert_eq!(publishers[7].call_count(), 60);
    assert!(
        publishers
            .iter()
            .enumerate()
            .all(|(i, p)| i == 7 || p.call_count() == 0)
    );
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lane_with_a_retry_to_come_stays_until_it_is_delivered() {
    let flaky = Scripted::new(|n| {
        if n == 0 {
            Step::Fail(PublishError::new(ErrorKind::Transient, "scripted 503").with_status(503))
        } else {
            Step::Accept(Duration::ZERO)
        }
    });
    let rig = start(vec![target_entry("flaky", &flaky)], config());
    rig.enqueue("flaky", 1, "retry").await;
    rig.store
        .until("the failed attempt to be rescheduled", |s| {
            s.reschedules == 1
        })
        .await;
    settle_tasks().await;
    // The job waits for its backoff in the store: the lane waits with it.
    assert_eq!(rig.handle.running_lanes(), 1);
    rig.store
        .until("the retry to be delivered", |s| s.acks("flaky") == 1)
        .await;
    tokio::time::sleep(config().idle_poll * 2).await;
    assert_eq!(rig.handle.running_lanes(), 0);
    assert_eq!(flaky.call_count(), 2);
    rig.stop().await;
}

// === Shutdown ===

#[tokio::test(start_paused = true)]
async fn shutdown_lets_attempts_in_flight_finish() {
    let publisher = Scripted::accepting(5 * SEC);
    let rig = start(
        vec![with_in_flight(target_entry("steady", &publisher), 2)],
        config(),
    );
    rig.enqueue("steady", 5, "steady").await;
    tokio::time::sleep(SEC).await;
    assert_eq!(publisher.call_count(), 2);
    let store = rig.store.clone();
    rig.stop().await;
    // The two attempts in flight finished and were acknowledged; nothing new started.
    assert_eq!(store.settled.borrow().acks("steady"), 2);
    assert_eq!(publisher.call_count(), 2);
    assert_eq!(store.pending("steady").await, 3);
}

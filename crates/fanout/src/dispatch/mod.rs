//! The dispatcher: delivers queued jobs, one lane per target.
//!
//! Ingest commits jobs to a [`JobStore`](alert_core::JobStore), which tells the target's lane
//! ([`LaneQueue::on_new_work`]). Each lane is layered from
//! the outside in, as the style guide's per-target stack: gate (breaker, health, a 429 pause; a
//! delay, never a failure) → rate limit (a token bucket) → in-flight limit → [`TargetCall`]. It
//! settles every job it leases exactly once: ack, reschedule (with backoff, or without consuming
//! an attempt when a gate delayed it) or dead-letter. The in-flight limit bounds the calls; a
//! job whose call has ended waits for its settlement outside it, so a store that answers acks
//! once they are on disk does not idle the target, but within four times the limit, which
//! bounds what a crash delivers again.
//!
//! The supervisor task owns every lane in a `JoinSet`, and each lane owns its attempts in a
//! `JoinSet` of its own, so dropping the [`DispatcherHandle`] aborts everything and no task
//! outlives the dispatcher.
//!
//! [`TargetCall`]: crate::TargetCall

mod backoff;
mod lane;
mod rate;
mod settle;
mod supervisor;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{
    AlwaysClosed, CircuitGate, Clock, HealthView, LaneQueue, NoopObserver, PublishObserver,
    SystemClock, TargetKind, TargetName, TargetSource, UnknownHealth,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use rate::default_rate_limit;

// === Configuration ===

/// The dispatcher's settings. Every field has a documented default ([`Default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// Calls a lane makes at once to a target without its own `in_flight_limit` (16). The lane
    /// holds at most four times as many leased jobs: those whose call has ended wait there for
    /// their settlement to be durable.
    pub default_in_flight: usize,
    /// Attempts before a transiently failing job is dead-lettered as exhausted (8).
    pub max_attempts: u32,
    /// The first retry's backoff ceiling; it doubles per attempt (1 s).
    pub initial_backoff: Duration,
    /// The backoff cap. It also caps breaker delays and `Retry-After` pauses (5 min).
    pub max_backoff: Duration,
    /// Jobs older than this are dead-lettered as expired, without a call (24 h).
    pub max_age: Duration,
    /// The per-attempt timeout, unless the target sets its own (10 s).
    pub per_target_timeout: Duration,
    /// How long a leased job stays reserved for its lane (3 × `per_target_timeout`). A lane
    /// leases for at least three times the target's own timeout, so an attempt never outlives
    /// its lease.
    pub lease_ttl: Duration,
    /// How often an idle lane polls the store without a wake-up (1 s).
    pub idle_poll: Duration,
    /// How often a lane of an unhealthy target lets one attempt through (5 s).
    pub unhealthy_recheck: Duration,
    /// The first pause after a 429 without `Retry-After` (30 s); each further one in a row
    /// doubles it, up to `max_backoff`.
    pub rate_limit_backoff: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        let per_target_timeout = Duration::from_secs(10);
        Self {
            default_in_flight: 16,
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(24 * 60 * 60),
            per_target_timeout,
            lease_ttl: per_target_timeout * 3,
            idle_poll: Duration::from_secs(1),
            unhealthy_recheck: Duration::from_secs(5),
            rate_limit_backoff: Duration::from_secs(30),
        }
    }
}

// === Lane status ===

/// Why a lane is not leasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PauseReason {
    /// The target's circuit breaker is open.
    CircuitOpen,
    /// The target answered 429; the lane waits out its `Retry-After`.
    RateLimited,
    /// The target is unhealthy: one attempt at a time, once per `unhealthy_recheck`.
    Unhealthy,
    /// The target is disabled; its jobs wait in the store.
    Disabled,
}

impl PauseReason {
    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit_open",
            Self::RateLimited => "rate_limited",
            Self::Unhealthy => "unhealthy",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lane as `/api/v1/queue` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LaneStatus {
    /// The target.
    pub name: TargetName,
    /// Its kind.
    pub kind: TargetKind,
    /// Calls to the target in flight now.
    pub in_flight: usize,
    /// Until when the lane is paused, when the pause has an end.
    #[serde(with = "alert_core::wire::timestamp_opt")]
    pub paused_until: Option<DateTime<Utc>>,
    /// Why the lane is paused, when it is.
    pub reason: Option<PauseReason>,
}

/// A lane's pause, as its lane last wrote it.
#[derive(Clone, Copy, Debug, Default)]
struct Pause {
    until: Option<DateTime<Utc>>,
    reason: Option<PauseReason>,
}

/// What the handle and a target's lane share: the wake-up, the in-flight count and the status.
/// It outlives a lane that is stopped and restarted, or that ended because its target had no
/// job, so a wake-up is never lost to a restart.
#[derive(Debug)]
struct LaneShared {
    wake: Notify,
    /// Set by each wake-up, cleared by the lane before each lease: whether work may have come
    /// that the lane's last lease did not see.
    work: AtomicBool,
    /// Whether a lane runs for the target: set by the supervisor as it starts one, cleared by a
    /// lane that ends because its target has no job ([`lane::LaneEnd::Drained`]).
    running: AtomicBool,
    /// Whether a request to start a lane is on its way to the supervisor.
    start_requested: AtomicBool,
    /// A call has ended, so the lane may have a slot free.
    call_ended: Notify,
    in_flight: AtomicUsize,
    kind: Mutex<TargetKind>,
    pause: Mutex<Pause>,
}

impl LaneShared {
    fn new(kind: TargetKind) -> Self {
        Self {
            wake: Notify::new(),
            work: AtomicBool::new(false),
            running: AtomicBool::new(false),
            start_requested: AtomicBool::new(false),
            call_ended: Notify::new(),
            in_flight: AtomicUsize::new(0),
            kind: Mutex::new(kind),
            pause: Mutex::new(Pause::default()),
        }
    }

    fn set_pause(&self, until: Option<DateTime<Utc>>, reason: Option<PauseReason>) {
        *self.pause.lock().unwrap_or_else(PoisonError::into_inner) = Pause { until, reason };
    }

    fn set_kind(&self, kind: TargetKind) {
        *self.kind.lock().unwrap_or_else(PoisonError::into_inner) = kind;
    }

    fn status(&self, name: &TargetName) -> LaneStatus {
        let pause = *self.pause.lock().unwrap_or_else(PoisonError::into_inner);
        LaneStatus {
            name: name.clone(),
            kind: *self.kind.lock().unwrap_or_else(PoisonError::into_inner),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            paused_until: pause.until,
            reason: pause.reason,
        }
    }
}

/// The lanes the handle can see, by target name. The supervisor adds and removes entries; the
/// lock is only ever held for a map operation, never across an await.
type Registry = Arc<Mutex<BTreeMap<TargetName, Arc<LaneShared>>>>;

/// Targets whose lane a wake-up found not running, for the supervisor to start one. A target is
/// on its way at most once at a time (`LaneShared::start_requested`), so the channel holds at
/// most one message per configured target.
type StartRequests = mpsc::UnboundedSender<TargetName>;

/// Everything a lane and its attempts need, shared by all lanes.
struct Context {
    store: Arc<dyn LaneQueue>,
    gate: Arc<dyn CircuitGate>,
    health: Arc<dyn HealthView>,
    observer: Arc<dyn PublishObserver>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
}

// === Dispatcher ===

/// Delivers queued jobs: one lane per enabled target, following the target source.
///
/// Build it with [`Dispatcher::builder`], then [`start`](Dispatcher::start) it with a shutdown
/// token; the returned [`DispatcherHandle`] wakes lanes, reports their status, and joins them.
pub struct Dispatcher {
    context: Arc<Context>,
    source: Arc<dyn TargetSource>,
}

/// Builds a [`Dispatcher`].
pub struct DispatcherBuilder {
    store: Arc<dyn LaneQueue>,
    source: Arc<dyn TargetSource>,
    health: Arc<dyn HealthView>,
    gate: Arc<dyn CircuitGate>,
    observer: Arc<dyn PublishObserver>,
    config: DispatcherConfig,
    clock: Option<Arc<dyn Clock>>,
}

impl DispatcherBuilder {
    /// Uses this health view (default: every target unknown).
    #[must_use]
    pub fn health(mut self, health: Arc<dyn HealthView>) -> Self {
        self.health = health;
        self
    }

    /// Uses this circuit gate (default: never open).
    #[must_use]
    pub fn gate(mut self, gate: Arc<dyn CircuitGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Uses this observer (default: none).
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn PublishObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Uses these settings (default: [`DispatcherConfig::default`]).
    #[must_use]
    pub fn config(mut self, config: DispatcherConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses this clock (default: [`SystemClock`]). Its wall time is what every store call is
    /// given, so a job is due when the clock that stamped it says so; give the dispatcher the
    /// clock ingest stamps jobs with. Its monotonic time times the lane's pauses and polls.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Builds the dispatcher.
    #[must_use]
    pub fn build(self) -> Dispatcher {
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock) as Arc<dyn Clock>);
        Dispatcher {
            context: Arc::new(Context {
                store: self.store,
                gate: self.gate,
                health: self.health,
                observer: self.observer,
                clock,
                config: self.config,
            }),
            source: self.source,
        }
    }
}

impl Dispatcher {
    /// Starts building a dispatcher over this store and these targets.
    #[must_use]
    pub fn builder(store: Arc<dyn LaneQueue>, source: Arc<dyn TargetSource>) -> DispatcherBuilder {
        DispatcherBuilder {
            store,
            source,
            health: Arc::new(UnknownHealth),
            gate: Arc::new(AlwaysClosed),
            observer: Arc::new(NoopObserver),
            config: DispatcherConfig::default(),
            clock: None,
        }
    }

    /// Spawns the supervisor, which starts a lane per enabled target. When `shutdown` is
    /// cancelled, lanes stop leasing, let their attempts in flight finish, and end.
    ///
    /// Must be called inside a tokio runtime.
    #[must_use]
    pub fn start(self, shutdown: CancellationToken) -> DispatcherHandle {
        let registry: Registry = Arc::default();
        let (starts, start_requests) = mpsc::unbounded_channel();
        // The store tells the lanes of new work itself, as soon as they can lease it.
        let waker = DispatcherWaker {
            registry: Arc::clone(&registry),
            starts: starts.clone(),
        };
        self.context
            .store
            .on_new_work(Arc::new(move |target: &TargetName| waker.wake(target)));
        let supervisor = supervisor::Supervisor::new(
            self.context,
            self.source,
            Arc::clone(&registry),
            start_requests,
            shutdown,
        );
        DispatcherHandle {
            registry,
            starts,
            task: Some(tokio::spawn(supervisor.run())),
        }
    }
}

/// A running dispatcher. Dropping it aborts the supervisor, and with it every lane and attempt;
/// cancel the shutdown token and [`join`](Self::join) it to stop gracefully.
pub struct DispatcherHandle {
    registry: Registry,
    starts: StartRequests,
    task: Option<JoinHandle<()>>,
}

impl DispatcherHandle {
    /// A cheap, cloneable handle that wakes lanes and reads their status, for the parts of a
    /// server (ingest, the queue API) that must not own the dispatcher.
    #[must_use]
    pub fn waker(&self) -> DispatcherWaker {
        DispatcherWaker {
            registry: self.registry.clone(),
            starts: self.starts.clone(),
        }
    }

    /// Wakes `target`'s lane; see [`DispatcherWaker::wake`].
    pub fn wake(&self, target: &TargetName) {
        self.waker().wake(target);
    }

    /// Every known target's lane; see [`DispatcherWaker::lanes`].
    #[must_use]
    pub fn lanes(&self) -> Vec<LaneStatus> {
        self.waker().lanes()
    }

    /// How many targets have a lane running now; see [`DispatcherWaker::running_lanes`].
    #[must_use]
    pub fn running_lanes(&self) -> usize {
        self.waker().running_lanes()
    }

    /// Waits for the supervisor and every lane to end, after the shutdown token was cancelled.
    /// Dropping this future (for example under a deadline) aborts whatever is still running.
    pub async fn join(mut self) {
        if let Some(task) = self.task.as_mut() {
            if let Err(err) = task.await
                && err.is_panic()
            {
                tracing::error!("the dispatcher's supervisor panicked");
            }
            self.task = None;
        }
    }
}

/// Wakes a running dispatcher's lanes and reads their status; see [`DispatcherHandle::waker`].
/// It does not keep the dispatcher running.
#[derive(Clone)]
pub struct DispatcherWaker {
    registry: Registry,
    starts: StartRequests,
}

impl std::fmt::Debug for DispatcherWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherWaker").finish_non_exhaustive()
    }
}

impl DispatcherWaker {
    /// Wakes `target`'s lane, so it leases now instead of at its next poll, and has the
    /// supervisor start one if the target's lane had ended for want of jobs. Never blocks; a
    /// target the dispatcher does not know is ignored.
    pub fn wake(&self, target: &TargetName) {
        let lane = self
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            .cloned();
        if let Some(lane) = lane {
            // The order matters against a lane that is ending (`Lane::may_end`): it clears
            // `running` and then looks at `work`, so either it sees this wake-up and stays, or
            // this sees it gone and asks for another.
            lane.work.store(true, Ordering::SeqCst);
            lane.wake.notify_one();
            if !lane.running.load(Ordering::SeqCst)
                && !lane.start_requested.swap(true, Ordering::SeqCst)
            {
                // The supervisor is gone only after shutdown, when no lane is wanted.
                let _ = self.starts.send(target.clone());
            }
        }
    }

    /// How many targets have a lane running now. A target with no job has none: its lane
    /// ended, and the next job starts one.
    #[must_use]
    pub fn running_lanes(&self) -> usize {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry
            .values()
            .filter(|lane| lane.running.load(Ordering::SeqCst))
            .count()
    }

    /// Every known target's lane, by name, including disabled targets (paused as
    /// [`PauseReason::Disabled`]).
    #[must_use]
    pub fn lanes(&self) -> Vec<LaneStatus> {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        registry
            .iter()
            .map(|(name, lane)| lane.status(name))
            .collect()
    }
}

impl Drop for DispatcherHandle {
    fn drop(&mut self) {
        // Aborting the supervisor drops its JoinSet of lanes, which aborts them, and each lane's
        // JoinSet of attempts with them.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for DispatcherHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherHandle")
            .field("lanes", &self.lanes().len())
            .finish_non_exhaustive()
    }
}

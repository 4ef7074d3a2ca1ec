//! Shared fixtures and fakes for alertpub's tests.
//!
//! - [`FakePublisher`]: an in-process publisher with controllable latency and outcome. It counts
//!   calls, tracks the in-flight count and its peak across a shared [`FakeStats`], and notices, via
//!   a drop guard, when an attempt is cancelled before it finishes.
//! - [`MapHealth`] and [`FakeGate`]: a health view and a circuit gate whose answers tests set.
//! - [`alert`] and [`entry`]: small builders for alerts and target entries.
//!
//! - [`MockTarget`]: a real HTTP server on 127.0.0.1 (optionally HTTPS with a certificate made at
//!   start-up) that records every request and answers as the test scripts it.

pub mod kind;
mod mock;
pub mod postgres;

pub use mock::{MockResponse, MockTarget, RecordedRequest, closed_port_url};

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{
    Alert, BoxFuture, CallOutcome, CircuitGate, CircuitState, EnrichedAlert, ErrorKind,
    GateDecision, GateOutcome, HealthStatus, HealthView, Labels, PublishError, PublishRequest,
    Publisher, Receipt, Target, TargetEntry, TargetKind, TargetName,
};

/// Builds a firing alert from label pairs.
///
/// # Panics
/// When `pairs` is empty.
#[must_use]
pub fn alert(pairs: &[(&str, &str)]) -> EnrichedAlert {
    let labels: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    EnrichedAlert::new(Alert::new(labels).expect("test alerts have labels"))
}

/// Builds a target entry of kind webhook.
///
/// # Panics
/// When `name` is not a valid target name.
#[must_use]
pub fn entry(name: &str, publisher: Arc<dyn Publisher>) -> TargetEntry {
    let target = Target::new(
        TargetName::new(name).expect("valid test target name"),
        TargetKind::Webhook,
    );
    TargetEntry::new(target, publisher)
}

/// Counters shared by one or more [`FakePublisher`]s.
#[derive(Debug, Default)]
pub struct FakeStats {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    completed: AtomicUsize,
    cancelled: AtomicUsize,
}

impl FakeStats {
    /// New shared counters.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Attempts started.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Attempts running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most attempts ever running at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Attempts that ran to their end.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    /// Attempts dropped before their end.
    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// What a [`FakePublisher`] answers.
#[derive(Clone, Debug, PartialEq)]
pub enum FakeOutcome {
    /// Success with this HTTP status.
    Accept(u16),
    /// This error.
    Fail(PublishError),
    /// Never answers.
    Hang,
}

/// An in-process publisher with a fixed latency and outcome.
#[derive(Debug)]
pub struct FakePublisher {
    latency: Duration,
    outcome: FakeOutcome,
    stats: Arc<FakeStats>,
}

impl FakePublisher {
    /// Accepts at once with 202.
    #[must_use]
    pub fn accept(stats: Arc<FakeStats>) -> Self {
        Self {
            latency: Duration::ZERO,
            outcome: FakeOutcome::Accept(202),
            stats,
        }
    }

    /// Fails at once with this kind and HTTP status.
    #[must_use]
    pub fn fail(stats: Arc<FakeStats>, kind: ErrorKind, status: u16) -> Self {
        let error = PublishError::new(kind, format!("fake failure {status}")).with_status(status);
        Self {
            latency: Duration::ZERO,
            outcome: FakeOutcome::Fail(error),
            stats,
        }
    }

    /// Never answers.
    #[must_use]
    pub fn hang(stats: Arc<FakeStats>) -> Self {
        Self {
            latency: Duration::ZERO,
            outcome: FakeOutcome::Hang,
            stats,
        }
    }

    /// Returns the publisher answering only after `latency` (on tokio's clock).
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Wraps it for a [`TargetEntry`].
    #[must_use]
    pub fn shared(self) -> Arc<dyn Publisher> {
        Arc::new(self)
    }
}

/// Decrements the in-flight count when an attempt ends, and counts it as cancelled if it had not
/// completed.
struct AttemptGuard<'s> {
    stats: &'s FakeStats,
    completed: bool,
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        let counter = if self.completed {
            &self.stats.completed
        } else {
            &self.stats.cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

impl Publisher for FakePublisher {
    fn publish<'a>(
        &'a self,
        _request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async move {
            let stats = &*self.stats;
            stats.calls.fetch_add(1, Ordering::SeqCst);
            let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
            let mut guard = AttemptGuard {
                stats,
                completed: false,
            };
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            } else {
                // Yield once so that even instant fakes overlap, as real I/O would.
                tokio::task::yield_now().await;
            }
            let result = match &self.outcome {
                FakeOutcome::Accept(status) => Ok(Receipt::with_status(*status)),
                FakeOutcome::Fail(error) => Err(error.clone()),
                FakeOutcome::Hang => std::future::pending().await,
            };
            guard.completed = true;
            result
        })
    }
}

/// A health view whose answers tests set; unset targets are unknown. It also counts passive
/// records.
#[derive(Debug, Default)]
pub struct MapHealth {
    statuses: Mutex<HashMap<String, HealthStatus>>,
    records: AtomicUsize,
}

impl MapHealth {
    /// Sets a target's status.
    pub fn set(&self, target: &str, status: HealthStatus) {
        self.statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.to_owned(), status);
    }

    /// How many outcomes were recorded.
    pub fn records(&self) -> usize {
        self.records.load(Ordering::SeqCst)
    }
}

impl HealthView for MapHealth {
    fn status(&self, target: &str) -> HealthStatus {
        let statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        statuses
            .get(target)
            .copied()
            .unwrap_or(HealthStatus::Unknown)
    }

    fn record(&self, _target: &str, _outcome: &CallOutcome) {
        self.records.fetch_add(1, Ordering::SeqCst);
    }
}

/// A circuit gate whose state tests set per target; it records every outcome it is given.
#[derive(Debug, Default)]
pub struct FakeGate {
    states: Mutex<HashMap<String, CircuitState>>,
    recorded: Mutex<Vec<(String, bool, GateOutcome)>>,
}

impl FakeGate {
    /// Sets a target's state. A half-open target allows trials; an open one rejects.
    pub fn set(&self, target: &str, state: CircuitState) {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.to_owned(), state);
    }

    /// Every recorded (target, trial, outcome).
    pub fn recorded(&self) -> Vec<(String, bool, GateOutcome)> {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CircuitGate for FakeGate {
    fn state(&self, target: &str) -> CircuitState {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.get(target).copied().unwrap_or(CircuitState::Closed)
    }

    fn acquire(&self, target: &str) -> GateDecision {
        match self.state(target) {
            CircuitState::Closed => GateDecision::Allow { trial: false },
            CircuitState::HalfOpen => GateDecision::Allow { trial: true },
            CircuitState::Open => GateDecision::Reject { retry_in: None },
        }
    }

    fn record(&self, target: &str, trial: bool, outcome: GateOutcome) {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((target.to_owned(), trial, outcome));
    }
}

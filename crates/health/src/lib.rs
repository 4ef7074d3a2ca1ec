//! Target health and per-target circuit breaking for alertpub (SPEC §4).
//!
//! The fan-out engine and the dispatcher route by two seams of `alert-core`, and this crate
//! implements both:
//! - [`HealthRegistry`] is the [`HealthView`](alert_core::HealthView): each target's
//!   [`TargetHealth`] (unknown, healthy, degraded or unhealthy, the failure count, the last success
//!   and failure, the success rate and the latency) in a `DashMap` keyed by target name. Two inputs
//!   feed it: every publish outcome (passive, through `HealthView::record`) and active probes.
//!   Three failures in a row make a target unhealthy; a success makes it healthy, or degraded when
//!   slow. Failures that are not the target's fault (a 429, a cancellation, a refused payload)
//!   change nothing.
//! - [`CircuitBreakers`] is the [`CircuitGate`](alert_core::CircuitGate): a breaker per target,
//!   closed → open after five consecutive failures → half-open after 30 s, letting exactly one
//!   trial through at a time → closed after two successful trials (a failed trial reopens it).
//!   Its state machine is pure, takes the time from an injected [`Clock`](alert_core::Clock), and is model-checked
//!   with loom and run under miri.
//! - [`Prober`] (feature `probes`, on by default) sends each target's [`HealthProbe`] — a `GET`
//!   through the shared `publisher-http` client — every `interval`, at most
//!   `max_concurrent_probes` at once, and on demand ([`Prober::check_now`]). Any HTTP answer means
//!   reachable; a 401 or 403 to a probe with credentials, or a body the probe's own check reads
//!   as refused credentials (Slack's `200 {"ok":false,"error":"invalid_auth"}`), means degraded
//!   (`auth`).
//!
//! Wiring it into the engine:
//!
//! ```
//! use std::sync::Arc;
//! use alert_core::{
//!     BoxFuture, PublishError, PublishRequest, Publisher, Receipt, StaticTargetSource, Target,
//!     TargetEntry, TargetKind, TargetName, TargetSet,
//! };
//! use health::{BreakerConfig, CircuitBreakers, HealthConfig, HealthRegistry};
//!
//! #[derive(Debug)]
//! struct Accept;
//! impl Publisher for Accept {
//!     fn publish<'a>(&'a self, _: PublishRequest<'a>) -> BoxFuture<'a, Result<Receipt, PublishError>> {
//!         Box::pin(async { Ok(Receipt::with_status(202)) })
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let target = Target::new(TargetName::new("ops-webhook")?, TargetKind::Webhook);
//! let source = Arc::new(StaticTargetSource::new(TargetSet::new(vec![TargetEntry::new(
//!     target,
//!     Arc::new(Accept),
//! )])?));
//! let health = Arc::new(HealthRegistry::new(HealthConfig::default())?);
//! let breakers = Arc::new(CircuitBreakers::new(BreakerConfig::default())?);
//! let engine = fanout::FanoutEngine::builder(source)
//!     .health(health.clone())
//!     .gate(breakers.clone())
//!     .build();
//! # drop(engine);
//! // Every call the engine makes now feeds `health` and `breakers`; the API reads them back.
//! assert!(health.snapshot().is_empty());
//! assert!(breakers.snapshot().is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! [`HealthProbe`]: alert_core::HealthProbe

mod breaker;
mod circuit;
mod error;
#[cfg(feature = "probes")]
mod probe;
mod state;
mod sync;

pub use breaker::BreakerConfig;
pub use circuit::{BreakerSnapshot, CircuitBreakers};
pub use error::ConfigError;
#[cfg(feature = "probes")]
pub use error::HealthError;
#[cfg(feature = "probes")]
pub use probe::{ProbeLookup, Prober};
pub use state::{
    DegradedReason, HealthConfig, HealthObserver, HealthRegistry, LastFailure, ProbeResult,
    TargetHealth,
};

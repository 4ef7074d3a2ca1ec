//! The parallel fan-out engine of alertpub.
//!
//! It depends on `alert-core` alone, and provides four pieces:
//! - [`select_targets`]: one pure function that decides, for an alert and the current targets,
//!   which to call and why every other one is skipped. The synchronous API and ingest share it.
//! - [`TargetCall`]: the single way a target is called. It asks the circuit gate, applies the
//!   per-attempt timeout, calls the publisher, records the outcome on the gate and the health view,
//!   and tells the observer. It never retries.
//! - [`FanoutEngine`]: calls every selected target at once, one attempt each, never more than
//!   `max_concurrent` at a time, within per-target and overall timeouts, and returns a
//!   [`ParallelPublishResult`] with one entry per target.
//!
//! - [`Dispatcher`]: delivers the jobs ingest committed to a [`JobStore`](alert_core::JobStore),
//!   one lane per enabled target that has jobs (an idle target's lane ends, and its next job
//!   starts another). Each lane is gate (breaker, health, a 429's `Retry-After`, all
//!   delays) → token-bucket rate limit → in-flight limit → [`TargetCall`], and settles every job
//!   once: ack, reschedule with full-jitter backoff, or dead-letter. Retries happen here and
//!   nowhere else, so a slow or broken target only ever fills its own lane.
//!
//! The engine spawns no task: dropping its future cancels every call in flight. The dispatcher's
//! tasks are all owned by its [`DispatcherHandle`]: dropping it aborts them.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use alert_core::{
//!     Alert, BoxFuture, EnrichedAlert, Labels, PublishError, PublishRequest, Publisher, Receipt,
//!     StaticTargetSource, Target, TargetEntry, TargetKind, TargetName, TargetSet,
//! };
//! use fanout::{FanoutEngine, PublishOptions};
//!
//! /// A publisher that accepts everything, standing in for a real one.
//! #[derive(Debug)]
//! struct Accept;
//! impl Publisher for Accept {
//!     fn publish<'a>(&'a self, _: PublishRequest<'a>) -> BoxFuture<'a, Result<Receipt, PublishError>> {
//!         Box::pin(async { Ok(Receipt::with_status(202)) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let entry = |name: &str| {
//!     let target = Target::new(TargetName::new(name).unwrap(), TargetKind::Webhook);
//!     TargetEntry::new(target, Arc::new(Accept))
//! };
//! let targets = TargetSet::new(vec![entry("ops-webhook"), entry("audit-webhook")]).unwrap();
//! let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(targets))).build();
//!
//! let labels: Labels = [("alertname".to_owned(), "DiskFull".to_owned())].into();
//! let alert = EnrichedAlert::new(Alert::new(labels).unwrap());
//! let result = engine.publish_to_all(&alert, &PublishOptions::default()).await.unwrap();
//! assert!(result.all_succeeded());
//! assert_eq!(result.success_count, 2);
//! # }
//! ```

mod call;
mod dispatch;
mod engine;
mod options;
mod result;
mod select;

pub use call::{CallResult, TargetCall};
pub use dispatch::{
    Dispatcher, DispatcherBuilder, DispatcherConfig, DispatcherHandle, DispatcherWaker, LaneStatus,
    PauseReason, default_rate_limit,
};
pub use engine::{EngineBuilder, FanoutEngine};
pub use options::{HealthStrategy, MAX_CONCURRENT_LIMIT, OptionsError, PublishOptions};
pub use result::{FanoutError, ParallelPublishResult, TargetOutcome, TargetResult};
pub use select::{Candidate, SelectError, Selected, Selection, SelectionPolicy, select_targets};
pub use tokio_util::sync::CancellationToken;

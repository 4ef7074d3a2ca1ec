//! Core types and traits of alertpub. This crate does no I/O.
//!
//! It plays the part `tower-service` plays for tower: everything else in the workspace speaks these
//! types, and the fan-out engine (`fanout`) depends on nothing but this crate.
//!
//! - [`Alert`] is an Alertmanager-compatible alert with its [`Fingerprint`]; [`EnrichedAlert`] adds an
//!   optional [`Classification`] and free-form enrichment.
//! - [`Target`] is one notification target: the fields common to every [`TargetKind`] plus opaque
//!   per-kind [`KindSettings`]. A [`TargetSet`] pairs each target with its [`Publisher`].
//! - [`ErrorKind`] is the one failure classification used in publish errors, results, metrics, the
//!   dead-letter queue and health. Retry decisions read it, never error text.
//! - [`Secret`] keeps credentials out of `Debug` and `Display`, and [`redact_url`] keeps URL paths,
//!   which often carry tokens, out of logs and API output.
//! - [`Matcher`] is an Alertmanager label matcher (`=`, `!=`, `=~`, `!~`, regexes fully anchored).
//! - [`Clock`] is the one clock every part reads (wall time for stamps, monotonic time for
//!   waits); the server builds one [`SystemClock`] and tests step a [`TestClock`].
//! - The traits [`Publisher`], [`HealthView`], [`TargetSource`], [`CircuitGate`] and
//!   [`PublishObserver`] are the seams the engine is built on.
//!
//! ```
//! use alert_core::{Alert, Labels};
//!
//! let labels: Labels = [("alertname", "DiskFull"), ("instance", "db-1")]
//!     .into_iter()
//!     .map(|(k, v)| (k.to_owned(), v.to_owned()))
//!     .collect();
//! let alert = Alert::new(labels).expect("at least one label");
//! assert_eq!(alert.fingerprint().to_string().len(), 16);
//! assert!(alert.is_firing_at(chrono::Utc::now()));
//! ```

mod alert;
mod clock;
mod error;
mod fingerprint;
mod gate;
mod health;
pub mod history;
pub mod job;
mod matcher;
mod message_ref;
mod observer;
mod publisher;
mod secret;
mod source;
mod target;
pub mod wire;

pub use alert::{
    Alert, AlertError, AlertStatus, Annotations, Classification, ClassificationError,
    EnrichedAlert, Labels, Severity,
};
pub use clock::{Clock, SystemClock, TestClock};
pub use error::{ErrorKind, PermanentReason, PublishError};
pub use fingerprint::Fingerprint;
pub use gate::{AlwaysClosed, CircuitGate, CircuitState, GateDecision, GateOutcome};
pub use health::{HealthStatus, HealthView, UnknownHealth};
pub use history::{
    AttemptOutcome, AttemptPath, DeliveryHistory, DeliveryRecord, HistoryFilter, HistoryPage,
    HistoryRetention,
};
pub use job::{
    Admission, Admitted, BrokenReason, DeadLetter, DeadLetterFilter, DeadLetterId, DeadLetterPage,
    DeadLetterQueue, DeadReason, IngestQueue, JobError, JobId, JobStore, JobStoreError, LaneQueue,
    Lease, LeasedJob, LogDecision, LogEntry, LogVerdict, NewWork, Priority, QueueMaintenance,
    QueueStats, Reschedule, StorageCause, StorageError, StorageKind, StoreCondition, StoreHealth,
    SweepAction, SweepPlan, SweepReport, TargetQueueStats, log_decision, log_verdict, sweep_action,
    sweep_due,
};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use message_ref::{InMemoryMessageRefs, MessageRef, MessageRefStore};
pub use observer::{
    AttemptEnded, CallOutcome, NoopObserver, ParallelOutcome, PublishObserver, SkipReason,
};
pub use publisher::{
    BoxFuture, BuildError, Delivery, HealthProbe, PublishRequest, Publisher, Receipt,
};
pub use secret::{Secret, redact_url};
pub use source::{StaticTargetSource, TargetSource};
pub use target::{
    DisabledReason, KindSettings, RateLimit, Target, TargetEntry, TargetKind, TargetName,
    TargetNameError, TargetSet, TargetSetError,
};

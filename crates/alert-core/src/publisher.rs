//! The trait every target kind implements.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::alert::{AlertStatus, EnrichedAlert};
use crate::error::PublishError;
use crate::secret::Secret;

/// A boxed, sendable future, as publishers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which delivery of an alert to a target this is.
///
/// The `sequence` comes from the notification log and changes only when a new notification is due
/// (a state change, a new occurrence or a `repeat_interval` reminder); `attempt` counts retries of
/// one delivery. Publishers derive idempotency keys from the sequence, so retries reuse a key and a
/// reminder gets a new one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// The notification log's delivery sequence for this (fingerprint, target).
    pub sequence: u64,
    /// The attempt number, starting at 1.
    pub attempt: u32,
}

impl Delivery {
    /// A delivery with this sequence and attempt.
    #[must_use]
    pub const fn new(sequence: u64, attempt: u32) -> Self {
        Self { sequence, attempt }
    }

    /// The first attempt of an unsequenced delivery, as the synchronous API makes.
    #[must_use]
    pub const fn first() -> Self {
        Self {
            sequence: 0,
            attempt: 1,
        }
    }
}

/// What a publisher is asked to send.
///
/// The status was decided when the job was made (ingest, the sweeper or the synchronous API), not
/// at send time: a firing job delivered late, after its `endsAt` passed during an outage, is
/// still a firing. A publisher never derives the status from the alert and the clock.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct PublishRequest<'a> {
    /// The alert.
    pub alert: &'a EnrichedAlert,
    /// The state to publish: firing, or resolved (with the alert's `endsAt` as the end, when it
    /// has one).
    pub status: AlertStatus,
    /// Which delivery this is.
    pub delivery: Delivery,
    /// The instant of this attempt, from the caller's one clock (the dispatcher's injected clock,
    /// or the synchronous publish's start): what a payload's timestamps and a signature's time
    /// say. Publishers read no clock of their own.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl<'a> PublishRequest<'a> {
    /// A request to send `alert` in `status` as `delivery`, attempted at `at`.
    #[must_use]
    pub const fn new(
        alert: &'a EnrichedAlert,
        status: AlertStatus,
        delivery: Delivery,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Self {
            alert,
            status,
            delivery,
            at,
        }
    }

    /// A request made at `now`: the alert's status then, derived from its `endsAt`, is the one
    /// it publishes. This is how a caller that makes a job and sends it at once (the synchronous
    /// API, a test) decides; a queued job keeps the status it was made with instead.
    #[must_use]
    pub fn made_at(
        alert: &'a EnrichedAlert,
        delivery: Delivery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Self::new(alert, alert.alert.status_at(now), delivery, now)
    }
}

/// What a target answered to a successful publish.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Receipt {
    /// The HTTP status, when the target speaks HTTP.
    pub status_code: Option<u16>,
    /// A reference the target returned for the message, such as a Slack `ts`.
    pub message_ref: Option<String>,
}

impl Receipt {
    /// A receipt with this HTTP status.
    #[must_use]
    pub const fn with_status(status_code: u16) -> Self {
        Self {
            status_code: Some(status_code),
            message_ref: None,
        }
    }
}

/// How to check that a target is reachable: a `GET` to `url` with `headers`.
///
/// Any HTTP answer means reachable (SaaS endpoints answer `GET` with 4xx or 405). A 401 or 403
/// to a probe that [`carries_credentials`](Self::carries_credentials) means the credentials are
/// wrong: the target is degraded with reason `auth`. So does an answer whose body
/// [`auth_refused`](Self::auth_refused) recognises, for a target that refuses credentials in the
/// body rather than the status (Slack answers `200 {"ok":false,"error":"invalid_auth"}`). The URL
/// and header values are secrets.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HealthProbe {
    /// The URL to `GET`.
    pub url: Secret<String>,
    /// Headers to send, such as `Authorization`; their values are secret.
    pub headers: Vec<(String, Secret<String>)>,
    /// Reads the answer's body (as far as the HTTP client's response-size limit lets it) and says
    /// whether it refuses the credentials, whatever the status. `None`: only 401 and 403 do.
    pub auth_refused: Option<fn(&[u8]) -> bool>,
}

impl HealthProbe {
    /// A probe of `url` with no headers.
    #[must_use]
    pub fn new(url: Secret<String>) -> Self {
        Self {
            url,
            headers: Vec::new(),
            auth_refused: None,
        }
    }

    /// Returns the probe with this header added.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: Secret<String>) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    /// Returns the probe with this check of the answer's body: `check(body)` is `true` when the
    /// body says the credentials are refused. It must be cheap and must not panic; it sees only
    /// the body, never the request's secrets.
    #[must_use]
    pub fn with_auth_refused(mut self, check: fn(&[u8]) -> bool) -> Self {
        self.auth_refused = Some(check);
        self
    }

    /// Whether the probe sends credentials, so that a 401 or 403 says they are wrong.
    #[must_use]
    pub fn carries_credentials(&self) -> bool {
        !self.headers.is_empty()
    }
}

/// Publishes one alert to one target, once.
///
/// A publisher makes exactly one attempt and classifies the outcome: it never retries (the
/// dispatcher does) and applies no timeout of its own beyond what its transport needs (the engine's
/// `TargetCall` applies the per-attempt timeout). Dropping the returned future must cancel the
/// attempt.
///
/// `Debug` is required so targets can be logged; implementations must keep credentials and URL
/// paths out of it (print `redact_url` forms, never the secrets).
pub trait Publisher: Send + Sync + std::fmt::Debug + 'static {
    /// Sends the alert and returns a receipt, or a classified error.
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>>;

    /// How active health checks reach this target; `None` when it cannot be probed.
    fn health_probe(&self) -> Option<HealthProbe> {
        None
    }
}

/// Why a publisher could not be built from its settings. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The settings do not match the kind's `Config`.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// A credential could not be read. The target loads disabled with reason `secret_unavailable`.
    #[error("secret `{field}` is unavailable: {reason}")]
    SecretUnavailable {
        /// The settings field that names the secret.
        field: String,
        /// Why, without the value.
        reason: String,
    },
    /// A URL setting is not an absolute http(s) URL.
    #[error("`{field}` is not an absolute http or https URL: {url}")]
    InvalidUrl {
        /// The settings field.
        field: &'static str,
        /// The URL, redacted.
        url: String,
    },
    /// A template does not compile.
    #[error("template: {0}")]
    Template(String),
}

impl BuildError {
    /// Whether the target should load disabled with reason `secret_unavailable`.
    #[must_use]
    pub fn is_secret_unavailable(&self) -> bool {
        matches!(self, Self::SecretUnavailable { .. })
    }
}

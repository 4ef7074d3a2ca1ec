//! The one failure classification used everywhere.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a permanent failure will not succeed on retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PermanentReason {
    /// The target rejected the credentials (401 or 403, or an equivalent in the body).
    Auth,
    /// The target rejected the request as malformed (400, 422 and other 4xx).
    BadRequest,
    /// The endpoint does not exist (404, 410).
    NotFound,
    /// The payload could not be built or is too large for the target (413, formatting errors).
    Payload,
    /// The target is misconfigured on our side, so no request could be made.
    Config,
}

impl PermanentReason {
    /// The snake_case wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::BadRequest => "bad_request",
            Self::NotFound => "not_found",
            Self::Payload => "payload",
            Self::Config => "config",
        }
    }
}

/// How a publish attempt failed. Retry decisions, metrics, health and the dead-letter queue all read
/// this, never error text.
///
/// It serialises as an object with a `kind` tag, for example `{"kind":"transient"}`,
/// `{"kind":"rate_limited","retry_after_ms":2000}` or `{"kind":"permanent","reason":"auth"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A failure that may pass: network errors, 408 and 5xx.
    Transient,
    /// The target asked us to slow down (429), optionally saying when to come back.
    RateLimited {
        /// The `Retry-After` the target sent, when it sent one.
        #[serde(
            rename = "retry_after_ms",
            with = "crate::wire::duration_ms_opt",
            default
        )]
        retry_after: Option<Duration>,
    },
    /// A failure that retrying will not fix.
    Permanent {
        /// Why it is permanent.
        reason: PermanentReason,
    },
    /// The attempt did not finish within its timeout.
    Timeout,
    /// The attempt was cancelled before it finished.
    Cancelled,
}

impl ErrorKind {
    /// The kind's name alone, as used for metric labels: `transient`, `rate_limited`,
    /// `permanent`, `timeout` or `cancelled`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::RateLimited { .. } => "rate_limited",
            Self::Permanent { .. } => "permanent",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether another attempt could succeed. Permanent failures are not retried.
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        !matches!(self, Self::Permanent { .. })
    }

    /// Whether the failure says something about the target's health, so that health tracking and
    /// the circuit breaker should count it.
    ///
    /// A 429 means the target is alive and pacing us, a cancellation is our own doing, and a
    /// rejected payload is the alert's fault, not the target's: none of these count.
    #[must_use]
    pub const fn counts_against_target(self) -> bool {
        match self {
            Self::Transient | Self::Timeout => true,
            Self::Permanent { reason } => {
                matches!(reason, PermanentReason::Auth | PermanentReason::NotFound)
            }
            Self::RateLimited { .. } | Self::Cancelled => false,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimited {
                retry_after: Some(after),
            } => {
                write!(
                    f,
                    "rate_limited (retry after {} ms)",
                    crate::wire::duration_ms(*after)
                )
            }
            Self::Permanent { reason } => write!(f, "permanent ({})", reason.as_str()),
            other => f.write_str(other.label()),
        }
    }
}

/// A failed publish attempt: its [`ErrorKind`], the HTTP status when there was one, and a message.
///
/// The message must already be free of secrets and URL paths: the HTTP stack builds it with
/// [`redact_url`](crate::redact_url), and nothing here ever formats a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
#[non_exhaustive]
pub struct PublishError {
    /// The classification.
    #[serde(flatten)]
    pub kind: ErrorKind,
    /// The HTTP status, when the target answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// What happened, for people.
    pub message: String,
}

impl PublishError {
    /// A failure of this kind with this (already redacted) message.
    #[must_use]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status_code: None,
            message: message.into(),
        }
    }

    /// Returns the error with the HTTP status the target answered.
    #[must_use]
    pub fn with_status(mut self, status_code: u16) -> Self {
        self.status_code = Some(status_code);
        self
    }

    /// A [`ErrorKind::Timeout`] after `after`.
    #[must_use]
    pub fn timeout(after: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!("no answer within {} ms", crate::wire::duration_ms(after)),
        )
    }

    /// A [`ErrorKind::Cancelled`].
    #[must_use]
    pub fn cancelled() -> Self {
        Self::new(
            ErrorKind::Cancelled,
            "cancelled before the attempt finished",
        )
    }
}

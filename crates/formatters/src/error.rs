//! The one error type of this crate.

use alert_core::{ErrorKind, PermanentReason};

/// Why a payload could not be built.
///
/// Every variant is permanent: formatting the same alert with the same settings fails the same way
/// every time, so [`FormatError::kind`] never says "retry".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A text template failed to compile (at config load) or to render (at send time).
    #[error("template `{field}`: {message}")]
    Template {
        /// Which template: `title`, `summary` or `description`.
        field: &'static str,
        /// What minijinja reported, including the line of the template.
        message: String,
    },
    /// A text template rendered more than the limit allows (`MAX_RENDERED_BYTES`).
    #[error("template `{field}` renders more than {limit} bytes")]
    TemplateTooLarge {
        /// Which template: `title`, `summary` or `description`.
        field: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The payload is larger than the target accepts, even after dropping what may be dropped.
    #[error("payload of {size} bytes exceeds the target's limit of {limit} bytes")]
    TooLarge {
        /// The target's limit, in bytes.
        limit: usize,
        /// The size of the smallest payload we could build, in bytes.
        size: usize,
    },
    /// The payload could not be serialised to JSON.
    #[error("serialising the payload failed: {0}")]
    Serialize(String),
}

impl FormatError {
    /// How a publisher should classify this failure: a template error is a configuration problem,
    /// everything else a payload problem. Both are permanent.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        let reason = match self {
            Self::Template { .. } | Self::TemplateTooLarge { .. } => PermanentReason::Config,
            Self::TooLarge { .. } | Self::Serialize(_) => PermanentReason::Payload,
        };
        ErrorKind::Permanent { reason }
    }
}

impl From<FormatError> for alert_core::PublishError {
    fn from(err: FormatError) -> Self {
        Self::new(err.kind(), err.to_string())
    }
}

impl From<serde_json::Error> for FormatError {
    fn from(err: serde_json::Error) -> Self {
        Self::Serialize(err.to_string())
    }
}

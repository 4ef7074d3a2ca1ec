//! The crate's errors.

/// A configuration value was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The named field must be greater than zero.
    #[error("{0} must be greater than zero")]
    MustBePositive(&'static str),
}

/// Why a manual health check could not run.
///
/// No variant ever holds a probe URL or a header value: target names are not secret, and probe
/// messages come from the HTTP stack, which redacts URLs and scrubs registered secrets.
#[cfg(feature = "probes")]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// No target has this name.
    #[error("unknown target {0:?}")]
    UnknownTarget(String),
    /// The target's publisher offers no health probe.
    #[error("target {0:?} has no health probe")]
    NotProbeable(String),
    /// The target's probe could not be turned into a request (an invalid URL or header).
    #[error("target {target:?} has an invalid health probe: {message}")]
    InvalidProbe {
        /// The target.
        target: String,
        /// What is wrong, with the URL redacted and no header value.
        message: String,
    },
}

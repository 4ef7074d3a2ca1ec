//! What every publisher crate needs to build itself from a target's settings.

use std::path::Path;
use std::sync::Arc;

use alert_core::{KindSettings, MessageRefStore, Secret, TargetName, redact_url};
use serde::de::DeserializeOwned;

use crate::client::HttpClient;

/// Shared things a publisher is built with.
#[derive(Clone)]
#[non_exhaustive]
pub struct BuildContext {
    /// The target's name.
    pub target: TargetName,
    /// The shared HTTP client (one pool for every publisher).
    pub client: HttpClient,
    /// Where publishers that update their first message keep its reference.
    pub message_refs: Arc<dyn MessageRefStore>,
}

impl BuildContext {
    /// A context.
    #[must_use]
    pub fn new(
        target: TargetName,
        client: HttpClient,
        message_refs: Arc<dyn MessageRefStore>,
    ) -> Self {
        Self {
            target,
            client,
            message_refs,
        }
    }
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("target", &self.target)
            .finish_non_exhaustive()
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
        field: &'static str,
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

/// Parses a kind's settings into its `Config`.
///
/// # Errors
/// [`BuildError::Settings`] with serde's message (field names, never values of secret fields,
/// which are all strings).
pub fn parse_settings<T: DeserializeOwned>(settings: &KindSettings) -> Result<T, BuildError> {
    serde_json::from_value(serde_json::Value::Object(settings.0.clone()))
        .map_err(|e| BuildError::Settings(e.to_string()))
}

/// Splits settings in two: the keys named in `own` (a publisher's transport settings) and the rest
/// (typically a formatter's settings). Each half can then be parsed with `deny_unknown_fields`.
#[must_use]
pub fn split_settings(settings: &KindSettings, own: &[&str]) -> (KindSettings, KindSettings) {
    let (mine, rest) = settings
        .0
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| own.contains(&k.as_str()));
    (KindSettings(mine), KindSettings(rest))
}

/// Resolves a secret given inline (a literal, or `${env:VAR}`) or as a file path. Exactly one of
/// the two must be set. A file's trailing newline is dropped, so `echo token > file` works.
///
/// # Errors
/// [`BuildError::SecretUnavailable`] when neither or both are set, the variable is unset, or the
/// file cannot be read or is empty.
pub fn resolve_secret(
    field: &'static str,
    inline: Option<&str>,
    file: Option<&Path>,
) -> Result<Secret<String>, BuildError> {
    let unavailable = |reason: String| BuildError::SecretUnavailable { field, reason };
    let value = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(unavailable(format!(
                "set `{field}` or `{field}_file`, not both"
            )));
        }
        (None, None) => {
            return Err(unavailable(format!(
                "neither `{field}` nor `{field}_file` is set"
            )));
        }
        (Some(inline), None) => match env_reference(inline) {
            Some(var) => std::env::var(var)
                .map_err(|_| unavailable(format!("environment variable {var} is not set")))?,
            None => inline.to_owned(),
        },
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| unavailable(format!("cannot read {}: {}", path.display(), e.kind())))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
    };
    if value.is_empty() {
        return Err(unavailable("the value is empty".to_owned()));
    }
    Ok(Secret::new(value))
}

/// `Some("VAR")` for `${env:VAR}`.
fn env_reference(text: &str) -> Option<&str> {
    text.strip_prefix("${env:")?
        .strip_suffix('}')
        .filter(|v| !v.is_empty())
}

/// Checks a URL setting and returns it without a trailing slash.
///
/// # Errors
/// [`BuildError::InvalidUrl`] unless it is an absolute http(s) URL with a host.
pub fn check_base_url(field: &'static str, url: &str) -> Result<String, BuildError> {
    let invalid = || BuildError::InvalidUrl {
        field,
        url: redact_url(url),
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(url.trim_end_matches('/').to_owned()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_resolve_from_env_and_files_without_leaking() {
        let dir = std::env::temp_dir().join(format!("alertpub-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(
            resolve_secret("token", None, Some(&file)).unwrap().expose(),
            "from-file"
        );
        assert_eq!(
            resolve_secret("token", Some("literal"), None)
                .unwrap()
                .expose(),
            "literal"
        );
        // PATH is always set in a test process.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            resolve_secret("token", Some("${env:PATH}"), None)
                .unwrap()
                .expose(),
            &path
        );
        let unset =
            resolve_secret("token", Some("${env:ALERTPUB_SURELY_UNSET_VAR}"), None).unwrap_err();
        assert!(
            unset.is_secret_unavailable()
                && unset.to_string().contains("ALERTPUB_SURELY_UNSET_VAR")
        );
        let missing = resolve_secret("token", None, Some(&dir.join("absent"))).unwrap_err();
        assert!(missing.is_secret_unavailable(), "{missing}");
        assert!(
            resolve_secret("token", None, None)
                .unwrap_err()
                .is_secret_unavailable()
        );
        assert!(
            resolve_secret("token", Some("a"), Some(&file))
                .unwrap_err()
                .is_secret_unavailable()
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(
            resolve_secret("token", None, Some(&file))
                .unwrap_err()
                .is_secret_unavailable()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn base_urls_are_checked_and_redacted() {
        assert_eq!(
            check_base_url("url", "http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        let err = check_base_url("url", "ftp://host/secret-path").unwrap_err();
        assert!(!err.to_string().contains("secret-path"), "{err}");
    }
}

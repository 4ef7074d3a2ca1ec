//! What every publisher crate needs to build itself from a target's settings.

use std::path::Path;
use std::sync::Arc;

use alert_core::{BuildError, MessageRefStore, Secret, TargetName, redact_url};

use crate::client::HttpClient;

/// Shared things a publisher is built with.
#[derive(Clone)]
#[non_exhaustive]
pub struct BuildContext {
    /// The target's name.
    pub target: TargetName,
    /// The target's HTTP client: the shared stack and connection pool, under a claim of the
    /// target's own ([`HttpClient::for_target`]), so a slow target cannot hold the connections
    /// another target on the same host needs.
    pub client: HttpClient,
    /// Where publishers that update their first message keep its reference.
    pub message_refs: Arc<dyn MessageRefStore>,
}

impl BuildContext {
    /// A context for `target`, whose client is `client`'s pool under a claim of the target's
    /// own, as large as `client`'s ([`ClientConfig::max_connections_per_host`]); see
    /// [`with_in_flight`](Self::with_in_flight) for a target with its own in-flight limit.
    ///
    /// [`ClientConfig::max_connections_per_host`]: crate::ClientConfig::max_connections_per_host
    #[must_use]
    pub fn new(
        target: TargetName,
        client: HttpClient,
        message_refs: Arc<dyn MessageRefStore>,
    ) -> Self {
        let in_flight = client.config().max_connections_per_host;
        Self {
            target,
            client: client.for_target(in_flight),
            message_refs,
        }
    }

    /// Returns the context with the target's claim sized to its in-flight limit: the requests
    /// it has open at once, and the connections it adds to each host's cap.
    #[must_use]
    pub fn with_in_flight(mut self, in_flight: usize) -> Self {
        self.client = self.client.for_target(in_flight);
        self
    }
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The most a secret file may hold: a token, a key or a URL is far smaller, and a path such as
/// `/dev/zero` must not be read for ever.
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file, at most [`MAX_SECRET_FILE_BYTES`] of it. The error names only the
/// problem, never the content.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.kind().to_string())?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.kind().to_string())?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!("it holds more than {MAX_SECRET_FILE_BYTES} bytes"));
    }
    Ok(text)
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
    let unavailable = |reason: String| BuildError::SecretUnavailable {
        field: field.to_owned(),
        reason,
    };
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
        (None, Some(path)) => read_secret_file(path)
            .map_err(|e| unavailable(format!("cannot read {}: {e}", path.display())))?
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

    #[test]
    fn a_secret_file_is_read_only_up_to_its_cap() {
        // An endless file stops at the cap instead of being read for ever.
        let endless = resolve_secret("token", None, Some(Path::new("/dev/zero"))).unwrap_err();
        assert!(endless.is_secret_unavailable(), "{endless}");
        assert!(
            endless.to_string().contains("more than 65536 bytes"),
            "{endless}"
        );
        let dir = std::env::temp_dir().join(format!("alertpub-secret-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "k".repeat(65536)).unwrap();
        assert_eq!(
            resolve_secret("token", None, Some(&file))
                .unwrap()
                .expose()
                .len(),
            65536
        );
        std::fs::write(&file, "k".repeat(65537)).unwrap();
        let over = resolve_secret("token", None, Some(&file)).unwrap_err();
        assert!(!over.to_string().contains("kkkk"), "{over}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Keeping credentials and tokenised URLs out of logs, errors and API output.

use std::fmt;

use serde::Deserialize;

const REDACTED: &str = "[redacted]";

/// A value that must never be printed: routing keys, tokens, passwords, webhook URLs.
///
/// `Debug` and `Display` print `[redacted]`. It implements `Deserialize` so configs can hold it, and
/// deliberately not `Serialize`, so it cannot reach API output by accident. Read it with
/// [`Secret::expose`] at the one place that sends it.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that must send it.
    pub const fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Reduces a URL to `scheme://host:port/…`, the only form in which URLs appear in logs and API
/// output. Paths and queries often carry tokens (Slack webhooks do), and user info carries
/// passwords, so both are dropped. The port is always shown, defaulted from the scheme.
///
/// Text that does not parse as an absolute URL becomes `[redacted url]`.
///
/// ```
/// use alert_core::redact_url;
/// assert_eq!(
///     redact_url("https://hooks.slack.com/services/T000/B000/XXXX"),
///     "https://hooks.slack.com:443/…"
/// );
/// assert_eq!(redact_url("http://user:pw@127.0.0.1:9093"), "http://127.0.0.1:9093/…");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    try_redact_url(url).unwrap_or_else(|| "[redacted url]".to_owned())
}

fn try_redact_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    // An IPv6 literal is bracketed; its colons are not a port separator.
    let has_port = match host_port.rfind(']') {
        Some(close) => host_port[close..].contains(':'),
        None => host_port.contains(':'),
    };
    if has_port {
        Some(format!("{scheme}://{host_port}/…"))
    } else {
        let port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return Some(format!("{scheme}://{host_port}/…")),
        };
        Some(format!("{scheme}://{host_port}:{port}/…"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2-token".to_owned());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "hunter2-token");
    }

    #[test]
    fn urls_lose_paths_queries_and_user_info() {
        let cases = [
            (
                "https://hooks.slack.com/services/T0/B0/tok",
                "https://hooks.slack.com:443/…",
            ),
            ("http://127.0.0.1:9093", "http://127.0.0.1:9093/…"),
            (
                "http://127.0.0.1:9093/api/v2/alerts?token=x",
                "http://127.0.0.1:9093/…",
            ),
            (
                "HTTPS://u:p@Example.com/x#frag",
                "https://Example.com:443/…",
            ),
            ("http://[::1]:8080/secret", "http://[::1]:8080/…"),
            ("http://[::1]/secret", "http://[::1]:80/…"),
            ("http://host?x=token", "http://host:80/…"),
            ("not a url", "[redacted url]"),
            ("http:///path-only", "[redacted url]"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_url(input), expected, "input {input}");
        }
    }
}

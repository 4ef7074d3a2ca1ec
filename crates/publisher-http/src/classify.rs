//! Turning an HTTP answer into success or a classified [`PublishError`].

use std::time::{Duration, SystemTime};

use alert_core::{ErrorKind, PermanentReason, PublishError};
use http::StatusCode;
use http::header::RETRY_AFTER;

use crate::client::HttpResponse;

/// The most of a response body quoted in an error message.
const SNIPPET_CHARS: usize = 200;

/// Decides whether a response means success. Publishers implement it when the status code is not
/// enough (Slack's Web API answers `200 {"ok":false}`), and delegate to [`classify_status`] for
/// everything else.
pub trait Classify: Send + Sync {
    /// `Ok(())` for success, or the classified failure. The message need not be redacted: the
    /// client scrubs it before it leaves the stack.
    ///
    /// # Errors
    /// The classified failure.
    fn classify(&self, response: &HttpResponse) -> Result<(), PublishError>;
}

/// Classification by status code alone: [`classify_status`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClassifier;

impl Classify for DefaultClassifier {
    fn classify(&self, response: &HttpResponse) -> Result<(), PublishError> {
        classify_status(response)
    }
}

/// The shared status rules:
///
/// | status | result |
/// |---|---|
/// | 2xx | success |
/// | 408, 5xx | `transient` |
/// | 429 | `rate_limited`, with `Retry-After` in seconds or as an HTTP date |
/// | 401, 403 | `permanent(auth)` |
/// | 404, 410 | `permanent(not_found)` |
/// | 413 | `permanent(payload)` |
/// | 3xx | `permanent(config)`: redirects are not followed |
/// | other 4xx | `permanent(bad_request)` |
///
/// # Errors
/// The classified failure for anything but 2xx.
pub fn classify_status(response: &HttpResponse) -> Result<(), PublishError> {
    let status = response.status;
    if status.is_success() {
        return Ok(());
    }
    let kind = match status {
        StatusCode::REQUEST_TIMEOUT => ErrorKind::Transient,
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::RateLimited {
            retry_after: response
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, response)),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Permanent {
            reason: PermanentReason::Auth,
        },
        StatusCode::NOT_FOUND | StatusCode::GONE => ErrorKind::Permanent {
            reason: PermanentReason::NotFound,
        },
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::Permanent {
            reason: PermanentReason::Payload,
        },
        s if s.is_server_error() => ErrorKind::Transient,
        s if s.is_redirection() => ErrorKind::Permanent {
            reason: PermanentReason::Config,
        },
        _ => ErrorKind::Permanent {
            reason: PermanentReason::BadRequest,
        },
    };
    Err(PublishError::new(kind, describe(response)).with_status(status.as_u16()))
}

/// [`classify_status`], except that a 429 without a usable `Retry-After` header pauses for the
/// delay its body gives, when `from_body` finds one there (Discord's `retry_after`, Telegram's
/// `parameters.retry_after`). The delay is capped at an hour.
///
/// # Errors
/// As [`classify_status`].
pub fn classify_status_with(
    response: &HttpResponse,
    from_body: fn(&[u8]) -> Option<Duration>,
) -> Result<(), PublishError> {
    classify_status(response).map_err(|mut err| {
        if err.kind == (ErrorKind::RateLimited { retry_after: None }) {
            err.kind = ErrorKind::RateLimited {
                retry_after: from_body(&response.body).map(|d| d.min(MAX_BODY_RETRY_AFTER)),
            };
        }
        err
    })
}

/// The longest pause a body's retry hint may ask for.
const MAX_BODY_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// `HTTP 503 Service Unavailable: <start of the body>`.
pub(crate) fn describe(response: &HttpResponse) -> String {
    let mut message = format!("HTTP {}", response.status);
    let body = String::from_utf8_lossy(&response.body);
    let body = body.trim();
    if !body.is_empty() {
        message.push_str(": ");
        message.extend(
            body.chars()
                .take(SNIPPET_CHARS)
                .map(|c| if c.is_control() { ' ' } else { c }),
        );
        if body.chars().count() > SNIPPET_CHARS {
            message.push('…');
        }
    }
    message
}

/// A response's `Retry-After`, read without our clock: delay-seconds as given, and an HTTP-date
/// as its distance from the response's own `Date` (both are the origin's dates, RFC 9110
/// §10.2.3, so their difference is the delay it means whatever our clock says). A date with no
/// `Date` to measure from is unknown, and the dispatcher's default pause applies.
fn retry_after(value: &str, response: &HttpResponse) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let sent = response
        .headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())?;
    parse_retry_after(value, sent)
}

/// Parses a `Retry-After` value: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), per RFC 9110 §10.2.3. A date in the past gives zero.
#[must_use]
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_both_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn a_retry_after_date_counts_from_the_response_date_not_our_clock() {
        let response = |headers: &[(&str, &str)]| {
            let mut map = http::HeaderMap::new();
            for (name, value) in headers {
                map.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(value).unwrap(),
                );
            }
            HttpResponse {
                status: StatusCode::TOO_MANY_REQUESTS,
                headers: map,
                body: bytes::Bytes::new(),
            }
        };
        let retry = |r: &HttpResponse| match classify_status(r).unwrap_err().kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            other => panic!("{other:?}"),
        };
        // Dates from 2015: against our clock the delay would be zero; the origin means 90 s.
        let dated = response(&[
            ("retry-after", "Wed, 21 Oct 2015 07:30:00 GMT"),
            ("date", "Wed, 21 Oct 2015 07:28:30 GMT"),
        ]);
        assert_eq!(retry(&dated), Some(Duration::from_secs(90)));
        // Without a Date the delay can't be measured: unknown, not a guess.
        let undated = response(&[("retry-after", "Wed, 21 Oct 2015 07:30:00 GMT")]);
        assert_eq!(retry(&undated), None);
        assert_eq!(
            retry(&response(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
    }
}

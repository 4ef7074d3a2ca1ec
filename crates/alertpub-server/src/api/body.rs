//! Request bodies: the content type, the size limit and the read timeout.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::app::App;
use crate::budget::BudgetShare;

use super::*;

/// Reads a JSON request body within the size limit and the body read timeout.
///
/// A request refused before its body is read (wrong content type, declared or actual size over the
/// limit) still has its body drained, up to [`DRAIN_CAP`] and within the body timeout: a client
/// that is still writing when the server answers and closes would otherwise see a broken pipe or
/// a reset instead of the answer.
pub(super) async fn read_json(app: &App, request: Request) -> Result<Value, ApiError> {
    let body = read_body(app, request).await?;
    parse_json(&body.bytes)
}

/// Why a request is refused before its body is read: the content type, or a declared length
/// over the limit.
fn refusal(headers: &HeaderMap, limit: usize) -> Option<ApiError> {
    if let Err(err) = check_content_type(headers) {
        return Some(err);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    declared
        .is_some_and(|len| len > limit as u64)
        .then(|| too_large(limit))
}

/// A request body read within the limits and checked as UTF-8; parse it with [`crate::batch`] or
/// `serde_json`. It holds its share of the body budget until it is dropped, so a handler keeps
/// the share while it parses and normalises.
pub(super) struct ReadBody {
    pub(super) bytes: Bytes,
    _budget: BudgetShare,
}

/// Reads a JSON request body within the size limit and the body read timeout, without parsing
/// it (see [`read_json`] for the refusals).
pub(super) async fn read_body(app: &App, request: Request) -> Result<ReadBody, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = app.config.server.max_body_bytes;
    let timeout: Duration = app.config.server.body_read_timeout.into();
    if let Some(err) = refusal(&parts.headers, limit) {
        drain(body, DRAIN_CAP, timeout).await;
        return Err(err);
    }
    let (bytes, budget) = read_limited(app, body, limit, timeout).await?;
    check_utf8(&bytes)?;
    Ok(ReadBody {
        bytes,
        _budget: budget,
    })
}

/// Reads a request body that may be empty, whatever its framing (a `Content-Length`, chunked, or
/// HTTP/2 frames): `None` when it holds nothing but whitespace, else the parsed JSON, which then
/// needs `Content-Type: application/json`.
pub(super) async fn read_optional_json(
    app: &App,
    request: Request,
) -> Result<Option<Value>, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = app.config.server.max_body_bytes;
    let timeout: Duration = app.config.server.body_read_timeout.into();
    let (bytes, _budget) = read_limited(app, body, limit, timeout).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    check_content_type(&parts.headers)?;
    check_utf8(&bytes)?;
    parse_json(&bytes).map(Some)
}

/// Refuses a body that is not UTF-8, with its own error kind rather than a JSON syntax error.
fn check_utf8(bytes: &[u8]) -> Result<(), ApiError> {
    std::str::from_utf8(bytes)
        .map(drop)
        .map_err(|_| ApiError::bad_request("invalid_utf8", "the request body is not valid UTF-8"))
}

/// Parses a body already checked by [`check_utf8`].
fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request("invalid_json", format!("invalid JSON: {err}")))
}

/// How much of a refused body is read and discarded before answering; a larger body is cut off
/// (the connection closes), since reading it would cost more than the client deserves.
pub(super) const DRAIN_CAP: usize = 16 * 1024 * 1024;

/// Reads and discards up to `cap` bytes of `body`, within `timeout`.
pub(super) async fn drain(mut body: Body, cap: usize, timeout: Duration) {
    let discard = async {
        let mut seen = 0_usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > cap {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, discard).await;
}

pub(super) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is over the limit of {limit} bytes"),
    )
}

/// Reads at most `limit` bytes; a longer body is drained (see [`drain`]) and refused with 413.
///
/// Every byte read is first taken from the server's body budget (`server.max_body_bytes_in_flight`),
/// so the bodies being read and parsed at once never hold more than that, whatever the number of
/// connections and streams. A request that can't get its share within [`BUDGET_WAIT`] is refused
/// with 503 `server_busy`.
pub(super) async fn read_limited(
    app: &App,
    mut body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<(Bytes, BudgetShare), ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut share = BudgetShare::default();
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("the request body could not be read: {err}"),
                )
            })?;
            if let Some(data) = frame.data_ref() {
                if buf.len() + data.len() > limit {
                    return Ok(None);
                }
                let grow = app.body_budget.grow(&mut share, buf.len() + data.len());
                match tokio::time::timeout(BUDGET_WAIT, grow).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return Err(server_busy()),
                }
                buf.extend_from_slice(data);
            }
        }
        Ok(Some(buf.freeze()))
    };
    match tokio::time::timeout_at(deadline, read).await {
        Err(_elapsed) => {
            let mut err = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            );
            err.close = true;
            Err(err)
        }
        Ok(Err(err)) => Err(err),
        Ok(Ok(Some(bytes))) => Ok((bytes, share)),
        Ok(Ok(None)) => {
            drop(share);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            drain(body, DRAIN_CAP, left).await;
            Err(too_large(limit))
        }
    }
}

/// How long a body waits for its share of the budget before the request is refused: long enough
/// to ride out a burst, short enough that a sender is told to come back rather than kept waiting.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

fn server_busy() -> ApiError {
    let mut err = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
        "the server is reading as many request bodies as its memory budget allows; retry shortly",
    );
    err.close = true;
    err
}

pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type application/json, got {content_type:?}"),
        ))
    }
}

//! Building a request whose URL and credentials never leak.

use std::fmt;
use std::sync::Arc;

use alert_core::{Secret, redact_url};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

/// The shortest path segment or query value of a secret URL that is scrubbed on its own: tokens
/// are longer, and names such as `api` or `webhooks` are not secrets.
pub const MIN_SCRUBBED_PART: usize = 16;

/// Why a request could not be built. Messages never contain the URL's path or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The URL does not parse, or is not `http` or `https`.
    #[error("invalid URL {0}: must be an absolute http or https URL")]
    InvalidUrl(String),
    /// A header name or value is not valid HTTP.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
}

impl From<RequestError> for alert_core::PublishError {
    /// A request that cannot be built is a configuration problem: permanent, reason `config`.
    fn from(err: RequestError) -> Self {
        Self::new(
            alert_core::ErrorKind::Permanent {
                reason: alert_core::PermanentReason::Config,
            },
            err.to_string(),
        )
    }
}

/// One HTTP request, ready for [`HttpClient::send`](crate::HttpClient::send).
///
/// Its `Debug` output shows the method, the redacted URL and the header names only. Secrets passed
/// through [`bearer`](Self::bearer), [`secret_header`](Self::secret_header) or
/// [`secret_url`](Self::secret_url) are marked sensitive and scrubbed from every error message.
#[derive(Clone)]
pub struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) redacted_url: Arc<str>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) secrets: Arc<Vec<String>>,
}

impl HttpRequest {
    /// A request with this method and URL.
    ///
    /// # Errors
    /// [`RequestError::InvalidUrl`] unless `url` is an absolute `http` or `https` URL.
    pub fn new(method: Method, url: &str) -> Result<Self, RequestError> {
        let redacted_url = redact_url(url);
        let uri: Uri = url
            .parse()
            .map_err(|_| RequestError::InvalidUrl(redacted_url.clone()))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => {}
            _ => return Err(RequestError::InvalidUrl(redacted_url)),
        }
        Ok(Self {
            method,
            uri,
            redacted_url: redacted_url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            secrets: Arc::default(),
        })
    }

    /// A `POST` to `url`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn post(url: &str) -> Result<Self, RequestError> {
        Self::new(Method::POST, url)
    }

    /// A request to a URL that is itself a secret (a Slack or Discord webhook URL carries its
    /// token in the path, a Teams workflow URL its signature in the query). The whole URL, its
    /// path and query, and each of their segments and values of [`MIN_SCRUBBED_PART`] characters
    /// or more (a token alone, as an answer may echo it) are scrubbed from error messages; the
    /// URL is also redacted.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn secret_url(method: Method, url: &Secret<String>) -> Result<Self, RequestError> {
        let mut request = Self::new(method, url.expose())?;
        let secrets = Arc::make_mut(&mut request.secrets);
        secrets.push(url.expose().clone());
        if let Some(path) = request.uri.path_and_query().map(|p| p.as_str().to_owned())
            && path.len() > 1
        {
            let parts = path
                .split(['/', '?', '&'])
                .map(|part| part.split_once('=').map_or(part, |(_, value)| value))
                .filter(|part| part.len() >= MIN_SCRUBBED_PART)
                .map(str::to_owned)
                .collect::<Vec<_>>();
            secrets.push(path);
            secrets.extend(parts);
        }
        Ok(request)
    }

    /// Sets a JSON body, with `Content-Type: application/json`.
    #[must_use]
    pub fn json(self, body: impl Into<Bytes>) -> Self {
        self.body_with_type(body, "application/json")
    }

    /// Sets the body and its content type.
    #[must_use]
    pub fn body_with_type(self, body: impl Into<Bytes>, content_type: &'static str) -> Self {
        self.body_with_content_type(body, HeaderValue::from_static(content_type))
    }

    /// Sets the body and a content type checked beforehand (a configured one).
    #[must_use]
    pub fn body_with_content_type(
        mut self,
        body: impl Into<Bytes>,
        content_type: HeaderValue,
    ) -> Self {
        self.body = body.into();
        self.headers.insert(CONTENT_TYPE, content_type);
        self
    }

    /// Adds a header whose value is not secret.
    ///
    /// # Errors
    /// [`RequestError::InvalidHeader`] for an invalid name or value.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, RequestError> {
        let (name, value) = parse_header(name, value)?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Adds a header whose value is secret (an API key). It is marked sensitive and scrubbed from
    /// errors.
    ///
    /// # Errors
    /// [`RequestError::InvalidHeader`] for an invalid name or value (the value is not echoed).
    pub fn secret_header(
        mut self,
        name: &str,
        value: &Secret<String>,
    ) -> Result<Self, RequestError> {
        let (name, mut header) = parse_header(name, value.expose())?;
        header.set_sensitive(true);
        self.headers.append(name, header);
        Arc::make_mut(&mut self.secrets).push(value.expose().clone());
        Ok(self)
    }

    /// Adds `Authorization: Bearer <token>`.
    ///
    /// # Errors
    /// [`RequestError::InvalidHeader`] when the token holds characters a header cannot carry.
    pub fn bearer(mut self, token: &Secret<String>) -> Result<Self, RequestError> {
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| RequestError::InvalidHeader(AUTHORIZATION.to_string()))?;
        value.set_sensitive(true);
        self.headers.insert(AUTHORIZATION, value);
        Arc::make_mut(&mut self.secrets).push(token.expose().clone());
        Ok(self)
    }

    /// Registers a value to scrub from error messages, for secrets carried in the body (a
    /// PagerDuty routing key, say).
    #[must_use]
    pub fn scrub(mut self, secret: &Secret<String>) -> Self {
        if !secret.expose().is_empty() {
            Arc::make_mut(&mut self.secrets).push(secret.expose().clone());
        }
        self
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL as it may be shown: `scheme://host:port/…`.
    #[must_use]
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The headers set so far.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// Removes every one of a request's registered `secrets` from `text`.
pub(crate) fn scrub(secrets: &[String], text: &str) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
    }
    out
}

fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), RequestError> {
    let name =
        HeaderName::try_from(name).map_err(|_| RequestError::InvalidHeader(name.to_owned()))?;
    let value =
        HeaderValue::try_from(value).map_err(|_| RequestError::InvalidHeader(name.to_string()))?;
    Ok((name, value))
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.redacted_url)
            .field(
                "headers",
                &self
                    .headers
                    .keys()
                    .map(HeaderName::as_str)
                    .collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

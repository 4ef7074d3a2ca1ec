//! Building a request whose URL and credentials never leak.

use std::fmt;
use std::sync::{Arc, LazyLock};

use alert_core::{Secret, redact_url};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
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
///
/// A target's publisher keeps one as the template of its requests, so it holds nothing that can
/// be worked out when needed: the redacted URL and the scrubbed parts of a secret URL are made
/// from the parsed URL when an error message needs them, and a request without secrets shares
/// one empty list.
#[derive(Clone)]
pub struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) scrubbed: Scrubbed,
}

/// What a request's error messages are scrubbed of.
#[derive(Clone)]
pub(crate) struct Scrubbed {
    /// Whether the URL is itself a secret ([`HttpRequest::secret_url`]).
    url: bool,
    /// The registered secrets: header values, tokens.
    secrets: Arc<Vec<String>>,
}

/// The list of a request that registers no secret, shared.
static NO_SECRETS: LazyLock<Arc<Vec<String>>> = LazyLock::new(Arc::default);

impl Scrubbed {
    fn none() -> Self {
        Self {
            url: false,
            secrets: Arc::clone(&NO_SECRETS),
        }
    }

    fn push(&mut self, secret: &str) {
        Arc::make_mut(&mut self.secrets).push(secret.to_owned());
    }

    /// `text` without the secrets, and without the URL `uri` and its parts when the URL is
    /// secret: the whole URL, its path and query, and each of their segments and values of
    /// [`MIN_SCRUBBED_PART`] characters or more (a token alone, as an answer may echo it).
    pub(crate) fn apply(&self, uri: &Uri, text: &str) -> String {
        let mut out = text.to_owned();
        if self.url {
            let mut parts = vec![uri.to_string()];
            if let Some(path) = uri.path_and_query().map(PathAndQuery::as_str)
                && path.len() > 1
            {
                parts.push(path.to_owned());
                parts.extend(
                    path.split(['/', '?', '&'])
                        .map(|part| part.split_once('=').map_or(part, |(_, value)| value))
                        .filter(|part| part.len() >= MIN_SCRUBBED_PART)
                        .map(str::to_owned),
                );
            }
            out = scrub(&parts, &out);
        }
        scrub(&self.secrets, &out)
    }
}

/// The URL as it may be shown: `scheme://host:port/…`, without user information, path or query.
pub(crate) fn redacted(uri: &Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => redact_url(&format!("{scheme}://{authority}/")),
        _ => redact_url(""),
    }
}

impl HttpRequest {
    /// A request with this method and URL.
    ///
    /// # Errors
    /// [`RequestError::InvalidUrl`] unless `url` is an absolute `http` or `https` URL.
    pub fn new(method: Method, url: &str) -> Result<Self, RequestError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| RequestError::InvalidUrl(redact_url(url)))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => {}
            _ => return Err(RequestError::InvalidUrl(redact_url(url))),
        }
        Ok(Self {
            method,
            uri,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            scrubbed: Scrubbed::none(),
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
        request.scrubbed.url = true;
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
        self.scrubbed.push(value.expose());
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
        self.scrubbed.push(token.expose());
        Ok(self)
    }

    /// Registers a value to scrub from error messages, for secrets carried in the body (a
    /// PagerDuty routing key, say).
    #[must_use]
    pub fn scrub(mut self, secret: &Secret<String>) -> Self {
        if !secret.expose().is_empty() {
            self.scrubbed.push(secret.expose());
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
    pub fn redacted_url(&self) -> String {
        redacted(&self.uri)
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

/// What every request of a target shares, kept compact: a fleet's targets each keep one for as
/// long as they are configured. Made from a request built once (its URL parsed, its headers and
/// secrets set, no body); [`request`](Self::request) makes each attempt's request from it
/// without parsing anything again. A template without headers holds the method and the parsed
/// URL only.
///
/// Its `Debug` output is its request's.
#[derive(Clone)]
pub struct RequestTemplate {
    method: Method,
    uri: Uri,
    secret_url: bool,
    /// The headers and the registered secrets, when there are any.
    extra: Option<Box<(HeaderMap, Arc<Vec<String>>)>>,
}

impl RequestTemplate {
    /// The template of requests like `request`, whose body, if any, is not kept.
    #[must_use]
    pub fn new(request: HttpRequest) -> Self {
        let HttpRequest {
            method,
            uri,
            headers,
            body: _,
            scrubbed,
        } = request;
        let extra = (!headers.is_empty() || !scrubbed.secrets.is_empty())
            .then(|| Box::new((headers, scrubbed.secrets)));
        Self {
            method,
            uri,
            secret_url: scrubbed.url,
            extra,
        }
    }

    /// A request as the template describes it, with no body yet.
    #[must_use]
    pub fn request(&self) -> HttpRequest {
        let (headers, secrets) = match &self.extra {
            Some(extra) => (extra.0.clone(), Arc::clone(&extra.1)),
            None => (HeaderMap::new(), Arc::clone(&NO_SECRETS)),
        };
        HttpRequest {
            method: self.method.clone(),
            uri: self.uri.clone(),
            headers,
            body: Bytes::new(),
            scrubbed: Scrubbed {
                url: self.secret_url,
                secrets,
            },
        }
    }

    /// The last value the template gives header `name` (the one set last, as credentials are
    /// set after the configured headers), when it sets it.
    #[must_use]
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.extra.as_ref()?.0.get_all(name).iter().next_back()
    }

    /// The whole URL, path and query included: a secret, as a URL often carries a token.
    #[must_use]
    pub fn url(&self) -> Secret<String> {
        Secret::new(self.uri.to_string())
    }
}

impl fmt::Debug for RequestTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.request(), f)
    }
}

/// Removes every one of a request's registered `secrets` from `text`.
fn scrub(secrets: &[String], text: &str) -> String {
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
            .field("url", &self.redacted_url())
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

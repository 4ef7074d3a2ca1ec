//! The pooled client.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alert_core::{ErrorKind, PublishError};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::classify::Classify;
use crate::limit::{Claim, Hosts, LimitedConnector};
use crate::request::{HttpRequest, redacted};

/// How the shared client behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// A deadline for one attempt (connect, send, and read the whole response) of the client's
    /// own. Default `None`: the caller's per-attempt timeout is the only one, so a target set to
    /// 30 s is not cut at some hidden shorter limit. (The dispatcher and the synchronous API apply
    /// each target's `timeout` in `TargetCall`; a caller that has no deadline of its own sets
    /// one here.)
    pub timeout: Option<Duration>,
    /// The deadline for the TCP connect alone. Default 5 s.
    pub connect_timeout: Duration,
    /// The largest response body read; a larger one fails the attempt. Default 256 KiB.
    pub max_response_bytes: usize,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// The most idle connections kept per host. Default: no cap of its own, since the
    /// connections a host may have open at all are already capped (below).
    pub pool_max_idle_per_host: usize,
    /// The requests a client made by [`HttpClient::new`] has open at once, and the connections
    /// it adds to each host's cap. Default 16, each dispatcher lane's default in-flight limit.
    ///
    /// Every client shares one connection pool, and each target's client holds a claim of its
    /// own on it ([`HttpClient::for_target`], which [`BuildContext`](crate::BuildContext)
    /// applies with the target's in-flight limit): at most that many requests of the target
    /// open at once, and a host (scheme, host and port) may have as many connections open,
    /// busy or idle, as the claims of the targets that send to it add up to. A request that
    /// finds no connection free waits for one. So a target never sees more connections than
    /// the work in flight, and targets that share a host (hooks.slack.com, the PagerDuty events
    /// API) never wait for each other's connections.
    pub max_connections_per_host: usize,
    /// Extra CA certificates to trust, PEM-encoded, beside the webpki roots.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: None,
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 256 * 1024,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: usize::MAX,
            max_connections_per_host: 16,
            extra_roots_pem: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// Returns the config with this cap on connections per host.
    #[must_use]
    pub fn with_max_connections_per_host(mut self, limit: usize) -> Self {
        self.max_connections_per_host = limit;
        self
    }

    /// Returns the config with a per-attempt deadline of the client's own.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Returns the config with this response-size limit.
    #[must_use]
    pub fn with_max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Returns the config also trusting the CA certificates in this PEM text.
    #[must_use]
    pub fn with_extra_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots_pem.push(pem.into());
        self
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientBuildError {
    /// An extra root certificate is not valid PEM or not a usable CA certificate.
    #[error("invalid extra root certificate: {0}")]
    InvalidRootCertificate(String),
    /// rustls rejected the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A response that was read within the size limit.
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response, for classifier tests.
    #[must_use]
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The pooled HTTP/1.1 and HTTP/2 client with rustls (ring). Cheap to clone: clones share the
/// pool and the claim on it; [`for_target`](Self::for_target) makes one that shares the pool
/// under a claim of its own.
#[derive(Clone)]
pub struct HttpClient {
    transport: Transport,
    config: Arc<ClientConfig>,
}

/// A pooled hyper client over the connection cap.
type Pooled = Client<HttpsConnector<LimitedConnector<HttpConnector>>, Full<Bytes>>;

/// Where requests go: the network, or a handler in this process.
#[derive(Clone)]
enum Transport {
    Network {
        /// The one pool, shared by every client made from the same [`HttpClient::new`].
        pool: Arc<Pooled>,
        /// This client's hold on it.
        claim: Arc<Claim>,
    },
    InMemory(Arc<dyn InMemoryHandler>),
}

/// Answers requests inside the process, for [`HttpClient::in_memory`]: a simulation's targets.
///
/// Nothing leaves the process, so a runtime with paused time runs the whole exchange without a
/// socket (with real sockets, paused time fires timeouts spuriously).
pub trait InMemoryHandler: Send + Sync + 'static {
    /// Answers one request. The future may wait (a slow target); dropping it cancels the request.
    fn handle(
        &self,
        request: http::Request<Bytes>,
    ) -> alert_core::BoxFuture<'static, http::Response<Bytes>>;
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds a client.
    ///
    /// # Errors
    /// [`ClientBuildError`] for unusable extra root certificates.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientBuildError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for pem in &config.extra_roots_pem {
            let mut found = false;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| ClientBuildError::InvalidRootCertificate(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientBuildError::InvalidRootCertificate(e.to_string()))?;
                found = true;
            }
            if !found {
                return Err(ClientBuildError::InvalidRootCertificate(
                    "no certificate in the PEM text".into(),
                ));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // HTTP/2 when the server offers it, else HTTP/1.1 (what hyper-rustls's builder sets for
        // `enable_http1().enable_http2()`), set once here: every target's connector shares
        // this configuration rather than holding a copy of its own.
        let mut tls = tls;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let hosts = Arc::new(Hosts::default());
        Ok(Self {
            transport: Transport::Network {
                pool: Arc::new(pool(config, Arc::new(tls), Arc::clone(&hosts))),
                claim: Arc::new(Claim::new(hosts, config.max_connections_per_host)),
            },
            config: Arc::new(config.clone()),
        })
    }

    /// A client on the same connection pool under a claim of its own: at most `in_flight`
    /// requests open at once, and `in_flight` more connections allowed to each host it sends to
    /// (see [`ClientConfig::max_connections_per_host`]). Every target gets one
    /// ([`BuildContext`](crate::BuildContext)): a target that stops answering holds only its
    /// own claim's connections, never those another target on the same host needs, and an idle
    /// target holds nothing but the claim. The claim is given back when the last clone of the
    /// client is dropped. An in-memory client is returned as it is.
    #[must_use]
    pub fn for_target(&self, in_flight: usize) -> Self {
        let transport = match &self.transport {
            Transport::Network { pool, claim } => Transport::Network {
                pool: Arc::clone(pool),
                claim: Arc::new(Claim::new(claim.hosts(), in_flight)),
            },
            Transport::InMemory(handler) => Transport::InMemory(Arc::clone(handler)),
        };
        Self {
            transport,
            config: Arc::clone(&self.config),
        }
    }

    /// A client whose requests never leave the process: `handler` answers each one. Everything
    /// else (request building, the response-size limit, classification, redaction) is the same
    /// as over the network. For simulations and tests on paused time.
    #[must_use]
    pub fn in_memory(config: &ClientConfig, handler: Arc<dyn InMemoryHandler>) -> Self {
        Self {
            transport: Transport::InMemory(handler),
            config: Arc::new(config.clone()),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends one request, reads the response within the size limit, and classifies it. One
    /// attempt, never a retry.
    ///
    /// Every error message is free of the URL's path and of the request's registered secrets.
    ///
    /// # Errors
    /// `transient` for connection failures, `timeout` past the deadline, `transient` for a body
    /// over the limit, or whatever `classifier` decides.
    pub async fn send(
        &self,
        request: HttpRequest,
        classifier: &dyn Classify,
    ) -> Result<HttpResponse, PublishError> {
        // The request's parts move into hyper's request; what an error message needs stays.
        let HttpRequest {
            method,
            uri,
            headers,
            body,
            scrubbed,
        } = request;
        let mut http_request = Request::new(Full::new(body));
        *http_request.method_mut() = method.clone();
        // A clone shares the URL's bytes: an error message needs it after the request is gone.
        *http_request.uri_mut() = uri.clone();
        *http_request.headers_mut() = headers;
        let exchanged = match self.config.timeout {
            None => Ok(self.exchange(http_request).await),
            Some(deadline) => tokio::time::timeout(deadline, self.exchange(http_request))
                .await
                .map_err(|_elapsed| deadline),
        };
        let result = match exchanged {
            Ok(Ok(response)) => classifier.classify(&response).map(|()| response),
            Ok(Err(err)) => Err(err),
            Err(deadline) => Err(PublishError::timeout(deadline)),
        };
        result.map_err(|mut err| {
            let redacted_url = redacted(&uri);
            err.message = format!("{method} {redacted_url}: {}", scrubbed.apply(&uri, &err.message));
            tracing::debug!(url = %redacted_url, kind = %err.kind, status = ?err.status_code, "publish attempt failed");
            err
        })
    }

    async fn exchange(
        &self,
        http_request: Request<Full<Bytes>>,
    ) -> Result<HttpResponse, PublishError> {
        let (client, claim) = match &self.transport {
            Transport::Network { pool, claim } => (pool, claim),
            Transport::InMemory(handler) => {
                let (parts, body) = http_request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_or_else(|never| match never {}, |b| b.to_bytes());
                let response = handler.handle(Request::from_parts(parts, body)).await;
                let (parts, body) = response.into_parts();
                let limit = self.config.max_response_bytes;
                if body.len() > limit {
                    return Err(PublishError::new(
                        ErrorKind::Transient,
                        format!("response body exceeds the {limit}-byte limit"),
                    )
                    .with_status(parts.status.as_u16()));
                }
                return Ok(HttpResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                });
            }
        };
        // The slot is held until the whole answer is read, so the claim bounds the connections
        // its requests keep busy.
        let _slot = claim.slot(http_request.uri()).await;
        let response = client.request(http_request).await.map_err(|err| {
            PublishError::new(
                ErrorKind::Transient,
                format!("request failed: {}", error_chain(&err)),
            )
        })?;
        let (parts, body) = response.into_parts();
        let limit = self.config.max_response_bytes;
        let body = Limited::new(body, limit).collect().await.map_err(|err| {
            let message = if err.is::<http_body_util::LengthLimitError>() {
                format!("response body exceeds the {limit}-byte limit")
            } else {
                format!("reading the response failed: {err}")
            };
            PublishError::new(ErrorKind::Transient, message).with_status(parts.status.as_u16())
        })?;
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.to_bytes(),
        })
    }
}

/// The connection pool with `config`'s settings, these TLS settings and these hosts' caps.
fn pool(config: &ClientConfig, tls: Arc<rustls::ClientConfig>, hosts: Arc<Hosts>) -> Pooled {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    // `https` and `http` URLs both, over the shared TLS configuration (its ALPN offers h2 and
    // HTTP/1.1).
    let https = HttpsConnector::from((LimitedConnector::new(http, hosts), tls));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(https)
}

/// An error and its causes, joined with `: `, as hyper's own Display stops at the outermost one.
fn error_chain(err: &hyper_util::client::legacy::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

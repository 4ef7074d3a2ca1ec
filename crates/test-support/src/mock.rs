//! A mock notification target: a real HTTP server on 127.0.0.1.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// One request the mock target received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method, such as `POST`.
    pub method: String,
    /// The path and query, such as `/v2/enqueue`.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// A header's value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// When the body is not JSON.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }

    /// The body as text.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the mock target answers.
#[derive(Clone, Debug)]
pub struct MockResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Duration,
    hang: bool,
}

impl MockResponse {
    /// An empty answer with this status.
    #[must_use]
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
            hang: false,
        }
    }

    /// Never answers: the connection stays open with no response.
    #[must_use]
    pub fn hang() -> Self {
        Self {
            hang: true,
            ..Self::status(200)
        }
    }

    /// Returns the answer with this body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Returns the answer with a JSON body and content type.
    #[must_use]
    pub fn json(self, body: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }

    /// Returns the answer with this header added.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Returns the answer sent only after `delay`.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    script: Mutex<VecDeque<MockResponse>>,
    default: Mutex<MockResponse>,
    arrived: Notify,
    connections: AtomicUsize,
}

impl State {
    fn next_response(&self) -> MockResponse {
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        scripted.unwrap_or_else(|| {
            self.default
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }
}

/// A real HTTP server on 127.0.0.1 that records every request and answers as scripted.
///
/// By default it answers `200 OK` with an empty body. [`respond`](Self::respond) changes the
/// default; [`enqueue`](Self::enqueue) scripts one-off answers, served first in order. Dropping the
/// target stops the server and every connection it holds.
pub struct MockTarget {
    addr: SocketAddr,
    state: Arc<State>,
    ca_pem: Option<String>,
    server: tokio::task::JoinHandle<()>,
}

impl MockTarget {
    /// Starts a plain-HTTP mock target on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// Starts an HTTPS mock target with a self-signed certificate for `localhost` and `127.0.0.1`,
    /// made now. Clients trust it through [`ca_pem`](Self::ca_pem).
    ///
    /// # Panics
    /// When the certificate cannot be made or no port bound.
    pub async fn start_tls() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("a self-signed certificate");
        let cert_der: CertificateDer<'static> = certified.cert.der().clone();
        let key_der =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("default TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .expect("a usable certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut target =
            Self::start_inner(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await;
        target.ca_pem = Some(certified.cert.pem());
        target
    }

    /// Starts a plain-HTTP mock target on `addr` (a fixed loopback port, as an example config
    /// names).
    ///
    /// # Errors
    /// When `addr` cannot be bound (another program holds the port, say).
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::serve_on(listener, None))
    }

    async fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        Self::serve_on(listener, tls)
    }

    fn serve_on(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let addr = listener.local_addr().expect("a local address");
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(MockResponse::status(200)),
            arrived: Notify::new(),
            connections: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, tls, state.clone()));
        Self {
            addr,
            state,
            ca_pem: None,
            server,
        }
    }

    /// The socket address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` for a TLS target), with no path.
    #[must_use]
    pub fn base_url(&self) -> String {
        match self.ca_pem {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// The base URL followed by `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The PEM of the TLS certificate to trust, for a TLS target.
    #[must_use]
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The URL of the control endpoint that makes every later answer `status`: `POST` to it
    /// (an empty body does) to flip the target over HTTP. Control requests are not recorded.
    #[must_use]
    pub fn control_url(&self, status: u16) -> String {
        self.url(&format!("{CONTROL_STATUS}{status}"))
    }

    /// Answers every later request this way (after any enqueued answers).
    pub fn respond(&self, response: MockResponse) {
        *self
            .state
            .default
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = response;
    }

    /// Answers the next request this way, once.
    pub fn enqueue(&self, response: MockResponse) {
        self.state
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(response);
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// TCP connections accepted so far.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` requests have arrived, or panics after `within`.
    ///
    /// # Panics
    /// When fewer than `count` requests arrive in time.
    pub async fn wait_for_requests(&self, count: usize, within: Duration) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {count} requests within {within:?}, got {}",
                    self.requests().len()
                );
            }
        }
    }
}

impl Drop for MockTarget {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A URL on a loopback port where nothing listens, so connections are refused.
///
/// # Panics
/// When no loopback port can be bound.
#[must_use]
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a local address");
    drop(listener);
    format!("http://{addr}")
}

async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, state: Arc<State>) {
    // The connections live in this set, so aborting the server task drops every one of them.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else { continue };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| answer(request, state.clone()));
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// The path prefix of the control endpoint; see [`MockTarget::control_url`].
const CONTROL_STATUS: &str = "/__control/status/";

async fn answer(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    // The control endpoint: `POST /__control/status/{code}` makes every later answer that
    // status, as `respond` does, so a test (or another process) can flip a target over HTTP.
    // Control requests are not recorded.
    if let Some(code) = parts.uri.path().strip_prefix(CONTROL_STATUS)
        && parts.method == http::Method::POST
    {
        let answer = match code.parse::<u16>().ok().filter(|c| (100..600).contains(c)) {
            Some(code) => {
                *state.default.lock().unwrap_or_else(PoisonError::into_inner) =
                    MockResponse::status(code);
                StatusCode::NO_CONTENT
            }
            None => StatusCode::BAD_REQUEST,
        };
        return Ok(Response::builder()
            .status(answer)
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
    }
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: parts.headers,
        body,
    };
    let response = state.next_response();
    state
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(recorded);
    state.arrived.notify_waiters();
    if response.hang {
        std::future::pending::<()>().await;
    }
    if !response.delay.is_zero() {
        tokio::time::sleep(response.delay).await;
    }
    let mut builder =
        Response::builder().status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK));
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    Ok(builder
        .body(Full::new(response.body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

//! The accept loop: hyper 1 connections with optional TLS, a cap on open connections, a header read
//! timeout against slowloris clients, and graceful draining at shutdown.
//!
//! axum's own `serve` offers none of these knobs, so connections are served here with
//! hyper-util's auto (HTTP/1.1 and HTTP/2) builder and the router as the service.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How the listener treats connections.
#[derive(Clone, Debug)]
pub(crate) struct ListenerConfig {
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_peer: usize,
    pub(crate) http2_max_concurrent_streams: u32,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

/// Builds the TLS acceptor from PEM files, with the ring provider.
pub(crate) fn tls_acceptor(cert_file: &Path, key_file: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("reading {}", cert_file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", cert_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key in {}", key_file.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and waits up
/// to `drain` for open requests to finish. Returns how many connections were still open when the
/// drain deadline passed (they are closed).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    config: ListenerConfig,
    shutdown: CancellationToken,
    drain: Duration,
) -> usize {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let peers = Peers::new(config.max_connections_per_peer);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let mut connections = JoinSet::new();
    let (mut refused, mut refused_peer): (u64, u64) = (0, 0);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(refused, max = config.max_connections, "connection cap reached; refusing connections");
                    }
                    drop(stream);
                    continue;
                };
                let Some(peer_slot) = peers.admit(peer.ip()) else {
                    refused_peer += 1;
                    if refused_peer.is_power_of_two() {
                        tracing::warn!(refused = refused_peer, peer = %peer.ip(), max = config.max_connections_per_peer, "per-peer connection cap reached; refusing that peer's connections");
                    }
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let activity = Arc::new(Activity::default());
                let service = Tracked {
                    inner: TowerToHyperService::new(router.clone()),
                    activity: activity.clone(),
                };
                let builder = builder.clone();
                let tls = tls.clone();
                let shutdown = shutdown.clone();
                let (handshake_timeout, idle_timeout) = (config.header_read_timeout, config.idle_timeout);
                connections.spawn(async move {
                    let _slots = (permit, peer_slot);
                    match tls {
                        None => {
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            drive(conn, &activity, (idle_timeout, handshake_timeout), &shutdown).await;
                        }
                        Some(acceptor) => {
                            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(err)) => {
                                    tracing::debug!(error = %err, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake timed out");
                                    return;
                                }
                            };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            drive(conn, &activity, (idle_timeout, handshake_timeout), &shutdown).await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!(
        open = connections.len(),
        "no longer accepting connections; draining"
    );
    // Each connection saw `shutdown` and is closing gracefully: it finishes its open requests
    // and takes no new one.
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let left = if drained.is_ok() {
        0
    } else {
        connections.len()
    };
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    left
}

/// Serves one connection until it ends; it is closed gracefully (open requests are answered,
/// no new one is taken) once it has been idle for `idle_timeout` or when shutdown begins. An idle
/// connection that has not finished closing `grace` later (an HTTP/2 peer that never answers the
/// closing PING, say) is dropped.
async fn drive<C>(
    conn: C,
    activity: &Activity,
    timeouts: (Duration, Duration),
    shutdown: &CancellationToken,
) where
    C: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
        + GracefulConnection,
{
    let (idle_timeout, grace) = timeouts;
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    let mut dropped_at: Option<tokio::time::Instant> = None;
    loop {
        let drop_at = dropped_at;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(idle_timeout), if !closing => {
                tracing::debug!(idle_ms = idle_timeout.as_millis(), "closing an idle connection");
                closing = true;
                dropped_at = Some(tokio::time::Instant::now() + grace);
                conn.as_mut().graceful_shutdown();
            }
            () = async { tokio::time::sleep_until(drop_at.unwrap_or_else(tokio::time::Instant::now)).await }, if drop_at.is_some() => {
                tracing::debug!("an idle connection did not close in time; dropping it");
                return;
            }
        }
    }
}

/// A connection that can be closed gracefully: hyper-util's auto connection, over plain TCP or
/// TLS.
trait GracefulConnection {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// What one connection is doing: its requests in flight, and a count of requests begun, so the
/// idle timer knows whether anything happened while it waited.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    begun: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.begun.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight, nor begun, for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            let begun = self.begun.load(Ordering::SeqCst);
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            if tokio::time::timeout(timeout, changed).await.is_err()
                && self.begun.load(Ordering::SeqCst) == begun
                && self.in_flight.load(Ordering::SeqCst) == 0
            {
                return;
            }
        }
    }
}

/// A request in flight on its connection; dropping it ends it.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// The router as a hyper service that tells its connection's [`Activity`] about each request.
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response = <TowerToHyperService<Router> as hyper::service::Service<
        hyper::Request<hyper::body::Incoming>,
    >>::Response;
    type Error = <TowerToHyperService<Router> as hyper::service::Service<
        hyper::Request<hyper::body::Incoming>,
    >>::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        })
    }
}

/// Open connections by peer address, against the per-peer cap.
#[derive(Clone, Debug)]
struct Peers {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Peers {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, unless it has `max` open already.
    fn admit(&self, ip: IpAddr) -> Option<PeerSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

/// One open connection of a peer; dropping it frees the slot.
#[derive(Debug)]
struct PeerSlot {
    peers: Peers,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self
            .peers
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The process's limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere or when
/// it is unlimited.
pub(crate) fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Warns when `max_connections` can't be reached because the process may not open that many
/// files: past the limit, `accept` fails instead of the cap refusing cleanly, and the queue and
/// the targets' connections compete for what is left.
pub(crate) fn check_open_files(max_connections: usize) {
    /// Files the server needs besides client connections: the queue, the targets' connection
    /// pools, the config watcher, logs.
    const RESERVE: u64 = 256;
    if let Some(limit) = open_files_limit()
        && (max_connections as u64).saturating_add(RESERVE) > limit
    {
        tracing::warn!(
            max_connections,
            open_files_limit = limit,
            "server.max_connections (plus about {RESERVE} files for the queue and the targets) \
             is above the process's open-file limit (RLIMIT_NOFILE); raise the limit \
             (ulimit -n, LimitNOFILE=) or lower max_connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127355               127355               processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn a_peer_gets_at_most_its_share_of_connections() {
        let peers = Peers::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = peers.admit(a).unwrap();
        let _second = peers.admit(a).unwrap();
        assert!(peers.admit(a).is_none());
        assert!(peers.admit(b).is_some());
        drop(first);
        assert!(peers.admit(a).is_some());
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Arc::new(Activity::default());
        let request = activity.begin();
        // In flight: never idle, however long.
        let waited = tokio::select! {
            biased;
            () = activity.idle_for(Duration::ZERO) => false,
            () = tokio::task::yield_now() => true,
        };
        assert!(waited);
        drop(request);
        activity.idle_for(Duration::ZERO).await;
    }
}

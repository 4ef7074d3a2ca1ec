//! The accept loop: hyper 1 connections with optional TLS, a cap on open connections, a header read
//! timeout against slowloris clients, and graceful draining at shutdown.
//!
//! axum's own `serve` offers none of these knobs, so connections are served here with
//! hyper-util's auto (HTTP/1.1 and HTTP/2) builder and the router as the service.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How the listener treats connections.
#[derive(Clone, Debug)]
pub(crate) struct ListenerConfig {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
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
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let mut connections = JoinSet::new();
    let mut refused: u64 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
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
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                let handshake_timeout = config.header_read_timeout;
                connections.spawn(async move {
                    let _permit = permit;
                    match tls {
                        None => {
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            if let Err(err) = watcher.watch(conn).await {
                                tracing::debug!(error = %err, "connection ended with an error");
                            }
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
                            if let Err(err) = watcher.watch(conn).await {
                                tracing::debug!(error = %err, "connection ended with an error");
                            }
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
    let left = match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => 0,
        Err(_) => connections.len(),
    };
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    left
}

//! A cap on open connections per host, below one connection pool. Each target has a pool of its
//! own (`HttpClient::with_own_pool`), so the cap is per target and host.
//!
//! hyper-util's pooled client opens a new connection whenever a request finds no idle one, even if
//! a busy connection frees up a moment later, and then keeps it. Under load a target would see
//! more connections than requests in flight. This connector holds a semaphore permit per host
//! (scheme, host and port) for as long as each connection lives, so a host never sees more than
//! the cap: a request that finds no idle connection waits for one, because the pool hands it the
//! first connection that comes free while the new connect waits for a permit.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// Wraps a connector so that at most `per_host` connections to one host are open at once.
#[derive(Clone, Debug)]
pub(crate) struct LimitedConnector<C> {
    inner: C,
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl<C> LimitedConnector<C> {
    pub(crate) fn new(inner: C, per_host: usize) -> Self {
        Self {
            inner,
            per_host: per_host.max(1),
            hosts: Arc::default(),
        }
    }

    fn semaphore(&self, uri: &Uri) -> Arc<Semaphore> {
        let key = format!(
            "{}://{}:{}",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or(""),
            uri.port_u16().unwrap_or(0)
        );
        // One entry per distinct host the targets name: bounded by the configuration.
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> Service<Uri> for LimitedConnector<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    type Response = Permitted<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let semaphore = self.semaphore(&uri);
        // `poll_ready` was called on this clone's inner connector; keep that one for the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let permit = semaphore.acquire_owned().await?;
            let io = inner.call(uri).await.map_err(Into::into)?;
            Ok(Permitted {
                io,
                _permit: permit,
            })
        })
    }
}

/// A connection that holds its host's permit until it is dropped.
#[derive(Debug)]
pub(crate) struct Permitted<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: Connection> Connection for Permitted<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Permitted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Permitted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

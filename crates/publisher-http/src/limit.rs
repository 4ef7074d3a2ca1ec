//! Connection caps over the one shared connection pool.
//!
//! Every target's client shares one hyper pool (idle connections are kept per scheme, host and
//! port, whichever target opened them), and each target holds a [`Claim`] on it: its in-flight
//! limit. Two caps follow from the claims:
//! - **per target**, a request waits for one of its claim's slots before it reaches the pool, so
//!   a target never has more requests open than its limit, whatever its caller does;
//! - **per host**, the connector holds a semaphore permit per host (scheme, host and port) for
//!   as long as each connection lives, and a host's permits are the sum of the claims of the
//!   targets that have sent to it. hyper-util's pool opens a new connection whenever a request
//!   finds no idle one, even if a busy connection frees up a moment later, and then keeps it;
//!   with the permits, a request that finds no idle connection waits for one instead.
//!
//! So a target that stops answering holds at most its own claim's connections, and the host's
//! other targets always find theirs: their claims are on top of its.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tower_service::Service;

/// The key a host's cap is kept under: scheme, host and port, as the pool keys its connections.
fn host_key(uri: &Uri) -> (&str, &str, u16) {
    (
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or(""),
        uri.port_u16().unwrap_or(0),
    )
}

/// One host's connection cap: the sum of the claims made on it.
#[derive(Debug)]
pub(crate) struct HostCap {
    /// Its host, as `scheme://host:port`: one string, kept once (the set of caps is keyed by it).
    key: Box<str>,
    permits: Arc<Semaphore>,
    /// Permits given back by released claims while their connections were still open: that
    /// many connections forget their permit when they close instead of returning it.
    debt: AtomicUsize,
}

impl HostCap {
    fn is(&self, (scheme, host, port): (&str, &str, u16)) -> bool {
        self.key
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .and_then(|rest| rest.strip_prefix(host))
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|rest| rest.parse() == Ok(port))
    }

    /// Raises the cap by `n`, paying back any debt first.
    fn add(&self, n: usize) {
        let debt = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                Some(debt - debt.min(n))
            })
            .unwrap_or_else(|debt| debt);
        self.permits.add_permits(n - debt.min(n));
    }

    /// Lowers the cap by `n`: free permits go at once, the rest as connections close.
    fn remove(&self, n: usize) {
        let forgotten = self.permits.forget_permits(n);
        self.debt.fetch_add(n - forgotten, Ordering::AcqRel);
    }

    /// Whether a closing connection's permit must be forgotten, to pay a debt.
    fn take_debt(&self) -> bool {
        self.debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                debt.checked_sub(1)
            })
            .is_ok()
    }
}

/// Every host's cap, shared by the connector and the claims. One entry per distinct host the
/// targets have sent to: bounded by the configuration.
#[derive(Debug, Default)]
pub(crate) struct Hosts(Mutex<HashSet<Held>>);

/// A cap in [`Hosts`], found by its key.
#[derive(Debug)]
struct Held(Arc<HostCap>);

impl Borrow<str> for Held {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Held {}

impl Hash for Held {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key.hash(state);
    }
}

impl Hosts {
    /// The cap of `uri`'s host, made at zero on first sight. Called when a claim first sends to
    /// a host and when a connection opens, not for every request.
    fn get(&self, uri: &Uri) -> Arc<HostCap> {
        let (scheme, host, port) = host_key(uri);
        let key = format!("{scheme}://{host}:{port}");
        let mut hosts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = hosts.get(key.as_str()) {
            return Arc::clone(&held.0);
        }
        let cap = Arc::new(HostCap {
            key: key.into_boxed_str(),
            permits: Arc::new(Semaphore::new(0)),
            debt: AtomicUsize::new(0),
        });
        hosts.insert(Held(Arc::clone(&cap)));
        cap
    }
}

/// One target's hold on the shared pool: at most `limit` requests of its own at once, and
/// `limit` connections added to the cap of each host it sends to. Released when the last
/// client holding it is dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    limit: usize,
    requests: Semaphore,
    hosts: Arc<Hosts>,
    /// The hosts this claim has raised the cap of.
    claimed: Mutex<Vec<Arc<HostCap>>>,
}

impl Claim {
    pub(crate) fn new(hosts: Arc<Hosts>, limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            limit,
            requests: Semaphore::new(limit),
            hosts,
            claimed: Mutex::new(Vec::new()),
        }
    }

    /// The host caps this claim draws on, for another claim on the same pool.
    pub(crate) fn hosts(&self) -> Arc<Hosts> {
        Arc::clone(&self.hosts)
    }

    /// Waits for one of the claim's request slots, after raising `uri`'s host cap by the claim
    /// if this is its first request there.
    pub(crate) async fn slot(&self, uri: &Uri) -> SemaphorePermit<'_> {
        {
            let key = host_key(uri);
            let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
            if !claimed.iter().any(|cap| cap.is(key)) {
                let cap = self.hosts.get(uri);
                cap.add(self.limit);
                claimed.push(cap);
            }
        }
        // Never closed: the claim owns the semaphore.
        self.requests
            .acquire()
            .await
            .unwrap_or_else(|_closed| unreachable!("a claim never closes its semaphore"))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let claimed = self
            .claimed
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for cap in claimed.drain(..) {
            cap.remove(self.limit);
        }
    }
}

/// Wraps a connector so that a host never has more connections open than its cap.
#[derive(Clone, Debug)]
pub(crate) struct LimitedConnector<C> {
    inner: C,
    hosts: Arc<Hosts>,
}

impl<C> LimitedConnector<C> {
    pub(crate) fn new(inner: C, hosts: Arc<Hosts>) -> Self {
        Self { inner, hosts }
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
        let cap = self.hosts.get(&uri);
        // `poll_ready` was called on this clone's inner connector; keep that one for the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let permit = Arc::clone(&cap.permits).acquire_owned().await?;
            let io = inner.call(uri).await.map_err(Into::into)?;
            Ok(Permitted {
                io,
                permit: Some(permit),
                cap,
            })
        })
    }
}

/// A connection that holds its host's permit until it is dropped.
#[derive(Debug)]
pub(crate) struct Permitted<T> {
    io: T,
    permit: Option<OwnedSemaphorePermit>,
    cap: Arc<HostCap>,
}

impl<T> Drop for Permitted<T> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take()
            && self.cap.take_debt()
        {
            permit.forget();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_hosts_cap_is_the_sum_of_its_claims_and_shrinks_as_they_go() {
        let hosts = Arc::new(Hosts::default());
        let host = uri("http://127.0.0.1:9/a");
        let cap = hosts.get(&host);
        let (a, b) = (
            Claim::new(Arc::clone(&hosts), 3),
            Claim::new(Arc::clone(&hosts), 2),
        );
        drop(a.slot(&host).await);
        assert_eq!(cap.permits.available_permits(), 3);
        // A second request of the same claim does not raise the cap again.
        drop(a.slot(&uri("http://127.0.0.1:9/other")).await);
        drop(b.slot(&host).await);
        assert_eq!(cap.permits.available_permits(), 5);
        // Another host has a cap of its own.
        drop(b.slot(&uri("https://127.0.0.1:9/")).await);
        assert_eq!(cap.permits.available_permits(), 5);

        // Two connections are open when `a` goes: one permit is free to forget now, and the
        // other two connections forget theirs as they close.
        let open: Vec<_> = (0..4)
            .map(|_| Arc::clone(&cap.permits).try_acquire_owned().unwrap())
            .collect();
        drop(a);
        assert_eq!(cap.permits.available_permits(), 0);
        assert_eq!(cap.debt.load(Ordering::Acquire), 2);
        for permit in open {
            drop(Permitted {
                io: (),
                permit: Some(permit),
                cap: Arc::clone(&cap),
            });
        }
        assert_eq!(cap.permits.available_permits(), 2, "b's claim is left");
        drop(b);
        assert_eq!(cap.permits.available_permits(), 0);
    }

    #[tokio::test]
    async fn a_claim_bounds_its_own_requests() {
        let hosts = Arc::new(Hosts::default());
        let claim = Claim::new(hosts, 2);
        let host = uri("http://127.0.0.1:9/");
        let (first, second) = (claim.slot(&host).await, claim.slot(&host).await);
        let third = tokio::time::timeout(std::time::Duration::from_millis(10), claim.slot(&host));
        assert!(third.await.is_err(), "a third request waits");
        drop((first, second));
        drop(claim.slot(&host).await);
    }
}

//! The benchmarking mock targets: hyper 1 HTTP/1.1 servers on 127.0.0.1, one per port, each with
//! its own response delay and status, or a closed port that refuses connections.
//!
//! Every request's header-arrival instant is recorded (hyper calls the service once the request
//! head is parsed, before the body is read, so the instant does not include the target's delay)
//! with the alert's `labels.bench_id` from the generic webhook body. Accepted TCP connections are
//! counted per port, which is how the runner checks that alertpub reuses its connections.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How one mock port behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Behaviour {
    /// Answers with this status after this delay.
    Answer { delay: Duration, status: u16 },
    /// Nothing listens on the port: connections are refused.
    Refuse,
}

impl Behaviour {
    /// A 200 after `delay_ms`.
    pub(crate) fn ok_after(delay_ms: u64) -> Self {
        Self::Answer {
            delay: Duration::from_millis(delay_ms),
            status: 200,
        }
    }
}

/// One request as it reached a mock target.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    /// The port's index in the pool.
    pub(crate) target: usize,
    /// The alert's `labels.bench_id`.
    pub(crate) id: u64,
    /// When the request head had been read.
    pub(crate) at: Instant,
}

#[derive(Default)]
struct Log {
    arrivals: Vec<Arrival>,
    /// (target, id) pairs seen at least once, so completion can be checked without a scan.
    unique: HashSet<(usize, u64)>,
    /// Unique pairs per target.
    unique_per_target: Vec<u64>,
    /// Requests without a `bench_id` (alertpub's health probes) per target: not deliveries.
    others_per_target: Vec<u64>,
}

struct Shared {
    log: Mutex<Log>,
    /// Bumped on every arrival, so the runner can wait for completion without sleeping.
    changed: watch::Sender<u64>,
}

/// One port's connection counts.
#[derive(Default)]
struct Counters {
    /// Accepted so far.
    accepted: AtomicU64,
    /// Accepted so far that carried at least one delivery: a health probe's connection, closed
    /// after its answer, is counted in `accepted` only.
    delivering: AtomicU64,
    /// Open now.
    open: AtomicU64,
    /// The most open at once: tells reuse beyond the lane's limit (more accepted than open at
    /// once: connections closed and replaced) from parallel connections beyond it.
    peak_open: AtomicU64,
}

/// A pool of mock targets, stopped on drop.
pub(crate) struct MockPool {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    connections: Vec<Arc<Counters>>,
    tasks: JoinSet<()>,
}

impl MockPool {
    /// Starts one mock per behaviour, each on its own free loopback port.
    pub(crate) async fn start(behaviours: &[Behaviour]) -> Result<Self> {
        let shared = Arc::new(Shared {
            log: Mutex::new(Log {
                unique_per_target: vec![0; behaviours.len()],
                others_per_target: vec![0; behaviours.len()],
                ..Log::default()
            }),
            changed: watch::channel(0).0,
        });
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        let mut connections = Vec::new();
        for (index, behaviour) in behaviours.iter().enumerate() {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding a mock target")?;
            let addr = listener.local_addr()?;
            let counters = Arc::new(Counters::default());
            match *behaviour {
                // The port was just free and is closed again at once, so connecting is refused.
                Behaviour::Refuse => drop(listener),
                Behaviour::Answer { delay, status } => {
                    let status = StatusCode::from_u16(status).context("a mock status")?;
                    tasks.spawn(accept_loop(
                        listener,
                        index,
                        delay,
                        status,
                        Arc::clone(&shared),
                        Arc::clone(&counters),
                    ));
                }
            }
            addrs.push(addr);
            connections.push(counters);
        }
        Ok(Self {
            shared,
            addrs,
            connections,
            tasks,
        })
    }

    /// The URL of mock `index`.
    pub(crate) fn url(&self, index: usize) -> String {
        format!("http://{}/hook", self.addrs[index])
    }

    /// How many mocks the pool has.
    pub(crate) fn len(&self) -> usize {
        self.addrs.len()
    }

    /// TCP connections each mock accepted so far.
    pub(crate) fn connections(&self) -> Vec<u64> {
        self.connections
            .iter()
            .map(|c| c.accepted.load(Ordering::Relaxed))
            .collect()
    }

    /// TCP connections each mock accepted that carried at least one delivery.
    pub(crate) fn delivery_connections(&self) -> Vec<u64> {
        self.connections
            .iter()
            .map(|c| c.delivering.load(Ordering::Relaxed))
            .collect()
    }

    /// The most TCP connections each mock had open at once.
    pub(crate) fn peak_open_connections(&self) -> Vec<u64> {
        self.connections
            .iter()
            .map(|c| c.peak_open.load(Ordering::Relaxed))
            .collect()
    }

    /// Every arrival so far, in arrival order.
    pub(crate) fn arrivals(&self) -> Vec<Arrival> {
        self.lock().arrivals.clone()
    }

    /// How many deliveries arrived so far.
    pub(crate) fn arrivals_count(&self) -> u64 {
        self.lock().arrivals.len() as u64
    }

    /// Unique (target, id) deliveries so far, per target.
    pub(crate) fn unique_per_target(&self) -> Vec<u64> {
        self.lock().unique_per_target.clone()
    }

    /// Requests without a `bench_id` (health probes) so far, per target.
    pub(crate) fn others_per_target(&self) -> Vec<u64> {
        self.lock().others_per_target.clone()
    }

    /// Waits until each target in `targets` has seen `per_target` unique ids, or `within` passes.
    /// Returns whether it got there.
    pub(crate) async fn wait_for(
        &self,
        targets: &[usize],
        per_target: u64,
        within: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut changes = self.shared.changed.subscribe();
        loop {
            // Marked seen before the check, so an arrival between the check and the wait still
            // wakes us.
            changes.borrow_and_update();
            let done = {
                let log = self.lock();
                targets
                    .iter()
                    .all(|&t| log.unique_per_target[t] >= per_target)
            };
            if done {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for MockPool {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    index: usize,
    delay: Duration,
    status: StatusCode,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
) {
    // The connections live in this set, so aborting the accept loop (the pool's drop) ends them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accept = listener.accept() => {
                let Ok((stream, _)) = accept else { continue };
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
                counters.peak_open.fetch_max(open, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let counters = Arc::clone(&counters);
                connections.spawn(async move {
                    let delivered = Arc::new(AtomicBool::new(false));
                    let counted = Arc::clone(&counters);
                    let service = service_fn(move |request| {
                        let seen = Seen {
                            connection: Arc::clone(&delivered),
                            counters: Arc::clone(&counted),
                        };
                        handle(request, index, (delay, status), Arc::clone(&shared), seen)
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Whether a connection has carried a delivery yet, and its port's counts.
struct Seen {
    connection: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

async fn handle(
    request: Request<Incoming>,
    index: usize,
    (delay, status): (Duration, StatusCode),
    shared: Arc<Shared>,
    seen: Seen,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // The head has been parsed: this is the header-arrival instant of SPEC §9.
    let at = Instant::now();
    let body = request
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    {
        let mut log = shared
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ids = bench_ids(&body);
        if ids.is_empty() {
            log.others_per_target[index] += 1;
        } else if !seen.connection.swap(true, Ordering::Relaxed) {
            seen.counters.delivering.fetch_add(1, Ordering::Relaxed);
        }
        for id in ids {
            log.arrivals.push(Arrival {
                target: index,
                id,
                at,
            });
            if log.unique.insert((index, id)) {
                log.unique_per_target[index] += 1;
            }
        }
    }
    shared.changed.send_modify(|n| *n += 1);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    *response.status_mut() = status;
    Ok(response)
}

/// The `labels.bench_id` of a generic webhook body (or of the direct baseline's body, same
/// shape), or of each alert of an Alertmanager webhook body (`alerts: [...]`).
fn bench_ids(body: &[u8]) -> Vec<u64> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let id = |alert: &serde_json::Value| alert["labels"]["bench_id"].as_str()?.parse().ok();
    match value["alerts"].as_array() {
        Some(alerts) => alerts.iter().filter_map(id).collect(),
        None => id(&value).into_iter().collect(),
    }
}

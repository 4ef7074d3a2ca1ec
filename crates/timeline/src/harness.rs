//! Runs a [`Timeline`] against the real parts: the fanout dispatcher, the in-memory job store
//! (the same contract as redb's), the webhook publisher over publisher-http, health and circuit
//! breakers, all reading one [`TestClock`] on tokio's clock. The targets answer in the process
//! (publisher-http's in-memory transport), so a runtime with paused time runs hours of alert
//! lifetime in milliseconds.
//!
//! What the harness plays itself, as the server would:
//! - ingest's normalisation of each source (Prometheus's `endsAt`, `resolve_timeout` for an API v2
//!   alert without one, no end for a firing webhook alert) and one `enqueue_batch` per message;
//! - the maintenance pass, once a second (`JobStore::sweep`: auto-resolve);
//! - `kill -9`: the dispatcher is dropped (every lane and attempt aborted, nothing settled) and a
//!   new one starts on the same store, with fresh health and breakers, as a restart has.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{
    Admission, Alert, Annotations, BoxFuture, Clock, EnrichedAlert, InMemoryMessageRefs, JobStore,
    KindSettings, Labels, LaneQueue, StaticTargetSource, SweepPlan, Target, TargetEntry,
    TargetKind, TargetName, TargetSet, TestClock,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use fanout::{CancellationToken, Dispatcher, DispatcherConfig, DispatcherHandle};
use health::{BreakerConfig, CircuitBreakers, HealthConfig, HealthRegistry};
use publisher_http::{BuildContext, ClientConfig, HttpClient, InMemoryHandler};
use queue::MemoryJobStore;
use tokio::time::Instant;

use crate::model::{
    DRAIN_SECS, Fault, PROMETHEUS_END_SECS, REPEAT_SECS, RESOLVE_TIMEOUT_SECS, Received, Source,
    Timeline,
};

/// How long the harness runs after the timeline's last event; see [`DRAIN_SECS`].
pub const DRAIN: Duration = Duration::from_secs(DRAIN_SECS as u64);

/// The wall time the timeline starts at.
fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn at(secs: u32) -> DateTime<Utc> {
    epoch() + chrono::Duration::seconds(i64::from(secs))
}

/// A target that answers in the process, as its faults say, and records what it took in.
struct MockTarget {
    index: u8,
    start: Instant,
    faults: Vec<crate::model::Window>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl MockTarget {
    fn fault_at(&self, secs: f64) -> Option<Fault> {
        self.faults
            .iter()
            .find(|w| {
                w.target == self.index && f64::from(w.from) <= secs && secs < f64::from(w.until)
            })
            .map(|w| w.fault)
    }

    fn record(&self, secs: f64, request: &http::Request<Bytes>) {
        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap_or_default();
        let name = body["labels"]["alertname"].as_str().unwrap_or_default();
        let alert = name.trim_start_matches('A').parse().unwrap_or(u8::MAX);
        let starts_at = body["starts_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map_or(u32::MAX, |s| {
                u32::try_from((s.with_timezone(&Utc) - epoch()).num_seconds()).unwrap_or(u32::MAX)
            });
        let key = request
            .headers()
            .get("Idempotency-Key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Received {
                at: secs,
                target: self.index,
                alert,
                status: body["status"].as_str().unwrap_or_default().to_owned(),
                starts_at,
                key,
            });
    }
}

impl InMemoryHandler for MockTarget {
    fn handle(&self, request: http::Request<Bytes>) -> BoxFuture<'static, http::Response<Bytes>> {
        let secs = self.start.elapsed().as_secs_f64();
        let answer = |status: u16| {
            http::Response::builder()
                .status(status)
                .body(Bytes::new())
                .unwrap_or_default()
        };
        match self.fault_at(secs) {
            Some(Fault::Down) => Box::pin(std::future::ready(answer(503))),
            Some(Fault::RateLimited(retry_after)) => {
                let mut response = answer(429);
                if let Some(secs) = retry_after
                    && let Ok(value) = http::HeaderValue::from_str(&secs.to_string())
                {
                    response.headers_mut().insert("Retry-After", value);
                }
                Box::pin(std::future::ready(response))
            }
            Some(Fault::Slow(delay)) => {
                // The target took it in; its answer is late (maybe past the attempt's timeout).
                self.record(secs, &request);
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
                    answer(200)
                })
            }
            None => {
                self.record(secs, &request);
                Box::pin(std::future::ready(answer(200)))
            }
        }
    }
}

/// The parts a restart rebuilds.
struct Running {
    _handle: DispatcherHandle,
    _stop: CancellationToken,
}

fn start_dispatcher(
    store: &Arc<dyn JobStore>,
    source: &Arc<StaticTargetSource>,
    clock: &Arc<dyn Clock>,
) -> Running {
    let health = Arc::new(
        HealthRegistry::new(HealthConfig::default())
            .unwrap_or_else(|e| panic!("health: {e}"))
            .with_clock(Arc::clone(clock)),
    );
    let breakers = Arc::new(
        CircuitBreakers::with_clock(BreakerConfig::default(), Arc::clone(clock))
            .unwrap_or_else(|e| panic!("breakers: {e}")),
    );
    // Lanes are woken by every enqueue and sweep; a long idle poll keeps hours of virtual time
    // cheap.
    let config = DispatcherConfig {
        idle_poll: Duration::from_secs(30),
        ..DispatcherConfig::default()
    };
    let stop = CancellationToken::new();
    let lanes: Arc<dyn LaneQueue> = store.clone();
    let handle = Dispatcher::builder(lanes, source.clone())
        .health(health)
        .gate(breakers)
        .clock(Arc::clone(clock))
        .config(config)
        .build()
        .start(stop.clone());
    Running {
        _handle: handle,
        _stop: stop,
    }
}

/// The alert an occurrence's message carries, normalised as ingest normalises its source.
fn message(timeline: &Timeline, send: &crate::model::Send) -> EnrichedAlert {
    let o = &timeline.occurrences[send.occurrence];
    let labels: Labels = [("alertname".to_owned(), format!("A{}", o.alert))].into();
    let ends = match (send.resolved_at, o.source) {
        (Some(end), _) => Some(at(end)),
        (None, Source::ApiV2 { explicit_end: true }) => Some(at(send.at + PROMETHEUS_END_SECS)),
        (
            None,
            Source::ApiV2 {
                explicit_end: false,
            },
        ) => Some(at(send.at + RESOLVE_TIMEOUT_SECS)),
        (None, Source::Webhook) => None,
    };
    let alert = Alert::build(labels, Annotations::new(), at(o.start), ends, None)
        .unwrap_or_else(|e| panic!("an occurrence makes a valid alert: {e}"));
    EnrichedAlert::new(alert)
}

/// Runs `timeline` on the current runtime (which should have paused time) and returns what the
/// targets received, in order.
pub async fn run(timeline: &Timeline) -> Vec<Received> {
    let start = Instant::now();
    // The one clock every part reads, as the server has: the timeline's wall-time epoch, on
    // tokio's (paused) clock.
    let clock: Arc<dyn Clock> = Arc::new(TestClock::on_tokio_time(epoch()));
    let received = Arc::new(Mutex::new(Vec::new()));
    let names: Vec<TargetName> = (0..timeline.targets)
        .map(|i| TargetName::new(&format!("t{i}")).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut entries = Vec::new();
    for (index, name) in (0_u8..).zip(&names) {
        let mock = Arc::new(MockTarget {
            index,
            start,
            faults: timeline.faults.clone(),
            received: Arc::clone(&received),
        });
        let client = HttpClient::in_memory(&ClientConfig::default(), mock);
        let context = BuildContext::new(name.clone(), client, Arc::new(InMemoryMessageRefs::new()));
        let settings: KindSettings =
            serde_json::from_value(serde_json::json!({"url": format!("http://{name}.test/hook")}))
                .unwrap_or_else(|e| panic!("{e}"));
        let publisher = publishers_webhook::from_settings(&settings, &context)
            .unwrap_or_else(|e| panic!("the webhook publisher: {e}"));
        entries.push(TargetEntry::new(
            Target::new(name.clone(), TargetKind::Webhook),
            publisher,
        ));
    }
    let source = Arc::new(StaticTargetSource::new(
        TargetSet::new(entries).unwrap_or_else(|e| panic!("{e}")),
    ));
    let store: Arc<dyn JobStore> =
        Arc::new(MemoryJobStore::new(100_000).with_clock(Arc::clone(&clock)));
    // The store tells the lanes of the dispatcher running now of new work (each dispatcher
    // registers itself as it starts), as the server's does.
    let mut running = start_dispatcher(&store, &source, &clock);
    let restart = |running: Running| {
        // kill -9: every lane and attempt is dropped where it stands.
        drop(running);
        start_dispatcher(&store, &source, &clock)
    };

    // The maintenance pass, once a second, as the server runs it.
    let sweeper = {
        let store = Arc::clone(&store);
        let clock = Arc::clone(&clock);
        let plan = SweepPlan::new(
            names.iter().map(|n| (n.clone(), None)).collect(),
            Duration::from_secs(120 * 3600),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                // A failed pass is retried at the next tick.
                let _ = store.sweep(&plan, clock.now()).await;
            }
        })
    };

    let mut restarts = timeline.restarts.clone();
    restarts.sort_unstable();
    let mut restarts = restarts.into_iter().peekable();
    let repeat = Some(Duration::from_secs(u64::from(REPEAT_SECS)));
    for send in timeline.sends() {
        while let Some(&r) = restarts.peek().filter(|&&r| r <= send.at) {
            tokio::time::sleep_until(start + Duration::from_secs(u64::from(r))).await;
            running = restart(running);
            restarts.next();
        }
        tokio::time::sleep_until(start + Duration::from_secs(u64::from(send.at))).await;
        let alert = Arc::new(message(timeline, &send));
        let batch = names
            .iter()
            .map(|n| Admission::new(n.clone(), Arc::clone(&alert), repeat))
            .collect();
        // The store tells the lanes of the jobs; a refused batch is not retried here.
        let _ = store.enqueue_batch(batch, clock.now()).await;
    }
    let end = start + Duration::from_secs(u64::from(timeline.length)) + DRAIN;
    for r in restarts {
        tokio::time::sleep_until(start + Duration::from_secs(u64::from(r))).await;
        running = restart(running);
    }
    tokio::time::sleep_until(end).await;
    sweeper.abort();
    drop(running);
    let mut received =
        std::mem::take(&mut *received.lock().unwrap_or_else(PoisonError::into_inner));
    received.sort_by(|a, b| a.at.total_cmp(&b.at));
    received
}

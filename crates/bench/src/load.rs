//! The load generator: one alert per `POST /api/v2/alerts`, each with a unique `bench_id` label,
//! at a fixed rate or from K concurrent senders. The instant taken just before each request is
//! the start of SPEC §9's latency.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;

/// One request's deadline: far above any healthy answer, so only a stuck server hits it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One alert as the generator sent it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    /// Its `bench_id`.
    pub(crate) id: u64,
    /// Just before the request was handed to the client.
    pub(crate) at: Instant,
    /// When its answer was read (or it failed).
    pub(crate) answered: Instant,
    /// Whether it was answered 2xx.
    pub(crate) ok: bool,
}

/// The HTTP/1.1 keep-alive client, used both for alertpub and for the direct baseline.
#[derive(Clone)]
pub(crate) struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Sender {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self { client }
    }

    /// POSTs `body` as JSON; true on a 2xx answer read to its end within the timeout.
    pub(crate) async fn post(&self, url: &str, body: Bytes) -> bool {
        let Ok(request) = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(body))
        else {
            return false;
        };
        let exchange = async {
            let response = self.client.request(request).await.ok()?;
            let ok = response.status().is_success();
            response.into_body().collect().await.ok()?;
            Some(ok)
        };
        matches!(
            tokio::time::timeout(REQUEST_TIMEOUT, exchange).await,
            Ok(Some(true))
        )
    }

    /// GETs `url`; true on a 200.
    pub(crate) async fn get_ok(&self, url: &str) -> bool {
        let Ok(request) = http::Request::get(url).body(Full::new(Bytes::new())) else {
            return false;
        };
        let exchange = async {
            let response = self.client.request(request).await.ok()?;
            let ok = response.status() == http::StatusCode::OK;
            response.into_body().collect().await.ok()?;
            Some(ok)
        };
        matches!(
            tokio::time::timeout(REQUEST_TIMEOUT, exchange).await,
            Ok(Some(true))
        )
    }

    /// GETs `url` as text; `None` on any failure (it is only reported).
    pub(crate) async fn get_text(&self, url: &str) -> Option<String> {
        let request = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
        let exchange = async {
            let response = self.client.request(request).await.ok()?;
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some(String::from_utf8_lossy(&body).into_owned())
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.ok()?
    }

    /// GETs `url` and parses the answer as JSON; `None` on any failure (it is only reported).
    pub(crate) async fn get_json(&self, url: &str) -> Option<serde_json::Value> {
        let request = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
        let exchange = async {
            let response = self.client.request(request).await.ok()?;
            let body = response.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice(&body).ok()
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.ok()?
    }
}

/// The ingest body for alert `id`: one alert, as Prometheus would send it.
pub(crate) fn ingest_body(id: u64) -> Bytes {
    Bytes::from(format!(
        r#"[{{"labels":{{"alertname":"BenchAlert","severity":"warning","service":"bench","bench_id":"{id}"}},"annotations":{{"summary":"benchmark alert {id}"}}}}]"#
    ))
}

/// The direct baseline's body for alert `id`: the generic webhook shape alertpub would send,
/// about the same size, so the mock does the same work for it.
pub(crate) fn webhook_body(id: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"version":"1","alert_name":"BenchAlert","fingerprint":"{id:016x}","status":"firing","labels":{{"alertname":"BenchAlert","severity":"warning","service":"bench","bench_id":"{id}"}},"annotations":{{"summary":"benchmark alert {id}"}},"starts_at":"2026-01-01T00:00:00Z","ends_at":null,"generator_url":null,"classification":null,"enrichment":{{}}}}"#
    ))
}

/// Sends alerts `0..rate*seconds` at a fixed rate, each on its own task so a slow answer never
/// holds back the schedule. Bounded by the count; each request by its timeout.
pub(crate) async fn at_rate(
    sender: &Sender,
    url: &str,
    per_second: u32,
    seconds: u32,
) -> Vec<Sent> {
    let (sender, url) = (sender.clone(), url.to_owned());
    at_rate_by(per_second, seconds, move |id| {
        let (sender, url) = (sender.clone(), url.clone());
        async move { sender.post(&url, ingest_body(id)).await }
    })
    .await
}

/// [`at_rate`] with `send(id)` doing one alert's work and reporting success.
pub(crate) async fn at_rate_by<F, Fut>(per_second: u32, seconds: u32, send: F) -> Vec<Sent>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let count = u64::from(per_second) * u64::from(seconds);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut tasks = JoinSet::new();
    for id in 0..count {
        ticker.tick().await;
        let work = send(id);
        tasks.spawn(async move {
            let at = Instant::now();
            let ok = work.await;
            Sent {
                id,
                at,
                answered: Instant::now(),
                ok,
            }
        });
    }
    let mut sent = Vec::with_capacity(tasks.len());
    while let Some(result) = tasks.join_next().await {
        if let Ok(one) = result {
            sent.push(one);
        }
    }
    sent
}

/// Sends `0..count` from `senders` concurrent loops, each taking the next id, until all are sent
/// or `within` has passed. `send(id)` does one alert's work and reports success.
pub(crate) async fn concurrent<F, Fut>(
    count: u64,
    senders: usize,
    within: Duration,
    send: F,
) -> Vec<Sent>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + within;
    let mut tasks = JoinSet::new();
    for _ in 0..senders {
        let next = Arc::clone(&next);
        let send = send.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= count || Instant::now() >= deadline {
                    break mine;
                }
                let at = Instant::now();
                let ok = send(id).await;
                mine.push(Sent {
                    id,
                    at,
                    answered: Instant::now(),
                    ok,
                });
            }
        });
    }
    let mut sent = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(mine) = result {
            sent.extend(mine);
        }
    }
    sent
}

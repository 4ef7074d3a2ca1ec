//! Active health probes: a `GET` to each target's probe URL, over the shared HTTP stack.

use std::fmt;
use std::sync::Arc;

use alert_core::{ErrorKind, HealthProbe, PublishError, TargetEntry, TargetSource, wire};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::Method;
use publisher_http::{Classify, HttpClient, HttpRequest, HttpResponse, RequestError};
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::error::HealthError;
use crate::state::{HealthRegistry, ProbeResult, TargetHealth};

/// Finds the health probe of a target, if it has one.
///
/// Any `Fn(&TargetEntry) -> Option<HealthProbe>` is one. Each publisher crate knows how its kind
/// is probed (which URL, which credentials); the server passes a lookup that asks them.
pub trait ProbeLookup: Send + Sync + 'static {
    /// The probe for this target, or `None` when it cannot be probed.
    fn probe_for(&self, entry: &TargetEntry) -> Option<HealthProbe>;

    /// The client the target's own calls go through (its claim on the shared pool), so that a probe
    /// shares the target's connection cap instead of opening a connection beside it; `None` (the
    /// default) sends it through the prober's shared client.
    fn client_for(&self, entry: &TargetEntry) -> Option<HttpClient> {
        let _ = entry;
        None
    }
}

impl<F> ProbeLookup for F
where
    F: Fn(&TargetEntry) -> Option<HealthProbe> + Send + Sync + 'static,
{
    fn probe_for(&self, entry: &TargetEntry) -> Option<HealthProbe> {
        self(entry)
    }
}

/// Accepts every status: for a probe, any HTTP answer means the target is reachable. SaaS
/// endpoints answer `GET` with 4xx or 405, and a 2xx-only check would call them all unhealthy.
struct AnyStatus;

impl Classify for AnyStatus {
    fn classify(&self, _response: &HttpResponse) -> Result<(), PublishError> {
        Ok(())
    }
}

/// Probes targets, periodically and on demand, and records what it finds in a
/// [`HealthRegistry`].
///
/// A probe is a `GET` of the target's [`HealthProbe`] URL with its headers, through the target's
/// own client when the lookup gives one ([`ProbeLookup::client_for`]) and the shared
/// [`HttpClient`] otherwise, within the configured timeout, with `Connection: close` so that no
/// connection stays open after it. Any HTTP answer means reachable (a success, with
/// its latency); a DNS, TCP or TLS failure, or no answer in time, is a failure; a 401 or 403 to a
/// probe that carries credentials, or an answer whose body the probe's
/// [`auth_refused`](HealthProbe::auth_refused) check recognises (Slack's
/// `200 {"ok":false,"error":"invalid_auth"}`), makes the target degraded (`auth`). At most
/// `max_concurrent_probes` probes run at once, counting manual checks.
///
/// The prober spawns nothing: [`run`](Self::run) is a future its owner awaits (or aborts), and
/// dropping any of its futures cancels the probes in flight.
///
/// ```no_run
/// use std::sync::Arc;
/// use alert_core::{StaticTargetSource, TargetEntry, TargetSet};
/// use health::{HealthConfig, HealthRegistry, Prober};
/// use publisher_http::{ClientConfig, HttpClient};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn example(targets: TargetSet, probe_of: fn(&TargetEntry) -> Option<alert_core::HealthProbe>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Arc::new(HealthRegistry::new(HealthConfig::default())?);
/// let source = Arc::new(StaticTargetSource::new(targets));
/// let client = HttpClient::new(&ClientConfig::default())?;
/// let prober = Prober::new(registry.clone(), source, client, probe_of);
///
/// let shutdown = CancellationToken::new();
/// let checks = prober.run(shutdown.clone()); // awaited by its owner, beside the server
/// # drop(checks);
/// let health = prober.check_now("ops-webhook").await?; // an operator's manual check
/// assert_eq!(health.target, "ops-webhook");
/// # Ok(())
/// # }
/// ```
pub struct Prober {
    registry: Arc<HealthRegistry>,
    source: Arc<dyn TargetSource>,
    client: HttpClient,
    probes: Box<dyn ProbeLookup>,
    permits: Semaphore,
}

impl Prober {
    /// A prober of the targets in `source`, recording into `registry` and timed and bounded by
    /// its [`HealthConfig`](crate::HealthConfig). `probes` finds each target's probe.
    pub fn new(
        registry: Arc<HealthRegistry>,
        source: Arc<dyn TargetSource>,
        client: HttpClient,
        probes: impl ProbeLookup,
    ) -> Self {
        let permits = Semaphore::new(registry.config().max_concurrent_probes);
        Self {
            registry,
            source,
            client,
            probes: Box::new(probes),
            permits,
        }
    }

    /// The registry it records into.
    #[must_use]
    pub fn registry(&self) -> &Arc<HealthRegistry> {
        &self.registry
    }

    /// Probes every enabled, probeable target at once (bounded by `max_concurrent_probes`), then
    /// again every `interval`, until `shutdown` is cancelled. A round that runs past the interval
    /// delays the next one rather than overlapping it.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.registry.config().interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                probed = self.probe_all() => {
                    tracing::debug!(probed, "health probe round finished");
                }
            }
        }
    }

    /// Runs one round: probes every enabled target that has a probe, at most
    /// `max_concurrent_probes` at a time, and returns how many were probed.
    ///
    /// A target's probe is built only when its turn comes, so a round holds at most
    /// `max_concurrent_probes` probes at once however many targets there are: the first round
    /// of a thousand targets does not make a thousand requests' worth of memory at startup.
    pub async fn probe_all(&self) -> usize {
        let targets = self.source.snapshot();
        let limit = self.registry.config().max_concurrent_probes.max(1);
        let mut waiting = targets.iter().filter(|entry| entry.target.is_enabled());
        let mut running = FuturesUnordered::new();
        let mut probed = 0;
        loop {
            while running.len() < limit {
                let Some(entry) = waiting.next() else { break };
                running.push(self.probe_entry(entry));
            }
            let Some(done) = running.next().await else {
                return probed;
            };
            match done {
                None => {}
                Some((_, Ok(_))) => probed += 1,
                Some((target, Err(error))) => {
                    tracing::warn!(target_name = target, %error, "health probe not sent");
                }
            }
        }
    }

    /// Probes `entry` if it has a probe.
    async fn probe_entry<'a>(
        &self,
        entry: &'a TargetEntry,
    ) -> Option<(&'a str, Result<TargetHealth, HealthError>)> {
        let probe = self.probes.probe_for(entry)?;
        let own = self.probes.client_for(entry);
        let client = own.as_ref().unwrap_or(&self.client);
        let target = entry.target.name.as_str();
        Some((target, self.probe_and_record(target, &probe, client).await))
    }

    /// Probes one target now, whatever the schedule (and even if it is disabled: an operator
    /// asked), and returns its new health. It shares the `max_concurrent_probes` bound with the
    /// rounds.
    ///
    /// # Errors
    /// [`HealthError::UnknownTarget`] when no target has this name,
    /// [`HealthError::NotProbeable`] when it has no probe, and [`HealthError::InvalidProbe`] when
    /// its probe cannot be sent.
    pub async fn check_now(&self, target: &str) -> Result<TargetHealth, HealthError> {
        let targets = self.source.snapshot();
        let entry = targets
            .get(target)
            .ok_or_else(|| HealthError::UnknownTarget(target.to_owned()))?;
        let probe = self
            .probes
            .probe_for(entry)
            .ok_or_else(|| HealthError::NotProbeable(target.to_owned()))?;
        let client = self.probes.client_for(entry);
        let client = client.as_ref().unwrap_or(&self.client);
        self.probe_and_record(target, &probe, client).await
    }

    async fn probe_and_record(
        &self,
        target: &str,
        probe: &HealthProbe,
        client: &HttpClient,
    ) -> Result<TargetHealth, HealthError> {
        // The semaphore is never closed, so this always yields a permit; were it closed, probing
        // unbounded would still be better than not probing.
        let _permit = self.permits.acquire().await.ok();
        let result = self.probe(target, probe, client).await?;
        tracing::debug!(target_name = target, ?result, "health probe finished");
        Ok(self.registry.record_probe(target, &result))
    }

    async fn probe(
        &self,
        target: &str,
        probe: &HealthProbe,
        client: &HttpClient,
    ) -> Result<ProbeResult, HealthError> {
        let invalid = |error: RequestError| HealthError::InvalidProbe {
            target: target.to_owned(),
            message: error.to_string(),
        };
        // The probe's connection is closed once it answers: an idle target then holds no socket
        // and no connection buffers between probes (tens of KB each, a socket each, for every
        // configured target). A busy target loses one warm connection per probe interval.
        let mut request = HttpRequest::secret_url(Method::GET, &probe.url)
            .and_then(|request| request.header("connection", "close"))
            .map_err(invalid)?;
        for (name, value) in &probe.headers {
            request = request.secret_header(name, value).map_err(invalid)?;
        }
        let shown_url = request.redacted_url();
        let timeout = self.registry.config().timeout;
        let started = Instant::now();
        let answer = tokio::time::timeout(timeout, client.send(request, &AnyStatus)).await;
        let latency = started.elapsed();
        let (status, body_refuses_auth) = match answer {
            // The body was read whole, within the client's response-size limit, so a check of
            // it reads a bounded amount.
            Ok(Ok(response)) => (
                response.status.as_u16(),
                probe
                    .auth_refused
                    .is_some_and(|check| check(&response.body)),
            ),
            // The status arrived and reading the body failed (too large, cut short): the target
            // did answer over HTTP, which is all a probe asks. There is no body to check.
            Ok(Err(error)) => match error.status_code {
                Some(status) => (status, false),
                None => return Ok(ProbeResult::Unreachable(error)),
            },
            Err(_elapsed) => {
                return Ok(ProbeResult::Unreachable(PublishError::new(
                    ErrorKind::Timeout,
                    format!(
                        "GET {shown_url}: no answer within {} ms",
                        wire::duration_ms(timeout)
                    ),
                )));
            }
        };
        let status_refuses_auth = probe.carries_credentials() && matches!(status, 401 | 403);
        Ok(if status_refuses_auth || body_refuses_auth {
            ProbeResult::AuthRejected { status, latency }
        } else {
            ProbeResult::Reachable { status, latency }
        })
    }
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("config", self.registry.config())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

//! The running service: every part, built once from the config and shared by the handlers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Admission, Admitted, Clock, DeliveryHistory, JobStore, JobStoreError, SystemClock, TargetEntry,
    TargetName, TargetSource,
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use discovery::{Config, FileSource, HealthStrategyName};
use fanout::{
    Dispatcher, DispatcherConfig, DispatcherHandle, DispatcherWaker, FanoutEngine, HealthStrategy,
    PublishOptions,
};
use health::{BreakerConfig, CircuitBreakers, HealthConfig, HealthRegistry, Prober};
use publisher_http::{ClientConfig, HttpClient};
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::budget::BodyBudget;
use crate::ingest::{self, AlertLimits, OpenEnd, Refused};
use crate::registry::PublisherRegistry;
use crate::stats::{PublishStats, ServerObserver};

/// Everything a handler needs.
pub(crate) struct App {
    pub(crate) config: Arc<Config>,
    /// The config file: reloads and their status.
    pub(crate) source: Arc<FileSource>,
    /// The targets in force: the file's, merged with Kubernetes Secrets' when discovery is on.
    pub(crate) targets: Arc<dyn TargetSource>,
    pub(crate) health: Arc<HealthRegistry>,
    pub(crate) breakers: Arc<CircuitBreakers>,
    pub(crate) prober: Arc<Prober>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) stats: Arc<PublishStats>,
    pub(crate) engine: FanoutEngine,
    pub(crate) store: Arc<dyn JobStore>,
    /// Every attempt's outcome, kept with the queue.
    pub(crate) history: Arc<dyn DeliveryHistory>,
    pub(crate) dispatcher: DispatcherWaker,
    /// The Kubernetes discovery's count of Secrets skipped as invalid, when it is on.
    pub(crate) invalid_secrets: Option<InvalidSecrets>,
    pub(crate) auth: Option<Auth>,
    pub(crate) limits: AlertLimits,
    /// The bytes of request bodies being read and parsed at once.
    pub(crate) body_budget: BodyBudget,
    pub(crate) publish_defaults: PublishOptions,
    pub(crate) started_at: DateTime<Utc>,
    /// The one clock: ingest, replay, the sweeper, the dispatcher, the engine, health and the
    /// breakers all read it, so a job is due when the clock that stamped it says so.
    pub(crate) clock: Arc<dyn Clock>,
    /// Cancelled when shutdown begins: `/readyz` then answers 503.
    pub(crate) shutdown: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// The background work the app owns; the caller awaits it at shutdown.
pub(crate) struct Background {
    /// The dispatcher: it stops leasing when shutdown begins and finishes what is in flight.
    pub(crate) dispatcher: DispatcherHandle,
    /// The prober and the config watcher.
    pub(crate) tasks: tokio::task::JoinSet<()>,
    /// The delivery history's recorder, and what stops it: after the dispatcher, so the records
    /// of the last attempts are kept.
    pub(crate) history: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl App {
    /// Loads the config and starts the dispatcher, the prober and the config watcher. They stop
    /// when `shutdown` is cancelled. `storage_path` (`--storage.path`) replaces `queue.path`.
    pub(crate) async fn start(
        config_path: &Path,
        storage_path: Option<&Path>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Arc<Self>, Background)> {
        // Until the targets are built and the server is about to serve, freed memory goes back
        // to the system at once.
        let startup = crate::memory::Startup::begin();
        // The queue opens first: its file also keeps the publishers' message refs (Slack `ts`,
        // Rootly alert ids), so resolves find their message after a restart. `queue.*` changes
        // need a restart, so reading that part before the full load is safe.
        let text = std::fs::read_to_string(config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let early = discovery::parse(&text, config_path)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let client = http_client(&early)?;
        let mut queue = early.queue;
        if let Some(path) = storage_path {
            queue.path = storage_file(path);
        }
        let store = crate::store::open(&queue, &early.ingest, &clock).await?;
        let registry = Arc::new(PublisherRegistry::new(client.clone(), store.refs.clone()));
        let source =
            Arc::new(FileSource::load(config_path, registry.clone())?.with_clock(clock.clone()));
        let config = source.config();
        let mut tasks = tokio::task::JoinSet::new();
        let (targets, invalid_secrets) =
            discovered_targets(&config, source.clone(), &registry, &mut tasks, &shutdown).await?;
        let breakers = circuit_breakers(&config, &clock)?;
        // The history's recorder outlives the dispatcher: it stops once the attempts still in
        // flight at shutdown have ended (`Background::history`), so their records are kept.
        let history_stop = CancellationToken::new();
        let mut history_task = None;
        let recorder = (config.queue.history_max_records > 0).then(|| {
            let (recorder, run) = crate::history::Recorder::start(
                store.history.clone(),
                config.queue.history(),
                clock.clone(),
                history_stop.clone(),
            );
            history_task = Some(tokio::spawn(run));
            recorder
        });
        let (metrics, stats, observer) = observability(recorder)?;
        let health = health_registry(&config, &clock, &metrics)?;
        let engine = FanoutEngine::builder(targets.clone())
            .health(health.clone())
            .gate(breakers.clone())
            .observer(observer.clone())
            .clock(clock.clone())
            .build();
        let lanes = store.lanes.clone();
        let history = store.history.clone();
        let store: Arc<dyn JobStore> = store.jobs;
        let dispatcher = Dispatcher::builder(lanes, targets.clone())
            .health(health.clone())
            .gate(breakers.clone())
            .observer(observer)
            .clock(clock.clone())
            .config(dispatcher_config(&config))
            .build()
            .start(shutdown.child_token());
        let prober = Arc::new(Prober::new(
            health.clone(),
            targets.clone(),
            client,
            TargetProbes(registry.clone()),
        ));
        let app = Arc::new(Self {
            auth: auth(&config)?,
            publish_defaults: publish_defaults(&config)?,
            limits: AlertLimits {
                max_ends_ahead: config.ingest.max_ends_ahead.into(),
                ..AlertLimits::default()
            },
            body_budget: BodyBudget::new(
                config.server.max_body_bytes_in_flight,
                config.server.max_body_bytes,
            ),
            config,
            source,
            targets,
            health,
            breakers,
            prober,
            metrics,
            stats,
            engine,
            store,
            history,
            dispatcher: dispatcher.waker(),
            invalid_secrets,
            started_at: clock.now(),
            clock,
            shutdown,
        });
        app.spawn_background(&mut tasks);
        startup.done();
        let history = history_task.map(|task| (history_stop, task));
        Ok((
            app,
            Background {
                dispatcher,
                tasks,
                history,
            },
        ))
    }

    /// Starts the prober, the allocator's trims, the config watcher and the queue's maintenance;
    /// they stop at shutdown.
    fn spawn_background(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let (prober, shutdown) = (self.prober.clone(), self.shutdown.clone());
        tasks.spawn(async move { prober.run(shutdown).await });
        tasks.spawn(crate::memory::trim_periodically(self.shutdown.clone()));
        let (source, shutdown) = (self.source.clone(), self.shutdown.clone());
        tasks.spawn(async move { source.watch(shutdown).await });
        tasks.spawn(crate::maintenance::run(
            self.store.clone(),
            self.targets.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            crate::maintenance::Settings {
                log_retention: self.config.ingest.log_retention.into(),
                removal_grace: self.config.queue.removal_grace.into(),
                max_age: self.config.queue.max_age.into(),
            },
            self.shutdown.clone(),
        ));
    }

    /// The current wall time, by the one clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The repeat interval for `entry`: its own, or ingest's default; zero means never.
    fn repeat_interval(&self, entry: &TargetEntry) -> Option<Duration> {
        let interval = entry
            .target
            .repeat_interval
            .unwrap_or_else(|| self.config.ingest.repeat_interval.into());
        (!interval.is_zero()).then_some(interval)
    }

    /// Builds the admission of `alert` for `entry`.
    pub(crate) fn admission(
        &self,
        entry: &TargetEntry,
        alert: Arc<alert_core::EnrichedAlert>,
        starts_at_defaulted: bool,
    ) -> Admission {
        Admission::new(
            entry.target.name.clone(),
            alert,
            self.repeat_interval(entry),
        )
        .with_starts_at_defaulted(starts_at_defaulted)
    }

    /// Commits a batch (the store tells the lanes that got work). The admissions refused because their
    /// target's queue is full are counted per target, in the answer and the metrics; a batch
    /// refused for `ingest.max_active_alerts` is counted too.
    pub(crate) async fn enqueue(&self, batch: Vec<Admission>) -> Result<Enqueued, JobStoreError> {
        if batch.is_empty() {
            return Ok(Enqueued::default());
        }
        let targets: Vec<_> = batch.iter().map(|a| a.target.clone()).collect();
        let admitted = match self.store.enqueue_batch(batch, self.now()).await {
            Ok(admitted) => admitted,
            Err(err) => {
                if matches!(err, JobStoreError::TooManyActiveAlerts { .. }) {
                    self.metrics.add_active_refused();
                }
                return Err(err);
            }
        };
        let mut refused: BTreeMap<TargetName, (u64, u64)> = BTreeMap::new();
        for (target, outcome) in targets.into_iter().zip(&admitted) {
            if let Admitted::TargetFull {
                max_jobs_per_target,
            } = outcome
            {
                refused.entry(target).or_insert((0, *max_jobs_per_target)).0 += 1;
            }
        }
        for (target, (n, _)) in &refused {
            self.metrics.add_target_full(target.as_str(), *n);
        }
        Ok(Enqueued {
            admitted,
            refused: refused.into_iter().collect(),
        })
    }
}

/// What ingest did with a request's alerts (see [`App::ingest`]).
#[derive(Debug)]
pub(crate) struct IngestReport {
    /// The valid alerts.
    pub(crate) accepted: usize,
    /// The jobs made for them.
    pub(crate) jobs: usize,
    /// The admissions that made no job: a re-send that changes nothing a target would see.
    pub(crate) duplicates: usize,
    /// The invalid alerts; the valid ones were committed.
    pub(crate) invalid: Vec<Refused>,
    /// The targets whose queue was full, each with the deliveries refused and its quota; the
    /// other targets' jobs were committed.
    pub(crate) full: Vec<(TargetName, (u64, u64))>,
}

impl App {
    /// Ingest of a request's alerts from `source` (`api_v2`, `alertmanager_webhook`): plans them
    /// ([`ingest::plan`]), commits their admissions in one batch, and reports; the answer to
    /// the sender is made from the report.
    pub(crate) async fn ingest(
        &self,
        items: &[&serde_json::value::RawValue],
        source: &str,
        open_end: OpenEnd,
    ) -> Result<IngestReport, JobStoreError> {
        let plan = ingest::plan(
            items,
            &self.targets.snapshot(),
            self.now(),
            open_end,
            &self.limits,
            |entry, alert, defaulted| self.admission(entry, alert, defaulted),
        );
        let done = self.enqueue(plan.admissions).await?;
        if plan.ends_capped > 0 {
            tracing::warn!(
                capped = plan.ends_capped,
                source,
                "alerts had an endsAt further ahead than ingest.max_ends_ahead; it was brought back"
            );
            self.metrics.add_ends_capped(plan.ends_capped);
        }
        self.metrics.add_ingested(source, plan.accepted as u64);
        let jobs = done.admitted.iter().filter(|a| a.is_enqueued()).count();
        let refused: u64 = done.refused.iter().map(|(_, (n, _))| n).sum();
        let duplicates = done
            .admitted
            .len()
            .saturating_sub(jobs)
            .saturating_sub(usize::try_from(refused).unwrap_or(usize::MAX));
        tracing::debug!(
            source,
            accepted = plan.accepted,
            jobs,
            duplicates,
            refused,
            "alerts ingested"
        );
        Ok(IngestReport {
            accepted: plan.accepted,
            jobs,
            duplicates,
            invalid: plan.invalid,
            full: done.refused,
        })
    }
}

/// What [`App::enqueue`] committed.
#[derive(Debug, Default)]
pub(crate) struct Enqueued {
    /// One answer per admission, in order.
    pub(crate) admitted: Vec<Admitted>,
    /// The targets whose queue was full, each with the admissions refused and its quota.
    pub(crate) refused: Vec<(TargetName, (u64, u64))>,
}

/// Reads the Kubernetes discovery's count of invalid Secrets.
pub(crate) type InvalidSecrets = Box<dyn Fn() -> u64 + Send + Sync>;

/// The file's targets, merged with those of Kubernetes Secrets when `discovery.kubernetes` is set,
/// and the count of Secrets skipped as invalid then. The Kubernetes source and the merge run as
/// background tasks until shutdown.
#[cfg_attr(
    not(feature = "kubernetes"),
    allow(
        clippy::unused_async,
        reason = "only the Kubernetes client is built asynchronously"
    )
)]
async fn discovered_targets(
    config: &Config,
    file: Arc<FileSource>,
    registry: &Arc<PublisherRegistry>,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Arc<dyn TargetSource>, Option<InvalidSecrets>)> {
    let Some(kubernetes) = config.discovery.as_ref().and_then(|d| d.kubernetes.clone()) else {
        return Ok((file, None));
    };
    #[cfg(feature = "kubernetes")]
    {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes for discovery.kubernetes")?;
        tracing::info!(namespace = %kubernetes.namespace, selector = %kubernetes.label_selector, "discovering targets from Kubernetes Secrets");
        let secrets = Arc::new(discovery::KubernetesSource::new(
            client,
            kubernetes,
            registry.clone(),
        ));
        let merged = Arc::new(discovery::MergedSource::new(file, secrets.clone()));
        let counted = secrets.clone();
        let token = shutdown.clone();
        tasks.spawn(async move { secrets.run(token).await });
        let (token, runner) = (shutdown.clone(), merged.clone());
        tasks.spawn(async move { runner.run(token).await });
        Ok((merged, Some(Box::new(move || counted.invalid_secrets()))))
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = (file, registry, tasks, shutdown, kubernetes);
        anyhow::bail!(
            "discovery.kubernetes is set, but this alertpub was built without the `kubernetes` feature"
        )
    }
}

/// The one HTTP client and connection pool. Each target's publisher draws on it under a claim
/// of its in-flight limit (this default, or its own), so a target never sees more connections
/// than its lane's in-flight limit (SPEC §9).
fn http_client(early: &Config) -> anyhow::Result<HttpClient> {
    let in_flight = early.queue.per_target_in_flight;
    HttpClient::new(&ClientConfig::default().with_max_connections_per_host(in_flight))
        .context("building the HTTP client")
}

fn health_registry(
    config: &Config,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<metrics::Metrics>,
) -> anyhow::Result<Arc<HealthRegistry>> {
    let health = &config.health;
    Ok(Arc::new(
        HealthRegistry::new(
            HealthConfig::default()
                .with_interval(health.interval.into())
                .with_timeout(health.timeout.into())
                .with_failure_threshold(health.failure_threshold)
                .with_slow_threshold(health.slow_threshold.into())
                .with_max_concurrent_probes(health.max_concurrent_probes),
        )
        .context("health settings")?
        .with_clock(clock.clone())
        .with_observer(Arc::new(crate::stats::HealthMetrics(metrics.clone()))),
    ))
}

fn circuit_breakers(
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Arc<CircuitBreakers>> {
    let breaker = &config.circuit_breaker;
    Ok(Arc::new(
        CircuitBreakers::with_clock(
            BreakerConfig::default()
                .with_failure_threshold(breaker.failure_threshold)
                .with_open_for(breaker.open_for.into())
                .with_success_threshold(breaker.success_threshold),
            clock.clone(),
        )
        .context("circuit_breaker settings")?,
    ))
}

/// The metrics (with the build's identity on them), the publish API's live totals, and the
/// observer that feeds both from the engine and the dispatcher.
fn observability(
    history: Option<Arc<crate::history::Recorder>>,
) -> anyhow::Result<(
    Arc<metrics::Metrics>,
    Arc<PublishStats>,
    Arc<ServerObserver>,
)> {
    let metrics = Arc::new(metrics::Metrics::new().context("metrics")?);
    metrics.init_counters();
    metrics.set_build_info(
        crate::build_info::VERSION,
        crate::build_info::REVISION,
        crate::build_info::RUST_VERSION,
    );
    let stats = Arc::new(PublishStats::default());
    let observer = Arc::new(ServerObserver {
        metrics: metrics.clone(),
        stats: stats.clone(),
        history,
    });
    Ok((metrics, stats, observer))
}

fn auth(config: &Config) -> anyhow::Result<Option<Auth>> {
    let Some(auth) = &config.server.auth else {
        return Ok(None);
    };
    Auth::load(
        &auth.bearer_tokens_file,
        auth.protect_ingest,
        auth.protect_reads,
    )
    .map(Some)
    .context("server.auth.bearer_tokens_file")
}

/// The queue file `--storage.path` names: the path itself, or `alertpub.redb` in it when it is a
/// directory (Alertmanager's `--storage.path` is one).
fn storage_file(path: &Path) -> std::path::PathBuf {
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        path.join("alertpub.redb")
    } else {
        path.to_path_buf()
    }
}

fn dispatcher_config(config: &Config) -> DispatcherConfig {
    let per_target_timeout: Duration = config.publishing.per_target_timeout.into();
    DispatcherConfig {
        default_in_flight: config.queue.per_target_in_flight,
        max_attempts: config.queue.max_attempts,
        initial_backoff: config.queue.initial_backoff.into(),
        max_backoff: config.queue.max_backoff.into(),
        max_age: config.queue.max_age.into(),
        per_target_timeout,
        lease_ttl: per_target_timeout * 3,
        ..DispatcherConfig::default()
    }
}

fn publish_defaults(config: &Config) -> anyhow::Result<PublishOptions> {
    let strategy = match config.publishing.health_strategy {
        HealthStrategyName::SkipUnhealthy => HealthStrategy::SkipUnhealthy,
        HealthStrategyName::SkipUnhealthyAndDegraded => HealthStrategy::SkipUnhealthyAndDegraded,
        HealthStrategyName::PublishToAll => HealthStrategy::PublishToAll,
    };
    let options = PublishOptions::default()
        .with_timeout(config.publishing.timeout.into())
        .with_per_target_timeout(config.publishing.per_target_timeout.into())
        .with_max_concurrent(config.publishing.max_concurrent)
        .with_health_strategy(strategy);
    options.validate().context("publishing settings")?;
    Ok(options)
}

/// Each target's health probe, sent under the target's own claim on the shared pool, so a probe
/// never opens a connection beyond the target's cap.
struct TargetProbes(Arc<PublisherRegistry>);

impl health::ProbeLookup for TargetProbes {
    fn probe_for(&self, entry: &TargetEntry) -> Option<alert_core::HealthProbe> {
        entry.publisher.health_probe()
    }

    fn client_for(&self, entry: &TargetEntry) -> Option<publisher_http::HttpClient> {
        self.0.client_of(&entry.target.name)
    }
}

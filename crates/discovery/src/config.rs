//! The config file's shape (SPEC §5). Field names are binding: scripts and operators depend on them.

use std::path::PathBuf;
use std::sync::Arc;

use alert_core::{KindSettings, Matcher, RateLimit, TargetKind, TargetName};
use serde::Deserialize;

use crate::duration::Dur;
use crate::hosts::HostPattern;
use crate::limits;

/// The whole config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The HTTP server. Changes need a restart.
    pub server: ServerConfig,
    /// Ingest and the notification log.
    pub ingest: IngestConfig,
    /// The synchronous publish API.
    pub publishing: PublishingConfig,
    /// The durable queue. Changes need a restart.
    pub queue: QueueConfig,
    /// Active health checks.
    pub health: HealthConfig,
    /// Per-target circuit breakers.
    pub circuit_breaker: CircuitBreakerConfig,
    /// The static targets.
    pub targets: Vec<TargetSpec>,
    /// Other target sources.
    pub discovery: Option<DiscoveryConfig>,
}

/// `server:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The listen address, default `127.0.0.1:9097`.
    pub listen: String,
    /// TLS, when set.
    pub tls: Option<TlsConfig>,
    /// Bearer-token auth, when set.
    pub auth: Option<AuthConfig>,
    /// The largest request body, default 4 MiB.
    pub max_body_bytes: usize,
    /// The most alerts in one request, default 10 000.
    pub max_alerts_per_request: usize,
    /// The most open connections, default 4096.
    pub max_connections: usize,
    /// The deadline for a request's headers, default 10s.
    #[serde(deserialize_with = "limits::deadline")]
    pub header_read_timeout: Dur,
    /// The deadline for a request's body, default 30s.
    #[serde(deserialize_with = "limits::deadline")]
    pub body_read_timeout: Dur,
    /// The most bytes of request bodies read and parsed at once, over every connection and
    /// stream, default 64 MiB (never less than `max_body_bytes`).
    pub max_body_bytes_in_flight: usize,
    /// The most open connections from one peer address, default 256.
    pub max_connections_per_peer: usize,
    /// The most concurrent streams of one HTTP/2 connection, default 64.
    pub http2_max_concurrent_streams: u32,
    /// How long a connection may stay open with no request in flight, default 5m.
    pub idle_timeout: Dur,
    /// How long shutdown waits for in-flight requests and publishes, default 30s. What is left
    /// stays in the queue.
    #[serde(deserialize_with = "limits::deadline")]
    pub shutdown_timeout: Dur,
    /// How long `/readyz` answers 503 after the signal while requests are still served, so a
    /// load balancer can drain; part of `shutdown_timeout`. Default 0 (off).
    pub shutdown_delay: Dur,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9097".to_owned(),
            tls: None,
            auth: None,
            max_body_bytes: 4 * 1024 * 1024,
            max_alerts_per_request: 10_000,
            max_connections: 4096,
            header_read_timeout: Dur::secs(10),
            body_read_timeout: Dur::secs(30),
            max_body_bytes_in_flight: 64 * 1024 * 1024,
            max_connections_per_peer: 256,
            http2_max_concurrent_streams: 64,
            idle_timeout: Dur::secs(300),
            shutdown_timeout: Dur::secs(30),
            shutdown_delay: Dur::secs(0),
        }
    }
}

/// `server.tls:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// The certificate chain, PEM.
    pub cert_file: PathBuf,
    /// The private key, PEM.
    pub key_file: PathBuf,
}

/// `server.auth:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthConfig {
    /// A file with one token a line.
    pub bearer_tokens_file: PathBuf,
    /// Whether the two ingest endpoints need a token too.
    #[serde(default)]
    pub protect_ingest: bool,
    /// Whether reads under `/api/v1` (targets, queue, DLQ, publish status) need a token too: the
    /// DLQ holds whole alerts and error snippets, and the targets their names and hosts.
    #[serde(default)]
    pub protect_reads: bool,
}

/// `ingest:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct IngestConfig {
    /// An alert without `endsAt` resolves after this without a refresh; default 5m. It applies
    /// to `POST /api/v2/alerts` only: Alertmanager's webhook zeroes `endsAt` for every firing
    /// alert and re-notifies an unchanged group only every `repeat_interval`.
    pub resolve_timeout: Dur,
    /// A safety net for the Alertmanager webhook receiver: a firing alert from it that is not
    /// re-sent for this long resolves, for an upstream that went away for good. Default 0: off,
    /// so such an alert stays firing until Alertmanager sends it resolved (its receiver needs
    /// `send_resolved: true`).
    pub webhook_resolve_timeout: Dur,
    /// The default for targets; 0 means never repeat. Default 4h.
    pub repeat_interval: Dur,
    /// How long notification-log entries are kept; default 120h.
    pub log_retention: Dur,
    /// How far ahead of now (or of its start) an alert's `endsAt` may lie; a later end is
    /// brought back to it, so that no alert is held for ever. Default 7d.
    pub max_ends_ahead: Dur,
    /// The most notification-log entries held, one per (target, alert fingerprint), firing or
    /// resolved within `log_retention`; a request that would add entries past it is refused
    /// whole with 503 `too_many_active_alerts`. Default 1 000 000. Changes need a restart.
    pub max_active_alerts: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            resolve_timeout: Dur::secs(300),
            webhook_resolve_timeout: Dur::secs(0),
            repeat_interval: Dur::secs(4 * 3600),
            log_retention: Dur::secs(120 * 3600),
            max_ends_ahead: Dur::secs(7 * 24 * 3600),
            max_active_alerts: 1_000_000,
        }
    }
}

/// `publishing:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PublishingConfig {
    /// The synchronous API's overall timeout; default 30s.
    #[serde(deserialize_with = "limits::timeout")]
    pub timeout: Dur,
    /// One attempt's timeout; default 10s.
    #[serde(deserialize_with = "limits::timeout")]
    pub per_target_timeout: Dur,
    /// The most targets called at once by the synchronous API; default 50.
    #[serde(deserialize_with = "limits::concurrent")]
    pub max_concurrent: usize,
    /// `skip_unhealthy`, `skip_unhealthy_and_degraded` or `publish_to_all`.
    pub health_strategy: HealthStrategyName,
}

impl Default for PublishingConfig {
    fn default() -> Self {
        Self {
            timeout: Dur::secs(30),
            per_target_timeout: Dur::secs(10),
            max_concurrent: 50,
            health_strategy: HealthStrategyName::SkipUnhealthy,
        }
    }
}

/// The health strategy's names in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStrategyName {
    /// Skip unhealthy targets.
    #[default]
    SkipUnhealthy,
    /// Skip unhealthy and degraded targets.
    SkipUnhealthyAndDegraded,
    /// Call every target.
    PublishToAll,
}

/// `queue:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Where the queue lives: `redb` (one file, `path`; the default) or `postgres` (a database
    /// that several replicas share: `url` or `url_file`, and `pool_size`).
    pub backend: QueueBackend,
    /// The queue file (`backend: redb`).
    pub path: PathBuf,
    /// The `postgres://` URL (`backend: postgres`), or `${env:VAR}`. It may hold a password, so
    /// it is never printed; prefer `url_file`.
    pub url: Option<alert_core::Secret<String>>,
    /// A file holding the `postgres://` URL (`backend: postgres`).
    pub url_file: Option<PathBuf>,
    /// The most connections to the database (`backend: postgres`); default 16.
    #[serde(deserialize_with = "limits::pool_size")]
    pub pool_size: usize,
    /// Attempts before the DLQ; default 8.
    #[serde(deserialize_with = "limits::attempts")]
    pub max_attempts: u32,
    /// The first backoff; default 1s.
    #[serde(deserialize_with = "limits::interval")]
    pub initial_backoff: Dur,
    /// The backoff cap; default 5m.
    #[serde(deserialize_with = "limits::interval")]
    pub max_backoff: Dur,
    /// Older jobs go to the DLQ as `expired`; default 24h.
    pub max_age: Dur,
    /// The most jobs held; default 1 000 000.
    pub max_jobs: u64,
    /// The most jobs held for one target; unset, a quarter of `max_jobs`.
    pub max_jobs_per_target: Option<u64>,
    /// Each lane's in-flight limit; default 16.
    #[serde(deserialize_with = "limits::in_flight")]
    pub per_target_in_flight: usize,
    /// How long DLQ entries are kept; default 720h.
    pub dlq_retention: Dur,
    /// How long a removed target's jobs wait (in case it comes back) before they go to the DLQ
    /// as `target_removed`; default 5m.
    pub removal_grace: Dur,
    /// The most delivery-history records kept (every attempt's outcome), oldest dropped first;
    /// default 100 000. 0 keeps none.
    pub history_max_records: u64,
    /// How long delivery-history records are kept; default 72h.
    pub history_retention: Dur,
}

impl QueueConfig {
    /// The quota of each target: `max_jobs_per_target`, or a quarter of `max_jobs` (at least 1).
    #[must_use]
    pub fn target_quota(&self) -> u64 {
        self.max_jobs_per_target
            .unwrap_or_else(|| (self.max_jobs / 4).max(1))
    }

    /// The delivery history's retention.
    #[must_use]
    pub fn history(&self) -> alert_core::HistoryRetention {
        alert_core::HistoryRetention {
            max_records: self.history_max_records,
            max_age: self.history_retention.into(),
        }
    }
}

/// `queue.backend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum QueueBackend {
    /// An embedded redb file: one node.
    #[default]
    Redb,
    /// A PostgreSQL database: any number of replicas.
    Postgres,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: QueueBackend::Redb,
            path: PathBuf::from("./data/alertpub.redb"),
            url: None,
            url_file: None,
            pool_size: 16,
            max_attempts: 8,
            initial_backoff: Dur::secs(1),
            max_backoff: Dur::secs(300),
            max_age: Dur::secs(24 * 3600),
            max_jobs: 1_000_000,
            max_jobs_per_target: None,
            per_target_in_flight: 16,
            dlq_retention: Dur::secs(720 * 3600),
            removal_grace: Dur::secs(300),
            history_max_records: 100_000,
            history_retention: Dur::secs(72 * 3600),
        }
    }
}

/// `health:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthConfig {
    /// How often targets are probed; default 2m.
    #[serde(deserialize_with = "limits::interval")]
    pub interval: Dur,
    /// One probe's timeout; default 5s.
    #[serde(deserialize_with = "limits::timeout")]
    pub timeout: Dur,
    /// Consecutive failures before unhealthy; default 3.
    pub failure_threshold: u32,
    /// A success slower than this is degraded; default 5s.
    #[serde(deserialize_with = "limits::deadline")]
    pub slow_threshold: Dur,
    /// The most probes at once; default 10.
    #[serde(deserialize_with = "limits::concurrent")]
    pub max_concurrent_probes: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Dur::secs(120),
            timeout: Dur::secs(5),
            failure_threshold: 3,
            slow_threshold: Dur::secs(5),
            max_concurrent_probes: 10,
        }
    }
}

/// `circuit_breaker:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open a breaker; default 5.
    pub failure_threshold: u32,
    /// How long it stays open; default 30s.
    #[serde(deserialize_with = "limits::interval")]
    pub open_for: Dur,
    /// Trial successes that close it; default 2.
    pub success_threshold: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Dur::secs(30),
            success_threshold: 2,
        }
    }
}

/// `discovery:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DiscoveryConfig {
    /// Targets from Kubernetes Secrets.
    pub kubernetes: Option<KubernetesConfig>,
}

/// `discovery.kubernetes:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KubernetesConfig {
    /// The namespace watched.
    pub namespace: String,
    /// The label selector, default `alertpub.io/target=true`.
    #[serde(default = "default_selector")]
    pub label_selector: String,
    /// The hosts the Secrets' targets may send to: `hooks.slack.com` (that host) or
    /// `.pagerduty.com` (any host under it). Unset, any host but loopback, link-local, private
    /// and internal ones; set, only these, which may then name private ones.
    #[serde(default)]
    pub allowed_hosts: Option<Vec<HostPattern>>,
}

fn default_selector() -> String {
    "alertpub.io/target=true".to_owned()
}

/// One target as configured: the fields every kind shares, and the kind's own settings, which its
/// publisher crate parses.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct TargetSpec {
    /// The unique name (DNS-1123, at most 63 characters).
    pub name: TargetName,
    /// The kind.
    pub kind: TargetKind,
    /// Whether it is enabled; default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Label matchers; all must match. Shared with the target built from it.
    #[serde(default)]
    pub filter: Arc<[Matcher]>,
    /// Overrides `ingest.repeat_interval`.
    #[serde(default)]
    pub repeat_interval: Option<Dur>,
    /// Overrides `publishing.per_target_timeout`.
    #[serde(default, deserialize_with = "limits::opt_timeout")]
    pub timeout: Option<Dur>,
    /// Overrides `queue.per_target_in_flight`.
    #[serde(default, deserialize_with = "limits::opt_in_flight")]
    pub in_flight: Option<usize>,
    /// Overrides the kind's default rate limit.
    #[serde(default, deserialize_with = "limits::opt_rate_limit")]
    pub rate_limit: Option<RateLimit>,
    /// Everything else: the kind's own settings.
    #[serde(flatten)]
    pub settings: KindSettings,
}

fn yes() -> bool {
    true
}

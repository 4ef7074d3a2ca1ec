//! alertpub's metrics, exported as Prometheus text through OpenTelemetry and opentelemetry-prometheus.
//!
//! Metric names follow Prometheus conventions and pass `promtool check metrics`. The process-wide
//! instruments are OpenTelemetry instruments on the meter `alertpub`; the opentelemetry-prometheus
//! exporter adds the unit suffix (`_seconds`) and the counter suffix (`_total`), so the base names
//! here carry neither, and every sample carries an `otel_scope_name="alertpub"` label. The
//! per-target series (`target` label) are a table of this crate's own, rendered on the same
//! registry in the same form: an OpenTelemetry instrument keeps at most 2 000 attribute sets, which
//! a fleet of 400 targets fills (see `targets.rs`).
//!
//! [`Metrics`] implements [`PublishObserver`], so the engine updates the publish metrics itself; the
//! rest are set through plain methods. [`Metrics::render`] produces the `/metrics` response.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use alert_core::{CircuitState, ParallelOutcome, PublishObserver};
//! use metrics::Metrics;
//!
//! let metrics = Metrics::new()?;
//! metrics.on_parallel_publish(ParallelOutcome::Success, Duration::from_millis(12));
//! metrics.set_circuit_state("slack-main", CircuitState::Open);
//! metrics.add_ingested("alertmanager", 3);
//!
//! let (content_type, body) = metrics.render();
//! let text = String::from_utf8(body)?;
//! assert!(content_type.starts_with("text/plain"));
//! assert!(text.contains("# TYPE alertpub_parallel_publish_total counter"));
//! assert!(text.lines().any(|l| l.starts_with("alertpub_ingest_alerts_total{")
//!     && l.contains("source=\"alertmanager\"")
//!     && l.ends_with(" 3")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alert_core::{
    CallOutcome, CircuitState, DeadReason, HealthStatus, ParallelOutcome, PublishObserver,
    SkipReason, StoreCondition, StoreHealth, Target,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _, UpDownCounter};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::Encoder as _;

use crate::targets::{TargetCollector, TargetTable};

mod targets;

/// The name of the OpenTelemetry meter (and the `otel_scope_name` label on every sample).
pub const METER_NAME: &str = "alertpub";

/// Bucket boundaries, in seconds, of the publish duration histograms (up to 60 s).
pub const PUBLISH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bucket boundaries, in seconds, of the ingest-to-delivery histogram: from a fast target's
/// milliseconds to the hours a job can wait out an outage.
pub const DELIVERY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// Bucket boundaries, in seconds, of the HTTP request duration histogram.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why the metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The Prometheus exporter could not be built or registered.
    #[error("building the Prometheus exporter: {0}")]
    Exporter(String),
}

/// The value of `alertpub_target_health_status` for a health status:
/// 0 = unknown, 1 = healthy, 2 = degraded, 3 = unhealthy.
#[must_use]
pub const fn health_value(status: HealthStatus) -> i64 {
    match status {
        HealthStatus::Unknown => 0,
        HealthStatus::Healthy => 1,
        HealthStatus::Degraded => 2,
        HealthStatus::Unhealthy => 3,
    }
}

/// The value of `alertpub_circuit_breaker_state` for a breaker state:
/// 0 = closed, 1 = half_open, 2 = open.
#[must_use]
pub const fn circuit_value(state: CircuitState) -> i64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
    }
}

struct Instruments {
    parallel_duration: Histogram<f64>,
    parallel_total: Counter<u64>,
    in_flight: UpDownCounter<i64>,
    queue_depth: Gauge<u64>,
    queue_retries: Counter<u64>,
    dlq_size: Gauge<u64>,
    ingested: Counter<u64>,
    truncated: Counter<u64>,
    ends_capped: Counter<u64>,
    active_refused: Counter<u64>,
    body_bytes_in_flight: Gauge<u64>,
    http_requests: Counter<u64>,
    http_duration: Histogram<f64>,
    quarantined: Counter<u64>,
    dlq_evicted: Counter<u64>,
    store_condition: Gauge<i64>,
    build_info: Gauge<u64>,
    reload_successful: Gauge<u64>,
    reload_success_time: Gauge<f64>,
    dead_lettered: Counter<u64>,
    invalid_secrets: Counter<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Self {
            parallel_duration: meter
                .f64_histogram("alertpub_parallel_publish_duration")
                .with_description(
                    "Duration of one parallel publish of an alert to all its targets, by result \
                     (success, partial or failure).",
                )
                .with_unit("s")
                .with_boundaries(PUBLISH_BUCKETS.to_vec())
                .build(),
            parallel_total: meter
                .u64_counter("alertpub_parallel_publish")
                .with_description(
                    "Parallel publishes of an alert to all its targets, by result (success, \
                     partial or failure).",
                )
                .build(),
            in_flight: meter
                .i64_up_down_counter("alertpub_publish_in_flight")
                .with_description("Calls to targets currently in flight.")
                .build(),
            queue_depth: meter
                .u64_gauge("alertpub_queue_depth")
                .with_description("Deliveries waiting in the queue, by priority.")
                .build(),
            queue_retries: meter
                .u64_counter("alertpub_queue_retries")
                .with_description("Deliveries the queue scheduled for another attempt.")
                .build(),
            dlq_size: meter
                .u64_gauge("alertpub_dlq_size")
                .with_description("Deliveries in the dead-letter queue.")
                .build(),
            ingested: meter
                .u64_counter("alertpub_ingest_alerts")
                .with_description("Alerts received, by source.")
                .build(),
            truncated: meter
                .u64_counter("alertpub_ingest_truncated_alerts")
                .with_description(
                    "Alerts an upstream Alertmanager left out of its webhook messages \
                     (truncatedAlerts, its receiver's max_alerts); alertpub never saw them.",
                )
                .build(),
            ends_capped: meter
                .u64_counter("alertpub_ingest_ends_at_capped")
                .with_description(
                    "Alerts whose endsAt lay further ahead than ingest.max_ends_ahead and was \
                     brought back to it.",
                )
                .build(),
            active_refused: meter
                .u64_counter("alertpub_ingest_too_many_active_alerts")
                .with_description(
                    "Requests refused with 503 because they would take the active alerts past \
                     ingest.max_active_alerts.",
                )
                .build(),
            body_bytes_in_flight: meter
                .u64_gauge("alertpub_http_body_bytes_in_flight")
                .with_description(
                    "Bytes of request bodies being read and parsed (bounded by \
                     server.max_body_bytes_in_flight).",
                )
                .build(),
            http_requests: meter
                .u64_counter("alertpub_http_requests")
                .with_description("HTTP requests served, by method, route and status.")
                .build(),
            http_duration: meter
                .f64_histogram("alertpub_http_request_duration")
                .with_description("Duration of HTTP requests served, by method and route.")
                .with_unit("s")
                .with_boundaries(HTTP_BUCKETS.to_vec())
                .build(),
            quarantined: meter
                .u64_counter("alertpub_queue_quarantined_records")
                .with_description(
                    "Queue records (jobs, alerts, log entries, dead letters) that could not be \
                     read and were moved to the quarantine table.",
                )
                .build(),
            dlq_evicted: meter
                .u64_counter("alertpub_dlq_evicted")
                .with_description(
                    "Dead letters dropped, oldest first, because the dead-letter queue was at its \
                     cap.",
                )
                .build(),
            store_condition: meter
                .i64_gauge("alertpub_queue_store_condition")
                .with_description(
                    "The queue store's condition: 0 = healthy, 1 = failing (commits keep failing; \
                     it retries by itself), 2 = broken (needs a restart).",
                )
                .build(),
            build_info: meter
                .u64_gauge("alertpub_build_info")
                .with_description(
                    "Always 1; its labels say which build runs: version, revision and \
                     rustversion.",
                )
                .build(),
            reload_successful: meter
                .u64_gauge("alertpub_config_last_reload_successful")
                .with_description("Whether the last configuration reload succeeded (1) or not (0).")
                .build(),
            reload_success_time: meter
                .f64_gauge("alertpub_config_last_reload_success_timestamp")
                .with_description(
                    "When the configuration was last loaded or reloaded successfully, in seconds \
                     since the Unix epoch.",
                )
                .with_unit("s")
                .build(),
            dead_lettered: meter
                .u64_counter("alertpub_queue_dead_lettered")
                .with_description(
                    "Deliveries moved to the dead-letter queue, by reason (permanent, exhausted, \
                     expired or target_removed).",
                )
                .build(),
            invalid_secrets: meter
                .u64_counter("alertpub_discovery_invalid_secrets")
                .with_description(
                    "Kubernetes Secrets of targets skipped as invalid (bad YAML, an unknown \
                     field, a refused host); each is logged with its reason.",
                )
                .build(),
        }
    }
}

/// The slots of [`Inner::seen`].
const SEEN_QUARANTINED: usize = 0;
const SEEN_EVICTED: usize = 1;
const SEEN_SECRETS: usize = 2;

struct Inner {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    instruments: Instruments,
    /// The per-target series (see [`targets`]).
    targets: Arc<TargetTable>,
    /// Totals kept elsewhere as last seen (the store's quarantined records and evicted dead
    /// letters, the discovery's invalid Secrets), so each reading adds only what is new.
    seen: [AtomicU64; 3],
}

/// alertpub's metrics: every instrument of the spec, on its own Prometheus registry.
///
/// Cheap to clone; clones share the instruments and the registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("provider", &self.inner.provider)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with the exporter and every instrument on it.
    ///
    /// # Errors
    ///
    /// [`MetricsError::Exporter`] when the exporter cannot be built.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter(METER_NAME);
        let instruments = Instruments::new(&meter);
        let targets = Arc::new(TargetTable::default());
        let collector = TargetCollector::new(Arc::clone(&targets))
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        registry
            .register(Box::new(collector))
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                provider,
                instruments,
                targets,
                seen: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            }),
        })
    }

    fn ins(&self) -> &Instruments {
        &self.inner.instruments
    }

    /// Starts every per-target series of `target` at zero, so each family is in the output from
    /// the start and `rate()` sees the first failure as an increase. Counters that are never
    /// touched are otherwise missing, and an alert on `increase(...)` would not fire on the first
    /// event.
    pub fn init_target(&self, target: &Target) {
        self.inner.targets.init(target.name.as_str(), target.kind);
    }

    /// Drops the per-target series of every target `keep` refuses (targets no longer configured),
    /// so they leave the output and the table does not grow as targets come and go.
    pub fn retain_targets(&self, keep: impl Fn(&str) -> bool) {
        self.inner.targets.retain(keep);
    }

    /// Starts the process-wide counters at zero (see [`init_target`](Self::init_target)).
    pub fn init_counters(&self) {
        let ins = self.ins();
        ins.queue_retries.add(0, &[]);
        ins.quarantined.add(0, &[]);
        ins.dlq_evicted.add(0, &[]);
        ins.truncated.add(0, &[]);
        ins.ends_capped.add(0, &[]);
        ins.active_refused.add(0, &[]);
        ins.in_flight.add(0, &[]);
        for source in ["api_v2", "alertmanager_webhook"] {
            ins.ingested
                .add(0, &[KeyValue::new("source", source.to_owned())]);
        }
        for result in ["success", "partial", "failure"] {
            ins.parallel_total
                .add(0, &[KeyValue::new("result", result)]);
        }
        ins.invalid_secrets.add(0, &[]);
        for reason in [
            DeadReason::Permanent,
            DeadReason::Exhausted,
            DeadReason::Expired,
            DeadReason::TargetRemoved,
        ] {
            ins.dead_lettered
                .add(0, &[KeyValue::new("reason", reason.as_str())]);
        }
    }

    /// Sets `alertpub_build_info{version,revision,rustversion}` to 1.
    pub fn set_build_info(&self, version: &str, revision: &str, rustversion: &str) {
        self.ins().build_info.record(
            1,
            &[
                KeyValue::new("version", version.to_owned()),
                KeyValue::new("revision", revision.to_owned()),
                KeyValue::new("rustversion", rustversion.to_owned()),
            ],
        );
    }

    /// Records the last configuration reload: `alertpub_config_last_reload_successful`, and
    /// `alertpub_config_last_reload_success_timestamp_seconds` from `last_success` (seconds since
    /// the Unix epoch).
    pub fn set_config_reload(&self, successful: bool, last_success: f64) {
        let ins = self.ins();
        ins.reload_successful.record(u64::from(successful), &[]);
        ins.reload_success_time.record(last_success, &[]);
    }

    /// Brings `alertpub_discovery_invalid_secrets_total` up to `total`, the discovery's count
    /// since the start.
    pub fn record_invalid_secrets(&self, total: u64) {
        self.follow(SEEN_SECRETS, &self.ins().invalid_secrets, total);
    }

    /// Counts one health check of `target` in `alertpub_health_checks_total{target,result}`, and
    /// its answer's time, if it answered, in `alertpub_health_check_duration_seconds{target}`.
    pub fn record_health_check(
        &self,
        target: &str,
        result: &'static str,
        latency: Option<Duration>,
    ) {
        self.inner.targets.health_check(target, result, latency);
    }

    /// Counts a change of `target`'s health in `alertpub_health_transitions_total`.
    pub fn add_health_transition(&self, target: &str, from: HealthStatus, to: HealthStatus) {
        self.inner.targets.health_transition(target, from, to);
    }

    /// Adds `n` to `alertpub_queue_dead_lettered_total{reason}`.
    pub fn add_dead_lettered(&self, reason: DeadReason, n: u64) {
        self.ins()
            .dead_lettered
            .add(n, &[KeyValue::new("reason", reason.as_str())]);
    }

    /// Records one delivery in `alertpub_delivery_latency_seconds{target}`: the time from the
    /// alert's acceptance to the target's answer.
    pub fn record_delivery(&self, target: &Target, since_accepted: Duration) {
        self.inner
            .targets
            .delivered(target.name.as_str(), since_accepted);
    }

    /// Sets `alertpub_target_health_status{target}` (see [`health_value`]).
    pub fn set_target_health(&self, target: &str, status: HealthStatus) {
        self.inner.targets.set_health(target, health_value(status));
    }

    /// Sets `alertpub_circuit_breaker_state{target}` (see [`circuit_value`]).
    pub fn set_circuit_state(&self, target: &str, state: CircuitState) {
        self.inner.targets.set_circuit(target, circuit_value(state));
    }

    /// Sets `alertpub_queue_depth{priority}`.
    pub fn set_queue_depth(&self, priority: &str, depth: u64) {
        self.ins()
            .queue_depth
            .record(depth, &[KeyValue::new("priority", priority.to_owned())]);
    }

    /// Adds `n` to `alertpub_queue_retries_total`.
    pub fn add_queue_retries(&self, n: u64) {
        self.ins().queue_retries.add(n, &[]);
    }

    /// Sets `alertpub_dlq_size`.
    pub fn set_dlq_size(&self, size: u64) {
        self.ins().dlq_size.record(size, &[]);
    }

    /// Records the queue store's health: `alertpub_queue_store_condition`, and what its
    /// process-lifetime counters gained since the last reading in
    /// `alertpub_queue_quarantined_records_total` and `alertpub_dlq_evicted_total`.
    pub fn record_store_health(&self, health: &StoreHealth) {
        let ins = self.ins();
        let condition = match health.condition {
            StoreCondition::Healthy => 0,
            StoreCondition::Failing { .. } => 1,
            _ => 2,
        };
        ins.store_condition.record(condition, &[]);
        self.follow(
            SEEN_QUARANTINED,
            &ins.quarantined,
            health.quarantined_records,
        );
        self.follow(SEEN_EVICTED, &ins.dlq_evicted, health.evicted_dead_letters);
    }

    /// Brings `counter` up to `total`, a count kept elsewhere since the start, by what it
    /// gained since the last reading (slot `slot` of the totals seen).
    fn follow(&self, slot: usize, counter: &Counter<u64>, total: u64) {
        let before = self.inner.seen[slot].fetch_max(total, Ordering::SeqCst);
        counter.add(total.saturating_sub(before), &[]);
    }

    /// Adds `n` to `alertpub_ingest_alerts_total{source}`.
    pub fn add_ingested(&self, source: &str, n: u64) {
        self.ins()
            .ingested
            .add(n, &[KeyValue::new("source", source.to_owned())]);
    }

    /// Adds `n` to `alertpub_ingest_truncated_alerts_total`: alerts an upstream Alertmanager
    /// said it left out of a webhook message.
    pub fn add_truncated(&self, n: u64) {
        self.ins().truncated.add(n, &[]);
    }

    /// Adds `n` to `alertpub_ingest_ends_at_capped_total`.
    pub fn add_ends_capped(&self, n: u64) {
        self.ins().ends_capped.add(n, &[]);
    }

    /// Counts a request refused for `ingest.max_active_alerts`.
    pub fn add_active_refused(&self) {
        self.ins().active_refused.add(1, &[]);
    }

    /// Adds `n` to `alertpub_queue_target_full_total{target}`.
    pub fn add_target_full(&self, target: &str, n: u64) {
        self.inner.targets.add_target_full(target, n);
    }

    /// Sets `alertpub_http_body_bytes_in_flight`.
    pub fn set_body_bytes_in_flight(&self, bytes: u64) {
        self.ins().body_bytes_in_flight.record(bytes, &[]);
    }

    /// Counts one served HTTP request in `alertpub_http_requests_total{method,route,status}` and
    /// records its duration in `alertpub_http_request_duration_seconds{method,route}`.
    ///
    /// `route` should be the route pattern, not the raw path, to keep the label set bounded.
    pub fn record_http_request(&self, method: &str, route: &str, status: u16, duration: Duration) {
        let method = KeyValue::new("method", method.to_owned());
        let route = KeyValue::new("route", route.to_owned());
        self.ins()
            .http_duration
            .record(duration.as_secs_f64(), &[method.clone(), route.clone()]);
        self.ins().http_requests.add(
            1,
            &[method, route, KeyValue::new("status", i64::from(status))],
        );
    }

    /// The Prometheus text exposition of every metric: the Content-Type and the body.
    ///
    /// Encoding into memory only fails for malformed families, which the exporter does not
    /// produce; should it happen, the body holds what was encoded before the failure.
    #[must_use]
    pub fn render(&self) -> (String, Vec<u8>) {
        let encoder = prometheus::TextEncoder::new();
        let families = self.inner.registry.gather();
        let mut body = Vec::new();
        // Writing into a Vec cannot fail on I/O; see the doc comment for the rest.
        let _ = encoder.encode(&families, &mut body);
        (encoder.format_type().to_owned(), body)
    }
}

impl PublishObserver for Metrics {
    fn on_call_started(&self, target: &Target) {
        let _ = target;
        self.ins().in_flight.add(1, &[]);
    }

    fn on_call_finished(&self, target: &Target, outcome: &CallOutcome) {
        self.ins().in_flight.add(-1, &[]);
        let failure = outcome
            .result
            .as_ref()
            .err()
            .map(|error| error.kind.label());
        self.inner.targets.call_finished(
            target.name.as_str(),
            target.kind,
            outcome.duration,
            failure,
        );
    }

    fn on_skipped(&self, target: &Target, reason: SkipReason) {
        self.inner.targets.skipped(target.name.as_str(), reason);
    }

    fn on_parallel_publish(&self, outcome: ParallelOutcome, duration: Duration) {
        let result = [KeyValue::new("result", outcome.as_str())];
        self.ins()
            .parallel_duration
            .record(duration.as_secs_f64(), &result);
        self.ins().parallel_total.add(1, &result);
    }

    fn on_job_dead_lettered(&self, target: &Target, reason: DeadReason) {
        let _ = target;
        self.add_dead_lettered(reason, 1);
    }

    fn on_job_delivered(&self, target: &Target, since_accepted: Duration) {
        self.record_delivery(target, since_accepted);
    }
}

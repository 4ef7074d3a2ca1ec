//! The per-target series: one row of counters per target in a table of our own, rendered by a
//! `prometheus` collector on the same registry as the OpenTelemetry exporter.
//!
//! They are not OpenTelemetry instruments for two reasons, both of which show at fleet scale:
//! - the SDK caps each instrument at 2 000 attribute sets and folds the rest into one
//!   `otel_metric_overflow="true"` series, so with 400 targets the five failure reasons of
//!   `alertpub_target_publish_failures_total` already filled it, and past that an operator's
//!   per-target alert saw nothing;
//! - each attribute set costs the SDK a few hundred bytes (its key twice, sorted and as given, and
//!   a tracker), about 1 KB per idle target. A row here is a fixed block of counters, with each
//!   histogram allocated when it is first recorded.
//!
//! The exposition is the same as the exporter's: the same names, help texts and types, the
//! attributes as labels sorted by name, then `otel_scope_name`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use alert_core::{HealthStatus, SkipReason, TargetKind};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use crate::{DELIVERY_BUCKETS, METER_NAME, PUBLISH_BUCKETS};

/// `outcome` of `alertpub_target_publish_total`.
pub(crate) const OUTCOMES: [&str; 2] = ["success", "failed"];
/// `reason` of `alertpub_target_publish_failures_total`: `ErrorKind::label`.
pub(crate) const FAILURES: [&str; 5] = [
    "transient",
    "rate_limited",
    "permanent",
    "timeout",
    "cancelled",
];
/// `reason` of `alertpub_target_publish_skipped_total`: `SkipReason::as_str`.
pub(crate) const SKIPS: [&str; 5] = [
    "disabled",
    "unhealthy",
    "degraded",
    "circuit_open",
    "filtered",
];
/// `result` of `alertpub_health_checks_total`.
pub(crate) const CHECKS: [&str; 3] = ["reachable", "auth_rejected", "unreachable"];
/// `from` and `to` of `alertpub_health_transitions_total`.
const STATUSES: [HealthStatus; 4] = [
    HealthStatus::Unknown,
    HealthStatus::Healthy,
    HealthStatus::Degraded,
    HealthStatus::Unhealthy,
];

/// How many (`from`, `to`) pairs of [`STATUSES`] differ.
const TRANSITIONS: usize = STATUSES.len() * (STATUSES.len() - 1);

/// The slot of the change `from` → `to` (indexes in [`STATUSES`]); `None` when they are equal.
fn transition(from: usize, to: usize) -> Option<usize> {
    (from != to).then(|| from * (STATUSES.len() - 1) + to - usize::from(to > from))
}

/// The change a slot of [`transition`] counts: (`from`, `to`).
fn transition_of(slot: usize) -> (usize, usize) {
    let (from, rest) = (slot / (STATUSES.len() - 1), slot % (STATUSES.len() - 1));
    (from, rest + usize::from(rest >= from))
}

/// A gauge that was never set.
const UNSET: i64 = i64::MIN;

/// The families this table renders: name, help text, type.
const FAMILIES: [(&str, &str, MetricType); 11] = [
    (
        "alertpub_target_publish_total",
        "Calls to a target, by target, kind and outcome (success or failed).",
        MetricType::COUNTER,
    ),
    (
        "alertpub_target_publish_failures_total",
        "Failed calls to a target, by target and reason (transient, rate_limited, permanent, \
         timeout or cancelled).",
        MetricType::COUNTER,
    ),
    (
        "alertpub_target_publish_skipped_total",
        "Targets not called for an alert, by target and reason (disabled, unhealthy, degraded, \
         circuit_open or filtered).",
        MetricType::COUNTER,
    ),
    (
        "alertpub_target_publish_duration_seconds",
        "Duration of one call to a target, by target and kind.",
        MetricType::HISTOGRAM,
    ),
    (
        "alertpub_target_health_status",
        "Health of a target: 0 = unknown, 1 = healthy, 2 = degraded, 3 = unhealthy.",
        MetricType::GAUGE,
    ),
    (
        "alertpub_circuit_breaker_state",
        "State of a target's circuit breaker: 0 = closed (calls flow), 1 = half_open (one trial \
         call at a time), 2 = open (calls refused).",
        MetricType::GAUGE,
    ),
    (
        "alertpub_queue_target_full_total",
        "Deliveries refused at ingest because their target's queue held \
         queue.max_jobs_per_target jobs (the request was answered 503).",
        MetricType::COUNTER,
    ),
    (
        "alertpub_health_checks_total",
        "Active health checks of a target, by target and result (reachable, auth_rejected or \
         unreachable).",
        MetricType::COUNTER,
    ),
    (
        "alertpub_health_check_duration_seconds",
        "Time a target took to answer a health check, by target.",
        MetricType::HISTOGRAM,
    ),
    (
        "alertpub_health_transitions_total",
        "Changes of a target's health, by target and the status it went from and to (unknown, \
         healthy, degraded, unhealthy).",
        MetricType::COUNTER,
    ),
    (
        "alertpub_delivery_latency_seconds",
        "Time from an alert's acceptance at ingest to its delivery to a target (the target's \
         answer), by target, over retries and outages.",
        MetricType::HISTOGRAM,
    ),
];

/// A bucket's count: `u64`, or `u32` for a histogram that counts health probes (at one a
/// second, 136 years to fill), which every configured target records.
trait BucketCount: Copy + Default + Into<u64> + Send + 'static {
    fn bump(&mut self);
}

impl BucketCount for u64 {
    fn bump(&mut self) {
        *self = self.saturating_add(1);
    }
}

impl BucketCount for u32 {
    fn bump(&mut self) {
        *self = self.saturating_add(1);
    }
}

/// A histogram's counts: one per bucket and one past the last bound.
struct Hist<C> {
    counts: [C; 16],
    sum: f64,
    count: u64,
}

impl<C: BucketCount> Hist<C> {
    fn record(&mut self, bounds: &[f64], value: f64) {
        let bucket = bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(bounds.len());
        self.counts[bucket].bump();
        self.sum += value;
        self.count += 1;
    }

    fn proto(&self, bounds: &[f64]) -> Histogram {
        let mut cumulative = 0;
        let buckets = bounds
            .iter()
            .zip(self.counts)
            .map(|(bound, count)| {
                cumulative += count.into();
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(*bound);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let mut histogram = Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_sum(self.sum);
        histogram.set_sample_count(self.count);
        histogram
    }
}

/// A histogram allocated when it is first recorded.
struct LazyHist<C = u64>(Mutex<Option<Box<Hist<C>>>>);

impl<C> Default for LazyHist<C> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<C: BucketCount> LazyHist<C> {
    fn record(&self, bounds: &[f64], value: f64) {
        let mut hist = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        hist.get_or_insert_with(|| {
            Box::new(Hist {
                counts: [C::default(); 16],
                sum: 0.0,
                count: 0,
            })
        })
        .record(bounds, value);
    }

    fn proto(&self, bounds: &[f64]) -> Option<Histogram> {
        let hist = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        hist.as_ref().map(|hist| hist.proto(bounds))
    }
}

/// One target's series.
struct Row {
    /// Started at zero by `init`: its counters are all in the output. Otherwise only those
    /// counted so far are, as an instrument shows only the attribute sets it has seen.
    started: AtomicBool,
    /// `kind` of the series that carry it, once a call site has said it: 1 + its index in
    /// `TargetKind::ALL`, 0 before. An atomic, as every call's outcome sets it.
    kind: AtomicU8,
    outcomes: [AtomicU64; 2],
    checks: [AtomicU64; 3],
    /// `from` × `to` with `from` ≠ `to` ([`transition`]), rendered once counted. 32 bits: a
    /// status changes at most once a call or a probe, so more than four billion changes of one
    /// target is not a concern.
    transitions: [AtomicU32; TRANSITIONS],
    /// The counters of failures and skips, made at the first: most targets never have one,
    /// and the table keeps a row per configured target.
    rare: OnceLock<Box<Rare>>,
    health: AtomicI64,
    circuit: AtomicI64,
    call_duration: LazyHist,
    check_duration: LazyHist<u32>,
    delivery: LazyHist,
}

/// A row's counters that most targets never use.
struct Rare {
    failures: [AtomicU64; 5],
    skips: [AtomicU64; 5],
    /// Rendered once added to (`u64::MAX`: never).
    target_full: AtomicU64,
}

impl Rare {
    /// Every counter at zero, `target_full` never added to.
    fn new() -> Self {
        Self {
            failures: Default::default(),
            skips: Default::default(),
            target_full: AtomicU64::new(u64::MAX),
        }
    }
}

impl Row {
    /// The row's failure and skip counters, made on first use.
    fn rare(&self) -> &Rare {
        self.rare.get_or_init(|| Box::new(Rare::new()))
    }

    fn new() -> Self {
        Self {
            started: AtomicBool::new(false),
            kind: AtomicU8::new(0),
            outcomes: Default::default(),
            checks: Default::default(),
            transitions: Default::default(),
            rare: OnceLock::new(),
            health: AtomicI64::new(UNSET),
            circuit: AtomicI64::new(UNSET),
            call_duration: LazyHist::default(),
            check_duration: LazyHist::default(),
            delivery: LazyHist::default(),
        }
    }

    fn set_kind(&self, kind: TargetKind) {
        if let Some(i) = TargetKind::ALL.iter().position(|k| *k == kind) {
            // At most 11 kinds, so the index fits.
            #[allow(clippy::cast_possible_truncation)]
            self.kind.store(i as u8 + 1, Ordering::Relaxed);
        }
    }

    fn kind(&self) -> Option<TargetKind> {
        let i = usize::from(self.kind.load(Ordering::Relaxed));
        i.checked_sub(1)
            .and_then(|i| TargetKind::ALL.get(i).copied())
    }
}

/// Adds `n` to the counter of `label` in `slots`, whose labels are `labels`; a label outside the
/// list (a variant added later and not listed here) is not counted.
fn add(slots: &[AtomicU64], labels: &[&str], label: &str, n: u64) {
    if let Some(i) = labels.iter().position(|l| *l == label) {
        slots[i].fetch_add(n, Ordering::Relaxed);
    }
}

/// The per-target table, shared by [`Metrics`](crate::Metrics) and its collector.
#[derive(Default)]
pub(crate) struct TargetTable {
    rows: RwLock<HashMap<Arc<str>, Arc<Row>>>,
}

impl TargetTable {
    /// `target`'s row, made on first sight.
    fn row(&self, target: &str) -> Arc<Row> {
        if let Some(row) = self
            .rows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
        {
            return Arc::clone(row);
        }
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            rows.entry(Arc::from(target))
                .or_insert_with(|| Arc::new(Row::new())),
        )
    }

    /// Makes `target`'s row, so its counters are in the output at zero.
    pub(crate) fn init(&self, target: &str, kind: TargetKind) {
        let row = self.row(target);
        row.set_kind(kind);
        row.started.store(true, Ordering::Relaxed);
    }

    pub(crate) fn call_finished(
        &self,
        target: &str,
        kind: TargetKind,
        duration: Duration,
        failure: Option<&str>,
    ) {
        let row = self.row(target);
        row.set_kind(kind);
        row.call_duration
            .record(PUBLISH_BUCKETS, duration.as_secs_f64());
        match failure {
            None => row.outcomes[0].fetch_add(1, Ordering::Relaxed),
            Some(reason) => {
                add(&row.rare().failures, &FAILURES, reason, 1);
                row.outcomes[1].fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    pub(crate) fn skipped(&self, target: &str, reason: SkipReason) {
        add(&self.row(target).rare().skips, &SKIPS, reason.as_str(), 1);
    }

    pub(crate) fn health_check(&self, target: &str, result: &str, latency: Option<Duration>) {
        let row = self.row(target);
        if let Some(latency) = latency {
            row.check_duration
                .record(PUBLISH_BUCKETS, latency.as_secs_f64());
        }
        add(&row.checks, &CHECKS, result, 1);
    }

    pub(crate) fn health_transition(&self, target: &str, from: HealthStatus, to: HealthStatus) {
        let index = |status| STATUSES.iter().position(|s| *s == status);
        if let (Some(from), Some(to)) = (index(from), index(to))
            && let Some(slot) = transition(from, to)
        {
            self.row(target).transitions[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn delivered(&self, target: &str, since_accepted: Duration) {
        self.row(target)
            .delivery
            .record(DELIVERY_BUCKETS, since_accepted.as_secs_f64());
    }

    pub(crate) fn set_health(&self, target: &str, value: i64) {
        self.row(target).health.store(value, Ordering::Relaxed);
    }

    pub(crate) fn set_circuit(&self, target: &str, value: i64) {
        self.row(target).circuit.store(value, Ordering::Relaxed);
    }

    pub(crate) fn add_target_full(&self, target: &str, n: u64) {
        let row = self.row(target);
        // The first add starts the series at `n`; later ones add to it.
        let _ = row
            .rare()
            .target_full
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                Some(if now == u64::MAX {
                    n
                } else {
                    now.saturating_add(n)
                })
            });
    }

    /// Forgets every target `keep` refuses: a removed target's series leave the output, as
    /// Prometheus expects of a thing that is gone, and the table stays as large as the
    /// configuration however many targets come and go.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.rows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| keep(name));
    }

    /// Every row, sorted by target name.
    fn snapshot(&self) -> Vec<(Arc<str>, Arc<Row>)> {
        let mut rows: Vec<_> = self
            .rows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, row)| (Arc::clone(name), Arc::clone(row)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}

/// Renders a [`TargetTable`] for the `prometheus` registry.
pub(crate) struct TargetCollector {
    table: Arc<TargetTable>,
    descs: Vec<Desc>,
}

impl TargetCollector {
    pub(crate) fn new(table: Arc<TargetTable>) -> Result<Self, prometheus::Error> {
        let descs = FAMILIES
            .iter()
            .map(|(name, help, _)| {
                Desc::new(
                    (*name).to_owned(),
                    (*help).to_owned(),
                    Vec::new(),
                    HashMap::new(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { table, descs })
    }
}

/// A sample's labels: `pairs` sorted by name, then `otel_scope_name`, as the exporter writes them.
fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    let mut sorted = pairs.to_vec();
    sorted.sort_by_key(|(name, _)| *name);
    sorted
        .into_iter()
        .chain([("otel_scope_name", METER_NAME)])
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_owned());
            pair.set_value(value.to_owned());
            pair
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], value: u64) -> Metric {
    let mut counter = Counter::default();
    // Counts stay far below 2^53, where f64 stops being exact.
    #[allow(clippy::cast_precision_loss)]
    counter.set_value(value as f64);
    let mut metric = Metric::from_label(labels(pairs));
    metric.set_counter(counter);
    metric
}

fn gauge(pairs: &[(&str, &str)], value: i64) -> Metric {
    let mut gauge = Gauge::default();
    #[allow(clippy::cast_precision_loss)]
    gauge.set_value(value as f64);
    let mut metric = Metric::from_label(labels(pairs));
    metric.set_gauge(gauge);
    metric
}

fn histogram(pairs: &[(&str, &str)], histogram: Histogram) -> Metric {
    let mut metric = Metric::from_label(labels(pairs));
    metric.set_histogram(histogram);
    metric
}

impl Collector for TargetCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families: Vec<Vec<Metric>> = vec![Vec::new(); FAMILIES.len()];
        let load = |slot: &AtomicU64| slot.load(Ordering::Relaxed);
        for (name, row) in self.table.snapshot() {
            let target = ("target", &*name);
            let started = row.started.load(Ordering::Relaxed);
            let shown = |slot: &AtomicU64| {
                let n = load(slot);
                (started || n > 0).then_some(n)
            };
            let kind = row.kind();
            if let Some(kind) = kind {
                for (outcome, slot) in OUTCOMES.iter().zip(&row.outcomes) {
                    if let Some(n) = shown(slot) {
                        families[0].push(counter(
                            &[target, ("kind", kind.as_str()), ("outcome", outcome)],
                            n,
                        ));
                    }
                }
                if let Some(h) = row.call_duration.proto(PUBLISH_BUCKETS) {
                    families[3].push(histogram(&[target, ("kind", kind.as_str())], h));
                }
            }
            // A row without its failure and skip counters shows them as a started row shows
            // counters never added to: at zero, and only if it is started.
            let none = Rare::new();
            let rare = row.rare.get().map_or(&none, |rare| &**rare);
            for (reason, slot) in FAILURES.iter().zip(&rare.failures) {
                if let Some(n) = shown(slot) {
                    families[1].push(counter(&[target, ("reason", reason)], n));
                }
            }
            for (reason, slot) in SKIPS.iter().zip(&rare.skips) {
                if let Some(n) = shown(slot) {
                    families[2].push(counter(&[target, ("reason", reason)], n));
                }
            }
            let health = row.health.load(Ordering::Relaxed);
            if health != UNSET {
                families[4].push(gauge(&[target], health));
            }
            let circuit = row.circuit.load(Ordering::Relaxed);
            if circuit != UNSET {
                families[5].push(gauge(&[target], circuit));
            }
            let full = load(&rare.target_full);
            if full != u64::MAX {
                families[6].push(counter(&[target], full));
            }
            for (result, slot) in CHECKS.iter().zip(&row.checks) {
                if let Some(n) = shown(slot) {
                    families[7].push(counter(&[target, ("result", result)], n));
                }
            }
            if let Some(h) = row.check_duration.proto(PUBLISH_BUCKETS) {
                families[8].push(histogram(&[target], h));
            }
            for (i, slot) in row.transitions.iter().enumerate() {
                let n = u64::from(slot.load(Ordering::Relaxed));
                if n > 0 {
                    let (from, to) = transition_of(i);
                    let (from, to) = (STATUSES[from].as_str(), STATUSES[to].as_str());
                    families[9].push(counter(&[target, ("from", from), ("to", to)], n));
                }
            }
            if let Some(h) = row.delivery.proto(DELIVERY_BUCKETS) {
                families[10].push(histogram(&[target], h));
            }
        }
        FAMILIES
            .iter()
            .zip(families)
            .filter(|(_, metrics)| !metrics.is_empty())
            .map(|((name, help, kind), metrics)| {
                let mut family = MetricFamily::default();
                family.set_name((*name).to_owned());
                family.set_help((*help).to_owned());
                family.set_field_type(*kind);
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_skip_reason_and_error_kind_has_a_slot() {
        use alert_core::{ErrorKind, PermanentReason};
        for reason in [
            SkipReason::Disabled,
            SkipReason::Unhealthy,
            SkipReason::Degraded,
            SkipReason::CircuitOpen,
            SkipReason::Filtered,
        ] {
            assert!(SKIPS.contains(&reason.as_str()), "{reason:?}");
        }
        for kind in [
            ErrorKind::Transient,
            ErrorKind::RateLimited { retry_after: None },
            ErrorKind::Permanent {
                reason: PermanentReason::Auth,
            },
            ErrorKind::Timeout,
            ErrorKind::Cancelled,
        ] {
            assert!(FAILURES.contains(&kind.label()), "{kind:?}");
        }
    }

    #[test]
    fn a_value_lands_in_the_first_bucket_whose_bound_holds_it() {
        let mut hist = Hist {
            counts: [0_u64; 16],
            sum: 0.0,
            count: 0,
        };
        for value in [0.005, 0.006, 60.0, 61.0] {
            hist.record(PUBLISH_BUCKETS, value);
        }
        let proto = hist.proto(PUBLISH_BUCKETS);
        let cumulative: Vec<u64> = proto
            .get_bucket()
            .iter()
            .map(Bucket::cumulative_count)
            .collect();
        assert_eq!(cumulative, [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3]);
        assert_eq!(proto.get_sample_count(), 4);
        assert!((proto.get_sample_sum() - 121.011).abs() < 1e-9);
    }

    #[test]
    fn each_change_of_status_has_a_slot_of_its_own() {
        let mut seen = [false; TRANSITIONS];
        for from in 0..STATUSES.len() {
            for to in 0..STATUSES.len() {
                let Some(slot) = transition(from, to) else {
                    assert_eq!(from, to);
                    continue;
                };
                assert_ne!(from, to);
                assert!(!seen[slot], "{from} -> {to} shares slot {slot}");
                seen[slot] = true;
                assert_eq!(transition_of(slot), (from, to));
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn a_probe_histogram_counts_in_32_bits_and_stops_at_the_top() {
        let mut hist = Hist {
            counts: [u32::MAX - 1; 16],
            sum: 0.0,
            count: 0,
        };
        for _ in 0..3 {
            hist.record(PUBLISH_BUCKETS, 0.001);
        }
        assert_eq!(hist.counts[0], u32::MAX);
        let proto = hist.proto(PUBLISH_BUCKETS);
        assert_eq!(
            proto.get_bucket()[0].cumulative_count(),
            u64::from(u32::MAX)
        );
        assert_eq!(
            proto.get_bucket()[1].cumulative_count(),
            u64::from(u32::MAX) + u64::from(u32::MAX - 1)
        );
    }
}

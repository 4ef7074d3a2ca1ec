//! alertpub's metrics, exported as Prometheus text through OpenTelemetry and opentelemetry-prometheus.
//!
//! Metric names follow Prometheus conventions and pass `promtool check metrics`.

//! Target discovery: the YAML config file, hot-reloaded, and Kubernetes Secrets behind the `kubernetes` feature.
//!
//! Both sources implement `alert_core::TargetSource`.

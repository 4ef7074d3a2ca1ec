//! Forwards alerts to another Alertmanager (`POST {base}/api/v2/alerts`).
//!
//! While an alert fires it is re-forwarded every `refresh_interval`, so the upstream does not resolve it.

//! The one HTTP client stack that every publisher shares: a pooled hyper-util client with rustls (ring), per-attempt timeouts, response-size limits, response classification into `alert_core`'s `ErrorKind`, and secret redaction.
//!
//! It never retries: retries belong to the dispatcher. It arrives with the publishers.

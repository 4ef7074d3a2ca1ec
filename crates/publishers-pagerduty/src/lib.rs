//! Publishes alerts to the PagerDuty Events API v2 (`POST {base}/v2/enqueue`).
//!
//! The `dedup_key` derives from the alert fingerprint, so resolves work after a restart and need no cache.

//! The pure parts of the `alertpub` server that are used on their own, outside the binary.
//!
//! - [`ingest`]: parsing and normalising incoming alerts as Alertmanager does, for
//!   `POST /api/v2/alerts`, the Alertmanager webhook receiver and the synchronous publish API.
//!   It does no I/O and reads no clock, so the fuzz targets in `fuzz/` drive it directly:
//!
//! ```
//! use alertpub_server::ingest::{AlertLimits, OpenEnd, normalise};
//! use chrono::{DateTime, Utc};
//!
//! let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
//! let raw = serde_json::json!({"labels": {"alertname": "DiskFull"}, "startsAt": "0001-01-01T00:00:00Z"});
//! let normalised = normalise(&raw, now, OpenEnd::Keep, &AlertLimits::default()).unwrap();
//! assert!(normalised.starts_at_defaulted);
//! assert_eq!(normalised.alert.alert.starts_at(), now);
//! ```

pub mod batch;
pub mod ingest;

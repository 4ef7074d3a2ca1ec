//! The job queue, the notification log and the dead-letter queue: backends of
//! [`alert_core::JobStore`].
//!
//! [`MemoryJobStore`] keeps everything in memory behind one mutex. It is not durable, so it serves
//! tests, benchmarks and development; the durable redb store that ingest commits to, with fsync,
//! before it answers, will live here too. Every backend passes the contract suite in
//! `alert_core::job::contract`.
//!
//! ```
//! use std::time::Duration;
//!
//! use alert_core::{Admission, Alert, EnrichedAlert, JobStore, Labels, TargetName};
//! use queue::MemoryJobStore;
//!
//! # tokio_test_block_on(async {
//! let store = MemoryJobStore::new(10_000);
//! let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
//! let target = TargetName::new("pager").unwrap();
//! let labels: Labels = [("alertname".to_owned(), "DiskFull".to_owned())].into();
//! let alert = EnrichedAlert::new(Alert::new(labels).unwrap().with_starts_at(now).unwrap());
//!
//! let admitted = store
//!     .enqueue_batch(vec![Admission::new(target.clone(), alert, None)], now)
//!     .await
//!     .unwrap();
//! assert!(admitted[0].is_enqueued());
//! let lease = store.lease(&target, 16, Duration::from_secs(60), now).await.unwrap();
//! assert_eq!(lease.jobs.len(), 1);
//! store.ack(lease.jobs[0].id, now).await.unwrap();
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod memory;

pub use memory::MemoryJobStore;

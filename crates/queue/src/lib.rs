//! The job queue, the notification log and the dead-letter queue: backends of
//! [`alert_core::JobStore`]. Every backend passes the contract suite of the `job-contract`
//! crate.
//!
//! - [`RedbJobStore`] is the durable store that ingest commits to: an embedded redb database
//!   file holding the jobs, the alert bodies they refer to, the notification log, the
//!   dead-letter queue, the message references of [`RedbMessageRefs`] and a few counters.
//! - [`MemoryJobStore`] keeps everything in memory behind one mutex. It is not durable, so it
//!   serves tests, benchmarks and development.
//!
//! # Durability and speed of the redb store
//!
//! - **One writer, group commit.** A single thread owns every write transaction. Concurrent
//!   ingest requests (and dead-letter moves, replays, purges, message references) queue for it
//!   through a bounded channel, and it commits all that is queued in one transaction with one
//!   fsync, then answers each.
//! - **Ingest** (`enqueue_batch`), **sweeps** (auto-resolve, refresh, log retention), **moves to
//!   the dead-letter queue** (one job or a whole target's), **replays**, **purges** and
//!   **message references** commit with `redb::Durability::Immediate`, the strongest mode redb 4
//!   offers: the data is fsynced before the call returns, so "accepted" means "on disk". A batch
//!   is all or nothing: a refused batch (`Full`) writes nothing and does not disturb the other
//!   requests sharing its commit; a storage failure fails the whole commit and persists nothing.
//! - **Acknowledgements** are applied in memory at once and answered when the next group commit,
//!   whose fsync they share with whatever else is queued, has put them on disk. The dispatcher
//!   frees a lane's slot only then, so after a crash the deliveries made again are at most the
//!   work that was in flight. **Reschedules** are answered once applied in memory and ride on
//!   the next commit (a non-durable one, `redb::Durability::None`, when nothing else is queued);
//!   a crash before a durable commit only repeats a failed attempt, with the attempt count of
//!   its last durable commit.
//! - **Leases live in memory only**, and so do the indexes that hand a committed job to its
//!   target's lane without scanning tables. After a crash and a restart every job is leasable
//!   again at once: delivery is at least once, and the delivery sequence lets targets drop the
//!   repeat. The state is rebuilt from the tables when the store is opened.
//! - **The notification log is cached in memory**, write-through, so enqueue decisions never
//!   read the database; so are the alert bodies it and the live jobs refer to. Each body is
//!   stored once per ingest batch however many targets it goes to.
//! - **Storage failures** (a full disk, an I/O error) answer `JobStoreError::Storage` with the
//!   transaction aborted, never a panic. The next write reopens the database, so the store
//!   recovers by itself once the disk has room.
//!
//! ```
//! use std::time::Duration;
//!
//! use alert_core::{Admission, Alert, EnrichedAlert, IngestQueue, Labels, LaneQueue, TargetName};
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
mod model;
mod postgres;
mod redb_store;

pub use memory::MemoryJobStore;
pub use postgres::{PgJobStore, PgMessageRefs};
/// The record decoders' fuzz entry point (feature `fuzzing`), not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use redb_store::fuzzing::decode_records;
pub use redb_store::{RedbJobStore, RedbMessageRefs};

//! The queue's store, as `queue.backend` says: the embedded redb file (one node) or a PostgreSQL
//! database that several replicas share.

use std::sync::Arc;

use alert_core::{Clock, DeliveryHistory, JobStore, LaneQueue, MessageRefStore};
use anyhow::{Context, Result};
use discovery::{IngestConfig, QueueBackend, QueueConfig};
use queue::{PgJobStore, RedbJobStore};

/// The store, as each of its callers sees it.
pub(crate) struct Store {
    pub(crate) jobs: Arc<dyn JobStore>,
    pub(crate) lanes: Arc<dyn LaneQueue>,
    pub(crate) refs: Arc<dyn MessageRefStore>,
    pub(crate) history: Arc<dyn DeliveryHistory>,
}

/// Opens the store `queue` names, with the bounds the config gives.
pub(crate) async fn open(
    queue: &QueueConfig,
    ingest: &IngestConfig,
    clock: &Arc<dyn Clock>,
) -> Result<Store> {
    // The same bounds on either store: a macro, as the two builders are types of their own.
    macro_rules! bounded {
        ($store:expr) => {
            $store
                .with_dead_letter_retention(queue.dlq_retention.into())
                .with_max_jobs_per_target(queue.target_quota())
                .with_max_active_alerts(ingest.max_active_alerts)
                .with_clock(clock.clone())
                // A sender still re-sending is heard again within resolve_timeout.
                .with_restart_grace(ingest.resolve_timeout.into())
        };
    }
    type Parts = (
        Arc<dyn JobStore>,
        Arc<dyn LaneQueue>,
        Arc<dyn MessageRefStore>,
        Arc<dyn DeliveryHistory>,
    );
    let (jobs, lanes, refs, history): Parts = match queue.backend {
        QueueBackend::Postgres => {
            let url = publisher_http::resolve_secret(
                "queue.url",
                queue.url.as_ref().map(|u| u.expose().as_str()),
                queue.url_file.as_deref(),
            )
            .context("the queue's database URL")?;
            // Accepting an alert means it is committed: every ingest is one transaction.
            let store = bounded!(
                PgJobStore::connect(url.expose(), queue.pool_size, queue.max_jobs)
                    .await
                    .context("connecting to the queue's PostgreSQL database")?
            );
            let refs = store.message_refs();
            let store = Arc::new(store);
            (store.clone(), store.clone(), refs, store)
        }
        _ => {
            // Accepting an alert means it is on disk: the redb store commits ingest with fsync.
            let store = bounded!(
                RedbJobStore::open(&queue.path, queue.max_jobs)
                    .with_context(|| format!("opening the queue {}", queue.path.display()))?
            );
            let refs = store.message_refs();
            let store = Arc::new(store);
            (store.clone(), store.clone(), refs, store)
        }
    };
    Ok(Store {
        jobs,
        lanes,
        refs,
        history,
    })
}

//! The delivery history's recorder: the observer hears every attempt end and hands its record
//! to a bounded channel, without waiting; one task appends what it finds there to the store in
//! batches, gathering for up to [`LINGER`] after the first record of each. A full channel drops
//! records (and says so) rather than slow a delivery down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alert_core::{Clock, DeliveryHistory, DeliveryRecord, HistoryRetention};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Records waiting for the task, at most.
const WAITING: usize = 16_384;

/// Records appended in one call, at most.
const BATCH: usize = 1_024;

/// How long a batch gathers after its first record, unless it fills first. A record is in the
/// history this much later at most, and a busy server appends a few dozen times a second
/// instead of once per attempt or two: on PostgreSQL each append is a transaction, and with
/// three replicas under S2 of `cargo xtask bench` they were a tenth of the database's work.
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// The observer's side.
#[derive(Debug)]
pub(crate) struct Recorder {
    records: mpsc::Sender<DeliveryRecord>,
    dropped: AtomicU64,
}

impl Recorder {
    /// A recorder, and the task that appends what it is given to `store` with `retention`,
    /// until `shutdown` (then what is waiting is appended).
    pub(crate) fn start(
        store: Arc<dyn DeliveryHistory>,
        retention: HistoryRetention,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let (records, waiting) = mpsc::channel(WAITING);
        let recorder = Arc::new(Self {
            records,
            dropped: AtomicU64::new(0),
        });
        (recorder, run(waiting, store, retention, clock, shutdown))
    }

    /// Hands `record` over, or drops it when too many wait.
    pub(crate) fn push(&self, record: DeliveryRecord) {
        if self.records.try_send(record).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "delivery-history records dropped: the store is not keeping up"
                );
            }
        }
    }
}

async fn run(
    mut waiting: mpsc::Receiver<DeliveryRecord>,
    store: Arc<dyn DeliveryHistory>,
    retention: HistoryRetention,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            first = waiting.recv() => first,
            () = shutdown.cancelled() => None,
        };
        let Some(first) = first else {
            // Shutdown: what is already waiting is kept too.
            while let Ok(record) = waiting.try_recv() {
                batch.push(record);
            }
            append(store.as_ref(), &mut batch, retention, clock.as_ref()).await;
            return;
        };
        batch.push(first);
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            let next = tokio::select! {
                next = tokio::time::timeout_at(until, waiting.recv()) => next,
                // Shutdown: append what is gathered now; the loop's next turn takes the rest.
                () = shutdown.cancelled() => break,
            };
            match next {
                Ok(Some(record)) => batch.push(record),
                // The linger is over, or every sender is gone.
                Ok(None) | Err(_) => break,
            }
        }
        append(store.as_ref(), &mut batch, retention, clock.as_ref()).await;
    }
}

async fn append(
    store: &dyn DeliveryHistory,
    batch: &mut Vec<DeliveryRecord>,
    retention: HistoryRetention,
    clock: &dyn Clock,
) {
    if batch.is_empty() {
        return;
    }
    let records = std::mem::take(batch);
    let count = records.len();
    if let Err(err) = store.record(records, retention, clock.now()).await {
        tracing::warn!(records = count, error = %err, "delivery-history records were not kept");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alert_core::{
        AlertStatus, AttemptOutcome, AttemptPath, Fingerprint, HistoryFilter, Labels, TargetName,
        TestClock,
    };
    use chrono::DateTime;

    use super::*;

    fn record(at: DateTime<chrono::Utc>, n: u32) -> DeliveryRecord {
        let labels: Labels = [("alertname".to_owned(), format!("A{n}"))].into();
        DeliveryRecord::new(
            at,
            Fingerprint::of(&labels),
            labels,
            TargetName::new("ops").unwrap(),
            AlertStatus::Firing,
            1,
            AttemptOutcome::Delivered,
            AttemptPath::Queue,
        )
    }

    async fn kept(store: &queue::MemoryJobStore, want: usize) -> Vec<DeliveryRecord> {
        for _ in 0..1_000 {
            let page = store
                .deliveries(&HistoryFilter::default(), None, 100)
                .await
                .unwrap();
            if page.entries.len() == want {
                return page.entries;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the history never held {want} records");
    }

    #[tokio::test(start_paused = true)]
    async fn records_are_kept_within_the_retention_by_the_one_clock() {
        let store = Arc::new(queue::MemoryJobStore::new(100));
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = Arc::new(TestClock::on_tokio_time(start));
        let shutdown = CancellationToken::new();
        let retention = HistoryRetention {
            max_records: 3,
            max_age: Duration::from_secs(60),
        };
        let (recorder, run) =
            Recorder::start(store.clone(), retention, clock.clone(), shutdown.clone());
        let task = tokio::spawn(run);
        for n in 0..5 {
            recorder.push(record(clock.now(), n));
        }
        // The count bound: the newest three.
        let names: Vec<String> = kept(&store, 3)
            .await
            .iter()
            .map(|r| r.labels["alertname"].clone())
            .collect();
        assert_eq!(names, ["A4", "A3", "A2"]);
        // Two minutes on, by the clock the recorder was given: the age bound drops the rest.
        tokio::time::sleep(Duration::from_secs(120)).await;
        recorder.push(record(clock.now(), 5));
        let late = kept(&store, 1).await;
        assert_eq!(late[0].labels["alertname"], "A5");
        // At shutdown, what waits is kept.
        recorder.push(record(clock.now(), 6));
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(kept(&store, 2).await[0].labels["alertname"], "A6");
    }
}

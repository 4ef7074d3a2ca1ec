//! No starvation: under a flood of high-priority jobs, low-priority ones still get their
//! documented share of deliveries (`Priority::share`: 12 high, 3 medium, 1 low out of every 16).

// The test prints the counts it measured, for the record.
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alert_core::{
    Admission, BoxFuture, Clock, IngestQueue, Priority, PublishError, PublishRequest, Publisher,
    Receipt, StaticTargetSource, TargetName, TargetSet, TestClock,
};
use chrono::DateTime;
use fanout::{CancellationToken, Dispatcher, DispatcherConfig};
use queue::MemoryJobStore;
use test_support::{alert, entry};

/// Records the `severity` label of every alert it is asked to publish, in order.
#[derive(Debug, Default)]
struct Recorder {
    order: Mutex<Vec<String>>,
}

impl Publisher for Recorder {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        let severity = request
            .alert
            .alert
            .label("severity")
            .unwrap_or_default()
            .to_owned();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.order
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(severity);
            Ok(Receipt::with_status(200))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn low_priority_gets_its_share_under_a_ten_to_one_flood() {
    const HIGH: usize = 1000;
    const LOW: usize = 100;
    let recorder = Arc::new(Recorder::default());
    let mut target = entry("flooded", recorder.clone());
    target.target.in_flight_limit = Some(1);
    let source = Arc::new(StaticTargetSource::new(
        TargetSet::new(vec![target]).unwrap(),
    ));
    let store = Arc::new(MemoryJobStore::new(10_000));
    let clock = Arc::new(TestClock::on_tokio_time(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let name = TargetName::new("flooded").unwrap();
    // The flood is queued before the low-priority jobs, so age alone would serve it first.
    let mut batch: Vec<Admission> = (0..HIGH)
        .map(|i| {
            let n = i.to_string();
            Admission::new(
                name.clone(),
                alert(&[("alertname", "Flood"), ("severity", "critical"), ("n", &n)]),
                None,
            )
        })
        .collect();
    batch.extend((0..LOW).map(|i| {
        let n = i.to_string();
        Admission::new(
            name.clone(),
            alert(&[("alertname", "Quiet"), ("severity", "info"), ("n", &n)]),
            None,
        )
    }));
    assert_eq!(
        Priority::of(&batch[0].alert, alert_core::AlertStatus::Firing),
        Priority::High
    );
    assert_eq!(
        Priority::of(&batch[HIGH].alert, alert_core::AlertStatus::Firing),
        Priority::Low
    );
    store.enqueue_batch(batch, clock.now()).await.unwrap();

    let shutdown = CancellationToken::new();
    let handle = Dispatcher::builder(store.clone(), source)
        .clock(clock)
        .config(DispatcherConfig::default())
        .build()
        .start(shutdown.clone());
    let delivered = |recorder: &Recorder| {
        recorder
            .order
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while delivered(&recorder) < 320 {
        assert!(tokio::time::Instant::now() < deadline, "deliveries stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order = recorder
        .order
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let first = &order[..320];
    let low = first.iter().filter(|s| *s == "info").count();
    let high = first.iter().filter(|s| *s == "critical").count();
    println!(
        "first 320 deliveries under a 10:1 flood: {high} high, {low} low (documented share: 1 in 16, so at least 20)"
    );
    assert!(
        low >= 320 / 16,
        "low priority got {low} of 320 deliveries, under its share of 1 in 16"
    );
    // And the flood still goes first: high keeps at least its own share.
    assert!(
        high >= 320 * 12 / 16,
        "high priority got only {high} of 320"
    );
    shutdown.cancel();
    handle.join().await;
}

//! One clock: jobs are stamped by the clock the dispatcher compares due times with, so a step of
//! the wall clock (NTP) neither delays deliveries by the step nor stalls them.
//!
//! The wall clock is a [`TestClock`] on tokio's paused clock, stepped mid-run; the store and the
//! "ingest" of these tests stamp jobs with it, as the server's do with its one clock.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Admission, BoxFuture, Clock, IngestQueue, PublishError, PublishRequest, Publisher, Receipt,
    StaticTargetSource, TargetName, TargetSet, TestClock,
};
use chrono::DateTime;
use fanout::{CancellationToken, Dispatcher, DispatcherConfig, DispatcherHandle};
use queue::MemoryJobStore;
use test_support::{alert, entry};
use tokio::sync::mpsc;
use tokio::time::Instant;

const SEC: Duration = Duration::from_secs(1);
/// The step of the wall clock: far longer than any wait a prompt delivery has.
const STEP: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Tells the test of every call, with its `job` label and its (monotonic) instant.
#[derive(Debug)]
struct Told(mpsc::Sender<(String, Instant)>);

impl Publisher for Told {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        let job = request
            .alert
            .alert
            .labels()
            .get("job")
            .cloned()
            .unwrap_or_default();
        let told = self.0.clone();
        Box::pin(async move {
            // The channel is bounded and the test reads every call; a full one fails the test
            // by its timeout, not by a lost call.
            let _ = told.send((job, Instant::now())).await;
            Ok(Receipt::with_status(202))
        })
    }
}

struct Rig {
    clock: Arc<TestClock>,
    store: Arc<MemoryJobStore>,
    handle: DispatcherHandle,
    calls: mpsc::Receiver<(String, Instant)>,
    shutdown: CancellationToken,
}

fn start() -> Rig {
    let clock = Arc::new(TestClock::on_tokio_time(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let (tx, calls) = mpsc::channel(64);
    let target = entry("t", Arc::new(Told(tx)));
    let source = Arc::new(StaticTargetSource::new(
        TargetSet::new(vec![target]).unwrap(),
    ));
    let store = Arc::new(MemoryJobStore::new(1_000).with_clock(clock.clone()));
    let shutdown = CancellationToken::new();
    let handle = Dispatcher::builder(store.clone(), source)
        .clock(clock.clone())
        .config(DispatcherConfig::default())
        .build()
        .start(shutdown.clone());
    Rig {
        clock,
        store,
        handle,
        calls,
        shutdown,
    }
}

impl Rig {
    /// Enqueues one alert labelled `job`, stamped by the clock, as ingest does, and wakes the lane.
    async fn ingest(&self, job: &str) -> Instant {
        let name = TargetName::new("t").unwrap();
        let batch = vec![Admission::new(
            name.clone(),
            alert(&[("alertname", "Clock"), ("job", job)]),
            None,
        )];
        let admitted = self
            .store
            .enqueue_batch(batch, self.clock.now())
            .await
            .unwrap();
        assert!(admitted.iter().all(|a| a.is_enqueued()));
        self.handle.wake(&name);
        Instant::now()
    }

    /// How long after `since` the call for `job` came; fails after a day of virtual time.
    async fn delivered(&mut self, job: &str, since: Instant) -> Duration {
        let call = tokio::time::timeout(Duration::from_secs(24 * 3600), self.calls.recv())
            .await
            .unwrap_or_else(|_| panic!("{job} was never delivered"))
            .expect("the publisher lives");
        assert_eq!(call.0, job);
        call.1 - since
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.join().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_forward_step_of_the_wall_clock_does_not_delay_deliveries_by_the_step() {
    let mut rig = start();
    let before = rig.ingest("before").await;
    assert!(rig.delivered("before", before).await < SEC);

    // NTP steps the wall clock forward an hour while the dispatcher runs.
    tokio::time::sleep(10 * SEC).await;
    rig.clock.step(STEP);
    let after = rig.ingest("after").await;
    let took = rig.delivered("after", after).await;
    assert!(took < SEC, "a job stamped after the step waited {took:?}");
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_backward_step_of_the_wall_clock_does_not_stall_deliveries() {
    let mut rig = start();
    let before = rig.ingest("before").await;
    assert!(rig.delivered("before", before).await < SEC);

    tokio::time::sleep(10 * SEC).await;
    rig.clock.step(-STEP);
    // A job stamped after the step is due at once by the same clock.
    let after = rig.ingest("after").await;
    let took = rig.delivered("after", after).await;
    assert!(took < SEC, "a job stamped after the step waited {took:?}");

    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lane_waiting_for_a_due_time_looks_again_every_idle_poll() {
    let mut rig = start();
    // A job due in half an hour by the wall clock (a retry's backoff, say): the lane learns
    // its due time from the store and waits for it.
    let name = TargetName::new("t").unwrap();
    let later = vec![Admission::new(
        name.clone(),
        alert(&[("alertname", "Clock"), ("job", "later")]),
        None,
    )];
    let due = rig.clock.now() + chrono::TimeDelta::minutes(30);
    rig.store.enqueue_batch(later, due).await.unwrap();
    rig.handle.wake(&name);
    tokio::time::sleep(10 * SEC).await;

    // The wall clock steps past the due time. The lane's wait was on monotonic time, but no
    // longer than `idle_poll`, so it compares with the clock again within that.
    rig.clock.step(STEP);
    let stepped = Instant::now();
    let took = rig.delivered("later", stepped).await;
    assert!(
        took <= DispatcherConfig::default().idle_poll,
        "the job due before the clock's new reading waited {took:?}"
    );
    rig.stop().await;
}

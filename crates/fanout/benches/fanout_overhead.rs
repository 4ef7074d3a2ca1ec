//! `fanout_overhead`: what the engine costs on top of calling the publishers.
//!
//! For 1, 10, 50 and 200 no-op targets it times `FanoutEngine::publish_to_all` beside the baseline
//! SPEC §9 defines: a bare `join_all` over the same boxed `Publisher::publish` calls, collected
//! into a Vec. The engine takes its normal path — selection, the gate, the per-attempt timeout, the
//! observer and the result — with no fast path. `cargo xtask bench` prints the ratio.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    BoxFuture, Delivery, PublishError, PublishRequest, Publisher, Receipt, StaticTargetSource,
    TargetSet,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fanout::{FanoutEngine, PublishOptions};
use futures_util::future::join_all;
use test_support::{alert, entry};

/// A publisher that accepts at once: the engine's own cost is all that is left to measure.
#[derive(Debug)]
struct Noop;

impl Publisher for Noop {
    fn publish<'a>(
        &'a self,
        _request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async { Ok(Receipt::with_status(202)) })
    }
}

fn fanout_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let alert = alert(&[("alertname", "BenchAlert"), ("severity", "critical")]);
    let options = PublishOptions::default();
    let mut group = c.benchmark_group("fanout_overhead");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50);
    for targets in [1_usize, 10, 50, 200] {
        let set = TargetSet::new(
            (0..targets)
                .map(|i| entry(&format!("t{i}"), Arc::new(Noop)))
                .collect(),
        )
        .expect("unique names");
        let publishers: Vec<Arc<dyn Publisher>> = set.iter().map(|e| e.publisher.clone()).collect();
        let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(set))).build();

        group.bench_with_input(BenchmarkId::new("join_all", targets), &targets, |b, _| {
            b.iter(|| {
                runtime.block_on(async {
                    let calls = publishers.iter().map(|p| {
                        p.publish(PublishRequest::made_at(
                            &alert,
                            Delivery::first(),
                            chrono::Utc::now(),
                        ))
                    });
                    let results: Vec<_> = join_all(calls).await;
                    black_box(results)
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("engine", targets), &targets, |b, _| {
            b.iter(|| {
                runtime.block_on(async { black_box(engine.publish_to_all(&alert, &options).await) })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout_overhead);
criterion_main!(benches);

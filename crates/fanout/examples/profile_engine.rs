//! A fixed workload for profilers (`valgrind --tool=callgrind`): 2 000 publishes to 50 no-op
//! targets through the engine. `cargo xtask bench` times the same path with criterion.

use std::sync::Arc;

use alert_core::{
    BoxFuture, PublishError, PublishRequest, Publisher, Receipt, StaticTargetSource, TargetSet,
};
use fanout::{FanoutEngine, PublishOptions};
use test_support::{alert, entry};

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

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let set = TargetSet::new(
        (0..50)
            .map(|i| entry(&format!("t{i}"), Arc::new(Noop)))
            .collect(),
    )
    .expect("names");
    let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(set))).build();
    let alert = alert(&[("alertname", "ProfileAlert")]);
    let options = PublishOptions::default();
    runtime.block_on(async {
        for _ in 0..2_000 {
            std::hint::black_box(engine.publish_to_all(&alert, &options).await).ok();
        }
    });
}

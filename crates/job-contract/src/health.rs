//! The store's health view: a working store is healthy, and the dead letters it drops at its cap
//! are counted.

use super::{
    DeadLetterFilter, JobStore, StoreCondition, TargetKind, admit, at, dead_letter, enqueue_new,
    firing, lease_jobs, list,
};

/// A store that commits, leases and dead-letters without failing reports itself healthy, with
/// nothing quarantined and nothing evicted.
pub async fn a_working_store_is_healthy(store: &dyn JobStore) {
    assert_eq!(store.health().condition, StoreCondition::Healthy);
    let (job, _, _) = enqueue_new(store, admit("health", firing("HealthA")), at(0)).await;
    lease_jobs(store, "health", at(1)).await;
    dead_letter(store, job, TargetKind::Webhook, at(2)).await;
    let health = store.health();
    assert_eq!(health.condition, StoreCondition::Healthy, "{health:?}");
    assert_eq!(health.quarantined_records, 0, "{health:?}");
    assert_eq!(health.evicted_dead_letters, 0, "{health:?}");
}

/// A store built with a dead-letter cap of `cap` (at least 1, at most 50) counts every entry it
/// drops to stay within it in [`evicted_dead_letters`](alert_core::StoreHealth::evicted_dead_letters).
pub async fn evicted_dead_letters_are_counted(store: &dyn JobStore, cap: usize) {
    assert!((1..=50).contains(&cap), "a cap between 1 and 50, not {cap}");
    let made = cap + 3;
    for i in 0..made {
        let name = format!("Evicted{i}");
        let secs = i64::try_from(i).expect("a small index");
        let (job, _, _) = enqueue_new(store, admit("evict", firing(&name)), at(secs)).await;
        let leased = lease_jobs(store, "evict", at(secs)).await;
        assert_eq!(leased.len(), 1, "{name} is leased");
        dead_letter(store, job, TargetKind::Webhook, at(secs)).await;
    }
    assert_eq!(list(store, &DeadLetterFilter::default()).await.len(), cap);
    let health = store.health();
    assert_eq!(
        health.evicted_dead_letters,
        (made - cap) as u64,
        "every entry dropped at the cap is counted: {health:?}"
    );
}

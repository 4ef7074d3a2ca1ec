//! The queue's periodic maintenance: auto-resolve, refresh forwarding for `alertmanager` targets,
//! notification-log retention, the expiry of jobs older than `queue.max_age` (whatever their
//! target: removed, disabled, or with a lane), and the dead-lettering of removed targets' jobs
//! after `queue.removal_grace`. One pass a second; each pass is one commit in the store, which
//! also records the target set and when each removed target was first found gone, so a restart
//! neither forgets a removal nor restarts its grace.

use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Clock, DeadReason, JobStore, SweepPlan, TargetKind, TargetName, TargetSet, TargetSource,
};
use tokio_util::sync::CancellationToken;

/// How often a pass runs.
const TICK: Duration = Duration::from_secs(1);

/// What the passes apply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// `ingest.log_retention`.
    pub(crate) log_retention: Duration,
    /// `queue.removal_grace`.
    pub(crate) removal_grace: Duration,
    /// `queue.max_age`.
    pub(crate) max_age: Duration,
}

/// Runs the passes until `shutdown`.
pub(crate) async fn run(
    store: Arc<dyn JobStore>,
    source: Arc<dyn TargetSource>,
    clock: Arc<dyn Clock>,
    metrics: Arc<metrics::Metrics>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The plan of the set in force, made again only when the set changes: a pass runs every
    // second, and most find nothing to do.
    let mut planned: Option<(Arc<TargetSet>, SweepPlan)> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let set = source.snapshot();
        let plan = match planned.take() {
            Some((of, plan)) if Arc::ptr_eq(&of, &set) => plan,
            _ => plan(&set, settings),
        };
        let swept = store.sweep(&plan, clock.now()).await;
        planned = Some((set, plan));
        match swept {
            Ok(report) => {
                metrics.add_dead_lettered(DeadReason::Expired, report.expired_jobs);
                metrics.add_dead_lettered(DeadReason::TargetRemoved, report.removed_jobs);
                if report.resolved + report.refreshed > 0 {
                    tracing::info!(
                        resolved = report.resolved,
                        refreshed = report.refreshed,
                        "auto-resolve and refresh jobs queued"
                    );
                }
                if report.expired_jobs > 0 {
                    tracing::warn!(
                        jobs = report.expired_jobs,
                        "jobs older than queue.max_age moved to the dead-letter queue"
                    );
                }
                if report.removed_jobs > 0 {
                    tracing::warn!(
                        jobs = report.removed_jobs,
                        "removed targets' jobs moved to the dead-letter queue"
                    );
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "queue maintenance failed; retrying next pass")
            }
        }
    }
}

/// One pass's plan: the enabled targets for resolves and refreshes, every target of the set
/// (enabled or not) for the removal marks, and the age bound.
fn plan(targets: &TargetSet, settings: Settings) -> SweepPlan {
    let known = targets
        .iter()
        .map(|e| (e.target.name.clone(), e.target.kind))
        .collect();
    SweepPlan::new(plan_targets(targets), settings.log_retention)
        .with_known_targets(known, settings.removal_grace)
        .with_max_age(settings.max_age)
}

/// The enabled targets, with a refresh interval for `alertmanager` ones.
fn plan_targets(targets: &TargetSet) -> Vec<(TargetName, Option<Duration>)> {
    targets
        .iter()
        .filter(|e| e.target.is_enabled())
        .map(|e| {
            // The publisher crate owns the setting: its parsing, default and validation.
            let refresh = (e.target.kind == TargetKind::Alertmanager).then(|| {
                publisher_http::parse_settings::<publishers_alertmanager::Config>(
                    &e.target.settings,
                )
                .and_then(|config| config.refresh_interval())
                .unwrap_or(publishers_alertmanager::DEFAULT_REFRESH_INTERVAL)
            });
            (e.target.name.clone(), refresh.filter(|r| !r.is_zero()))
        })
        .collect()
}

//! The queue's periodic maintenance: auto-resolve, refresh forwarding for `alertmanager` targets,
//! notification-log retention, and the dead-lettering of removed targets' jobs after their grace
//! period. One pass a second; each pass is one commit in the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_core::{
    DeadReason, JobStore, SweepPlan, TargetKind, TargetName, TargetSet, TargetSource,
};
use chrono::Utc;
use fanout::DispatcherWaker;
use tokio_util::sync::CancellationToken;

/// How often a pass runs.
const TICK: Duration = Duration::from_secs(1);

/// Runs the passes until `shutdown`.
pub(crate) async fn run(
    store: Arc<dyn JobStore>,
    source: Arc<dyn TargetSource>,
    waker: DispatcherWaker,
    log_retention: Duration,
    removal_grace: Duration,
    shutdown: CancellationToken,
) {
    let mut removed = Removed::default();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let targets = source.snapshot();
        removed.update(&targets);
        let plan = SweepPlan::new(plan_targets(&targets), log_retention);
        match store.sweep(&plan, Utc::now()).await {
            Ok(report) => {
                if report.resolved + report.refreshed > 0 {
                    tracing::info!(
                        resolved = report.resolved,
                        refreshed = report.refreshed,
                        "auto-resolve and refresh jobs queued"
                    );
                }
                for target in &report.targets {
                    waker.wake(target);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "queue maintenance failed; retrying next pass")
            }
        }
        for (name, kind) in removed.due(removal_grace) {
            match store
                .dead_letter_target(&name, kind, DeadReason::TargetRemoved, Utc::now())
                .await
            {
                Ok(moved) => {
                    removed.forget(&name);
                    if moved > 0 {
                        tracing::warn!(
                            target = name.as_str(),
                            jobs = moved,
                            "removed target's jobs moved to the dead-letter queue"
                        );
                    }
                }
                Err(err) => {
                    tracing::warn!(target = name.as_str(), error = %err, "cannot dead-letter a removed target's jobs")
                }
            }
        }
    }
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

/// Targets that were removed from the config, and since when.
#[derive(Debug, Default)]
struct Removed {
    known: BTreeMap<TargetName, TargetKind>,
    since: BTreeMap<TargetName, (TargetKind, Instant)>,
}

impl Removed {
    fn update(&mut self, targets: &TargetSet) {
        let now = Instant::now();
        for (name, kind) in &self.known {
            if targets.get(name.as_str()).is_none() {
                self.since.entry(name.clone()).or_insert((*kind, now));
            }
        }
        self.known = targets
            .iter()
            .map(|e| (e.target.name.clone(), e.target.kind))
            .collect();
        // A target that came back is no longer removed.
        self.since
            .retain(|name, _| targets.get(name.as_str()).is_none());
    }

    fn due(&self, grace: Duration) -> Vec<(TargetName, TargetKind)> {
        self.since
            .iter()
            .filter(|(_, (_, since))| since.elapsed() >= grace)
            .map(|(name, (kind, _))| (name.clone(), *kind))
            .collect()
    }

    fn forget(&mut self, name: &TargetName) {
        self.since.remove(name);
    }
}

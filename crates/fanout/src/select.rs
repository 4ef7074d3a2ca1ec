//! Target selection: one pure function shared by the synchronous API and ingest.

use std::collections::HashSet;

use alert_core::{
    Alert, CircuitGate, CircuitState, HealthStatus, HealthView, Matcher, SkipReason, TargetEntry,
    TargetSet,
};

use crate::options::HealthStrategy;

/// Which targets a publish is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// These targets, by name. An unknown name is an error and nothing is sent.
    Named(Vec<String>),
    /// Every enabled target whose filter matches; health is ignored.
    All,
    /// Every enabled target whose filter matches, after health filtering.
    Healthy,
}

/// How health and breakers affect selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectionPolicy {
    /// Which unhealthy targets to skip (not applied to [`Selection::All`]).
    pub health_strategy: HealthStrategy,
    /// Whether an open breaker skips its target.
    pub respect_circuit_breakers: bool,
}

/// Why selection found nothing to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// Names that match no target, sorted. Nothing is sent.
    #[error("unknown targets: {}", .0.join(", "))]
    UnknownTargets(Vec<String>),
    /// None of the candidate targets is enabled.
    #[error("no enabled targets")]
    NoEnabledTargets,
    /// Enabled targets match the alert, but every one is unhealthy or behind an open breaker.
    #[error("no healthy targets")]
    NoHealthyTargets,
    /// A named selection named no target at all.
    #[error("no target names were given")]
    NoTargetsNamed,
}

/// One candidate target and whether it is called.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'t> {
    /// The target and its publisher.
    pub entry: &'t TargetEntry,
    /// `None` when the target is to be called; otherwise why it is skipped.
    pub skip: Option<SkipReason>,
}

/// The outcome of selection: every candidate target, in configuration order (or request order for
/// named targets), each to be called or skipped with a reason.
#[derive(Clone, Debug, Default)]
pub struct Selected<'t> {
    /// Every candidate.
    pub candidates: Vec<Candidate<'t>>,
}

impl<'t> Selected<'t> {
    /// The targets to call.
    pub fn to_call(&self) -> impl Iterator<Item = &'t TargetEntry> + '_ {
        self.candidates
            .iter()
            .filter(|c| c.skip.is_none())
            .map(|c| c.entry)
    }

    /// The skipped targets with their reasons.
    pub fn skipped(&self) -> impl Iterator<Item = (&'t TargetEntry, SkipReason)> + '_ {
        self.candidates
            .iter()
            .filter_map(|c| c.skip.map(|reason| (c.entry, reason)))
    }
}

/// Decides, for one alert, which targets to call and why every other candidate is skipped.
///
/// It is pure: it reads its arguments, does no I/O, and takes no breaker trial slot (it peeks at
/// [`CircuitGate::state`]). The checks run in the order of SPEC §2's table — disabled, filter,
/// health, breaker — and the first that applies names the skip reason:
///
/// | selection | disabled | filter doesn't match | unhealthy (per strategy) | breaker open |
/// |---|---|---|---|---|
/// | `Named` | `disabled` | `filtered` | `unhealthy`/`degraded` | `circuit_open` |
/// | `All` | `disabled` | `filtered` | called | `circuit_open` |
/// | `Healthy` | `disabled` | `filtered` | `unhealthy`/`degraded` | `circuit_open` |
///
/// A half-open breaker is not skipped here: its single trial slot is taken by `TargetCall`.
///
/// # Errors
/// [`SelectError::UnknownTargets`] (nothing is sent), [`SelectError::NoTargetsNamed`],
/// [`SelectError::NoEnabledTargets`] when no candidate is enabled, and
/// [`SelectError::NoHealthyTargets`] when enabled, matching candidates exist but health or breakers
/// skip all of them. When every enabled target is filtered out, selection succeeds with nothing to
/// call: the alert simply matches no target.
pub fn select_targets<'t>(
    alert: &Alert,
    targets: &'t TargetSet,
    selection: &Selection,
    policy: SelectionPolicy,
    health: &dyn HealthView,
    gate: &dyn CircuitGate,
) -> Result<Selected<'t>, SelectError> {
    let entries: Vec<&'t TargetEntry> = match selection {
        Selection::Named(names) => named_entries(targets, names)?,
        Selection::All | Selection::Healthy => targets.iter().collect(),
    };
    let apply_health = !matches!(selection, Selection::All);

    let mut any_enabled = false;
    let mut any_eligible = false;
    let candidates: Vec<Candidate<'t>> = entries
        .into_iter()
        .map(|entry| {
            let target = &entry.target;
            let skip = if !target.is_enabled() {
                Some(SkipReason::Disabled)
            } else if !Matcher::all_match(&target.filter, alert.labels()) {
                any_enabled = true;
                Some(SkipReason::Filtered)
            } else {
                any_enabled = true;
                any_eligible = true;
                health_skip(
                    apply_health,
                    policy.health_strategy,
                    health.status(target.name.as_str()),
                )
                .or_else(|| {
                    let open = policy.respect_circuit_breakers
                        && gate.state(target.name.as_str()) == CircuitState::Open;
                    open.then_some(SkipReason::CircuitOpen)
                })
            };
            Candidate { entry, skip }
        })
        .collect();

    if !any_enabled {
        return Err(SelectError::NoEnabledTargets);
    }
    let selected = Selected { candidates };
    if any_eligible && selected.to_call().next().is_none() {
        return Err(SelectError::NoHealthyTargets);
    }
    Ok(selected)
}

fn named_entries<'t>(
    targets: &'t TargetSet,
    names: &[String],
) -> Result<Vec<&'t TargetEntry>, SelectError> {
    if names.is_empty() {
        return Err(SelectError::NoTargetsNamed);
    }
    let mut unknown: Vec<String> = names
        .iter()
        .filter(|n| targets.get(n).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(SelectError::UnknownTargets(unknown));
    }
    // A name given twice is called once.
    let mut seen = HashSet::with_capacity(names.len());
    Ok(names
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .filter_map(|name| targets.get(name))
        .collect())
}

fn health_skip(apply: bool, strategy: HealthStrategy, status: HealthStatus) -> Option<SkipReason> {
    if !apply {
        return None;
    }
    match (strategy, status) {
        (HealthStrategy::PublishToAll, _) | (_, HealthStatus::Unknown | HealthStatus::Healthy) => {
            None
        }
        (_, HealthStatus::Unhealthy) => Some(SkipReason::Unhealthy),
        (HealthStrategy::SkipUnhealthyAndDegraded, HealthStatus::Degraded) => {
            Some(SkipReason::Degraded)
        }
        (HealthStrategy::SkipUnhealthy, HealthStatus::Degraded) => None,
    }
}

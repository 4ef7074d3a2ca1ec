//! What a sweep pass makes of one log entry, and which live jobs it moves to the dead-letter
//! queue (too old, or of a removed target), shared by both stores.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use alert_core::{
    DeadReason, EnrichedAlert, JobId, JobStoreError, LogDecision, LogEntry, StorageKind,
    TargetKind, TargetName,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The job a sweep makes of a log entry whose [`sweep_action`](alert_core::sweep_action) is a resolve or a refresh: the
/// last accepted alert with the entry's effective `ends_at` (past for a resolve, ahead for a
/// refresh), the next delivery sequence, and the entry that records it.
pub(crate) fn sweep_job(
    entry: &LogEntry,
    last: &EnrichedAlert,
    now: DateTime<Utc>,
) -> Result<LogDecision, JobStoreError> {
    let mut alert = last.clone();
    alert.alert = alert.alert.with_ends_at(entry.ends_at).map_err(|e| {
        JobStoreError::storage(
            StorageKind::Corrupt,
            format!("a logged alert is invalid: {e}"),
        )
    })?;
    let sequence = entry.sequence + 1;
    Ok(LogDecision::Enqueue {
        entry: LogEntry {
            status: alert.alert.status_at(now),
            starts_at: entry.starts_at,
            ends_at: entry.ends_at,
            sequence,
            accepted_at: now,
        },
        alert: Box::new(alert),
        sequence,
    })
}

// === Removed targets and old jobs ===

/// The kind a dead letter takes when the store never saw its target in a plan: only a store
/// written by a build that did not record the target set, whose target was removed while it
/// was stopped, has such jobs.
pub(crate) const UNKNOWN_KIND: TargetKind = TargetKind::Webhook;

/// What a store remembers of a target it saw in a sweep plan's set: its kind and, once it left
/// the set, since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KnownTarget {
    pub(crate) kind: TargetKind,
    #[serde(default, with = "alert_core::wire::timestamp_opt")]
    pub(crate) removed_since: Option<DateTime<Utc>>,
}

/// The changes a pass makes to the recorded targets: `Some` stores the record, `None` drops it.
pub(crate) type TargetChanges = Vec<(TargetName, Option<KnownTarget>)>;

/// Brings the recorded targets up to date with `known` (the plan's set) at `now`. A target of
/// the set is recorded unmarked; a recorded one that left it is marked removed at `now`, once;
/// a removed one with no live job left is forgotten; a target with live jobs that was never
/// recorded is recorded as removed at `now`. `live` tells a target's live jobs. `known`'s names
/// are unique (a target set's).
pub(crate) fn track_targets(
    recorded: &BTreeMap<TargetName, KnownTarget>,
    known: &[(TargetName, TargetKind)],
    with_jobs: impl IntoIterator<Item = TargetName>,
    live: impl Fn(&TargetName) -> u64,
    now: DateTime<Utc>,
) -> TargetChanges {
    let with_jobs: Vec<TargetName> = with_jobs.into_iter().collect();
    // The pass of a set that has not changed, once a second: every target recorded as it is,
    // no other recorded, none with jobs unrecorded. Told without building a map of the set.
    let unchanged = recorded.len() == known.len()
        && known.iter().all(|(name, kind)| {
            recorded
                .get(name)
                .is_some_and(|r| r.kind == *kind && r.removed_since.is_none())
        })
        && with_jobs.iter().all(|name| recorded.contains_key(name));
    if unchanged {
        return Vec::new();
    }
    let set: BTreeMap<&TargetName, TargetKind> = known.iter().map(|(n, k)| (n, *k)).collect();
    let mut changes = Vec::new();
    for (name, kind) in &set {
        let want = KnownTarget {
            kind: *kind,
            removed_since: None,
        };
        if recorded.get(*name) != Some(&want) {
            changes.push(((*name).clone(), Some(want)));
        }
    }
    for (name, record) in recorded {
        if set.contains_key(name) {
            continue;
        }
        if live(name) == 0 {
            changes.push((name.clone(), None));
        } else if record.removed_since.is_none() {
            let marked = KnownTarget {
                kind: record.kind,
                removed_since: Some(now),
            };
            changes.push((name.clone(), Some(marked)));
        }
    }
    let mut unrecorded: Vec<TargetName> = with_jobs
        .into_iter()
        .filter(|name| !set.contains_key(name) && !recorded.contains_key(name))
        .collect();
    unrecorded.sort_unstable();
    unrecorded.dedup();
    for name in unrecorded {
        let marked = KnownTarget {
            kind: UNKNOWN_KIND,
            removed_since: Some(now),
        };
        changes.push((name, Some(marked)));
    }
    changes
}

/// The targets whose removal grace is over at `now`, by the records as `changes` leave them.
pub(crate) fn removal_due(
    recorded: &BTreeMap<TargetName, KnownTarget>,
    changes: &TargetChanges,
    grace: Duration,
    now: DateTime<Utc>,
) -> HashSet<TargetName> {
    let marked = |record: Option<&KnownTarget>| record.is_some_and(|r| r.removed_since.is_some());
    if !recorded.values().any(|r| marked(Some(r)))
        && !changes.iter().any(|(_, c)| marked(c.as_ref()))
    {
        return HashSet::new();
    }
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut after: BTreeMap<&TargetName, Option<&KnownTarget>> =
        recorded.iter().map(|(n, r)| (n, Some(r))).collect();
    for (name, change) in changes {
        after.insert(name, change.as_ref());
    }
    after
        .into_iter()
        .filter_map(|(name, record)| {
            let since = record?.removed_since?;
            since
                .checked_add_signed(grace)
                .is_some_and(|due| due <= now)
                .then(|| name.clone())
        })
        .collect()
}

/// What the sweep sees of one live job.
pub(crate) struct JobView<'a> {
    pub(crate) id: JobId,
    pub(crate) target: &'a TargetName,
    pub(crate) enqueued_at: DateTime<Utc>,
    pub(crate) leased_until: Option<DateTime<Utc>>,
}

/// Why the sweep moves `job` to the dead-letter queue, if it does: its target's removal grace is
/// over (leased or not: a removed target has no lane to settle it), or it is older than
/// `max_age` and no running lease holds it (its lane settles that one).
pub(crate) fn doom(
    job: &JobView<'_>,
    removed: &HashSet<TargetName>,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
) -> Option<DeadReason> {
    if removed.contains(job.target) {
        return Some(DeadReason::TargetRemoved);
    }
    let max_age = chrono::Duration::from_std(max_age?).ok()?;
    let held = job.leased_until.is_some_and(|until| until > now);
    (!held && now.signed_duration_since(job.enqueued_at) > max_age).then_some(DeadReason::Expired)
}

/// The jobs a pass moves to the dead-letter queue, oldest first, at most `limit`.
pub(crate) fn doomed<'a>(
    jobs: impl IntoIterator<Item = JobView<'a>>,
    removed: &HashSet<TargetName>,
    max_age: Option<Duration>,
    limit: usize,
    now: DateTime<Utc>,
) -> Vec<(JobId, DeadReason)> {
    if removed.is_empty() && max_age.is_none() {
        return Vec::new();
    }
    let mut out: Vec<(DateTime<Utc>, JobId, DeadReason)> = jobs
        .into_iter()
        .filter_map(|job| doom(&job, removed, max_age, now).map(|r| (job.enqueued_at, job.id, r)))
        .collect();
    out.sort_unstable_by_key(|&(at, id, _)| (at, id));
    out.truncate(limit);
    // In the order they were made, so the entries' ids sort the same way.
    out.sort_unstable_by_key(|&(_, id, _)| id);
    out.into_iter().map(|(_, id, r)| (id, r)).collect()
}

/// The kind recorded for `target`, as `changes` leave the records.
pub(crate) fn kind_of(
    recorded: &BTreeMap<TargetName, KnownTarget>,
    changes: &TargetChanges,
    target: &TargetName,
) -> TargetKind {
    changes
        .iter()
        .rev()
        .find(|(name, _)| name == target)
        .and_then(|(_, c)| c.as_ref())
        .or_else(|| recorded.get(target))
        .map_or(UNKNOWN_KIND, |r| r.kind)
}

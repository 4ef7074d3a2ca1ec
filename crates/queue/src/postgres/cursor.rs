//! Where each lane's scan for due jobs starts. Acked jobs leave index entries behind until
//! PostgreSQL marks them dead (which waits for every older snapshot to end), and a scan from
//! the start of a lane's range walks them all: under load, the longer the scans, the older the
//! snapshots, the more entries to walk. So a lane's scan starts at the first job that was
//! pending at its last scan: before it, everything was leased or gone.
//!
//! A job can still appear before a cursor: a replica whose clock is behind makes one, an
//! expired lease puts one back, a settlement reschedules one. The store lowers the cursor for
//! each job it makes (and for each that another replica announces), forgets a lane's cursor
//! when it puts leased jobs back, and every lane scans from the start at least once a second.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use alert_core::TargetName;

/// How often a lane scans from the start of its range anyway.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

/// The start of a range: before any job.
pub(super) const START: (i64, i64) = (i64::MIN, i64::MIN);

/// A lane's cursors, one per priority level, with when it last scanned from the start and the
/// earliest job made since its last scan began (so that scan does not move a cursor past a job
/// it did not see).
#[derive(Default)]
struct Lane {
    from: [Option<(i64, i64)>; 3],
    full_at: Option<Instant>,
    since_scan: [Option<(i64, i64)>; 3],
}

#[derive(Default)]
pub(super) struct Cursors {
    lanes: Mutex<HashMap<TargetName, Lane>>,
}

/// Where one lane's scan starts, per level.
pub(super) struct Scan {
    pub(super) from: [(i64, i64); 3],
}

impl Cursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TargetName, Lane>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where `target`'s scan starts now: from the start once a second, else at its cursors.
    pub(super) fn scan(&self, target: &TargetName) -> Scan {
        let mut lanes = self.lock();
        let lane = lanes.entry(target.clone()).or_default();
        let full = lane
            .full_at
            .is_none_or(|at| at.elapsed() >= FULL_SCAN_EVERY);
        if full {
            lane.full_at = Some(Instant::now());
        }
        lane.since_scan = [None; 3];
        Scan {
            from: std::array::from_fn(|level| {
                if full {
                    START
                } else {
                    lane.from[level].unwrap_or(START)
                }
            }),
        }
    }

    /// After a scan: `first` is, per level, the first job that was pending (or `None` if none
    /// was). A job made since the scan began keeps the cursor at or before it.
    pub(super) fn advance(&self, target: &TargetName, scan: &Scan, first: [Option<(i64, i64)>; 3]) {
        let mut lanes = self.lock();
        let lane = lanes.entry(target.clone()).or_default();
        for (((from, since), first), start) in lane
            .from
            .iter_mut()
            .zip(lane.since_scan)
            .zip(first)
            .zip(scan.from)
        {
            // With no pending job, the scan's own start stays the cursor.
            let next = first.unwrap_or(start);
            *from = Some(since.map_or(next, |made| made.min(next)));
        }
    }

    /// A job now exists at `at` on `target`'s `level`: scans must start at or before it.
    pub(super) fn lower(&self, target: &TargetName, level: usize, at: (i64, i64)) {
        let mut lanes = self.lock();
        let lane = lanes.entry(target.clone()).or_default();
        if let Some(from) = lane.from.get_mut(level) {
            *from = Some(from.map_or(at, |now| now.min(at)));
        }
        if let Some(since) = lane.since_scan.get_mut(level) {
            *since = Some(since.map_or(at, |now| now.min(at)));
        }
    }

    /// `target`'s next scan starts from the start.
    pub(super) fn forget(&self, target: &TargetName) {
        let mut lanes = self.lock();
        if let Some(lane) = lanes.get_mut(target) {
            lane.from = [None; 3];
            lane.since_scan = [Some(START); 3];
            lane.full_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_moves_to_the_first_pending_job_and_never_past_a_job_made_meanwhile() {
        let cursors = Cursors::default();
        let lane = TargetName::new("lane").unwrap();
        let first = cursors.scan(&lane);
        assert_eq!(first.from, [START; 3], "the first scan is from the start");
        cursors.advance(&lane, &first, [Some((10, 1)), None, None]);
        let second = cursors.scan(&lane);
        assert_eq!(second.from[0], (10, 1), "then from the first pending job");
        assert_eq!(second.from[1], START, "a level with no job keeps its start");
        // A job made at (5, 9) while the second scan ran: the scan did not see it.
        cursors.lower(&lane, 0, (5, 9));
        cursors.advance(&lane, &second, [Some((12, 3)), None, None]);
        assert_eq!(
            cursors.scan(&lane).from[0],
            (5, 9),
            "the job made meanwhile is not skipped"
        );
        cursors.forget(&lane);
        assert_eq!(
            cursors.scan(&lane).from,
            [START; 3],
            "a forgotten lane scans from the start"
        );
    }
}

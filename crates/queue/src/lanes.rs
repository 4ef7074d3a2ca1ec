//! The lease order both stores share: how a lane's lease slots go to the priorities.

use std::collections::VecDeque;

use alert_core::{JobId, Priority};

/// The order in which a lane's 16 consecutive lease slots go to the priorities: 12 high, 3 medium
/// and 1 low, as [`Priority::share`] documents. The lower levels are spread out so that a lane
/// leasing a few jobs at a time still reaches them, and the position carries over between
/// leases, so the shares hold however many jobs each lease asks for.
pub(crate) const CYCLE: [Priority; 16] = {
    use Priority::{High as H, Low as L, Medium as M};
    [H, H, H, H, M, H, H, H, H, M, H, H, H, H, M, L]
};

/// The index of `priority` in per-level arrays: high 0, medium 1, low 2.
pub(crate) const fn level(priority: Priority) -> usize {
    match priority {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
    }
}

/// Takes up to `n` jobs from the per-level `candidates` (each oldest due first), following
/// [`CYCLE`] from position `cycle`. Returns them with the position to keep for the next lease.
pub(crate) fn take_by_share(
    mut candidates: [VecDeque<JobId>; 3],
    mut cycle: usize,
    n: usize,
) -> (Vec<JobId>, usize) {
    let mut picked = Vec::with_capacity(n.min(candidates.iter().map(VecDeque::len).sum()));
    while picked.len() < n {
        // A level with nothing due gives its slot to the highest level that has something.
        let wanted = level(CYCLE[cycle % CYCLE.len()]);
        let Some(id) = candidates[wanted]
            .pop_front()
            .or_else(|| candidates.iter_mut().find_map(VecDeque::pop_front))
        else {
            break;
        };
        picked.push(id);
        cycle = (cycle + 1) % CYCLE.len();
    }
    (picked, cycle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_gives_each_level_its_share() {
        for p in Priority::ALL {
            let slots = CYCLE.iter().filter(|&&c| c == p).count();
            assert_eq!(slots, p.share() as usize, "{}", p.as_str());
        }
    }
}

//! The soak's verdict: a pure function from what the senders, the mock targets and the server's
//! API recorded to the figures and the violations.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::mocks::{Behaviour, Delivery};

/// A lane holds at most four times its in-flight limit (docs/ARCHITECTURE.md), and those are the
/// deliveries one crash (or one failed commit of settlements) can repeat.
pub(crate) const LANE_HOLD_FACTOR: u64 = 4;

/// Everything the soak observed, gathered at the end.
#[derive(Default)]
pub(crate) struct Observed {
    /// Alerts that got a 2xx, by name, with the fault target they were routed to (if any).
    pub(crate) accepted: HashMap<String, Option<Behaviour>>,
    /// Fresh alerts whose request got a definite non-2xx answer: nothing of it may be delivered.
    pub(crate) refused: HashSet<String>,
    /// What the healthy target answered 200 to.
    pub(crate) healthy: Vec<Delivery>,
    /// The alert names each faulty target was sent at least once.
    pub(crate) seen_by_fault: HashMap<Behaviour, HashSet<String>>,
    /// The DLQ at the end: (target, alert name).
    pub(crate) dead_letters: Vec<(String, String)>,
    /// `kill -9`s of the server, the final one included.
    pub(crate) kills: u64,
    /// Windows in which the queue's storage failed (each may fail the acks of one lane's hold).
    pub(crate) storage_windows: u64,
    /// Forward steps of the server's wall clock: leases expire by the wall clock, so a step
    /// past their TTL hands a lane's whole hold out again, as a crash does.
    pub(crate) clock_steps_ahead: u64,
    /// The healthy lane's in-flight limit.
    pub(crate) in_flight: u64,
    /// Whether the queue drained: `/api/v1/queue` depth 0 and the depth gauges all 0.
    pub(crate) drained: bool,
    pub(crate) peak_rss_kib: u64,
    pub(crate) rss_bound_kib: u64,
    /// Problems found while running (unexpected answers, a window that did not bite, …).
    pub(crate) run_violations: Vec<String>,
}

/// The figures and what broke.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Accepted alerts the healthy target never got as a firing and the DLQ does not hold for it.
    pub(crate) lost: Vec<String>,
    /// Accepted alerts routed to a faulty target that it never saw and the DLQ does not hold.
    pub(crate) lost_at_faults: Vec<String>,
    /// Deliveries to the healthy target beyond the first of each (alert, status).
    pub(crate) duplicates: u64,
    pub(crate) duplicate_bound: u64,
    /// Deliveries of alerts never accepted because their request's answer was lost.
    pub(crate) unacknowledged_deliveries: u64,
    /// Fresh alerts whose request was refused (503 `storage`) but which were delivered anyway:
    /// a group of fresh alerts reaches the lanes before its fsync, and a failed commit takes
    /// back only the jobs not yet in flight (docs/ARCHITECTURE.md, `queue`). The sender retries
    /// a 503, so this is an early delivery, not a loss; it is reported, not judged.
    pub(crate) refused_delivered: Vec<String>,
    pub(crate) dead_letters_by_target: BTreeMap<String, u64>,
    pub(crate) violations: Vec<String>,
}

impl Verdict {
    pub(crate) fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Judges a soak.
pub(crate) fn judge(observed: &Observed) -> Verdict {
    let mut verdict = Verdict::default();
    let mut dead: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (target, alert) in &observed.dead_letters {
        dead.entry(target.as_str())
            .or_default()
            .insert(alert.as_str());
        *verdict
            .dead_letters_by_target
            .entry(target.clone())
            .or_default() += 1;
    }
    let in_dlq = |target: &str, alert: &str| dead.get(target).is_some_and(|s| s.contains(alert));

    let mut delivered: HashMap<(&str, &str), u64> = HashMap::new();
    for d in &observed.healthy {
        *delivered
            .entry((d.alert_name.as_str(), d.status.as_str()))
            .or_default() += 1;
    }
    verdict.duplicates = delivered.values().map(|n| n - 1).sum();
    verdict.duplicate_bound =
        (observed.kills + observed.storage_windows + observed.clock_steps_ahead)
            * LANE_HOLD_FACTOR
            * observed.in_flight;
    verdict.unacknowledged_deliveries = observed
        .healthy
        .iter()
        .filter(|d| !observed.accepted.contains_key(&d.alert_name))
        .count() as u64;

    for (name, route) in &observed.accepted {
        if !delivered.contains_key(&(name.as_str(), "firing")) && !in_dlq("healthy", name) {
            verdict.lost.push(name.clone());
        }
        if let Some(fault) = route {
            let seen = observed
                .seen_by_fault
                .get(fault)
                .is_some_and(|s| s.contains(name));
            if !seen && !in_dlq(fault.name(), name) {
                verdict
                    .lost_at_faults
                    .push(format!("{name} at {}", fault.name()));
            }
        }
    }
    verdict.lost.sort();
    verdict.lost_at_faults.sort();

    verdict.refused_delivered = observed
        .refused
        .iter()
        .filter(|name| delivered.keys().any(|(n, _)| n == name))
        .cloned()
        .collect();
    verdict.refused_delivered.sort();

    let v = &mut verdict.violations;
    v.extend(observed.run_violations.iter().cloned());
    if !verdict.lost.is_empty() {
        v.push(format!(
            "{} accepted alerts were lost (first: {:?})",
            verdict.lost.len(),
            &verdict.lost[..verdict.lost.len().min(5)]
        ));
    }
    if !verdict.lost_at_faults.is_empty() {
        v.push(format!(
            "{} accepted alerts never reached their faulty target nor its DLQ (first: {:?})",
            verdict.lost_at_faults.len(),
            &verdict.lost_at_faults[..verdict.lost_at_faults.len().min(5)]
        ));
    }
    if verdict.duplicates > verdict.duplicate_bound {
        v.push(format!(
            "{} duplicate deliveries exceed the bound of {} ((kills + storage windows + clock steps ahead) × {} × in-flight {})",
            verdict.duplicates, verdict.duplicate_bound, LANE_HOLD_FACTOR, observed.in_flight
        ));
    }
    if !observed.drained {
        v.push("the queue did not drain: jobs neither delivered nor dead-lettered".to_owned());
    }
    if observed.peak_rss_kib > observed.rss_bound_kib {
        v.push(format!(
            "peak RSS {} MiB exceeds the bound of {} MiB",
            observed.peak_rss_kib / 1024,
            observed.rss_bound_kib / 1024
        ));
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(name: &str, status: &str) -> Delivery {
        Delivery {
            alert_name: name.to_owned(),
            fingerprint: "0000000000000001".to_owned(),
            status: status.to_owned(),
            key: format!("{name}-{status}"),
        }
    }

    fn clean() -> Observed {
        Observed {
            accepted: HashMap::from([
                ("a".to_owned(), None),
                ("b".to_owned(), Some(Behaviour::Drip)),
            ]),
            healthy: vec![delivery("a", "firing"), delivery("b", "firing")],
            seen_by_fault: HashMap::from([(Behaviour::Drip, HashSet::from(["b".to_owned()]))]),
            kills: 1,
            in_flight: 16,
            drained: true,
            peak_rss_kib: 100 * 1024,
            rss_bound_kib: 512 * 1024,
            ..Observed::default()
        }
    }

    #[test]
    fn a_clean_soak_passes() {
        let verdict = judge(&clean());
        assert!(verdict.passed(), "{:?}", verdict.violations);
        assert_eq!(verdict.duplicates, 0);
        assert_eq!(verdict.duplicate_bound, 64);
    }

    #[test]
    fn an_accepted_alert_neither_delivered_nor_dead_lettered_is_lost() {
        let mut observed = clean();
        observed.healthy.retain(|d| d.alert_name != "a");
        let verdict = judge(&observed);
        assert_eq!(verdict.lost, ["a"]);
        assert!(!verdict.passed());

        // In the DLQ for the healthy target, it is accounted for; a resolve is no delivery of
        // the firing.
        observed
            .dead_letters
            .push(("healthy".to_owned(), "a".to_owned()));
        assert!(judge(&observed).passed());
        observed.dead_letters.clear();
        observed.healthy.push(delivery("a", "resolved"));
        assert_eq!(judge(&observed).lost, ["a"]);
    }

    #[test]
    fn an_alert_its_faulty_target_never_saw_must_be_in_that_targets_dlq() {
        let mut observed = clean();
        observed.seen_by_fault.clear();
        assert_eq!(judge(&observed).lost_at_faults, ["b at drip"]);
        observed
            .dead_letters
            .push(("healthy".to_owned(), "b".to_owned()));
        assert!(
            !judge(&observed).passed(),
            "another target's DLQ does not count"
        );
        observed
            .dead_letters
            .push(("drip".to_owned(), "b".to_owned()));
        assert!(judge(&observed).passed());
    }

    #[test]
    fn duplicates_beyond_the_lanes_hold_per_kill_fail() {
        let mut observed = clean();
        for _ in 0..64 {
            observed.healthy.push(delivery("a", "firing"));
        }
        let verdict = judge(&observed);
        assert_eq!(verdict.duplicates, 64);
        assert!(verdict.passed());
        observed.healthy.push(delivery("a", "firing"));
        assert!(!judge(&observed).passed());
        observed.storage_windows = 1;
        assert!(judge(&observed).passed());
        observed.storage_windows = 0;
        observed.clock_steps_ahead = 1;
        assert!(judge(&observed).passed());
    }

    #[test]
    fn a_refused_alert_that_is_delivered_is_counted_not_judged() {
        let mut observed = clean();
        observed.refused.insert("c".to_owned());
        assert!(judge(&observed).refused_delivered.is_empty());
        observed.healthy.push(delivery("c", "firing"));
        let verdict = judge(&observed);
        assert_eq!(verdict.unacknowledged_deliveries, 1);
        assert_eq!(verdict.refused_delivered, ["c"]);
        assert!(verdict.passed());
    }

    #[test]
    fn no_drain_and_too_much_memory_fail() {
        let mut observed = clean();
        observed.drained = false;
        assert!(!judge(&observed).passed());
        let mut observed = clean();
        observed.peak_rss_kib = 513 * 1024;
        assert!(!judge(&observed).passed());
    }
}

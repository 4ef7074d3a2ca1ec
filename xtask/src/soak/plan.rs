//! When each fault happens: a timeline drawn from the seed.
//!
//! The disk-full window, the h2c flood and the clock steps sit at fixed fractions of the run; the
//! kills fall at random moments outside the disk-full and flood windows (so each window's checks
//! see one server throughout), at least [`MIN_GAP`] apart.

use std::time::Duration;

use super::Rng;

/// How far the server's wall clock steps ahead: past every lease's TTL and the notification
/// log's timing, well short of `max_age` and `resolve_timeout`.
const CLOCK_AHEAD_SECS: i64 = 600;

/// The least time between two kills, and between a kill and a window.
const MIN_GAP: Duration = Duration::from_secs(6);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Kill,
    DiskFill,
    DiskFree,
    Flood,
    ClockAhead,
    ClockBack,
}

impl Event {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Event::Kill => "kill -9 and restart",
            Event::DiskFill => "disk-full window opens",
            Event::DiskFree => "disk-full window closes: filler removed",
            Event::Flood => "h2c idle-connection flood",
            Event::ClockAhead => "server clock steps ahead",
            Event::ClockBack => "server clock steps back",
        }
    }
}

/// A soak's shape.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) load: Duration,
    /// Events by their offset from the start, in order.
    pub(crate) events: Vec<(Duration, Event)>,
    pub(crate) drain: Duration,
    pub(crate) senders: u32,
    pub(crate) requests_per_sender: u32,
    pub(crate) flood_connections: u64,
    pub(crate) flood_hold: Duration,
    /// The server's wall clock steps this far ahead of the real one…
    pub(crate) clock_ahead_secs: i64,
    /// …and later back by this much (staying ahead by the difference).
    pub(crate) clock_back_secs: i64,
    pub(crate) tmpfs_mib: u64,
}

impl Plan {
    /// The full run: `minutes` of load (at least 1), max(10, minutes + 2) kills.
    pub(crate) fn full(seed: u64, minutes: u64) -> Self {
        let load = Duration::from_secs(minutes.max(1) * 60);
        let kills = (minutes + 2).max(10);
        Self::build(
            seed,
            load,
            kills,
            Duration::from_secs(30),
            Duration::from_secs(45),
            512,
            (180, 120),
        )
    }

    /// The CI run: 60 s of load, 3 kills, every fault in short.
    pub(crate) fn short(seed: u64) -> Self {
        Self::build(
            seed,
            Duration::from_secs(60),
            3,
            Duration::from_secs(8),
            Duration::from_secs(8),
            128,
            (30, 10),
        )
    }

    fn build(
        seed: u64,
        load: Duration,
        kills: u64,
        disk_window: Duration,
        flood_hold: Duration,
        flood_connections: u64,
        (drain_secs, clock_back_secs): (u64, i64),
    ) -> Self {
        let at = |fraction: f64| load.mul_f64(fraction);
        let disk = (at(0.25), at(0.25) + disk_window);
        let flood = (at(0.50), at(0.50) + flood_hold);
        let mut events = vec![
            (disk.0, Event::DiskFill),
            (disk.1, Event::DiskFree),
            (flood.0, Event::Flood),
            (at(0.68), Event::ClockAhead),
            (at(0.82), Event::ClockBack),
        ];
        let busy = [
            (disk.0.saturating_sub(MIN_GAP), disk.1 + MIN_GAP),
            (flood.0.saturating_sub(MIN_GAP), flood.1 + MIN_GAP),
        ];
        let mut rng = Rng::new(seed ^ 0x50AC);
        let mut placed: Vec<Duration> = Vec::new();
        let (first, last) = (MIN_GAP, load.saturating_sub(MIN_GAP));
        let span_ms = last.saturating_sub(first).as_millis() as u64;
        // Rejection sampling, bounded; whatever does not fit is placed in the largest free gaps
        // below, so the count is met on any seed.
        for _ in 0..10_000 {
            if placed.len() as u64 >= kills {
                break;
            }
            let t = first + Duration::from_millis(rng.below(span_ms));
            let clear = busy.iter().all(|&(a, b)| t < a || t > b)
                && placed.iter().all(|&p| p.abs_diff(t) >= MIN_GAP);
            if clear {
                placed.push(t);
            }
        }
        while (placed.len() as u64) < kills {
            // Midpoint of the largest gap between existing instants (busy windows ignored).
            let mut points: Vec<Duration> = placed.clone();
            points.extend([first, last]);
            points.sort();
            let (a, b) = points
                .windows(2)
                .map(|w| (w[0], w[1]))
                .max_by_key(|(a, b)| *b - *a)
                .expect("at least two points");
            placed.push(a + (b - a) / 2);
        }
        events.extend(placed.into_iter().map(|t| (t, Event::Kill)));
        events.sort_by_key(|(t, _)| *t);
        Self {
            load,
            events,
            // A job waiting out a backoff when the clock steps back waits until the clock reaches
            // its due time again (docs/operations.md), so the drain allows for the step.
            drain: Duration::from_secs(drain_secs + clock_back_secs.unsigned_abs()),
            senders: 4,
            requests_per_sender: 12,
            flood_connections,
            flood_hold,
            clock_ahead_secs: CLOCK_AHEAD_SECS,
            clock_back_secs,
            tmpfs_mib: 128,
        }
    }

    pub(crate) fn kill_count(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| *e == Event::Kill)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_plan_kills_at_least_ten_times_outside_the_windows_and_is_reproducible() {
        for seed in 0..50 {
            let plan = Plan::full(seed, 10);
            assert!(plan.kill_count() >= 10, "seed {seed}: {plan:?}");
            let at = |event| plan.events.iter().find(|(_, e)| *e == event).unwrap().0;
            let (fill, free, flood) = (at(Event::DiskFill), at(Event::DiskFree), at(Event::Flood));
            for (t, e) in &plan.events {
                assert!(*t < plan.load);
                if *e == Event::Kill {
                    assert!(
                        *t < fill || *t > free,
                        "seed {seed}: kill at {t:?} in the disk window"
                    );
                    assert!(
                        *t < flood || *t > flood + plan.flood_hold,
                        "seed {seed}: kill in the flood"
                    );
                }
            }
            assert_eq!(format!("{plan:?}"), format!("{:?}", Plan::full(seed, 10)));
        }
        assert_ne!(
            format!("{:?}", Plan::full(1, 10)),
            format!("{:?}", Plan::full(2, 10))
        );
    }

    #[test]
    fn the_short_plan_fits_in_ci() {
        let plan = Plan::short(3);
        assert_eq!(plan.kill_count(), 3);
        for plan in [&plan, &Plan::full(3, 10)] {
            let at = |event| plan.events.iter().find(|(_, e)| *e == event).unwrap().0;
            assert!(at(Event::ClockAhead) < at(Event::ClockBack));
            assert!(plan.clock_back_secs < plan.clock_ahead_secs);
        }
        assert!(plan.load + plan.drain <= Duration::from_secs(100));
    }
}

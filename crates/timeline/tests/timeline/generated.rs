//! Generated timelines: 200 from a fixed seed, so a CI run is repeatable, and 100 from a seed that
//! rotates with the day (printed, and settable with `TIMELINE_SEED`), so runs explore new ones.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use timeline::{End, Fault, Occurrence, Source, Timeline, Window, check, report};

use crate::run;

/// The fixed seed's case count, and the rotating seed's.
const FIXED_CASES: u32 = 200;
const ROTATING_CASES: u32 = 100;
const FIXED_SEED: u64 = 0x00a1_e27b_0b16;

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        2 => Just(Source::ApiV2 { explicit_end: true }),
        1 => Just(Source::ApiV2 { explicit_end: false }),
        2 => Just(Source::Webhook),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::Down),
        1 => (11_u32..40).prop_map(Fault::Slow),
        1 => Just(Fault::RateLimited(None)),
        1 => (1_u32..300).prop_map(|s| Fault::RateLimited(Some(s))),
    ]
}

/// One alert's occurrences: one or two, the second starting well after the first has ended.
fn occurrences(alert: u8) -> impl Strategy<Value = Vec<Occurrence>> {
    (
        source(),
        0_u32..1800,
        60_u32..5400,
        0_u8..3,
        proptest::option::of((600_u32..3600, 60_u32..3600, 0_u8..3, source())),
    )
        .prop_map(move |(source, start, lasts, how, again)| {
            let end_of = |source: Source, start: u32, lasts: u32, how: u8| match (how, source) {
                (0, _) => End::Never,
                (1, Source::ApiV2 { .. }) => End::Silent(start + lasts),
                _ => End::Resolved(start + lasts),
            };
            let first = Occurrence {
                alert,
                source,
                start,
                end: end_of(source, start, lasts, how),
            };
            let mut all = vec![first];
            if let (Some(ended), Some((gap, lasts, how, source))) = (first.ended_at(), again) {
                let start = ended + gap;
                all.push(Occurrence {
                    alert,
                    source,
                    start,
                    end: end_of(source, start, lasts, how),
                });
            }
            all
        })
}

fn timeline() -> impl Strategy<Value = Timeline> {
    (
        1_u8..=2,
        1_u8..=2,
        proptest::collection::vec((0_u8..2, 0_u32..5400, 30_u32..2400, fault()), 0..=3),
        proptest::collection::vec(0_u32..5400, 0..=2),
    )
        .prop_flat_map(|(targets, alerts, faults, restarts)| {
            let per_alert: Vec<_> = (0..alerts).map(occurrences).collect();
            (Just(targets), per_alert, Just(faults), Just(restarts))
        })
        .prop_map(|(targets, per_alert, faults, restarts)| {
            let occurrences: Vec<Occurrence> = per_alert.into_iter().flatten().collect();
            let faults: Vec<Window> = faults
                .into_iter()
                .filter(|(target, ..)| *target < targets)
                .map(|(target, from, lasts, fault)| Window {
                    target,
                    from,
                    until: from + lasts,
                    fault,
                })
                .collect();
            let last_event = occurrences
                .iter()
                .map(|o| match o.end {
                    End::Resolved(at) | End::Silent(at) => at.max(o.ended_at().unwrap_or(at)),
                    End::Never => o.start,
                })
                .chain(faults.iter().map(|w| w.until))
                .chain(restarts.iter().copied())
                .max()
                .unwrap_or(0);
            Timeline {
                targets,
                occurrences,
                faults,
                restarts,
                length: (last_event + 600).max(3600),
            }
        })
}

fn run_cases(seed: u64, cases: u32) {
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&timeline(), |t| {
        let received = run(&t);
        let violations = check(&t, &received);
        prop_assert!(violations.is_empty(), "{}", report(&t, &violations));
        Ok(())
    });
    if let Err(err) = outcome {
        panic!("seed {seed:#x}: {err}");
    }
    println!("timeline: {cases} generated timelines held every invariant (seed {seed:#x})");
}

#[test]
fn generated_timelines_from_a_fixed_seed_hold_every_invariant() {
    run_cases(FIXED_SEED, FIXED_CASES);
}

#[test]
fn generated_timelines_from_a_rotating_seed_hold_every_invariant() {
    let seed = std::env::var("TIMELINE_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            // The day since the epoch: one new set of timelines a day, the same all that day.
            let days = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() / 86_400);
            FIXED_SEED ^ days.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
    run_cases(seed, ROTATING_CASES);
}

//! Exponential backoff with full jitter, and the small per-lane random generator it draws from.

use std::hash::{BuildHasher, Hash};
use std::time::Duration;

/// SplitMix64: a tiny, fast generator. Each lane owns one, so drawing a number never takes a
/// lock shared with other lanes. It is not cryptographic, and it does not need to be: it only
/// spreads retries out.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded from `key` and the process's random hasher keys, so two lanes (and two
    /// processes) draw different sequences.
    pub(crate) fn seeded_from(key: impl Hash) -> Self {
        Self(std::collections::hash_map::RandomState::new().hash_one(key))
    }

    #[cfg(test)]
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The ceiling of the backoff before attempt `attempt + 1`: `initial * 2^(attempt - 1)`, capped
/// at `max`. Attempt numbers start at 1.
pub(crate) fn backoff_ceiling(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(63);
    let factor = 1_u64 << doublings;
    let nanos = initial.as_nanos().saturating_mul(u128::from(factor));
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos).min(max)
}

/// Full jitter: a uniform draw in `[0, backoff_ceiling(attempt)]`, from the random word `random`.
/// Spreading retries over the whole interval keeps many failing jobs from retrying in lockstep.
pub(crate) fn full_jitter(attempt: u32, initial: Duration, max: Duration, random: u64) -> Duration {
    let ceiling = backoff_ceiling(attempt, initial, max);
    let span = ceiling.as_nanos() + 1;
    // Multiply-high maps the 64-bit word onto [0, span) without the bias of a modulo.
    let nanos = (u128::from(random) * span) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ceiling_doubles_from_initial_and_caps_at_max() {
        let max = 300 * S;
        assert_eq!(backoff_ceiling(1, S, max), S);
        assert_eq!(backoff_ceiling(2, S, max), 2 * S);
        assert_eq!(backoff_ceiling(4, S, max), 8 * S);
        assert_eq!(backoff_ceiling(9, S, max), 256 * S);
        assert_eq!(backoff_ceiling(10, S, max), max);
        assert_eq!(backoff_ceiling(u32::MAX, S, max), max);
        assert_eq!(backoff_ceiling(0, S, max), S);
    }

    #[test]
    fn jitter_stays_within_the_ceiling_and_spreads() {
        let mut rng = SplitMix64::new(7);
        let draws: Vec<Duration> = (0..1000)
            .map(|_| full_jitter(3, S, 300 * S, rng.next_u64()))
            .collect();
        assert!(draws.iter().all(|d| *d <= 4 * S));
        assert!(draws.iter().any(|d| *d < S), "some draws are short");
        assert!(draws.iter().any(|d| *d > 3 * S), "some draws are long");
        assert_eq!(full_jitter(3, S, 300 * S, 0), Duration::ZERO);
        assert_eq!(full_jitter(3, S, 300 * S, u64::MAX), 4 * S);
    }
}

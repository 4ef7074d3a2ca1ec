//! The largest (and smallest) values the config accepts, checked while it is parsed.
//!
//! Each check is a `deserialize_with` function, so a value out of range fails the parse like any
//! other bad value, with the field's path (`targets[1].timeout: …`, or `timeout: …` in a
//! Kubernetes Secret). Values are refused rather than clamped: a setting that silently means
//! something else than it says is worse than a config that does not load. Every bound is
//! documented in `docs/configuration.md`.
//!
//! Why bounds at all: a duration becomes an `Instant` deadline (`now + timeout`), which panics on
//! overflow, and a huge backoff or interval does the same wherever it is added to the clock; an
//! in-flight limit becomes a semaphore, which panics above `usize::MAX >> 3` permits. A config
//! file is trusted, but a target may also come from a Kubernetes Secret, which is not.

use std::fmt::Display;
use std::time::Duration;

use alert_core::RateLimit;
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::duration::Dur;

/// The longest attempt or probe timeout, and the longest server deadline: one hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest backoff, health-check interval and breaker open time: one day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The largest in-flight limit of one target's lane (its own `in_flight`, or
/// `queue.per_target_in_flight`).
pub const MAX_IN_FLIGHT: usize = 1024;
/// The largest rate limit: 600 000 a minute, 10 000 a second.
pub const MAX_PER_MINUTE: u32 = 600_000;
/// The most calls the synchronous API or the prober makes at once (the fan-out engine's own
/// bound, `fanout::MAX_CONCURRENT_LIMIT`).
pub const MAX_CONCURRENT: usize = 1000;
/// The largest `queue.pool_size`: PostgreSQL's own default `max_connections` is 100.
pub(crate) const MAX_POOL: usize = 100;
/// The most attempts a job may have before the dead-letter queue.
pub const MAX_ATTEMPTS: u32 = 1000;

fn in_range<T, E>(value: T, min: T, max: T, show: impl Fn(T) -> String) -> Result<T, E>
where
    T: PartialOrd + Copy,
    E: serde::de::Error,
{
    if value < min {
        return Err(E::custom(format!(
            "{} is too small: the least is {}",
            show(value),
            show(min)
        )));
    }
    if value > max {
        return Err(E::custom(format!(
            "{} is too large: the most is {}",
            show(value),
            show(max)
        )));
    }
    Ok(value)
}

fn show_dur(dur: Dur) -> String {
    crate::duration::human(dur.0)
}

fn show<T: Display>(value: T) -> String {
    value.to_string()
}

/// A per-attempt or probe timeout: more than zero, at most [`MAX_TIMEOUT`].
pub(crate) fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    in_range(
        Dur::deserialize(d)?,
        Dur(Duration::from_millis(1)),
        Dur(MAX_TIMEOUT),
        show_dur,
    )
}

/// An optional [`timeout`].
pub(crate) fn opt_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dur>, D::Error> {
    timeout(d).map(Some)
}

/// A server deadline, where zero is allowed: at most [`MAX_TIMEOUT`].
pub(crate) fn deadline<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    in_range(Dur::deserialize(d)?, Dur::ZERO, Dur(MAX_TIMEOUT), show_dur)
}

/// A backoff, health-check interval or breaker open time: at most [`MAX_INTERVAL`].
pub(crate) fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    in_range(Dur::deserialize(d)?, Dur::ZERO, Dur(MAX_INTERVAL), show_dur)
}

/// An in-flight limit: 1 to [`MAX_IN_FLIGHT`].
pub(crate) fn in_flight<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(usize::deserialize(d)?, 1, MAX_IN_FLIGHT, show)
}

/// An optional [`in_flight`].
pub(crate) fn opt_in_flight<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    in_flight(d).map(Some)
}

/// A concurrency limit: 1 to [`MAX_CONCURRENT`].
pub(crate) fn concurrent<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(usize::deserialize(d)?, 1, MAX_CONCURRENT, show)
}

/// The most connections to the queue's database: 1 to [`MAX_POOL`].
pub(crate) fn pool_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    in_range(usize::deserialize(d)?, 1, MAX_POOL, show)
}

/// The attempts before the DLQ: 1 to [`MAX_ATTEMPTS`].
pub(crate) fn attempts<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(u32::deserialize(d)?, 1, MAX_ATTEMPTS, show)
}

/// A target's rate limit: `per_minute` from 1 to [`MAX_PER_MINUTE`]. Zero is refused rather
/// than read as "one": a target that should get nothing is `enabled: false`.
pub(crate) fn opt_rate_limit<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<RateLimit>, D::Error> {
    let limit = RateLimit::deserialize(d)?;
    in_range(limit.per_minute, 1, MAX_PER_MINUTE, show)
        .map_err(|e: D::Error| D::Error::custom(format!("per_minute: {e}")))?;
    Ok(Some(limit))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::load::{ConfigError, parse};

    /// The field and message of a config that does not parse.
    fn refused(yaml: &str) -> (String, String) {
        match parse(yaml, Path::new("c.yaml")) {
            Err(ConfigError::Field { field, message, .. }) => (field, message),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    fn target(extra: &str) -> String {
        format!("targets:\n  - name: t\n    kind: webhook\n    url: https://example.com\n{extra}")
    }

    #[test]
    fn a_target_timeout_above_an_hour_is_refused_naming_the_field() {
        let (field, message) = refused(&target("    timeout: 2h\n"));
        assert_eq!(field, "targets[0].timeout");
        assert!(
            message.contains("2h is too large: the most is 1h"),
            "{message}"
        );
        // So large that `now + timeout` would overflow: refused by the duration itself.
        let (field, message) = refused(&target("    timeout: 100000000000h\n"));
        assert_eq!(field, "targets[0].timeout");
        assert!(message.contains("too long"), "{message}");
        let (field, _) = refused(&target("    timeout: 0\n"));
        assert_eq!(field, "targets[0].timeout");
        parse(&target("    timeout: 1h\n"), Path::new("c.yaml")).unwrap();
    }

    #[test]
    fn a_postgres_queue_needs_one_url_and_a_redb_queue_none() {
        for (yaml, field, says) in [
            (
                "queue:\n  backend: postgres\n",
                "queue.url",
                "needs the database's",
            ),
            (
                "queue:\n  backend: postgres\n  url: postgres://db/q\n  url_file: /u\n",
                "queue.url",
                "not both",
            ),
            (
                "queue:\n  url_file: /u\n",
                "queue.backend",
                "for `backend: postgres`",
            ),
            (
                "queue:\n  backend: postgres\n  url_file: /u\n  pool_size: 0\n",
                "queue.pool_size",
                "",
            ),
            (
                "queue:\n  backend: postgres\n  url_file: /u\n  pool_size: 101\n",
                "queue.pool_size",
                "",
            ),
            ("queue:\n  backend: sqlite\n", "queue.backend", ""),
        ] {
            let (got, message) = refused(yaml);
            assert_eq!(got, field, "{yaml}: {message}");
            assert!(message.contains(says), "{yaml}: {message}");
        }
        let config = parse(
            "queue:\n  backend: postgres\n  url: ${env:QUEUE_URL}\n  pool_size: 8\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(config.queue.backend, crate::QueueBackend::Postgres);
        assert_eq!(config.queue.pool_size, 8);
        let debug = format!("{:?}", config.queue);
        assert!(
            !debug.contains("QUEUE_URL"),
            "the URL is never printed: {debug}"
        );
        assert_eq!(
            parse("", Path::new("c.yaml")).unwrap().queue.backend,
            crate::QueueBackend::Redb
        );
    }

    #[test]
    fn backoffs_and_intervals_above_a_day_are_refused() {
        for (yaml, field) in [
            ("queue:\n  max_backoff: 30d\n", "queue.max_backoff"),
            ("queue:\n  initial_backoff: 25h\n", "queue.initial_backoff"),
            ("health:\n  interval: 2d\n", "health.interval"),
            (
                "circuit_breaker:\n  open_for: 2d\n",
                "circuit_breaker.open_for",
            ),
            (
                "publishing:\n  per_target_timeout: 61m\n",
                "publishing.per_target_timeout",
            ),
            (
                "server:\n  shutdown_timeout: 2h\n",
                "server.shutdown_timeout",
            ),
            ("ingest:\n  log_retention: 31d\n", "ingest.log_retention"),
        ] {
            let (got, message) = refused(yaml);
            assert_eq!(got, field, "{yaml}");
            assert!(message.contains("too"), "{message}");
        }
        parse("queue:\n  max_backoff: 24h\n", Path::new("c.yaml")).unwrap();
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        for (yaml, field) in [
            (target("    in_flight: 0\n"), "targets[0].in_flight"),
            (
                target("    in_flight: 100000000000\n"),
                "targets[0].in_flight",
            ),
            (
                target("    rate_limit: { per_minute: 0 }\n"),
                "targets[0].rate_limit",
            ),
            (
                "queue:\n  per_target_in_flight: 5000\n".to_owned(),
                "queue.per_target_in_flight",
            ),
            (
                "queue:\n  max_attempts: 0\n".to_owned(),
                "queue.max_attempts",
            ),
            (
                "publishing:\n  max_concurrent: 0\n".to_owned(),
                "publishing.max_concurrent",
            ),
        ] {
            let (got, _) = refused(&yaml);
            assert_eq!(got, field, "{yaml}");
        }
    }

    #[test]
    fn the_defaults_are_within_every_bound() {
        parse("", Path::new("c.yaml")).unwrap();
    }
}

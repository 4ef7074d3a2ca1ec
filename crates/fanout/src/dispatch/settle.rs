//! What a finished attempt means for its job: the pure retry decision.
//!
//! Retry decisions read the [`ErrorKind`], never error text. Gates (an open breaker, a 429) delay
//! a job without consuming an attempt; transient failures and timeouts back off with full jitter
//! until `max_attempts`; permanent failures go straight to the dead-letter queue.
//!
//! - A 429 with `Retry-After` pauses the lane for that long (capped at `max_backoff`). One
//!   without (PagerDuty sends none) pauses it for a backoff that grows with the lane's run of
//!   such 429s: `rate_limit_backoff` (30 s), doubled each time, up to `max_backoff`.
//! - An attempt made while the target is known to be down (its breaker's half-open trial, or
//!   the one recheck a lane of an unhealthy target lets through) probes the target for the
//!   lane. Its failure says nothing about the job, so it does not consume an attempt: an outage
//!   is bounded by `max_age`, not by `max_attempts`, and the job is delivered when the target
//!   is back.

use std::time::Duration;

use alert_core::{DeadReason, ErrorKind, JobError, PublishError};

use super::backoff::full_jitter;
use super::{DispatcherConfig, PauseReason};
use crate::call::CallResult;

/// How a job is settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Delivered: remove it.
    Ack,
    /// Put it back, due after `after`.
    Reschedule {
        after: Duration,
        consume_attempt: bool,
        error: Option<JobError>,
    },
    /// Move it to the dead-letter queue.
    DeadLetter {
        reason: DeadReason,
        error: Option<JobError>,
    },
    /// Leave it leased: the attempt was cancelled by shutdown, and the job becomes leasable again
    /// when its lease expires.
    Leave,
}

/// A settlement, and whether the whole lane should pause (and for how long, and why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) settlement: Settlement,
    pub(crate) pause: Option<(Duration, PauseReason)>,
}

impl Decision {
    const fn settle(settlement: Settlement) -> Self {
        Self {
            settlement,
            pause: None,
        }
    }
}

/// The job error kept with a job and in the dead-letter queue.
pub(crate) fn job_error(err: &PublishError) -> JobError {
    JobError {
        kind: err.kind,
        status_code: err.status_code,
        message: err.message.clone(),
    }
}

/// What the lane knew when it started an attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LaneView {
    /// The target was known to be down (breaker half-open, or the target unhealthy): the attempt
    /// probes it.
    pub(crate) probing: bool,
    /// How many 429s without `Retry-After` the lane has met in a row.
    pub(crate) rate_limited_streak: u32,
}

/// Decides how to settle a job after attempt number `attempt` ended with `result`, for a lane
/// that knew nothing special; see [`decide_in`].
#[cfg(test)]
pub(crate) fn decide(
    result: &CallResult,
    attempt: u32,
    config: &DispatcherConfig,
    random: u64,
) -> Decision {
    decide_in(result, attempt, LaneView::default(), config, random)
}

/// The pause after a 429 that gave no `Retry-After`: `rate_limit_backoff` doubled for each such
/// 429 the lane met before in a row, capped at `max_backoff`.
pub(crate) fn rate_limit_pause(streak: u32, config: &DispatcherConfig) -> Duration {
    let factor = 1_u32.checked_shl(streak.min(16)).unwrap_or(u32::MAX);
    config
        .rate_limit_backoff
        .saturating_mul(factor)
        .min(config.max_backoff)
}

/// Decides how to settle a job after attempt number `attempt` ended with `result`, in a lane
/// that saw `lane` when it started the attempt. `random` is a fresh random word for the jitter.
pub(crate) fn decide_in(
    result: &CallResult,
    attempt: u32,
    lane: LaneView,
    config: &DispatcherConfig,
    random: u64,
) -> Decision {
    let gate_delay = |hint: Option<Duration>| {
        hint.unwrap_or(config.initial_backoff)
            .min(config.max_backoff)
    };
    let err = match result {
        CallResult::Called(outcome) => match &outcome.result {
            Ok(_) => return Decision::settle(Settlement::Ack),
            Err(err) => err,
        },
        CallResult::Rejected { retry_in } => {
            let after = gate_delay(*retry_in);
            return Decision {
                settlement: Settlement::Reschedule {
                    after,
                    consume_attempt: false,
                    error: None,
                },
                pause: Some((after, PauseReason::CircuitOpen)),
            };
        }
    };
    match err.kind {
        ErrorKind::RateLimited { retry_after } => {
            let after = match retry_after {
                Some(hint) => hint.min(config.max_backoff),
                None => rate_limit_pause(lane.rate_limited_streak, config),
            };
            Decision {
                settlement: Settlement::Reschedule {
                    after,
                    consume_attempt: false,
                    error: Some(job_error(err)),
                },
                pause: Some((after, PauseReason::RateLimited)),
            }
        }
        ErrorKind::Permanent { .. } => Decision::settle(Settlement::DeadLetter {
            reason: DeadReason::Permanent,
            error: Some(job_error(err)),
        }),
        ErrorKind::Cancelled => Decision::settle(Settlement::Leave),
        // The target is known to be down: the failed probe delays the job, as a gate does.
        _ if lane.probing => Decision::settle(Settlement::Reschedule {
            after: full_jitter(attempt, config.initial_backoff, config.max_backoff, random),
            consume_attempt: false,
            error: Some(job_error(err)),
        }),
        // Transient failures, timeouts, and any kind added later are retried with backoff: a
        // new kind that is not known to be permanent should not lose alerts.
        _ if attempt >= config.max_attempts => Decision::settle(Settlement::DeadLetter {
            reason: DeadReason::Exhausted,
            error: Some(job_error(err)),
        }),
        _ => Decision::settle(Settlement::Reschedule {
            after: full_jitter(attempt, config.initial_backoff, config.max_backoff, random),
            consume_attempt: true,
            error: Some(job_error(err)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alert_core::{CallOutcome, PermanentReason, Receipt};

    const S: Duration = Duration::from_secs(1);

    fn failed(kind: ErrorKind) -> CallResult {
        CallResult::Called(CallOutcome::new(
            Err(PublishError::new(kind, "boom").with_status(500)),
            S,
        ))
    }

    #[test]
    fn success_acks() {
        let ok = CallResult::Called(CallOutcome::new(Ok(Receipt::with_status(202)), S));
        let decision = decide(&ok, 1, &DispatcherConfig::default(), 0);
        assert_eq!(decision.settlement, Settlement::Ack);
        assert_eq!(decision.pause, None);
    }

    #[test]
    fn rate_limited_pauses_without_consuming_and_is_capped() {
        let config = DispatcherConfig::default();
        let d = decide(
            &failed(ErrorKind::RateLimited {
                retry_after: Some(30 * S),
            }),
            3,
            &config,
            0,
        );
        assert!(matches!(
            d.settlement,
            Settlement::Reschedule { after, consume_attempt: false, .. } if after == 30 * S
        ));
        assert_eq!(d.pause, Some((30 * S, PauseReason::RateLimited)));
        let d = decide(
            &failed(ErrorKind::RateLimited {
                retry_after: Some(3600 * S),
            }),
            3,
            &config,
            0,
        );
        assert_eq!(
            d.pause,
            Some((config.max_backoff, PauseReason::RateLimited))
        );
        let d = decide(
            &failed(ErrorKind::RateLimited { retry_after: None }),
            3,
            &config,
            0,
        );
        // Without Retry-After (PagerDuty sends none): 30 s, not the 1 s initial backoff.
        assert_eq!(d.pause, Some((30 * S, PauseReason::RateLimited)));
    }

    #[test]
    fn a_run_of_429s_without_retry_after_backs_off_from_30_s_to_max_backoff() {
        let config = DispatcherConfig::default();
        let pause_after = |streak| {
            let lane = LaneView {
                rate_limited_streak: streak,
                ..LaneView::default()
            };
            let d = decide_in(
                &failed(ErrorKind::RateLimited { retry_after: None }),
                1,
                lane,
                &config,
                0,
            );
            assert!(
                matches!(
                    d.settlement,
                    Settlement::Reschedule {
                        consume_attempt: false,
                        ..
                    }
                ),
                "{d:?}"
            );
            d.pause.map(|(after, _)| after)
        };
        let pauses: Vec<_> = (0..6).map(pause_after).collect();
        assert_eq!(
            pauses,
            [30, 60, 120, 240, 300, 300].map(|secs| Some(secs * S)),
            "doubling from 30 s, capped at max_backoff (5 min)"
        );
        assert_eq!(pause_after(u32::MAX), Some(config.max_backoff));
    }

    #[test]
    fn a_failed_probe_of_a_target_known_down_does_not_consume_an_attempt() {
        let config = DispatcherConfig::default();
        let probing = LaneView {
            probing: true,
            ..LaneView::default()
        };
        for kind in [ErrorKind::Transient, ErrorKind::Timeout] {
            // Even past max_attempts: the outage is bounded by max_age instead.
            let d = decide_in(&failed(kind), config.max_attempts, probing, &config, 0);
            assert!(
                matches!(
                    d.settlement,
                    Settlement::Reschedule {
                        consume_attempt: false,
                        ..
                    }
                ),
                "{kind:?}: {d:?}"
            );
        }
        // A permanent answer is still final.
        let permanent = ErrorKind::Permanent {
            reason: PermanentReason::BadRequest,
        };
        assert!(matches!(
            decide_in(&failed(permanent), 1, probing, &config, 0).settlement,
            Settlement::DeadLetter { .. }
        ));
    }

    #[test]
    fn rejected_pauses_for_the_breakers_hint() {
        let d = decide(
            &CallResult::Rejected {
                retry_in: Some(7 * S),
            },
            1,
            &DispatcherConfig::default(),
            0,
        );
        assert!(matches!(
            d.settlement,
            Settlement::Reschedule {
                consume_attempt: false,
                error: None,
                ..
            }
        ));
        assert_eq!(d.pause, Some((7 * S, PauseReason::CircuitOpen)));
    }

    #[test]
    fn transient_backs_off_until_exhausted_and_permanent_dies_at_once() {
        let config = DispatcherConfig::default();
        let d = decide(&failed(ErrorKind::Transient), 3, &config, u64::MAX);
        assert!(matches!(
            d.settlement,
            Settlement::Reschedule { after, consume_attempt: true, error: Some(_) } if after == 4 * S
        ));
        let d = decide(&failed(ErrorKind::Timeout), 8, &config, 0);
        assert!(matches!(
            d.settlement,
            Settlement::DeadLetter { reason: DeadReason::Exhausted, error: Some(ref e) }
                if e.kind == ErrorKind::Timeout && e.status_code == Some(500)
        ));
        let permanent = ErrorKind::Permanent {
            reason: PermanentReason::Auth,
        };
        let d = decide(&failed(permanent), 1, &config, 0);
        assert!(matches!(
            d.settlement,
            Settlement::DeadLetter {
                reason: DeadReason::Permanent,
                ..
            }
        ));
        assert_eq!(
            decide(&failed(ErrorKind::Cancelled), 1, &config, 0).settlement,
            Settlement::Leave
        );
    }
}

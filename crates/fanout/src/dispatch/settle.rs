//! What a finished attempt means for its job: the pure retry decision.
//!
//! Retry decisions read the [`ErrorKind`], never error text. Gates (an open breaker, a 429) delay
//! a job without consuming an attempt; transient failures and timeouts back off with full jitter
//! until `max_attempts`; permanent failures go straight to the dead-letter queue.

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

/// Decides how to settle a job after attempt number `attempt` ended with `result`. `random` is a
/// fresh random word for the jitter.
pub(crate) fn decide(
    result: &CallResult,
    attempt: u32,
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
            let after = gate_delay(retry_after);
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
        assert_eq!(d.pause, Some((S, PauseReason::RateLimited)));
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

//! The shutdown's phases, all on one deadline: `server.shutdown_timeout` counted from the signal.
//!
//! 1. **Drain** (`server.shutdown_delay`, off by default): `/readyz` answers 503 while every
//!    request is still served and the dispatcher still delivers, so a load balancer that polls
//!    readiness takes the instance out of rotation before it stops accepting connections.
//! 2. **Stop**: the listener stops accepting, open requests are answered, and the dispatcher
//!    starts no new attempt and lets those in flight finish.
//! 3. **Deadline**: whatever is still running then is abandoned; undelivered jobs stay in the
//!    queue.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long each phase may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Phases {
    /// The drain before the listener stops.
    pub(crate) delay: Duration,
    /// From the signal to the deadline, the drain included.
    pub(crate) timeout: Duration,
}

impl Phases {
    /// The phases of `server.shutdown_delay` and `server.shutdown_timeout`.
    ///
    /// # Errors
    /// A message naming both settings when the delay is not shorter than the timeout: the drain
    /// would leave no time to stop.
    pub(crate) fn new(delay: Duration, timeout: Duration) -> Result<Self, String> {
        if !delay.is_zero() && delay >= timeout {
            return Err(format!(
                "server.shutdown_delay ({} ms) must be shorter than server.shutdown_timeout ({} \
                 ms), which it is part of",
                delay.as_millis(),
                timeout.as_millis()
            ));
        }
        Ok(Self { delay, timeout })
    }

    /// How long the listener may wait for open requests once it stops accepting: what is left
    /// of the timeout after the drain.
    pub(crate) fn stop_budget(self) -> Duration {
        self.timeout.saturating_sub(self.delay)
    }
}

/// Waits for `signal`, then cancels `draining` at once and `stop` after the drain; returns the
/// deadline (the signal plus the timeout) that every later step of the shutdown must meet.
pub(crate) async fn run(
    signal: impl Future<Output = ()>,
    phases: Phases,
    draining: &CancellationToken,
    stop: &CancellationToken,
) -> Instant {
    signal.await;
    let deadline = Instant::now() + phases.timeout;
    draining.cancel();
    if !phases.delay.is_zero() {
        tracing::info!(
            delay_ms = phases.delay.as_millis(),
            "draining: /readyz answers 503 until the listener stops"
        );
        tokio::time::sleep(phases.delay).await;
    }
    stop.cancel();
    deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_must_leave_time_to_stop() {
        let phases = Phases::new(Duration::from_secs(5), Duration::from_secs(30)).unwrap();
        assert_eq!(phases.stop_budget(), Duration::from_secs(25));
        let err = Phases::new(Duration::from_secs(30), Duration::from_secs(30)).unwrap_err();
        assert!(err.contains("server.shutdown_delay"), "{err}");
        assert!(Phases::new(Duration::ZERO, Duration::ZERO).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_signal_drains_first_then_stops_and_sets_one_deadline() {
        let phases = Phases::new(Duration::from_secs(5), Duration::from_secs(30)).unwrap();
        let (draining, stop) = (CancellationToken::new(), CancellationToken::new());
        let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
        let shutdown = tokio::spawn({
            let (draining, stop) = (draining.clone(), stop.clone());
            async move {
                let signal = async {
                    let _ = signalled.await;
                };
                run(signal, phases, &draining, &stop).await
            }
        });
        tokio::task::yield_now().await;
        assert!(!draining.is_cancelled(), "nothing before the signal");

        let sent = Instant::now();
        signal.send(()).unwrap();
        draining.cancelled().await;
        assert_eq!(Instant::now(), sent, "readiness turns at the signal");
        assert!(
            !stop.is_cancelled(),
            "the listener still serves while draining"
        );

        stop.cancelled().await;
        assert_eq!(
            Instant::now() - sent,
            phases.delay,
            "it stops after the delay"
        );
        let deadline = shutdown.await.unwrap();
        assert_eq!(
            deadline - sent,
            phases.timeout,
            "one deadline from the signal"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_delay_the_signal_stops_at_once() {
        let phases = Phases::new(Duration::ZERO, Duration::from_secs(30)).unwrap();
        let (draining, stop) = (CancellationToken::new(), CancellationToken::new());
        let sent = Instant::now();
        let deadline = run(async {}, phases, &draining, &stop).await;
        assert!(draining.is_cancelled() && stop.is_cancelled());
        assert_eq!(Instant::now(), sent);
        assert_eq!(deadline - sent, Duration::from_secs(30));
    }
}

//! fanout's integration tests: selection, `TargetCall`, the engine and the dispatcher, against
//! in-process fakes from `test-support` and `queue`'s in-memory job store. Time is paused, so
//! latencies, timeouts, backoff and rate limits are exact and instant.

mod clock;
mod dispatch;
mod engine;
mod priority;
mod select;

//! fanout's integration tests: selection, `TargetCall` and the engine, against in-process fakes
//! from `test-support`. Time is paused, so latencies and timeouts are exact and instant.

mod engine;
mod select;

//! health's integration tests.
//!
//! - `probes`: the prober against real HTTP servers on 127.0.0.1 (`test_support::MockTarget`, a
//!   closed port, a bare TCP server), in real time with short configured intervals and timeouts,
//!   polling until a deadline and never asserting on elapsed time.
//! - `passive`: publish outcomes from a real HTTP publisher, through the fan-out engine, moving the
//!   health state.
//! - `engine`: the fan-out engine wired to the registry and the breakers (SPEC §2 and §4), with an
//!   in-process publisher and a manual clock for the breakers' cool-down.
//!
//! These need sockets, TLS and the engine, which miri and the loom build do without (their runs
//! are `--lib` only), and the prober, which is the default `probes` feature.
#![cfg(all(feature = "probes", not(any(miri, alertpub_loom))))]

mod engine;
mod passive;
mod probes;
mod support;

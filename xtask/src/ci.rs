//! `cargo xtask ci`: every step, in order, with a summary.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::util::timed;
use crate::{deny, fuzz, loom, miri, soak, steps};

pub(crate) const LONG_ABOUT: &str = "Runs every CI step in order, each with a one-line verdict and \
its time:\n\n  1. fmt     cargo fmt --all --check\n  2. clippy  clippy --all-features -D warnings\n  \
3. test    cargo test --workspace --all-features (unit, integration, doc and end-to-end tests)\n  \
            under cargo llvm-cov, failing when a crate's line coverage is below its floor\n  \
4. doc     cargo doc with warnings denied\n  5. loom    loom model checks (cfg alertpub_loom)\n  \
6. miri    miri on the pure crates, or AddressSanitizer when miri cannot run\n  \
7. deny    cargo deny check bans licenses sources, and no aws-lc-rs\n  \
8. fuzz    every cargo-fuzz target for 30 s from its seed corpus (nightly, libFuzzer)\n  \
9. soak    cargo xtask soak --short: a minute of the real server under kill -9s, a full disk, faulty \
targets, an h2c flood and clock steps\n 10. demo    cargo xtask demo --once: the README's first command, which fails when a \
healthy target of the example got nothing\n\nEvery step also runs on its own: cargo xtask fmt, \
cargo xtask loom, …";

/// A CI step: its name and the function that runs it.
type Step = (&'static str, fn() -> Result<()>);

const STEPS: [Step; 10] = [
    ("fmt", steps::fmt),
    ("clippy", steps::clippy),
    ("test", steps::test),
    ("doc", steps::doc),
    ("loom", loom::run),
    ("miri", miri::run),
    ("deny", deny::run),
    ("fuzz", fuzz::run),
    ("soak", soak::run_short),
    ("demo", demo_once),
];

/// The README's first command, run as a user would, but stopping once it has shown its table.
fn demo_once() -> Result<()> {
    crate::demo::run(&["--once".to_owned()])
}

pub(crate) fn run() -> Result<()> {
    let started = Instant::now();
    let mut failed = Vec::new();
    // Every step runs even after a failure, so one CI run reports everything that is wrong.
    for (name, step) in STEPS {
        if timed(name, step).is_err() {
            failed.push(name);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if failed.is_empty() {
        println!("==> ci: all {} steps passed ({secs:.1}s)", STEPS.len());
        Ok(())
    } else {
        bail!(
            "ci: {} of {} steps failed: {} ({secs:.1}s)",
            failed.len(),
            STEPS.len(),
            failed.join(", ")
        )
    }
}

//! The plain cargo steps: fmt, clippy, test and doc. They all use one feature set,
//! `--all-features`, so nothing is rebuilt between them.

use anyhow::Result;

use crate::coverage;
use crate::util::{cargo, run};

pub(crate) fn fmt() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))
}

pub(crate) fn clippy() -> Result<()> {
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Every test under `cargo llvm-cov`, then the per-crate line coverage floors (see
/// `coverage`). The end-to-end suite runs the instrumented `alertpub` binary that this same run
/// builds (as a binary of a workspace member, it is built before any test runs).
pub(crate) fn test() -> Result<()> {
    coverage::test()
}

pub(crate) fn doc() -> Result<()> {
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))
}

//! The plain cargo steps: fmt, clippy, test and doc. They all use one feature set,
//! `--all-features`, so nothing is rebuilt between them.

use anyhow::Result;

use crate::util::{cargo, run, target_dir};

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

/// The end-to-end suite runs the `alertpub` binary that this same `cargo test` builds (as a
/// binary of a workspace member, it is built before any test runs).
pub(crate) fn test() -> Result<()> {
    run(cargo()
        .args(["test", "--workspace", "--all-features"])
        .env("ALERTPUB_BIN", target_dir().join("debug").join("alertpub")))
}

pub(crate) fn doc() -> Result<()> {
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))
}

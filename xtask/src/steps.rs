//! The plain cargo steps: fmt, clippy, test and doc. They all use one feature set,
//! `--all-features`, so nothing is rebuilt between them.

use anyhow::Result;

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

pub(crate) fn test() -> Result<()> {
    run(cargo().args(["test", "--workspace", "--all-features"]))
}

pub(crate) fn doc() -> Result<()> {
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))
}

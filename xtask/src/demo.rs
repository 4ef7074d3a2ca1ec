//! `cargo xtask demo [--once]`: the real server on the example config, with a mock target on
//! each of its loopback ports, alerts through `/api/v2/alerts` and the synchronous API, and a
//! per-target table; it stays up until Ctrl-C (`--once`: it stops at once).

use anyhow::Result;

use crate::util::{cargo, run as run_cmd, target_dir};

pub(crate) fn run(args: &[String]) -> Result<()> {
    // The flags of CI's test step, so CI builds nothing again for the demo.
    run_cmd(cargo().args([
        "build",
        "--quiet",
        "--workspace",
        "--all-features",
        "--bin",
        "alertpub",
    ]))?;
    run_cmd(
        cargo()
            .args([
                "run",
                "--quiet",
                "-p",
                "alertpub-e2e",
                "--all-features",
                "--example",
                "demo",
                "--",
            ])
            .args(args)
            .env("ALERTPUB_BIN", target_dir().join("debug").join("alertpub")),
    )
}

//! `cargo xtask deny`: the dependency policy.
//!
//! `cargo deny check bans licenses sources` works offline. `advisories` needs the advisory
//! database, which these machines cannot reach, so it is skipped, and the step says so.

use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{cargo, run as run_cmd, succeeds};

pub(crate) fn run() -> Result<()> {
    if !succeeds(Command::new("cargo").args(["deny", "--version"])) {
        println!("deny: cargo-deny is missing; installing it (about 2 minutes)");
        run_cmd(Command::new("cargo").args(["install", "cargo-deny", "--locked"]))?;
    }
    run_cmd(cargo().args(["deny", "check", "bans", "licenses", "sources"]))?;
    println!("deny: advisories skipped: the advisory database cannot be fetched from this machine");
    no_aws_lc_rs()
}

/// ring is the single rustls provider: `cargo tree -i aws-lc-rs` must print nothing.
fn no_aws_lc_rs() -> Result<()> {
    let output = cargo()
        .args(["tree", "--workspace", "--all-features", "-i", "aws-lc-rs"])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        bail!("aws-lc-rs is in the dependency graph:\n{stdout}");
    }
    println!("deny: cargo tree -i aws-lc-rs prints nothing");
    Ok(())
}

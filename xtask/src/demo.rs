//! `cargo xtask demo`: the real server and three mock targets on loopback (one slow, one
//! failing), alerts through `/api/v2/alerts` and the synchronous API, and a per-target table.

use anyhow::Result;

use crate::util::{cargo, run as run_cmd, target_dir};

pub(crate) fn run() -> Result<()> {
    run_cmd(cargo().args([
        "build",
        "--quiet",
        "-p",
        "alertpub-server",
        "--bin",
        "alertpub",
    ]))?;
    run_cmd(
        cargo()
            .args(["run", "--quiet", "-p", "alertpub-e2e", "--example", "demo"])
            .env("ALERTPUB_BIN", target_dir().join("debug").join("alertpub")),
    )
}

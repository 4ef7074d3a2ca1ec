//! `cargo xtask demo`: the fan-out engine publishing one alert to mock targets, in process.

use anyhow::Result;

use crate::util::{cargo, run as run_cmd};

pub(crate) fn run() -> Result<()> {
    run_cmd(cargo().args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "fanout",
        "--example",
        "demo",
    ]))
}

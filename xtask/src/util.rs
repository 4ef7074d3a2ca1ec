//! Running commands and timing steps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The Cargo target directory in use.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// `cargo` on the active (stable) toolchain, run from the workspace root.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// `cargo +nightly`, through the rustup proxy.
pub(crate) fn cargo_nightly() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(root());
    // Inside `cargo run`, rustup pins the toolchain for children; `+nightly` overrides it, but the
    // variable would leak into the tools nightly cargo starts.
    cmd.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    cmd
}

/// Runs a command, echoing it, and fails unless it exits 0.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    println!("$ {}", render(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", render(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", render(cmd));
    }
    Ok(())
}

/// Whether a command runs and exits 0, quietly.
pub(crate) fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn render(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs one step and prints its one-line verdict and time.
pub(crate) fn timed(name: &str, step: fn() -> Result<()>) -> Result<()> {
    println!("==> {name}");
    let started = Instant::now();
    let result = step();
    let secs = started.elapsed().as_secs_f64();
    match &result {
        Ok(()) => println!("==> {name}: ok ({secs:.1}s)"),
        Err(err) => println!("==> {name}: FAILED ({secs:.1}s): {err:#}"),
    }
    result
}

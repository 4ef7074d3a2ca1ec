//! `cargo xtask miri`: the pure crates' tests under miri, time-boxed, with AddressSanitizer as the
//! fallback when miri cannot run on this machine.

use std::process::Command;

use anyhow::Result;

use crate::util::{cargo_nightly, root, run as run_cmd, succeeds, target_dir};

/// The crates whose logic is pure and whose tests miri runs, each with the extra `cargo test`
/// arguments it needs. health's default `probes` feature pulls in rustls with ring, which miri
/// cannot build, so only its pure library (the breaker state machine and the health registry) and
/// its unit tests run here.
const CRATES: &[(&str, &[&str])] = &[
    ("alert-core", &[]),
    ("health", &["--no-default-features", "--lib"]),
];

/// Each miri run's time box, in seconds.
const TIME_BOX_SECS: &str = "300";

pub(crate) fn run() -> Result<()> {
    match ensure_miri() {
        Ok(()) => {
            run_cmd(cargo_nightly().args(["miri", "setup"]))?;
            forget_runner_files()?;
            for (krate, extra) in CRATES {
                let mut cmd = Command::new("timeout");
                cmd.args([
                    "--kill-after=10",
                    TIME_BOX_SECS,
                    "cargo",
                    "+nightly",
                    "miri",
                    "test",
                    "-p",
                    krate,
                ])
                .args(*extra)
                .current_dir(root())
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("RUSTC")
                .env_remove("RUSTDOC")
                // Tests read the wall clock (alerts start "now"), which isolation forbids.
                .env("MIRIFLAGS", "-Zmiri-disable-isolation");
                run_cmd(&mut cmd)?;
            }
            Ok(())
        }
        Err(why) => {
            println!(
                "miri: cannot run here ({why}); running the same tests under AddressSanitizer instead"
            );
            for (krate, extra) in CRATES {
                run_cmd(
                    cargo_nightly()
                        .args(["test", "-p", krate, "--target", "x86_64-unknown-linux-gnu"])
                        .args(*extra)
                        .arg("--target-dir")
                        .arg(target_dir().join("asan"))
                        .env("RUSTFLAGS", "-Zsanitizer=address")
                        .env("RUSTDOCFLAGS", "-Zsanitizer=address"),
                )?;
            }
            Ok(())
        }
    }
}

/// Removes the tested crates' own build products from miri's target directory, so that miri
/// builds them again in this checkout.
///
/// For a test binary, cargo-miri writes a small file that records how to run the test, with the
/// absolute directory it was built in; cargo keeps that file when the crate is fresh, and the
/// directory is recorded nowhere else. A target directory shared by two checkouts of the same
/// commit (a CI machine's cache, a fresh clone next to the working copy) would otherwise run the
/// tests in the first checkout's directory, or fail when that directory is gone. Only the crates
/// below are rebuilt, which takes seconds; their dependencies stay cached.
fn forget_runner_files() -> Result<()> {
    let mut clean = cargo_nightly();
    clean
        .arg("clean")
        .arg("--target-dir")
        .arg(target_dir().join("miri"))
        .args(["--target", MIRI_TARGET]);
    for (krate, _) in CRATES {
        clean.args(["-p", krate]);
    }
    run_cmd(&mut clean)
}

/// The target triple cargo-miri builds for on this machine.
const MIRI_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Makes sure nightly miri is installed, installing what is missing.
fn ensure_miri() -> std::result::Result<(), String> {
    if succeeds(cargo_nightly().args(["miri", "--version"])) {
        return Ok(());
    }
    let nightly_installed = succeeds(Command::new("rustc").args(["+nightly", "--version"]));
    let mut install = Command::new("rustup");
    if nightly_installed {
        install.args([
            "component",
            "add",
            "--toolchain",
            "nightly",
            "miri",
            "rust-src",
        ]);
    } else {
        install.args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "-c",
            "miri",
            "-c",
            "rust-src",
        ]);
    }
    println!("miri: not installed; trying to install it");
    if !succeeds(&mut install) {
        return Err("rustup could not install nightly miri and rust-src".to_owned());
    }
    if succeeds(cargo_nightly().args(["miri", "--version"])) {
        Ok(())
    } else {
        Err("miri still does not start after installing it".to_owned())
    }
}

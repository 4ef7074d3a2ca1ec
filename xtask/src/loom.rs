//! `cargo xtask loom`: loom model checks.
//!
//! Models live behind our own cfg, `alertpub_loom`, not loom's usual `loom`: a global `--cfg loom`
//! would also reach tokio, which hides `tokio::net` under it and breaks hyper-util. The step builds
//! in its own target directory, so the cfg never invalidates the normal build.

use std::path::Path;

use anyhow::Result;

use crate::util::{cargo, root, run as run_cmd, target_dir};

const MARKER: &str = "cfg(alertpub_loom)";

/// Extra `cargo test` arguments per crate. health's models need only its pure library, and its
/// default `probes` feature would build hyper and rustls for nothing.
const EXTRA_ARGS: &[(&str, &[&str])] = &[("health", &["--no-default-features"])];

pub(crate) fn run() -> Result<()> {
    let packages = packages_with_models()?;
    if packages.is_empty() {
        println!("loom: no models yet (no crate uses {MARKER})");
        return Ok(());
    }
    let loom_target = target_dir().join("loom");
    for package in packages {
        let extra = EXTRA_ARGS
            .iter()
            .find(|(name, _)| *name == package)
            .map_or(&[][..], |(_, args)| *args);
        run_cmd(
            cargo()
                .args(["test", "--release", "--lib", "-p", &package])
                .args(extra)
                .arg("--target-dir")
                .arg(&loom_target)
                .args(["--", "loom"])
                .env("RUSTFLAGS", "--cfg alertpub_loom")
                .env("LOOM_MAX_PREEMPTIONS", "3"),
        )?;
    }
    Ok(())
}

/// The crates whose sources mention the loom cfg.
fn packages_with_models() -> Result<Vec<String>> {
    let mut packages = Vec::new();
    for entry in std::fs::read_dir(root().join("crates"))? {
        let dir = entry?.path();
        if mentions_marker(&dir.join("src"))? {
            packages.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    packages.sort();
    Ok(packages)
}

fn mentions_marker(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if mentions_marker(&path)? {
                return Ok(true);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && std::fs::read_to_string(&path)?.contains(MARKER)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

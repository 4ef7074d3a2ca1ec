//! Stamps the build for `alertpub_build_info`, `/api/v2/status` and `alertpub version`: the git
//! revision and branch, the commit's date (so two builds of one commit say the same), and the
//! compiler's version. Outside a git checkout they read `unknown`.

// A build script talks to cargo through standard output.
#![allow(clippy::print_stdout)]

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rust_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!(
        "cargo:rustc-env=ALERTPUB_REVISION={}",
        git(&["rev-parse", "--short=12", "HEAD"])
    );
    println!(
        "cargo:rustc-env=ALERTPUB_BRANCH={}",
        git(&["rev-parse", "--abbrev-ref", "HEAD"])
    );
    println!(
        "cargo:rustc-env=ALERTPUB_BUILD_DATE={}",
        git(&["log", "-1", "--format=%cI"])
    );
    println!("cargo:rustc-env=ALERTPUB_RUST_VERSION={rust_version}");
    // Stamped again when the checkout moves to another commit or branch: HEAD names the
    // branch, and the branch's ref (a file of its own, or a line of packed-refs) its commit.
    let dir = git(&["rev-parse", "--absolute-git-dir"]);
    if dir != "unknown" {
        let dir = std::path::Path::new(&dir);
        let reference = git(&["symbolic-ref", "-q", "HEAD"]);
        for file in [
            dir.join("HEAD"),
            dir.join(&reference),
            dir.join("packed-refs"),
        ] {
            if file.is_file() {
                println!("cargo:rerun-if-changed={}", file.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

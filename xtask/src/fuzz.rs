//! `cargo xtask fuzz`: every fuzz target in `fuzz/` (cargo-fuzz, libFuzzer, nightly) for a time
//! box, starting from its committed seed corpus, with a one-line verdict per target.
//!
//! All targets are built in one `cargo fuzz build`, with debug assertions (so an arithmetic
//! overflow is a crash too), into their own target directory, since nightly and libFuzzer's
//! instrumentation share nothing with the stable build. Each target then runs in turn. They are
//! built without a sanitizer: our crates forbid `unsafe`, so AddressSanitizer would only watch
//! our dependencies, and it would cost the step's time box about half its runs and a slower
//! rebuild.
//! A crash, a timeout or running out of memory fails the step and prints the reproducer's path
//! and the command that replays it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::{cargo, cargo_nightly, root, run as run_cmd, succeeds, target_dir};

/// The fuzz targets, each with a seed corpus in `fuzz/corpus/<target>/`.
const TARGETS: [&str; 5] = [
    "ingest_v2",
    "alertmanager_webhook",
    "config",
    "text",
    "records",
];

/// libFuzzer's options for every target: the time box, a per-input timeout (a slow input is a
/// hang, and a failure) and a memory cap (a larger one is an out-of-memory failure).
const LIBFUZZER_ARGS: [&str; 4] = [
    "-max_total_time=30",
    "-timeout=10",
    "-rss_limit_mb=2048",
    "-print_final_stats=1",
];

/// The working corpus a target grows is kept between runs, so later runs start deeper; above
/// this many inputs it is started afresh from the seeds, which bounds what a run loads.
const MAX_WORKING_CORPUS: usize = 5_000;

pub(crate) fn run() -> Result<()> {
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let fuzz_dir = root().join("fuzz");
    let build_dir = target_dir().join("fuzz");
    run_cmd(&mut fuzz_cmd(&fuzz_dir, &build_dir, "build"))?;
    let mut failed = Vec::new();
    for target in TARGETS {
        if let Err(err) = run_target(&fuzz_dir, &build_dir, target) {
            println!("fuzz {target}: FAILED: {err:#}");
            failed.push(target);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} of {} fuzz targets failed: {}",
            failed.len(),
            TARGETS.len(),
            failed.join(", ")
        )
    }
}

/// `cargo +nightly fuzz <sub>` with the flags every build and run shares.
fn fuzz_cmd(fuzz_dir: &Path, build_dir: &Path, sub: &str) -> Command {
    let mut cmd = cargo_nightly();
    cmd.current_dir(fuzz_dir)
        .args([
            "fuzz",
            sub,
            "--debug-assertions",
            "--sanitizer=none",
            "--target-dir",
        ])
        .arg(build_dir);
    cmd
}

/// Runs one target for its time box; its output goes to a log, of which the verdict is printed.
fn run_target(fuzz_dir: &Path, build_dir: &Path, target: &str) -> Result<()> {
    let seeds = fuzz_dir.join("corpus").join(target);
    let working = build_dir.join("corpus").join(target);
    if count_files(&working) > MAX_WORKING_CORPUS {
        fs::remove_dir_all(&working).with_context(|| format!("clearing {}", working.display()))?;
    }
    fs::create_dir_all(&working).with_context(|| format!("creating {}", working.display()))?;
    let log_path = build_dir.join(format!("{target}.log"));
    let log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    // libFuzzer adds the inputs it finds to the first corpus directory only, so the committed
    // seeds are read and never written.
    let mut cmd = fuzz_cmd(fuzz_dir, build_dir, "run");
    cmd.arg(target)
        .arg(&working)
        .arg(&seeds)
        .arg("--")
        .args(LIBFUZZER_ARGS)
        .stdout(log.try_clone()?)
        .stderr(log);
    let status = cmd.status().context("could not start cargo fuzz run")?;
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    if status.success() {
        println!("fuzz {target}: ok, {}", summary(&output));
        return Ok(());
    }
    // The end of the log holds the panic message and the stack.
    let lines: Vec<&str> = output.lines().collect();
    for line in &lines[lines.len().saturating_sub(40)..] {
        println!("    {line}");
    }
    match reproducer(&output) {
        Some(path) => {
            let path = fuzz_dir.join(path);
            println!("fuzz {target}: reproducer {}", path.display());
            println!(
                "fuzz {target}: replay with `cd fuzz && cargo +nightly fuzz run --debug-assertions \
                 --sanitizer=none {target} {}`",
                path.display()
            );
        }
        None => println!(
            "fuzz {target}: no reproducer written; see {}",
            log_path.display()
        ),
    }
    bail!(
        "{target} failed with {status} (log: {})",
        log_path.display()
    )
}

/// `123456 runs in 31 s, corpus 420 inputs`, from libFuzzer's final lines.
fn summary(output: &str) -> String {
    let stat = |name: &str| {
        output
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    match (
        stat("stat::number_of_executed_units:"),
        output.lines().rev().find_map(corpus_size),
    ) {
        (Some(runs), Some(corpus)) => format!("{runs} runs, corpus {corpus} inputs"),
        (Some(runs), None) => format!("{runs} runs"),
        _ => "no statistics in the log".to_owned(),
    }
}

/// The corpus size of a libFuzzer status line such as `#1234 DONE cov: 10 ft: 20 corp: 30/4Kb`.
fn corpus_size(line: &str) -> Option<u64> {
    let rest = line.split(" corp: ").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// The path libFuzzer wrote the failing input to, relative to `fuzz/`.
fn reproducer(output: &str) -> Option<PathBuf> {
    output.lines().find_map(|line| {
        let path = line.split("Test unit written to ").nth(1)?;
        Some(PathBuf::from(path.trim()))
    })
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, Iterator::count)
}

/// Makes sure a nightly toolchain is installed, installing a minimal one when it is missing.
fn ensure_nightly() -> Result<()> {
    if succeeds(Command::new("rustc").args(["+nightly", "--version"])) {
        return Ok(());
    }
    println!("fuzz: no nightly toolchain; installing one");
    run_cmd(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
    ]))
}

/// Makes sure `cargo fuzz` runs, installing cargo-fuzz when it is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let works = || {
        succeeds(
            cargo_nightly()
                .args(["fuzz", "--version"])
                .stdin(Stdio::null()),
        )
    };
    if works() {
        return Ok(());
    }
    println!("fuzz: cargo-fuzz is not installed; installing it");
    run_cmd(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    if works() {
        Ok(())
    } else {
        bail!("cargo fuzz still does not start after installing cargo-fuzz")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = "#402117\tDONE   cov: 2101 ft: 9013 corp: 611/88Kb lim: 4096 exec/s: 12971 rss: 81Mb\n\
                        Done 402117 runs in 31 second(s)\n\
                        stat::number_of_executed_units: 402117\n\
                        stat::average_exec_per_sec:     12971\n";

    #[test]
    fn the_summary_reads_libfuzzers_final_statistics() {
        assert_eq!(summary(DONE), "402117 runs, corpus 611 inputs");
        assert_eq!(summary("nothing"), "no statistics in the log");
    }

    #[test]
    fn the_reproducer_is_the_unit_libfuzzer_wrote() {
        let crash = "==1== ERROR: libFuzzer: deadly signal\n\
                     artifact_prefix='/r/fuzz/artifacts/text/'; Test unit written to /r/fuzz/artifacts/text/crash-0a1b\n\
                     Base64: AAAA\n";
        assert_eq!(
            reproducer(crash),
            Some(PathBuf::from("/r/fuzz/artifacts/text/crash-0a1b"))
        );
        assert_eq!(reproducer(DONE), None);
    }
}

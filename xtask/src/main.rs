//! alertpub's developer tasks, run as `cargo xtask <task>`.
//!
//! One binary, one module per task. `cargo xtask ci` runs the CI steps in order — fmt, clippy,
//! test, doc, loom, miri, deny, fuzz, a short soak — printing a one-line verdict and the time of
//! each; every step also runs on its own (`cargo xtask loom`, …).

// The xtask's whole job is to print progress and verdicts for people.
#![allow(clippy::print_stdout)]

mod bench;
mod ci;
mod coverage;
mod demo;
mod deny;
mod fuzz;
mod loom;
mod miri;
mod soak;
mod steps;
mod tidy;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// alertpub's developer tasks.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Runs every CI step in order: fmt, clippy, test, doc, loom, miri, deny, fuzz, soak --short.
    #[command(long_about = ci::LONG_ABOUT)]
    Ci,
    /// Checks formatting (`cargo fmt --all --check`).
    Fmt,
    /// Lints everything with `--all-features` and `-D warnings`.
    Clippy,
    /// Runs every test, doctest and end-to-end test with `--all-features`, the tests under
    /// `cargo llvm-cov`, and checks each crate's line coverage against its floor.
    Test,
    /// Builds the API docs with warnings denied.
    Doc,
    /// Runs the loom model checks (cfg `alertpub_loom`).
    Loom,
    /// Runs the pure crates' tests under miri, or under AddressSanitizer if miri cannot run.
    Miri,
    /// Runs `cargo deny check bans licenses sources` and checks that aws-lc-rs is not in the graph.
    Deny,
    /// Runs every fuzz target (cargo-fuzz, nightly) for 30 s from its seed corpus.
    Fuzz,
    /// Prints the last `cargo xtask test` run's line coverage per crate and checks the floors
    /// in xtask/coverage-floor.toml.
    Coverage(coverage::CoverageArgs),
    /// Runs the benchmarks and reports each figure beside its same-run baseline.
    Bench(bench::BenchArgs),
    /// Runs the demo: the server on the example config, a mock target on each of its ports,
    /// alerts sent, a per-target table; it stays up until Ctrl-C.
    Demo {
        /// Stop once the table is printed, instead of waiting for Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Soaks the real server: kill -9s, a full disk, faulty targets, an h2c flood and a clock
    /// step under mixed load, then checks nothing accepted was lost (`--short` for CI).
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::Ci => ci::run(),
        Task::Fmt => util::timed("fmt", steps::fmt),
        Task::Clippy => util::timed("clippy", steps::clippy),
        Task::Test => util::timed("test", steps::test),
        Task::Doc => util::timed("doc", steps::doc),
        Task::Loom => util::timed("loom", loom::run),
        Task::Miri => util::timed("miri", miri::run),
        Task::Deny => util::timed("deny", deny::run),
        Task::Fuzz => util::timed("fuzz", fuzz::run),
        Task::Coverage(args) => coverage::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Demo { once } => {
            let args: Vec<String> = once.then(|| "--once".to_owned()).into_iter().collect();
            demo::run(&args)
        }
        Task::Soak(args) => soak::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! alertpub's developer tasks, run as `cargo xtask <task>`.
//!
//! One binary, one module per task. `cargo xtask ci` runs the CI steps in order — fmt, clippy,
//! test, doc, loom, miri, deny — printing a one-line verdict and the time of each; every step also
//! runs on its own (`cargo xtask loom`, …).

// The xtask's whole job is to print progress and verdicts for people.
#![allow(clippy::print_stdout)]

mod bench;
mod ci;
mod demo;
mod deny;
mod loom;
mod miri;
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
    /// Runs every CI step in order: fmt, clippy, test, doc, loom, miri, deny.
    #[command(long_about = ci::LONG_ABOUT)]
    Ci,
    /// Checks formatting (`cargo fmt --all --check`).
    Fmt,
    /// Lints everything with `--all-features` and `-D warnings`.
    Clippy,
    /// Runs every test, doctest and end-to-end test with `--all-features`.
    Test,
    /// Builds the API docs with warnings denied.
    Doc,
    /// Runs the loom model checks (cfg `alertpub_loom`).
    Loom,
    /// Runs the pure crates' tests under miri, or under AddressSanitizer if miri cannot run.
    Miri,
    /// Runs `cargo deny check bans licenses sources` and checks that aws-lc-rs is not in the graph.
    Deny,
    /// Runs the benchmarks and reports each figure beside its same-run baseline.
    Bench(bench::BenchArgs),
    /// Runs the demo: the server and three mock targets on loopback, with a per-target table.
    Demo,
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
        Task::Bench(args) => bench::run(&args),
        Task::Demo => demo::run(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

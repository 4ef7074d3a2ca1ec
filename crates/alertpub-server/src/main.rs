//! The `alertpub` binary: `alertpub serve --config FILE`, `alertpub check-config FILE` and
//! `alertpub version`.
//!
//! Only `version` exists so far; the server lands with ingest, the dispatcher and the HTTP API.

// A command-line tool prints its answers to standard output.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("version" | "--version" | "-V") => {
            println!("alertpub {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: alertpub version (serve and check-config are not built yet)");
            ExitCode::from(2)
        }
    }
}

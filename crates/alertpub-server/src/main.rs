//! The `alertpub` binary.
//!
//! - `alertpub serve --config FILE` runs the server: the HTTP API of SPEC §7, ingest into the job
//!   store, one dispatcher lane per target, health probes, config reload, and `/metrics`.
//! - `alertpub check-config FILE` validates a config file as `amtool check-config` does: it parses
//!   it, builds every target's publisher, prints each target, warns about targets that load
//!   disabled, and exits non-zero on any error.
//! - `alertpub version` prints the version.
//! - `alertpub healthcheck` asks a running server whether it is alive, for a container's
//!   HEALTHCHECK.

// A command-line tool prints its answers to standard output.
#![allow(clippy::print_stdout)]

/// See the `jemalloc` feature in this crate's manifest.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod api;
mod app;
mod auth;
mod budget;
mod build_info;
mod history;
mod listener;
mod logfmt;
mod maintenance;
mod memory;
mod probes;
mod registry;
mod serve;
mod shutdown;
mod stats;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use alert_core::{InMemoryMessageRefs, redact_url};
// The normalisation lives in this package's library, so the fuzz targets can reach it.
use alertpub_server::{batch, ingest};
use anyhow::Context;
use clap::{Parser, Subcommand};
use publisher_http::{ClientConfig, HttpClient};

use crate::registry::PublisherRegistry;

/// Publishes every alert, in parallel, to many notification targets.
#[derive(Parser)]
#[command(name = "alertpub", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve(serve::ServeArgs),
    /// Validates a config file and lists its targets.
    CheckConfig {
        /// The config file.
        file: PathBuf,
        /// A label set, as `alertname=X,severity=critical`: lists which targets an alert with
        /// these labels would go to, and why each other one would not.
        #[arg(long)]
        route: Option<String>,
    },
    /// Prints the version.
    Version,
    /// Asks a running server whether it is alive (`GET /-/healthy`) and exits 0 if it answers
    /// 200: a container's HEALTHCHECK, where there is no curl.
    Healthcheck {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:9097")]
        address: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve::main(args),
        Command::Version => {
            println!(
                "alertpub, version {} (branch: {}, revision: {})\n  build date: {}\n  rust version: {}",
                build_info::VERSION,
                build_info::BRANCH,
                build_info::REVISION,
                build_info::BUILD_DATE,
                build_info::RUST_VERSION
            );
            ExitCode::SUCCESS
        }
        Command::Healthcheck { address } => match healthcheck(&address) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("unhealthy: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file, route } => match check_config(&file, route.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("FAILED: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `GET /-/healthy` over plain HTTP/1.1, within 5 s: `Ok` on a 200.
fn healthcheck(address: &str) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    use std::net::ToSocketAddrs as _;
    let timeout = Duration::from_secs(5);
    let target = address
        .to_socket_addrs()
        .with_context(|| format!("resolving {address}"))?
        .next()
        .with_context(|| format!("{address} names no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /-/healthy HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer)?;
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or_default();
    anyhow::ensure!(
        status_line.split_whitespace().nth(1) == Some("200"),
        "{address} answered {status_line:?}"
    );
    Ok(())
}

/// Parses `alertname=X,severity=critical` (a value may be in double quotes, and then hold commas).
fn parse_route(text: &str) -> anyhow::Result<alert_core::Labels> {
    let mut labels = alert_core::Labels::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .with_context(|| format!("--route: `{rest}` is not name=value"))?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .with_context(|| format!("--route: the quote after `{name}=` is not closed"))?;
            (&quoted[..end], quoted[end + 1..].trim_start())
        } else {
            after.split_once(',').map_or((after, ""), |(v, n)| (v, n))
        };
        labels.insert(name.trim().to_owned(), value.trim().to_owned());
        rest = next.trim_start().trim_start_matches(',').trim();
    }
    anyhow::ensure!(!labels.is_empty(), "--route: no labels given");
    Ok(labels)
}

fn check_config(file: &Path, route: Option<&str>) -> anyhow::Result<()> {
    println!("Checking '{}'", file.display());
    let client = HttpClient::new(&ClientConfig::default()).context("building the HTTP client")?;
    let registry = PublisherRegistry::new(client, Arc::new(InMemoryMessageRefs::new()));
    let loaded = discovery::load_file(file, &registry)?;
    println!("  SUCCESS: {} targets found", loaded.targets.len());
    for entry in loaded.targets.iter() {
        let target = &entry.target;
        let state = match target.disabled {
            None => "enabled".to_owned(),
            Some(reason) => format!("disabled ({})", reason_text(reason)),
        };
        let url = target
            .settings
            .get("url")
            .as_ref()
            .and_then(|u| u.as_str())
            .map(redact_url)
            .unwrap_or_default();
        println!(
            "   - {:<24} {:<13} {state:<30} {url}",
            target.name.as_str(),
            target.kind.as_str()
        );
    }
    for warning in &loaded.warnings {
        println!("  WARNING: {}: {}", warning.target, warning.message);
    }
    if let Some(route) = route {
        let labels = parse_route(route)?;
        let shown = labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let routed = ingest::route(labels, &loaded.targets).context("--route")?;
        let receivers = routed.iter().filter(|(_, skip)| skip.is_none()).count();
        println!(
            "  ROUTE {{{shown}}}: {receivers} of {} targets",
            routed.len()
        );
        for (entry, skip) in routed {
            let target = &entry.target;
            match skip {
                None => println!("   + {:<24} {}", target.name.as_str(), target.kind.as_str()),
                Some(reason) => println!(
                    "   - {:<24} {:<13} not sent: {}",
                    target.name.as_str(),
                    target.kind.as_str(),
                    reason.as_str()
                ),
            }
        }
    }
    let webhook_net = Duration::from(loaded.config.ingest.webhook_resolve_timeout);
    println!(
        "  NOTE: alerts from the Alertmanager webhook (POST /api/v1/alerts/alertmanager) stay firing \
         until Alertmanager sends them resolved, so its webhook receiver needs \
         `send_resolved: true`; {}",
        if webhook_net.is_zero() {
            "ingest.webhook_resolve_timeout is 0 (off): nothing resolves them on our side"
                .to_owned()
        } else {
            format!(
                "ingest.webhook_resolve_timeout resolves one that is not re-sent for {}s",
                webhook_net.as_secs()
            )
        }
    );
    Ok(())
}

fn reason_text(reason: alert_core::DisabledReason) -> String {
    match reason {
        alert_core::DisabledReason::Configured => "enabled: false".to_owned(),
        alert_core::DisabledReason::SecretUnavailable => "secret_unavailable".to_owned(),
        other => format!("{other:?}"),
    }
}

//! `alertpub serve`: logging, the runtime, the listener, signals and the shutdown order.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::listener::{self, ListenerConfig};
use crate::probes::Draining;
use crate::shutdown::Phases;

/// How long the history's recorder may take to write its last records at shutdown, at least.
const HISTORY_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// The blocking pool's size (see where the runtime is built).
const MAX_BLOCKING_THREADS: usize = 16;

/// `alertpub serve` options. Each has Alertmanager's and Prometheus' spelling too
/// (`--config.file`, `--web.listen-address`, `--storage.path`, `--log.level`, `--log.format`),
/// so their command lines and manifests carry over.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The config file (SPEC §5's shape).
    #[arg(
        long,
        short = 'c',
        alias = "config.file",
        default_value = "alertpub.yaml"
    )]
    config: PathBuf,
    /// Listen on this address instead of `server.listen` (port 0 picks a free port).
    #[arg(long, alias = "web.listen-address")]
    listen: Option<String>,
    /// The queue's redb file, instead of `queue.path` (with `queue.backend: redb`).
    #[arg(long = "storage.path", alias = "storage-path")]
    storage_path: Option<PathBuf>,
    /// Once listening, write the bound address to this file (for scripts and tests).
    #[arg(long)]
    listen_addr_file: Option<PathBuf>,
    /// The log format: `text`, `logfmt` (Alertmanager's) or `json`.
    #[arg(long, alias = "log.format", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The log filter, in `tracing` directive syntax (`debug`, `info,fanout=debug`);
    /// `RUST_LOG` overrides it.
    #[arg(long, alias = "log.level", default_value = "info")]
    log_level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Logfmt,
    Json,
}

/// Runs the server until SIGTERM or SIGINT, then drains and exits 0.
pub(crate) fn main(args: ServeArgs) -> ExitCode {
    init_logging(args.log_format, &args.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("alertpub")
        // The queue's store calls run on the blocking pool and mostly wait for redb's single
        // writer, so more threads add no throughput; with tokio's default of 512, 100 lanes
        // started ~450 threads, each with its own stack (S4 of `cargo xtask bench`: 14 MB more
        // peak RSS and 16% more CPU than with 16).
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "alertpub stopped");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Logfmt => builder
            .with_ansi(false)
            .event_format(crate::logfmt::Logfmt)
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Cancelled once the drain after the signal is over: the listener, the dispatcher and the
    // background tasks stop (see `crate::shutdown`).
    let shutdown = CancellationToken::new();
    let (app, mut background) =
        App::start(&args.config, args.storage_path.as_deref(), shutdown.clone()).await?;
    let server = &app.config.server;
    let phases = Phases::new(server.shutdown_delay.into(), server.shutdown_timeout.into())
        .map_err(anyhow::Error::msg)?;
    let listen = args.listen.clone().unwrap_or_else(|| server.listen.clone());
    let tls = match &server.tls {
        Some(tls) => Some(listener::tls_acceptor(&tls.cert_file, &tls.key_file)?),
        None => None,
    };
    let tcp = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let local = tcp.local_addr().context("reading the bound address")?;
    if let Some(path) = &args.listen_addr_file {
        // Written whole then renamed, so a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, local.to_string())
            .and_then(|()| std::fs::rename(&partial, path))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!(
        address = %local,
        tls = tls.is_some(),
        targets = app.targets.snapshot().len(),
        "alertpub listening"
    );
    warn_if_exposed(local, tls.is_some(), app.auth.is_some());
    listener::check_open_files(server.max_connections);
    let listener_config = ListenerConfig {
        max_connections: server.max_connections,
        max_connections_per_peer: server.max_connections_per_peer,
        http2_max_concurrent_streams: server.http2_max_concurrent_streams,
        header_read_timeout: server.header_read_timeout.into(),
        idle_timeout: server.idle_timeout.into(),
    };
    let draining = CancellationToken::new();
    let phases_run = {
        let (draining, stop) = (draining.clone(), shutdown.clone());
        tokio::spawn(async move {
            crate::shutdown::run(wait_for_signal(), phases, &draining, &stop).await
        })
    };
    let router = crate::api::router(app.clone()).layer(axum::Extension(Draining(draining)));
    // The listener stops accepting once the drain is over, and has what is left until the
    // deadline to answer the open requests.
    let left = listener::serve(
        tcp,
        router,
        tls,
        listener_config,
        shutdown.clone(),
        phases.stop_budget(),
    )
    .await;
    // The listener only returns once the phases have cancelled `shutdown`.
    let deadline = phases_run
        .await
        .unwrap_or_else(|_| tokio::time::Instant::now());
    if left > 0 {
        tracing::warn!(
            connections = left,
            "closed connections still open at the shutdown deadline"
        );
    }
    // The dispatcher stopped leasing when shutdown began; what it had in flight finishes (up to
    // the deadline) and anything not delivered stays in the queue.
    if tokio::time::timeout_at(deadline, background.dispatcher.join())
        .await
        .is_err()
    {
        tracing::warn!("publishes still in flight at the shutdown deadline were left in the queue");
    }
    // The attempts have ended (or been left to the queue): their records go to the history.
    if let Some((stop, task)) = background.history.take() {
        stop.cancel();
        if tokio::time::timeout_at(
            deadline.max(tokio::time::Instant::now() + HISTORY_FLUSH),
            task,
        )
        .await
        .is_err()
        {
            tracing::warn!("the last delivery-history records were not written by the deadline");
        }
    }
    background.tasks.abort_all();
    while background.tasks.join_next().await.is_some() {}
    tracing::info!("alertpub stopped");
    Ok(())
}

/// An address other hosts can reach, with neither tokens nor TLS, lets anyone on the network
/// post alerts, replay the DLQ and read it: legitimate behind a mesh or a private network, but
/// worth a warning.
fn warn_if_exposed(local: std::net::SocketAddr, tls: bool, auth: bool) {
    if exposed(local, tls, auth) {
        tracing::warn!(
            address = %local,
            "listening on a non-loopback address with no bearer tokens (server.auth) and no TLS \
             (server.tls): anyone who can reach it can post alerts and replay or read the DLQ"
        );
    }
}

/// Whether the server listens where other hosts reach it with neither tokens nor TLS.
fn exposed(local: std::net::SocketAddr, tls: bool, auth: bool) -> bool {
    !local.ip().is_loopback() && !tls && !auth
}

/// Waits for SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::exposed;

    #[test]
    fn a_reachable_address_without_auth_or_tls_is_exposed() {
        let at = |text: &str| text.parse().unwrap();
        assert!(!exposed(at("127.0.0.1:9097"), false, false));
        assert!(!exposed(at("[::1]:9097"), false, false));
        assert!(exposed(at("0.0.0.0:9097"), false, false));
        assert!(exposed(at("10.1.2.3:9097"), false, false));
        assert!(!exposed(at("0.0.0.0:9097"), true, false));
        assert!(!exposed(at("0.0.0.0:9097"), false, true));
    }
}

//! `alertpub serve`: logging, the runtime, the listener, signals and the shutdown order.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::listener::{self, ListenerConfig};

/// The blocking pool's size (see where the runtime is built).
const MAX_BLOCKING_THREADS: usize = 16;

/// `alertpub serve` options.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The config file (SPEC §5's shape).
    #[arg(long, short = 'c', default_value = "alertpub.yaml")]
    config: PathBuf,
    /// Listen on this address instead of `server.listen` (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Once listening, write the bound address to this file (for scripts and tests).
    #[arg(long)]
    listen_addr_file: Option<PathBuf>,
    /// The log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The log filter, in `tracing` directive syntax; `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
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
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let (app, mut background) = App::start(&args.config, shutdown.clone()).await?;
    let server = &app.config.server;
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
    let drain: Duration = server.shutdown_timeout.into();
    let listener_config = ListenerConfig {
        max_connections: server.max_connections,
        header_read_timeout: server.header_read_timeout.into(),
    };
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel();
    });
    let router = crate::api::router(app.clone());
    let left = listener::serve(tcp, router, tls, listener_config, shutdown.clone(), drain).await;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "closed connections still open at the shutdown deadline"
        );
    }
    // The dispatcher stopped leasing when shutdown began; what it had in flight finishes (up to
    // the deadline) and anything not delivered stays in the queue.
    if tokio::time::timeout(drain, background.dispatcher.join())
        .await
        .is_err()
    {
        tracing::warn!("publishes still in flight at the shutdown deadline were left in the queue");
    }
    background.tasks.abort_all();
    while background.tasks.join_next().await.is_some() {}
    tracing::info!("alertpub stopped");
    Ok(())
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

//! End-to-end suites: each starts the real `alertpub` binary on a free loopback port, with real
//! mock targets, and talks to it over HTTP.

// The suites print what they measured (counts, re-sends, duplicates) for the record.
#![allow(clippy::print_stdout)]

mod auth;
mod bad_input;
mod bounds;
mod container;
mod deploy;
mod formats;
mod ha;
mod hardening;
mod history;
mod ingest;
mod interop;
mod lifetimes;
mod metrics;
mod openapi;
mod operator;
mod publish;
mod queue;
mod repeats;
mod shutdown;
mod status_page;
mod tls;
mod vendors;

use std::time::Duration;

use test_support::{MockResponse, MockTarget, RecordedRequest};

/// How long a delivery through the queue may take in these tests.
const DELIVERY: Duration = Duration::from_secs(20);

/// Server settings shared by the suites: short timeouts and backoffs, no probes during a test.
fn base_config() -> String {
    r#"
server:
  listen: "127.0.0.1:0"
  max_body_bytes: 65536
  max_alerts_per_request: 5
  header_read_timeout: 1s
  body_read_timeout: 1s
  shutdown_timeout: 15s
ingest:
  resolve_timeout: 5m
queue:
  path: queue/alertpub.redb
  initial_backoff: 100ms
  max_backoff: 1s
publishing:
  timeout: 10s
  per_target_timeout: 5s
health:
  interval: 1h
  failure_threshold: 3
circuit_breaker:
  failure_threshold: 10
"#
    .to_owned()
}

/// Adds lines to the `server:` section of a config.
fn server_lines(config: &str, lines: &str) -> String {
    config.replacen("server:\n", &format!("server:\n{lines}"), 1)
}

/// A webhook target entry for the config.
fn webhook(name: &str, mock: &MockTarget, extra: &str) -> String {
    format!(
        "  - name: {name}\n    kind: webhook\n    url: {}\n{extra}",
        mock.url("/hook")
    )
}

/// The server with one webhook target, `hook`, at a mock target that answers 200.
async fn one_webhook() -> (MockTarget, alertpub_e2e::Server) {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        base_config(),
        webhook("hook", &target, "")
    );
    let server = alertpub_e2e::Server::start(&config).await;
    (target, server)
}

/// A mock target that answers 200.
async fn ok_target() -> MockTarget {
    let mock = MockTarget::start().await;
    mock.respond(MockResponse::status(200));
    mock
}

/// The POSTs a mock target received (health probes are GETs).
fn posts(mock: &MockTarget) -> Vec<RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

/// Waits until a mock target has received `count` POSTs.
async fn wait_for_posts(mock: &MockTarget, count: usize) -> Vec<RecordedRequest> {
    alertpub_e2e::eventually(DELIVERY, &format!("{count} deliveries"), || {
        posts(mock).len() >= count
    })
    .await;
    posts(mock)
}

/// Reads until the server closes the connection, or `within` passes; returns what was read and
/// whether it closed.
pub(crate) async fn read_to_close(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0_u8; 4096];
        loop {
            match tokio::io::AsyncReadExt::read(stream, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (received, closed)
}

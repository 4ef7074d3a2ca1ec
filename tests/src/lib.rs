//! End-to-end tests for alertpub: they start the real `alertpub` binary, real mock targets on
//! 127.0.0.1 and, where the programs are installed, real Prometheus and Alertmanager.
//!
//! This library is the harness: [`Server`] runs the binary with a config in a fresh directory and
//! stops it by its PID; [`Http`] is a small client for the API. The suites are in `tests/e2e/`.
//!
//! The binary is the one named by `ALERTPUB_BIN` (`cargo xtask test` sets it to the binary that
//! the same `cargo test` run built); without it, the harness builds `alertpub` with cargo.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `alertpub` binary.
///
/// # Panics
/// When it cannot be found or built.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("ALERTPUB_BIN") {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "ALERTPUB_BIN={} does not exist",
                path.display()
            );
            return path;
        }
        build_binary()
    })
}

fn build_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let output = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--package",
            "alertpub-server",
            "--bin",
            "alertpub",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(output.status.success(), "cargo build of alertpub failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "alertpub")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the alertpub executable")
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates one.
    ///
    /// # Panics
    /// When it cannot be created.
    #[must_use]
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "alertpub-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self(path)
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `alertpub serve`. Dropping it kills the process (by its PID) if it still runs.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: String,
    dir: TempDir,
}

impl Server {
    /// Writes `config` (YAML) to a fresh directory and starts the server on a free loopback port.
    /// Relative paths in the config resolve against that directory, which is also the working
    /// directory, so files written there beforehand (see [`Server::start_in`]) can be named.
    ///
    /// # Panics
    /// When the server does not start listening within a minute.
    #[must_use]
    pub async fn start(config: &str) -> Self {
        Self::start_in(TempDir::new(), config).await
    }

    /// As [`Server::start`], in a directory the caller prepared.
    ///
    /// # Panics
    /// As [`Server::start`].
    #[must_use]
    pub async fn start_in(dir: TempDir, config: &str) -> Self {
        let config_path = dir.path().join("alertpub.yaml");
        let mut args: Vec<std::ffi::OsString> = vec!["--config".into(), config_path.into()];
        args.extend(
            [
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                "info,alertpub=debug,fanout=debug",
            ]
            .map(Into::into),
        );
        Self::start_with_args(dir, config, args).await
    }

    /// As [`Server::start_in`], with `serve`'s arguments given whole (the caller names the
    /// config file, `alertpub.yaml` in `dir`, and the listen address); only
    /// `--listen-addr-file` is added.
    ///
    /// # Panics
    /// As [`Server::start`].
    #[must_use]
    pub async fn start_with_args(
        dir: TempDir,
        config: &str,
        args: Vec<std::ffi::OsString>,
    ) -> Self {
        Self::start_with_env(dir, config, args, &[]).await
    }

    /// As [`Server::start_with_args`], with these environment variables set for the server
    /// (for `${env:…}` in the config).
    ///
    /// # Panics
    /// As [`Server::start`].
    #[must_use]
    pub async fn start_with_env(
        dir: TempDir,
        config: &str,
        args: Vec<std::ffi::OsString>,
        envs: &[(&str, &str)],
    ) -> Self {
        let config_path = dir.path().join("alertpub.yaml");
        std::fs::write(&config_path, config).expect("write the config");
        let addr_file = dir.path().join("listen-addr");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("create the log");
        let mut child = Command::new(binary())
            .current_dir(dir.path())
            .arg("serve")
            .args(args)
            .arg("--listen-addr-file")
            .arg(&addr_file)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertpub");
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "alertpub exited with {status} before listening; its log:\n{}",
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "alertpub did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self { child, addr, dir }
    }

    /// Kills the process with SIGKILL (`kill -9`), as a crash would, and waits for it.
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub async fn kill9(&mut self) {
        self.signal("KILL");
        let _ = self.wait(Duration::from_secs(30)).await;
    }

    /// Starts the server again in the same directory with the same config (and so the same queue
    /// file), after it has exited. The new process listens on a new free port.
    ///
    /// # Panics
    /// When it still runs, or does not start.
    pub async fn restart(mut self) -> Self {
        assert!(
            !self.is_running(),
            "restart needs the old process to have exited"
        );
        let config = std::fs::read_to_string(self.dir.path().join("alertpub.yaml"))
            .expect("read the config");
        let _ = std::fs::remove_file(self.dir.path().join("listen-addr"));
        let _ = std::fs::rename(
            self.dir.path().join("server.log"),
            self.dir.path().join("server.previous.log"),
        );
        let dir = std::mem::take(&mut self.dir);
        Self::start_in(dir, &config).await
    }

    /// The server's `host:port`.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A URL on the server.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`, `HUP`) to the process by its PID.
    ///
    /// # Panics
    /// When `kill` cannot be run.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for the process to exit, up to `within`.
    ///
    /// # Panics
    /// When it has not exited by then (it is then killed).
    pub async fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the process") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "alertpub did not exit within {within:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // Under `cargo llvm-cov` a server writes its coverage only when it exits on its own, so
        // it is asked to stop first (SIGTERM), for a bounded while.
        if std::env::var_os("CARGO_LLVM_COV").is_some() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|err| {
            panic!("answer {} is not JSON ({err}): {}", self.status, self.text)
        })
    }

    /// The `error.kind` of a JSON error answer.
    #[must_use]
    pub fn error_kind(&self) -> String {
        self.json()["error"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A small HTTP/1.1 client for the API.
#[derive(Clone, Debug)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<String>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// A client without a token.
    #[must_use]
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            token: None,
        }
    }

    /// The same client, sending this bearer token.
    #[must_use]
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            client: self.client.clone(),
            token: Some(token.to_owned()),
        }
    }

    /// Sends a request and reads the whole answer (30 s at most).
    ///
    /// # Panics
    /// On a transport error or a timeout.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = http::Request::builder().method(method).uri(url);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body.into()))
            .expect("a valid request");
        let response = tokio::time::timeout(Duration::from_secs(30), async {
            let response = self
                .client
                .request(request)
                .await
                .expect("the request is answered");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("the body is read").to_bytes();
            (parts, body)
        })
        .await
        .unwrap_or_else(|_| panic!("{method} {url} was not answered within 30 s"));
        let (parts, body) = response;
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            text: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// POSTs JSON.
    pub async fn post_json(&self, url: &str, body: &Value) -> Answer {
        self.send("POST", url, Some("application/json"), body.to_string())
            .await
    }

    /// POSTs JSON and returns the status, or `None` when the server could not be reached or
    /// dropped the connection (a killed server, say). Never panics on transport errors.
    pub async fn try_post_json(&self, url: &str, body: &Value) -> Option<u16> {
        let request = http::Request::builder()
            .method("POST")
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .ok()?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    }

    /// GETs a URL.
    pub async fn get(&self, url: &str) -> Answer {
        self.send("GET", url, None, Bytes::new()).await
    }
}

/// Waits until `check` holds, polling every 20 ms, or panics with `what` after `within`.
///
/// # Panics
/// When the condition does not hold in time.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

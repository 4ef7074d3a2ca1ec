//! The peer measured in the same run (`--peer alertmanager`): the Alertmanager binary (Debian's
//! `prometheus-alertmanager`, or upstream's `alertmanager` on the `PATH`) with one receiver that
//! has a webhook per mock target, `group_by: ['...']` (every alert its own group, as alertpub treats
//! them), `group_wait: 0s`, `group_interval: 1s` and `send_resolved: false`, clustering off, on a
//! free loopback port in a fresh directory, stopped by PID.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::load::Sender;
use crate::mock::MockPool;
use crate::s5::Peer;

/// How long Alertmanager may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is polled: the binary offers no other signal.
const POLL: Duration = Duration::from_millis(50);

/// Finds the Alertmanager binary.
pub(crate) fn alertmanager_binary() -> Result<PathBuf> {
    for name in ["prometheus-alertmanager", "alertmanager"] {
        if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        }) {
            return Ok(path);
        }
    }
    bail!("no Alertmanager binary (prometheus-alertmanager or alertmanager) on the PATH")
}

/// A running Alertmanager, killed by PID on drop.
pub(crate) struct Alertmanager {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Alertmanager {
    /// Starts it with a webhook receiver for each mock of `pool`.
    pub(crate) async fn start(program: &PathBuf, pool: &MockPool) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "alertpub-bench-am-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // One receiver with a webhook per target: each alert is one group that notifies them all,
        // as alertpub fans one alert out.
        let mut webhooks = String::new();
        for i in 0..pool.len() {
            webhooks.push_str(&format!(
                "      - url: {}\n        send_resolved: false\n",
                pool.url(i)
            ));
        }
        let config = format!(
            "route:\n  receiver: all\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n  - name: all\n    webhook_configs:\n{webhooks}"
        );
        std::fs::write(dir.join("alertmanager.yml"), config)?;
        // A port that was free a moment ago; Alertmanager binds it itself.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(dir.join("alertmanager.log"))?;
        let child = Command::new(program)
            .arg("--cluster.listen-address=")
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut peer = Self { child, port, dir };
        let sender = Sender::new();
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = peer.child.try_wait()? {
                bail!("Alertmanager exited ({status}): {}", peer.log());
            }
            if sender.get_ok(&ready).await {
                return Ok(peer);
            }
            if Instant::now() >= deadline {
                bail!("Alertmanager was not ready within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    /// Stops it by PID and removes its directory.
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer for Alertmanager {
    fn ingest_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v2/alerts", self.port)
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn queue_file_bytes(&self) -> Option<u64> {
        None
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Starting and stopping the release `alertpub` binary, and reading its resources from /proc.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long the server may take to write its address file (long enough for a profiler).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERM'd server may take to drain and exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the address file and the exit are polled: the binary offers no other signal.
const POLL: Duration = Duration::from_millis(10);

/// The server's resource use, read from /proc before it is stopped.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Resources {
    /// Peak resident set (`VmHWM`), in KiB.
    pub(crate) peak_rss_kib: u64,
    /// User plus system CPU time, in seconds.
    pub(crate) cpu_seconds: f64,
    /// Threads at the end (tokio's blocking pool keeps idle threads for 10 s, so this is close
    /// to the peak of a short scenario).
    pub(crate) threads: u64,
}

/// The `alertpub` binary, and the command to start it under, if any (a profiler).
pub(crate) struct Binary {
    pub(crate) path: PathBuf,
    pub(crate) wrap: Vec<String>,
}

/// A running `alertpub serve` in a fresh directory, killed by PID on drop if still running.
pub(crate) struct Alertpub {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Alertpub {
    /// Writes `config` to a fresh temp directory (the queue file goes there too) and starts the
    /// binary on a free loopback port, logging at warn.
    pub(crate) async fn start(binary: &Binary, config: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "alertpub-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let config_path = dir.join("alertpub.yaml");
        std::fs::write(&config_path, config)?;
        let addr_file = dir.join("listen-addr");
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = match binary.wrap.split_first() {
            // valgrind runs the program in its own process, so the PID is still the server's.
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binary.path);
                command
            }
            None => Command::new(&binary.path),
        };
        let mut child = command
            .current_dir(&dir)
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0", "--listen-addr-file"])
            .arg(&addr_file)
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.path.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                break addr;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "alertpub exited with {status} before listening:\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("alertpub did not listen within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(POLL).await;
        };
        Ok(Self { child, addr, dir })
    }

    /// A URL on the server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak RSS and CPU time so far, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
    pub(crate) fn resources(&self) -> Result<Resources> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let peak_rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        let threads = status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let cpu_seconds = cpu_seconds(pid)?;
        Ok(Resources {
            peak_rss_kib,
            cpu_seconds,
            threads,
        })
    }

    /// Sends SIGTERM by PID and waits for the exit.
    pub(crate) async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("alertpub exited with {status}; log:\n{}", self.log());
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("alertpub did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The size of the queue file the scenarios configure (`queue/alertpub.redb`), in bytes.
    pub(crate) fn queue_file_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.join("queue/alertpub.redb")).map_or(0, |m| m.len())
    }

    /// What the server logged (at warn and above).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Alertpub {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `CLK_TCK`, from `getconf` (no libc call); 100 on every Linux we run on.
/// The user plus system CPU time process `pid` has used so far, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // are plain. utime and stime are fields 14 and 15, so 12th and 13th after it.
    let rest = stat
        .rsplit_once(')')
        .context("malformed /proc/<pid>/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/<pid>/stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    #[allow(clippy::cast_precision_loss)] // ticks are far below 2^52
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// The resident set of process `pid` now (`VmRSS`), in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// The anonymous part of process `pid`'s resident set (`RssAnon`: its heap and stacks, not the
/// binary's code pages, which the page cache shares and which vary by a few hundred KiB between
/// two runs of the same binary) once it has settled, in KiB: sampled each second for at
/// least 20 s and until five samples in a row lie within 1 % of each other (at most 40 s). Freed
/// memory goes back to the system on the allocator's decay schedule (jemalloc's, over about 10 s,
/// run as later allocations come), so a reading taken at once still holds what a burst just
/// before it (the startup's configuration parse and first probes, a load) used and freed.
pub(crate) async fn settled_anon_kib(pid: u32) -> Result<u64> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(40);
    let mut recent = std::collections::VecDeque::new();
    loop {
        let now = status_kib(pid, "RssAnon:")?;
        recent.push_back(now);
        if recent.len() > 5 {
            recent.pop_front();
        }
        let (low, high) = recent
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let steady = recent.len() == 5 && high - low <= high / 100;
        if (steady && start.elapsed() >= Duration::from_secs(20)) || Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The peak resident set of process `pid` so far (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no {field} in /proc/<pid>/status"))
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

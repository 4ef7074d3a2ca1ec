//! The server under soak: the real `alertpub` binary, started on a free loopback port, stopped
//! by its PID (`kill -9`, or SIGTERM at the end); its clock skewed from outside through
//! libfaketime; its queue on a small tmpfs that the soak can fill.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long the server may take to write its address file (a restart replays the queue file).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the address file and an exit are polled: the binary offers no other signal.
const POLL: Duration = Duration::from_millis(10);

/// Where Debian's `libfaketime` package puts the library.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A wall-clock offset for the server, read by libfaketime from a file it re-reads every second.
/// Only `CLOCK_REALTIME` moves: monotonic time (tokio's timers) is left alone, as a real clock
/// step (NTP, a VM resumed) leaves it.
pub(crate) struct FakeClock {
    file: PathBuf,
}

impl FakeClock {
    /// The clock, if libfaketime is installed.
    pub(crate) fn new(dir: &Path) -> Result<Option<Self>> {
        if !Path::new(LIBFAKETIME).exists() {
            return Ok(None);
        }
        let clock = Self {
            file: dir.join("faketime"),
        };
        clock.set_offset_secs(0)?;
        Ok(Some(clock))
    }

    /// Steps the server's wall clock to `offset` seconds from the real one (within a second).
    pub(crate) fn set_offset_secs(&self, offset: i64) -> Result<()> {
        // Written to a new file and renamed, so libfaketime never reads half a line.
        let tmp = self.file.with_extension("tmp");
        fs::write(&tmp, format!("{offset:+}\n"))?;
        fs::rename(&tmp, &self.file)?;
        Ok(())
    }

    fn apply(&self, command: &mut Command) {
        command
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
}

/// How to start the server.
pub(crate) struct Launch {
    pub(crate) binary: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) clock: Option<FakeClock>,
}

/// A running server, killed by PID on drop if it still runs.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

impl Launch {
    /// Starts the server and waits until it listens; its log goes to `server.log` in the soak's
    /// directory, each incarnation after a marker line.
    pub(crate) fn start(&self, incarnation: u32) -> Result<Server> {
        let addr_file = self.dir.join("listen-addr");
        let _ = fs::remove_file(&addr_file);
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        writeln!(log, "=== soak: incarnation {incarnation}")?;
        let mut command = Command::new(&self.binary);
        command
            .current_dir(&self.dir)
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--listen", "127.0.0.1:0", "--listen-addr-file"])
            .arg(&addr_file)
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(clock) = &self.clock {
            clock.apply(&mut command);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(addr) = fs::read_to_string(&addr_file)
                && !addr.trim().is_empty()
            {
                return Ok(Server {
                    child,
                    addr: addr.trim().to_owned(),
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "alertpub (incarnation {incarnation}) exited with {status} before listening; see {}",
                    self.dir.join("server.log").display()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("alertpub did not listen within {START_TIMEOUT:?}");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (and how), without waiting.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `kill -9` by PID (std's `Child::kill` is SIGKILL), and the reaping.
    pub(crate) fn kill9(mut self) -> Result<()> {
        self.child.kill().context("kill -9 alertpub")?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM by PID and the exit, which must be 0 within [`STOP_TIMEOUT`].
    pub(crate) fn terminate(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        if !Command::new("kill")
            .args(["-TERM", &pid])
            .status()?
            .success()
        {
            bail!("kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("alertpub exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("alertpub did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The resident set and its high-water mark of a process, in KiB, from `/proc/<pid>/status`.
pub(crate) fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A tmpfs of a fixed size for the queue, unmounted on drop (after the server is gone).
pub(crate) struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts one at `path` (which must exist), or says why not.
    pub(crate) fn mount(path: &Path, mib: u64) -> Result<Self> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={mib}m,mode=0700"))
            .arg("alertpub-soak")
            .arg(path)
            .output()
            .context("running mount")?;
        if !output.status.success() {
            bail!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Fills the filesystem at `dir` to the last byte with one file, `filler`.
pub(crate) fn fill(filler: &Path) -> Result<u64> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)?;
    let mut written = 0_u64;
    // Big chunks first, then small ones for the last pages; the filesystem's size bounds both.
    for size in [1 << 20, 4096, 512] {
        let chunk = vec![0_u8; size];
        loop {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
    }
    Ok(written)
}

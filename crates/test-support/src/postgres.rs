//! A throw-away PostgreSQL cluster for tests: `initdb` and `pg_ctl` from Debian's `postgresql`
//! package, run as the `postgres` user (initdb refuses root) in a temp dir, on a free loopback
//! port. It never touches the system's own cluster, and it is stopped by its postmaster's PID.
//!
//! A test that needs it calls [`Cluster::start`]: without PostgreSQL on the machine it fails in
//! CI (`CI=true`) and returns `None` elsewhere, so the test can skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's `postgresql` package puts the server's programs.
const BIN_DIRS: [&str; 3] = [
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
];

/// A running cluster, stopped (`SIGQUIT` to its postmaster, then `SIGKILL`) and removed when
/// dropped.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<&'static str>,
    /// Server options beyond the defaults (TLS's, for [`Cluster::start_tls`]).
    options: String,
}

impl Cluster {
    /// Makes and starts a cluster, or `None` when the machine has no PostgreSQL (a panic in CI,
    /// where it must have one).
    ///
    /// # Panics
    /// When the cluster cannot be made or started, or PostgreSQL is missing in CI.
    #[must_use]
    pub fn start() -> Option<Self> {
        Self::start_with(|_| String::new())
    }

    /// Like [`Cluster::start`], with TLS on: a self-signed certificate for `localhost` and
    /// `127.0.0.1`, made now, which clients trust through the returned PEM. Plain connections
    /// are still accepted (`sslmode` decides).
    ///
    /// # Panics
    /// As [`Cluster::start`], or when the certificate cannot be made or written.
    #[must_use]
    pub fn start_tls() -> Option<(Self, String)> {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("a self-signed certificate");
        let ca = certified.cert.pem();
        let cluster = Self::start_with(|dir| {
            let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::write(&cert, certified.cert.pem()).expect("writing the certificate");
            std::fs::write(&key, certified.key_pair.serialize_pem()).expect("writing the key");
            // The server reads its key only if no one else can.
            for file in [&cert, &key] {
                let _ = Command::new("chmod").arg("600").arg(file).status();
                if is_root() {
                    let _ = Command::new("chown").arg("postgres").arg(file).status();
                }
            }
            format!(
                "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            )
        })?;
        Some((cluster, ca))
    }

    fn start_with(options: impl FnOnce(&Path) -> String) -> Option<Self> {
        let Some(bin) = BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|dir| dir.join("initdb").exists())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is not installed (Debian's `postgresql`), and CI needs it"
            );
            eprintln!("skipped: PostgreSQL is not installed (Debian's `postgresql`)");
            return None;
        };
        // initdb refuses to run as root; the `postgres` user runs it then.
        let user = is_root().then_some("postgres");
        let dir = temp_dir();
        let options = options(&dir);
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
            user,
            options,
        };
        cluster.initdb();
        cluster.start_server();
        Some(cluster)
    }

    /// Makes a fresh database named `name` and returns its URL.
    ///
    /// # Panics
    /// When `createdb` fails.
    #[must_use]
    pub fn database(&self, name: &str) -> String {
        let status = self
            .command("createdb")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U"])
            .args(["postgres", name])
            .status()
            .expect("running createdb");
        assert!(status.success(), "createdb {name} failed");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Starts the server again, on the same port, after [`Cluster::stop`].
    ///
    /// # Panics
    /// When the server does not start.
    pub fn resume(&self) {
        self.start_server();
    }

    /// Runs `sql` with `psql` on database `db` and returns its unaligned output, one row a line
    /// and columns split by `|`.
    ///
    /// # Panics
    /// When `psql` fails.
    #[must_use]
    pub fn query(&self, db: &str, sql: &str) -> String {
        let output = self
            .command("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-Atc", sql])
            .stdout(Stdio::piped())
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Stops the server at once, as a crash would: `SIGQUIT` to the postmaster, then `SIGKILL`
    /// if it is still there after 5 s.
    pub fn stop(&self) {
        let Some(pid) = self.pid() else {
            return;
        };
        signal(pid, "QUIT");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            signal(pid, "KILL");
        }
        let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster's PID, from its pid file.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        command
    }

    fn initdb(&self) {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("running initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start_server(&self) {
        // `ALERTPUB_PG_OPTIONS` adds server options, such as
        // `-c shared_preload_libraries=pg_stat_statements` to profile a run.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200 {} {}",
            self.port,
            self.dir.display(),
            self.options,
            std::env::var("ALERTPUB_PG_OPTIONS").unwrap_or_default()
        );
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("running pg_ctl");
        assert!(
            output.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A fresh directory the `postgres` user can use: it and every folder above it traversable.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = Path::new("/tmp").join(format!(
        "alertpub-pg-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("making the cluster's directory");
    let _ = Command::new("chmod").arg("777").arg(&base).status();
    base
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

//! The e-mail publisher against a real SMTP server on loopback: aiosmtpd (PyPI), started by the
//! test with a certificate made for it, with STARTTLS or implicit TLS and AUTH. In CI
//! (`CI=true`) a missing Python or aiosmtpd fails the test; elsewhere it is skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use alert_core::{ErrorKind, InMemoryMessageRefs, PermanentReason, Publisher};
use serde_json::{Value, json};
use test_support::kind::{build, disk_full, publish, python_module};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const USER: &str = "alertpub";
const PASSWORD: &str = "smtp-p4ssw0rd-000000000001";

/// A running aiosmtpd, stopped by its PID when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    ca: PathBuf,
}

impl SmtpServer {
    async fn start(mode: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "alertpub-smtp-{}-{mode}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert, key, ca) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("ca.pem"),
        );
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        std::fs::write(&ca, certified.cert.pem()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(mode)
            .arg(&cert)
            .arg(&key)
            .arg(dir.join("mail"))
            .args([USER, PASSWORD])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("aiosmtpd is ready within 30 s")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"));
        Self {
            child,
            port,
            dir,
            ca,
        }
    }

    fn publisher(&self, scheme: &str, password: &str) -> Arc<dyn Publisher> {
        self.publisher_with(scheme, password, Arc::default())
    }

    fn publisher_with(
        &self,
        scheme: &str,
        password: &str,
        refs: Arc<InMemoryMessageRefs>,
    ) -> Arc<dyn Publisher> {
        let settings = json!({
            "url": format!("{scheme}://127.0.0.1:{}", self.port),
            "ca_file": self.ca,
            "username": USER,
            "password": password,
            "from": "alertpub <alertpub@alerts.example.com>",
            "to": ["oncall@example.com", "Storage Team <storage@example.com>"],
        });
        build(publishers_email::from_settings, settings, refs).unwrap()
    }

    /// The `n`th message received (from 1).
    fn received(&self, n: usize) -> Value {
        let path = self.dir.join("mail").join(format!("{n:03}.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.join("mail")).unwrap().count()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM, so aiosmtpd stops its controller; kill_on_drop is the fallback.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn firing_and_resolve_arrive_over_starttls_with_auth_and_the_resolve_is_in_the_firings_thread()
 {
    if !python_module("aiosmtpd") {
        return;
    }
    let server = SmtpServer::start("starttls").await;
    let refs = Arc::new(InMemoryMessageRefs::new());
    let firing = disk_full(false);
    let receipt = publish(
        &server.publisher_with("smtp", PASSWORD, refs.clone()),
        &firing,
    )
    .await
    .unwrap();
    assert_eq!(receipt.status_code, Some(250));
    // A fresh instance, as after a restart, sends the resolve.
    publish(
        &server.publisher_with("smtp", PASSWORD, refs),
        &disk_full(true),
    )
    .await
    .unwrap();
    let (first, resolve) = (server.received(1), server.received(2));
    for mail in [&first, &resolve] {
        assert_eq!(mail["tls"], true);
        assert_eq!(mail["authenticated"], true);
        assert_eq!(mail["mail_from"], "alertpub@alerts.example.com");
        assert_eq!(
            mail["rcpt_tos"],
            json!(["oncall@example.com", "storage@example.com"])
        );
        assert_eq!(mail["content_type"], "multipart/alternative");
        let types: Vec<&str> = mail["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["text/plain", "text/html"]);
    }
    assert_eq!(first["subject"], "[FIRING] DiskFull on db-1");
    assert_eq!(resolve["subject"], "[RESOLVED] DiskFull on db-1");
    let root = first["message_id"].as_str().unwrap();
    assert!(
        root.starts_with("<alertpub.") && root.ends_with("@alerts.example.com>"),
        "{root}"
    );
    assert_eq!(receipt.message_ref.as_deref(), Some(root));
    assert!(first["in_reply_to"].is_null());
    assert_ne!(resolve["message_id"], first["message_id"]);
    assert_eq!(resolve["in_reply_to"].as_str(), Some(root));
    assert_eq!(resolve["references"].as_str(), Some(root));
    assert!(
        resolve["parts"][1]["body"]
            .as_str()
            .unwrap()
            .contains("color:#27ae60")
    );
}

#[tokio::test]
async fn a_reminder_keeps_to_the_thread_with_an_id_of_its_own_over_implicit_tls() {
    if !python_module("aiosmtpd") {
        return;
    }
    let server = SmtpServer::start("implicit").await;
    let publisher = server.publisher("smtps", PASSWORD);
    let firing = disk_full(false);
    publish(&publisher, &firing).await.unwrap();
    publish(&publisher, &firing).await.unwrap();
    let (first, reminder) = (server.received(1), server.received(2));
    assert_eq!(first["tls"], true);
    assert_ne!(first["message_id"], reminder["message_id"]);
    assert_eq!(reminder["in_reply_to"], first["message_id"]);
}

#[tokio::test]
async fn a_refused_password_is_permanent_auth_and_never_shown() {
    if !python_module("aiosmtpd") {
        return;
    }
    let server = SmtpServer::start("starttls").await;
    let publisher = server.publisher("smtp", "wrong-password-000000000001");
    let err = publish(&publisher, &disk_full(false)).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Auth
        },
        "{err}"
    );
    let shown = format!("{err} {err:?} {publisher:?}");
    assert!(
        !shown.contains("wrong-password") && !shown.contains(PASSWORD),
        "{shown}"
    );
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn settings_are_checked_at_load() {
    let build = |settings: Value| {
        build(publishers_email::from_settings, settings, Arc::default()).unwrap_err()
    };
    let base =
        || json!({"url": "smtp://127.0.0.1:25", "from": "a@example.com", "to": ["b@example.com"]});
    let mut bad_scheme = base();
    bad_scheme["url"] = json!("https://mail.example.com");
    assert!(matches!(
        build(bad_scheme),
        alert_core::BuildError::InvalidUrl { .. }
    ));
    let mut no_rcpt = base();
    no_rcpt["to"] = json!([]);
    assert!(build(no_rcpt).to_string().contains("to needs"));
    let mut bad_from = base();
    bad_from["from"] = json!("not an address");
    assert!(build(bad_from).to_string().contains("from"));
    let mut unread = base();
    unread["username"] = json!("u");
    unread["password_file"] = json!("/nonexistent/alertpub/password");
    assert!(build(unread).is_secret_unavailable());
}

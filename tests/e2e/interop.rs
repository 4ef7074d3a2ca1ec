//! Interoperability with the real Prometheus, Alertmanager and amtool (issue 8).
//!
//! Each test starts the programs it needs as its own foreground child processes, on free loopback
//! ports, with a temp directory for config and storage, and kills them by their PID when it ends.
//! `promtool check metrics` on alertpub's `/metrics` is in the `metrics` suite.
//!
//! The programs come from Debian's `prometheus` (Prometheus, promtool) and
//! `prometheus-alertmanager` (Alertmanager, amtool) packages, which `.ci/run` installs. Where one
//! is missing, a test prints a line naming the package and passes, so a developer checkout without
//! them still runs the rest; with `CI=true` a missing program fails the test instead, because CI
//! must not pass by skipping.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use alertpub_e2e::{Http, Server, TempDir};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget, RecordedRequest};

use crate::{base_config, ok_target, one_webhook, posts, wait_for_posts, webhook};

/// How long a program may take to become ready.
const READY: Duration = Duration::from_secs(60);
/// How long Prometheus or Alertmanager may take to act (evaluate, send, group, resolve).
pub(crate) const ACT: Duration = Duration::from_secs(60);
/// The poll interval when waiting on another program.
const POLL: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------------------
// Finding and running the programs.

/// A program of one of the Debian packages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Program {
    Prometheus,
    Promtool,
    Alertmanager,
    Amtool,
    Chromium,
    Chromedriver,
}

impl Program {
    /// The names it may have on PATH. Debian calls Alertmanager `prometheus-alertmanager`.
    fn names(self) -> &'static [&'static str] {
        match self {
            Self::Prometheus => &["prometheus"],
            Self::Promtool => &["promtool"],
            Self::Alertmanager => &["prometheus-alertmanager", "alertmanager"],
            Self::Amtool => &["amtool"],
            Self::Chromium => &["chromium"],
            Self::Chromedriver => &["chromedriver"],
        }
    }

    fn package(self) -> &'static str {
        match self {
            Self::Prometheus | Self::Promtool => "prometheus",
            Self::Alertmanager | Self::Amtool => "prometheus-alertmanager",
            Self::Chromium => "chromium",
            Self::Chromedriver => "chromium-driver",
        }
    }
}

/// Finds each program on PATH. When one is missing, prints a skip line naming its package and
/// answers `None`, or panics when `CI` is `true`.
pub(crate) fn programs<const N: usize>(test: &str, wanted: [Program; N]) -> Option<[PathBuf; N]> {
    let found = wanted.map(|program| find_on_path(program.names()));
    let missing: Vec<Program> = wanted
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(program, _)| *program)
        .collect();
    if missing.is_empty() {
        return Some(found.map(Option::unwrap));
    }
    let names: Vec<&str> = missing.iter().map(|p| p.names()[0]).collect();
    let packages: BTreeSet<&str> = missing.iter().map(|p| p.package()).collect();
    let message = format!(
        "{test}: {} not found on PATH; install the Debian package(s): apt-get install {}",
        names.join(", "),
        packages.into_iter().collect::<Vec<_>>().join(" ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message} (CI=true, so this fails instead of skipping)"
    );
    println!("SKIPPED {message}");
    None
}

/// Whether `command` (with `args`) runs and succeeds: a tool outside Debian's packages
/// (`install` says how to get it). When it does not, prints a skip line and answers `false`, or
/// panics when `CI` is `true`.
pub(crate) fn runs(test: &str, command: &str, args: &[&str], install: &str) -> bool {
    let ok = std::process::Command::new(command)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let message = format!("{test}: {command} is not available; {install}");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{message} (CI=true, so this fails instead of skipping)"
        );
        println!("SKIPPED {message}");
    }
    ok
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A free loopback port: the kernel picks one for a listener that is then closed. Another process
/// could take it in between, so [`Running::start`] retries with a new port when the program exits
/// before it is ready.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A Prometheus or Alertmanager started by a test: a foreground child process, killed by its PID on
/// drop, with its temp directory (config, storage and log), removed after it.
pub(crate) struct Running {
    what: &'static str,
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Running {
    /// Starts `program` with the arguments `args` makes for a port and the temp directory, and
    /// waits until `GET /-/ready` answers 200.
    async fn start(
        what: &'static str,
        program: &Path,
        dir: TempDir,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Self {
        const ATTEMPTS: usize = 3;
        let log_path = dir.path().join(format!("{what}.log"));
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let log = std::fs::File::create(&log_path).expect("create the log");
            let mut child = Command::new(program)
                .current_dir(dir.path())
                .args(args(port, dir.path()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|err| panic!("start {}: {err}", program.display()));
            match wait_ready(&mut child, port).await {
                Ready::Yes => {
                    return Self {
                        what,
                        child,
                        port,
                        dir,
                    };
                }
                // The port may have been taken between our probe and the program's bind.
                Ready::Exited(status) if attempt < ATTEMPTS => {
                    eprintln!("{what} exited with {status} before it was ready; retrying");
                }
                outcome => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{what} did not become ready ({outcome:?}); its log:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Its base URL.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.what)))
            .unwrap_or_default()
    }

    /// A file in its directory.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failing test shows what the other program said; a passing one stays quiet.
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.what, self.log());
        }
        // `Child::kill` sends SIGKILL to this child's PID, and nothing else.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
enum Ready {
    Yes,
    Exited(std::process::ExitStatus),
    TimedOut,
}

/// Polls `GET /-/ready` until it answers 200, the process exits, or [`READY`] passes.
async fn wait_ready(child: &mut Child, port: u16) -> Ready {
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let deadline = tokio::time::Instant::now() + READY;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Ready::Exited(status);
        }
        if matches!(try_get(&url).await, Some((200, _))) {
            return Ready::Yes;
        }
        tokio::time::sleep(POLL).await;
    }
    Ready::TimedOut
}

/// GETs a URL and answers the status and body, or `None` when the server cannot be reached yet.
async fn try_get(url: &str) -> Option<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = http::Request::get(url).body(Empty::new()).ok()?;
    let response = tokio::time::timeout(Duration::from_secs(5), async {
        let response = client.request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await;
    response.ok().flatten()
}

/// GETs a JSON document from another program, which must answer 200.
async fn get_json(url: &str) -> Value {
    let answer = Http::new().get(url).await;
    assert_eq!(answer.status, 200, "GET {url}: {}", answer.text);
    answer.json()
}

/// Starts an Alertmanager with this config, clustering off.
pub(crate) async fn start_alertmanager(program: &Path, config: &str) -> Running {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("alertmanager.yml"), config).expect("write the config");
    Running::start("alertmanager", program, dir, |port, dir| {
        vec![
            "--cluster.listen-address=".to_owned(),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
        ]
    })
    .await
}

/// Starts a Prometheus with this config and, in `rules.yml` beside it, these rules.
async fn start_prometheus(program: &Path, config: &str, rules: &str) -> Running {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("prometheus.yml"), config).expect("write the config");
    std::fs::write(dir.path().join("rules.yml"), rules).expect("write the rules");
    Running::start("prometheus", program, dir, |port, dir| {
        vec![
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            "--web.enable-lifecycle".to_owned(),
            "--rules.alert.resend-delay=1s".to_owned(),
        ]
    })
    .await
}

/// Runs amtool against `url` and answers its output; amtool's own `--timeout` bounds it.
pub(crate) async fn amtool(program: &Path, url: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .arg(format!("--alertmanager.url={url}"))
        .arg("--timeout=15s")
        .stdin(Stdio::null());
    let shown = format!("{command:?}");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the amtool task")
        .unwrap_or_else(|err| panic!("run {shown}: {err}"));
    assert!(
        output.status.success(),
        "{shown} failed with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

// ---------------------------------------------------------------------------------------------
// Reading alertpub.

/// The sum of a metric's samples whose labels include every pair of `labels`.
pub(crate) async fn metric(server: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = Http::new().get(&server.url("/metrics")).await.text;
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// Waits until alertpub's queue is empty: no job pending, leased or in flight. Ingest commits its
/// jobs before it answers, so once the queue has drained, everything an answered request queued
/// has reached its target (or failed), and a target's recorded requests are final for it.
async fn wait_queue_drained(server: &Server) {
    let url = server.url("/api/v1/queue");
    let deadline = tokio::time::Instant::now() + crate::DELIVERY;
    loop {
        let queue = get_json(&url).await;
        let in_flight: u64 = queue["lanes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|lane| lane["in_flight"].as_u64())
            .sum();
        if queue["depth"] == 0 && in_flight == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alertpub's queue did not drain: {queue}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `probe` every [`POLL`] until it answers `Some`, or panics after `within` with `what`.
pub(crate) async fn poll_until<T>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) fn statuses(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.json()["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// An Alertmanager that notifies `server`'s webhook receiver (`send_resolved: true`), grouping by
/// `alertname` with 1 s waits and a 1 h `repeat_interval`.
pub(crate) fn notifying_alertpub(server: &Server) -> String {
    format!(
        r#"
route:
  receiver: alertpub
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: alertpub
    webhook_configs:
      - url: {}
        send_resolved: true
"#,
        server.url("/api/v1/alerts/alertmanager")
    )
}

/// An Alertmanager whose route ends in a receiver that sends nothing.
fn silent_alertmanager_config(resolve_timeout: &str) -> String {
    format!(
        r#"
global:
  resolve_timeout: {resolve_timeout}
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"#
    )
}

/// Alertmanager's alerts (`GET /api/v2/alerts`, active ones only) whose `alertname` is `name`.
pub(crate) async fn alertmanager_alerts(am: &Running, name: &str) -> Vec<Value> {
    let alerts =
        get_json(&am.url("/api/v2/alerts?active=true&silenced=false&inhibited=false")).await;
    alerts
        .as_array()
        .expect("Alertmanager answers an array")
        .iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// amtool posts to alertpub as to an Alertmanager: it reads `GET /api/v2/status` first and sends
/// zero timestamps. The alert is delivered once, a re-run is a repeat, and a resolve sent with
/// `--end` in the past reaches a PagerDuty-style target with the trigger's `dedup_key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_alert_add_delivers_once_and_its_resolve_keeps_the_dedup_key() {
    let Some([amtool_bin]) = programs(
        "interop::amtool_alert_add_delivers_once_and_its_resolve_keeps_the_dedup_key",
        [Program::Amtool],
    ) else {
        return;
    };
    let hook = ok_target().await;
    let pagerduty = MockTarget::start().await;
    pagerduty.respond(
        MockResponse::status(202).json(
            &json!({"status": "success", "message": "Event processed", "dedup_key": "unused"}),
        ),
    );
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join("routing-key"),
        "R0UTINGKEY0000000000000000000000\n",
    )
    .expect("write the routing key");
    let config = format!(
        "{}targets:\n{}  - name: pd\n    kind: pagerduty\n    url: {}\n    routing_key_file: routing-key\n",
        base_config(),
        webhook("hook", &hook, ""),
        pagerduty.base_url(),
    );
    let server = Server::start_in(dir, &config).await;
    let alertpub = format!("http://{}", server.addr());
    let add = [
        "alert",
        "add",
        "alertname=Test",
        "severity=critical",
        "--annotation=summary=hi",
    ];

    amtool(&amtool_bin, &alertpub, &add).await;
    let status_reads = metric(
        &server,
        "alertpub_http_requests_total",
        &[("route", "/api/v2/status")],
    )
    .await;
    assert!(
        status_reads >= 1.0,
        "amtool did not read /api/v2/status first"
    );
    let delivered = wait_for_posts(&hook, 1).await;
    let body = delivered[0].json();
    assert_eq!(body["status"], "firing", "{body}");
    assert_eq!(
        body["labels"],
        json!({"alertname": "Test", "severity": "critical"})
    );
    assert_eq!(body["annotations"], json!({"summary": "hi"}));
    // amtool sent the zero time as startsAt, which alertpub replaced with the time it received it.
    let starts_at = body["starts_at"].as_str().expect("starts_at").to_owned();
    assert!(!starts_at.starts_with("0001-"), "{body}");
    let trigger = wait_for_posts(&pagerduty, 1).await[0].json();
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    let dedup_key = trigger["dedup_key"].as_str().expect("dedup_key").to_owned();

    // The same command again: alertpub accepts it (amtool succeeds), and once the queue has
    // drained, neither target has received anything more.
    amtool(&amtool_bin, &alertpub, &add).await;
    let ingested = metric(&server, "alertpub_ingest_alerts_total", &[]).await;
    assert_eq!(ingested, 2.0, "both runs were ingested");
    wait_queue_drained(&server).await;
    assert_eq!(posts(&hook).len(), 1, "the re-run was delivered again");
    assert_eq!(posts(&pagerduty).len(), 1, "the re-run was delivered again");

    // A resolve: the same labels with `--end` in the past (now, which has passed when it arrives).
    let end = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let resolve: Vec<String> = add
        .iter()
        .map(|s| (*s).to_owned())
        .chain([format!("--end={end}")])
        .collect();
    let resolve: Vec<&str> = resolve.iter().map(String::as_str).collect();
    amtool(&amtool_bin, &alertpub, &resolve).await;
    let events = wait_for_posts(&pagerduty, 2).await;
    let resolved = events[1].json();
    assert_eq!(resolved["event_action"], "resolve", "{resolved}");
    assert_eq!(resolved["dedup_key"], dedup_key.as_str(), "{resolved}");
    let to_hook = wait_for_posts(&hook, 2).await;
    assert_eq!(statuses(&to_hook), ["firing", "resolved"]);
    wait_queue_drained(&server).await;
    assert_eq!(posts(&pagerduty).len(), 2);
    assert_eq!(posts(&hook).len(), 2);
    println!(
        "amtool: {status_reads} status read(s), {ingested} adds ingested before the resolve, \
         pagerduty got trigger+resolve with dedup_key {dedup_key}"
    );
}

/// Prometheus uses alertpub as its Alertmanager: an always-firing rule reaches a target once with
/// its labels, however often Prometheus re-sends it, and removing the rule resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alerts_through_alertpub_once_and_resolve_when_the_rule_goes() {
    let Some([prometheus_bin]) = programs(
        "interop::prometheus_alerts_through_alertpub_once_and_resolve_when_the_rule_goes",
        [Program::Prometheus],
    ) else {
        return;
    };
    let (hook, server) = one_webhook().await;
    let prometheus_config = format!(
        r#"
global:
  evaluation_interval: 1s
  scrape_interval: 1m
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - scheme: http
      api_version: v2
      static_configs:
        - targets: ["{}"]
"#,
        server.addr()
    );
    let rules = r#"
groups:
  - name: interop
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: warning, team: interop}
        annotations: {summary: "always firing"}
"#;
    let prometheus = start_prometheus(&prometheus_bin, &prometheus_config, rules).await;

    let first = poll_until(ACT, "Prometheus's alert at the target", async || {
        posts(&hook).first().map(RecordedRequest::json)
    })
    .await;
    assert_eq!(first["status"], "firing", "{first}");
    assert_eq!(
        first["labels"],
        json!({"alertname": "AlwaysFiring", "severity": "warning", "team": "interop"}),
        "{first}"
    );
    assert_eq!(first["annotations"], json!({"summary": "always firing"}));

    // Prometheus re-sends the firing alert every second. Once alertpub has ingested three re-sends
    // and drained its queue, the target must still hold the one delivery.
    let sends = poll_until(ACT, "three re-sends from Prometheus", async || {
        let n = metric(
            &server,
            "alertpub_ingest_alerts_total",
            &[("source", "api_v2")],
        )
        .await;
        (n >= 4.0).then_some(n)
    })
    .await;
    wait_queue_drained(&server).await;
    assert_eq!(
        posts(&hook).len(),
        1,
        "a re-send was delivered: {:?}",
        statuses(&posts(&hook))
    );

    // Without the rule, Prometheus stops sending the alert; alertpub resolves it, as Alertmanager
    // would, once the alert's endsAt has passed.
    std::fs::write(prometheus.file("rules.yml"), "groups: []\n").expect("empty the rules");
    let reloaded_at = tokio::time::Instant::now();
    let reload = Http::new()
        .send("POST", &prometheus.url("/-/reload"), None, Bytes::new())
        .await;
    assert_eq!(reload.status, 200, "reload: {}", reload.text);
    let resolved = poll_until(ACT, "the resolve at the target", async || {
        posts(&hook)
            .iter()
            .map(RecordedRequest::json)
            .find(|body| body["status"] == "resolved")
    })
    .await;
    let resolved_after = reloaded_at.elapsed();
    assert_eq!(resolved["fingerprint"], first["fingerprint"], "{resolved}");
    wait_queue_drained(&server).await;
    assert_eq!(statuses(&posts(&hook)), ["firing", "resolved"]);
    let after_reload = metric(
        &server,
        "alertpub_ingest_alerts_total",
        &[("source", "api_v2")],
    )
    .await;
    println!(
        "prometheus: {} re-sends ingested while the target got the alert once ({after_reload} \
         sends in all); the resolve arrived {resolved_after:?} after the reload",
        sends - 1.0
    );
}

/// Alertmanager notifies alertpub through its webhook receiver; alertpub fans out to three
/// targets, and when Alertmanager re-sends the group with a second alert, only that one is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_fans_out_and_only_the_new_alert_of_a_group_is_delivered() {
    let Some([alertmanager_bin, amtool_bin]) = programs(
        "interop::alertmanager_webhook_fans_out_and_only_the_new_alert_of_a_group_is_delivered",
        [Program::Alertmanager, Program::Amtool],
    ) else {
        return;
    };
    let targets = [ok_target().await, ok_target().await, ok_target().await];
    let config = format!(
        "{}targets:\n{}{}{}",
        base_config(),
        webhook("hook-1", &targets[0], ""),
        webhook("hook-2", &targets[1], ""),
        webhook("hook-3", &targets[2], ""),
    );
    let server = Server::start(&config).await;
    let am_config = notifying_alertpub(&server);
    let am = start_alertmanager(&alertmanager_bin, &am_config).await;
    let am_url = am.url("");

    amtool(
        &amtool_bin,
        &am_url,
        &["alert", "add", "alertname=Grouped", "instance=a"],
    )
    .await;
    for target in &targets {
        let got = poll_until(ACT, "the first alert at every target", async || {
            posts(target).first().map(RecordedRequest::json)
        })
        .await;
        assert_eq!(
            got["labels"],
            json!({"alertname": "Grouped", "instance": "a"})
        );
    }

    amtool(
        &amtool_bin,
        &am_url,
        &["alert", "add", "alertname=Grouped", "instance=b"],
    )
    .await;
    // Alertmanager re-sends the whole group: the first alert and the second, three in all.
    let received = poll_until(ACT, "Alertmanager's re-send of the group", async || {
        let n = metric(
            &server,
            "alertpub_ingest_alerts_total",
            &[("source", "alertmanager_webhook")],
        )
        .await;
        (n >= 3.0).then_some(n)
    })
    .await;
    wait_queue_drained(&server).await;
    for target in &targets {
        let instances: Vec<String> = posts(target)
            .iter()
            .map(|r| {
                r.json()["labels"]["instance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(instances, ["a", "b"], "a target's deliveries");
    }
    println!(
        "alertmanager webhook: alertpub ingested {received} alerts from Alertmanager's two \
         notifications; each of 3 targets got 2 deliveries"
    );
}

/// A target of kind `alertmanager` forwards to a real Alertmanager (`resolve_timeout` 10 s) and
/// refreshes the alert there every 3 s while it fires; the resolve sent to alertpub ends it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertpub_forwards_to_alertmanager_refreshes_and_resolves() {
    let Some([alertmanager_bin, amtool_bin]) = programs(
        "interop::alertpub_forwards_to_alertmanager_refreshes_and_resolves",
        [Program::Alertmanager, Program::Amtool],
    ) else {
        return;
    };
    let am = start_alertmanager(&alertmanager_bin, &silent_alertmanager_config("10s")).await;
    let config = format!(
        "{}targets:\n  - name: upstream\n    kind: alertmanager\n    url: {}\n    refresh_interval: 3s\n",
        base_config(),
        am.url("")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let alert = json!({"labels": {"alertname": "Forwarded", "severity": "warning"}});
    let answer = http
        .post_json(&server.url("/api/v2/alerts"), &json!([alert]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    poll_until(ACT, "the alert at Alertmanager", async || {
        (!alertmanager_alerts(&am, "Forwarded").await.is_empty()).then_some(())
    })
    .await;
    let appeared = tokio::time::Instant::now();
    let query = amtool(
        &amtool_bin,
        &am.url(""),
        &["alert", "query", "alertname=Forwarded", "--output=json"],
    )
    .await;
    let listed: Value = serde_json::from_slice(&query.stdout).expect("amtool's JSON");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1),
        "amtool alert query: {listed}"
    );
    assert_eq!(listed[0]["labels"]["alertname"], "Forwarded");

    // This is the one place where time passing is the point: for 25 s after it appeared, the
    // alert must stay active at Alertmanager. alertpub forwards the alert's effective endsAt (now
    // plus its own ingest.resolve_timeout), which alone would keep it active too, so the refreshes
    // are checked directly: each one re-posts the alert and moves Alertmanager's `updatedAt`.
    let mut updates = BTreeSet::new();
    let mut ends_at = String::new();
    while appeared.elapsed() < Duration::from_secs(25) {
        let alerts = alertmanager_alerts(&am, "Forwarded").await;
        assert_eq!(
            alerts.len(),
            1,
            "the alert was no longer active at Alertmanager {:?} after it appeared; \
             alertpub's log:\n{}",
            appeared.elapsed(),
            server.log()
        );
        let state = &alerts[0]["status"]["state"];
        assert!(state == "active" || state == "unprocessed", "{}", alerts[0]);
        updates.insert(
            alerts[0]["updatedAt"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        alerts[0]["endsAt"]
            .as_str()
            .unwrap_or_default()
            .clone_into(&mut ends_at);
        tokio::time::sleep(POLL).await;
    }
    assert!(
        updates.len() >= 3,
        "Alertmanager saw too few refreshes: {updates:?}"
    );

    let resolve = json!({
        "labels": alert["labels"],
        "endsAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    let answer = http
        .post_json(&server.url("/api/v2/alerts"), &json!([resolve]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    poll_until(ACT, "the alert to leave Alertmanager", async || {
        alertmanager_alerts(&am, "Forwarded")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    println!(
        "alertmanager target: active at Alertmanager for 25 s with {} distinct updatedAt values \
         (refreshes), endsAt there {ends_at} at the end; gone after the resolve",
        updates.len()
    );
}

/// A real Prometheus scrapes alertpub's `/metrics` and reports the target up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_alertpub_and_reports_it_up() {
    let Some([prometheus_bin]) = programs(
        "interop::prometheus_scrapes_alertpub_and_reports_it_up",
        [Program::Prometheus],
    ) else {
        return;
    };
    // The target is there so that alertpub's metrics have per-target series to expose.
    let (_hook, server) = one_webhook().await;
    let prometheus_config = format!(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: alertpub
    scrape_interval: 1s
    metrics_path: /metrics
    static_configs:
      - targets: ["{}"]
"#,
        server.addr()
    );
    let prometheus = start_prometheus(&prometheus_bin, &prometheus_config, "groups: []\n").await;
    let query = |expr: &str| {
        prometheus.url(&format!(
            "/api/v1/query?query={}",
            expr.replace('{', "%7B")
                .replace('}', "%7D")
                .replace('=', "%3D")
                .replace('"', "%22")
        ))
    };
    let up = query(r#"up{job="alertpub"}"#);
    let value = poll_until(ACT, "up{job=\"alertpub\"} at Prometheus", async || {
        let answer = get_json(&up).await;
        let result = answer["data"]["result"].as_array()?.first()?.clone();
        Some(result["value"][1].as_str()?.to_owned())
    })
    .await;
    assert_eq!(value, "1", "Prometheus reports alertpub down");
    let samples = get_json(&query(r#"scrape_samples_scraped{job="alertpub"}"#)).await;
    let samples = samples["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let targets = get_json(&prometheus.url("/api/v1/targets")).await;
    let last_error = &targets["data"]["activeTargets"][0]["lastError"];
    assert_eq!(last_error, "", "Prometheus's last scrape error: {targets}");
    println!("prometheus scrape: up == 1, {samples} samples in the last scrape");
}

/// alertpub's fingerprint of a label set is Alertmanager's, so both name an alert alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprints_match_alertmanagers() {
    let Some([alertmanager_bin]) = programs(
        "interop::fingerprints_match_alertmanagers",
        [Program::Alertmanager],
    ) else {
        return;
    };
    let am = start_alertmanager(&alertmanager_bin, &silent_alertmanager_config("5m")).await;
    let (hook, server) = one_webhook().await;
    let http = Http::new();
    // Label sets that exercise the hash over sorted names (given out of order), non-ASCII
    // values, and spaces and colons in values.
    let label_sets = [
        json!({"alertname": "Fingerprint1"}),
        json!({"alertname": "Fingerprint2", "severity": "critical", "instance": "db-1:9100"}),
        json!({"alertname": "Fingerprint3", "zeta": "last", "a": "first", "b": "über ✓", "job": "x y"}),
    ];
    let alerts: Vec<Value> = label_sets.iter().map(|l| json!({"labels": l})).collect();
    for url in [server.url("/api/v2/alerts"), am.url("/api/v2/alerts")] {
        let answer = http.post_json(&url, &json!(alerts)).await;
        assert_eq!(answer.status, 200, "POST {url}: {}", answer.text);
    }
    let delivered = wait_for_posts(&hook, label_sets.len()).await;
    for labels in &label_sets {
        let name = labels["alertname"].as_str().unwrap();
        let ours = delivered
            .iter()
            .map(RecordedRequest::json)
            .find(|body| body["labels"] == *labels)
            .unwrap_or_else(|| panic!("no delivery of {labels}"));
        let theirs = poll_until(ACT, "the alert at Alertmanager", async || {
            alertmanager_alerts(&am, name).await.into_iter().next()
        })
        .await;
        assert_eq!(
            ours["fingerprint"], theirs["fingerprint"],
            "fingerprints of {labels} differ"
        );
    }
    println!(
        "fingerprints: {} label sets, alertpub's fingerprint equals Alertmanager's for each",
        label_sets.len()
    );
}

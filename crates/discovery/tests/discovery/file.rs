//! The config-file source: the example loads, each kind of error is reported with its field,
//! unavailable secrets disable only their target, and hot reload swaps the set (or keeps it when the
//! new file is invalid), including secrets rotated by a Kubernetes-style symlink swap.
//!
//! Reload tests use real files, real time and polling until a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    Alert, Delivery, DisabledReason, EnrichedAlert, InMemoryMessageRefs, Labels, PublishRequest,
    Publisher, Target, TargetKind, TargetSource,
};
use discovery::{ConfigError, FileSource, PublisherFactory, load_file, load_str};
use publisher_http::{BuildContext, BuildError, ClientConfig, HttpClient};
use test_support::MockTarget;
use tokio_util::sync::CancellationToken;

/// Maps each kind to its publisher crate, as the server does.
pub(crate) fn registry() -> Arc<dyn PublisherFactory> {
    let client = HttpClient::new(&ClientConfig::default()).unwrap();
    let refs = Arc::new(InMemoryMessageRefs::new());
    Arc::new(
        move |target: &Target| -> Result<Arc<dyn Publisher>, BuildError> {
            let context = BuildContext::new(target.name.clone(), client.clone(), refs.clone());
            match target.kind {
                TargetKind::Pagerduty => {
                    publishers_pagerduty::from_settings(&target.settings, &context)
                }
                TargetKind::Slack => publishers_slack::from_settings(&target.settings, &context),
                TargetKind::Rootly => publishers_rootly::from_settings(&target.settings, &context),
                TargetKind::Webhook => {
                    publishers_webhook::from_settings(&target.settings, &context)
                }
                TargetKind::Alertmanager => {
                    publishers_alertmanager::from_settings(&target.settings, &context)
                }
                other => Err(BuildError::Settings(format!(
                    "no publisher for kind {other}"
                ))),
            }
        },
    )
}

fn temp_dir(name: &str) -> crate::TempDir {
    crate::TempDir::new(name)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn the_example_file_loads() {
    // The example's secret paths are relative to the repository root, where `alertpub serve` runs.
    // Only this test depends on the working directory; the others use absolute paths.
    std::env::set_current_dir(repo_root()).unwrap();
    let loaded = load_file(Path::new("examples/alertpub.yaml"), registry().as_ref()).unwrap();
    let names: Vec<&str> = loaded
        .targets
        .iter()
        .map(|e| e.target.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "ops-webhook",
            "pagerduty-oncall",
            "slack-alerts",
            "rootly-prod",
            "upstream-alertmanager"
        ]
    );
    let config = &loaded.config;
    assert_eq!(config.server.listen, "127.0.0.1:9097");
    assert_eq!(
        Duration::from(config.ingest.resolve_timeout),
        Duration::from_secs(300)
    );
    assert_eq!(config.queue.per_target_in_flight, 16);
    let pagerduty = loaded.targets.get("pagerduty-oncall").unwrap();
    assert_eq!(pagerduty.target.repeat_interval, Some(Duration::ZERO));
    assert_eq!(pagerduty.target.rate_limit.map(|r| r.per_minute), Some(120));
    assert_eq!(
        loaded
            .targets
            .get("ops-webhook")
            .unwrap()
            .target
            .filter
            .len(),
        1
    );
    // Slack's webhook URL comes from an environment variable the test does not set.
    let slack = loaded.targets.get("slack-alerts").unwrap();
    if std::env::var_os("SLACK_WEBHOOK_URL").is_none() {
        assert_eq!(
            slack.target.disabled,
            Some(DisabledReason::SecretUnavailable)
        );
        assert_eq!(loaded.warnings.len(), 1);
        assert_eq!(loaded.warnings[0].target, "slack-alerts");
    }
    for name in [
        "ops-webhook",
        "pagerduty-oncall",
        "rootly-prod",
        "upstream-alertmanager",
    ] {
        assert!(
            loaded.targets.get(name).unwrap().target.is_enabled(),
            "{name}"
        );
    }
}

#[test]
fn each_kind_of_error_names_its_field() {
    let cases: &[(&str, &str)] = &[
        (
            "targets:\n  - name: Ops_Hook\n    kind: webhook\n    url: http://127.0.0.1:1/\n",
            "targets[0].name",
        ),
        (
            "targets:\n  - name: ops\n    kind: pigeon\n",
            "targets[0].kind",
        ),
        (
            "targets:\n  - name: ops\n    kind: webhook\n    url: http://127.0.0.1:1/\n    filter: ['severity=~\"(\"']\n",
            "targets[0].filter[0]",
        ),
        (
            "targets:\n  - name: ops\n    kind: webhook\n    url: http://127.0.0.1:1/\n    filter: ['severity']\n",
            "targets[0].filter[0]",
        ),
        (
            "ingest:\n  resolve_timeout: 5 minutes\n",
            "ingest.resolve_timeout",
        ),
        ("ingest:\n  repeat_interval: 30\n", "ingest.repeat_interval"),
        ("queue:\n  max_atempts: 3\n", "queue"),
        (
            "publishing:\n  health_strategy: sometimes\n",
            "publishing.health_strategy",
        ),
        (
            "targets:\n  - name: ops\n    kind: webhook\n    url: ftp://127.0.0.1/x\n",
            "targets[0] (ops)",
        ),
        (
            "targets:\n  - name: pd\n    kind: pagerduty\n    routing_key: k\n    sevrity: critical\n",
            "targets[0] (pd)",
        ),
        (
            "targets:\n  - name: ops\n    kind: webhook\n    url: http://127.0.0.1:1/\n  - name: ops\n    kind: webhook\n    url: http://127.0.0.1:2/\n",
            "duplicate target name \"ops\"",
        ),
        ("targets: [\n", "invalid YAML"),
    ];
    let factory = registry();
    for (yaml, expected) in cases {
        let err = load_str(yaml, Path::new("bad.yaml"), factory.as_ref()).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("bad.yaml"), "{message}");
        assert!(
            message.contains(expected),
            "expected {expected:?} in: {message}"
        );
    }
    // The messages say what is wrong, too.
    let err = load_str(
        "ingest:\n  resolve_timeout: 5 minutes\n",
        Path::new("bad.yaml"),
        factory.as_ref(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Field { message, .. } if message.contains("invalid duration")),
        "{err}"
    );
    let err = load_str(
        "targets:\n  - name: ops\n    kind: webhook\n    url: ftp://h/SECRETPATH\n",
        Path::new("b"),
        factory.as_ref(),
    )
    .unwrap_err();
    assert!(
        !err.to_string().contains("SECRETPATH"),
        "URLs stay redacted in errors: {err}"
    );
}

#[test]
fn a_missing_secret_disables_only_its_target() {
    let dir = temp_dir("missing-secret");
    std::fs::write(dir.join("key"), "R0UTINGKEY\n").unwrap();
    let yaml = format!(
        "targets:\n  - name: pd-ok\n    kind: pagerduty\n    routing_key_file: {ok}\n  - name: pd-missing\n    kind: pagerduty\n    routing_key_file: {missing}\n",
        ok = dir.join("key").display(),
        missing = dir.join("absent").display(),
    );
    let loaded = load_str(&yaml, Path::new("c.yaml"), registry().as_ref()).unwrap();
    assert!(loaded.targets.get("pd-ok").unwrap().target.is_enabled());
    assert_eq!(
        loaded.targets.get("pd-missing").unwrap().target.disabled,
        Some(DisabledReason::SecretUnavailable)
    );
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].message.contains("routing_key"),
        "{:?}",
        loaded.warnings
    );
}

async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn webhook_yaml(names: &[&str], url: &str) -> String {
    let mut yaml = String::from("targets:\n");
    for name in names {
        yaml.push_str(&format!(
            "  - name: {name}\n    kind: webhook\n    url: {url}\n"
        ));
    }
    yaml
}

#[tokio::test]
async fn hot_reload_swaps_the_set_and_keeps_it_when_the_new_file_is_invalid() {
    let dir = temp_dir("reload");
    let path = dir.join("alertpub.yaml");
    std::fs::write(&path, webhook_yaml(&["one"], "http://127.0.0.1:1/")).unwrap();
    let source = Arc::new(FileSource::load(&path, registry()).unwrap());
    let changes = source.subscribe();
    let shutdown = CancellationToken::new();
    let watcher = tokio::spawn({
        let source = source.clone();
        let shutdown = shutdown.clone();
        async move { source.watch(shutdown).await }
    });

    std::fs::write(&path, webhook_yaml(&["one", "two"], "http://127.0.0.1:1/")).unwrap();
    until("the new target set", || {
        (source.snapshot().len() == 2).then_some(())
    })
    .await;
    assert!(changes.has_changed().unwrap());
    // At least one reload: a SIGHUP sent by another test in this process may add one.
    assert!(source.status().generation >= 2);

    std::fs::write(
        &path,
        "targets:\n  - name: Broken_Name\n    kind: webhook\n",
    )
    .unwrap();
    let error = until("the reload error", || source.status().last_error).await;
    assert!(error.contains("targets[0].name"), "{error}");
    let names: Vec<String> = source
        .snapshot()
        .iter()
        .map(|e| e.target.name.to_string())
        .collect();
    assert_eq!(names, ["one", "two"], "the old set stays in force");

    // Fixing the file recovers, and clears the error.
    std::fs::write(&path, webhook_yaml(&["three"], "http://127.0.0.1:1/")).unwrap();
    until("recovery", || source.snapshot().get("three").map(|_| ())).await;
    assert_eq!(source.status().last_error, None);

    shutdown.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn a_secret_rotated_by_symlink_swap_is_used() {
    use std::os::unix::fs::symlink;
    let target = MockTarget::start().await;
    let dir = temp_dir("rotate");
    // Kubernetes' layout: token -> ..data/token, ..data -> ..<timestamp>/.
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(secrets.join("..v1")).unwrap();
    std::fs::write(secrets.join("..v1/token"), "token-one\n").unwrap();
    symlink("..v1", secrets.join("..data")).unwrap();
    symlink("..data/token", secrets.join("token")).unwrap();
    let path = dir.join("alertpub.yaml");
    std::fs::write(
        &path,
        format!(
            "targets:\n  - name: hook\n    kind: webhook\n    url: {}\n    auth: {{ bearer_token_file: {} }}\n",
            target.url("/hook"),
            secrets.join("token").display()
        ),
    )
    .unwrap();
    let source = Arc::new(FileSource::load(&path, registry()).unwrap());
    let shutdown = CancellationToken::new();
    let watcher = tokio::spawn({
        let source = source.clone();
        let shutdown = shutdown.clone();
        async move { source.watch(shutdown).await }
    });
    let labels: Labels = [("alertname".to_owned(), "Rotate".to_owned())].into();
    let alert = EnrichedAlert::new(Alert::new(labels).unwrap());
    let publish = || {
        let entry = source.snapshot().get("hook").unwrap().clone();
        let alert = alert.clone();
        async move {
            entry
                .publisher
                .publish(PublishRequest::new(
                    &alert,
                    alert_core::AlertStatus::Firing,
                    Delivery::first(),
                    alert.alert.starts_at(),
                ))
                .await
                .unwrap()
        }
    };
    publish().await;
    assert_eq!(
        target.requests()[0].header("authorization"),
        Some("Bearer token-one")
    );

    // Swap atomically, as the kubelet does: write a new directory, repoint ..data by rename.
    std::fs::create_dir_all(secrets.join("..v2")).unwrap();
    std::fs::write(secrets.join("..v2/token"), "token-two\n").unwrap();
    symlink("..v2", secrets.join("..data_tmp")).unwrap();
    std::fs::rename(secrets.join("..data_tmp"), secrets.join("..data")).unwrap();

    until("the rotated secret to load", || {
        (source.status().generation >= 2).then_some(())
    })
    .await;
    publish().await;
    let last = target.requests().last().unwrap().clone();
    assert_eq!(last.header("authorization"), Some("Bearer token-two"));

    shutdown.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn sighup_reloads() {
    // Listening here first installs the process-wide handler, so no SIGHUP sent below can ever reach
    // the default action, which would end the test process.
    let _listener = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let dir = temp_dir("sighup");
    let path = dir.join("alertpub.yaml");
    std::fs::write(&path, webhook_yaml(&["one"], "http://127.0.0.1:1/")).unwrap();
    let source = Arc::new(FileSource::load(&path, registry()).unwrap());
    let shutdown = CancellationToken::new();
    let watcher = tokio::spawn({
        let source = source.clone();
        let shutdown = shutdown.clone();
        async move { source.watch(shutdown).await }
    });
    // Nothing on disk changes, so only the signal can cause a reload. The watcher may not be
    // listening yet when the first signal arrives, so signal until the reload is seen.
    let pid = std::process::id().to_string();
    until("a reload after SIGHUP", || {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        (source.status().generation >= 2).then_some(())
    })
    .await;
    assert_eq!(source.status().last_error, None);
    shutdown.cancel();
    watcher.await.unwrap();
}

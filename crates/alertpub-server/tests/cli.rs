//! The `alertpub` binary's commands, run as a process.

use std::path::Path;
use std::process::Command;

fn alertpub() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alertpub"));
    // The example's secret paths are relative to the repository root.
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    command.env_remove("SLACK_WEBHOOK_URL");
    command
}

#[test]
fn check_config_accepts_the_example_and_warns_about_unavailable_secrets() {
    let output = alertpub()
        .args(["check-config", "examples/alertpub.yaml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SUCCESS: 5 targets found"), "{stdout}");
    assert!(
        stdout.contains("slack-alerts") && stdout.contains("disabled (secret_unavailable)"),
        "{stdout}"
    );
    assert!(stdout.contains("WARNING: slack-alerts"), "{stdout}");
    // Secrets never appear, and URLs only as scheme://host:port/….
    assert!(
        !stdout.contains("example-ops-webhook-token") && !stdout.contains("/hook"),
        "{stdout}"
    );
}

#[test]
fn check_config_rejects_an_invalid_file_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("alertpub-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(&file, "targets:\n  - name: ops\n    kind: webhook\n    url: http://127.0.0.1:1/\n    repeat_interval: 30\n")
        .unwrap();
    let output = alertpub().arg("check-config").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("targets[0].repeat_interval") && stderr.contains("needs a unit"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn version_prints_the_version() {
    let output = alertpub().arg("version").output().unwrap();
    assert!(output.status.success());
    // As `alertmanager --version` prints it: the version, branch and revision, then the build.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "alertpub, version {} (branch: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );
    assert!(first.contains("revision: "), "{stdout}");
    assert!(stdout.contains("rust version: 1."), "{stdout}");
}

#[test]
fn check_config_routes_a_label_set_across_the_kinds() {
    let output = alertpub()
        .args([
            "check-config",
            "examples/integrations.yaml",
            "--route",
            "alertname=DiskFull,severity=critical",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SUCCESS: 8 targets found"), "{stdout}");
    assert!(stdout.contains("7 of 8 targets"), "{stdout}");
    for kind in [
        "msteams",
        "opsgenie",
        "incidentio",
        "email",
        "discord",
        "telegram",
    ] {
        assert!(stdout.contains(kind), "{kind}: {stdout}");
    }
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| {
                l.contains(name)
                    && (l.contains(" + ") || l.contains(" - "))
                    && !l.contains("enabled")
            })
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("opsgenie-critical").contains('+'), "{stdout}");
    assert!(
        line("telegram-storage").contains("not sent: filtered"),
        "{stdout}"
    );
    // Secrets from examples/secrets never appear.
    assert!(!stdout.contains("example-not-a-real"), "{stdout}");
    let warning = alertpub()
        .args([
            "check-config",
            "examples/integrations.yaml",
            "--route",
            "severity=warning",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&warning.stdout);
    assert!(stdout.contains("6 of 8 targets"), "{stdout}");
}

#[test]
fn a_body_template_that_is_not_json_is_refused_at_load_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("alertpub-cli-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "targets:\n  - name: ok\n    kind: webhook\n    url: http://127.0.0.1:1/\n  - name: chat\n    kind: webhook\n    url: http://127.0.0.1:1/\n    body_template: '{\"text\": {{ alert_name }}}'\n",
    )
    .unwrap();
    let output = alertpub().arg("check-config").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("targets[1] (chat)")
            && stderr.contains("body_template:")
            && stderr.contains("not JSON"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

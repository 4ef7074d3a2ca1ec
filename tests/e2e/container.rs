//! The container image: `deploy/container/build.sh` builds it FROM scratch with podman (Debian's
//! `podman` and `buildah`; no base image is pulled), and the test runs it read-only, as the
//! non-root user, with a config that names a mock target on the host's loopback, posts an alert
//! and sees it delivered, and reads the image's HEALTHCHECK and user.

use std::path::Path;
use std::process::Command;

use alertpub_e2e::{Http, TempDir};
use serde_json::json;

use crate::ok_target;

/// The engine's settings for the test: no default ulimits (setting rlimits is not allowed in
/// every sandbox a CI runs in) and cgroups through cgroupfs, with runc as the runtime (crun
/// refuses a host whose cgroups are in hybrid mode).
fn engine_conf() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("alertpub-podman-{}.conf", std::process::id()));
    std::fs::write(
        &path,
        "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n",
    )
    .expect("write the podman settings");
    path
}

fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .env("CONTAINERS_CONF", engine_conf())
        .args(args)
        .output()
        .expect("podman runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_read_only_as_non_root_and_delivers() {
    if !crate::interop::runs(
        "container::the_image_runs_read_only_as_non_root_and_delivers",
        "podman",
        &["--version"],
        "apt-get install podman buildah runc",
    ) {
        return;
    }
    let image = format!("localhost/alertpub-test:{}", std::process::id());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/container/build.sh");
    let binary = alertpub_e2e::binary().to_path_buf();
    let built = Command::new("bash")
        .env("CONTAINERS_CONF", engine_conf())
        .arg(&script)
        .arg(&image)
        .arg(&binary)
        .output()
        .expect("build.sh runs");
    assert!(
        built.status.success(),
        "build.sh failed: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );

    let inspect = podman(&["image", "inspect", "--format", "{{json .Config}}", &image]);
    let config: serde_json::Value =
        serde_json::from_slice(&inspect.stdout).expect("the image's config");
    assert_eq!(config["User"], "65532:65532", "{config}");

    // A config naming a mock target on the host's loopback, which the container shares.
    let target = ok_target().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join("alertpub.yaml"),
        format!(
            "server:\n  listen: \"127.0.0.1:{port}\"\nqueue:\n  path: /data/alertpub.redb\ntargets:\n  - name: hook\n    kind: webhook\n    url: {}\n",
            target.url("/hook")
        ),
    )
    .unwrap();
    let mount = format!("{}:/etc/alertpub:ro", dir.path().display());
    // The queue's volume, owned by the image's user (the tests run as root, which may chown).
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let _ = std::os::unix::fs::chown(&data, Some(65532), Some(65532));
    let data_mount = format!("{}:/data", data.display());
    let name = format!("alertpub-test-{}", std::process::id());
    let run = podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--volume",
        &data_mount,
        "--volume",
        &mount,
        &image,
        "serve",
        "--config.file=/etc/alertpub/alertpub.yaml",
        &format!("--web.listen-address=127.0.0.1:{port}"),
        "--storage.path=/data",
    ]);
    assert!(
        run.status.success(),
        "podman run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let http = Http::new();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let up = loop {
        if http
            .try_post_json(
                &format!("{url}/api/v2/alerts"),
                &json!([{"labels": {"alertname": "FromTheImage"}}]),
            )
            .await
            == Some(200)
        {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // The alert reaches the mock target, which the container reaches on the host's loopback.
    let deadline = std::time::Instant::now() + crate::DELIVERY;
    while up && crate::posts(&target).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logs = podman(&["logs", &name]);
    let healthy = podman(&[
        "exec",
        &name,
        "/usr/local/bin/alertpub",
        "healthcheck",
        "--address",
        &format!("127.0.0.1:{port}"),
    ]);
    let _ = podman(&["rm", "--force", &name]);
    let _ = podman(&["rmi", "--force", &image]);
    assert!(
        up,
        "the container never took an alert; its log:\n{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    let posts = crate::posts(&target);
    assert_eq!(posts.len(), 1, "the target got nothing");
    assert_eq!(posts[0].json()["alert_name"], "FromTheImage");
    assert!(
        healthy.status.success(),
        "the healthcheck failed: {}",
        String::from_utf8_lossy(&healthy.stderr)
    );
}

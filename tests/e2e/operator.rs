//! The operator's surface that Alertmanager's users already know: its command line, `/-/healthy`,
//! `/-/ready` and `/-/reload`, logfmt logs, and the meta-metrics their alerts are written on
//! (`alertpub_build_info`, the reload gauges, dead letters by reason, delivery latency).

use std::ffi::OsString;

use alertpub_e2e::{Http, Server, TempDir};
use serde_json::json;
use test_support::{MockResponse, MockTarget};

use crate::{base_config, ok_target, wait_for_posts, webhook};

/// The value of the sample whose line starts with `series` (name and labels, in the order the
/// exporter writes them), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample_with(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .find(|line| labels.iter().all(|l| line.contains(l)))
        .and_then(|line| line.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_command_line_starts_the_server_with_its_conventions() {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        base_config(),
        webhook("hook", &target, "")
    );
    let dir = TempDir::new();
    let storage = dir.path().join("data");
    std::fs::create_dir_all(&storage).unwrap();
    let config_path = dir.path().join("alertpub.yaml");
    let args: Vec<OsString> = vec![
        format!("--config.file={}", config_path.display()).into(),
        "--web.listen-address=127.0.0.1:0".into(),
        format!("--storage.path={}", storage.display()).into(),
        "--log.level=info".into(),
        "--log.format=logfmt".into(),
    ];
    let server = Server::start_with_args(dir, &config, args).await;
    let http = Http::new();

    // Liveness and readiness by Alertmanager's paths, by GET and by HEAD (`curl -I`).
    for path in ["/-/healthy", "/-/ready"] {
        for method in ["GET", "HEAD"] {
            let answer = http.send(method, &server.url(path), None, "").await;
            assert_eq!(answer.status, 200, "{method} {path}: {}", answer.text);
        }
    }

    // The queue lives where --storage.path says (a directory: the file goes in it).
    assert!(
        storage.join("alertpub.redb").is_file(),
        "no queue file in {}",
        storage.display()
    );

    // An alert is delivered, and its latency from ingest is in the histogram.
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Conventions"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    wait_for_posts(&target, 1).await;
    let mut metrics;
    let deadline = std::time::Instant::now() + crate::DELIVERY;
    loop {
        metrics = http.get(&server.url("/metrics")).await.text;
        if sample_with(
            &metrics,
            "alertpub_delivery_latency_seconds_count",
            &[r#"target="hook""#],
        ) == Some(1.0)
            || std::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample_with(
            &metrics,
            "alertpub_delivery_latency_seconds_count",
            &[r#"target="hook""#]
        ),
        Some(1.0),
        "{metrics}"
    );

    // Which build runs, with a real revision and compiler version.
    let build = metrics
        .lines()
        .find(|l| l.starts_with("alertpub_build_info{"))
        .unwrap_or_else(|| panic!("no alertpub_build_info:\n{metrics}"));
    assert!(build.ends_with(" 1"), "{build}");
    assert!(
        build.contains(&format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    assert!(build.contains("rustversion=\"1."), "{build}");
    assert!(build.contains("revision=\""), "{build}");
    let status = http.get(&server.url("/api/v2/status")).await.json();
    assert_eq!(status["versionInfo"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        status["versionInfo"]["goVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("rustc 1.")),
        "{status}"
    );

    // The first load counts as a successful one.
    assert_eq!(
        sample(&metrics, "alertpub_config_last_reload_successful"),
        Some(1.0),
        "{metrics}"
    );
    let first_success = sample(
        &metrics,
        "alertpub_config_last_reload_success_timestamp_seconds",
    )
    .unwrap_or_else(|| panic!("no reload timestamp:\n{metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - first_success).abs() < 120.0,
        "{first_success} vs {now}"
    );

    // POST /-/reload reloads; an invalid file is refused, the old targets stay, and the gauge
    // says so.
    let second = format!(
        "{}targets:\n{}{}",
        base_config(),
        webhook("hook", &target, ""),
        webhook("second", &target, "")
    );
    std::fs::write(&config_path, second).unwrap();
    let answer = http.post_json(&server.url("/-/reload"), &json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["targets"], 2, "{}", answer.text);
    std::fs::write(&config_path, "targets: [ {").unwrap();
    let answer = http.post_json(&server.url("/-/reload"), &json!({})).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(answer.error_kind(), "invalid_config", "{}", answer.text);
    let metrics = http.get(&server.url("/metrics")).await.text;
    assert_eq!(
        sample(&metrics, "alertpub_config_last_reload_successful"),
        Some(0.0),
        "{metrics}"
    );
    let targets = http.get(&server.url("/api/v1/targets")).await.json();
    assert_eq!(targets["targets"].as_array().map(Vec::len), Some(2));

    // The log is logfmt: every line a run of key=value pairs, starting with the time.
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.starts_with("ts=") && line.contains(" level=") && line.contains(" msg="),
            "not logfmt: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("level=info") && l.contains(r#"msg="alertpub listening""#)),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_needs_a_token_like_other_writes() {
    let target = ok_target().await;
    let dir = TempDir::new();
    std::fs::write(dir.path().join("tokens"), "operator-token\n").unwrap();
    let config = format!(
        "{}targets:\n{}",
        crate::server_lines(&base_config(), "  auth:\n    bearer_tokens_file: tokens\n"),
        webhook("hook", &target, "")
    );
    let server = Server::start_in(dir, &config).await;
    let anonymous = Http::new();
    let answer = anonymous
        .post_json(&server.url("/-/reload"), &json!({}))
        .await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    // Probes stay open: an orchestrator holds no token.
    assert_eq!(anonymous.get(&server.url("/-/healthy")).await.status, 200);
    assert_eq!(anonymous.get(&server.url("/-/ready")).await.status, 200);
    let answer = anonymous
        .with_token("operator-token")
        .post_json(&server.url("/-/reload"), &json!({}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_counted_by_reason() {
    let refusing = MockTarget::start().await;
    refusing.respond(MockResponse::status(400));
    let config = format!(
        "{}targets:\n{}",
        base_config(),
        webhook("refusing", &refusing, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Refused"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let url = server.url("/metrics");
    let deadline = std::time::Instant::now() + crate::DELIVERY;
    let mut metrics;
    loop {
        metrics = http.get(&url).await.text;
        let permanent = sample_with(
            &metrics,
            "alertpub_queue_dead_lettered_total",
            &[r#"reason="permanent""#],
        );
        if permanent == Some(1.0) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample_with(
            &metrics,
            "alertpub_queue_dead_lettered_total",
            &[r#"reason="permanent""#]
        ),
        Some(1.0),
        "{metrics}"
    );
    // Every reason's series is there from the start, at zero until it happens.
    for reason in ["exhausted", "expired", "target_removed"] {
        assert_eq!(
            sample_with(
                &metrics,
                "alertpub_queue_dead_lettered_total",
                &[&format!(r#"reason="{reason}""#)]
            ),
            Some(0.0),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_the_sync_apis_figures_are_exposed() {
    let target = ok_target().await;
    // A port nobody listens on: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let config = format!(
        "{}targets:\n{}  - name: down\n    kind: webhook\n    url: {down}\n",
        base_config(),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let check = |name: &str| server.url(&format!("/api/v1/targets/{name}/health/check"));
    let answer = http.post_json(&check("hook"), &json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // Three failures in a row (health.failure_threshold) make it unhealthy.
    for _ in 0..3 {
        let answer = http.post_json(&check("down"), &json!({})).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    let metrics = http.get(&server.url("/metrics")).await.text;
    let checks = |target: &str, result: &str| {
        sample_with(
            &metrics,
            "alertpub_health_checks_total",
            &[
                &format!(r#"target="{target}""#),
                &format!(r#"result="{result}""#),
            ],
        )
    };
    // The prober's first round at start counts too.
    let reachable = checks("hook", "reachable").unwrap_or(0.0);
    assert!(reachable >= 1.0, "{metrics}");
    assert!(
        checks("down", "unreachable").unwrap_or(0.0) >= 3.0,
        "{metrics}"
    );
    assert_eq!(checks("down", "reachable"), Some(0.0), "{metrics}");
    // Every answered check is timed; an unanswered one has no time.
    assert_eq!(
        sample_with(
            &metrics,
            "alertpub_health_check_duration_seconds_count",
            &[r#"target="hook""#]
        ),
        Some(reachable),
        "{metrics}"
    );
    assert_eq!(
        sample_with(
            &metrics,
            "alertpub_health_check_duration_seconds_count",
            &[r#"target="down""#]
        ),
        None,
        "{metrics}"
    );
    assert_eq!(
        sample_with(
            &metrics,
            "alertpub_health_transitions_total",
            &[r#"target="down""#, r#"to="unhealthy""#]
        ),
        Some(1.0),
        "{metrics}"
    );

    // The synchronous API's figures per target, and their reset.
    let answer = http
        .post_json(
            &server.url("/api/v1/publish/parallel"),
            &json!({"alert": {"labels": {"alertname": "Figures"}}, "targets": ["hook"]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let status = http
        .get(&server.url("/api/v1/publish/parallel/status"))
        .await
        .json();
    assert_eq!(status["total"], 1, "{status}");
    assert_eq!(status["targets"]["hook"]["calls"], 1, "{status}");
    assert_eq!(status["targets"]["hook"]["success"], 1, "{status}");
    let answer = http
        .post_json(
            &server.url("/api/v1/publish/parallel/status/reset"),
            &json!({}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let status = answer.json();
    assert_eq!(status["total"], 0, "{status}");
    assert_eq!(status["targets"], json!({}), "{status}");
}

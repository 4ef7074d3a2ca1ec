//! Bad input against the running binary: each case gets its exact status and a JSON error, and
//! the server keeps serving afterwards.

use std::time::Duration;

use alertpub_e2e::{Http, Server};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{base_config, ok_target, webhook};

/// What is sent, with which content type, and the status and error kind expected.
type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

async fn assert_still_serving(http: &Http, server: &Server) {
    let answer = http.get(&server.url("/healthz")).await;
    assert_eq!(
        answer.status, 200,
        "the server stopped serving: {}",
        answer.text
    );
}

/// Reads until the server closes the connection; returns what it sent. Panics if the
/// connection is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let (received, closed) = crate::read_to_close(stream, within).await;
    assert!(closed, "the server kept the connection open for {within:?}");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_exact_statuses_and_json_errors() {
    let (target, server) = crate::one_webhook().await;
    let http = Http::new();
    let alerts = server.url("/api/v2/alerts");
    let json_type = Some("application/json");

    let cases: Vec<Case<'_>> = vec![
        (
            "invalid JSON",
            json_type,
            b"[{\"labels\": ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            b"[]".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            b"[]".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "a body over the limit",
            json_type,
            json!([{"labels": {"a": "x".repeat(70_000)}}])
                .to_string()
                .into_bytes(),
            413,
            "body_too_large",
        ),
        (
            "more alerts than the limit",
            json_type,
            json!(
                (0..6)
                    .map(|i| json!({"labels": {"alertname": format!("A{i}")}}))
                    .collect::<Vec<_>>()
            )
            .to_string()
            .into_bytes(),
            413,
            "too_many_alerts",
        ),
        (
            "an alert with no labels",
            json_type,
            br#"[{"labels": {}}]"#.to_vec(),
            400,
            "invalid_alerts",
        ),
        (
            "invalid UTF-8",
            json_type,
            b"[{\"labels\": {\"a\": \"\xff\xfe\"}}]".to_vec(),
            400,
            "invalid_utf8",
        ),
        (
            "a label value of the wrong type",
            json_type,
            br#"[{"labels": {"alertname": ["a", "list"]}}]"#.to_vec(),
            400,
            "invalid_alerts",
        ),
        (
            "a label over the size limit",
            json_type,
            json!([{"labels": {"alertname": "y".repeat(16 * 1024 + 1)}}])
                .to_string()
                .into_bytes(),
            400,
            "invalid_alerts",
        ),
        (
            "not an array",
            json_type,
            br#"{"labels": {"a": "b"}}"#.to_vec(),
            400,
            "invalid_schema",
        ),
    ];
    for (what, content_type, body, status, kind) in cases {
        let answer = http.send("POST", &alerts, content_type, body).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        assert_eq!(answer.error_kind(), kind, "{what}: {}", answer.text);
        assert!(
            !answer.json()["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{what}: the error has no message"
        );
        assert_still_serving(&http, &server).await;
    }
    // The batch errors name the invalid index and its reason.
    let answer = http
        .send("POST", &alerts, json_type, br#"[{"labels": {}}]"#.to_vec())
        .await;
    let body = answer.json();
    assert_eq!(body["invalid"][0]["index"], 0);
    assert!(
        body["invalid"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("at least one label")
    );
    // An unknown endpoint and a wrong method answer JSON too.
    let answer = http.get(&server.url("/api/v1/nothing-here")).await;
    assert_eq!(
        (answer.status, answer.error_kind().as_str()),
        (404, "not_found")
    );
    let answer = http.get(&alerts).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.error_kind(), "method_not_allowed");
    // Nothing invalid was delivered, and the server never crashed.
    assert!(target.requests().iter().all(|r| r.method != "POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_slow_bodies_are_dropped() {
    let (_target, server) = crate::one_webhook().await;
    let http = Http::new();

    // Headers that never finish: dropped after the header read timeout (1 s).
    let mut slowloris = TcpStream::connect(server.addr()).await.unwrap();
    slowloris
        .write_all(b"POST /api/v2/alerts HTTP/1.1\r\nHost: alertpub\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    read_until_closed(&mut slowloris, Duration::from_secs(15)).await;
    assert_still_serving(&http, &server).await;

    // A body that stops halfway: answered 408 and closed after the body read timeout (1 s).
    let mut slow_body = TcpStream::connect(server.addr()).await.unwrap();
    slow_body
        .write_all(
            b"POST /api/v2/alerts HTTP/1.1\r\nHost: alertpub\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"labels\":",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow_body, Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "got: {answer}");
    assert!(answer.contains("body_timeout"), "got: {answer}");
    assert_still_serving(&http, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        crate::server_lines(&base_config(), "  max_connections: 2\n")
            .replace("header_read_timeout: 1s", "header_read_timeout: 30s"),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    // Two idle connections take both slots (the accept queue is first in, first out).
    let first = TcpStream::connect(server.addr()).await.unwrap();
    let second = TcpStream::connect(server.addr()).await.unwrap();
    let mut third = TcpStream::connect(server.addr()).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: alertpub\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut third, Duration::from_secs(15)).await;
    assert!(
        answer.is_empty(),
        "the third connection was served: {answer}"
    );
    // Once the slots are free, the server serves again.
    drop((first, second));
    let http = Http::new();
    let mut served = false;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: alertpub\r\nConnection: close\r\n\r\n")
            .await;
        let answer = read_until_closed(&mut stream, Duration::from_secs(15)).await;
        if answer.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "the server did not serve after the slots were freed"
    );
    assert_still_serving(&http, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_keeps_nothing_of_the_request() {
    let target = test_support::MockTarget::start().await;
    target.respond(test_support::MockResponse::hang());
    let config = format!(
        "{}targets:\n{}",
        base_config().replace(
            "queue:\n",
            "queue:\n  max_jobs: 2\n  max_jobs_per_target: 100\n"
        ),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let alerts = |names: &[&str]| {
        serde_json::Value::Array(
            names
                .iter()
                .map(|n| json!({"labels": {"alertname": n}}))
                .collect(),
        )
    };
    let answer = http
        .post_json(&server.url("/api/v2/alerts"), &alerts(&["A", "B", "C"]))
        .await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error_kind(), "queue_full");
    // Nothing of the refused batch was kept: two alerts still fit.
    let answer = http
        .post_json(&server.url("/api/v2/alerts"), &alerts(&["A", "B"]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["jobs"], 2);
    assert_still_serving(&http, &server).await;
}

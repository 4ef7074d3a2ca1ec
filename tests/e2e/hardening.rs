//! The API can't be turned against its users: a replay reads its filter whatever the body's
//! framing and never replays everything by accident, every refusal has the JSON error shape, the
//! metrics' labels stay bounded, and `protect_reads` covers what exposes alerts.

use alertpub_e2e::{Http, Server, TempDir};
use serde_json::{Value, json};
use test_support::{MockResponse, MockTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::queue::{poll_json, queue_config};
use crate::{base_config, ok_target, server_lines, webhook};

/// Sends `body` as a chunked HTTP/1.1 POST (no `Content-Length`) and returns the status and the
/// body of the answer.
async fn post_chunked(server: &Server, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let (first, second) = body.split_at(body.len() / 2);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        server.addr(),
        first.len(),
        second.len(),
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the replay is answered")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer[9..12].parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    // The answer itself may be chunked: its JSON lies between the first `{` and the last `}`.
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    (status, serde_json::from_str(json).unwrap())
}

fn targets_of(dlq: &Value) -> Vec<String> {
    let mut targets: Vec<String> = dlq["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    targets.sort();
    targets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_replay_is_filtered_and_replaying_everything_needs_all_true() {
    let first = MockTarget::start().await;
    let second = MockTarget::start().await;
    for target in [&first, &second] {
        target.respond(MockResponse::status(400).body("rejected"));
    }
    let config = format!(
        "{}targets:\n{}{}",
        queue_config(""),
        webhook("first", &first, ""),
        webhook("second", &second, ""),
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let alerts = json!([{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}}]);
    let answer = http.post_json(&server.url("/api/v2/alerts"), &alerts).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    poll_json(&http, &server.url("/api/v1/dlq"), |dlq| {
        dlq["entries"].as_array().is_some_and(|e| e.len() == 4)
    })
    .await;

    // The filter comes in a chunked body: only `second`'s entries are replayed.
    let (status, answer) =
        post_chunked(&server, "/api/v1/dlq/replay", r#"{"target":"second"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["replayed"], 2, "{answer}");
    let left = poll_json(&http, &server.url("/api/v1/dlq"), |dlq| {
        dlq["entries"].as_array().is_some_and(|e| e.len() == 4)
            && targets_of(dlq) == ["first", "first", "second", "second"]
    })
    .await;
    assert_eq!(targets_of(&left), ["first", "first", "second", "second"]);

    // No filter at all, in any framing, is refused; nothing is replayed.
    for answer in [
        http.send("POST", &server.url("/api/v1/dlq/replay"), None, "")
            .await,
        http.post_json(&server.url("/api/v1/dlq/replay"), &json!({}))
            .await,
    ] {
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert_eq!(answer.error_kind(), "unfiltered_replay");
    }
    let (status, answer) = post_chunked(&server, "/api/v1/dlq/replay", "{}").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["kind"], "unfiltered_replay");
    // Both a query and a body: ambiguous, refused.
    let answer = http
        .post_json(
            &server.url("/api/v1/dlq/replay?target=first"),
            &json!({"target": "second"}),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.error_kind(), "invalid_query");
    let count = |dlq: &Value| dlq["entries"].as_array().map_or(0, Vec::len);
    assert_eq!(count(&http.get(&server.url("/api/v1/dlq")).await.json()), 4);

    // `all: true` replays the whole DLQ.
    let answer = http
        .post_json(&server.url("/api/v1/dlq/replay"), &json!({"all": true}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["replayed"], 4, "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_the_error_shape_and_method_labels_stay_bounded() {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        base_config(),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    for query in ["limit=many", "since=yesterday", "unknown=1"] {
        let answer = http.get(&server.url(&format!("/api/v1/dlq?{query}"))).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        assert_eq!(
            answer.error_kind(),
            "invalid_query",
            "{query}: {}",
            answer.text
        );
    }
    // A path segment that is not UTF-8 once percent-decoded.
    let answer = http.get(&server.url("/api/v1/targets/%FF%FE")).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.error_kind(), "invalid_path", "{}", answer.text);

    // Any token is a valid HTTP method; each must not become a series of its own.
    for method in ["BREW", "PROPFIND", "X-CUSTOM-1"] {
        let answer = http.send(method, &server.url("/healthz"), None, "").await;
        assert_eq!(answer.status, 405, "{}", answer.text);
    }
    let metrics = http.get(&server.url("/metrics")).await.text;
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    for method in ["BREW", "PROPFIND", "X-CUSTOM-1"] {
        assert!(!metrics.contains(method), "{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protect_reads_covers_targets_queue_and_dlq() {
    const TOKEN: &str = "reader-token-61b0";
    let target = ok_target().await;
    let dir = TempDir::new();
    std::fs::write(dir.path().join("tokens.txt"), format!("{TOKEN}\n")).unwrap();
    let config = format!(
        "{}targets:\n{}",
        server_lines(
            &base_config(),
            "  auth: { bearer_tokens_file: tokens.txt, protect_reads: true }\n"
        ),
        webhook("hook", &target, "")
    );
    let server = Server::start_in(dir, &config).await;
    let anonymous = Http::new();
    let reader = anonymous.with_token(TOKEN);
    for path in [
        "/api/v1/targets",
        "/api/v1/targets/hook",
        "/api/v1/targets/hook/health",
        "/api/v1/queue",
        "/api/v1/dlq",
        "/api/v1/publish/parallel/status",
    ] {
        let answer = anonymous.get(&server.url(path)).await;
        assert_eq!(answer.status, 401, "{path}: {}", answer.text);
        assert_eq!(answer.error_kind(), "unauthorized");
        assert_eq!(reader.get(&server.url(path)).await.status, 200, "{path}");
    }
    // Probes and scrapes stay open, and ingest follows protect_ingest alone.
    for path in ["/healthz", "/readyz", "/metrics", "/api/v2/status"] {
        assert_eq!(anonymous.get(&server.url(path)).await.status, 200, "{path}");
    }
    let answer = anonymous
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Open"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

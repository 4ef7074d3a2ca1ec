//! Memory and connections are bounded against hostile senders: the alert count is checked while
//! a body is parsed, the bodies being read share one byte budget, an `endsAt` far ahead is
//! brought back, and connections are capped per peer and closed when idle, HTTP/2 included.

use std::time::Duration;

use alertpub_e2e::{Http, Server};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::interop::metric;
use crate::{base_config, ok_target, read_to_close, server_lines, webhook};

async fn one_target_server(server_settings: &str) -> (test_support::MockTarget, Server) {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        server_lines(&base_config(), server_settings),
        webhook("hook", &target, "")
    );
    (target, Server::start(&config).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_count_is_checked_while_the_body_is_parsed() {
    let (target, server) = one_target_server("").await;
    // Six alerts (the limit is five), then bytes that are not JSON: the read stops at the sixth.
    let body = r#"[{"labels":{"a":"1"}},{"labels":{"a":"2"}},{"labels":{"a":"3"}},
        {"labels":{"a":"4"}},{"labels":{"a":"5"}},{"labels":{"a":"6"}}, this is not JSON"#;
    let http = Http::new();
    for path in ["/api/v2/alerts", "/api/v1/alerts/alertmanager"] {
        let body = if path.ends_with("alertmanager") {
            format!(r#"{{"version":"4","alerts":{body}"#)
        } else {
            body.to_owned()
        };
        let answer = http
            .send("POST", &server.url(path), Some("application/json"), body)
            .await;
        assert_eq!(answer.status, 413, "{path}: {}", answer.text);
        assert_eq!(answer.error_kind(), "too_many_alerts", "{path}");
    }
    assert!(crate::posts(&target).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_far_ahead_is_brought_back_and_counted() {
    let (_target, server) = one_target_server("").await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Forever"}, "endsAt": "9999-12-31T23:59:59Z"}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        metric(&server, "alertpub_ingest_ends_at_capped_total", &[]).await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_being_read_share_one_byte_budget() {
    // The budget holds one 64 KiB body; a slow sender holds 48 KiB of it.
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        server_lines(&base_config(), "  max_body_bytes_in_flight: 65536\n")
            .replace("body_read_timeout: 1s", "body_read_timeout: 60s"),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /api/v2/alerts HTTP/1.1\r\nHost: alertpub\r\nContent-Type: application/json\r\n\
         Content-Length: 60000\r\n\r\n{}",
        " ".repeat(48 * 1024)
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // Once the server holds the slow body's bytes (the gauge says so), a second body of 20 KiB
    // can't get its share before its read timeout.
    let http = Http::new();
    let mut held = 0.0;
    for _ in 0..200 {
        held = metric(&server, "alertpub_http_body_bytes_in_flight", &[]).await;
        if held >= 49152.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held, 49152.0, "the slow body's bytes are held");
    let alerts = json!([{"labels": {"alertname": "Busy"}, "annotations": {
        "a": "x".repeat(10 * 1024), "b": "x".repeat(10 * 1024)}}]);
    let answer = http.post_json(&server.url("/api/v2/alerts"), &alerts).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error_kind(), "server_busy");
    // The slow sender goes away and its share comes back; the next request goes through.
    drop(slow);
    for _ in 0..200 {
        if metric(&server, "alertpub_http_body_bytes_in_flight", &[]).await == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = http.post_json(&server.url("/api/v2/alerts"), &alerts).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_gets_at_most_its_share_of_connections() {
    let (_target, server) = one_target_server("  max_connections_per_peer: 2\n").await;
    let first = TcpStream::connect(server.addr()).await.unwrap();
    let second = TcpStream::connect(server.addr()).await.unwrap();
    let mut third = TcpStream::connect(server.addr()).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: alertpub\r\n\r\n")
        .await;
    let (answer, closed) = read_to_close(&mut third, Duration::from_secs(15)).await;
    assert!(
        closed && answer.is_empty(),
        "the third connection was served"
    );
    drop((first, second));
    // The freed slots are taken again, once the server has seen the two connections close
    // (it learns that on its own time: a connection it still counts is refused meanwhile).
    let mut served = String::new();
    for _ in 0..100 {
        let mut again = TcpStream::connect(server.addr()).await.unwrap();
        let _ = again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: alertpub\r\nConnection: close\r\n\r\n")
            .await;
        let (answer, _) = read_to_close(&mut again, Duration::from_secs(15)).await;
        served = String::from_utf8_lossy(&answer).into_owned();
        if !answer.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served.starts_with("HTTP/1.1 200"),
        "the freed slots were not taken again: {served:?}"
    );
}

/// HTTP/2 with prior knowledge, by hand: the server's SETTINGS name the stream cap, and an idle
/// connection is closed (GOAWAY, then the socket) once `idle_timeout` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_are_capped_and_idle_connections_closed() {
    let (_target, server) =
        one_target_server("  http2_max_concurrent_streams: 16\n  idle_timeout: 1s\n").await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (received, closed) = read_to_close(&mut stream, Duration::from_secs(15)).await;
    assert!(closed, "an idle HTTP/2 connection stayed open");
    // The first frame is the server's SETTINGS: 9 bytes of header, then 6-byte entries.
    assert!(received.len() >= 9 && received[3] == 0x4, "{received:?}");
    let length =
        usize::from(received[0]) << 16 | usize::from(received[1]) << 8 | usize::from(received[2]);
    let settings = &received[9..9 + length];
    let max_streams = settings.chunks(6).find_map(|entry| {
        (u16::from_be_bytes([entry[0], entry[1]]) == 0x3)
            .then(|| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
    });
    assert_eq!(max_streams, Some(16));
    // A GOAWAY (type 7) came before the close.
    assert!(
        received
            .windows(4)
            .any(|w| w[3] == 0x7 && w[0] == 0 && w[1] == 0),
        "{received:?}"
    );
}

/// `ingest.max_active_alerts` bounds the notification log: a request that would take it past
/// the cap is refused whole with 503 `too_many_active_alerts` and counted, nothing of it is
/// delivered, and re-sends of alerts already held are still accepted at the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_alerts_are_capped_and_re_sends_still_accepted() {
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        base_config().replace(
            "  resolve_timeout: 5m\n",
            "  resolve_timeout: 5m\n  max_active_alerts: 3\n"
        ),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let post = async |names: &[&str]| {
        let alerts: Vec<_> = names
            .iter()
            .map(|n| json!({"labels": {"alertname": n}, "startsAt": "2026-01-01T00:00:00Z"}))
            .collect();
        http.post_json(&server.url("/api/v2/alerts"), &json!(alerts))
            .await
    };
    let first = post(&["CapA", "CapB"]).await;
    assert_eq!(first.status, 200, "{}", first.text);
    crate::wait_for_posts(&target, 2).await;
    let over = post(&["CapC", "CapD"]).await;
    assert_eq!(over.status, 503, "{}", over.text);
    assert_eq!(over.error_kind(), "too_many_active_alerts");
    assert_eq!(
        metric(&server, "alertpub_ingest_too_many_active_alerts_total", &[]).await,
        1.0
    );
    let resend = post(&["CapA", "CapB"]).await;
    assert_eq!(resend.status, 200, "re-sends add no entry: {}", resend.text);
    let third = post(&["CapA", "CapC"]).await;
    assert_eq!(third.status, 200, "the third entry fits: {}", third.text);
    let fourth = post(&["CapD"]).await;
    assert_eq!(fourth.status, 503, "{}", fourth.text);
    crate::wait_for_posts(&target, 3).await;
    let names: Vec<String> = crate::posts(&target)
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        names.iter().all(|body| !body.contains("CapD")),
        "nothing of a refused request is delivered: {names:?}"
    );
}

/// `queue.max_jobs_per_target`: a target that keeps failing fills only its own quota. A request
/// whose deliveries to it would pass the quota is answered 503 `target_queue_full` naming it,
/// while the other target's deliveries of the same request are committed and delivered, and a
/// re-send is a duplicate for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_target_refuses_its_own_deliveries_alone() {
    let good = ok_target().await;
    let dead = test_support::MockTarget::start().await;
    dead.respond(test_support::MockResponse::status(503));
    let config = format!(
        "{}targets:\n{}{}",
        base_config().replace("queue:\n", "queue:\n  max_jobs_per_target: 3\n"),
        webhook("good", &good, ""),
        webhook("dead", &dead, "")
    );
    let server = Server::start(&config).await;
    let http = Http::new();
    let alerts = |names: &[&str]| {
        json!(
            names
                .iter()
                .map(|n| json!({"labels": {"alertname": n}}))
                .collect::<Vec<_>>()
        )
    };
    let first = http
        .post_json(&server.url("/api/v2/alerts"), &alerts(&["QA", "QB", "QC"]))
        .await;
    assert_eq!(first.status, 200, "three fit each quota: {}", first.text);
    crate::wait_for_posts(&good, 3).await;
    // The good target's jobs are acked; the dead target's three stay, retrying.
    let queue = crate::queue::poll_json(&http, &server.url("/api/v1/queue"), |queue| {
        let line = |name: &str| {
            queue["targets"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["target"] == name).cloned())
        };
        let good_live = line("good").map_or(0, |l| {
            l["pending"].as_u64().unwrap_or(0) + l["leased"].as_u64().unwrap_or(0)
        });
        good_live == 0 && line("dead").is_some()
    })
    .await;
    assert_eq!(queue["depth"], 3, "{queue}");

    let second = alerts(&["QD", "QE"]);
    let answer = http.post_json(&server.url("/api/v2/alerts"), &second).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error_kind(), "target_queue_full");
    let body: serde_json::Value = serde_json::from_str(&answer.text).unwrap();
    assert_eq!(body["targets"], json!(["dead"]), "{body}");
    assert_eq!(body["refused"], json!(2), "{body}");
    assert_eq!(
        body["jobs"],
        json!(2),
        "the good target's are committed: {body}"
    );
    crate::wait_for_posts(&good, 5).await;
    assert_eq!(
        metric(
            &server,
            "alertpub_queue_target_full_total",
            &[("target", "dead")]
        )
        .await,
        2.0
    );
    let again = http.post_json(&server.url("/api/v2/alerts"), &second).await;
    assert_eq!(again.status, 503, "{}", again.text);
    let body: serde_json::Value = serde_json::from_str(&again.text).unwrap();
    assert_eq!(
        body["jobs"],
        json!(0),
        "a re-send is a duplicate for the good target: {body}"
    );
    assert_eq!(crate::posts(&good).len(), 5, "no repeat to the good target");
}

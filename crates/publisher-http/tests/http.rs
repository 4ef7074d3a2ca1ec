//! The shared HTTP stack against real mock targets on 127.0.0.1, with real time and short
//! timeouts: classification, limits, HTTPS and redaction.

use std::time::{Duration, SystemTime};

use alert_core::{ErrorKind, PermanentReason, PublishError, Secret};
use publisher_http::{ClientConfig, DefaultClassifier, HttpClient, HttpRequest, RequestTemplate};
use test_support::{MockResponse, MockTarget, closed_port_url};

fn client() -> HttpClient {
    HttpClient::new(&ClientConfig::default().with_timeout(Duration::from_secs(5))).unwrap()
}

async fn send_to(target: &MockTarget) -> Result<publisher_http::HttpResponse, PublishError> {
    let request = HttpRequest::post(&target.url("/hook"))
        .unwrap()
        .json(b"{}".to_vec());
    client().send(request, &DefaultClassifier).await
}

#[tokio::test]
async fn success_statuses() {
    let target = MockTarget::start().await;
    for status in [200, 202, 204] {
        target.respond(MockResponse::status(status).body("ok"));
        let response = send_to(&target).await.unwrap();
        assert_eq!(response.status.as_u16(), status);
    }
    let requests = target.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/hook");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let target = MockTarget::start().await;
    let permanent = |reason| ErrorKind::Permanent { reason };
    let cases = [
        (400, permanent(PermanentReason::BadRequest)),
        (401, permanent(PermanentReason::Auth)),
        (403, permanent(PermanentReason::Auth)),
        (404, permanent(PermanentReason::NotFound)),
        (410, permanent(PermanentReason::NotFound)),
        (413, permanent(PermanentReason::Payload)),
        (422, permanent(PermanentReason::BadRequest)),
        (408, ErrorKind::Transient),
        (500, ErrorKind::Transient),
        (502, ErrorKind::Transient),
        (503, ErrorKind::Transient),
        (301, permanent(PermanentReason::Config)),
        (429, ErrorKind::RateLimited { retry_after: None }),
    ];
    for (status, kind) in cases {
        target.respond(MockResponse::status(status).body("nope"));
        let err = send_to(&target).await.unwrap_err();
        assert_eq!(err.kind, kind, "HTTP {status}");
        assert_eq!(err.status_code, Some(status));
        assert!(err.message.contains(&status.to_string()), "{err}");
    }
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(429).header("retry-after", "7"));
    let err = send_to(&target).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );

    let at = SystemTime::now() + Duration::from_secs(120);
    target.respond(MockResponse::status(429).header("retry-after", &httpdate::fmt_http_date(at)));
    let err = send_to(&target).await.unwrap_err();
    let ErrorKind::RateLimited {
        retry_after: Some(after),
    } = err.kind
    else {
        panic!("{err:?}")
    };
    // An HTTP date has whole-second precision, and a moment passes between formatting and parsing.
    assert!(
        after > Duration::from_secs(115) && after <= Duration::from_secs(120),
        "{after:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let request = HttpRequest::post(&format!("{}/hook", closed_port_url())).unwrap();
    let err = client()
        .send(request, &DefaultClassifier)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert_eq!(err.status_code, None);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::hang());
    let client =
        HttpClient::new(&ClientConfig::default().with_timeout(Duration::from_millis(300))).unwrap();
    let request = HttpRequest::post(&target.url("/hook")).unwrap();
    let err = client.send(request, &DefaultClassifier).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert_eq!(target.requests().len(), 1, "the request did arrive");
}

/// The client has no deadline of its own unless one is set: the caller's per-attempt timeout
/// (each target's `timeout`, applied by `TargetCall`) is the only one, so a slow target set to a
/// long timeout is not cut short by the client.
#[tokio::test]
async fn the_default_client_waits_for_a_slow_target_as_long_as_its_caller_does() {
    assert_eq!(ClientConfig::default().timeout, None);
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(200).delay(Duration::from_millis(700)));
    let patient = HttpClient::new(&ClientConfig::default()).unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(30),
        patient.send(
            HttpRequest::post(&target.url("/hook")).unwrap(),
            &DefaultClassifier,
        ),
    )
    .await
    .expect("the caller's deadline is far off");
    assert_eq!(answered.unwrap().status.as_u16(), 200);
    // A deadline of the client's own still applies when one is set.
    let hasty =
        HttpClient::new(&ClientConfig::default().with_timeout(Duration::from_millis(100))).unwrap();
    let err = hasty
        .send(
            HttpRequest::post(&target.url("/hook")).unwrap(),
            &DefaultClassifier,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
}

#[tokio::test]
async fn a_response_over_the_limit_fails() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(200).body(vec![b'x'; 4096]));
    let client = HttpClient::new(&ClientConfig::default().with_max_response_bytes(1024)).unwrap();
    let err = client
        .send(
            HttpRequest::post(&target.url("/")).unwrap(),
            &DefaultClassifier,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(err.message.contains("1024-byte limit"), "{err}");
    // At the limit exactly, it is read.
    target.respond(MockResponse::status(200).body(vec![b'x'; 1024]));
    let ok = client
        .send(
            HttpRequest::post(&target.url("/")).unwrap(),
            &DefaultClassifier,
        )
        .await
        .unwrap();
    assert_eq!(ok.body.len(), 1024);
}

#[tokio::test]
async fn https_with_a_certificate_trusted_through_configuration() {
    let target = MockTarget::start_tls().await;
    target.respond(MockResponse::status(202).body("accepted"));
    let pem = target.ca_pem().unwrap().to_owned();

    // Without the certificate, the handshake fails.
    let untrusted = HttpClient::new(&ClientConfig::default()).unwrap();
    let err = untrusted
        .send(
            HttpRequest::post(&target.url("/tls")).unwrap(),
            &DefaultClassifier,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(target.requests().is_empty());

    let trusted = HttpClient::new(&ClientConfig::default().with_extra_root_pem(pem)).unwrap();
    let response = trusted
        .send(
            HttpRequest::post(&target.url("/tls")).unwrap(),
            &DefaultClassifier,
        )
        .await
        .unwrap();
    assert_eq!(response.status.as_u16(), 202);
    assert_eq!(target.requests()[0].path, "/tls");
    assert!(HttpClient::new(&ClientConfig::default().with_extra_root_pem("not a pem")).is_err());
}

#[tokio::test]
async fn secrets_never_reach_errors_or_debug() {
    const TOKEN: &str = "xoxb-SUPER-SECRET-TOKEN-123";
    let target = MockTarget::start().await;
    // A hostile target that echoes the token back in its error body.
    target.respond(MockResponse::status(401).body(format!("bad token {TOKEN}")));
    let secret_url = Secret::new(target.url(&format!("/services/T0/B0/{TOKEN}")));
    let request = HttpRequest::secret_url(http::Method::POST, &secret_url)
        .unwrap()
        .bearer(&Secret::new(TOKEN.to_owned()))
        .unwrap()
        .secret_header("x-api-key", &Secret::new(TOKEN.to_owned()))
        .unwrap();
    let debug = format!("{request:?}");
    assert!(
        !debug.contains(TOKEN) && !debug.contains("/services"),
        "{debug}"
    );
    let err = client()
        .send(request, &DefaultClassifier)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Auth
        }
    );
    for text in [
        err.to_string(),
        format!("{err:?}"),
        serde_json::to_string(&err).unwrap(),
    ] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("/services"), "{text}");
        assert!(
            text.contains(&format!("http://{}/…", target.addr())),
            "{text}"
        );
    }
    // The token did reach the target, where it belongs.
    assert_eq!(
        target.requests()[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );

    // A refused connection to a secret URL is redacted too.
    let refused = Secret::new(format!("{}/services/{TOKEN}", closed_port_url()));
    let err = client()
        .send(
            HttpRequest::secret_url(http::Method::POST, &refused).unwrap(),
            &DefaultClassifier,
        )
        .await
        .unwrap_err();
    assert!(!err.to_string().contains(TOKEN), "{err}");
    // Invalid URLs never echo their path.
    let err = HttpRequest::post(&format!("ftp://host/{TOKEN}")).unwrap_err();
    assert!(!err.to_string().contains(TOKEN), "{err}");
}

/// A target keeps a [`RequestTemplate`], not its request: each request made from it carries the
/// template's headers, and its errors are scrubbed of the secret URL's parts (worked out from the
/// parsed URL when the error comes, no longer kept as text) and of the header secrets.
#[tokio::test]
async fn requests_from_a_template_carry_its_headers_and_scrub_its_secrets() {
    const TOKEN: &str = "T0KEN-IN-THE-PATH-0123456789";
    const KEY: &str = "api-key-value-987654321";
    let target = MockTarget::start().await;
    // Echoes the path's token alone, and the header's key.
    target.respond(MockResponse::status(500).body(format!("no hook {TOKEN} for key {KEY}")));
    let url = Secret::new(target.url(&format!("/hooks/{TOKEN}?sig={TOKEN}")));
    let with_header = RequestTemplate::new(
        HttpRequest::secret_url(http::Method::PUT, &url)
            .unwrap()
            .secret_header("X-Api-Key", &Secret::new(KEY.to_owned()))
            .unwrap(),
    );
    let bare = RequestTemplate::new(HttpRequest::secret_url(http::Method::POST, &url).unwrap());
    assert_eq!(bare.url().expose(), url.expose());
    assert_eq!(
        with_header
            .header(&http::HeaderName::from_static("x-api-key"))
            .map(|v| v.as_bytes()),
        Some(KEY.as_bytes())
    );
    for (template, scrubs_key) in [(&with_header, true), (&with_header, true), (&bare, false)] {
        let request = template.request().json(b"{}".to_vec());
        let debug = format!("{request:?} {template:?}");
        assert!(
            !debug.contains(TOKEN) && !debug.contains("/hooks"),
            "{debug}"
        );
        let err = client()
            .send(request, &DefaultClassifier)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains(TOKEN), "{text}");
        // The bare template knows no key: what it was not given, it cannot scrub.
        assert_eq!(text.contains(KEY), !scrubs_key, "{text}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(
            text.contains(&format!("http://{}/…", target.addr())),
            "{text}"
        );
    }
    let requests = target.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[1].header("x-api-key"), Some(KEY));
    assert_eq!(requests[2].method, "POST");
    assert_eq!(requests[2].header("x-api-key"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_host_never_exceed_the_cap() {
    let target = MockTarget::start().await;
    target.respond(MockResponse::status(200).delay(std::time::Duration::from_millis(50)));
    let client =
        HttpClient::new(&ClientConfig::default().with_max_connections_per_host(4)).unwrap();
    let url = target.url("/hook");
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (client, url) = (client.clone(), url.clone());
        sends.spawn(async move {
            client
                .send(
                    HttpRequest::post(&url).unwrap().json("{}"),
                    &DefaultClassifier,
                )
                .await
        });
    }
    while let Some(sent) = sends.join_next().await {
        assert_eq!(sent.unwrap().unwrap().status.as_u16(), 200);
    }
    assert_eq!(target.requests().len(), 40);
    // Forty concurrent requests, at most four connections ever: the rest waited for a free one.
    assert!(
        (1..=4).contains(&target.connections()),
        "{} connections",
        target.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_holds_only_its_own_connections() {
    // One loopback host for both targets, as hooks.slack.com or the PagerDuty events API is for
    // every target of its kind. Its first two requests are never answered; the rest get a 200.
    let host = MockTarget::start().await;
    host.enqueue(MockResponse::hang());
    host.enqueue(MockResponse::hang());
    let shared =
        HttpClient::new(&ClientConfig::default().with_max_connections_per_host(2)).unwrap();
    let refs = std::sync::Arc::new(alert_core::InMemoryMessageRefs::new());
    let context = |name: &str| {
        publisher_http::BuildContext::new(
            alert_core::TargetName::new(name).unwrap(),
            shared.clone(),
            refs.clone(),
        )
    };
    let (stuck, healthy) = (context("stuck"), context("healthy"));

    // The stuck target fills its cap of two connections, and a third request of its own waits.
    let mut hanging = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (client, url) = (stuck.client.clone(), host.url("/stuck"));
        hanging.spawn(async move {
            let request = HttpRequest::post(&url).unwrap().json("{}");
            client.send(request, &DefaultClassifier).await
        });
    }
    host.wait_for_requests(2, Duration::from_secs(5)).await;

    // The other target on the same host still gets a connection, at once.
    let request = HttpRequest::post(&host.url("/healthy")).unwrap().json("{}");
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        healthy.client.send(request, &DefaultClassifier),
    )
    .await
    .expect("the healthy target is not kept waiting by the stuck one's connections")
    .unwrap();
    assert_eq!(answer.status.as_u16(), 200);
    let paths: Vec<String> = host.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/stuck", "/stuck", "/healthy"],
        "the stuck target's third request waits for its own cap"
    );
    hanging.abort_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_on_one_host_share_the_pools_connections() {
    // Three targets of one host, one after the other: each finds a connection another left idle,
    // since the pool is shared and only the claims are the targets' own. With a pool per target
    // there would be three connections. hyper hands a finished connection back to the pool a
    // moment after the answer is read, so a request can miss it and open a second; then the
    // next finds one of the two idle, so sequential requests never need a third.
    let host = MockTarget::start().await;
    let shared = HttpClient::new(&ClientConfig::default()).unwrap();
    let refs = std::sync::Arc::new(alert_core::InMemoryMessageRefs::new());
    for name in ["first", "second", "third", "first", "second", "third"] {
        let context = publisher_http::BuildContext::new(
            alert_core::TargetName::new(name).unwrap(),
            shared.clone(),
            refs.clone(),
        )
        .with_in_flight(4);
        let request = HttpRequest::post(&host.url("/hook")).unwrap().json("{}");
        let answer = context
            .client
            .send(request, &DefaultClassifier)
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 200);
    }
    assert_eq!(host.requests().len(), 6);
    let connections = host.connections();
    assert!(
        (1..=2).contains(&connections),
        "{connections} connections for three targets of one host"
    );
}

//! The prober against real servers on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alert_core::{ErrorKind, HealthStatus, HealthView, PermanentReason};
use health::{DegradedReason, HealthError};
use test_support::{MockResponse, MockTarget, closed_port_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    HttpPublisher, Spec, client, eventually, fast_config, fixture, probe, while_running,
};

const TOKEN: &str = "hunter2-probe-token";
const PATH_SECRET: &str = "p4th-s3cret";

#[tokio::test]
async fn a_reachable_target_is_healthy_and_gets_the_probe_headers() {
    let mock = MockTarget::start().await;
    let client = client(None);
    let url = mock.url(&format!("/health?key={PATH_SECRET}"));
    let publisher = HttpPublisher::new(&client, &mock.url("/hook"), Some(probe(&url, Some(TOKEN))));
    let fx = fixture(
        fast_config(),
        &client,
        vec![Spec::enabled("ops", publisher)],
    );

    let health = fx.prober.check_now("ops").await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
    assert_eq!(health.degraded_reason, None);
    assert_eq!(health.consecutive_failures, 0);
    assert!(health.last_success_at.is_some());
    assert!(health.last_probe_at.is_some());
    assert!(health.last_latency.is_some());
    assert_eq!(health.success_rate, Some(1.0));
    assert_eq!(fx.registry.get("ops"), Some(health));

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, format!("/health?key={PATH_SECRET}"));
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn any_http_answer_counts_as_reachable() {
    let mock = MockTarget::start().await;
    let client = client(None);
    // SaaS endpoints answer GET with 405 or 4xx; a server error is still an answer. A 401 to a
    // probe without credentials says nothing about ours.
    for status in [405, 404, 400, 401, 503] {
        mock.respond(MockResponse::status(status));
        let publisher =
            HttpPublisher::new(&client, &mock.url("/"), Some(probe(&mock.url("/"), None)));
        let fx = fixture(
            fast_config(),
            &client,
            vec![Spec::enabled("saas", publisher)],
        );
        let health = fx.prober.check_now("saas").await.unwrap();
        assert_eq!(health.status, HealthStatus::Healthy, "HTTP {status}");
        assert_eq!(health.consecutive_failures, 0, "HTTP {status}");
    }
}

#[tokio::test]
async fn an_oversized_answer_still_counts_as_reachable() {
    let mock = MockTarget::start().await;
    mock.respond(MockResponse::status(200).body(vec![b'x'; 512 * 1024]));
    let client = client(None);
    let publisher = HttpPublisher::new(&client, &mock.url("/"), Some(probe(&mock.url("/"), None)));
    let fx = fixture(
        fast_config(),
        &client,
        vec![Spec::enabled("big", publisher)],
    );
    let health = fx.prober.check_now("big").await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn a_closed_port_is_a_failure() {
    let client = client(None);
    let url = format!("{}/hooks/{PATH_SECRET}", closed_port_url());
    let publisher = HttpPublisher::new(&client, &url, Some(probe(&url, Some(TOKEN))));
    let fx = fixture(
        fast_config(),
        &client,
        vec![Spec::enabled("gone", publisher)],
    );

    let health = fx.prober.check_now("gone").await.unwrap();
    assert_eq!(
        health.status,
        HealthStatus::Unknown,
        "one failure is not yet unhealthy"
    );
    assert_eq!(health.consecutive_failures, 1);
    assert_eq!(health.success_rate, Some(0.0));
    let failure = health.last_failure.expect("the failure is recorded");
    assert_eq!(failure.error.kind, ErrorKind::Transient);
    assert_eq!(failure.error.status_code, None);
    assert!(
        failure.error.message.contains("GET http://127.0.0.1:"),
        "{}",
        failure.error.message
    );
    assert!(!failure.error.message.contains(PATH_SECRET));
}

#[tokio::test]
async fn a_server_that_never_answers_fails_by_timeout() {
    let mock = MockTarget::start().await;
    mock.respond(MockResponse::hang());
    let client = client(None);
    let url = mock.url(&format!("/{PATH_SECRET}"));
    let publisher = HttpPublisher::new(&client, &url, Some(probe(&url, None)));
    let config = fast_config().with_timeout(Duration::from_millis(200));
    let fx = fixture(config, &client, vec![Spec::enabled("stuck", publisher)]);

    let health = fx.prober.check_now("stuck").await.unwrap();
    assert_eq!(health.consecutive_failures, 1);
    let failure = health.last_failure.expect("the failure is recorded");
    assert_eq!(failure.error.kind, ErrorKind::Timeout);
    assert!(failure.error.message.contains("no answer within 200 ms"));
    assert!(!failure.error.message.contains(PATH_SECRET));
    // The server did get the request: it accepted it and never answered.
    mock.wait_for_requests(1, crate::support::DEADLINE).await;
}

#[tokio::test]
async fn refused_credentials_degrade_with_reason_auth() {
    let mock = MockTarget::start().await;
    let client = client(None);
    for status in [401, 403] {
        mock.respond(MockResponse::status(status));
        let publisher = HttpPublisher::new(
            &client,
            &mock.url("/"),
            Some(probe(&mock.url("/api"), Some(TOKEN))),
        );
        let fx = fixture(
            fast_config(),
            &client,
            vec![Spec::enabled("keyed", publisher)],
        );
        let health = fx.prober.check_now("keyed").await.unwrap();
        assert_eq!(health.status, HealthStatus::Degraded, "HTTP {status}");
        assert_eq!(health.degraded_reason, Some(DegradedReason::Auth));
        let failure = health
            .last_failure
            .expect("the refusal is the last failure");
        assert_eq!(
            failure.error.kind,
            ErrorKind::Permanent {
                reason: PermanentReason::Auth
            }
        );
        assert_eq!(failure.error.status_code, Some(status));
        assert!(!failure.error.message.contains(TOKEN));
    }
}

/// A probe's body check, as a publisher writes one: the answer names an error that means the
/// credentials are bad.
fn says_invalid_auth(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|reply| reply["ok"] == false && reply["error"] == "invalid_auth")
}

#[tokio::test]
async fn a_body_that_refuses_the_credentials_degrades_with_reason_auth() {
    let mock = MockTarget::start().await;
    let client = client(None);
    let refused =
        MockResponse::status(200).json(&serde_json::json!({"ok": false, "error": "invalid_auth"}));
    let checked =
        probe(&mock.url("/api/auth.test"), Some(TOKEN)).with_auth_refused(says_invalid_auth);
    let fx = fixture(
        fast_config(),
        &client,
        vec![
            Spec::enabled(
                "checked",
                HttpPublisher::new(&client, &mock.url("/"), Some(checked)),
            ),
            // The same answer to a probe without the check is only an answer: reachable.
            Spec::enabled(
                "unchecked",
                HttpPublisher::new(
                    &client,
                    &mock.url("/"),
                    Some(probe(&mock.url("/api/auth.test"), Some(TOKEN))),
                ),
            ),
        ],
    );

    mock.respond(refused);
    let health = fx.prober.check_now("checked").await.unwrap();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert_eq!(health.degraded_reason, Some(DegradedReason::Auth));
    let failure = health
        .last_failure
        .expect("the refusal is the last failure");
    assert_eq!(
        failure.error.kind,
        ErrorKind::Permanent {
            reason: PermanentReason::Auth
        }
    );
    assert_eq!(failure.error.status_code, Some(200));
    assert!(!failure.error.message.contains(TOKEN));
    assert_eq!(
        fx.prober.check_now("unchecked").await.unwrap().status,
        HealthStatus::Healthy
    );

    // A body the check does not read as refused is a healthy answer, and heals the target.
    mock.respond(MockResponse::status(200).json(&serde_json::json!({"ok": true})));
    let health = fx.prober.check_now("checked").await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
    assert_eq!(health.degraded_reason, None);

    // A body too large to read is not checked: the target answered, so it is reachable.
    mock.respond(MockResponse::status(200).body(vec![b'x'; 512 * 1024]));
    assert_eq!(
        fx.prober.check_now("checked").await.unwrap().status,
        HealthStatus::Healthy
    );
}

#[tokio::test]
async fn a_slow_answer_degrades_with_reason_slow() {
    let mock = MockTarget::start().await;
    mock.respond(MockResponse::status(200).delay(Duration::from_millis(300)));
    let client = client(None);
    let publisher = HttpPublisher::new(&client, &mock.url("/"), Some(probe(&mock.url("/"), None)));
    let config = fast_config()
        .with_timeout(Duration::from_secs(5))
        .with_slow_threshold(Duration::from_millis(100));
    let fx = fixture(config, &client, vec![Spec::enabled("sluggish", publisher)]);
    let health = fx.prober.check_now("sluggish").await.unwrap();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert_eq!(health.degraded_reason, Some(DegradedReason::Slow));
    assert!(health.last_latency.unwrap() > Duration::from_millis(100));

    mock.respond(MockResponse::status(200));
    let health = fx.prober.check_now("sluggish").await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn https_targets_are_probed_over_tls_and_a_tls_failure_is_a_failure() {
    let mock = MockTarget::start_tls().await;
    let trusting = client(mock.ca_pem());
    let publisher =
        HttpPublisher::new(&trusting, &mock.url("/"), Some(probe(&mock.url("/"), None)));
    let fx = fixture(
        fast_config(),
        &trusting,
        vec![Spec::enabled("tls", publisher)],
    );
    assert_eq!(
        fx.prober.check_now("tls").await.unwrap().status,
        HealthStatus::Healthy
    );

    // A client that does not trust the self-signed certificate fails the handshake.
    let untrusting = client(None);
    let publisher = HttpPublisher::new(
        &untrusting,
        &mock.url("/"),
        Some(probe(&mock.url("/"), None)),
    );
    let fx = fixture(
        fast_config(),
        &untrusting,
        vec![Spec::enabled("tls", publisher)],
    );
    let health = fx.prober.check_now("tls").await.unwrap();
    assert_eq!(health.consecutive_failures, 1);
    assert_eq!(
        health.last_failure.unwrap().error.kind,
        ErrorKind::Transient
    );
}

#[tokio::test]
async fn periodic_probes_make_a_failing_target_unhealthy_and_a_success_heals_it() {
    let mock = MockTarget::start().await;
    mock.respond(MockResponse::hang());
    let client = client(None);
    let publisher = HttpPublisher::new(&client, &mock.url("/"), Some(probe(&mock.url("/"), None)));
    let config = fast_config().with_timeout(Duration::from_millis(150));
    let fx = fixture(config, &client, vec![Spec::enabled("flaky", publisher)]);

    while_running(&fx.prober, async {
        eventually("three timeouts make the target unhealthy", || {
            fx.registry.status("flaky") == HealthStatus::Unhealthy
        })
        .await;
        let health = fx.registry.get("flaky").unwrap();
        assert!(health.consecutive_failures >= 3);
        assert_eq!(health.last_failure.unwrap().error.kind, ErrorKind::Timeout);

        mock.respond(MockResponse::status(200));
        eventually("a reachable probe heals the target", || {
            fx.registry.status("flaky") == HealthStatus::Healthy
        })
        .await;
        assert_eq!(fx.registry.get("flaky").unwrap().consecutive_failures, 0);
    })
    .await;
}

#[tokio::test]
async fn rounds_probe_only_enabled_targets_that_have_a_probe() {
    let probed = MockTarget::start().await;
    let disabled = MockTarget::start().await;
    let client = client(None);
    let with_probe = |mock: &MockTarget| {
        HttpPublisher::new(&client, &mock.url("/"), Some(probe(&mock.url("/"), None)))
    };
    let fx = fixture(
        fast_config(),
        &client,
        vec![
            Spec::enabled("probed", with_probe(&probed)),
            Spec {
                name: "disabled",
                publisher: with_probe(&disabled),
                enabled: false,
            },
            Spec::enabled(
                "no-probe",
                HttpPublisher::new(&client, &probed.url("/"), None),
            ),
        ],
    );

    while_running(&fx.prober, async {
        // Rounds run one after another, so the second request means the first round, which would
        // have probed every target it considered, is over.
        probed.wait_for_requests(2, crate::support::DEADLINE).await;
    })
    .await;
    assert_eq!(fx.registry.status("probed"), HealthStatus::Healthy);
    assert!(disabled.requests().is_empty());
    assert_eq!(fx.registry.get("disabled"), None);
    assert_eq!(fx.registry.get("no-probe"), None);
    assert!(
        probed.requests().iter().all(|r| r.method == "GET"),
        "the target without a probe was never published to by the prober"
    );
}

#[tokio::test]
async fn manual_checks_name_unknown_unprobeable_and_invalid_targets() {
    let mock = MockTarget::start().await;
    let client = client(None);
    let bad_url = format!("not a url {PATH_SECRET}");
    let fx = fixture(
        fast_config(),
        &client,
        vec![
            Spec::enabled(
                "no-probe",
                HttpPublisher::new(&client, &mock.url("/"), None),
            ),
            Spec::enabled(
                "bad-probe",
                HttpPublisher::new(&client, &mock.url("/"), Some(probe(&bad_url, Some(TOKEN)))),
            ),
        ],
    );
    assert_eq!(
        fx.prober.check_now("nope").await,
        Err(HealthError::UnknownTarget("nope".to_owned()))
    );
    assert_eq!(
        fx.prober.check_now("no-probe").await,
        Err(HealthError::NotProbeable("no-probe".to_owned()))
    );
    let error = fx.prober.check_now("bad-probe").await.unwrap_err();
    assert!(
        matches!(error, HealthError::InvalidProbe { .. }),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(PATH_SECRET), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(mock.requests().is_empty());
    assert_eq!(fx.registry.get("bad-probe"), None);
}

#[tokio::test]
async fn nothing_shows_the_probe_secrets() {
    let mock = MockTarget::start().await;
    mock.respond(MockResponse::status(401).body(format!("bad key {TOKEN}")));
    let client = client(None);
    let url = mock.url(&format!("/v1/{PATH_SECRET}"));
    let gone = format!("{}/v1/{PATH_SECRET}", closed_port_url());
    let fx = fixture(
        fast_config(),
        &client,
        vec![
            Spec::enabled(
                "refused",
                HttpPublisher::new(&client, &url, Some(probe(&url, Some(TOKEN)))),
            ),
            Spec::enabled(
                "gone",
                HttpPublisher::new(&client, &gone, Some(probe(&gone, Some(TOKEN)))),
            ),
        ],
    );
    assert_eq!(fx.prober.probe_all().await, 2);

    let snapshot = fx.registry.snapshot();
    assert_eq!(snapshot.len(), 2);
    let shown = format!(
        "{} {snapshot:?} {:?} {:?}",
        serde_json::to_string(&snapshot).unwrap(),
        fx.prober,
        fx.registry
    );
    for secret in [TOKEN, PATH_SECRET] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

/// A bare HTTP/1.1 server that answers each request after `latency`, counting how many requests
/// it holds at once. It stops counting a request before it starts answering it, so a client that
/// waits for answers can never make it see more requests at once than the client has in flight.
struct CountingServer {
    url: String,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    // Dropping the set aborts the server and its connections.
    _server: tokio::task::JoinSet<()>,
}

impl CountingServer {
    async fn start(latency: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let peak = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let (top, served) = (peak.clone(), total.clone());
        let mut server = tokio::task::JoinSet::new();
        server.spawn(async move {
            let in_flight = Arc::new(AtomicUsize::new(0));
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (count, top, served) = (in_flight.clone(), top.clone(), served.clone());
                connections.spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0_u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let now = count.fetch_add(1, Ordering::SeqCst) + 1;
                    top.fetch_max(now, Ordering::SeqCst);
                    served.fetch_add(1, Ordering::SeqCst);
                    // The server's own latency, not a synchronisation point of the test.
                    tokio::time::sleep(latency).await;
                    count.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url,
            peak,
            total,
            _server: server,
        }
    }
}

#[tokio::test]
async fn probes_never_exceed_max_concurrent_probes() {
    let server = CountingServer::start(Duration::from_millis(100)).await;
    let url = server.url.clone();
    let client = client(None);
    let names = ["t0", "t1", "t2", "t3", "t4", "t5"];
    let config = fast_config()
        .with_timeout(Duration::from_secs(5))
        .with_max_concurrent_probes(2);
    let fx = fixture(
        config,
        &client,
        names
            .iter()
            .map(|name| {
                Spec::enabled(
                    name,
                    HttpPublisher::new(&client, &url, Some(probe(&url, None))),
                )
            })
            .collect(),
    );
    assert_eq!(fx.prober.probe_all().await, names.len());
    assert_eq!(server.total.load(Ordering::SeqCst), names.len());
    let peak = server.peak.load(Ordering::SeqCst);
    assert!((1..=2).contains(&peak), "peak of {peak} probes at once");
    for name in names {
        assert_eq!(fx.registry.status(name), HealthStatus::Healthy);
    }
}

/// Answers every request with 200 and counts them: a target's own connection pool, in the process.
#[derive(Default)]
struct OwnPool {
    requests: AtomicUsize,
}

impl publisher_http::InMemoryHandler for OwnPool {
    fn handle(
        &self,
        _request: http::Request<bytes::Bytes>,
    ) -> alert_core::BoxFuture<'static, http::Response<bytes::Bytes>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(http::Response::new(bytes::Bytes::new())))
    }
}

/// Gives each target's probe, and sends it through the client `own` answers for.
struct OwnClients {
    probe: alert_core::HealthProbe,
    own: publisher_http::HttpClient,
}

impl health::ProbeLookup for OwnClients {
    fn probe_for(&self, _entry: &alert_core::TargetEntry) -> Option<alert_core::HealthProbe> {
        Some(self.probe.clone())
    }

    fn client_for(&self, _entry: &alert_core::TargetEntry) -> Option<publisher_http::HttpClient> {
        Some(self.own.clone())
    }
}

#[tokio::test]
async fn a_probe_goes_through_the_targets_own_client_when_the_lookup_gives_one() {
    // The shared client would find nothing listening at the probe's URL; the target's own client
    // (its connection pool, capped like its calls) answers. Periodic and on-demand probes both
    // take the target's client, so a probe never opens a connection beside the target's cap.
    let pool = Arc::new(OwnPool::default());
    let own = publisher_http::HttpClient::in_memory(
        &publisher_http::ClientConfig::default(),
        pool.clone(),
    );
    let url = closed_port_url();
    let shared = client(None);
    let publisher = HttpPublisher::new(&shared, &url, None);
    let base = fixture(
        fast_config(),
        &shared,
        vec![Spec::enabled("ops", publisher)],
    );
    let prober = health::Prober::new(
        base.registry.clone(),
        base.source.clone(),
        shared,
        OwnClients {
            probe: probe(&url, None),
            own,
        },
    );

    let health = prober.check_now("ops").await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
    assert_eq!(pool.requests.load(Ordering::SeqCst), 1);
    assert_eq!(prober.probe_all().await, 1);
    assert_eq!(pool.requests.load(Ordering::SeqCst), 2);
    assert_eq!(base.registry.get("ops").unwrap().consecutive_failures, 0);
}

/// Counts the probes a round has built and the ones its targets have answered, and the most
/// built and not yet answered at any moment.
#[derive(Default)]
struct Built {
    built: AtomicUsize,
    answered: AtomicUsize,
    peak: AtomicUsize,
}

impl publisher_http::InMemoryHandler for Built {
    fn handle(
        &self,
        _request: http::Request<bytes::Bytes>,
    ) -> alert_core::BoxFuture<'static, http::Response<bytes::Bytes>> {
        let open = self.built.load(Ordering::SeqCst) - self.answered.load(Ordering::SeqCst);
        self.peak.fetch_max(open, Ordering::SeqCst);
        self.answered.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(http::Response::new(bytes::Bytes::new())))
    }
}

struct CountedProbes {
    probe: alert_core::HealthProbe,
    counts: Arc<Built>,
    own: publisher_http::HttpClient,
}

impl health::ProbeLookup for CountedProbes {
    fn probe_for(&self, _entry: &alert_core::TargetEntry) -> Option<alert_core::HealthProbe> {
        self.counts.built.fetch_add(1, Ordering::SeqCst);
        Some(self.probe.clone())
    }

    fn client_for(&self, _entry: &alert_core::TargetEntry) -> Option<publisher_http::HttpClient> {
        Some(self.own.clone())
    }
}

#[tokio::test]
async fn a_round_builds_each_probe_only_when_its_turn_comes() {
    // A thousand targets' probes built at once are a thousand requests' worth of memory at
    // startup; a round holds no more than `max_concurrent_probes` of them.
    let counts = Arc::new(Built::default());
    let own = publisher_http::HttpClient::in_memory(
        &publisher_http::ClientConfig::default(),
        counts.clone(),
    );
    let shared = client(None);
    let url = closed_port_url();
    let names: Vec<&'static str> = (0..50)
        .map(|i| &*Box::leak(format!("t{i}").into_boxed_str()))
        .collect();
    let base = fixture(
        fast_config().with_max_concurrent_probes(3),
        &shared,
        names
            .iter()
            .map(|name| Spec::enabled(name, HttpPublisher::new(&shared, &url, None)))
            .collect(),
    );
    let prober = health::Prober::new(
        base.registry.clone(),
        base.source.clone(),
        shared,
        CountedProbes {
            probe: probe(&url, None),
            counts: counts.clone(),
            own,
        },
    );
    assert_eq!(prober.probe_all().await, 50);
    assert_eq!(counts.answered.load(Ordering::SeqCst), 50);
    let peak = counts.peak.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&peak),
        "{peak} probes built and not answered at once"
    );
}

#[tokio::test]
async fn a_probe_leaves_no_connection_open() {
    // The server keeps its connections alive; the probe must ask for the close and close its side
    // once it has the answer, so an idle target holds no socket between probes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0_u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "the probe closed before its request was whole");
            request.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        // The client's close is the signal; a kept-alive connection would block here until the
        // test's deadline.
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        (
            String::from_utf8_lossy(&request).to_ascii_lowercase(),
            closed,
        )
    });
    let client = client(None);
    let publisher = HttpPublisher::new(&client, &url, Some(probe(&url, None)));
    let fx = fixture(
        fast_config(),
        &client,
        vec![Spec::enabled("ops", publisher)],
    );
    let health = fx.prober.check_now("ops").await.unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
    let (request, closed) = server.await.unwrap();
    assert!(request.contains("connection: close"), "{request}");
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the probe's connection stayed open: {closed:?}"
    );
}

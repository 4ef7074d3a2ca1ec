//! Shared helpers: a real HTTP publisher with a health probe, and polling to a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use alert_core::{
    BoxFuture, HealthProbe, PublishError, PublishRequest, Publisher, Receipt, Secret,
    StaticTargetSource, Target, TargetEntry, TargetKind, TargetName, TargetSet,
};
use health::{HealthConfig, HealthRegistry, Prober};
use publisher_http::{ClientConfig, DefaultClassifier, HttpClient, HttpRequest};

/// How long any polled condition may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// A small publisher of the kind the publisher crates write: it POSTs `{}` to its URL through the
/// shared client and classifies the answer by status, and it knows its own health probe.
#[derive(Debug)]
pub(crate) struct HttpPublisher {
    client: HttpClient,
    url: Secret<String>,
    probe: Option<HealthProbe>,
}

impl HttpPublisher {
    pub(crate) fn new(client: &HttpClient, url: &str, probe: Option<HealthProbe>) -> Arc<Self> {
        Arc::new(Self {
            client: client.clone(),
            url: Secret::new(url.to_owned()),
            probe,
        })
    }

    /// The probe the prober should send, as a publisher offers it.
    pub(crate) fn health_probe(&self) -> Option<HealthProbe> {
        self.probe.clone()
    }
}

impl Publisher for HttpPublisher {
    fn publish<'a>(
        &'a self,
        _request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async move {
            let request = HttpRequest::secret_url(http::Method::POST, &self.url)
                .map_err(|e| {
                    PublishError::new(
                        alert_core::ErrorKind::Permanent {
                            reason: alert_core::PermanentReason::Config,
                        },
                        e.to_string(),
                    )
                })?
                .json(b"{}".to_vec());
            let response = self.client.send(request, &DefaultClassifier).await?;
            Ok(Receipt::with_status(response.status.as_u16()))
        })
    }
}

/// A probe of `url`, with an `Authorization` header when `token` is given.
pub(crate) fn probe(url: &str, token: Option<&str>) -> HealthProbe {
    let probe = HealthProbe::new(Secret::new(url.to_owned()));
    match token {
        Some(token) => probe.with_header("Authorization", Secret::new(format!("Bearer {token}"))),
        None => probe,
    }
}

/// The shared client, trusting `extra_ca` when given.
pub(crate) fn client(extra_ca: Option<&str>) -> HttpClient {
    let config = ClientConfig::default().with_timeout(Duration::from_secs(5));
    let config = match extra_ca {
        Some(pem) => config.with_extra_root_pem(pem.as_bytes().to_vec()),
        None => config,
    };
    HttpClient::new(&config).expect("a client")
}

/// One target of a test.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) publisher: Arc<HttpPublisher>,
    pub(crate) enabled: bool,
}

impl Spec {
    pub(crate) fn enabled(name: &'static str, publisher: Arc<HttpPublisher>) -> Self {
        Self {
            name,
            publisher,
            enabled: true,
        }
    }
}

/// A registry, a target source and a prober over `specs`. The prober finds each target's probe
/// by asking its publisher.
pub(crate) struct Fixture {
    pub(crate) registry: Arc<HealthRegistry>,
    pub(crate) source: Arc<StaticTargetSource>,
    pub(crate) prober: Prober,
}

pub(crate) fn fixture(config: HealthConfig, client: &HttpClient, specs: Vec<Spec>) -> Fixture {
    let registry = Arc::new(HealthRegistry::new(config).expect("a valid config"));
    let mut publishers: HashMap<String, Arc<HttpPublisher>> = HashMap::new();
    let mut entries = Vec::new();
    for spec in specs {
        let target = Target::new(TargetName::new(spec.name).unwrap(), TargetKind::Webhook)
            .with_disabled((!spec.enabled).then_some(alert_core::DisabledReason::Configured));
        publishers.insert(spec.name.to_owned(), spec.publisher.clone());
        entries.push(TargetEntry::new(target, spec.publisher));
    }
    let source = Arc::new(StaticTargetSource::new(TargetSet::new(entries).unwrap()));
    let prober = Prober::new(
        registry.clone(),
        source.clone(),
        client.clone(),
        move |entry: &TargetEntry| {
            publishers
                .get(entry.target.name.as_str())
                .and_then(|publisher| publisher.health_probe())
        },
    );
    Fixture {
        registry,
        source,
        prober,
    }
}

/// Short intervals and timeouts for loopback tests.
pub(crate) fn fast_config() -> HealthConfig {
    HealthConfig::default()
        .with_interval(Duration::from_millis(50))
        .with_timeout(Duration::from_millis(300))
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `test` while `prober.run` runs beside it, then shuts the prober down and checks that its
/// run loop ends.
pub(crate) async fn while_running<T>(prober: &Prober, test: impl Future<Output = T>) -> T {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = prober.run(shutdown.clone());
    tokio::pin!(run);
    let output = tokio::select! {
        () = &mut run => panic!("the prober stopped before it was shut down"),
        output = test => output,
    };
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, run)
        .await
        .expect("the prober stops when shut down");
    output
}

//! Kubernetes Secrets: a fake API server on 127.0.0.1 serves real `SecretList` JSON and streamed
//! watch events (base64 data, as Kubernetes sends it); the source is polled until a deadline.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use alert_core::{DisabledReason, TargetSet, TargetSource};
use base64::Engine as _;
use bytes::Bytes;
use discovery::{KubernetesConfig, KubernetesSource, MergedSource};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::file::registry;

const NS: &str = "alerting";

#[derive(Default)]
struct Shared {
    secrets: Mutex<BTreeMap<String, Value>>,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Bytes>>>,
    version: AtomicU64,
    queries: Mutex<Vec<String>>,
}

/// A fake Kubernetes API server: lists and watches Secrets in one namespace.
struct FakeApi {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A watch response body fed by a channel.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

type Resp = Response<BoxBody<Bytes, Infallible>>;

fn handle(shared: &Shared, request: &Request<Incoming>) -> Resp {
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or_default().to_owned();
    shared
        .queries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(query.clone());
    if path != format!("/api/v1/namespaces/{NS}/secrets") {
        return Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"{}")).boxed())
            .unwrap();
    }
    if query.split('&').any(|p| p == "watch=true") {
        let (tx, rx) = mpsc::unbounded_channel();
        shared
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        return Response::builder()
            .header("content-type", "application/json")
            .body(ChannelBody(rx).boxed())
            .unwrap();
    }
    let items: Vec<Value> = shared
        .secrets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    let list = json!({
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": { "resourceVersion": shared.version.load(Ordering::SeqCst).to_string() },
        "items": items,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(list.to_string())).boxed())
        .unwrap()
}

impl FakeApi {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let server_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = server_shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let response = handle(&shared, &request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { url, shared, task }
    }

    fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn watchers(&self) -> usize {
        let mut watchers = self
            .shared
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        watchers.retain(|w| !w.is_closed());
        watchers.len()
    }

    /// Stores a Secret before the source starts (served by the list).
    fn preload(&self, secret: Value) {
        let secret = self.stamp(secret);
        let name = secret["metadata"]["name"].as_str().unwrap().to_owned();
        self.shared
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, secret);
    }

    fn stamp(&self, mut secret: Value) -> Value {
        let version = self.shared.version.fetch_add(1, Ordering::SeqCst) + 1;
        secret["metadata"]["resourceVersion"] = json!(version.to_string());
        secret
    }

    /// Sends a watch event to every open watch, and updates what a list would return.
    fn emit(&self, kind: &str, secret: Value) {
        let secret = self.stamp(secret);
        let name = secret["metadata"]["name"].as_str().unwrap().to_owned();
        {
            let mut secrets = self
                .shared
                .secrets
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if kind == "DELETED" {
                secrets.remove(&name);
            } else {
                secrets.insert(name, secret.clone());
            }
        }
        let line = format!("{}\n", json!({ "type": kind, "object": secret }));
        for watcher in self
            .shared
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = watcher.send(Bytes::from(line.clone()));
        }
    }
}

/// A Secret as the API returns it, with each value base64-encoded.
fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": { "alertpub.io/target": "true" },
        },
        "type": "Opaque",
        "data": data,
    })
}

fn webhook(name: &str, url: &str) -> String {
    format!("name: {name}\nkind: webhook\nurl: {url}\n")
}

/// The mock targets of these tests live on loopback, which a Secret's target may reach only when
/// the allow-list names it.
fn k8s_config() -> KubernetesConfig {
    serde_json::from_value(json!({ "namespace": NS, "allowed_hosts": ["127.0.0.1"] })).unwrap()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn url_of(set: &TargetSet, name: &str) -> Option<String> {
    set.get(name)
        .and_then(|e| e.target.settings.get("url"))
        .and_then(|url| url.as_str().map(str::to_owned))
}

struct Running {
    api: FakeApi,
    source: Arc<KubernetesSource>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn start(api: FakeApi) -> Self {
        Self::start_with(api, k8s_config()).await
    }

    async fn start_with(api: FakeApi, config: KubernetesConfig) -> Self {
        let source = Arc::new(KubernetesSource::new(api.client(), config, registry()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let source = source.clone();
            let shutdown = shutdown.clone();
            async move { source.run(shutdown).await }
        });
        let running = Self {
            api,
            source,
            shutdown,
            task,
        };
        wait_for("the watch to open", || running.api.watchers() > 0).await;
        running
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn secrets_are_listed_added_modified_and_deleted() {
    let api = FakeApi::start().await;
    api.preload(secret(
        "listed",
        &[("config", &webhook("listed", "http://127.0.0.1:1/a"))],
    ));
    let run = Running::start(api).await;
    let source = run.source.clone();
    wait_for("the listed target", || {
        source.snapshot().get("listed").is_some()
    })
    .await;
    let queries = run.api.shared.queries.lock().unwrap().clone();
    assert!(
        queries
            .iter()
            .all(|q| q.contains("labelSelector=alertpub.io%2Ftarget%3Dtrue")),
        "{queries:?}"
    );

    // Added, with a routing key taken from another key of the same Secret.
    let pagerduty =
        "name: pd\nkind: pagerduty\nurl: http://127.0.0.1:1\nrouting_key: ${secret:routing_key}\n";
    run.api.emit(
        "ADDED",
        secret("pd", &[("config", pagerduty), ("routing_key", "R0UT1NG")]),
    );
    wait_for("the added target", || source.snapshot().get("pd").is_some()).await;
    assert!(source.snapshot().get("pd").unwrap().target.is_enabled());

    // Added as JSON.
    let json_target = r#"{"name": "as-json", "kind": "webhook", "url": "http://127.0.0.1:1/j"}"#;
    run.api
        .emit("ADDED", secret("as-json", &[("config", json_target)]));
    wait_for("the JSON target", || {
        source.snapshot().get("as-json").is_some()
    })
    .await;

    // Modified.
    run.api.emit(
        "MODIFIED",
        secret(
            "listed",
            &[("config", &webhook("listed", "http://127.0.0.1:1/b"))],
        ),
    );
    wait_for("the modified target", || {
        url_of(&source.snapshot(), "listed").as_deref() == Some("http://127.0.0.1:1/b")
    })
    .await;

    // A missing key disables the target with `secret_unavailable`.
    run.api
        .emit("MODIFIED", secret("pd", &[("config", pagerduty)]));
    wait_for("the disabled target", || {
        source
            .snapshot()
            .get("pd")
            .is_some_and(|e| e.target.disabled == Some(DisabledReason::SecretUnavailable))
    })
    .await;

    // Deleted.
    run.api.emit(
        "DELETED",
        secret(
            "listed",
            &[("config", &webhook("listed", "http://127.0.0.1:1/b"))],
        ),
    );
    wait_for("the deleted target to go", || {
        source.snapshot().get("listed").is_none()
    })
    .await;
    assert_eq!(source.snapshot().len(), 2);
    assert_eq!(source.invalid_secrets(), 0);
    run.stop().await;
}

#[tokio::test]
async fn invalid_secrets_are_skipped_counted_and_keep_the_last_valid_version() {
    let api = FakeApi::start().await;
    api.preload(secret(
        "good",
        &[("config", &webhook("good", "http://127.0.0.1:1/good"))],
    ));
    api.preload(secret("bad-yaml", &[("config", "name: [unclosed")]));
    api.preload(secret("no-config", &[("other", "x")]));
    api.preload(secret(
        "bad-field",
        &[("config", "name: Bad_Name\nkind: webhook\nurl: http://x\n")],
    ));
    // Same target name as `good`.
    api.preload(secret(
        "zz-duplicate",
        &[("config", &webhook("good", "http://127.0.0.1:1/dup"))],
    ));
    let run = Running::start(api).await;
    let source = run.source.clone();
    wait_for("the valid target", || {
        source.snapshot().get("good").is_some()
    })
    .await;
    assert_eq!(source.snapshot().len(), 1);
    assert_eq!(
        url_of(&source.snapshot(), "good").as_deref(),
        Some("http://127.0.0.1:1/good")
    );
    assert_eq!(source.invalid_secrets(), 4);

    // A build error (a setting the webhook publisher does not know) is skipped too; the others
    // still load.
    run.api.emit(
        "ADDED",
        secret(
            "no-build",
            &[(
                "config",
                "name: no-build\nkind: webhook\nurl: http://127.0.0.1:1/n\ncolour: red\n",
            )],
        ),
    );
    run.api.emit(
        "ADDED",
        secret(
            "other",
            &[("config", &webhook("other", "http://127.0.0.1:1/o"))],
        ),
    );
    wait_for("the other target", || {
        source.snapshot().get("other").is_some()
    })
    .await;
    assert!(source.snapshot().get("no-build").is_none());
    assert_eq!(source.invalid_secrets(), 5);

    // A valid Secret edited into an invalid one keeps its last valid version.
    run.api
        .emit("MODIFIED", secret("good", &[("config", "kind: [broken")]));
    wait_for("the bad edit to be counted", || {
        source.invalid_secrets() == 6
    })
    .await;
    assert_eq!(
        url_of(&source.snapshot(), "good").as_deref(),
        Some("http://127.0.0.1:1/good")
    );
    assert_eq!(source.snapshot().len(), 2);

    // When the Secret a duplicate clashed with is deleted, the duplicate loads.
    run.api
        .emit("DELETED", secret("good", &[("config", "kind: [broken")]));
    wait_for("the duplicate to take over", || {
        url_of(&source.snapshot(), "good").as_deref() == Some("http://127.0.0.1:1/dup")
    })
    .await;
    assert_eq!(source.invalid_secrets(), 6);

    // A later valid edit applies (the name is free again once the duplicate is gone).
    run.api.emit(
        "DELETED",
        secret(
            "zz-duplicate",
            &[("config", &webhook("good", "http://127.0.0.1:1/dup"))],
        ),
    );
    wait_for("the duplicate to go", || {
        source.snapshot().get("good").is_none()
    })
    .await;
    run.api.emit(
        "MODIFIED",
        secret(
            "good",
            &[("config", &webhook("good", "http://127.0.0.1:1/fixed"))],
        ),
    );
    wait_for("the fixed target", || {
        url_of(&source.snapshot(), "good").as_deref() == Some("http://127.0.0.1:1/fixed")
    })
    .await;
    run.stop().await;
}

#[tokio::test]
async fn the_merged_source_keeps_the_files_target_on_a_name_conflict() {
    let dir = crate::TempDir::new("merge");
    let path = dir.join("alertpub.yaml");
    std::fs::write(
        &path,
        "targets:\n  - name: shared\n    kind: webhook\n    url: http://127.0.0.1:1/file\n",
    )
    .unwrap();
    let file = Arc::new(discovery::FileSource::load(&path, registry()).unwrap());

    let api = FakeApi::start().await;
    api.preload(secret(
        "shared",
        &[("config", &webhook("shared", "http://127.0.0.1:1/k8s"))],
    ));
    api.preload(secret(
        "only-k8s",
        &[("config", &webhook("only-k8s", "http://127.0.0.1:1/only"))],
    ));
    let run = Running::start(api).await;
    let k8s = run.source.clone();
    wait_for("the Secrets' targets", || k8s.snapshot().len() == 2).await;

    let merged = Arc::new(MergedSource::new(file, k8s));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let merged = merged.clone();
        let shutdown = shutdown.clone();
        async move { merged.run(shutdown).await }
    });
    wait_for("the merged set", || merged.snapshot().len() == 2).await;
    assert_eq!(
        url_of(&merged.snapshot(), "shared").as_deref(),
        Some("http://127.0.0.1:1/file")
    );
    assert!(merged.snapshot().get("only-k8s").is_some());
    assert_eq!(merged.conflicts().len(), 1);
    assert_eq!(merged.conflicts()[0].name, "shared");

    // The merge follows the Kubernetes source.
    run.api.emit(
        "DELETED",
        secret(
            "shared",
            &[("config", &webhook("shared", "http://127.0.0.1:1/k8s"))],
        ),
    );
    wait_for("the conflict to clear", || merged.conflicts().is_empty()).await;
    assert_eq!(merged.snapshot().len(), 2);

    shutdown.cancel();
    task.await.unwrap();
    run.stop().await;
}

#[tokio::test]
async fn a_secrets_target_cannot_read_the_pods_files_or_environment_or_reach_other_hosts() {
    let dir = crate::TempDir::new("k8s-trust");
    // Stands in for the service-account token every pod has.
    let token = dir.join("token");
    std::fs::write(&token, "SA-TOKEN\n").unwrap();
    let api = FakeApi::start().await;
    api.preload(secret(
        "token-thief",
        &[(
            "config",
            &format!(
                "name: token-thief\nkind: webhook\nurl: http://127.0.0.1:1/x\nauth:\n  bearer_token_file: {}\n",
                token.display()
            ),
        )],
    ));
    api.preload(secret(
        "env-thief",
        &[(
            "config",
            "name: env-thief\nkind: pagerduty\nurl: http://127.0.0.1:1\nrouting_key: ${env:PATH}\n",
        )],
    ));
    api.preload(secret(
        "indirect",
        &[
            (
                "config",
                "name: indirect\nkind: pagerduty\nurl: http://127.0.0.1:1\nrouting_key: ${secret:key}\n",
            ),
            ("key", "${env:PATH}"),
        ],
    ));
    api.preload(secret(
        "metadata",
        &[(
            "config",
            &webhook("metadata", "http://169.254.169.254/latest/meta-data"),
        )],
    ));
    api.preload(secret(
        "zz-good",
        &[("config", &webhook("good", "http://127.0.0.1:1/good"))],
    ));
    let run = Running::start(api).await;
    let source = run.source.clone();
    wait_for("the valid target", || {
        source.snapshot().get("good").is_some()
    })
    .await;
    assert_eq!(source.snapshot().len(), 1, "only the valid target loads");
    assert_eq!(source.invalid_secrets(), 4);
    run.stop().await;

    // Without an allow-list, public hosts pass and loopback does not.
    let api = FakeApi::start().await;
    api.preload(secret(
        "loopback",
        &[("config", &webhook("loopback", "http://127.0.0.1:1/x"))],
    ));
    api.preload(secret(
        "public",
        &[("config", &webhook("public", "https://hooks.example.com/x"))],
    ));
    let config = serde_json::from_value(json!({ "namespace": NS })).unwrap();
    let run = Running::start_with(api, config).await;
    let source = run.source.clone();
    wait_for("the public target", || {
        source.snapshot().get("public").is_some()
    })
    .await;
    assert!(source.snapshot().get("loopback").is_none());
    assert_eq!(source.invalid_secrets(), 1);
    run.stop().await;
}

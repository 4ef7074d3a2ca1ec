//! Targets from Kubernetes Secrets, listed and watched with kube-rs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alert_core::{StaticTargetSource, TargetEntry, TargetSet, TargetSource};
use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{KubernetesConfig, TargetSpec};
use crate::load::{ConfigError, PublisherFactory, build_targets};
use crate::trust::{Discovered, Trust, TrustError};

/// The Secret key that holds the target.
const CONFIG_KEY: &str = "config";
/// The first and the largest wait after a failed list or watch.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The server ends a watch after this; it is then resumed from the last resource version.
const WATCH_TIMEOUT_SECS: u32 = 290;

/// Why the list-and-watch loop paused (it retries with a bounded backoff).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubernetesError {
    /// The API call failed.
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// The watch reported an error status.
    #[error("watch error {code}: {message}")]
    Watch {
        /// The HTTP-like status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The watch ended at once without any event.
    #[error("the watch ended without any event")]
    EndedEarly,
}

/// Why one Secret was skipped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretTargetError {
    /// The Secret has no `config` key.
    #[error("no `config` key")]
    MissingConfig,
    /// The `config` key is not UTF-8.
    #[error("`config` is not UTF-8")]
    NotUtf8,
    /// The `config` key is neither YAML nor JSON.
    #[error("`config`: invalid YAML: {0}")]
    Yaml(String),
    /// A field has an invalid value.
    #[error("`config`: {field}: {message}")]
    Field {
        /// Where, such as `filter[0]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Another Secret already defines this target name.
    #[error("target name {name:?} is already defined by Secret {other:?}")]
    Duplicate {
        /// The target name.
        name: String,
        /// The Secret that holds it.
        other: String,
    },
    /// The target does what a discovered target may not: reads a file or an environment
    /// variable, or sends to a refused host.
    #[error("{0}")]
    Refused(#[source] TrustError),
    /// The publisher could not be built.
    #[error("{0}")]
    Build(String),
}

#[derive(Default)]
struct State {
    /// The valid target of each Secret, by Secret name.
    accepted: BTreeMap<String, TargetEntry>,
    /// The Secret last rejected and its resource version, by Secret name, so a relist does not
    /// count it twice, and so a duplicate is retried when the Secret it clashed with goes away.
    rejected: HashMap<String, (Option<String>, Secret)>,
}

/// The targets held by the Secrets of one namespace that match a label selector.
///
/// Each Secret's `config` key holds one target, as YAML or JSON, in the same shape as a target
/// of the config file. A string setting `${secret:KEY}`, at any depth of the kind's settings,
/// takes the decoded value of `KEY` in the same Secret; a missing key loads the target disabled
/// with reason `secret_unavailable`. The target is untrusted ([`Trust::Discovered`]): a `*_file`
/// setting, any other `${…}` reference, or a URL whose host is refused (see
/// `allowed_hosts`) rejects the Secret with [`SecretTargetError::Refused`]. An invalid Secret is skipped, counted
/// ([`invalid_secrets`](Self::invalid_secrets)) and logged; a Secret that was valid keeps its
/// last valid version. The whole set is replaced in one step on every change.
pub struct KubernetesSource {
    api: Api<Secret>,
    config: KubernetesConfig,
    factory: Arc<dyn PublisherFactory>,
    targets: StaticTargetSource,
    state: Mutex<State>,
    invalid: AtomicU64,
}

impl std::fmt::Debug for KubernetesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KubernetesSource {
    /// A source with no targets yet; [`run`](Self::run) lists and watches.
    #[must_use]
    pub fn new(
        client: kube::Client,
        config: KubernetesConfig,
        factory: Arc<dyn PublisherFactory>,
    ) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            factory,
            targets: StaticTargetSource::new(TargetSet::default()),
            state: Mutex::new(State::default()),
            invalid: AtomicU64::new(0),
        }
    }

    /// How many times a Secret was skipped as invalid, since the start.
    #[must_use]
    pub fn invalid_secrets(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }

    /// Lists and watches the Secrets until `shutdown`, retrying failures with a bounded backoff.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.list_and_watch() => result,
            };
            match result {
                Ok(()) => backoff = INITIAL_BACKOFF,
                Err(err) => {
                    tracing::warn!(error = %err, namespace = %self.config.namespace,
                        "watching Secrets failed; retrying in {backoff:?}");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One list, then watches from its resource version until the version expires (`Ok`, to
    /// relist) or an error.
    async fn list_and_watch(&self) -> Result<(), KubernetesError> {
        let selector = &self.config.label_selector;
        let list = self
            .api
            .list(&ListParams::default().labels(selector))
            .await?;
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        self.apply_list(list.items);
        loop {
            let started = Instant::now();
            let params = WatchParams::default()
                .labels(selector)
                .timeout(WATCH_TIMEOUT_SECS);
            let stream = self.api.watch(&params, &version).await?;
            let mut stream = std::pin::pin!(stream);
            let mut events = 0_u64;
            while let Some(event) = stream.try_next().await? {
                events += 1;
                match event {
                    WatchEvent::Added(secret) | WatchEvent::Modified(secret) => {
                        if let Some(v) = &secret.metadata.resource_version {
                            version.clone_from(v);
                        }
                        self.apply(secret);
                    }
                    WatchEvent::Deleted(secret) => {
                        if let Some(v) = &secret.metadata.resource_version {
                            version.clone_from(v);
                        }
                        self.remove(secret.metadata.name.as_deref().unwrap_or_default());
                    }
                    WatchEvent::Bookmark(bookmark) => {
                        version = bookmark.metadata.resource_version;
                    }
                    WatchEvent::Error(status) if status.code == 410 => return Ok(()),
                    WatchEvent::Error(status) => {
                        return Err(KubernetesError::Watch {
                            code: status.code,
                            message: status.message,
                        });
                    }
                }
            }
            if events == 0 && started.elapsed() < Duration::from_secs(1) {
                return Err(KubernetesError::EndedEarly);
            }
        }
    }

    /// Replaces every Secret's target with a full list's.
    fn apply_list(&self, secrets: Vec<Secret>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let listed: std::collections::HashSet<String> = secrets
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        state.accepted.retain(|name, _| listed.contains(name));
        state.rejected.retain(|name, _| listed.contains(name));
        for secret in secrets {
            self.apply_locked(&mut state, &secret);
        }
        self.publish(&state);
    }

    /// Adds or updates one Secret's target.
    fn apply(&self, secret: Secret) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.apply_locked(&mut state, &secret);
        self.publish(&state);
    }

    /// Removes a deleted Secret's target.
    fn remove(&self, name: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.rejected.remove(name);
        if state.accepted.remove(name).is_some() {
            tracing::info!(secret = name, "target Secret deleted");
            // A Secret rejected as a duplicate of this one may be valid now.
            let retry: Vec<Secret> = state.rejected.values().map(|(_, s)| s.clone()).collect();
            for secret in &retry {
                self.apply_locked(&mut state, secret);
            }
            self.publish(&state);
        }
    }

    fn apply_locked(&self, state: &mut State, secret: &Secret) {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let version = secret.metadata.resource_version.clone();
        match self.entry_of(state, &name, secret) {
            Ok(entry) => {
                state.rejected.remove(&name);
                state.accepted.insert(name, entry);
            }
            Err(err) => {
                if version.is_some() && state.rejected.get(&name).map(|(v, _)| v) == Some(&version)
                {
                    return;
                }
                self.invalid.fetch_add(1, Ordering::Relaxed);
                let kept = state.accepted.contains_key(&name);
                tracing::warn!(namespace = %self.config.namespace, secret = %name, kept_last_valid = kept,
                    "invalid target Secret skipped: {err}");
                state.rejected.insert(name, (version, secret.clone()));
            }
        }
    }

    fn entry_of(
        &self,
        state: &State,
        secret_name: &str,
        secret: &Secret,
    ) -> Result<TargetEntry, SecretTargetError> {
        let empty = BTreeMap::new();
        let data = secret.data.as_ref().unwrap_or(&empty);
        let config = data
            .get(CONFIG_KEY)
            .ok_or(SecretTargetError::MissingConfig)?;
        let text = std::str::from_utf8(&config.0).map_err(|_| SecretTargetError::NotUtf8)?;
        let value: serde_json::Value =
            yaml_serde::from_str(text).map_err(|e| SecretTargetError::Yaml(e.to_string()))?;
        let spec: TargetSpec =
            serde_path_to_error::deserialize(value).map_err(|err| SecretTargetError::Field {
                field: err.path().to_string(),
                message: err.into_inner().to_string(),
            })?;
        if let Some((other, _)) = state
            .accepted
            .iter()
            .find(|(other, e)| *other != secret_name && e.target.name == spec.name)
        {
            return Err(SecretTargetError::Duplicate {
                name: spec.name.to_string(),
                other: other.clone(),
            });
        }
        let origin = format!("Secret {}/{secret_name}", self.config.namespace);
        let keys = data
            .iter()
            .filter(|(key, _)| key.as_str() != CONFIG_KEY)
            .map(|(key, value)| (key.as_str(), value.0.as_slice()));
        let discovered = Discovered::new(origin.clone(), keys, self.config.allowed_hosts.clone());
        let (set, warnings) = build_targets(
            std::slice::from_ref(&spec),
            Path::new(&origin),
            self.factory.as_ref(),
            Trust::Discovered(&discovered),
        )
        .map_err(|err| match err {
            ConfigError::Refused { source, .. } => SecretTargetError::Refused(*source),
            other => SecretTargetError::Build(other.to_string()),
        })?;
        for warning in warnings {
            tracing::warn!(target = %warning.target, "{}", warning.message);
        }
        set.iter()
            .next()
            .cloned()
            .ok_or_else(|| SecretTargetError::Build("no target built".to_owned()))
    }

    fn publish(&self, state: &State) {
        match TargetSet::new(state.accepted.values().cloned().collect()) {
            Ok(set) => self.targets.replace(set),
            Err(err) => tracing::error!(error = %err, "cannot build the Secrets' target set"),
        }
    }
}

impl TargetSource for KubernetesSource {
    fn snapshot(&self) -> Arc<TargetSet> {
        self.targets.snapshot()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<TargetSet>> {
        self.targets.subscribe()
    }
}

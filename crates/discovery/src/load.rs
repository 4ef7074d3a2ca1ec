//! Parsing and validating a config file, and building its targets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alert_core::BuildError;
use alert_core::{
    BoxFuture, DisabledReason, ErrorKind, PermanentReason, PublishError, PublishRequest, Publisher,
    Receipt, Target, TargetEntry, TargetSet,
};

use crate::config::{Config, TargetSpec};
use crate::trust::{Trust, TrustError, admit};

/// Why a config file was rejected. Each message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not valid YAML.
    #[error("{path}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has an invalid value.
    #[error("{path}: {field}: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// Where, such as `targets[1].filter[0]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Two targets share a name.
    #[error("{path}: targets: duplicate target name {name:?}")]
    DuplicateTarget {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A target's kind settings are invalid.
    #[error("{path}: targets[{index}] ({name}): {message}")]
    Target {
        /// The file.
        path: PathBuf,
        /// The target's position.
        index: usize,
        /// The target's name.
        name: String,
        /// What is wrong, from the kind's publisher crate.
        message: String,
    },
    /// A discovered target does what its source may not (reads a file or the environment, or
    /// sends to a refused host).
    #[error("{path}: targets[{index}] ({name}): {source}")]
    Refused {
        /// The file, or the Secret.
        path: PathBuf,
        /// The target's position.
        index: usize,
        /// The target's name.
        name: String,
        /// What was refused (boxed: the other variants are far smaller).
        source: Box<TrustError>,
    },
}

/// Builds a publisher for a target. The server maps each kind to its publisher crate.
pub trait PublisherFactory: Send + Sync + 'static {
    /// Builds the publisher for `target`, whose kind settings are in `target.settings`.
    ///
    /// # Errors
    /// [`BuildError`]; [`BuildError::SecretUnavailable`] disables the target instead of failing
    /// the file.
    fn build(&self, target: &Target) -> Result<Arc<dyn Publisher>, BuildError>;
}

impl<F> PublisherFactory for F
where
    F: Fn(&Target) -> Result<Arc<dyn Publisher>, BuildError> + Send + Sync + 'static,
{
    fn build(&self, target: &Target) -> Result<Arc<dyn Publisher>, BuildError> {
        self(target)
    }
}

/// A non-fatal finding, such as a target disabled because its secret is unavailable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// The target concerned.
    pub target: String,
    /// What happened.
    pub message: String,
}

/// A loaded file: the config, its targets built, and the warnings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The parsed config.
    pub config: Arc<Config>,
    /// The targets, each with its publisher.
    pub targets: TargetSet,
    /// Non-fatal findings.
    pub warnings: Vec<Warning>,
}

/// Reads, parses, validates and builds a config file.
///
/// # Errors
/// [`ConfigError`], naming the file and the field.
pub fn load_file(path: &Path, factory: &dyn PublisherFactory) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        reason: e.kind().to_string(),
    })?;
    load_str(&text, path, factory)
}

/// Parses and builds config text; `path` is only used in messages.
///
/// # Errors
/// [`ConfigError`].
pub fn load_str(
    text: &str,
    path: &Path,
    factory: &dyn PublisherFactory,
) -> Result<Loaded, ConfigError> {
    let config = parse(text, path)?;
    let (targets, warnings) = build_targets(&config.targets, path, factory, Trust::File)?;
    Ok(Loaded {
        config: Arc::new(config),
        targets,
        warnings,
    })
}

/// Parses config text into a [`Config`], with errors that point at the field.
///
/// # Errors
/// [`ConfigError::Yaml`] or [`ConfigError::Field`].
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    // YAML first becomes a JSON value, so that the field path of any error can be reported.
    let value: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        yaml_serde::from_str(text).map_err(|e| ConfigError::Yaml {
            path: path.to_owned(),
            message: e.to_string(),
        })?
    };
    let value = if value.is_null() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        value
    };
    let config: Config = serde_path_to_error::deserialize(value).map_err(|err| {
        let field = err.path().to_string();
        ConfigError::Field {
            path: path.to_owned(),
            field,
            message: err.into_inner().to_string(),
        }
    })?;
    check_queue(&config.queue).map_err(|(field, message)| ConfigError::Field {
        path: path.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    })?;
    Ok(config)
}

/// The queue's settings that only make sense together.
fn check_queue(queue: &crate::QueueConfig) -> Result<(), (&'static str, &'static str)> {
    let has_url = queue.url.is_some() || queue.url_file.is_some();
    match queue.backend {
        crate::QueueBackend::Postgres if queue.url.is_some() && queue.url_file.is_some() => {
            Err(("queue.url", "set `url` or `url_file`, not both"))
        }
        crate::QueueBackend::Postgres if !has_url => Err((
            "queue.url",
            "`backend: postgres` needs the database's `url` or `url_file`",
        )),
        crate::QueueBackend::Redb if has_url => Err((
            "queue.backend",
            "`url` and `url_file` are for `backend: postgres`",
        )),
        _ => Ok(()),
    }
}

/// Turns a spec into the engine's [`Target`].
#[must_use]
pub fn target_of(spec: &TargetSpec) -> Target {
    let mut target = Target::new(spec.name.clone(), spec.kind)
        .with_filter(spec.filter.clone())
        .with_disabled((!spec.enabled).then_some(DisabledReason::Configured));
    target.repeat_interval = spec.repeat_interval.map(Into::into);
    target.timeout = spec.timeout.map(Into::into);
    target.in_flight_limit = spec.in_flight;
    target.rate_limit = spec.rate_limit;
    target.settings = spec.settings.clone();
    target
}

/// Builds every target's publisher, under `trust`'s policy: the file's targets ([`Trust::File`])
/// may read files and the environment; a discovered one ([`Trust::Discovered`]) may use only its
/// own `${secret:KEY}` values and send only to allowed hosts. A target whose secret is
/// unavailable (a `${secret:KEY}` without its key included) loads disabled with reason
/// `secret_unavailable` and a warning; any other build error rejects the set.
///
/// # Errors
/// [`ConfigError::DuplicateTarget`], [`ConfigError::Refused`] or [`ConfigError::Target`].
pub fn build_targets(
    specs: &[TargetSpec],
    path: &Path,
    factory: &dyn PublisherFactory,
    trust: Trust<'_>,
) -> Result<(TargetSet, Vec<Warning>), ConfigError> {
    let mut names = HashSet::new();
    let mut entries = Vec::with_capacity(specs.len());
    let mut warnings = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        if !names.insert(spec.name.clone()) {
            return Err(ConfigError::DuplicateTarget {
                path: path.to_owned(),
                name: spec.name.to_string(),
            });
        }
        let admitted = admit(spec, trust).map_err(|source| ConfigError::Refused {
            path: path.to_owned(),
            index,
            name: spec.name.to_string(),
            source: Box::new(source),
        })?;
        let spec = &admitted.spec;
        let mut target = target_of(spec);
        if !admitted.missing.is_empty() {
            let reason = format!(
                "{} has no key {}",
                path.display(),
                admitted.missing.join(", ")
            );
            warnings.push(Warning {
                target: spec.name.to_string(),
                message: reason.clone(),
            });
            if target.disabled.is_none() {
                target.disabled = Some(DisabledReason::SecretUnavailable);
            }
            entries.push(TargetEntry::new(target, Arc::new(Unavailable { reason })));
            continue;
        }
        let publisher: Arc<dyn Publisher> = match factory.build(&target) {
            Ok(publisher) => publisher,
            Err(err) if err.is_secret_unavailable() => {
                warnings.push(Warning {
                    target: spec.name.to_string(),
                    message: err.to_string(),
                });
                if target.disabled.is_none() {
                    target.disabled = Some(DisabledReason::SecretUnavailable);
                }
                Arc::new(Unavailable {
                    reason: err.to_string(),
                })
            }
            Err(err) => {
                return Err(ConfigError::Target {
                    path: path.to_owned(),
                    index,
                    name: spec.name.to_string(),
                    message: err.to_string(),
                });
            }
        };
        entries.push(TargetEntry::new(target, publisher));
    }
    let set = TargetSet::new(entries).map_err(|e| ConfigError::Field {
        path: path.to_owned(),
        field: "targets".to_owned(),
        message: e.to_string(),
    })?;
    Ok((set, warnings))
}

/// The publisher of a target that loaded disabled: every attempt fails as a config error.
#[derive(Debug)]
pub(crate) struct Unavailable {
    pub(crate) reason: String,
}

impl Publisher for Unavailable {
    fn publish<'a>(
        &'a self,
        _request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        let error = PublishError::new(
            ErrorKind::Permanent {
                reason: PermanentReason::Config,
            },
            self.reason.clone(),
        );
        Box::pin(async move { Err(error) })
    }
}

/// Every file a config refers to through a `*_file` setting, at any depth.
#[must_use]
pub fn referenced_files(config: &Config) -> Vec<PathBuf> {
    fn walk_map(map: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<PathBuf>) {
        for (key, value) in map {
            match value {
                serde_json::Value::String(path) if key.ends_with("_file") => {
                    out.push(PathBuf::from(path))
                }
                other => walk(other, out),
            }
        }
    }
    fn walk(value: &serde_json::Value, out: &mut Vec<PathBuf>) {
        match value {
            serde_json::Value::Object(map) => walk_map(map, out),
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut files = Vec::new();
    for target in &config.targets {
        walk_map(&target.settings.map(), &mut files);
    }
    if let Some(auth) = &config.server.auth {
        files.push(auth.bearer_tokens_file.clone());
    }
    files
}

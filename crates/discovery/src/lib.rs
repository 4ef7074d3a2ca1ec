//! Target discovery: where alertpub's targets come from, kept current without restarts.
//!
//! - **The config file** (YAML, the binding shape of SPEC §5, documented in
//!   `docs/configuration.md`): [`load_file`] parses and validates it with errors that name the
//!   field (`targets[1].filter[0]: …`); [`FileSource`] serves its targets as an
//!   [`alert_core::TargetSource`] and hot-reloads on SIGHUP and on changes to the file or to any
//!   `*_file` secret, swapping the target set in one step and keeping the old set when the new
//!   file is invalid.
//! - A target whose secret cannot be read loads **disabled**, with reason `secret_unavailable`,
//!   and a [`Warning`]; the rest load.
//! - **Kubernetes Secrets** (feature `kubernetes`): `KubernetesSource` lists and watches the
//!   Secrets of a namespace that match a label selector; each Secret's `config` key holds one
//!   target, and `${secret:KEY}` settings take their value from another key of the same Secret.
//!   A Secret's target is untrusted ([`Trust::Discovered`]): it may not read files or
//!   environment variables, and sends only to allowed, non-private hosts. An invalid Secret is
//!   skipped, counted and logged; an invalid edit keeps the last valid version.
//! - [`MergedSource`] serves the file's and another source's targets as one set; a name both
//!   define is a [`Conflict`], reported, and the file's target wins.
//! - Publishers are built by a [`PublisherFactory`] the caller supplies (the server maps each
//!   kind to its publisher crate), so this crate depends on no publisher.
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use alert_core::{BoxFuture, PublishError, PublishRequest, Publisher, Receipt, Target};
//!
//! #[derive(Debug)]
//! struct Accept;
//! impl Publisher for Accept {
//!     fn publish<'a>(&'a self, _: PublishRequest<'a>) -> BoxFuture<'a, Result<Receipt, PublishError>> {
//!         Box::pin(async { Ok(Receipt::default()) })
//!     }
//! }
//! let factory = |_: &Target| -> Result<Arc<dyn Publisher>, alert_core::BuildError> { Ok(Arc::new(Accept)) };
//! let yaml = "targets:\n  - name: ops\n    kind: webhook\n    filter: ['severity=~\"critical|warning\"']\n";
//! let loaded = discovery::load_str(yaml, Path::new("inline.yaml"), &factory).unwrap();
//! assert_eq!(loaded.targets.len(), 1);
//! let err = discovery::parse("targets:\n  - name: Bad_Name\n    kind: webhook\n", Path::new("x.yaml")).unwrap_err();
//! assert!(err.to_string().contains("targets[0].name"), "{err}");
//! ```

mod config;
mod duration;
mod file;
mod hosts;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod limits;
mod load;
mod merged;
mod trust;

pub use config::{
    AuthConfig, CircuitBreakerConfig, Config, DiscoveryConfig, HealthConfig, HealthStrategyName,
    IngestConfig, KubernetesConfig, PublishingConfig, QueueBackend, QueueConfig, ServerConfig,
    TargetSpec, TlsConfig,
};
pub use duration::{Dur, MAX_DURATION};
pub use file::{FileSource, ReloadStatus};
pub use hosts::{HostPattern, HostRefusal};
#[cfg(feature = "kubernetes")]
pub use kubernetes::{KubernetesError, KubernetesSource, SecretTargetError};
pub use limits::{
    MAX_ATTEMPTS, MAX_CONCURRENT, MAX_IN_FLIGHT, MAX_INTERVAL, MAX_PER_MINUTE, MAX_TIMEOUT,
};
pub use load::{
    ConfigError, Loaded, PublisherFactory, Warning, build_targets, load_file, load_str, parse,
    referenced_files, target_of,
};
pub use merged::{Conflict, MergedSource};
pub use trust::{Discovered, Trust, TrustError};

//! alertpub publishes every alert, in parallel, to many notification targets.
//!
//! This crate is the facade other teams depend on. It re-exports the stable pieces:
//! - [`core`]: alerts, targets, errors and the traits ([`core::Publisher`], [`core::HealthView`],
//!   [`core::CircuitGate`], [`core::TargetSource`], [`core::PublishObserver`],
//!   [`core::MessageRefStore`]);
//! - [`fanout`]: target selection, [`fanout::TargetCall`] and the parallel engine;
//! - [`formatters`]: pure functions from an alert to each service's payload;
//! - [`http`]: the shared HTTP client stack publishers are built on;
//! - [`publishers`]: one module per target kind, each with its `Config` and `from_settings`;
//! - [`health`]: health state, active probes and circuit breakers;
//! - [`discovery`]: the config file (hot reload) and, with the `kubernetes` feature, Kubernetes
//!   Secrets as a [`core::TargetSource`];
//! - [`queue`]: [`core::JobStore`] backends, and [`fanout::Dispatcher`] drives them;
//! - [`metrics`]: the Prometheus metrics, fed as a [`core::PublishObserver`].
//!
//! Building a PagerDuty publisher and publishing through the engine:
//!
//! ```no_run
//! use std::sync::Arc;
//! use alertpub::core::{
//!     InMemoryMessageRefs, KindSettings, StaticTargetSource, Target, TargetEntry, TargetKind, TargetName,
//!     TargetSet,
//! };
//! use alertpub::fanout::{FanoutEngine, PublishOptions};
//! use alertpub::http::{BuildContext, ClientConfig, HttpClient};
//!
//! # async fn example(alert: alertpub::core::EnrichedAlert) -> Result<(), Box<dyn std::error::Error>> {
//! let name = TargetName::new("pagerduty-oncall")?;
//! let settings: KindSettings = serde_json::from_value(serde_json::json!({
//!     "routing_key": "${env:PAGERDUTY_ROUTING_KEY}",
//! }))?;
//! let context = BuildContext::new(
//!     name.clone(),
//!     HttpClient::new(&ClientConfig::default())?,
//!     Arc::new(InMemoryMessageRefs::new()),
//! );
//! let publisher = alertpub::publishers::pagerduty::from_settings(&settings, &context)?;
//! let targets = TargetSet::new(vec![TargetEntry::new(Target::new(name, TargetKind::Pagerduty), publisher)])?;
//! let engine = FanoutEngine::builder(Arc::new(StaticTargetSource::new(targets))).build();
//! let result = engine.publish_to_all(&alert, &PublishOptions::default()).await?;
//! println!("{} of {} targets accepted the alert", result.success_count, result.total_targets);
//! # Ok(())
//! # }
//! ```

pub use alert_core as core;
pub use discovery;
pub use fanout;
pub use formatters;
pub use health;
pub use metrics;
pub use publisher_http as http;
pub use queue;

/// One module per target kind.
pub mod publishers {
    pub use publishers_alertmanager as alertmanager;
    pub use publishers_discord as discord;
    pub use publishers_email as email;
    pub use publishers_incidentio as incidentio;
    pub use publishers_msteams as msteams;
    pub use publishers_opsgenie as opsgenie;
    pub use publishers_pagerduty as pagerduty;
    pub use publishers_rootly as rootly;
    pub use publishers_slack as slack;
    pub use publishers_telegram as telegram;
    pub use publishers_webhook as webhook;
}

//! Publishes alerts to the PagerDuty Events API v2: `POST {url}/v2/enqueue`, where `url`
//! defaults to `https://events.pagerduty.com`. A `202 Accepted` is success.
//!
//! A firing alert is a `trigger` event and a resolved one a `resolve` event. The `dedup_key` is
//! derived from the alert's fingerprint alone ([`formatters::pagerduty::dedup_key`]), so a resolve
//! sent by a fresh process, after a restart, still resolves the incident its trigger opened: no
//! cache is involved. The summary is never empty and at most 1024 characters; a body over 512 KB
//! drops `custom_details` first.
//!
//! Used on its own:
//!
//! ```no_run
//! use std::sync::Arc;
//! use alert_core::{InMemoryMessageRefs, KindSettings, TargetName};
//! use publisher_http::{BuildContext, ClientConfig, HttpClient};
//!
//! # fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let settings: KindSettings = serde_json::from_value(serde_json::json!({
//!     "routing_key_file": "/run/secrets/pagerduty-routing-key",
//!     "component": "database",
//! }))?;
//! let context = BuildContext::new(
//!     TargetName::new("pagerduty-oncall")?,
//!     HttpClient::new(&ClientConfig::default())?,
//!     Arc::new(InMemoryMessageRefs::new()),
//! );
//! let publisher = publishers_pagerduty::from_settings(&settings, &context)?;
//! # let _ = publisher;
//! # Ok(())
//! # }
//! ```

use alert_core::{HealthProbe, KindSettings, PublishError, Secret};
use formatters::TemplateConfig;
use formatters::Templates;
use formatters::pagerduty::PagerDutySettings;
use publisher_http::{
    BaseUrl, BuildContext, BuildError, Call, Credential, HttpPublisher, HttpRequest, Outgoing,
    split_settings,
};
use serde::Deserialize;

/// The Events API's default base URL.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com";

/// The transport half of a PagerDuty target's settings; the rest of the keys are the event's
/// [`PagerDutySettings`] (`source`, `component`, `group`, `class`, `client`, `client_url`,
/// `severity`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The base URL, default `https://events.pagerduty.com`; `/v2/enqueue` is appended.
    #[serde(default)]
    pub url: BaseUrl,
    /// The integration's routing key (or `routing_key_file`).
    #[serde(default)]
    pub routing_key: Option<Credential>,
    /// Templates for the summary.
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The PagerDuty publisher.
pub struct PagerDutyPublisher {
    endpoint: String,
    routing_key: Secret<String>,
    event: PagerDutySettings,
    templates: Templates,
}

publisher_http::from_settings!(PagerDutyPublisher);

impl HttpPublisher for PagerDutyPublisher {
    const KIND: &'static str = "pagerduty";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let (config, event): (Config, PagerDutySettings) =
            split_settings(settings, &["url", "routing_key", "templates"])?;
        Ok(Self {
            endpoint: format!("{}/v2/enqueue", config.url.or("url", DEFAULT_URL)?),
            routing_key: Credential::required(config.routing_key.as_ref(), "routing_key")?,
            event,
            templates: config.templates.compile()?,
        })
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let body = formatters::pagerduty::event(
            call.alert,
            &call.context,
            self.routing_key.expose(),
            &self.event,
            &self.templates,
        )?;
        let request = HttpRequest::post(&self.endpoint)?
            .json(body)
            .scrub(&self.routing_key);
        Ok(request.into())
    }

    /// `GET` on the enqueue endpoint. The routing key travels in event bodies, so the probe carries
    /// no credentials: it checks reachability only.
    fn health_probe(&self) -> Option<HealthProbe> {
        Some(HealthProbe::new(Secret::new(self.endpoint.clone())))
    }
}

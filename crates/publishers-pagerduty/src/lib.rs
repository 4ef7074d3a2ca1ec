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

use std::path::PathBuf;
use std::sync::Arc;

use alert_core::{
    BoxFuture, HealthProbe, KindSettings, PublishError, PublishRequest, Publisher, Receipt, Secret,
};
use formatters::pagerduty::PagerDutySettings;
use formatters::{FormatContext, TemplateConfig, Templates};
use publisher_http::{
    BuildContext, BuildError, DefaultClassifier, HttpClient, HttpRequest, check_base_url,
    parse_settings, resolve_secret, split_settings,
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
    pub url: Option<String>,
    /// The integration's routing key, or `${env:VAR}`.
    #[serde(default)]
    pub routing_key: Option<Secret<String>>,
    /// A file holding the routing key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// Templates for the summary.
    #[serde(default)]
    pub templates: TemplateConfig,
}

const OWN_KEYS: &[&str] = &["url", "routing_key", "routing_key_file", "templates"];

/// The PagerDuty publisher.
pub struct PagerDutyPublisher {
    client: HttpClient,
    endpoint: String,
    routing_key: Secret<String>,
    event: PagerDutySettings,
    templates: Templates,
}

impl std::fmt::Debug for PagerDutyPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyPublisher")
            .field("endpoint", &alert_core::redact_url(&self.endpoint))
            .finish_non_exhaustive()
    }
}

/// Builds the publisher from a target's settings.
///
/// # Errors
/// [`BuildError`]; an unreadable routing key is [`BuildError::SecretUnavailable`].
pub fn from_settings(
    settings: &KindSettings,
    context: &BuildContext,
) -> Result<Arc<dyn Publisher>, BuildError> {
    let (own, event) = split_settings(settings, OWN_KEYS);
    Ok(Arc::new(PagerDutyPublisher::new(
        parse_settings(&own)?,
        parse_settings(&event)?,
        context.client.clone(),
    )?))
}

impl PagerDutyPublisher {
    /// Builds the publisher.
    ///
    /// # Errors
    /// [`BuildError`] for a bad URL or template, or an unavailable routing key.
    pub fn new(
        config: Config,
        event: PagerDutySettings,
        client: HttpClient,
    ) -> Result<Self, BuildError> {
        let base = check_base_url("url", config.url.as_deref().unwrap_or(DEFAULT_URL))?;
        let routing_key = resolve_secret(
            "routing_key",
            config.routing_key.as_ref().map(|s| s.expose().as_str()),
            config.routing_key_file.as_deref(),
        )?;
        let templates =
            Templates::new(&config.templates).map_err(|e| BuildError::Template(e.to_string()))?;
        Ok(Self {
            client,
            endpoint: format!("{base}/v2/enqueue"),
            routing_key,
            event,
            templates,
        })
    }
}

impl Publisher for PagerDutyPublisher {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async move {
            let context = FormatContext::new(request.status, request.at);
            let body = formatters::pagerduty::event(
                request.alert,
                &context,
                self.routing_key.expose(),
                &self.event,
                &self.templates,
            )?;
            let http = HttpRequest::post(&self.endpoint)?
                .json(body)
                .scrub(&self.routing_key);
            let response = self.client.send(http, &DefaultClassifier).await?;
            Ok(Receipt::with_status(response.status.as_u16()))
        })
    }

    /// `GET` on the enqueue endpoint. The routing key travels in event bodies, so the probe carries
    /// no credentials: it checks reachability only.
    fn health_probe(&self) -> Option<HealthProbe> {
        Some(HealthProbe::new(Secret::new(self.endpoint.clone())))
    }
}

//! Publishes alerts to the Opsgenie Alert API v2 (<https://docs.opsgenie.com/docs/alert-api>).
//!
//! - A firing alert is created with `POST {url}/v2/alerts`, its `alias` derived from the
//!   fingerprint ([`formatters::opsgenie::alias`]), so Opsgenie keeps one open alert for it and
//!   folds repeats into it.
//! - A resolve closes it by alias: `POST {url}/v2/alerts/{alias}/close?identifierType=alias`
//!   (the API's `identifierType` is `id`, `alias` or `tiny`). No stored id is needed, so a resolve
//!   from a fresh process closes the alert its firing opened.
//! - Authentication is `Authorization: GenieKey <api_key>`, the key of an API integration.
//! - `url` defaults to the US instance, `https://api.opsgenie.com`; `region: eu` picks
//!   `https://api.eu.opsgenie.com`, as the documentation requires for EU accounts.
//! - Opsgenie answers both calls with `202 Accepted` and processes them asynchronously.
//!
//! Rate limits: Opsgenie documents a per-domain token bucket checked per minute and per second
//! (<https://docs.opsgenie.com/docs/api-rate-limiting>), whose numbers depend on the plan, and
//! answers an excess with 429. There is no default limit here; a 429 pauses the target's lane,
//! for its `Retry-After` when one is sent.
//!
//! Health probe: `GET {url}/v2/account` without the key, for reachability only. The account
//! endpoint needs a key not restricted to alerts, which an alert integration's key usually is,
//! so sending the key would show a working target as refusing it.

use alert_core::{HealthProbe, KindSettings, PublishError, Secret};
use formatters::opsgenie::{self, OpsgenieSettings};
use formatters::{TemplateConfig, Templates};
use publisher_http::{
    BaseUrl, BuildContext, BuildError, Call, Credential, HttpPublisher, HttpRequest, Outgoing,
    split_settings,
};
use serde::Deserialize;

/// The US instance's base URL, the default.
pub const US_URL: &str = "https://api.opsgenie.com";
/// The EU instance's base URL.
pub const EU_URL: &str = "https://api.eu.opsgenie.com";

/// Which Opsgenie instance the account lives on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `https://api.opsgenie.com`.
    #[default]
    Us,
    /// `https://api.eu.opsgenie.com`.
    Eu,
}

/// The transport half of an Opsgenie target's settings; the other keys are the alert's
/// [`OpsgenieSettings`] (`priority`, `tags`, `responders`, `source`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The base URL; by default the region's.
    #[serde(default)]
    pub url: BaseUrl,
    /// The instance, `us` (the default) or `eu`.
    #[serde(default)]
    pub region: Region,
    /// The API integration's key (or `api_key_file`).
    #[serde(default)]
    pub api_key: Option<Credential>,
    /// Templates for the message and description.
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The Opsgenie publisher.
pub struct OpsgeniePublisher {
    base: String,
    key: Secret<String>,
    authorization: Secret<String>,
    alert: OpsgenieSettings,
    templates: Templates,
}

publisher_http::from_settings!(OpsgeniePublisher);

impl HttpPublisher for OpsgeniePublisher {
    const KIND: &'static str = "opsgenie";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let (config, alert): (Config, OpsgenieSettings) =
            split_settings(settings, &["url", "region", "api_key", "templates"])?;
        let region = match config.region {
            Region::Us => US_URL,
            Region::Eu => EU_URL,
        };
        let key = Credential::required(config.api_key.as_ref(), "api_key")?;
        Ok(Self {
            base: config.url.or("url", region)?,
            authorization: Secret::new(format!("GenieKey {}", key.expose())),
            key,
            alert,
            templates: config.templates.compile()?,
        })
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let (url, body) = if call.is_resolve() {
            let alias = opsgenie::alias(call.fingerprint());
            (
                format!("{}/v2/alerts/{alias}/close?identifierType=alias", self.base),
                opsgenie::close_body(call.alert, &call.context, &self.alert, &self.templates)?,
            )
        } else {
            (
                format!("{}/v2/alerts", self.base),
                opsgenie::create_body(call.alert, &call.context, &self.alert, &self.templates)?,
            )
        };
        let request = HttpRequest::post(&url)?
            .json(body)
            .secret_header("Authorization", &self.authorization)?
            .scrub(&self.key);
        Ok(request.into())
    }

    /// `GET {url}/v2/account`, without the key (see the crate docs).
    fn health_probe(&self) -> Option<HealthProbe> {
        Some(HealthProbe::new(Secret::new(format!(
            "{}/v2/account",
            self.base
        ))))
    }
}

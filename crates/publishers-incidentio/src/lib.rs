//! Publishes alerts to an incident.io HTTP alert source
//! (<https://docs.incident.io/api-reference/alert-events-v2/createhttp>).
//!
//! - Every state is `POST {url}/v2/alert_events/http/{source_config_id}` with a Bearer token (the
//!   alert source's), and the body of [`formatters::incidentio::event`]: `status` is `firing` or
//!   `resolved`, and the `deduplication_key` derives from the fingerprint alone, so a resolve from
//!   a fresh process resolves the alert its firing opened.
//! - `url` defaults to `https://api.incident.io`. incident.io answers `202 Accepted`.
//!
//! Rate limit: incident.io accepts 120 events a minute per alert source
//! (<https://docs.incident.io/incidents/auto-create>), the kind's default; beyond it, 429.
//!
//! Health probe: none. The documented check of a token, `GET /v1/identity`, is for API keys, and
//! no endpoint checks an alert source's token without creating an event.

use alert_core::{KindSettings, PublishError, Secret};
use formatters::{TemplateConfig, Templates};
use publisher_http::{
    BaseUrl, BuildContext, BuildError, Call, Credential, HttpPublisher, HttpRequest, Outgoing,
    parse_settings,
};
use serde::Deserialize;

/// The API's default base URL.
pub const DEFAULT_URL: &str = "https://api.incident.io";

/// An incident.io target's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The base URL, default `https://api.incident.io`.
    #[serde(default)]
    pub url: BaseUrl,
    /// The HTTP alert source's config id, from its URL.
    pub source_config_id: String,
    /// The alert source's token (or `token_file`).
    #[serde(default)]
    pub token: Option<Credential>,
    /// Templates for the title and description.
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The incident.io publisher.
pub struct IncidentIoPublisher {
    endpoint: String,
    token: Secret<String>,
    templates: Templates,
}

publisher_http::from_settings!(IncidentIoPublisher);

impl HttpPublisher for IncidentIoPublisher {
    const KIND: &'static str = "incidentio";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let config: Config = parse_settings(settings)?;
        let id = &config.source_config_id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(BuildError::Settings(
                "source_config_id must be the alert source's id (letters, digits, - and _)"
                    .to_owned(),
            ));
        }
        Ok(Self {
            endpoint: format!(
                "{}/v2/alert_events/http/{id}",
                config.url.or("url", DEFAULT_URL)?
            ),
            token: Credential::required(config.token.as_ref(), "token")?,
            templates: config.templates.compile()?,
        })
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let body = formatters::incidentio::event(call.alert, &call.context, &self.templates)?;
        Ok(HttpRequest::post(&self.endpoint)?
            .json(body)
            .bearer(&self.token)?
            .into())
    }
}

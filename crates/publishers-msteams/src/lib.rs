//! Publishes alerts to Microsoft Teams through a Workflows webhook: a flow started by the
//! **When a Teams webhook request is received** trigger, which posts the Adaptive Card it is sent
//! (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>).
//!
//! - Every state is one `POST` of [`formatters::msteams::message`] to the workflow's URL: a
//!   message envelope with one Adaptive Card, at most 28 KB. The Office 365 connectors'
//!   MessageCard format is not sent: the connectors are retired, and Workflows take Adaptive
//!   Cards only.
//! - The URL carries the flow's signature (`sig=…`), so it is a credential: `url`, `${env:…}` or
//!   `url_file`, never shown.
//! - A Workflows trigger answers `202 Accepted` (any 2xx counts): it has started the flow, which
//!   posts the card afterwards.
//! - The retired connectors answered a throttled request with `200` and a body naming HTTP 429;
//!   such an answer is classified as rate limited, not delivered.
//!
//! Rate limit: Teams throttles a webhook that is sent more than four requests a second (same
//! page), so the kind's default is 240 a minute, four a second at most.
//!
//! Health probe: none. Every `POST` runs the flow, and no read-only call is documented.

use alert_core::{ErrorKind, KindSettings, PublishError, Secret};
use formatters::{TemplateConfig, Templates};
use http::Method;
use publisher_http::{
    BuildContext, BuildError, Call, Classify, Credential, HttpPublisher, HttpRequest, HttpResponse,
    Outgoing, check_base_url, classify_status, parse_settings,
};
use serde::Deserialize;

/// A Teams target's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The workflow's URL (or `url_file`).
    #[serde(default)]
    pub url: Option<Credential>,
    /// Templates for the title and description.
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The Teams publisher.
pub struct TeamsPublisher {
    url: Secret<String>,
    templates: Templates,
}

publisher_http::from_settings!(TeamsPublisher);

/// Status first; then a `2xx` whose body says the connector was throttled is rate limited.
struct TeamsClassifier;

impl Classify for TeamsClassifier {
    fn classify(&self, response: &HttpResponse) -> Result<(), PublishError> {
        classify_status(response)?;
        if String::from_utf8_lossy(&response.body).contains("HTTP error 429") {
            return Err(PublishError::new(
                ErrorKind::RateLimited { retry_after: None },
                "Teams throttled the webhook (HTTP error 429 in the answer's body)",
            )
            .with_status(response.status.as_u16()));
        }
        Ok(())
    }
}

impl HttpPublisher for TeamsPublisher {
    const KIND: &'static str = "msteams";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let config: Config = parse_settings(settings)?;
        let url = Credential::required(config.url.as_ref(), "url")?;
        check_base_url("url", url.expose())?;
        Ok(Self {
            url,
            templates: config.templates.compile()?,
        })
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let body = formatters::msteams::message(call.alert, &call.context, &self.templates)?;
        let request = HttpRequest::secret_url(Method::POST, &self.url)?.json(body);
        Ok(Outgoing::classified_by(request, &TeamsClassifier))
    }
}

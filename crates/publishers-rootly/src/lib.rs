//! Publishes alerts to the Rootly Alerts API, where `url` defaults to `https://api.rootly.com`.
//!
//! - A firing alert is created with `POST {url}/v1/alerts`, `Content-Type:
//!   application/vnd.api+json` and a Bearer API key, with the JSON:API body
//!   `{data:{type:"alerts",attributes:{…}}}` built by [`formatters::rootly`]. Its
//!   `deduplication_key` and `external_id` derive from the fingerprint, so Rootly folds repeats of
//!   one alert together.
//! - Rootly's create call has no `resolved` status (its `status` is `open` or `triggered`,
//!   <https://docs.rootly.com/api-reference/alerts/creates-an-alert>). Resolving is its own
//!   endpoint, `POST {url}/v1/alerts/{id}/resolve`
//!   (<https://docs.rootly.com/api-reference/alerts/resolves-an-alert>), addressed by the id
//!   Rootly returned at creation, with the body
//!   `{"data":{"type":"alerts","attributes":{"resolution_message":…}}}` built by
//!   [`formatters::rootly::resolve_body`]; the message is the title rendered for the resolve, such
//!   as `[RESOLVED] DiskFull on db-1`. `resolve_related_incidents` is not sent: an incident is
//!   people's work, and closing it stays theirs. The id is kept in the
//!   [`alert_core::MessageRefStore`] by fingerprint, and forgotten once the resolve is accepted.
//! - **A resolve with no stored id is not sent**, and fails as `permanent(config)` with the
//!   message "no Rootly alert id is stored for this alert; Rootly cannot look one up by
//!   deduplication_key". This happens when the create's answer was lost or carried no usable id,
//!   or the store was lost. Rootly's list endpoint
//!   (<https://docs.rootly.com/api-reference/alerts/list-alerts>) filters by status, source,
//!   services, labels and dates, but not by `deduplication_key` or `external_id`, so the id cannot
//!   be found again; and a second create with an `ended_at` does not resolve anything, because
//!   `status` cannot say `resolved` and Rootly folds the repeat into the open alert. Failing loudly
//!   is what an on-call engineer needs here: the resolve lands in the dead-letter queue (counted in
//!   `alertpub_target_publish_failures_total{reason="permanent"}`), where an operator sees that the
//!   Rootly alert is still open and must be resolved by hand, instead of a success that resolved
//!   nothing. A `config` failure does not count against the target's health or breaker: Rootly is
//!   fine, it is our side that cannot address the alert.
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
//!     "api_key_file": "/run/secrets/rootly-api-key",
//! }))?;
//! let context = BuildContext::new(
//!     TargetName::new("rootly-prod")?,
//!     HttpClient::new(&ClientConfig::default())?,
//!     Arc::new(InMemoryMessageRefs::new()),
//! );
//! let publisher = publishers_rootly::from_settings(&settings, &context)?;
//! # let _ = publisher;
//! # Ok(())
//! # }
//! ```

use alert_core::{
    ErrorKind, HealthProbe, KindSettings, MessageRef, PermanentReason, PublishError, Secret,
};
use formatters::rootly::RootlySettings;
use formatters::{TemplateConfig, Templates};
use publisher_http::{
    Answer, BaseUrl, BuildContext, BuildError, Call, Credential, HttpPublisher, HttpRequest,
    HttpResponse, Outgoing, RefUpdate, split_settings,
};
use serde::Deserialize;

/// The API's default base URL.
pub const DEFAULT_URL: &str = "https://api.rootly.com";

/// The JSON:API media type Rootly requires.
pub const CONTENT_TYPE: &str = "application/vnd.api+json";

/// Why a resolve with no stored Rootly alert id fails (see the crate docs).
const NO_STORED_ID: &str = "no Rootly alert id is stored for this alert; Rootly cannot look one \
                            up by deduplication_key, so the resolve was not sent and the Rootly \
                            alert must be resolved by hand";

/// The transport half of a Rootly target's settings; the other keys are the alert's
/// [`RootlySettings`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The base URL, default `https://api.rootly.com`.
    #[serde(default)]
    pub url: BaseUrl,
    /// The API key (or `api_key_file`).
    #[serde(default)]
    pub api_key: Option<Credential>,
    /// Templates for the summary and description.
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The Rootly publisher.
pub struct RootlyPublisher {
    base: String,
    api_key: Secret<String>,
    alert: RootlySettings,
    templates: Templates,
}

publisher_http::from_settings!(RootlyPublisher);

impl RootlyPublisher {
    fn post(&self, path: &str, body: Vec<u8>) -> Result<Outgoing, PublishError> {
        let request = HttpRequest::post(&format!("{}{path}", self.base))?
            .body_with_type(body, CONTENT_TYPE)
            .bearer(&self.api_key)?;
        Ok(request.into())
    }
}

#[derive(Deserialize)]
struct Created {
    data: CreatedData,
}

#[derive(Deserialize)]
struct CreatedData {
    id: serde_json::Value,
}

impl HttpPublisher for RootlyPublisher {
    const KIND: &'static str = "rootly";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let (config, alert): (Config, RootlySettings) =
            split_settings(settings, &["url", "api_key", "templates"])?;
        Ok(Self {
            base: config.url.or("url", DEFAULT_URL)?,
            api_key: Credential::required(config.api_key.as_ref(), "api_key")?,
            alert,
            templates: config.templates.compile()?,
        })
    }

    /// A resolve needs the id Rootly gave the firing.
    fn threads(&self) -> bool {
        true
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        if call.is_resolve() {
            let Some(created) = &call.original else {
                return Err(PublishError::new(
                    ErrorKind::Permanent {
                        reason: PermanentReason::Config,
                    },
                    NO_STORED_ID,
                ));
            };
            let body =
                formatters::rootly::resolve_body(call.alert, &call.context, &self.templates)?;
            return self.post(&format!("/v1/alerts/{}/resolve", created.id), body);
        }
        let body = formatters::rootly::alert_body(
            call.alert,
            &call.context,
            &self.alert,
            &self.templates,
        )?;
        self.post("/v1/alerts", body)
    }

    /// A resolve forgets the id; a firing keeps the id Rootly answered with, when it is a plain
    /// one (it goes into a URL path later).
    fn answer(&self, call: &Call<'_>, response: &HttpResponse) -> Result<Answer, PublishError> {
        if call.is_resolve() {
            return Ok(Answer::Accepted {
                message_ref: None,
                refs: RefUpdate::Forget,
            });
        }
        let Ok(created) = serde_json::from_slice::<Created>(&response.body) else {
            return Ok(Answer::accepted());
        };
        let id = match created.data.id {
            serde_json::Value::String(id) => id,
            other => other.to_string(),
        };
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Ok(Answer::accepted());
        }
        Ok(Answer::keep(MessageRef::new("", id)))
    }

    /// `GET /v1/alerts` with the API key, so a rejected key shows as degraded(auth).
    fn health_probe(&self) -> Option<HealthProbe> {
        let bearer = Secret::new(format!("Bearer {}", self.api_key.expose()));
        Some(
            HealthProbe::new(Secret::new(format!("{}/v1/alerts", self.base)))
                .with_header("Authorization", bearer),
        )
    }
}

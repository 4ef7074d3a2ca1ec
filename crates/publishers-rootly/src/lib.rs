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

use std::path::PathBuf;
use std::sync::Arc;

use alert_core::{
    AlertStatus, BoxFuture, ErrorKind, HealthProbe, KindSettings, MessageRef, MessageRefStore,
    PermanentReason, PublishError, PublishRequest, Publisher, Receipt, Secret, TargetName,
};
use formatters::rootly::RootlySettings;
use formatters::{FormatContext, TemplateConfig, Templates};
use publisher_http::{
    BuildContext, BuildError, DefaultClassifier, HttpClient, HttpRequest, check_base_url,
    parse_settings, resolve_secret, split_settings,
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
    pub url: Option<String>,
    /// The API key, or `${env:VAR}`.
    #[serde(default)]
    pub api_key: Option<Secret<String>>,
    /// A file holding the API key.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Templates for the summary and description.
    #[serde(default)]
    pub templates: TemplateConfig,
}

const OWN_KEYS: &[&str] = &["url", "api_key", "api_key_file", "templates"];

/// The Rootly publisher.
pub struct RootlyPublisher {
    client: HttpClient,
    base: String,
    api_key: Secret<String>,
    target: TargetName,
    alert: RootlySettings,
    templates: Templates,
    refs: Arc<dyn MessageRefStore>,
}

impl std::fmt::Debug for RootlyPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootlyPublisher")
            .field("target", &self.target)
            .field("base", &alert_core::redact_url(&self.base))
            .finish_non_exhaustive()
    }
}

/// Builds the publisher from a target's settings.
///
/// # Errors
/// [`BuildError`]; an unreadable API key is [`BuildError::SecretUnavailable`].
pub fn from_settings(
    settings: &KindSettings,
    context: &BuildContext,
) -> Result<Arc<dyn Publisher>, BuildError> {
    let (own, alert) = split_settings(settings, OWN_KEYS);
    Ok(Arc::new(RootlyPublisher::new(
        &parse_settings::<Config>(&own)?,
        parse_settings(&alert)?,
        context,
    )?))
}

impl RootlyPublisher {
    /// Builds the publisher.
    ///
    /// # Errors
    /// [`BuildError`] for a bad URL or template, or an unavailable API key.
    pub fn new(
        config: &Config,
        alert: RootlySettings,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let base = check_base_url("url", config.url.as_deref().unwrap_or(DEFAULT_URL))?;
        let api_key = resolve_secret(
            "api_key",
            config.api_key.as_ref().map(|s| s.expose().as_str()),
            config.api_key_file.as_deref(),
        )?;
        let templates =
            Templates::new(&config.templates).map_err(|e| BuildError::Template(e.to_string()))?;
        Ok(Self {
            client: context.client.clone(),
            base,
            api_key,
            target: context.target.clone(),
            alert,
            templates,
            refs: context.message_refs.clone(),
        })
    }

    fn request(&self, path: &str, body: Vec<u8>) -> Result<HttpRequest, PublishError> {
        HttpRequest::post(&format!("{}{path}", self.base))?
            .body_with_type(body, CONTENT_TYPE)
            .bearer(&self.api_key)
            .map_err(PublishError::from)
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

impl Publisher for RootlyPublisher {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async move {
            let context = FormatContext::new(request.status, request.at);
            let fingerprint = request.alert.alert.fingerprint();
            if context.status == AlertStatus::Resolved {
                let Some(created) = self.refs.get(self.target.as_str(), fingerprint).await else {
                    return Err(PublishError::new(
                        ErrorKind::Permanent {
                            reason: PermanentReason::Config,
                        },
                        NO_STORED_ID,
                    ));
                };
                let body =
                    formatters::rootly::resolve_body(request.alert, &context, &self.templates)?;
                let path = format!("/v1/alerts/{}/resolve", created.id);
                let response = self
                    .client
                    .send(self.request(&path, body)?, &DefaultClassifier)
                    .await?;
                self.refs.remove(self.target.as_str(), fingerprint).await;
                return Ok(Receipt::with_status(response.status.as_u16()));
            }
            let body = formatters::rootly::alert_body(
                request.alert,
                &context,
                &self.alert,
                &self.templates,
            )?;
            let response = self
                .client
                .send(self.request("/v1/alerts", body)?, &DefaultClassifier)
                .await?;
            let mut receipt = Receipt::with_status(response.status.as_u16());
            // Only a firing gets here: a resolve returned above.
            if let Ok(created) = serde_json::from_slice::<Created>(&response.body) {
                let id = match created.data.id {
                    serde_json::Value::String(id) => id,
                    other => other.to_string(),
                };
                // The id goes into a URL path later, so only plain ids are kept.
                if id.is_empty()
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Ok(receipt);
                }
                self.refs
                    .put(
                        self.target.as_str(),
                        fingerprint,
                        MessageRef::new("", id.clone()),
                    )
                    .await;
                receipt.message_ref = Some(id);
            }
            Ok(receipt)
        })
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

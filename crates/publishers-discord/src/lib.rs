//! Publishes alerts to a Discord channel through a webhook
//! (<https://discord.com/developers/docs/resources/webhook#execute-webhook>).
//!
//! - Every state is `POST {url}?wait=true` with the embed of [`formatters::discord::message`],
//!   within Discord's embed limits. `wait=true` makes Discord confirm that the message was saved
//!   and answer it, so an unsaved message is an error rather than a silent loss; the message's
//!   `id` is the receipt's message ref.
//! - A resolve is a message of its own (green), not an edit of the firing's: an edit notifies
//!   no one, and webhook messages cannot be replies.
//! - `thread_id` posts into a thread (or a forum post) of the channel.
//! - The URL holds the webhook's token, so it is a credential: `url`, `${env:…}` or `url_file`.
//!
//! Rate limits: Discord sends its limits per route in headers and answers an excess with 429,
//! a `Retry-After` header and a `retry_after` (seconds, with decimals) in the body
//! (<https://discord.com/developers/docs/topics/rate-limits>); both are honoured, and the
//! documentation asks clients not to hard-code limits, so the kind has no default one.
//!
//! Health probe: `GET {url}`, "Get Webhook with Token", which needs no other authentication and
//! posts nothing.

use std::time::Duration;

use alert_core::{HealthProbe, KindSettings, PublishError, Secret};
use formatters::discord::DiscordSettings;
use formatters::{TemplateConfig, Templates};
use http::Method;
use publisher_http::{
    Answer, BuildContext, BuildError, Call, Classify, Credential, HttpPublisher, HttpRequest,
    HttpResponse, Outgoing, RefUpdate, check_base_url, classify_status_with, split_settings,
};
use serde::Deserialize;

/// The transport half of a Discord target's settings; the other keys are the message's
/// [`DiscordSettings`] (`username`, `avatar_url`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The webhook's URL (or `url_file`).
    #[serde(default)]
    pub url: Option<Credential>,
    /// A thread of the channel to post in.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Templates for the title and description.
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The Discord publisher.
pub struct DiscordPublisher {
    url: Secret<String>,
    execute: Secret<String>,
    message: DiscordSettings,
    templates: Templates,
}

publisher_http::from_settings!(DiscordPublisher);

/// Status first; a 429 without a `Retry-After` header takes the body's `retry_after`.
struct DiscordClassifier;

#[derive(Deserialize)]
struct RateLimited {
    retry_after: f64,
}

impl Classify for DiscordClassifier {
    fn classify(&self, response: &HttpResponse) -> Result<(), PublishError> {
        classify_status_with(response, |body| {
            serde_json::from_slice::<RateLimited>(body)
                .ok()
                .filter(|r| r.retry_after.is_finite() && r.retry_after >= 0.0)
                .map(|r| Duration::from_secs_f64(r.retry_after.min(3_600.0)))
        })
    }
}

#[derive(Deserialize)]
struct Message {
    id: String,
}

impl HttpPublisher for DiscordPublisher {
    const KIND: &'static str = "discord";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let (config, message): (Config, DiscordSettings) =
            split_settings(settings, &["url", "thread_id", "templates"])?;
        let url = Credential::required(config.url.as_ref(), "url")?;
        check_base_url("url", url.expose())?;
        let mut execute = format!(
            "{}{}wait=true",
            url.expose(),
            if url.expose().contains('?') { '&' } else { '?' }
        );
        if let Some(thread) = &config.thread_id {
            if thread.is_empty() || !thread.chars().all(|c| c.is_ascii_digit()) {
                return Err(BuildError::Settings(
                    "thread_id must be a Discord id (digits)".to_owned(),
                ));
            }
            execute.push_str(&format!("&thread_id={thread}"));
        }
        Ok(Self {
            url,
            execute: Secret::new(execute),
            message,
            templates: config.templates.compile()?,
        })
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let body = formatters::discord::message(
            call.alert,
            &call.context,
            &self.message,
            &self.templates,
        )?;
        let request = HttpRequest::secret_url(Method::POST, &self.execute)?.json(body);
        Ok(Outgoing::classified_by(request, &DiscordClassifier))
    }

    /// The saved message's id, for the receipt.
    fn answer(&self, _: &Call<'_>, response: &HttpResponse) -> Result<Answer, PublishError> {
        let id = serde_json::from_slice::<Message>(&response.body)
            .ok()
            .map(|m| m.id);
        Ok(Answer::Accepted {
            message_ref: id,
            refs: RefUpdate::Unchanged,
        })
    }

    /// `GET {url}`: the webhook itself, with no other authentication.
    fn health_probe(&self) -> Option<HealthProbe> {
        Some(HealthProbe::new(self.url.clone()))
    }
}

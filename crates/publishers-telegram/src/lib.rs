//! Publishes alerts to a Telegram chat through a bot (<https://core.telegram.org/bots/api>).
//!
//! - Every state is `sendMessage` (`POST {url}/bot<token>/sendMessage`) with the HTML text of
//!   [`formatters::telegram::send_message`]: the alert's text is escaped, and at most 4 096
//!   characters are shown.
//! - A firing's `message_id` is kept in the message-ref store; its resolve is sent as a reply to
//!   it (`reply_parameters`), so the resolve lands under the alert it ends, and the reference is
//!   then forgotten. A resolve with no stored id is sent as a message of its own.
//! - The token is in the URL's path, so every URL is a secret and the token is scrubbed from
//!   errors.
//! - Telegram always answers `{"ok":…}`; `ok: false` is classified by its `error_code`, and a
//!   429's `parameters.retry_after` (seconds) pauses the target
//!   (<https://core.telegram.org/bots/api#responseparameters>).
//!
//! Rate limit: a bot may send at most 20 messages a minute to a group
//! (<https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>), the
//! kind's default; a private chat allows about one a second, so a target for one may raise it.
//!
//! Health probe: `getMe`, "a simple method for testing your bot's authentication token".

use std::time::Duration;

use alert_core::{
    ErrorKind, HealthProbe, KindSettings, MessageRef, PermanentReason, PublishError, Secret,
};
use formatters::telegram::TelegramSettings;
use formatters::{TemplateConfig, Templates};
use http::Method;
use publisher_http::{
    Answer, BaseUrl, BuildContext, BuildError, Call, Classify, Credential, HttpPublisher,
    HttpRequest, HttpResponse, Outgoing, RefUpdate, classify_status_with, split_settings,
};
use serde::Deserialize;

/// The Bot API's default base URL.
pub const DEFAULT_URL: &str = "https://api.telegram.org";

/// The transport half of a Telegram target's settings; the other keys are the message's
/// [`TelegramSettings`] (`chat_id`, `message_thread_id`, `disable_notification`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The Bot API's base URL, default `https://api.telegram.org`.
    #[serde(default)]
    pub url: BaseUrl,
    /// The bot's token (or `token_file`).
    #[serde(default)]
    pub token: Option<Credential>,
    /// Templates for the title and description.
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The Telegram publisher.
pub struct TelegramPublisher {
    send: Secret<String>,
    get_me: Secret<String>,
    token: Secret<String>,
    message: TelegramSettings,
    templates: Templates,
}

publisher_http::from_settings!(TelegramPublisher);

#[derive(Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default)]
    result: Option<Sent>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

#[derive(Deserialize)]
struct Sent {
    message_id: i64,
    chat: Chat,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

/// The status, then `ok: false` by its `error_code`; a 429's `retry_after` from the body.
struct TelegramClassifier;

impl Classify for TelegramClassifier {
    fn classify(&self, response: &HttpResponse) -> Result<(), PublishError> {
        classify_status_with(response, |body| {
            serde_json::from_slice::<Reply>(body)
                .ok()?
                .parameters?
                .retry_after
                .map(Duration::from_secs)
        })?;
        let reply = serde_json::from_slice::<Reply>(&response.body).ok();
        match reply {
            Some(Reply { ok: true, .. }) => Ok(()),
            Some(reply) => {
                let code = reply.error_code.unwrap_or(400);
                let kind = match code {
                    429 => ErrorKind::RateLimited {
                        retry_after: reply
                            .parameters
                            .as_ref()
                            .and_then(|p| p.retry_after)
                            .map(|s| Duration::from_secs(s.min(3_600))),
                    },
                    401 | 403 => ErrorKind::Permanent {
                        reason: PermanentReason::Auth,
                    },
                    500.. => ErrorKind::Transient,
                    _ => ErrorKind::Permanent {
                        reason: PermanentReason::BadRequest,
                    },
                };
                let description = reply.description.unwrap_or_default();
                Err(
                    PublishError::new(kind, format!("Telegram error {code}: {description}"))
                        .with_status(response.status.as_u16()),
                )
            }
            None => Err(PublishError::new(
                ErrorKind::Transient,
                "Telegram's answer is not a Bot API reply",
            )
            .with_status(response.status.as_u16())),
        }
    }
}

impl HttpPublisher for TelegramPublisher {
    const KIND: &'static str = "telegram";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let (config, message): (Config, TelegramSettings) =
            split_settings(settings, &["url", "token", "templates"])?;
        let valid_chat = match &message.chat_id {
            Some(serde_json::Value::Number(n)) => n.is_i64(),
            Some(serde_json::Value::String(s)) => {
                s.starts_with('@') && s.len() > 1 || s.parse::<i64>().is_ok()
            }
            _ => false,
        };
        if !valid_chat {
            return Err(BuildError::Settings(
                "chat_id must be a chat's id (a number) or @channelusername".to_owned(),
            ));
        }
        let token = Credential::required(config.token.as_ref(), "token")?;
        let base = config.url.or("url", DEFAULT_URL)?;
        Ok(Self {
            send: Secret::new(format!("{base}/bot{}/sendMessage", token.expose())),
            get_me: Secret::new(format!("{base}/bot{}/getMe", token.expose())),
            token,
            message,
            templates: config.templates.compile()?,
        })
    }

    /// A resolve replies to its firing's message.
    fn threads(&self) -> bool {
        true
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let reply_to = call
            .original
            .as_ref()
            .and_then(|original| original.id.parse::<i64>().ok());
        let body = formatters::telegram::send_message(
            call.alert,
            &call.context,
            &self.message,
            &self.templates,
            reply_to,
        )?;
        let request = HttpRequest::secret_url(Method::POST, &self.send)?
            .json(body)
            .scrub(&self.token);
        Ok(Outgoing::classified_by(request, &TelegramClassifier))
    }

    /// A firing's message is kept for its resolve's reply; a resolve forgets it.
    fn answer(&self, call: &Call<'_>, response: &HttpResponse) -> Result<Answer, PublishError> {
        let sent = serde_json::from_slice::<Reply>(&response.body)
            .ok()
            .and_then(|r| r.result);
        Ok(match sent {
            Some(sent) if !call.is_resolve() => Answer::keep(MessageRef::new(
                sent.chat.id.to_string(),
                sent.message_id.to_string(),
            )),
            Some(sent) => Answer::Accepted {
                message_ref: Some(sent.message_id.to_string()),
                refs: RefUpdate::Forget,
            },
            None => Answer::accepted(),
        })
    }

    /// `getMe` with the token.
    fn health_probe(&self) -> Option<HealthProbe> {
        Some(HealthProbe::new(self.get_me.clone()))
    }
}

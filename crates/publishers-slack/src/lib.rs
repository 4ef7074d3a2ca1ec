//! Publishes alerts to Slack, through an incoming webhook or the Web API with a bot token.
//!
//! Messages are Block Kit blocks plus a colour attachment (`danger` while firing, `good` once
//! resolved), built by [`formatters::slack`].
//!
//! - **Webhook mode** (`webhook_url`, `webhook_url_file` or `${env:…}`): `POST` to the webhook URL,
//!   whose reply is the plain text `ok` — not JSON. The URL carries a token, so it is a secret: it
//!   never appears in logs, errors or API output.
//! - **Bot-token mode** (`token` or `token_file`, plus `channel`): `chat.postMessage` at
//!   `{url}/chat.postMessage`, where `url` defaults to `https://slack.com/api`. Slack answers
//!   `200 {"ok":false,"error":…}` for most failures; those are classified by their error code
//!   (`invalid_auth` → `permanent(auth)`, …). The message's `channel` and `ts` are kept in the
//!   [`alert_core::MessageRefStore`] by fingerprint, and a resolve updates the
//!   original message (`chat.update`), or, with `resolve_mode: thread`, replies in its thread.
//!
//! Bot mode follows what Slack documents for its answers:
//!
//! - **A message that can no longer be updated.** `chat.update`
//!   (<https://docs.slack.dev/reference/methods/chat.update>) answers `message_not_found` when the
//!   message was deleted, `cant_update_message` when the bot may not edit it, and
//!   `edit_window_closed` when the workspace's edit window has passed ([`UPDATE_FALLBACK_ERRORS`]).
//!   None of these will ever succeed on a retry, and none means the resolve is unwanted, so the
//!   resolve is then posted with `chat.postMessage`
//!   (<https://docs.slack.dev/reference/methods/chat.postMessage>) as a reply in the original
//!   message's thread (`thread_ts` = the stored `ts`), in the same attempt, instead of failing
//!   permanently into the dead-letter queue. When the original was deleted outright, Slack posts
//!   such a reply as a top-level message (reported in slack-go/slack#1571,
//!   <https://github.com/slack-go/slack/issues/1571>), so the resolve is seen either way. A
//!   failure of that post is classified like any other.
//! - **`{"ok":true}` is the receipt.** A success whose reply carries no `ts` still counts as
//!   delivered; the receipt then has no message ref, nothing is stored, and a later resolve is
//!   posted as a message of its own. When the reply has a `ts` but no `channel`, the configured
//!   channel is stored with it.
//! - **The health probe** is `GET {url}/auth.test`
//!   (<https://docs.slack.dev/reference/methods/auth.test>) with the token. Slack refuses a bad
//!   token with HTTP 200 and `invalid_auth`, `not_authed`, `account_inactive`, `token_revoked` or
//!   `token_expired` ([`AUTH_REFUSED_ERRORS`]); the probe's [`auth_refused`] check reads that body,
//!   so the target shows as degraded (`auth`) rather than healthy.
//!
//! A 429 becomes `rate_limited` with its `Retry-After`, in both modes.
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
//!     "token_file": "/run/secrets/slack-bot-token",
//!     "channel": "C0123456789",
//!     "templates": { "title": "[{{ status | upper }}] {{ labels.alertname }}" },
//! }))?;
//! let context = BuildContext::new(
//!     TargetName::new("slack-alerts")?,
//!     HttpClient::new(&ClientConfig::default())?,
//!     Arc::new(InMemoryMessageRefs::new()),
//! );
//! let publisher = publishers_slack::from_settings(&settings, &context)?;
//! # let _ = publisher;
//! # Ok(())
//! # }
//! ```

use alert_core::{
    ErrorKind, HealthProbe, KindSettings, MessageRef, PermanentReason, PublishError, Secret,
};
use formatters::slack::SlackSettings;
use formatters::{TemplateConfig, Templates};
use http::Method;
use publisher_http::{
    Answer, BaseUrl, BuildContext, BuildError, Call, Classify, Credential, HttpPublisher,
    HttpRequest, HttpResponse, Outgoing, RefUpdate, check_base_url, classify_status,
    split_settings,
};
use serde::Deserialize;

/// The Web API's default base URL.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// How a resolve is shown in bot-token mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveMode {
    /// Update the original message in place (`chat.update`).
    #[default]
    Update,
    /// Reply in the original message's thread.
    Thread,
}

/// The transport half of a Slack target's settings; the other keys (`channel`, `username`,
/// `icon_emoji`, `icon_url`) are the message's [`SlackSettings`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Webhook mode: the incoming-webhook URL (or `webhook_url_file`).
    #[serde(default)]
    pub webhook_url: Option<Credential>,
    /// Bot mode: the bot token (or `token_file`).
    #[serde(default)]
    pub token: Option<Credential>,
    /// Bot mode: the Web API base URL, default `https://slack.com/api`.
    #[serde(default)]
    pub url: BaseUrl,
    /// Bot mode: how a resolve is shown.
    #[serde(default)]
    pub resolve_mode: ResolveMode,
    /// Templates for the title and text.
    #[serde(default)]
    pub templates: TemplateConfig,
}

const OWN_KEYS: &[&str] = &["webhook_url", "token", "url", "resolve_mode", "templates"];

enum Mode {
    Webhook {
        url: Secret<String>,
    },
    Bot {
        api: String,
        token: Secret<String>,
        channel: String,
        resolve_mode: ResolveMode,
    },
}

/// The Slack publisher.
pub struct SlackPublisher {
    mode: Mode,
    message: SlackSettings,
    templates: Templates,
}

publisher_http::from_settings!(SlackPublisher);

impl SlackPublisher {
    /// A Web API call, judged by `classifier`.
    fn call(
        api: &str,
        token: &Secret<String>,
        method: &str,
        message: &serde_json::Value,
        classifier: &'static dyn Classify,
    ) -> Result<Outgoing, PublishError> {
        let http = HttpRequest::post(&format!("{api}/{method}"))?
            .body_with_type(message.to_string(), "application/json; charset=utf-8")
            .bearer(token)?;
        Ok(Outgoing::classified_by(http, classifier))
    }

    /// The message for `call`, posted in the thread of `original`.
    fn thread_reply(
        &self,
        call: &Call<'_>,
        original: &MessageRef,
    ) -> Result<serde_json::Value, PublishError> {
        let mut message =
            formatters::slack::message(call.alert, &call.context, &self.message, &self.templates)?;
        message["channel"] = original.container.clone().into();
        message["thread_ts"] = original.id.clone().into();
        Ok(message)
    }
}

impl HttpPublisher for SlackPublisher {
    const KIND: &'static str = "slack";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let (config, message): (Config, SlackSettings) = split_settings(settings, OWN_KEYS)?;
        let mode = match (&config.webhook_url, &config.token) {
            (Some(url), None) => {
                let url = url.resolve("webhook_url")?;
                check_base_url("webhook_url", url.expose())?;
                Mode::Webhook { url }
            }
            (None, Some(token)) => {
                let token = token.resolve("token")?;
                let channel = message.channel.clone().ok_or_else(|| {
                    BuildError::Settings("bot-token mode needs `channel`".to_owned())
                })?;
                Mode::Bot {
                    api: config.url.or("url", DEFAULT_API_URL)?,
                    token,
                    channel,
                    resolve_mode: config.resolve_mode,
                }
            }
            _ => {
                return Err(BuildError::Settings(
                    "set either webhook_url(_file) for webhook mode or token(_file) and channel for bot mode".to_owned(),
                ));
            }
        };
        Ok(Self {
            mode,
            message,
            templates: config.templates.compile()?,
        })
    }

    /// In bot mode, a resolve updates or answers the firing's message.
    fn threads(&self) -> bool {
        matches!(self.mode, Mode::Bot { .. })
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let mut message =
            formatters::slack::message(call.alert, &call.context, &self.message, &self.templates)?;
        let (api, token, channel, resolve_mode) = match &self.mode {
            Mode::Webhook { url } => {
                return Ok(HttpRequest::secret_url(Method::POST, url)?
                    .json(message.to_string())
                    .into());
            }
            Mode::Bot {
                api,
                token,
                channel,
                resolve_mode,
            } => (api, token, channel, resolve_mode),
        };
        match (&call.original, resolve_mode) {
            (Some(original), ResolveMode::Update) => {
                message["channel"] = original.container.clone().into();
                message["ts"] = original.id.clone().into();
                Self::call(api, token, "chat.update", &message, &UpdateClassifier)
            }
            (Some(original), ResolveMode::Thread) => {
                let reply = self.thread_reply(call, original)?;
                Self::call(api, token, "chat.postMessage", &reply, &WebApiClassifier)
            }
            (None, _) => {
                message["channel"] = channel.as_str().into();
                Self::call(api, token, "chat.postMessage", &message, &WebApiClassifier)
            }
        }
    }

    /// In bot mode: a `chat.update` that Slack refused with one of the
    /// [`UPDATE_FALLBACK_ERRORS`] is followed by the resolve as a reply in the original
    /// message's thread. A new top-level firing message is kept for its resolve, by the channel
    /// id Slack answers with (the configured channel, perhaps a `#name`, when the reply leaves it
    /// out). `{"ok":true}` is Slack's word that the message was accepted; without a `ts` the
    /// delivery still counts, with no message ref, and the resolve is posted on its own.
    fn answer(&self, call: &Call<'_>, response: &HttpResponse) -> Result<Answer, PublishError> {
        let Mode::Bot {
            api,
            token,
            channel,
            ..
        } = &self.mode
        else {
            return Ok(Answer::accepted());
        };
        // Both classifiers refuse a reply that is not a Web API object, so this parse succeeds.
        let reply: WebApiReply = serde_json::from_slice(&response.body).map_err(|_| {
            PublishError::new(ErrorKind::Transient, "Slack's reply is not JSON")
                .with_status(response.status.as_u16())
        })?;
        if !reply.ok
            && let Some(original) = &call.original
        {
            let message = self.thread_reply(call, original)?;
            return Ok(Answer::FollowUp(Box::new(Self::call(
                api,
                token,
                "chat.postMessage",
                &message,
                &WebApiClassifier,
            )?)));
        }
        let Some(ts) = reply.ts else {
            return Ok(Answer::accepted());
        };
        if call.original.is_none() && !call.is_resolve() {
            let reply_channel = reply.channel.unwrap_or_else(|| channel.clone());
            return Ok(Answer::keep(MessageRef::new(reply_channel, ts)));
        }
        Ok(Answer::Accepted {
            message_ref: Some(ts),
            refs: RefUpdate::Unchanged,
        })
    }

    /// Webhook mode: `GET` on the webhook URL (Slack answers 400 or 405, which proves it is
    /// reachable). Bot mode: `GET {url}/auth.test` with the token; Slack answers a bad token with
    /// `200 {"ok":false,"error":"invalid_auth"}` (or another of [`AUTH_REFUSED_ERRORS`]), which
    /// [`auth_refused`] reads so that the target shows as degraded (`auth`).
    fn health_probe(&self) -> Option<HealthProbe> {
        Some(match &self.mode {
            Mode::Webhook { url } => HealthProbe::new(url.clone()),
            Mode::Bot { api, token, .. } => {
                HealthProbe::new(Secret::new(format!("{api}/auth.test")))
                    .with_header(
                        "Authorization",
                        Secret::new(format!("Bearer {}", token.expose())),
                    )
                    .with_auth_refused(auth_refused)
            }
        })
    }
}

/// The `chat.update` errors that say the message can no longer be edited, rather than that the
/// request or the token is wrong: the message was deleted (`message_not_found`), the bot may not
/// edit it (`cant_update_message`), or the workspace's edit window has closed
/// (`edit_window_closed`). <https://docs.slack.dev/reference/methods/chat.update>
pub const UPDATE_FALLBACK_ERRORS: &[&str] = &[
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];

#[derive(Deserialize)]
struct WebApiReply {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

/// Classifies `chat.update` replies as [`WebApiClassifier`] does, except that a `200` with one of
/// the [`UPDATE_FALLBACK_ERRORS`] is let through, for the publisher to post the resolve instead.
#[derive(Clone, Copy, Debug, Default)]
struct UpdateClassifier;

impl Classify for UpdateClassifier {
    fn classify(&self, response: &HttpResponse) -> Result<(), PublishError> {
        if response.status.is_success()
            && let Ok(WebApiReply {
                ok: false,
                error: Some(code),
                ..
            }) = serde_json::from_slice(&response.body)
            && UPDATE_FALLBACK_ERRORS.contains(&code.as_str())
        {
            return Ok(());
        }
        WebApiClassifier.classify(response)
    }
}

/// Classifies Web API replies: the status first, then `{"ok":false,"error":…}` by error code.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebApiClassifier;

impl Classify for WebApiClassifier {
    fn classify(&self, response: &HttpResponse) -> Result<(), PublishError> {
        classify_status(response)?;
        let reply: WebApiReply = serde_json::from_slice(&response.body).map_err(|_| {
            PublishError::new(ErrorKind::Transient, "Slack's reply is not JSON")
                .with_status(response.status.as_u16())
        })?;
        if reply.ok {
            return Ok(());
        }
        let code = reply.error.unwrap_or_default();
        Err(
            PublishError::new(error_kind(&code), format!("Slack error {code}"))
                .with_status(response.status.as_u16()),
        )
    }
}

/// The Web API errors that say the token itself is unusable and must be replaced, per
/// <https://docs.slack.dev/reference/methods/auth.test>: invalid (or used from an address that may
/// not use it), missing, of a deleted user or workspace, revoked, or expired. `missing_scope`
/// and `not_allowed_token_type` are not among them: the token works, the app is set up wrong.
pub const AUTH_REFUSED_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
];

/// Whether a Web API reply (a health probe's `auth.test`) refuses the token: `{"ok":false}` with
/// one of the [`AUTH_REFUSED_ERRORS`]. Slack sends these with HTTP 200.
#[must_use]
pub fn auth_refused(body: &[u8]) -> bool {
    serde_json::from_slice::<WebApiReply>(body).is_ok_and(|reply| {
        !reply.ok
            && reply
                .error
                .is_some_and(|code| AUTH_REFUSED_ERRORS.contains(&code.as_str()))
    })
}

/// The classification of a Web API error code.
#[must_use]
pub fn error_kind(code: &str) -> ErrorKind {
    let permanent = |reason| ErrorKind::Permanent { reason };
    match code {
        "invalid_auth"
        | "not_authed"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "no_permission"
        | "missing_scope"
        | "not_allowed_token_type"
        | "ekm_access_denied" => permanent(PermanentReason::Auth),
        "channel_not_found"
        | "not_in_channel"
        | "is_archived"
        | "message_not_found"
        | "cant_update_message" => permanent(PermanentReason::NotFound),
        "ratelimited" | "rate_limited" => ErrorKind::RateLimited { retry_after: None },
        "invalid_blocks"
        | "invalid_blocks_format"
        | "msg_too_long"
        | "msg_blocks_too_long"
        | "no_text"
        | "too_many_attachments"
        | "invalid_attachments" => permanent(PermanentReason::Payload),
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            ErrorKind::Transient
        }
        _ => permanent(PermanentReason::BadRequest),
    }
}

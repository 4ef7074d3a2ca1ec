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

use std::path::PathBuf;
use std::sync::Arc;

use alert_core::{
    AlertStatus, BoxFuture, ErrorKind, HealthProbe, KindSettings, MessageRef, MessageRefStore,
    PermanentReason, PublishError, PublishRequest, Publisher, Receipt, Secret, TargetName,
};
use formatters::slack::SlackSettings;
use formatters::{FormatContext, TemplateConfig, Templates};
use http::Method;
use publisher_http::{
    BuildContext, BuildError, Classify, DefaultClassifier, HttpClient, HttpRequest, HttpResponse,
    check_base_url, classify_status, parse_settings, resolve_secret, split_settings,
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
    /// Webhook mode: the incoming-webhook URL, or `${env:VAR}`.
    #[serde(default)]
    pub webhook_url: Option<Secret<String>>,
    /// Webhook mode: a file holding the webhook URL.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Bot mode: the bot token, or `${env:VAR}`.
    #[serde(default)]
    pub token: Option<Secret<String>>,
    /// Bot mode: a file holding the bot token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Bot mode: the Web API base URL, default `https://slack.com/api`.
    #[serde(default)]
    pub url: Option<String>,
    /// Bot mode: how a resolve is shown.
    #[serde(default)]
    pub resolve_mode: ResolveMode,
    /// Templates for the title and text.
    #[serde(default)]
    pub templates: TemplateConfig,
}

const OWN_KEYS: &[&str] = &[
    "webhook_url",
    "webhook_url_file",
    "token",
    "token_file",
    "url",
    "resolve_mode",
    "templates",
];

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
    client: HttpClient,
    mode: Mode,
    target: TargetName,
    message: SlackSettings,
    templates: Templates,
    refs: Arc<dyn MessageRefStore>,
}

impl std::fmt::Debug for SlackPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Webhook { .. } => "webhook",
            Mode::Bot { .. } => "bot",
        };
        f.debug_struct("SlackPublisher")
            .field("target", &self.target)
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

/// Builds the publisher from a target's settings.
///
/// # Errors
/// [`BuildError`]; an unreadable webhook URL or token is [`BuildError::SecretUnavailable`].
pub fn from_settings(
    settings: &KindSettings,
    context: &BuildContext,
) -> Result<Arc<dyn Publisher>, BuildError> {
    let (own, message) = split_settings(settings, OWN_KEYS);
    Ok(Arc::new(SlackPublisher::new(
        parse_settings(&own)?,
        parse_settings(&message)?,
        context,
    )?))
}

impl SlackPublisher {
    /// Builds the publisher.
    ///
    /// # Errors
    /// [`BuildError`] when the mode is ambiguous or incomplete, or a secret is unavailable.
    pub fn new(
        config: Config,
        message: SlackSettings,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let webhook = config.webhook_url.is_some() || config.webhook_url_file.is_some();
        let bot = config.token.is_some() || config.token_file.is_some();
        let mode = match (webhook, bot) {
            (true, false) => {
                let url = resolve_secret(
                    "webhook_url",
                    config.webhook_url.as_ref().map(|s| s.expose().as_str()),
                    config.webhook_url_file.as_deref(),
                )?;
                check_base_url("webhook_url", url.expose())?;
                Mode::Webhook { url }
            }
            (false, true) => {
                let token = resolve_secret(
                    "token",
                    config.token.as_ref().map(|s| s.expose().as_str()),
                    config.token_file.as_deref(),
                )?;
                let channel = message.channel.clone().ok_or_else(|| {
                    BuildError::Settings("bot-token mode needs `channel`".to_owned())
                })?;
                let api = check_base_url("url", config.url.as_deref().unwrap_or(DEFAULT_API_URL))?;
                Mode::Bot {
                    api,
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
        let templates =
            Templates::new(&config.templates).map_err(|e| BuildError::Template(e.to_string()))?;
        Ok(Self {
            client: context.client.clone(),
            mode,
            target: context.target.clone(),
            message,
            templates,
            refs: context.message_refs.clone(),
        })
    }

    async fn publish_webhook(
        &self,
        url: &Secret<String>,
        message: serde_json::Value,
    ) -> Result<Receipt, PublishError> {
        let request = HttpRequest::secret_url(Method::POST, url)?.json(message.to_string());
        let response = self.client.send(request, &DefaultClassifier).await?;
        Ok(Receipt::with_status(response.status.as_u16()))
    }

    async fn publish_bot(
        &self,
        (api, token, channel, resolve_mode): (&str, &Secret<String>, &str, &ResolveMode),
        request: PublishRequest<'_>,
        status: AlertStatus,
        mut message: serde_json::Value,
    ) -> Result<Receipt, PublishError> {
        let fingerprint = request.alert.alert.fingerprint();
        let original = match status {
            AlertStatus::Resolved => self.refs.get(self.target.as_str(), fingerprint).await,
            AlertStatus::Firing => None,
        };
        let (status_code, reply) = match (&original, resolve_mode) {
            (Some(original), ResolveMode::Update) => {
                let mut update = message.clone();
                update["channel"] = original.container.clone().into();
                update["ts"] = original.id.clone().into();
                let (status_code, reply) = self
                    .call(api, token, "chat.update", &update, &UpdateClassifier)
                    .await?;
                if reply.ok {
                    (status_code, reply)
                } else {
                    // `UpdateClassifier` lets only the errors that mean "this message can no
                    // longer be edited" through: the resolve goes out as a reply in the original
                    // message's thread instead (see the crate docs).
                    message["channel"] = original.container.clone().into();
                    message["thread_ts"] = original.id.clone().into();
                    self.call(api, token, "chat.postMessage", &message, &WebApiClassifier)
                        .await?
                }
            }
            (Some(original), ResolveMode::Thread) => {
                message["channel"] = original.container.clone().into();
                message["thread_ts"] = original.id.clone().into();
                self.call(api, token, "chat.postMessage", &message, &WebApiClassifier)
                    .await?
            }
            (None, _) => {
                message["channel"] = channel.into();
                self.call(api, token, "chat.postMessage", &message, &WebApiClassifier)
                    .await?
            }
        };
        let mut receipt = Receipt::with_status(status_code);
        // `{"ok":true}` is Slack's word that the message was accepted; `ts` and `channel` are only
        // what a later resolve needs. Without a `ts` the delivery still counts, with no message
        // ref, and the resolve will be posted as a message of its own.
        let Some(ts) = reply.ts else {
            return Ok(receipt);
        };
        // Only a new top-level message becomes the message a later resolve refers to. Slack
        // names the channel by id in its reply, which `chat.update` needs; the configured
        // channel (perhaps a `#name`) is the fallback when the reply leaves it out.
        if original.is_none() && status == AlertStatus::Firing {
            let reply_channel = reply.channel.unwrap_or_else(|| channel.to_owned());
            self.refs
                .put(
                    self.target.as_str(),
                    fingerprint,
                    MessageRef::new(reply_channel, ts.clone()),
                )
                .await;
        }
        receipt.message_ref = Some(ts);
        Ok(receipt)
    }

    /// Calls one Web API method and returns the HTTP status and the parsed reply, which
    /// `classifier` has already judged.
    async fn call(
        &self,
        api: &str,
        token: &Secret<String>,
        method: &str,
        message: &serde_json::Value,
        classifier: &dyn Classify,
    ) -> Result<(u16, WebApiReply), PublishError> {
        let http = HttpRequest::post(&format!("{api}/{method}"))?
            .body_with_type(message.to_string(), "application/json; charset=utf-8")
            .bearer(token)?;
        let response = self.client.send(http, classifier).await?;
        // Both classifiers refuse a reply that is not a Web API object, so this parse succeeds.
        let reply: WebApiReply = serde_json::from_slice(&response.body).map_err(|_| {
            PublishError::new(ErrorKind::Transient, "Slack's reply is not JSON")
                .with_status(response.status.as_u16())
        })?;
        Ok((response.status.as_u16(), reply))
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

impl Publisher for SlackPublisher {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(async move {
            let context = FormatContext::new(request.status, request.at);
            let message = formatters::slack::message(
                request.alert,
                &context,
                &self.message,
                &self.templates,
            )?;
            match &self.mode {
                Mode::Webhook { url } => self.publish_webhook(url, message).await,
                Mode::Bot {
                    api,
                    token,
                    channel,
                    resolve_mode,
                } => {
                    self.publish_bot(
                        (api, token, channel, resolve_mode),
                        request,
                        context.status,
                        message,
                    )
                    .await
                }
            }
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

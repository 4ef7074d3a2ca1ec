//! Publishes alerts as e-mail over SMTP, through [lettre](https://docs.rs/lettre/0.11)
//! (`AsyncSmtpTransport` on tokio, rustls with the ring provider and the webpki roots: no
//! OpenSSL and no aws-lc).
//!
//! - **Transport.** `url` names the server: `smtps://host[:465]` is implicit TLS;
//!   `smtp://host[:587]` is STARTTLS, required (lettre's `Tls::Required`: "an error is returned
//!   if the connection can't be upgraded. No credentials or emails will be sent"). `tls: none`
//!   sends in the clear, for a relay on the same host only. `ca` (PEM, inline or `ca_file`) adds
//!   a root certificate for a relay with a private CA.
//! - **Authentication.** With `username` and `password` (or `password_file`), `AUTH PLAIN`, or
//!   `AUTH LOGIN` when the server offers only that (lettre's default mechanisms).
//! - **The message.** From `from` to every address of `to`, the subject the title, and a
//!   `multipart/alternative` body: the description as text, then HTML
//!   ([`formatters::email::render`]). The `Date` is the attempt's instant.
//! - **Threading** (RFC 5322 §3.6.4). The first firing of an alert's life goes out with the
//!   thread's root as its `Message-ID` ([`formatters::email::thread_root`], from the fingerprint
//!   and `startsAt`); later mails (a `repeat_interval` reminder, the resolve) carry a `Message-ID`
//!   of their own and `In-Reply-To` and `References` naming the root, so the resolve lands in the
//!   firing's thread, from any process and after any restart. The message-ref store only
//!   remembers that the root was sent, so a reminder does not reuse its id.
//! - **Connections.** One per message: alert mail is rare, and lettre's pool would spawn tasks
//!   when the publisher is built or dropped, which a config check or a reload does outside the
//!   runtime.
//! - **Answers.** A 4xx SMTP reply, a timeout or a connection or TLS failure is transient; a 5xx
//!   reply is permanent (`auth` for 530, 534 and 535, `bad_request` otherwise).
//!
//! Rate limit: none; SMTP servers document their own.
//!
//! Health probe: none. The prober speaks HTTP; a failing server shows in the target's delivery
//! health.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use alert_core::{
    AlertStatus, BoxFuture, BuildError, ErrorKind, KindSettings, MessageRef, MessageRefStore,
    PermanentReason, PublishError, PublishRequest, Publisher, Receipt, TargetName,
};
use formatters::{FormatContext, TemplateConfig, Templates};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use publisher_http::{BuildContext, Credential, parse_settings};
use serde::Deserialize;

/// How long lettre waits for the server at each step; the dispatcher's own attempt timeout
/// applies around the whole send as well.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// STARTTLS, required: the default for `smtp://`.
    Starttls,
    /// TLS from the first byte: the default for `smtps://`.
    Implicit,
    /// No TLS: for a relay on the same host only.
    None,
}

/// An e-mail target's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `smtps://host[:port]` or `smtp://host[:port]`.
    pub url: String,
    /// How the connection is secured; by default from the URL's scheme.
    #[serde(default)]
    pub tls: Option<TlsMode>,
    /// A root certificate (PEM) to trust besides the webpki roots, inline or in `ca_file`.
    #[serde(default)]
    pub ca: Option<Credential>,
    /// The user to authenticate as.
    #[serde(default)]
    pub username: Option<String>,
    /// The password (or `password_file`).
    #[serde(default)]
    pub password: Option<Credential>,
    /// The sender, such as `alertpub <alertpub@example.com>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// Templates for the subject (the title) and the text (the description).
    #[serde(default)]
    pub templates: TemplateConfig,
}

/// The most recipients one target sends to.
pub const MAX_RECIPIENTS: usize = 100;

/// The e-mail publisher.
pub struct EmailPublisher {
    target: TargetName,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    domain: String,
    templates: Templates,
    refs: Arc<dyn MessageRefStore>,
}

impl std::fmt::Debug for EmailPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailPublisher")
            .field("target", &self.target)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Builds the publisher from a target's settings.
///
/// # Errors
/// [`BuildError`]; an unreadable password is [`BuildError::SecretUnavailable`].
pub fn from_settings(
    settings: &KindSettings,
    context: &BuildContext,
) -> Result<Arc<dyn Publisher>, BuildError> {
    Ok(Arc::new(EmailPublisher::new(
        parse_settings(settings)?,
        context,
    )?))
}

fn settings_error(text: impl Into<String>) -> BuildError {
    BuildError::Settings(text.into())
}

impl EmailPublisher {
    /// Builds the publisher.
    ///
    /// # Errors
    /// [`BuildError`] for a bad URL, address or CA file, or an unavailable password.
    pub fn new(config: Config, context: &BuildContext) -> Result<Self, BuildError> {
        let invalid_url = || BuildError::InvalidUrl {
            field: "url",
            url: alert_core::redact_url(&config.url),
        };
        let uri: http::Uri = config.url.parse().map_err(|_| invalid_url())?;
        let host = uri.host().ok_or_else(invalid_url)?.to_owned();
        let (default_mode, default_port) = match uri.scheme_str() {
            Some("smtps") => (TlsMode::Implicit, 465),
            Some("smtp") => (TlsMode::Starttls, 587),
            _ => return Err(invalid_url()),
        };
        let mode = config.tls.unwrap_or(default_mode);
        let port = uri.port_u16().unwrap_or(default_port);
        let tls = match mode {
            TlsMode::None => Tls::None,
            TlsMode::Starttls | TlsMode::Implicit => {
                let mut parameters = TlsParameters::builder(host.clone());
                if let Some(pem) = Credential::optional(config.ca.as_ref(), "ca")? {
                    let certificate = Certificate::from_pem(pem.expose().as_bytes())
                        .map_err(|e| settings_error(format!("ca: {e}")))?;
                    parameters = parameters.add_root_certificate(certificate);
                }
                let parameters = parameters
                    .build_rustls()
                    .map_err(|e| settings_error(format!("tls: {e}")))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        match (&config.username, &config.password) {
            (Some(user), password) => {
                let password = Credential::required(password.as_ref(), "password")?;
                builder =
                    builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
            }
            (None, Some(_)) => return Err(settings_error("password needs a username")),
            (None, None) => {}
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| settings_error(format!("from: {e}")))?;
        if config.to.is_empty() || config.to.len() > MAX_RECIPIENTS {
            return Err(settings_error(format!(
                "to needs 1 to {MAX_RECIPIENTS} addresses"
            )));
        }
        let to = config
            .to
            .iter()
            .map(|address| {
                address
                    .parse::<Mailbox>()
                    .map_err(|e| settings_error(format!("to: {address}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            target: context.target.clone(),
            transport: builder.build(),
            server: format!("{host}:{port}"),
            domain: from.email.domain().to_owned(),
            from,
            to,
            templates: config.templates.compile()?,
            refs: context.message_refs.clone(),
        })
    }

    async fn send(&self, request: PublishRequest<'_>) -> Result<Receipt, PublishError> {
        let context = FormatContext::new(request.status, request.at);
        let alert = &request.alert.alert;
        let fingerprint = alert.fingerprint();
        let root = formatters::email::thread_root(fingerprint, alert.starts_at(), &self.domain);
        // The root's id is the first firing's; every later mail of the thread refers to it.
        let root_sent = self
            .refs
            .get(self.target.as_str(), fingerprint)
            .await
            .is_some_and(|sent| sent.id == root);
        let first = request.status == AlertStatus::Firing && !root_sent;
        let message_id = if first {
            root.clone()
        } else {
            let status = match request.status {
                AlertStatus::Firing => "firing",
                AlertStatus::Resolved => "resolved",
            };
            format!(
                "<alertpub.{fingerprint}.{}.{status}.{}@{}>",
                alert.starts_at().timestamp_millis(),
                request.at.timestamp_millis(),
                self.domain
            )
        };
        let mail = formatters::email::render(request.alert, &context, &self.templates)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject)
            .date(SystemTime::from(request.at))
            .message_id(Some(message_id.clone()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        if !first {
            builder = builder.in_reply_to(root.clone()).references(root.clone());
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| {
                PublishError::new(
                    ErrorKind::Permanent {
                        reason: PermanentReason::Payload,
                    },
                    format!("the message cannot be built: {e}"),
                )
            })?;
        let response = self.transport.send(message).await.map_err(classify)?;
        match request.status {
            AlertStatus::Firing if first => {
                self.refs
                    .put(self.target.as_str(), fingerprint, MessageRef::new("", root))
                    .await;
            }
            AlertStatus::Resolved => self.refs.remove(self.target.as_str(), fingerprint).await,
            AlertStatus::Firing => {}
        }
        let mut receipt = Receipt::default();
        receipt.status_code = Some(u16::from(response.code()));
        receipt.message_ref = Some(message_id);
        Ok(receipt)
    }
}

/// The classification of a failed send (see the crate docs). The message is lettre's, which
/// names the server's reply, never the password.
fn classify(error: lettre::transport::smtp::Error) -> PublishError {
    let code = error.status().map(u16::from);
    let kind = if error.is_permanent() {
        ErrorKind::Permanent {
            reason: match code {
                Some(530 | 534 | 535) => PermanentReason::Auth,
                _ => PermanentReason::BadRequest,
            },
        }
    } else {
        ErrorKind::Transient
    };
    let mut failure = PublishError::new(kind, format!("SMTP: {error}"));
    if let Some(code) = code {
        failure = failure.with_status(code);
    }
    failure
}

impl Publisher for EmailPublisher {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(self.send(request))
    }
}

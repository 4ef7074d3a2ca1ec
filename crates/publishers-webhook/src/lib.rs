//! Publishes alerts as generic JSON to any HTTP endpoint.
//!
//! The body is the generic webhook format of SPEC §3:
//! `{version:"1", alert_name, fingerprint, status, labels, annotations, starts_at, ends_at,
//! generator_url, classification, enrichment}`. Every request carries an `Idempotency-Key` made
//! from the fingerprint, the status, `starts_at` and the notification log's delivery sequence, so
//! retries of one delivery reuse it and a `repeat_interval` reminder gets a new one.
//!
//! Options: the method (`POST` or `PUT`), extra headers, Bearer, Basic or API-key auth, and a
//! signature.
//!
//! **The body.** By default the generic body above. `format: alertmanager` sends Alertmanager's
//! own v4 webhook message instead, one alert per message, exactly as Alertmanager sends it
//! ([`formatters::alertmanager::webhook_message`]), for the tools that already take it;
//! `external_url` fills its `externalURL`. `body_template` renders the whole body with minijinja
//! (the variables of the text templates; `tojson` escapes a value for JSON), sent with
//! `content_type` (default `application/json`). When the content type is JSON, the output must
//! parse as JSON: checked at config load on a sample alert, firing and resolved, and again at
//! every send ([`formatters::BodyTemplate`]).
//!
//! **The signature.** With `hmac_secret` (or `hmac_secret_file`), by default the header
//! `X-Alertpub-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256 over `"<t>.<body>"`. A receiver
//! verifies it by recomputing the HMAC over the timestamp, a dot and the raw body, comparing in
//! constant time, and rejecting old timestamps. `signature: standard` signs by the
//! [Standard Webhooks](https://www.standardwebhooks.com/) scheme instead
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! `webhook-id` (the idempotency key, the same across a delivery's retries), `webhook-timestamp`
//! (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">`,
//! the secret given as `whsec_<base64>` (or plain base64). `hmac_secrets` lists more secrets, each
//! of which signs too (space-separated signatures), so a receiver can rotate its secret.
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
//!     "url": "https://hooks.example.com/alerts",
//!     "auth": { "bearer_token": "${env:HOOK_TOKEN}" },
//!     "hmac_secret_file": "/run/secrets/hook-hmac",
//! }))?;
//! let context = BuildContext::new(
//!     TargetName::new("ops-webhook")?,
//!     HttpClient::new(&ClientConfig::default())?,
//!     Arc::new(InMemoryMessageRefs::new()),
//! );
//! let publisher = publishers_webhook::from_settings(&settings, &context)?;
//! # let _ = publisher;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

use alert_core::{HealthProbe, KindSettings, PublishError, Secret};
use base64::Engine as _;
use formatters::BodyTemplate;
use hmac::{Hmac, Mac};
use http::Method;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use publisher_http::{
    BuildContext, BuildError, Call, Credential, HttpPublisher, HttpRequest, Outgoing,
    RequestTemplate, parse_settings,
};
use serde::Deserialize;
use sha2::Sha256;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Alertpub-Signature";

/// Which body is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The generic JSON body.
    #[default]
    Generic,
    /// Alertmanager's v4 webhook message, one alert per message.
    Alertmanager,
}

/// How the body is signed when a secret is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signature {
    /// `X-Alertpub-Signature: t=…,v1=<hex>`.
    #[default]
    Alertpub,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    Standard,
}

/// A webhook target's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The full URL called (or `url_file`); may be `${env:VAR}`, since such URLs often embed
    /// tokens.
    #[serde(default)]
    pub url: Option<Credential>,
    /// `POST` (the default) or `PUT`.
    #[serde(default)]
    pub method: Option<String>,
    /// Extra headers. Their values are treated as secrets (an API key is often put here): never
    /// shown in Debug output, marked sensitive, and scrubbed from errors.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret<String>>,
    /// Authentication, at most one scheme.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// The HMAC-SHA256 signing secret (or `hmac_secret_file`).
    #[serde(default)]
    pub hmac_secret: Option<Credential>,
    /// More signing secrets (`signature: standard`), for rotation: each signs too.
    #[serde(default)]
    pub hmac_secrets: Vec<Credential>,
    /// How the body is signed, `alertpub` (the default) or `standard`.
    #[serde(default)]
    pub signature: Signature,
    /// Which body is sent, `generic` (the default) or `alertmanager`.
    #[serde(default)]
    pub format: Format,
    /// `externalURL` of the `alertmanager` format.
    #[serde(default)]
    pub external_url: Option<String>,
    /// A minijinja template for the whole body.
    #[serde(default)]
    pub body_template: Option<String>,
    /// The body's content type with `body_template`, default `application/json`.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// How the webhook authenticates: exactly one of the three.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthConfig {
    /// `Authorization: Bearer <token>` (or `bearer_token_file`).
    #[serde(default)]
    pub bearer_token: Option<Credential>,
    /// `Authorization: Basic …`.
    #[serde(default)]
    pub basic: Option<BasicAuth>,
    /// A key in a header of your choosing.
    #[serde(default)]
    pub api_key: Option<ApiKeyAuth>,
}

/// HTTP Basic credentials.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password (or `password_file`).
    #[serde(default)]
    pub password: Option<Credential>,
}

/// An API key sent in a header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyAuth {
    /// The header, default `X-API-Key`.
    #[serde(default = "default_api_key_header")]
    pub header: String,
    /// The key (or `value_file`).
    #[serde(default)]
    pub value: Option<Credential>,
}

fn default_api_key_header() -> String {
    "X-API-Key".to_owned()
}

/// Resolved authentication.
enum Auth {
    None,
    Bearer(Secret<String>),
    Header(String, Secret<String>),
}

/// The webhook publisher. A target of a fleet's thousands holds one, so it keeps each thing
/// once and the rare options boxed.
pub struct WebhookPublisher {
    /// What every request shares, built once: the parsed URL, the configured headers and the
    /// credentials. Each publish makes its request from it and adds its own headers and body,
    /// instead of parsing the URL again. The health probe reads its URL and its credentials'
    /// header from it.
    template: RequestTemplate,
    /// The header of the configured credentials, which the health probe sends too (boxed: a
    /// header name is 32 bytes, and most webhooks have none).
    auth_header: Option<Box<HeaderName>>,
    signer: Option<Box<Signer>>,
    body: Body,
}

/// How the body is made.
enum Body {
    Generic,
    Alertmanager(Box<AlertmanagerBody>),
    Template(Box<TemplateBody>),
}

/// `format: alertmanager`'s fields.
struct AlertmanagerBody {
    receiver: String,
    external_url: String,
}

/// `body_template` and its content type.
struct TemplateBody {
    template: BodyTemplate,
    content_type: HeaderValue,
}

/// How the body is signed.
enum Signer {
    Alertpub(Secret<String>),
    /// The decoded keys, and the configured secrets to scrub.
    Standard(Vec<(Secret<Vec<u8>>, Secret<String>)>),
}

/// The Standard Webhooks key of a `whsec_<base64>` (or plain base64) secret.
fn standard_key(
    secret: &Secret<String>,
    field: &'static str,
) -> Result<Secret<Vec<u8>>, BuildError> {
    let text = secret.expose();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            BuildError::Settings(format!(
                "{field}: a Standard Webhooks secret is `whsec_` and base64 (the value is not shown)"
            ))
        })
}

/// The `webhook-signature` value: `v1,<base64>` per key, space-separated.
#[must_use]
pub fn standard_signature(keys: &[&[u8]], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    keys.iter()
        .map(|key| {
            let mac = hmac_over(key, &[id.as_bytes(), timestamp.as_bytes(), body]);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

publisher_http::from_settings!(WebhookPublisher);

/// How the body is signed, from `signature`, `hmac_secret(_file)` and `hmac_secrets`.
fn signer(config: &Config) -> Result<Option<Signer>, BuildError> {
    let hmac_secret = Credential::optional(config.hmac_secret.as_ref(), "hmac_secret")?;
    Ok(match (config.signature, hmac_secret) {
        (Signature::Alertpub, secret) => {
            if !config.hmac_secrets.is_empty() {
                return Err(BuildError::Settings(
                    "hmac_secrets needs `signature: standard`".to_owned(),
                ));
            }
            secret.map(Signer::Alertpub)
        }
        (Signature::Standard, secret) => {
            let mut keys = Vec::new();
            for secret in secret.into_iter().map(Ok).chain(
                config
                    .hmac_secrets
                    .iter()
                    .map(|c| c.resolve("hmac_secrets")),
            ) {
                let secret = secret?;
                keys.push((standard_key(&secret, "hmac_secret")?, secret));
            }
            if keys.is_empty() {
                return Err(BuildError::Settings(
                    "`signature: standard` needs hmac_secret(_file) or hmac_secrets".to_owned(),
                ));
            }
            Some(Signer::Standard(keys))
        }
    })
}

/// How the body is made, from `format`, `body_template` and `content_type`.
fn body(config: &Config, context: &BuildContext) -> Result<Body, BuildError> {
    Ok(match (config.format, &config.body_template) {
        (Format::Generic, None) => Body::Generic,
        (Format::Alertmanager, None) => Body::Alertmanager(Box::new(AlertmanagerBody {
            receiver: context.target.as_str().to_owned(),
            external_url: config.external_url.clone().unwrap_or_default(),
        })),
        (Format::Generic, Some(source)) => {
            let content_type = config.content_type.as_deref().unwrap_or("application/json");
            let json = content_type.starts_with("application/json")
                || content_type
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().ends_with("+json"));
            Body::Template(Box::new(TemplateBody {
                template: BodyTemplate::new(source, json).map_err(|e| match e {
                    formatters::FormatError::Template { field, message } => {
                        BuildError::Settings(format!("{field}: {message}"))
                    }
                    other => BuildError::Settings(format!("body_template: {other}")),
                })?,
                content_type: HeaderValue::from_str(content_type).map_err(|_| {
                    BuildError::Settings("content_type is not a valid header value".to_owned())
                })?,
            }))
        }
        (Format::Alertmanager, Some(_)) => {
            return Err(BuildError::Settings(
                "body_template and `format: alertmanager` exclude each other".to_owned(),
            ));
        }
    })
}

fn resolve_auth(auth: AuthConfig) -> Result<Auth, BuildError> {
    let schemes = usize::from(auth.bearer_token.is_some())
        + usize::from(auth.basic.is_some())
        + usize::from(auth.api_key.is_some());
    if schemes != 1 {
        return Err(BuildError::Settings(
            "auth needs exactly one of bearer_token(_file), basic or api_key".to_owned(),
        ));
    }
    if let Some(basic) = auth.basic {
        let password = Credential::required(basic.password.as_ref(), "auth.basic.password")?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            basic.username,
            password.expose()
        ));
        return Ok(Auth::Header(
            "Authorization".to_owned(),
            Secret::new(format!("Basic {encoded}")),
        ));
    }
    if let Some(key) = auth.api_key {
        let value = Credential::required(key.value.as_ref(), "auth.api_key.value")?;
        return Ok(Auth::Header(key.header, value));
    }
    let token = Credential::required(auth.bearer_token.as_ref(), "auth.bearer_token")?;
    Ok(Auth::Bearer(token))
}

/// HMAC-SHA256 with `key` over `parts` joined by dots: what both signature schemes sign.
fn hmac_over(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b".");
        }
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The signature: lowercase hex of HMAC-SHA256(secret, `"<timestamp>.<body>"`).
#[must_use]
pub fn sign(secret: &Secret<String>, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    hex::encode(hmac_over(
        secret.expose().as_bytes(),
        &[timestamp.as_bytes(), body],
    ))
}

impl HttpPublisher for WebhookPublisher {
    const KIND: &'static str = "webhook";

    fn build(settings: &KindSettings, context: &BuildContext) -> Result<Self, BuildError> {
        let mut config: Config = parse_settings(settings)?;
        let url = Credential::required(config.url.as_ref(), "url")?;
        publisher_http::check_base_url("url", url.expose())?;
        let method = match config
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some(other) => {
                return Err(BuildError::Settings(format!(
                    "method must be POST or PUT, not {other}"
                )));
            }
        };
        let auth = match config.auth.take() {
            None => Auth::None,
            Some(auth) => resolve_auth(auth)?,
        };
        let signer = signer(&config)?;
        let body = body(&config, context)?;
        // Built now, so a bad header fails at load rather than on every publish.
        let settings = |e: publisher_http::RequestError| BuildError::Settings(e.to_string());
        let mut template = HttpRequest::secret_url(method, &url).map_err(settings)?;
        for (name, value) in &config.headers {
            template = template.secret_header(name, value).map_err(settings)?;
        }
        let auth_header = match &auth {
            Auth::None => None,
            Auth::Bearer(token) => {
                template = template.bearer(token).map_err(settings)?;
                Some(AUTHORIZATION)
            }
            Auth::Header(name, value) => {
                template = template.secret_header(name, value).map_err(settings)?;
                // `secret_header` parsed the name.
                HeaderName::try_from(name.as_str()).ok()
            }
        };
        Ok(Self {
            template: RequestTemplate::new(template),
            auth_header: auth_header.map(Box::new),
            signer: signer.map(Box::new),
            body,
        })
    }

    /// The body (generic, Alertmanager's or the template's), with an `Idempotency-Key` and, when
    /// a secret is set, a signature made at the attempt's instant.
    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let key = formatters::webhook::idempotency_key(
            &call.alert.alert,
            call.context.status,
            call.delivery.sequence,
        );
        let mut request = self.template.request().header("Idempotency-Key", &key)?;
        let (body, content_type) = match &self.body {
            Body::Generic => (formatters::webhook::body(call.alert, &call.context)?, None),
            Body::Alertmanager(fields) => (
                formatters::alertmanager::webhook_message(
                    call.alert,
                    &call.context,
                    &fields.receiver,
                    &fields.external_url,
                )?,
                None,
            ),
            Body::Template(fields) => (
                fields.template.render(call.alert, &call.context)?,
                Some(fields.content_type.clone()),
            ),
        };
        let timestamp = call.context.now.timestamp();
        match self.signer.as_deref() {
            None => {}
            Some(Signer::Alertpub(secret)) => {
                let signature = sign(secret, timestamp, &body);
                request = request
                    .header(SIGNATURE_HEADER, &format!("t={timestamp},v1={signature}"))?
                    .scrub(secret);
            }
            Some(Signer::Standard(keys)) => {
                let raw: Vec<&[u8]> = keys
                    .iter()
                    .map(|(key, _)| key.expose().as_slice())
                    .collect();
                request = request
                    .header("webhook-id", &key)?
                    .header("webhook-timestamp", &timestamp.to_string())?
                    .header(
                        "webhook-signature",
                        &standard_signature(&raw, &key, timestamp, &body),
                    )?;
                for (_, secret) in keys {
                    request = request.scrub(secret);
                }
            }
        }
        Ok(match content_type {
            None => request.json(body),
            Some(content_type) => request.body_with_content_type(body, content_type),
        }
        .into())
    }

    /// `GET` on the URL, with the configured auth.
    fn health_probe(&self) -> Option<HealthProbe> {
        let probe = HealthProbe::new(self.template.url());
        let auth = self
            .auth_header
            .as_ref()
            .and_then(|name| Some((name, self.template.header(name)?)));
        Some(match auth {
            None => probe,
            // The value was a `String`, so its bytes are UTF-8.
            Some((name, value)) => probe.with_header(
                name.as_str(),
                Secret::new(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            ),
        })
    }
}

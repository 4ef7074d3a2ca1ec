//! Publishes alerts as generic JSON to any HTTP endpoint.
//!
//! The body is the generic webhook format of SPEC §3:
//! `{version:"1", alert_name, fingerprint, status, labels, annotations, starts_at, ends_at,
//! generator_url, classification, enrichment}`. Every request carries an `Idempotency-Key` made
//! from the fingerprint, the status, `starts_at` and the notification log's delivery sequence, so
//! retries of one delivery reuse it and a `repeat_interval` reminder gets a new one.
//!
//! Options: the method (`POST` or `PUT`), extra headers, Bearer, Basic or API-key auth, and an
//! HMAC-SHA256 signature header `X-Alertpub-Signature: t=<unix seconds>,v1=<hex>` computed over
//! `"<t>.<body>"` with the configured secret. A receiver verifies it by recomputing the HMAC over
//! the timestamp, a dot and the raw body, comparing in constant time, and rejecting old timestamps.
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
use hmac::{Hmac, Mac};
use http::Method;
use publisher_http::{
    BuildContext, BuildError, Call, Credential, HttpPublisher, HttpRequest, Outgoing,
    parse_settings,
};
use serde::Deserialize;
use sha2::Sha256;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Alertpub-Signature";

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

/// The webhook publisher.
pub struct WebhookPublisher {
    url: Secret<String>,
    /// What every request shares, built once: the parsed URL and its redacted form, the
    /// configured headers and the credentials. Each publish clones it and adds its own headers
    /// and body, instead of parsing and redacting the URL again.
    template: HttpRequest,
    /// The credentials again, for the health probe.
    auth: Auth,
    hmac_secret: Option<Secret<String>>,
}

publisher_http::from_settings!(WebhookPublisher);

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

/// The signature: lowercase hex of HMAC-SHA256(secret, `"<timestamp>.<body>"`).
#[must_use]
pub fn sign(secret: &Secret<String>, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl HttpPublisher for WebhookPublisher {
    const KIND: &'static str = "webhook";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let config: Config = parse_settings(settings)?;
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
        let auth = match config.auth {
            None => Auth::None,
            Some(auth) => resolve_auth(auth)?,
        };
        let hmac_secret = Credential::optional(config.hmac_secret.as_ref(), "hmac_secret")?;
        // Built now, so a bad header fails at load rather than on every publish.
        let settings = |e: publisher_http::RequestError| BuildError::Settings(e.to_string());
        let mut template = HttpRequest::secret_url(method, &url).map_err(settings)?;
        for (name, value) in &config.headers {
            template = template.secret_header(name, value).map_err(settings)?;
        }
        template = match &auth {
            Auth::None => template,
            Auth::Bearer(token) => template.bearer(token).map_err(settings)?,
            Auth::Header(name, value) => template.secret_header(name, value).map_err(settings)?,
        };
        Ok(Self {
            url,
            template,
            auth,
            hmac_secret,
        })
    }

    /// The generic body, with an `Idempotency-Key` and, when a secret is set, a signature made
    /// at the attempt's instant.
    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let body = formatters::webhook::body(call.alert, &call.context)?;
        let key = formatters::webhook::idempotency_key(
            &call.alert.alert,
            call.context.status,
            call.delivery.sequence,
        );
        let mut request = self.template.clone().header("Idempotency-Key", &key)?;
        if let Some(secret) = &self.hmac_secret {
            let timestamp = call.context.now.timestamp();
            let signature = sign(secret, timestamp, &body);
            request = request
                .header(SIGNATURE_HEADER, &format!("t={timestamp},v1={signature}"))?
                .scrub(secret);
        }
        Ok(request.json(body).into())
    }

    /// `GET` on the URL, with the configured auth.
    fn health_probe(&self) -> Option<HealthProbe> {
        let probe = HealthProbe::new(self.url.clone());
        Some(match &self.auth {
            Auth::None => probe,
            Auth::Bearer(token) => probe.with_header(
                "Authorization",
                Secret::new(format!("Bearer {}", token.expose())),
            ),
            Auth::Header(name, value) => probe.with_header(name.clone(), value.clone()),
        })
    }
}

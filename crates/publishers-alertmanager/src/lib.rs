//! Forwards alerts to another Alertmanager: `POST {url}/api/v2/alerts` with a JSON array of
//! postable alerts, as Prometheus sends them.
//!
//! An Alertmanager resolves an alert that is not refreshed within its `resolve_timeout`, so while an
//! alert fires, alertpub re-forwards it every `refresh_interval` (default 1m; keep it below the
//! upstream's `resolve_timeout`). The interval is a setting of this kind; the queue schedules the
//! refreshes. Alertmanager deduplicates by labels, so a refresh never notifies twice.
//!
//! A `generatorURL` the upstream would refuse is left out of the forwarded alert, with a warning.
//! Alertmanager's API (`api/v2/openapi.yaml`,
//! <https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml>) declares the field
//! `format: uri`, checked with Go's `url.ParseRequestURI`, and answers `422` for the whole request
//! when it fails: the alert would be refused on every retry, until it dead-lettered, for the sake
//! of a link. [`formatters::alertmanager::is_absolute_request_uri`] is the check. The warning names
//! the alert's fingerprint and the URL's length, never the URL, which may carry a token in its
//! query.
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
//!     "url": "http://127.0.0.1:9093",
//!     "refresh_interval": "1m",
//! }))?;
//! let context = BuildContext::new(
//!     TargetName::new("upstream-alertmanager")?,
//!     HttpClient::new(&ClientConfig::default())?,
//!     Arc::new(InMemoryMessageRefs::new()),
//! );
//! let publisher = publishers_alertmanager::from_settings(&settings, &context)?;
//! # let _ = publisher;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use alert_core::{HealthProbe, KindSettings, PublishError, Secret, wire};
use publisher_http::{
    BuildContext, BuildError, Call, Credential, HttpPublisher, HttpRequest, Outgoing,
    check_base_url, parse_settings,
};
use serde::Deserialize;

/// The default `refresh_interval`.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// An Alertmanager target's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The upstream's base URL; `/api/v2/alerts` is appended.
    pub url: String,
    /// How often a firing alert is re-forwarded, as "1m"; default 1m.
    #[serde(default)]
    pub refresh_interval: Option<String>,
    /// An optional bearer token (or `bearer_token_file`), for an Alertmanager behind an
    /// authenticating proxy.
    #[serde(default)]
    pub bearer_token: Option<Credential>,
}

impl Config {
    /// The refresh interval, parsed.
    ///
    /// # Errors
    /// [`BuildError::Settings`] for an unparsable or zero interval.
    pub fn refresh_interval(&self) -> Result<Duration, BuildError> {
        match &self.refresh_interval {
            None => Ok(DEFAULT_REFRESH_INTERVAL),
            Some(text) => match wire::parse_duration(text) {
                Ok(interval) if !interval.is_zero() => Ok(interval),
                Ok(_) => Err(BuildError::Settings(
                    "refresh_interval must be greater than zero".to_owned(),
                )),
                Err(err) => Err(BuildError::Settings(format!("refresh_interval: {err}"))),
            },
        }
    }
}

/// The Alertmanager forwarding publisher.
#[derive(Debug)]
pub struct AlertmanagerPublisher {
    endpoint: String,
    health: String,
    refresh_interval: Duration,
    bearer: Option<Secret<String>>,
}

publisher_http::from_settings!(AlertmanagerPublisher);

impl AlertmanagerPublisher {
    /// How often a firing alert is re-forwarded.
    #[must_use]
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }
}

impl HttpPublisher for AlertmanagerPublisher {
    const KIND: &'static str = "alertmanager";

    fn build(settings: &KindSettings, _: &BuildContext) -> Result<Self, BuildError> {
        let config: Config = parse_settings(settings)?;
        let base = check_base_url("url", &config.url)?;
        Ok(Self {
            endpoint: format!("{base}/api/v2/alerts"),
            health: format!("{base}/-/healthy"),
            refresh_interval: config.refresh_interval()?,
            bearer: Credential::optional(config.bearer_token.as_ref(), "bearer_token")?,
        })
    }

    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError> {
        let alert = &call.alert.alert;
        if let Some(url) = alert.generator_url()
            && !url.is_empty()
            && !formatters::alertmanager::is_absolute_request_uri(url)
        {
            tracing::warn!(
                fingerprint = %alert.fingerprint(),
                generator_url_chars = url.chars().count(),
                "the alert's generatorURL is not an absolute URI, which Alertmanager refuses \
                 with 422; it is forwarded without one"
            );
        }
        let body = formatters::alertmanager::postable_alerts_with_context(&[alert], &call.context)?;
        let mut http = HttpRequest::post(&self.endpoint)?.json(body);
        if let Some(token) = &self.bearer {
            http = http.bearer(token)?;
        }
        Ok(http.into())
    }

    /// `GET /-/healthy`, with the bearer token when one is configured.
    fn health_probe(&self) -> Option<HealthProbe> {
        let probe = HealthProbe::new(Secret::new(self.health.clone()));
        Some(match &self.bearer {
            Some(token) => probe.with_header(
                "Authorization",
                Secret::new(format!("Bearer {}", token.expose())),
            ),
            None => probe,
        })
    }
}

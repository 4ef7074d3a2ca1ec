//! The one HTTP client stack that every alertpub publisher shares.
//!
//! Publishers write two things only: how to build their request, and — when the status code is not
//! enough — how to classify the answer ([`HttpPublisher`]; [`HttpTarget`] is the `Publisher` of
//! each). Everything else lives here, once:
//! - the shared settings: a [`Credential`] (inline, `${env:VAR}` or `NAME_file`), a [`BaseUrl`]
//!   with the vendor's default, and reading a target's settings ([`parse_settings`],
//!   [`split_settings`]);
//! - a pooled hyper-util client with rustls on the ring provider, trusting the webpki roots plus any
//!   extra CA certificates the configuration names ([`HttpClient`], [`ClientConfig`]): one
//!   connection pool for every target, each target under a claim of its own on it (its
//!   in-flight limit, [`BuildContext`]), so a target that stops answering never holds another
//!   target's connections, and an idle target holds no pool;
//! - no attempt deadline of its own by default: the caller applies each target's `timeout` (the
//!   dispatcher and the synchronous API do, in `TargetCall`), so a target set to 30 s is not cut
//!   at a hidden shorter limit; [`ClientConfig::with_timeout`] adds one for callers without;
//! - a response-size limit;
//! - classification of the answer into success or an [`alert_core::ErrorKind`], including
//!   `Retry-After` in seconds or as an HTTP date ([`classify_status`], [`Classify`]);
//! - redaction: URLs appear only as `scheme://host:port/…`, and every secret registered on a
//!   request is scrubbed from error messages and logs.
//!
//! It never retries: retries belong to the dispatcher.
//!
//! ```no_run
//! use alert_core::Secret;
//! use publisher_http::{ClientConfig, DefaultClassifier, HttpClient, HttpRequest};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = HttpClient::new(&ClientConfig::default())?;
//! let token = Secret::new("s3cr3t".to_owned());
//! let request = HttpRequest::post("https://example.com/hook")?
//!     .json(br#"{"hello":"world"}"#.to_vec())
//!     .bearer(&token)?;
//! let response = client.send(request, &DefaultClassifier).await?;
//! assert!(response.status.is_success());
//! # Ok(())
//! # }
//! ```

mod build;
mod classify;
mod client;
mod limit;
mod publish;
mod request;
mod settings;

pub use alert_core::BuildError;
pub use build::{BuildContext, check_base_url, resolve_secret};
pub use classify::{
    Classify, DefaultClassifier, classify_status, classify_status_with, parse_retry_after,
};
pub use client::{ClientBuildError, ClientConfig, HttpClient, HttpResponse, InMemoryHandler};
pub use publish::{
    Answer, Call, HttpPublisher, HttpTarget, MAX_FOLLOW_UPS, Outgoing, RefUpdate, build_publisher,
};
pub use request::{HttpRequest, MIN_SCRUBBED_PART, RequestError, RequestTemplate};
pub use settings::{BaseUrl, Credential, parse_settings, split_settings};

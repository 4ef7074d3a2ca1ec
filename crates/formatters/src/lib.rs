//! Pure functions from an alert to each target's wire payload: PagerDuty Events v2, Slack Block
//! Kit, Rootly's Alerts API, the generic webhook, Alertmanager's API v2 and webhook shapes, Teams
//! Adaptive Cards, Opsgenie's Alert API, incident.io's HTTP alert source, Discord embeds,
//! Telegram's HTML messages, and e-mail.
//!
//! Formatters do no I/O, read no clock and log nothing: the same alert, [`FormatContext`] and
//! settings always give the same bytes. The caller decides the status to publish and the instant
//! to format at, and passes both in a [`FormatContext`].
//!
//! - [`Templates`] compiles a target's [`TemplateConfig`] (minijinja) once, at config load, and
//!   renders the title, summary and description every text-bearing target uses.
//! - One module per target kind holds its formatter and, where it has options, its settings:
//!   [`pagerduty`], [`slack`], [`rootly`], [`webhook`], [`alertmanager`], [`msteams`],
//!   [`opsgenie`], [`incidentio`], [`discord`], [`telegram`] and [`email`]. The functions keep
//!   their module's name at the call site (`pagerduty::event`, `slack::message`), which is why
//!   these modules are public while everything else is re-exported below.
//! - Every limit a target documents (PagerDuty's 1024-character summary and 512 KB event, Slack's
//!   block and text limits) is enforced here, so a payload is never refused for its shape.
//! - [`FormatError`] is the one error; [`FormatError::kind`] classifies it for a publisher.
//!
//! ```
//! use alert_core::{Alert, Annotations, AlertStatus, EnrichedAlert, Labels};
//! use chrono::{TimeZone, Utc};
//! use formatters::{FormatContext, TemplateConfig, Templates, pagerduty};
//!
//! let labels: Labels = [("alertname", "DiskFull"), ("instance", "db-1")]
//!     .into_iter()
//!     .map(|(k, v)| (k.to_owned(), v.to_owned()))
//!     .collect();
//! let starts_at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
//! let alert = Alert::build(labels, Annotations::new(), starts_at, None, None).unwrap();
//! let alert = EnrichedAlert::new(alert);
//!
//! // Compiled once per target, when the config loads.
//! let templates = Templates::new(&TemplateConfig {
//!     title: Some("[{{ status | upper }}] {{ labels.alertname }}".to_owned()),
//!     ..TemplateConfig::default()
//! })?;
//!
//! // The caller decides the status and the instant.
//! let ctx = FormatContext::new(AlertStatus::Firing, starts_at);
//! assert_eq!(ctx.status, AlertStatus::Firing);
//! assert_eq!(templates.title(&alert, &ctx)?, "[FIRING] DiskFull");
//!
//! let body = pagerduty::event(&alert, &ctx, "routing-key", &Default::default(), &templates)?;
//! let json: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!(json["event_action"], "trigger");
//! assert_eq!(json["dedup_key"], pagerduty::dedup_key(alert.alert.fingerprint()));
//! assert_eq!(json["payload"]["summary"], "[FIRING] DiskFull");
//! assert_eq!(json["payload"]["source"], "db-1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod context;
mod error;
mod templates;
mod text;

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod incidentio;
pub mod msteams;
pub mod opsgenie;
pub mod pagerduty;
pub mod rootly;
pub mod slack;
pub mod telegram;
pub mod webhook;

pub use context::FormatContext;
pub use error::FormatError;
pub use templates::{BODY_TEMPLATE, BodyTemplate, MAX_RENDERED_BYTES, TemplateConfig, Templates};

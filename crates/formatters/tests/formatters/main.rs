//! formatters' integration tests: the exact JSON of every formatter for firing and resolved
//! alerts, with and without a classification; every truncation limit; the templates; and the
//! idempotency key.
//!
//! Every expectation uses fixed timestamps (the alert starts at 2026-01-02T03:04:05Z) and a
//! fingerprint written out as a literal, computed independently from the labels.

mod alertmanager;
mod common;
mod discord;
mod email;
mod incidentio;
mod msteams;
mod opsgenie;
mod pagerduty;
mod rootly;
mod slack;
mod telegram;
mod templates;
mod webhook;

//! Pure functions from an alert to each target's wire payload (PagerDuty Events v2, Slack Block Kit, Rootly, the generic webhook, Alertmanager API v2).
//!
//! Formatters do no I/O: the same alert and settings always give the same bytes. They arrive with the publishers.

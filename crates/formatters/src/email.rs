//! E-mail: the subject, a plain-text part and an HTML part of one notification, and the
//! `Message-ID`s that thread an alert's mails together.
//!
//! The subject is the title; the text part is the description; the HTML part shows the title,
//! the description and the labels, every value escaped ([`escape_html`]), so an alert's text is
//! never markup. The parts go out as `multipart/alternative`, plain text first and HTML last, the
//! order of increasing faithfulness RFC 2046 §5.1.4 asks for.
//!
//! Threading (RFC 5322 §3.6.4): every mail of one alert's life (from its `startsAt`) refers to
//! the same root, [`thread_root`], which depends only on the fingerprint, the start and the
//! sender's domain; so a resolve sent by any process, after any restart, lands in the firing's
//! thread.

use alert_core::{AlertStatus, EnrichedAlert, Fingerprint};
use chrono::{DateTime, Utc};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::templates::Templates;
use crate::text::truncate_chars;

/// A subject's cut, in characters (RFC 5322 allows more, over folded lines; a subject is read at
/// a glance).
pub const MAX_SUBJECT_CHARS: usize = 250;

/// One notification's texts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Email {
    /// The subject: the title.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

pub use crate::text::escape_html;

/// The `Message-ID` an alert's thread hangs from:
/// `<alertpub.<fingerprint>.<startsAt in ms>@<domain>>`.
#[must_use]
pub fn thread_root(fingerprint: Fingerprint, starts_at: DateTime<Utc>, domain: &str) -> String {
    format!(
        "<alertpub.{fingerprint}.{}@{domain}>",
        starts_at.timestamp_millis()
    )
}

/// Renders the subject and both parts.
///
/// # Errors
/// [`FormatError::Template`] when a template fails.
pub fn render(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    templates: &Templates,
) -> Result<Email, FormatError> {
    let texts = templates.texts(alert, ctx)?;
    let inner = &alert.alert;
    let subject =
        truncate_chars(&texts.title.replace(['\r', '\n'], " "), MAX_SUBJECT_CHARS).into_owned();
    let color = match ctx.status {
        AlertStatus::Firing => "#c0392b",
        AlertStatus::Resolved => "#27ae60",
    };
    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<h2 style=\"color:{color}\">{}</h2>\n<p>{}</p>\n",
        escape_html(&texts.title),
        escape_html(&texts.description).replace('\n', "<br>\n"),
    );
    html.push_str("<table>\n");
    for (name, value) in inner.labels() {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            escape_html(name),
            escape_html(value)
        ));
    }
    html.push_str("</table>\n");
    if let Some(url) = inner
        .generator_url()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    {
        html.push_str(&format!(
            "<p><a href=\"{}\">Source</a></p>\n",
            escape_html(url)
        ));
    }
    html.push_str("</body></html>\n");
    Ok(Email {
        subject,
        text: texts.description,
        html,
    })
}

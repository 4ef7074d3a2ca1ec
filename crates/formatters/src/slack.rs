//! Slack messages: Block Kit blocks plus a colour attachment.
//!
//! One message shape serves both modes: an incoming webhook takes it as the request body, and
//! bot mode (`chat.postMessage`, `chat.update`) adds `channel`, `ts` or `thread_ts` to the same
//! object, which is why [`message`] returns a [`serde_json::Value`].
//!
//! The message reads, from the top: a `header` with the title; a `section` with the summary (and
//! the `description` annotation when it says more); the labels as `fields`, ten to a section; the
//! classification when there is one; a `context` line with the status, the start (and the end of a
//! resolved alert) in the reader's time zone, and a link to the source. A legacy attachment carries
//! the colour bar: `danger` while firing, `good` once resolved.
//!
//! Slack's limits, from the Block Kit reference (<https://docs.slack.dev/reference/block-kit/blocks>)
//! and the legacy attachment fields, are enforced here, never left to Slack to reject:
//! [`MAX_HEADER_CHARS`], [`MAX_SECTION_CHARS`], [`MAX_FIELD_CHARS`], [`MAX_FIELDS_PER_SECTION`],
//! [`MAX_BLOCKS`] and [`MAX_ATTACHMENT_TITLE_CHARS`]. When the labels need more sections than the
//! block budget leaves, the last sections are dropped (the header stays first and the context
//! last) and the context says how many labels are not shown.
//!
//! Template output (the title and the summary) and annotations are sent as written, so a template
//! may use Slack's own markup such as `<https://runbook|Runbook>`. Labels and the classification
//! are escaped (`&`, `<`, `>`), because they are wrapped in our markup.

use alert_core::{AlertStatus, Classification, EnrichedAlert};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::templates::Templates;
use crate::text::truncate_chars;

/// The longest header text, in characters.
pub const MAX_HEADER_CHARS: usize = 150;
/// The longest text of a `section` block, in characters.
pub const MAX_SECTION_CHARS: usize = 3000;
/// The longest text of one field of a `section` block, in characters.
pub const MAX_FIELD_CHARS: usize = 2000;
/// The most fields one `section` block may hold.
pub const MAX_FIELDS_PER_SECTION: usize = 10;
/// The most blocks one message may hold.
pub const MAX_BLOCKS: usize = 50;
/// The longest attachment title, attachment fallback and top-level `text`, in characters (Go's
/// runes).
pub const MAX_ATTACHMENT_TITLE_CHARS: usize = 1024;

/// Per-target Slack options, from the target's config. Each one set is added to the message.
///
/// This is a plain record: build it with `..Default::default()`, which keeps compiling when a field
/// is added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// `channel`: required in bot mode; an incoming webhook posts to its own channel.
    pub channel: Option<String>,
    /// `username`: the name the message is posted under.
    pub username: Option<String>,
    /// `icon_emoji`, such as `:rotating_light:`.
    pub icon_emoji: Option<String>,
    /// `icon_url`: an image to post under.
    pub icon_url: Option<String>,
}

/// Builds the message.
///
/// # Errors
/// [`FormatError::Template`] when the title or summary template fails.
pub fn message(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    settings: &SlackSettings,
    templates: &Templates,
) -> Result<Value, FormatError> {
    let inner = &alert.alert;
    let (title, summary) = templates.title_and_summary(alert, ctx)?;

    // The blocks that always appear, and so the budget left for the labels.
    let fixed_blocks = 3 + usize::from(alert.classification.is_some());
    let label_sections_budget = MAX_BLOCKS - fixed_blocks;

    let mut blocks = Vec::with_capacity(MAX_BLOCKS);
    blocks.push(json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate_chars(&title, MAX_HEADER_CHARS) },
    }));

    let mut body = summary;
    if let Some(description) = inner
        .annotations()
        .get("description")
        .map(|text| text.trim())
        .filter(|text| !text.is_empty() && *text != body)
    {
        body.push('\n');
        body.push_str(description);
    }
    blocks.push(mrkdwn_section(&body));

    let fields: Vec<Value> = inner
        .labels()
        .iter()
        .map(|(name, value)| {
            let text = format!("*{}*\n{}", escape(name), escape(value));
            json!({ "type": "mrkdwn", "text": truncate_chars(&text, MAX_FIELD_CHARS) })
        })
        .collect();
    let mut hidden_labels = 0;
    for (index, chunk) in fields.chunks(MAX_FIELDS_PER_SECTION).enumerate() {
        if index < label_sections_budget {
            blocks.push(json!({ "type": "section", "fields": chunk }));
        } else {
            hidden_labels += chunk.len();
        }
    }

    if let Some(classification) = &alert.classification {
        blocks.push(mrkdwn_section(&classification_text(classification)));
    }

    let mut context = vec![
        mrkdwn(&format!("*Status:* {}", ctx.status)),
        mrkdwn(&format!("*Started:* {}", slack_date(inner.starts_at()))),
    ];
    if ctx.status == AlertStatus::Resolved
        && let Some(ends_at) = ctx.effective_ends_at(inner)
    {
        context.push(mrkdwn(&format!("*Ended:* {}", slack_date(ends_at))));
    }
    if let Some(url) = inner.generator_url() {
        context.push(mrkdwn(&format!("<{}|Source>", link_target(url))));
    }
    if hidden_labels > 0 {
        context.push(mrkdwn(&format!("_{hidden_labels} more labels not shown_")));
    }
    blocks.push(json!({ "type": "context", "elements": context }));

    let short_title = truncate_chars(&title, MAX_ATTACHMENT_TITLE_CHARS);
    let mut attachment = Map::new();
    let color = match ctx.status {
        AlertStatus::Firing => "danger",
        AlertStatus::Resolved => "good",
    };
    attachment.insert("color".into(), color.into());
    attachment.insert("title".into(), short_title.as_ref().into());
    if let Some(url) = inner.generator_url() {
        attachment.insert("title_link".into(), url.into());
    }
    attachment.insert("fallback".into(), short_title.as_ref().into());

    let mut message = Map::new();
    message.insert("text".into(), short_title.as_ref().into());
    message.insert("blocks".into(), Value::Array(blocks));
    message.insert(
        "attachments".into(),
        Value::Array(vec![Value::Object(attachment)]),
    );
    for (key, value) in [
        ("channel", &settings.channel),
        ("username", &settings.username),
        ("icon_emoji", &settings.icon_emoji),
        ("icon_url", &settings.icon_url),
    ] {
        if let Some(value) = value {
            message.insert(key.into(), value.as_str().into());
        }
    }
    Ok(Value::Object(message))
}

fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": text })
}

fn mrkdwn_section(text: &str) -> Value {
    json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": truncate_chars(text, MAX_SECTION_CHARS) },
    })
}

fn classification_text(classification: &Classification) -> String {
    // `confidence` lies in 0..=1, so this is a whole number from 0 to 100, which `f64`'s `Display`
    // prints without a fraction.
    let percent = (classification.confidence * 100.0).round();
    let mut text = format!(
        "*Classification:* {} ({percent}% confidence)",
        classification.severity
    );
    let reasoning = classification.reasoning.trim();
    if !reasoning.is_empty() {
        text.push('\n');
        text.push_str(&escape(reasoning));
    }
    if !classification.recommendations.is_empty() {
        text.push_str("\n*Recommendations:*");
        for recommendation in &classification.recommendations {
            text.push_str("\n• ");
            text.push_str(&escape(recommendation));
        }
    }
    text
}

/// A timestamp Slack shows in the reader's time zone, with the RFC 3339 text as the fallback.
fn slack_date(at: DateTime<Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
        at.timestamp(),
        alert_core::wire::format_timestamp(at)
    )
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A URL made safe inside `<url|text>`: escaped, and with `|` percent-encoded so that it cannot end
/// the URL early.
fn link_target(url: &str) -> String {
    escape(url).replace('|', "%7C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_slack_control_characters() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(link_target("http://x/?a=1&b=|"), "http://x/?a=1&amp;b=%7C");
    }

    #[test]
    fn formats_dates_for_the_reader() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            slack_date(at),
            "<!date^1767323045^{date_short_pretty} {time_secs}|2026-01-02T03:04:05.000Z>"
        );
    }
}

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
//! last) and the context says how many labels are not shown. A source link longer than a text
//! object may be ([`MAX_SECTION_CHARS`]) is left out of the context rather than cut, which would
//! break it; the attachment's `title_link` still carries it.
//!
//! **The whole message's budget.** Slack also refuses a message whose blocks are too long *in
//! total* (`msg_blocks_too_long`, listed for
//! <https://docs.slack.dev/reference/methods/chat.postMessage> with no number). The number is not
//! documented; what is known is in [`MAX_BLOCKS_TEXT_CHARS`]. Every message is fitted to that
//! budget, in this order, until it fits:
//!
//! 1. the label fields are cut, the longest first, to one common length, but no shorter than
//!    [`MIN_FIELD_CHARS`];
//! 2. the description (the body after the summary) is cut, or left out;
//! 3. label sections are dropped from the end, and the context says how many labels are not
//!    shown; the fields left are then cut only as far as they must be.
//!
//! The header, the summary, the classification and the context always stay, and the
//! arithmetic guarantees they fit on their own. The top-level `text` (the notification and
//! screen-reader fallback) and the attachment are never cut for the budget: they are not blocks.
//!
//! Alerts come from anyone who can post one, so their text is not allowed to act on Slack by
//! default: the description annotation is escaped (`&`, `<`, `>`) like labels and the
//! classification, and in the title and summary (template output) Slack's special sequences,
//! `<!channel>`, `<!here>`, `<!everyone>`, `<!subteam^…>`, `<@user>` and `<#channel>`, are
//! neutralised, so an alert can't page a whole channel. Links such as
//! `<https://runbook|Runbook>` in a template still work. `raw_markup: true` sends the title,
//! summary and description as written, for a team whose alerts are trusted to mention people.

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

/// The budget of one message's blocks, in characters: the text of every text object in every
/// block, plus [`BLOCK_CONTAINER_CHARS`] for each block, must stay within it.
///
/// Slack refuses a message over its cumulative limit with `msg_blocks_too_long` and documents no
/// number. What is known: slackapi/bolt-js#2509 (<https://github.com/slackapi/bolt-js/issues/2509>)
/// measured the refusal at about 13,297 characters of `markdown` blocks alone, and less once a
/// divider was added, so blocks cost something beyond their text. A Slack engineer there put it
/// at "12,000 text characters with a buffer for block containers", as quoted in
/// slackapi/bolt-js#2867 (<https://github.com/slackapi/bolt-js/issues/2867>), which also reports
/// a refusal at 11,341 summed text characters over 45 blocks and an acceptance at 9,597 over 50.
/// Text alone under 12,000 is therefore not safe. Charging each block a container cost as well
/// fits every one of those observations: 11,341 + 45 × 50 is over 12,000 (refused, rightly), and
/// the accepted 9,597 + 50 × 50 is just over too (so we are stricter than Slack, never looser).
/// A message of 50 blocks thus gets 9,500 characters of text, and a short one nearly 12,000.
/// Characters are counted as Unicode scalar values.
pub const MAX_BLOCKS_TEXT_CHARS: usize = 12_000;

/// What each block costs against [`MAX_BLOCKS_TEXT_CHARS`] besides its text: its container.
pub const BLOCK_CONTAINER_CHARS: usize = 50;

/// The shortest a label field is cut to for the message budget before labels are hidden
/// instead: enough for a name and a readable value.
pub const MIN_FIELD_CHARS: usize = 100;

/// The most text the context's status, start, end and hidden-labels elements can take together;
/// the source link is bounded on its own, by [`MAX_SECTION_CHARS`].
const CONTEXT_TEXT_RESERVE: usize = 500;

// The blocks that always stay (the header, the body cut to its summary, the classification and the
// context, four blocks) fit the budget with room to spare, so dropping label sections always
// brings a message within it.
const _: () = assert!(
    MAX_HEADER_CHARS + 3 * MAX_SECTION_CHARS + CONTEXT_TEXT_RESERVE + 4 * BLOCK_CONTAINER_CHARS
        <= MAX_BLOCKS_TEXT_CHARS
);

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
    /// `raw_markup`: send the title, summary and description as written, mentions and all.
    #[serde(default)]
    pub raw_markup: bool,
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

    let description = inner
        .annotations()
        .get("description")
        .map(|text| text.trim())
        .filter(|text| !text.is_empty() && *text != summary);
    let (title, summary, description) = if settings.raw_markup {
        (title, summary, description.map(str::to_owned))
    } else {
        (
            defuse_mentions(&title),
            defuse_mentions(&summary),
            description.map(escape),
        )
    };
    let description = description.as_deref();
    let fields: Vec<String> = inner
        .labels()
        .iter()
        .map(|(name, value)| format!("*{}*\n{}", escape(name), escape(value)))
        .collect();
    let classification = alert
        .classification
        .as_ref()
        .map(|c| truncate_chars(&classification_text(c), MAX_SECTION_CHARS).into_owned());

    let mut context = vec![
        format!("*Status:* {}", ctx.status),
        format!("*Started:* {}", slack_date(inner.starts_at())),
    ];
    if ctx.status == AlertStatus::Resolved
        && let Some(ends_at) = ctx.effective_ends_at(inner)
    {
        context.push(format!("*Ended:* {}", slack_date(ends_at)));
    }
    if let Some(url) = inner.generator_url() {
        let link = format!("<{}|Source>", link_target(url));
        // A cut URL is a broken link; the attachment's `title_link` keeps the whole one.
        if link.chars().count() <= MAX_SECTION_CHARS {
            context.push(link);
        }
    }

    let layout = Layout::fit(
        truncate_chars(&title, MAX_HEADER_CHARS).into_owned(),
        &summary,
        description,
        &fields,
        classification,
        context,
    );
    let blocks = layout.blocks(&fields);

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

// === impl Layout ===

/// The message's blocks before they become JSON: what is shown, and how much of it, so that the
/// budget can be checked and met without building JSON over and over.
struct Layout {
    header: String,
    body: String,
    /// The length of each label field, in full.
    field_chars: Vec<usize>,
    /// How many label sections are shown.
    sections: usize,
    /// The length label fields are cut to.
    field_cap: usize,
    classification: Option<String>,
    /// The context elements, without the hidden-labels note, which [`Layout::note`] adds.
    context: Vec<String>,
}

impl Layout {
    /// Lays the message out within Slack's per-block limits, then within the message budget:
    /// fields cut, then the description, then label sections dropped (see the module docs).
    fn fit(
        header: String,
        summary: &str,
        description: Option<&str>,
        fields: &[String],
        classification: Option<String>,
        context: Vec<String>,
    ) -> Self {
        // The blocks that always appear, and so the budget left for the labels.
        let fixed_blocks = 3 + usize::from(classification.is_some());
        let full_body = match description {
            Some(description) => format!("{summary}\n{description}"),
            None => summary.to_owned(),
        };
        let mut layout = Self {
            header,
            body: truncate_chars(&full_body, MAX_SECTION_CHARS).into_owned(),
            field_chars: fields.iter().map(|f| f.chars().count()).collect(),
            sections: fields
                .len()
                .div_ceil(MAX_FIELDS_PER_SECTION)
                .min(MAX_BLOCKS - fixed_blocks),
            field_cap: MAX_FIELD_CHARS,
            classification,
            context,
        };
        if layout.fits() {
            return layout;
        }

        // 1. Cut the fields, the longest first, as far as MIN_FIELD_CHARS.
        layout.field_cap = layout.widest_field_cap().unwrap_or(MIN_FIELD_CHARS);
        if layout.fits() {
            return layout;
        }

        // 2. Cut the description. The summary stays whole (within its section's limit); a cut
        // keeps at least the line break and the ellipsis after it, to show something was cut.
        if description.is_some() {
            let summary_chars = summary.chars().count();
            let others = layout.cost() - layout.body.chars().count();
            let room = MAX_BLOCKS_TEXT_CHARS.saturating_sub(others);
            layout.body = if room >= summary_chars + 2 {
                truncate_chars(&full_body, room.min(MAX_SECTION_CHARS)).into_owned()
            } else {
                truncate_chars(summary, MAX_SECTION_CHARS).into_owned()
            };
            if layout.fits() {
                return layout;
            }
        }

        // 3. Drop label sections from the end. Fewer fields may each keep more of their text.
        while !layout.fits() && layout.sections > 0 {
            layout.sections -= 1;
            layout.field_cap = layout.widest_field_cap().unwrap_or(MIN_FIELD_CHARS);
        }
        debug_assert!(layout.fits(), "the const assertion above guarantees this");
        layout
    }

    fn shown_fields(&self) -> usize {
        (self.sections * MAX_FIELDS_PER_SECTION).min(self.field_chars.len())
    }

    /// The context's note of labels not shown, if any are hidden.
    fn note(&self) -> Option<String> {
        let hidden = self.field_chars.len() - self.shown_fields();
        (hidden > 0).then(|| format!("_{hidden} more labels not shown_"))
    }

    fn blocks_count(&self) -> usize {
        3 + self.sections + usize::from(self.classification.is_some())
    }

    /// The cost of everything but the label fields' text.
    fn cost_without_fields(&self) -> usize {
        let chars = |text: &str| text.chars().count();
        chars(&self.header)
            + chars(&self.body)
            + self.classification.as_deref().map_or(0, chars)
            + self.context.iter().map(|text| chars(text)).sum::<usize>()
            + self.note().as_deref().map_or(0, chars)
            + self.blocks_count() * BLOCK_CONTAINER_CHARS
    }

    /// The cost of the shown label fields, each cut to `cap`.
    fn fields_cost(&self, cap: usize) -> usize {
        self.field_chars[..self.shown_fields()]
            .iter()
            .map(|chars| (*chars).min(cap))
            .sum()
    }

    /// The message's cost against [`MAX_BLOCKS_TEXT_CHARS`].
    fn cost(&self) -> usize {
        self.cost_without_fields() + self.fields_cost(self.field_cap)
    }

    fn fits(&self) -> bool {
        self.cost() <= MAX_BLOCKS_TEXT_CHARS
    }

    /// The longest length, from [`MIN_FIELD_CHARS`] to [`MAX_FIELD_CHARS`], that the shown fields
    /// can be cut to and fit the budget beside everything else, or `None` when even the shortest
    /// does not fit. Cutting every field to one length cuts the longest first and leaves short
    /// ones whole.
    fn widest_field_cap(&self) -> Option<usize> {
        let room = MAX_BLOCKS_TEXT_CHARS.checked_sub(self.cost_without_fields())?;
        if self.fields_cost(MIN_FIELD_CHARS) > room {
            return None;
        }
        // The cost grows with the cap: find the largest cap that fits, by bisection.
        let (mut fits, mut too_wide) = (MIN_FIELD_CHARS, MAX_FIELD_CHARS + 1);
        while too_wide - fits > 1 {
            let mid = fits + (too_wide - fits) / 2;
            if self.fields_cost(mid) <= room {
                fits = mid;
            } else {
                too_wide = mid;
            }
        }
        Some(fits)
    }

    /// The blocks as Slack takes them: the header, the body, the label sections, the
    /// classification, and the context last.
    fn blocks(self, fields: &[String]) -> Vec<Value> {
        let mut blocks = Vec::with_capacity(self.blocks_count());
        blocks.push(json!({
            "type": "header",
            "text": { "type": "plain_text", "text": self.header },
        }));
        blocks.push(mrkdwn_section(&self.body));
        let shown: Vec<Value> = fields[..self.shown_fields()]
            .iter()
            .map(|text| mrkdwn(&truncate_chars(text, self.field_cap)))
            .collect();
        for chunk in shown.chunks(MAX_FIELDS_PER_SECTION) {
            blocks.push(json!({ "type": "section", "fields": chunk }));
        }
        let note = self.note();
        if let Some(classification) = &self.classification {
            blocks.push(mrkdwn_section(classification));
        }
        let mut context: Vec<Value> = self.context.iter().map(|text| mrkdwn(text)).collect();
        if let Some(note) = note {
            context.push(mrkdwn(&note));
        }
        blocks.push(json!({ "type": "context", "elements": context }));
        blocks
    }
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

/// Neutralises the sequences that make Slack notify people or channels (`<!channel>`,
/// `<!here>`, `<!everyone>`, `<!subteam^ID>`, `<@U123>`, `<#C123>`), leaving links and other markup
/// alone.
fn defuse_mentions(text: &str) -> String {
    text.replace("<!", "&lt;!")
        .replace("<@", "&lt;@")
        .replace("<#", "&lt;#")
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

//! Discord: a webhook message with one embed.
//!
//! Reference: "Execute Webhook" (<https://discord.com/developers/docs/resources/webhook#execute-webhook>)
//! and the embed limits
//! (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>): a title of
//! at most 256 characters, a description of 4 096, at most 25 fields (names 256, values 1 024), a
//! footer of 2 048, and all of them together at most 6 000 characters in a message.
//!
//! The embed carries the title (linked to the generator URL when it is an http(s) URL), the
//! description, one inline field per label, the colour (red while firing, green once resolved),
//! the alert's start (or end) as its timestamp, and the fingerprint in the footer.
//! `allowed_mentions` is empty, so an alert's text never pings `@everyone`. A message over the
//! 6 000-character total first loses fields from the end, then its description is cut.

use alert_core::{AlertStatus, EnrichedAlert, wire};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::templates::Templates;
use crate::text::truncate_chars;

/// An embed title's limit.
pub const MAX_TITLE_CHARS: usize = 256;
/// An embed description's limit.
pub const MAX_DESCRIPTION_CHARS: usize = 4_096;
/// The most fields in an embed.
pub const MAX_FIELDS: usize = 25;
/// A field name's limit.
pub const MAX_FIELD_NAME_CHARS: usize = 256;
/// A field value's limit.
pub const MAX_FIELD_VALUE_CHARS: usize = 1_024;
/// The limit of all embed texts of a message together.
pub const MAX_TOTAL_CHARS: usize = 6_000;

/// Firing red.
pub const FIRING_COLOR: u32 = 0x00E0_1E5A;
/// Resolved green.
pub const RESOLVED_COLOR: u32 = 0x002E_B67D;

/// Per-target Discord options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    /// The name the message is posted under, instead of the webhook's.
    pub username: Option<String>,
    /// The avatar the message is posted with.
    pub avatar_url: Option<String>,
}

/// The JSON body of `POST {webhook}?wait=true`.
///
/// # Errors
/// [`FormatError::Template`] when a template fails.
pub fn message(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    settings: &DiscordSettings,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let texts = templates.texts(alert, ctx)?;
    let inner = &alert.alert;
    let title = truncate_chars(&texts.title, MAX_TITLE_CHARS).into_owned();
    let footer = format!("alertpub · {}", inner.fingerprint());
    let mut fields: Vec<(String, String)> = inner
        .labels()
        .iter()
        .take(MAX_FIELDS)
        .map(|(name, value)| {
            let value = if value.is_empty() { "-" } else { value };
            (
                truncate_chars(name, MAX_FIELD_NAME_CHARS).into_owned(),
                truncate_chars(value, MAX_FIELD_VALUE_CHARS).into_owned(),
            )
        })
        .collect();
    let count = |s: &str| s.chars().count();
    let fixed = count(&title) + count(&footer);
    let fields_total = |fields: &[(String, String)]| {
        fields
            .iter()
            .map(|(n, v)| count(n) + count(v))
            .sum::<usize>()
    };
    while !fields.is_empty() && fixed + fields_total(&fields) >= MAX_TOTAL_CHARS {
        fields.pop();
    }
    let room = MAX_TOTAL_CHARS.saturating_sub(fixed + fields_total(&fields));
    let description =
        truncate_chars(&texts.description, room.min(MAX_DESCRIPTION_CHARS)).into_owned();
    let (color, timestamp) = match ctx.status {
        AlertStatus::Firing => (FIRING_COLOR, inner.starts_at()),
        AlertStatus::Resolved => (
            RESOLVED_COLOR,
            ctx.effective_ends_at(inner).unwrap_or(ctx.now),
        ),
    };
    let mut embed = json!({
        "type": "rich",
        "title": title,
        "description": description,
        "color": color,
        "timestamp": wire::format_timestamp(timestamp),
        "footer": {"text": footer},
        "fields": fields
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value, "inline": true}))
            .collect::<Vec<Value>>(),
    });
    if let Some(url) = inner
        .generator_url()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    {
        embed["url"] = url.into();
    }
    let mut body = json!({
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    });
    if let Some(username) = &settings.username {
        body["username"] = username.as_str().into();
    }
    if let Some(avatar) = &settings.avatar_url {
        body["avatar_url"] = avatar.as_str().into();
    }
    Ok(serde_json::to_vec(&body)?)
}

//! Telegram: the Bot API's `sendMessage` with `parse_mode: HTML`.
//!
//! Reference: <https://core.telegram.org/bots/api#sendmessage>, the HTML style
//! (<https://core.telegram.org/bots/api#html-style>) and `ReplyParameters`
//! (<https://core.telegram.org/bots/api#replyparameters>).
//!
//! The text is the title in bold, the description, and a link to the generator URL when it is an
//! http(s) URL. Every `<`, `>` and `&` of the alert's text is escaped ([`escape`]), so an alert
//! can never inject markup, and the text is at most 4 096 characters after entity parsing (the
//! description is cut). A resolve replies to the firing's message when its id is known
//! (`reply_parameters` with `allow_sending_without_reply`, so a deleted firing message does not
//! fail the resolve).

use alert_core::EnrichedAlert;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::templates::Templates;
use crate::text::truncate_chars;

/// A message's limit, in characters after entity parsing.
pub const MAX_TEXT_CHARS: usize = 4_096;

/// Per-target Telegram options.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// The chat: its id (a number, negative for groups) or `@channelusername`.
    pub chat_id: Option<Value>,
    /// A forum topic to post in.
    pub message_thread_id: Option<i64>,
    /// Send without sound.
    #[serde(default)]
    pub disable_notification: bool,
}

/// Escapes text for Telegram's HTML mode, which takes HTML's entities (all numeric ones, and
/// `&lt;`, `&gt;`, `&amp;`, `&quot;`).
pub use crate::text::escape_html as escape;

/// The JSON body of `sendMessage`, replying to `reply_to` when given.
///
/// # Errors
/// [`FormatError::Template`] when a template fails.
pub fn send_message(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    settings: &TelegramSettings,
    templates: &Templates,
    reply_to: Option<i64>,
) -> Result<Vec<u8>, FormatError> {
    const LINK_TEXT: &str = "Source";
    let texts = templates.texts(alert, ctx)?;
    let link = alert
        .alert
        .generator_url()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    // What a reader sees, in characters: the title, a newline, the description and, with a
    // link, a newline and its text.
    let title = truncate_chars(&texts.title, 512);
    let fixed = title.chars().count() + 1 + link.map_or(0, |_| 1 + LINK_TEXT.len());
    let description = truncate_chars(&texts.description, MAX_TEXT_CHARS.saturating_sub(fixed));
    let mut text = format!("<b>{}</b>\n{}", escape(&title), escape(&description));
    if let Some(url) = link {
        text.push_str(&format!("\n<a href=\"{}\">{LINK_TEXT}</a>", escape(url)));
    }
    let mut body = json!({
        "chat_id": settings.chat_id,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    });
    if settings.disable_notification {
        body["disable_notification"] = true.into();
    }
    if let Some(thread) = settings.message_thread_id {
        body["message_thread_id"] = thread.into();
    }
    if let Some(message_id) = reply_to {
        body["reply_parameters"] =
            json!({"message_id": message_id, "allow_sending_without_reply": true});
    }
    Ok(serde_json::to_vec(&body)?)
}

//! Microsoft Teams through a Workflows (Power Automate) webhook: a message envelope holding one
//! Adaptive Card.
//!
//! Reference: "Send Adaptive Cards using an Incoming Webhook" and "Create an Incoming Webhook"
//! (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>,
//! <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>):
//! the envelope is `{type:"message", attachments:[{contentType:
//! "application/vnd.microsoft.card.adaptive", contentUrl:null, content:<card>}]}`, Workflows take
//! Adaptive Cards only (the Office 365 connectors' MessageCard is retired), Teams renders card
//! versions up to 1.5, and a message is limited to 28 KB.
//!
//! The card (version 1.4) holds the title (red while firing, green once resolved), the
//! description, the labels as a `FactSet`, and a link to the generator URL when it is an http(s)
//! URL. [`MAX_MESSAGE_BYTES`] is 28 000 bytes for the whole envelope (the documentation does not
//! say whether "KB" means 1 000 or 1 024 bytes, so the smaller): a larger card first loses its
//! facts, then its description is cut until it fits.

use alert_core::{AlertStatus, EnrichedAlert};
use serde_json::{Value, json};

use crate::context::FormatContext;
use crate::error::FormatError;
use crate::templates::Templates;
use crate::text::ELLIPSIS;

/// The documented message size limit (28 KB), read as 28 000 bytes of the whole envelope.
pub const MAX_MESSAGE_BYTES: usize = 28_000;

/// The Adaptive Card schema version sent.
pub const CARD_VERSION: &str = "1.4";

/// The JSON body of the webhook's `POST`.
///
/// # Errors
/// [`FormatError::Template`] when a template fails.
pub fn message(
    alert: &EnrichedAlert,
    ctx: &FormatContext,
    templates: &Templates,
) -> Result<Vec<u8>, FormatError> {
    let texts = templates.texts(alert, ctx)?;
    let inner = &alert.alert;
    let facts: Vec<Value> = inner
        .labels()
        .iter()
        .map(|(name, value)| json!({"title": name, "value": value}))
        .collect();
    let link = inner
        .generator_url()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let color = match ctx.status {
        AlertStatus::Firing => "Attention",
        AlertStatus::Resolved => "Good",
    };
    let build = |description: &str, facts: &[Value]| {
        let mut body = vec![
            json!({"type": "TextBlock", "text": texts.title, "weight": "Bolder", "size": "Medium",
                   "color": color, "wrap": true}),
            json!({"type": "TextBlock", "text": description, "wrap": true}),
        ];
        if !facts.is_empty() {
            body.push(json!({"type": "FactSet", "facts": facts}));
        }
        let mut card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "msteams": {"width": "Full"},
            "body": body,
        });
        if let Some(url) = link {
            card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Source", "url": url}]);
        }
        serde_json::to_vec(&json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }],
        }))
    };
    let whole = build(&texts.description, &facts)?;
    if whole.len() <= MAX_MESSAGE_BYTES {
        return Ok(whole);
    }
    // Without the facts, then with the description cut by the bytes still over (more when JSON
    // escapes some of them), until it fits.
    let mut description = texts.description.clone();
    loop {
        let bytes = build(&description, &[])?;
        if bytes.len() <= MAX_MESSAGE_BYTES || description.is_empty() {
            return Ok(bytes);
        }
        let over = bytes.len() - MAX_MESSAGE_BYTES;
        let mut keep = description
            .trim_end_matches(ELLIPSIS)
            .len()
            .saturating_sub(over + ELLIPSIS.len_utf8());
        while !description.is_char_boundary(keep) {
            keep -= 1;
        }
        description.truncate(keep);
        if !description.is_empty() {
            description.push(ELLIPSIS);
        }
    }
}

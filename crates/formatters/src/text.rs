//! Small text helpers shared by the formatters.

use std::borrow::Cow;

/// What a cut text ends with.
pub(crate) const ELLIPSIS: char = '…';

/// Cuts `text` to at most `max` characters (Unicode scalar values, Go's "runes"), never inside a
/// character. A cut text ends with [`ELLIPSIS`], which counts towards `max`.
pub(crate) fn truncate_chars(text: &str, max: usize) -> Cow<'_, str> {
    if text.char_indices().nth(max).is_none() {
        return Cow::Borrowed(text);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    // `nth(max)` exists, so `nth(max - 1)` does too.
    let cut = text
        .char_indices()
        .nth(max - 1)
        .map_or(text.len(), |(index, _)| index);
    let mut out = String::with_capacity(cut + ELLIPSIS.len_utf8());
    out.push_str(&text[..cut]);
    out.push(ELLIPSIS);
    Cow::Owned(out)
}

/// Escapes text for HTML, and so for Telegram's HTML mode too: `&`, `<`, `>`, `"` and `'`.
#[must_use]
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_borrowed_unchanged() {
        assert!(matches!(truncate_chars("abc", 3), Cow::Borrowed("abc")));
        assert_eq!(truncate_chars("", 0), "");
    }

    #[test]
    fn long_text_is_cut_by_characters_with_an_ellipsis() {
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("äöüß", 3), "äö…");
        assert_eq!(truncate_chars("😀😀😀😀", 2), "😀…");
        assert_eq!(truncate_chars("ab", 0), "");
        assert_eq!(truncate_chars("ab", 1), "…");
    }
}

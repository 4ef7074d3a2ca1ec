//! `--log.format=logfmt`: one line of `key=value` pairs per event, as Prometheus and
//! Alertmanager log (`ts=… level=info caller=… msg="…" key=value`). A value with a space, a
//! quote, `=` or a control character is quoted, with `"` and `\` escaped and control characters
//! written as escapes, so a line is always one line and always parses.

use std::fmt::{self, Write as _};

use chrono::SecondsFormat;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The logfmt event format.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = String::with_capacity(128);
        line.push_str("ts=");
        line.push_str(&chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
        line.push_str(" level=");
        line.push_str(&meta.level().as_str().to_ascii_lowercase());
        pair(&mut line, "caller", meta.target());
        let mut pairs = Pairs {
            message: None,
            rest: String::new(),
        };
        event.record(&mut pairs);
        if let Some(message) = &pairs.message {
            pair(&mut line, "msg", message);
        }
        line.push_str(&pairs.rest);
        writeln!(writer, "{line}")
    }
}

/// The event's fields: its message apart (it goes first, as `msg`), the rest in order.
struct Pairs {
    message: Option<String>,
    rest: String,
}

impl Visit for Pairs {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            pair(&mut self.rest, field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }
}

/// Appends ` key=value`, quoting the value when it needs it.
fn pair(line: &mut String, key: &str, value: &str) {
    line.push(' ');
    line.push_str(key);
    line.push('=');
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", u32::from(c));
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::pair;

    fn one(value: &str) -> String {
        let mut line = String::new();
        pair(&mut line, "k", value);
        line
    }

    #[test]
    fn plain_values_are_bare_and_the_rest_quoted_and_escaped() {
        assert_eq!(one("slack-main"), " k=slack-main");
        assert_eq!(one(""), " k=\"\"");
        assert_eq!(one("two words"), " k=\"two words\"");
        assert_eq!(one("a=b"), " k=\"a=b\"");
        assert_eq!(one("say \"hi\"\n"), " k=\"say \\\"hi\\\"\\n\"");
        assert_eq!(one("back\\slash"), " k=\"back\\\\slash\"");
        assert_eq!(one("bell\u{7}"), " k=\"bell\\u{7}\"");
    }
}

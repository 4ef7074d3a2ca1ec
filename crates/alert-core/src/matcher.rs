//! Alertmanager-style label matchers.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::alert::Labels;

/// A matcher's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: the value equals.
    Equal,
    /// `!=`: the value differs.
    NotEqual,
    /// `=~`: the value matches the fully anchored regex.
    Regex,
    /// `!~`: the value does not match the fully anchored regex.
    NotRegex,
}

impl MatchOp {
    /// The operator as written: `=`, `!=`, `=~` or `!~`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Regex => "=~",
            Self::NotRegex => "!~",
        }
    }
}

/// Why a matcher did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// No operator (`=`, `!=`, `=~`, `!~`) was found.
    #[error("matcher {0:?} has no operator (=, !=, =~, !~)")]
    MissingOperator(String),
    /// The label name is empty or has characters outside `[a-zA-Z0-9_]` (or starts with a digit).
    #[error("matcher {0:?} has an invalid label name")]
    InvalidName(String),
    /// A quoted value is not closed, or has a bad escape.
    #[error("matcher {0:?} has a malformed quoted value")]
    BadQuoting(String),
    /// The regex does not compile.
    #[error("matcher {matcher:?} has an invalid regex: {reason}")]
    InvalidRegex {
        /// The matcher as written.
        matcher: String,
        /// The regex engine's complaint.
        reason: String,
    },
}

/// One label matcher, as in Alertmanager: `name op value`, where a regex value is fully anchored
/// (`severity=~"crit.*"` does not match `supercritical`). A label the alert lacks counts as the empty
/// string, so `team!="ops"` matches an alert without a `team` label.
///
/// ```
/// use alert_core::{Labels, Matcher};
/// let m: Matcher = r#"severity=~"critical|warning""#.parse().unwrap();
/// let mut labels = Labels::new();
/// labels.insert("severity".into(), "critical".into());
/// assert!(m.matches(&labels));
/// labels.insert("severity".into(), "noncritical".into());
/// assert!(!m.matches(&labels));
/// ```
#[derive(Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher from its parts, compiling the anchored regex for `=~` and `!~`.
    ///
    /// # Errors
    /// [`MatcherError::InvalidName`] or [`MatcherError::InvalidRegex`].
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let display = format!("{name}{}{value:?}", op.as_str());
        if !is_valid_name(name) {
            return Err(MatcherError::InvalidName(display));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|err| {
                    MatcherError::InvalidRegex {
                        matcher: display,
                        reason: err.to_string(),
                    }
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// The label name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    #[must_use]
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or regex source, unquoted.
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the labels satisfy this matcher.
    #[must_use]
    pub fn matches(&self, labels: &Labels) -> bool {
        let actual = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => actual == self.value,
            (MatchOp::NotEqual, _) => actual != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(actual),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(actual),
            // `new` compiles a regex for both regex operators.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether the labels satisfy every matcher; an empty list matches everything.
    #[must_use]
    pub fn all_match(matchers: &[Self], labels: &Labels) -> bool {
        matchers.iter().all(|m| m.matches(labels))
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let missing = || MatcherError::MissingOperator(trimmed.to_owned());
        let op_at = trimmed.find(['=', '!', '~']).ok_or_else(missing)?;
        let (name, rest) = trimmed.split_at(op_at);
        let (op, raw_value) = if let Some(value) = rest.strip_prefix("=~") {
            (MatchOp::Regex, value)
        } else if let Some(value) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, value)
        } else if let Some(value) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, value)
        } else if let Some(value) = rest.strip_prefix('=') {
            (MatchOp::Equal, value)
        } else {
            return Err(missing());
        };
        let name = name.trim();
        let raw_value = raw_value.trim();
        let value = if raw_value.starts_with('"') {
            unquote(raw_value).ok_or_else(|| MatcherError::BadQuoting(trimmed.to_owned()))?
        } else {
            raw_value.to_owned()
        };
        Self::new(name, op, &value)
    }
}

/// Undoes Go-style double quoting with the escapes `\"`, `\\`, `\n` and `\t`.
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                _ => return None,
            },
            '"' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

impl fmt::Display for Matcher {
    // `name op "value"`, quoted with exactly the escapes `unquote` reads (`\"`, `\\`, `\n`,
    // `\t`) and every other character as it is, so that the shown form parses back to the same
    // matcher. Rust's `{:?}` would write escapes such as `\r` or `\u{f}`, which it refuses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                other => f.write_char(other)?,
            }
        }
        f.write_char('"')
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_shown_in_a_form_that_parses_back() {
        // `aetm!=#\u{f}` was shown as `aetm!="#\u{f}"`, which the parser refused.
        for value in [
            "#\u{f}",
            "a\rb",
            "\0",
            "tab\tnl\n",
            "q\"b\\s",
            "é ✓",
            "",
            " pad ",
        ] {
            for op in [
                MatchOp::Equal,
                MatchOp::NotEqual,
                MatchOp::Regex,
                MatchOp::NotRegex,
            ] {
                let Ok(matcher) = Matcher::new("label", op, value) else {
                    continue;
                };
                let shown = matcher.to_string();
                let parsed: Result<Matcher, _> = shown.parse();
                assert_eq!(parsed, Ok(matcher), "{value:?} shown as {shown}");
            }
        }
        let matcher = Matcher::new("team", MatchOp::Equal, "o\"p\\s\n").unwrap();
        assert_eq!(matcher.to_string(), r#"team="o\"p\\s\n""#);
    }
}

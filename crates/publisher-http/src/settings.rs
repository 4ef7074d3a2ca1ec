//! The settings every publisher shares: a credential, a base URL, and reading a target's settings
//! into a kind's `Config` (and, for kinds with a formatter, the formatter's settings).
//!
//! A credential is written in one of three ways, for any kind and any credential field `NAME`:
//!
//! ```yaml
//! NAME: s3cr3t                        # inline
//! NAME: ${env:PAGERDUTY_ROUTING_KEY}  # from the environment
//! NAME_file: /run/secrets/routing-key # from a file (a trailing newline is dropped)
//! ```
//!
//! [`parse_settings`] folds each `NAME_file` into `NAME` before serde sees the settings, so a
//! `Config` declares one [`Credential`] field per credential, and setting both forms is refused
//! as an unavailable secret.

use std::path::PathBuf;

use alert_core::{BuildError, KindSettings, Secret};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::build::{check_base_url, resolve_secret};

/// The key a folded `NAME_file` becomes under `NAME`.
const FILE_KEY: &str = "$file";

/// Maps whose keys are the user's, not a schema's: `NAME_file` inside them is not folded.
const USER_MAPS: &[&str] = &["headers"];

/// A credential setting: inline, `${env:VAR}`, or read from the file that `NAME_file` names.
/// Nothing is read until [`Credential::resolve`]; `Debug` never shows the value.
#[derive(Clone)]
pub struct Credential(Source);

#[derive(Clone)]
enum Source {
    Inline(Secret<String>),
    File(PathBuf),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::Inline(_) => f.write_str("Credential(inline, [redacted])"),
            Source::File(path) => write!(f, "Credential(file {})", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Credential {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Self(Source::Inline(Secret::new(text)))),
            Value::Object(map) if map.len() == 1 => match map.get(FILE_KEY) {
                Some(Value::String(path)) => Ok(Self(Source::File(PathBuf::from(path)))),
                _ => Err(serde::de::Error::custom(
                    "expected a string, `${env:VAR}`, or a path in NAME_file",
                )),
            },
            _ => Err(serde::de::Error::custom(
                "expected a string, `${env:VAR}`, or a path in NAME_file",
            )),
        }
    }
}

impl Credential {
    /// An inline credential (a literal or `${env:VAR}`).
    #[must_use]
    pub fn inline(value: impl Into<String>) -> Self {
        Self(Source::Inline(Secret::new(value.into())))
    }

    /// Reads the credential, naming `field` in any error.
    ///
    /// # Errors
    /// [`BuildError::SecretUnavailable`] when the variable is unset, or the file cannot be read or
    /// is empty.
    pub fn resolve(&self, field: &'static str) -> Result<Secret<String>, BuildError> {
        match &self.0 {
            Source::Inline(value) => resolve_secret(field, Some(value.expose()), None),
            Source::File(path) => resolve_secret(field, None, Some(path)),
        }
    }

    /// Reads a required credential.
    ///
    /// # Errors
    /// [`BuildError::SecretUnavailable`] when it is not set or cannot be read.
    pub fn required(
        credential: Option<&Self>,
        field: &'static str,
    ) -> Result<Secret<String>, BuildError> {
        match credential {
            Some(credential) => credential.resolve(field),
            None => resolve_secret(field, None, None),
        }
    }

    /// Reads an optional credential: `None` when it is not set.
    ///
    /// # Errors
    /// [`BuildError::SecretUnavailable`] when it is set but cannot be read.
    pub fn optional(
        credential: Option<&Self>,
        field: &'static str,
    ) -> Result<Option<Secret<String>>, BuildError> {
        credential.map(|c| c.resolve(field)).transpose()
    }
}

/// A base URL setting with a vendor default: checked to be absolute http(s), and kept without a
/// trailing slash, so paths are appended as `"{base}/v2/…"`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct BaseUrl(Option<String>);

impl BaseUrl {
    /// The configured URL, or `default`, checked.
    ///
    /// # Errors
    /// [`BuildError::InvalidUrl`] naming `field`.
    pub fn or(&self, field: &'static str, default: &str) -> Result<String, BuildError> {
        check_base_url(field, self.0.as_deref().unwrap_or(default))
    }
}

/// Parses a kind's settings into its `Config`, with every `NAME_file` folded into `NAME` (see
/// the module docs).
///
/// # Errors
/// [`BuildError::Settings`] with serde's message (field names, never values of secret fields,
/// which are all strings); [`BuildError::SecretUnavailable`] when a credential is given both
/// inline and as a file.
pub fn parse_settings<T: DeserializeOwned>(settings: &KindSettings) -> Result<T, BuildError> {
    let folded = fold_files(settings.map(), "")?;
    serde_json::from_value(Value::Object(folded)).map_err(|e| BuildError::Settings(e.to_string()))
}

/// Parses settings in two: the keys named in `own` (a publisher's transport settings, with their
/// `NAME_file` forms) as `T` through [`parse_settings`], and the rest (a formatter's settings)
/// as `F`. Each half can then use `deny_unknown_fields`.
///
/// # Errors
/// As [`parse_settings`], for either half.
pub fn split_settings<T: DeserializeOwned, F: DeserializeOwned>(
    settings: &KindSettings,
    own: &[&str],
) -> Result<(T, F), BuildError> {
    let is_own = |key: &str| {
        own.contains(&key)
            || key
                .strip_suffix("_file")
                .is_some_and(|stem| own.contains(&stem))
    };
    let (mine, rest): (Map<String, Value>, Map<String, Value>) =
        settings.map().into_iter().partition(|(k, _)| is_own(k));
    let rest = serde_json::from_value(Value::Object(rest))
        .map_err(|e| BuildError::Settings(e.to_string()))?;
    Ok((parse_settings(&KindSettings::new(mine))?, rest))
}

/// Moves each `NAME_file: PATH` of `map` (and of the maps in it, except [`USER_MAPS`]) to
/// `NAME: {"$file": PATH}`.
fn fold_files(map: Map<String, Value>, path: &str) -> Result<Map<String, Value>, BuildError> {
    let mut out = Map::with_capacity(map.len());
    let mut files = Vec::new();
    for (key, value) in map {
        let value = match value {
            Value::Object(inner) if !USER_MAPS.contains(&key.as_str()) => {
                Value::Object(fold_files(inner, &format!("{path}{key}."))?)
            }
            other => other,
        };
        match key.strip_suffix("_file") {
            Some(stem) if !stem.is_empty() && value.is_string() => {
                files.push((stem.to_owned(), value));
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    for (stem, file) in files {
        if out.contains_key(&stem) {
            return Err(BuildError::SecretUnavailable {
                field: format!("{path}{stem}"),
                reason: format!("set `{stem}` or `{stem}_file`, not both"),
            });
        }
        let mut folded = Map::new();
        folded.insert(FILE_KEY.to_owned(), file);
        out.insert(stem, Value::Object(folded));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[serde(default)]
        token: Option<Credential>,
        #[serde(default)]
        nested: Option<Nested>,
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        password: Credential,
    }

    fn settings(value: Value) -> KindSettings {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn credentials_come_inline_or_from_files_at_any_depth_but_not_from_user_maps() {
        let dir = std::env::temp_dir().join(format!("alertpub-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "from-file\n").unwrap();
        let config: Config = parse_settings(&settings(serde_json::json!({
            "token": "inline-value",
            "nested": {"password_file": file},
            "headers": {"x_file": "kept"},
        })))
        .unwrap();
        assert_eq!(
            config.token.unwrap().resolve("token").unwrap().expose(),
            "inline-value"
        );
        let password = config.nested.unwrap().password;
        assert!(!format!("{password:?}").contains("from-file"));
        assert_eq!(password.resolve("password").unwrap().expose(), "from-file");
        assert_eq!(config.headers["x_file"], "kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn both_forms_of_one_credential_are_refused_as_unavailable() {
        let err = parse_settings::<Config>(&settings(serde_json::json!({
            "nested": {"password": "a", "password_file": "/run/x"},
        })))
        .unwrap_err();
        assert!(err.is_secret_unavailable(), "{err}");
        assert!(err.to_string().contains("nested.password"), "{err}");
        assert!(!err.to_string().contains("/run/x"), "{err}");
    }

    #[test]
    fn an_inline_credential_is_redacted_and_a_missing_one_is_unavailable() {
        let credential = Credential::inline("s3cr3t");
        assert!(!format!("{credential:?}").contains("s3cr3t"));
        assert!(
            Credential::required(None, "token")
                .unwrap_err()
                .is_secret_unavailable()
        );
        assert!(Credential::optional(None, "token").unwrap().is_none());
    }

    #[test]
    fn the_split_gives_file_forms_to_the_transport_half() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Own {
            key: Credential,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Format {
            source: String,
        }
        let (own, format): (Own, Format) = split_settings(
            &settings(serde_json::json!({"key_file": "/run/k", "source": "db"})),
            &["key"],
        )
        .unwrap();
        assert!(format!("{:?}", own.key).contains("/run/k"));
        assert_eq!(format.source, "db");
    }

    #[test]
    fn base_urls_default_and_are_checked() {
        assert_eq!(
            BaseUrl::default()
                .or("url", "https://api.example.com/")
                .unwrap(),
            "https://api.example.com"
        );
        let bad: BaseUrl = serde_json::from_value(serde_json::json!("ftp://x")).unwrap();
        assert!(matches!(
            bad.or("url", "https://a"),
            Err(BuildError::InvalidUrl { .. })
        ));
    }
}

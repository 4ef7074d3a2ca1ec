//! What a target may do, by where its config came from.
//!
//! The config file is written by the operator and trusted: its settings may read any file
//! (`*_file`) and any environment variable (`${env:VAR}`) of the process, and send to any host.
//! A discovered target (a Kubernetes Secret) is written by whoever may create a labelled Secret
//! in the watched namespace, and is not: left unchecked, it could name the pod's service-account
//! token as a `bearer_token_file` and have the health prober send it to a host of its choosing.
//! So a discovered target may use only what it brings itself: literal values and
//! `${secret:KEY}` references to keys of its own Secret, and it may send only to hosts that pass
//! [`check_host`](crate::hosts::check_host). [`admit`] is the one place this is decided; the
//! loader calls it for every target, whatever its source.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::TargetSpec;
use crate::hosts::{HostPattern, HostRefusal, check_host};

/// The settings that name where a target's requests go: every kind's URL setting. A kind's
/// default endpoint (PagerDuty's, Rootly's, Slack's API) is chosen by alertpub, not by the
/// target, and is not checked.
const DESTINATIONS: &[&str] = &["url", "webhook_url"];

/// Where a target's config came from, and so what it may do.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Trust<'a> {
    /// The config file: trusted. Settings may read files and environment variables, and send
    /// anywhere.
    File,
    /// A discovered target: untrusted, limited to its own values and to allowed hosts.
    Discovered(&'a Discovered),
}

/// What a discovered target brings with it, and the hosts it may send to.
#[derive(Clone)]
pub struct Discovered {
    origin: String,
    /// The values `${secret:KEY}` may take; `None` for a value that is not UTF-8.
    keys: BTreeMap<String, Option<String>>,
    allowed_hosts: Option<Vec<HostPattern>>,
}

impl std::fmt::Debug for Discovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys' values are credentials: only their names are shown.
        f.debug_struct("Discovered")
            .field("origin", &self.origin)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl Discovered {
    /// A target from `origin` (named in errors, such as `Secret alerting/pd`), whose
    /// `${secret:KEY}` references take their values from `keys`, and which may send to
    /// `allowed_hosts` (when set) or else to any public host.
    #[must_use]
    pub fn new<K, V>(
        origin: impl Into<String>,
        keys: impl IntoIterator<Item = (K, V)>,
        allowed_hosts: Option<Vec<HostPattern>>,
    ) -> Self
    where
        K: Into<String>,
        V: AsRef<[u8]>,
    {
        Self {
            origin: origin.into(),
            keys: keys
                .into_iter()
                .map(|(k, v)| {
                    let value = std::str::from_utf8(v.as_ref()).ok().map(str::to_owned);
                    (k.into(), value)
                })
                .collect(),
            allowed_hosts,
        }
    }
}

/// Why a discovered target was refused. Each names the origin and the setting's path, never its
/// value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A `*_file` setting: a discovered target may not read the pod's files.
    #[error(
        "{origin}: `{field}`: a discovered target cannot read files; put the value in a key of \
         the Secret and write `${{secret:KEY}}`"
    )]
    FileSetting {
        /// Where the target came from.
        origin: String,
        /// The setting, such as `auth.bearer_token_file`.
        field: String,
    },
    /// A `${…}` reference other than `${secret:KEY}`, such as `${env:VAR}`.
    #[error(
        "{origin}: `{field}`: a discovered target may only use `${{secret:KEY}}` references to \
         its own Secret, not `${{{scheme}:…}}`"
    )]
    Reference {
        /// Where the target came from.
        origin: String,
        /// The setting.
        field: String,
        /// The reference's kind, such as `env` (`?` when it has none that reads as one).
        scheme: String,
    },
    /// A key of the Secret holds a `${…}` reference itself, which the publisher would resolve.
    #[error(
        "{origin}: `{field}`: the Secret key it takes its value from holds a `${{…}}` reference \
         itself"
    )]
    IndirectReference {
        /// Where the target came from.
        origin: String,
        /// The setting.
        field: String,
    },
    /// A URL setting sends to a host that is refused.
    #[error("{origin}: `{field}`: host {host:?} is {reason}")]
    Host {
        /// Where the target came from.
        origin: String,
        /// The setting.
        field: String,
        /// The URL's host (never its path, query or credentials).
        host: String,
        /// Why.
        reason: HostRefusal,
    },
    /// A URL setting is not an absolute URL with a host.
    #[error("{origin}: `{field}`: not an absolute URL with a host")]
    Url {
        /// Where the target came from.
        origin: String,
        /// The setting.
        field: String,
    },
}

/// A target as it may be built: its settings with `${secret:KEY}` replaced, and the keys that
/// were missing (then the target loads disabled, `secret_unavailable`).
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) spec: TargetSpec,
    pub(crate) missing: Vec<String>,
}

/// Applies `trust`'s policy to one target.
///
/// # Errors
/// [`TrustError`] for a discovered target that reads files or the environment, or sends to a
/// refused host.
pub(crate) fn admit(spec: &TargetSpec, trust: Trust<'_>) -> Result<Admitted, TrustError> {
    let mut spec = spec.clone();
    let mut missing = Vec::new();
    let Trust::Discovered(discovered) = trust else {
        return Ok(Admitted { spec, missing });
    };
    spec.settings.update(|settings| {
        settings
            .iter_mut()
            .try_for_each(|(key, value)| walk(discovered, key, value, &mut missing))
    })?;
    // An unresolved reference leaves the target disabled: it never sends, so there is no URL to
    // check yet.
    if missing.is_empty() {
        let settings = spec.settings.map();
        for field in DESTINATIONS {
            if let Some(Value::String(url)) = settings.get(*field) {
                check_destination(discovered, field, url)?;
            }
        }
    }
    Ok(Admitted { spec, missing })
}

fn walk(
    discovered: &Discovered,
    field: &str,
    value: &mut Value,
    missing: &mut Vec<String>,
) -> Result<(), TrustError> {
    let origin = || discovered.origin.clone();
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                walk(discovered, &format!("{field}.{key}"), item, missing)?;
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                walk(discovered, &format!("{field}[{index}]"), item, missing)?;
            }
        }
        _ => {}
    }
    let leaf = field.rsplit(['.', ']']).next().unwrap_or(field);
    if leaf.ends_with("_file") {
        return Err(TrustError::FileSetting {
            origin: origin(),
            field: field.to_owned(),
        });
    }
    let Value::String(text) = value else {
        return Ok(());
    };
    let Some(reference) = text.strip_prefix("${") else {
        return Ok(());
    };
    match reference
        .strip_prefix("secret:")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(key) if !key.is_empty() => match discovered.keys.get(key) {
            Some(Some(decoded)) if decoded.starts_with("${") => {
                Err(TrustError::IndirectReference {
                    origin: origin(),
                    field: field.to_owned(),
                })
            }
            Some(Some(decoded)) => {
                text.clone_from(decoded);
                Ok(())
            }
            _ => {
                missing.push(key.to_owned());
                Ok(())
            }
        },
        _ => {
            // The reference's kind, if it reads as one; the rest (a variable's name, a path)
            // is not repeated.
            let scheme = reference
                .split_once(':')
                .map(|(kind, _)| kind)
                .filter(|kind| {
                    !kind.is_empty()
                        && kind.len() <= 16
                        && kind.chars().all(|c| c.is_ascii_alphanumeric())
                })
                .unwrap_or("?");
            Err(TrustError::Reference {
                origin: origin(),
                field: field.to_owned(),
                scheme: scheme.to_owned(),
            })
        }
    }
}

fn check_destination(discovered: &Discovered, field: &str, url: &str) -> Result<(), TrustError> {
    let origin = || discovered.origin.clone();
    // The publishers parse their URLs with `http::Uri` too, and connect to its `host()`, so this
    // checks the host they will call.
    let host = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_owned))
        .ok_or_else(|| TrustError::Url {
            origin: origin(),
            field: field.to_owned(),
        })?;
    check_host(&host, discovered.allowed_hosts.as_deref()).map_err(|reason| TrustError::Host {
        origin: origin(),
        field: field.to_owned(),
        host,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    fn spec(value: Value) -> TargetSpec {
        serde_json::from_value(value).unwrap()
    }

    fn discovered(allowed: Option<&[&str]>) -> Discovered {
        let allowed = allowed.map(|list| {
            list.iter()
                .map(|p| serde_json::from_value(json!(p)).unwrap())
                .collect()
        });
        Discovered::new(
            "Secret alerting/t",
            [
                ("token", "s3cr3t-token".as_bytes()),
                ("url", b"https://hooks.example.com/T0K3N".as_slice()),
                ("sneaky", b"${env:HOME}".as_slice()),
                ("binary", &[0xff, 0xfe][..]),
            ],
            allowed,
        )
    }

    fn refused(target: Value, allowed: Option<&[&str]>) -> TrustError {
        let discovered = discovered(allowed);
        admit(&spec(target), Trust::Discovered(&discovered)).unwrap_err()
    }

    #[test]
    fn file_settings_are_refused_naming_the_secret_and_the_field_never_the_value() {
        let err = refused(
            json!({"name": "t", "kind": "webhook", "url": "https://hooks.example.com/x",
                   "auth": {"bearer_token_file": TOKEN_PATH}}),
            None,
        );
        assert_eq!(
            err,
            TrustError::FileSetting {
                origin: "Secret alerting/t".into(),
                field: "auth.bearer_token_file".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("Secret alerting/t") && text.contains("auth.bearer_token_file"));
        assert!(!text.contains("serviceaccount"), "{text}");
        for field in [
            "url_file",
            "routing_key_file",
            "webhook_url_file",
            "api_key_file",
        ] {
            let err = refused(
                json!({"name": "t", "kind": "webhook", field: TOKEN_PATH}),
                None,
            );
            assert!(
                matches!(err, TrustError::FileSetting { .. }),
                "{field}: {err:?}"
            );
        }
    }

    #[test]
    fn env_and_other_references_are_refused_and_only_own_keys_substitute() {
        let err = refused(
            json!({"name": "t", "kind": "pagerduty", "routing_key": "${env:AWS_SECRET_ACCESS_KEY}"}),
            None,
        );
        assert_eq!(
            err,
            TrustError::Reference {
                origin: "Secret alerting/t".into(),
                field: "routing_key".into(),
                scheme: "env".into()
            }
        );
        assert!(!err.to_string().contains("AWS_SECRET"), "{err}");
        let err = refused(
            json!({"name": "t", "kind": "webhook", "headers": {"X-A": "${file:/etc/passwd}"}}),
            None,
        );
        assert!(
            matches!(&err, TrustError::Reference { field, scheme, .. } if field == "headers.X-A" && scheme == "file"),
            "{err:?}"
        );
        // A key whose value is itself a reference would be resolved by the publisher.
        let err = refused(
            json!({"name": "t", "kind": "webhook", "url": "https://hooks.example.com",
                   "hmac_secret": "${secret:sneaky}"}),
            None,
        );
        assert!(
            matches!(err, TrustError::IndirectReference { .. }),
            "{err:?}"
        );

        let discovered = discovered(None);
        let admitted = admit(
            &spec(
                json!({"name": "t", "kind": "webhook", "url": "${secret:url}",
                         "auth": {"bearer_token": "${secret:token}"},
                         "hmac_secret": "${secret:nope}", "extra": ["${secret:binary}"]}),
            ),
            Trust::Discovered(&discovered),
        )
        .unwrap();
        assert_eq!(
            admitted.spec.settings.map()["auth"]["bearer_token"],
            json!("s3cr3t-token")
        );
        assert_eq!(admitted.missing, ["binary", "nope"]);
        assert!(!format!("{discovered:?}").contains("s3cr3t"));
    }

    #[test]
    fn destinations_must_pass_the_host_check() {
        let err = refused(
            json!({"name": "t", "kind": "webhook", "url": "http://169.254.169.254/latest/meta-data"}),
            None,
        );
        assert_eq!(
            err,
            TrustError::Host {
                origin: "Secret alerting/t".into(),
                field: "url".into(),
                host: "169.254.169.254".into(),
                reason: HostRefusal::LinkLocal
            }
        );
        let err = refused(
            json!({"name": "t", "kind": "slack", "webhook_url": "http://user:pw@localhost:8080/x"}),
            None,
        );
        assert!(
            matches!(&err, TrustError::Host { field, reason: HostRefusal::Loopback, .. } if field == "webhook_url"),
            "{err:?}"
        );
        assert!(!err.to_string().contains("pw"), "{err}");
        // With an allow-list, only its hosts; a Secret's own URL value is checked after
        // substitution, and its path (the token) is never repeated.
        let err = refused(
            json!({"name": "t", "kind": "webhook", "url": "${secret:url}"}),
            Some(&[".pagerduty.com"]),
        );
        assert!(
            matches!(&err, TrustError::Host { host, reason: HostRefusal::NotAllowed, .. } if host == "hooks.example.com"),
            "{err:?}"
        );
        assert!(!err.to_string().contains("T0K3N"), "{err}");
        let discovered = discovered(Some(&["hooks.example.com", "127.0.0.1"]));
        for url in ["${secret:url}", "http://127.0.0.1:9/x"] {
            admit(
                &spec(json!({"name": "t", "kind": "webhook", "url": url})),
                Trust::Discovered(&discovered),
            )
            .unwrap();
        }
        let err = refused(
            json!({"name": "t", "kind": "webhook", "url": "not a url"}),
            None,
        );
        assert!(matches!(err, TrustError::Url { .. }), "{err:?}");
    }

    #[test]
    fn the_config_file_is_trusted() {
        let target = spec(
            json!({"name": "t", "kind": "webhook", "url": "http://127.0.0.1:1",
                                 "auth": {"bearer_token_file": TOKEN_PATH}, "hmac_secret": "${env:X}"}),
        );
        let admitted = admit(&target, Trust::File).unwrap();
        assert_eq!(admitted.spec.settings, target.settings);
        assert!(admitted.missing.is_empty());
    }
}

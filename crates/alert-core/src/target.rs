//! Notification targets and the set the engine routes over.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::matcher::Matcher;
use crate::publisher::Publisher;

/// Why a [`TargetName`] was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "target name {0:?} is not a DNS-1123 label (1-63 characters of a-z, 0-9 and '-', \
     starting and ending with a letter or digit)"
)]
pub struct TargetNameError(pub String);

/// A target's name: a DNS-1123 label of at most 63 characters. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetName(Arc<str>);

impl TargetName {
    /// Validates a name.
    ///
    /// # Errors
    /// [`TargetNameError`] unless the name is a DNS-1123 label.
    pub fn new(name: &str) -> Result<Self, TargetNameError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(Self(name.into()))
        } else {
            Err(TargetNameError(name.to_owned()))
        }
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl FromStr for TargetName {
    type Err = TargetNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for TargetName {
    type Error = TargetNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<TargetName> for String {
    fn from(name: TargetName) -> Self {
        name.0.to_string()
    }
}

impl std::borrow::Borrow<str> for TargetName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The service a target speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TargetKind {
    /// The Rootly Alerts API.
    Rootly,
    /// The PagerDuty Events API v2.
    Pagerduty,
    /// Slack, by incoming webhook or bot token.
    Slack,
    /// A generic JSON webhook.
    Webhook,
    /// Another Alertmanager's API v2.
    Alertmanager,
    /// Microsoft Teams, through a Workflows webhook.
    Msteams,
    /// The Opsgenie Alert API v2.
    Opsgenie,
    /// incident.io's HTTP alert source.
    Incidentio,
    /// E-mail over SMTP.
    Email,
    /// A Discord webhook.
    Discord,
    /// The Telegram Bot API.
    Telegram,
}

impl TargetKind {
    /// Every kind, in a stable order.
    pub const ALL: [Self; 11] = [
        Self::Rootly,
        Self::Pagerduty,
        Self::Slack,
        Self::Webhook,
        Self::Alertmanager,
        Self::Msteams,
        Self::Opsgenie,
        Self::Incidentio,
        Self::Email,
        Self::Discord,
        Self::Telegram,
    ];

    /// The lowercase wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rootly => "rootly",
            Self::Pagerduty => "pagerduty",
            Self::Slack => "slack",
            Self::Webhook => "webhook",
            Self::Alertmanager => "alertmanager",
            Self::Msteams => "msteams",
            Self::Opsgenie => "opsgenie",
            Self::Incidentio => "incidentio",
            Self::Email => "email",
            Self::Discord => "discord",
            Self::Telegram => "telegram",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| {
            format!("unknown target kind {s:?} (expected rootly, pagerduty, slack, webhook or alertmanager)")
        })
    }
}

/// Why a target is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisabledReason {
    /// The configuration says `enabled: false`.
    Configured,
    /// A credential it needs could not be read.
    SecretUnavailable,
}

/// A token-bucket rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per minute; also the bucket's burst size.
    pub per_minute: u32,
}

/// A kind's own settings, opaque to everything but that kind's publisher crate, which parses them
/// into its `Config`. No struct anywhere holds every kind's options.
///
/// Kept as the map's JSON text, not as the map: a target's settings are read when its publisher
/// is built and seldom after (the targets API, a reload's comparison), and a map of one short
/// string (a `serde_json::Map` is a B-tree, whose smallest node holds eleven entries) takes
/// ten times the bytes of its text. Equal maps have equal texts, since the map's keys are
/// sorted.
///
/// Shared, not copied: the configuration, the target and its dispatcher lane all hold the same
/// text, so a configured target keeps one copy of its settings however many places refer to it.
///
/// `Debug` does not print the contents, since they may name credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct KindSettings(Arc<str>);

impl KindSettings {
    /// Settings holding `map`.
    #[must_use]
    pub fn new(map: serde_json::Map<String, serde_json::Value>) -> Self {
        Self(Arc::from(serde_json::Value::Object(map).to_string()))
    }

    /// The settings, as a map.
    #[must_use]
    pub fn map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The setting named `key`, if there is one.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.map().remove(key)
    }

    /// Changes the settings: `change` gets the map, and the settings hold what it leaves.
    pub fn update<R>(
        &mut self,
        change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> R,
    ) -> R {
        let mut map = self.map();
        let result = change(&mut map);
        *self = Self::new(map);
        result
    }
}

impl Default for KindSettings {
    fn default() -> Self {
        Self::new(serde_json::Map::new())
    }
}

impl Serialize for KindSettings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for KindSettings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Map::deserialize(deserializer).map(Self::new)
    }
}

impl fmt::Debug for KindSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KindSettings({} keys)", self.map().len())
    }
}

/// One notification target: the fields every kind shares, plus opaque per-kind settings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Target {
    /// The unique name.
    pub name: TargetName,
    /// The service it speaks to.
    pub kind: TargetKind,
    /// `Some` when the target is disabled, with the reason.
    pub disabled: Option<DisabledReason>,
    /// Label matchers; the target receives only alerts that match all of them. Shared with the
    /// configuration it came from.
    pub filter: Arc<[Matcher]>,
    /// How often an unchanged firing alert is sent again; `Some(ZERO)` means never.
    pub repeat_interval: Option<Duration>,
    /// Overrides the per-attempt timeout.
    pub timeout: Option<Duration>,
    /// Overrides the dispatcher lane's in-flight limit.
    pub in_flight_limit: Option<usize>,
    /// Overrides the kind's default rate limit.
    pub rate_limit: Option<RateLimit>,
    /// The kind's own settings.
    pub settings: KindSettings,
}

impl Target {
    /// An enabled target with no filter and no overrides.
    #[must_use]
    pub fn new(name: TargetName, kind: TargetKind) -> Self {
        Self {
            name,
            kind,
            disabled: None,
            filter: Arc::from([]),
            repeat_interval: None,
            timeout: None,
            in_flight_limit: None,
            rate_limit: None,
            settings: KindSettings::default(),
        }
    }

    /// Returns the target with this filter.
    #[must_use]
    pub fn with_filter(mut self, filter: impl Into<Arc<[Matcher]>>) -> Self {
        self.filter = filter.into();
        self
    }

    /// Returns the target disabled for this reason, or enabled for `None`.
    #[must_use]
    pub fn with_disabled(mut self, reason: Option<DisabledReason>) -> Self {
        self.disabled = reason;
        self
    }

    /// Returns the target with this per-attempt timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Whether the target is enabled.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.disabled.is_none()
    }
}

/// A target together with the publisher built for it.
#[derive(Clone)]
pub struct TargetEntry {
    /// The target.
    pub target: Target,
    /// Its publisher.
    pub publisher: Arc<dyn Publisher>,
}

impl TargetEntry {
    /// Pairs a target with its publisher.
    #[must_use]
    pub fn new(target: Target, publisher: Arc<dyn Publisher>) -> Self {
        Self { target, publisher }
    }
}

impl fmt::Debug for TargetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetEntry")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Why a [`TargetSet`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetSetError {
    /// Two targets share a name.
    #[error("duplicate target name {0:?}")]
    DuplicateName(String),
}

/// An immutable snapshot of all targets, in configuration order, with lookup by name.
///
/// Sources publish a new `Arc<TargetSet>` on every change, so a swap is a single step and readers
/// never see half a reload.
#[derive(Clone, Debug, Default)]
pub struct TargetSet {
    // Shared, so a holder that keeps an entry (a dispatcher lane) keeps this one, not a copy.
    entries: Vec<Arc<TargetEntry>>,
    by_name: HashMap<TargetName, usize>,
}

impl TargetSet {
    /// Builds a set, rejecting duplicate names.
    ///
    /// # Errors
    /// [`TargetSetError::DuplicateName`].
    pub fn new(entries: Vec<TargetEntry>) -> Result<Self, TargetSetError> {
        let mut by_name = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            if by_name.insert(entry.target.name.clone(), index).is_some() {
                return Err(TargetSetError::DuplicateName(entry.target.name.to_string()));
            }
        }
        // Collected in place, the vector would keep the bytes of the entries it was given, many
        // times what its `Arc`s need.
        let mut entries: Vec<Arc<TargetEntry>> = entries.into_iter().map(Arc::new).collect();
        entries.shrink_to_fit();
        Ok(Self { entries, by_name })
    }

    /// The entry with this name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&TargetEntry> {
        self.by_name.get(name).map(|&index| &*self.entries[index])
    }

    /// The entry with this name, as the set holds it: cloning it shares it.
    #[must_use]
    pub fn get_shared(&self, name: &str) -> Option<&Arc<TargetEntry>> {
        self.by_name.get(name).map(|&index| &self.entries[index])
    }

    /// All entries, in configuration order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &TargetEntry> {
        self.entries.iter().map(|entry| &**entry)
    }

    /// All entries, in configuration order, as the set holds them: cloning one shares it.
    pub fn iter_shared(&self) -> impl ExactSizeIterator<Item = &Arc<TargetEntry>> {
        self.entries.iter()
    }

    /// How many targets there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

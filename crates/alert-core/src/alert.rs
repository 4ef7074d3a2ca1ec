//! Alerts, their status, and the classification that enrichment may attach.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::wire;

/// Label names to values, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// Annotation names to values, sorted by name.
pub type Annotations = BTreeMap<String, String>;

/// Whether an alert is firing or resolved.
///
/// As in Alertmanager, the status is derived from `endsAt`: an alert whose `endsAt` has passed is
/// resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The alert is active.
    Firing,
    /// The alert has ended.
    Resolved,
}

impl AlertStatus {
    /// The lowercase wire name: `firing` or `resolved`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an [`Alert`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// An alert needs at least one label, as in Alertmanager.
    #[error("an alert needs at least one label")]
    NoLabels,
    /// A label name was empty.
    #[error("a label name is empty")]
    EmptyLabelName,
    /// `endsAt` lies before `startsAt`.
    #[error("endsAt ({ends_at}) is before startsAt ({starts_at})")]
    EndsBeforeStart {
        /// The alert's start, RFC 3339.
        starts_at: String,
        /// The alert's end, RFC 3339.
        ends_at: String,
    },
}

/// One alert, after normalisation, in Alertmanager's shape.
///
/// The fields are private so that the label set, and so the [`Fingerprint`] computed once at
/// construction, cannot drift apart. Serde uses Alertmanager's JSON names (`startsAt`, `endsAt`,
/// `generatorURL`); timestamps serialise as RFC 3339 in UTC with milliseconds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AlertRepr", into = "AlertRepr")]
pub struct Alert {
    labels: Labels,
    annotations: Annotations,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    generator_url: Option<String>,
    fingerprint: Fingerprint,
}

impl Alert {
    /// A firing alert with these labels, starting now, with no end.
    ///
    /// # Errors
    /// [`AlertError::NoLabels`] for an empty label set, [`AlertError::EmptyLabelName`] for a label
    /// with an empty name.
    pub fn new(labels: Labels) -> Result<Self, AlertError> {
        Self::build(labels, Annotations::new(), Utc::now(), None, None)
    }

    /// Builds an alert from all its parts, validating them.
    ///
    /// # Errors
    /// As [`Alert::new`], plus [`AlertError::EndsBeforeStart`].
    pub fn build(
        labels: Labels,
        annotations: Annotations,
        starts_at: DateTime<Utc>,
        ends_at: Option<DateTime<Utc>>,
        generator_url: Option<String>,
    ) -> Result<Self, AlertError> {
        if labels.is_empty() {
            return Err(AlertError::NoLabels);
        }
        if labels.keys().any(String::is_empty) {
            return Err(AlertError::EmptyLabelName);
        }
        if let Some(ends_at) = ends_at
            && ends_at < starts_at
        {
            return Err(AlertError::EndsBeforeStart {
                starts_at: wire::format_timestamp(starts_at),
                ends_at: wire::format_timestamp(ends_at),
            });
        }
        let fingerprint = Fingerprint::of(&labels);
        Ok(Self {
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url,
            fingerprint,
        })
    }

    /// Returns the alert with these annotations.
    #[must_use]
    pub fn with_annotations(mut self, annotations: Annotations) -> Self {
        self.annotations = annotations;
        self
    }

    /// Returns the alert with this start time.
    ///
    /// # Errors
    /// [`AlertError::EndsBeforeStart`] when the alert has an end before `starts_at`.
    pub fn with_starts_at(self, starts_at: DateTime<Utc>) -> Result<Self, AlertError> {
        Self::build(
            self.labels,
            self.annotations,
            starts_at,
            self.ends_at,
            self.generator_url,
        )
    }

    /// Returns the alert with this end time; `None` means it has no end yet.
    ///
    /// # Errors
    /// [`AlertError::EndsBeforeStart`] when `ends_at` lies before the start.
    pub fn with_ends_at(self, ends_at: Option<DateTime<Utc>>) -> Result<Self, AlertError> {
        Self::build(
            self.labels,
            self.annotations,
            self.starts_at,
            ends_at,
            self.generator_url,
        )
    }

    /// Returns the alert with this generator URL.
    #[must_use]
    pub fn with_generator_url(mut self, url: Option<String>) -> Self {
        self.generator_url = url;
        self
    }

    /// The labels, sorted by name.
    #[must_use]
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// One label's value.
    #[must_use]
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The `alertname` label, which Alertmanager expects but does not require.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.label("alertname")
    }

    /// The annotations, sorted by name.
    #[must_use]
    pub fn annotations(&self) -> &Annotations {
        &self.annotations
    }

    /// When the alert started.
    #[must_use]
    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    /// When the alert ends or ended; `None` while no end is known.
    #[must_use]
    pub fn ends_at(&self) -> Option<DateTime<Utc>> {
        self.ends_at
    }

    /// The link back to the alert's source, such as a Prometheus graph.
    #[must_use]
    pub fn generator_url(&self) -> Option<&str> {
        self.generator_url.as_deref()
    }

    /// The Alertmanager-compatible fingerprint of the labels.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Whether the alert is firing at `now`: it has no end, or its end lies after `now`.
    #[must_use]
    pub fn is_firing_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at.is_none_or(|ends_at| ends_at > now)
    }

    /// The status at `now`, derived from `endsAt` as Alertmanager derives it.
    #[must_use]
    pub fn status_at(&self, now: DateTime<Utc>) -> AlertStatus {
        if self.is_firing_at(now) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }
    }

    /// The status now.
    #[must_use]
    pub fn status(&self) -> AlertStatus {
        self.status_at(Utc::now())
    }
}

impl fmt::Debug for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alert")
            .field("fingerprint", &self.fingerprint)
            .field("labels", &self.labels)
            .field("starts_at", &wire::format_timestamp(self.starts_at))
            .field("ends_at", &self.ends_at.map(wire::format_timestamp))
            .finish_non_exhaustive()
    }
}

/// Alertmanager's JSON shape of an alert, used for serde.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AlertRepr {
    labels: Labels,
    #[serde(default)]
    annotations: Annotations,
    #[serde(with = "wire::timestamp")]
    starts_at: DateTime<Utc>,
    #[serde(
        default,
        with = "wire::timestamp_opt",
        skip_serializing_if = "Option::is_none"
    )]
    ends_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "generatorURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    generator_url: Option<String>,
    /// Accepted on input for round trips, and always recomputed from the labels.
    #[serde(default, skip_deserializing)]
    fingerprint: Option<Fingerprint>,
}

impl TryFrom<AlertRepr> for Alert {
    type Error = AlertError;

    fn try_from(repr: AlertRepr) -> Result<Self, Self::Error> {
        Self::build(
            repr.labels,
            repr.annotations,
            repr.starts_at,
            repr.ends_at,
            repr.generator_url,
        )
    }
}

impl From<Alert> for AlertRepr {
    fn from(alert: Alert) -> Self {
        Self {
            fingerprint: Some(alert.fingerprint),
            labels: alert.labels,
            annotations: alert.annotations,
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            generator_url: alert.generator_url,
        }
    }
}

/// How severe an alert is, as judged by classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Someone must act now.
    Critical,
    /// Someone should look soon.
    Warning,
    /// Worth knowing, no action needed.
    Info,
    /// Not worth a notification.
    Noise,
}

impl Severity {
    /// The lowercase wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Noise => "noise",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a [`Classification`] was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClassificationError {
    /// The confidence must lie in `0.0..=1.0`.
    #[error("confidence {0} is outside 0..=1")]
    ConfidenceOutOfRange(f64),
}

/// A judgement about an alert, attached by an enrichment step. Formatters show it when present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ClassificationRepr")]
#[non_exhaustive]
pub struct Classification {
    /// How severe the alert is.
    pub severity: Severity,
    /// How sure the classifier is, from 0 to 1.
    pub confidence: f64,
    /// Why it judged so, in prose.
    pub reasoning: String,
    /// What the responder might do.
    #[serde(default)]
    pub recommendations: Vec<String>,
}

impl Classification {
    /// A classification with no recommendations.
    ///
    /// # Errors
    /// [`ClassificationError::ConfidenceOutOfRange`] unless `0 <= confidence <= 1`.
    pub fn new(
        severity: Severity,
        confidence: f64,
        reasoning: impl Into<String>,
    ) -> Result<Self, ClassificationError> {
        if !(0.0..=1.0).contains(&confidence) {
            return Err(ClassificationError::ConfidenceOutOfRange(confidence));
        }
        Ok(Self {
            severity,
            confidence,
            reasoning: reasoning.into(),
            recommendations: Vec::new(),
        })
    }

    /// Returns the classification with these recommendations.
    #[must_use]
    pub fn with_recommendations(mut self, recommendations: Vec<String>) -> Self {
        self.recommendations = recommendations;
        self
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassificationRepr {
    severity: Severity,
    confidence: f64,
    reasoning: String,
    #[serde(default)]
    recommendations: Vec<String>,
}

impl TryFrom<ClassificationRepr> for Classification {
    type Error = ClassificationError;

    fn try_from(repr: ClassificationRepr) -> Result<Self, Self::Error> {
        Ok(Self::new(repr.severity, repr.confidence, repr.reasoning)?
            .with_recommendations(repr.recommendations))
    }
}

/// An [`Alert`] plus what enrichment attached to it. This is what publishers receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EnrichedAlert {
    /// The alert itself.
    pub alert: Alert,
    /// A classification, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Free-form context as a JSON object, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<serde_json::Map<String, serde_json::Value>>,
}

impl EnrichedAlert {
    /// Wraps an alert with no classification and no enrichment.
    #[must_use]
    pub fn new(alert: Alert) -> Self {
        Self {
            alert,
            classification: None,
            enrichment: None,
        }
    }

    /// Returns it with this classification.
    #[must_use]
    pub fn with_classification(mut self, classification: Classification) -> Self {
        self.classification = Some(classification);
        self
    }

    /// Returns it with this enrichment object.
    #[must_use]
    pub fn with_enrichment(
        mut self,
        enrichment: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        self.enrichment = Some(enrichment);
        self
    }
}

impl From<Alert> for EnrichedAlert {
    fn from(alert: Alert) -> Self {
        Self::new(alert)
    }
}

//! User-customisable text: the title, summary and description of a notification.

use alert_core::{Alert, AlertStatus, Annotations, Classification, EnrichedAlert, Labels, wire};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::context::FormatContext;
use crate::error::FormatError;

const TITLE: &str = "title";
const SUMMARY: &str = "summary";
const DESCRIPTION: &str = "description";

/// `[FIRING] DiskFull on db-1`: the status, the alert's name (or its fingerprint when it has no
/// `alertname`) and, when there is one, the instance.
const DEFAULT_TITLE: &str = "[{{ status | upper }}] \
{% if alert_name %}{{ alert_name }}{% else %}alert {{ fingerprint }}{% endif %}\
{% if labels.instance %} on {{ labels.instance }}{% endif %}";

/// The `summary` annotation, else the `description` annotation, else the title.
const DEFAULT_SUMMARY: &str = "{% if annotations.summary %}{{ annotations.summary }}\
{% elif annotations.description %}{{ annotations.description }}\
{% else %}{{ title }}{% endif %}";

/// The `description` annotation (else the summary), then the labels on one line.
const DEFAULT_DESCRIPTION: &str = "{% if annotations.description %}{{ annotations.description }}\
{% else %}{{ summary }}{% endif %}\n\nLabels: \
{% for name, value in labels | items %}{{ name }}={{ value }}{% if not loop.last %}, {% endif %}{% endfor %}";

/// How much work one render may do: about one fuel per instruction and per 64 bytes of data made
/// (output, strings, lists), so it bounds both the time a render takes and the memory it
/// allocates (about 6.4 MB). The default description of the largest alert ingest accepts (128
/// labels, 64 KiB) needs a few thousand, as a unit test checks; the bound stops a user template
/// that loops without end or multiplies a string from stalling a dispatcher lane.
const FUEL: u64 = 100_000;

/// The most bytes one template may render, before trimming: twice the largest alert ingest
/// accepts (64 KiB), so a default template never meets it, while every target's own limit is far
/// below it (the formatters cut their fields to those). A constant, not a setting: nothing needs
/// more, and a larger cap would only let a template make more garbage per attempt.
pub const MAX_RENDERED_BYTES: usize = 128 * 1024;

/// Per-target text templates, as written in the config file (`templates: { title: … }`).
///
/// Each is a [minijinja](https://docs.rs/minijinja) template; an unset one uses the default. They are
/// compiled by [`Templates::new`] when the config loads, so a syntax error surfaces there and not
/// at 3 a.m. These are the variables a template sees:
///
/// | variable | value |
/// |---|---|
/// | `labels`, `annotations` | maps of strings; a missing key renders empty |
/// | `status` | `firing` or `resolved`, as the caller decided |
/// | `alert_name` | the `alertname` label, or `""` |
/// | `fingerprint` | 16 hex digits |
/// | `starts_at`, `ends_at` | RFC 3339 with milliseconds; `ends_at` is none while the alert has no end |
/// | `generator_url` | a string or none |
/// | `classification` | `{severity, confidence, reasoning, recommendations}` or none |
/// | `enrichment` | the free-form enrichment object, or none |
/// | `title` | in `summary` and `description`: the rendered title |
/// | `summary` | in `description`: the rendered summary |
///
/// Undefined values are lenient and chain: `{{ labels.team }}` and `{{ classification.reasoning }}`
/// render empty when absent instead of failing, and none prints as nothing. Output is trimmed, and
/// never escaped.
///
/// This is a plain record: build it with `..Default::default()`, which keeps compiling when a field
/// is added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// The title: a Slack header, the fallback text of every message.
    pub title: Option<String>,
    /// The summary: PagerDuty's `payload.summary`, Rootly's `summary`, the Slack message body.
    pub summary: Option<String>,
    /// The description: Rootly's `description`.
    pub description: Option<String>,
}

/// The compiled templates of one target.
///
/// Build them once, when the config loads, and share them: rendering takes `&self`.
///
/// Rendering guarantees two things the targets rely on: the title and the summary are never empty
/// (an empty render falls back to the alert's name, then to `alert <fingerprint>`), and an empty
/// description falls back to the summary.
#[derive(Clone, Debug)]
pub struct Templates {
    env: Environment<'static>,
}

/// The rendered summary and description of one alert.
pub(crate) struct Texts {
    pub(crate) title: String,
    pub(crate) summary: String,
    pub(crate) description: String,
}

// === impl TemplateConfig ===

impl TemplateConfig {
    /// Compiles these templates at config load.
    ///
    /// # Errors
    /// [`alert_core::BuildError::Template`] naming the field whose template does not compile.
    pub fn compile(&self) -> Result<Templates, alert_core::BuildError> {
        Templates::new(self).map_err(|e| alert_core::BuildError::Template(e.to_string()))
    }
}

// === impl Templates ===

impl Templates {
    /// Compiles the configured templates, using the default for each one left unset.
    ///
    /// # Errors
    /// [`FormatError::Template`] naming the field whose template does not compile.
    pub fn new(config: &TemplateConfig) -> Result<Self, FormatError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // Names have no extension, so minijinja would not escape anyway; say so explicitly,
        // because every target takes plain text or its own markup, never HTML.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(FUEL));
        // An absent value (`ends_at` while firing, a missing classification) prints as nothing,
        // not as Python's `None`, so `Ended: {{ ends_at }}` reads cleanly.
        env.set_formatter(|out, state, value| {
            let value = if value.is_none() {
                &Value::UNDEFINED
            } else {
                value
            };
            minijinja::escape_formatter(out, state, value)
        });
        for (field, custom, default) in [
            (TITLE, &config.title, DEFAULT_TITLE),
            (SUMMARY, &config.summary, DEFAULT_SUMMARY),
            (DESCRIPTION, &config.description, DEFAULT_DESCRIPTION),
        ] {
            let source = custom.clone().unwrap_or_else(|| default.to_owned());
            env.add_template_owned(field, source)
                .map_err(|err| template_error(field, &err))?;
        }
        Ok(Self { env })
    }

    /// The built-in templates.
    #[must_use]
    pub fn defaults() -> Self {
        // The built-in sources are constants, and a unit test compiles them.
        Self::new(&TemplateConfig::default()).expect("the built-in templates compile")
    }

    /// Renders the title, for example `[FIRING] DiskFull on db-1`. Never empty.
    ///
    /// # Errors
    /// [`FormatError::Template`] when the template fails at render time, for example by calling
    /// a filter with the wrong arguments or running out of fuel.
    pub fn title(&self, alert: &EnrichedAlert, ctx: &FormatContext) -> Result<String, FormatError> {
        let vars = Vars::new(alert, ctx);
        self.render_title(&vars)
    }

    /// Renders the summary. Never empty.
    ///
    /// # Errors
    /// As [`Templates::title`], for the title or the summary template.
    pub fn summary(
        &self,
        alert: &EnrichedAlert,
        ctx: &FormatContext,
    ) -> Result<String, FormatError> {
        let mut vars = Vars::new(alert, ctx);
        let title = self.render_title(&vars)?;
        vars.title = Some(&title);
        self.render_summary(&vars)
    }

    /// Renders the description. Falls back to the summary when it renders empty.
    ///
    /// # Errors
    /// As [`Templates::title`], for any of the three templates.
    pub fn description(
        &self,
        alert: &EnrichedAlert,
        ctx: &FormatContext,
    ) -> Result<String, FormatError> {
        self.texts(alert, ctx).map(|texts| texts.description)
    }

    /// Renders the title and the summary, rendering the title once.
    pub(crate) fn title_and_summary(
        &self,
        alert: &EnrichedAlert,
        ctx: &FormatContext,
    ) -> Result<(String, String), FormatError> {
        let mut vars = Vars::new(alert, ctx);
        let title = self.render_title(&vars)?;
        vars.title = Some(&title);
        let summary = self.render_summary(&vars)?;
        Ok((title, summary))
    }

    /// Renders the summary and the description, each template once.
    pub(crate) fn texts(
        &self,
        alert: &EnrichedAlert,
        ctx: &FormatContext,
    ) -> Result<Texts, FormatError> {
        let mut vars = Vars::new(alert, ctx);
        let title = self.render_title(&vars)?;
        vars.title = Some(&title);
        let summary = self.render_summary(&vars)?;
        vars.summary = Some(&summary);
        let mut description = self.render(DESCRIPTION, &vars)?;
        if description.is_empty() {
            description.clone_from(&summary);
        }
        Ok(Texts {
            title,
            summary,
            description,
        })
    }

    fn render_title(&self, vars: &Vars<'_>) -> Result<String, FormatError> {
        let title = self.render(TITLE, vars)?;
        Ok(non_empty_or_name(title, vars.alert))
    }

    fn render_summary(&self, vars: &Vars<'_>) -> Result<String, FormatError> {
        let summary = self.render(SUMMARY, vars)?;
        Ok(non_empty_or_name(summary, vars.alert))
    }

    /// Renders one template into a buffer that refuses to grow past [`MAX_RENDERED_BYTES`], so a
    /// template that writes too much stops there with [`FormatError::TemplateTooLarge`].
    fn render(&self, field: &'static str, vars: &Vars<'_>) -> Result<String, FormatError> {
        let template = self
            .env
            .get_template(field)
            .map_err(|err| template_error(field, &err))?;
        let mut out = Capped::default();
        let rendered = template
            .render_captured_to(Value::from(Serde(vars)), &mut out)
            .map(drop);
        if out.overflowed {
            return Err(FormatError::TemplateTooLarge {
                field,
                limit: MAX_RENDERED_BYTES,
            });
        }
        rendered.map_err(|err| template_error(field, &err))?;
        // The writer only ever receives whole `&str` pieces, so the bytes are UTF-8.
        let text = String::from_utf8(out.buf).map_err(|_| FormatError::Template {
            field,
            message: "the output is not UTF-8".to_owned(),
        })?;
        Ok(text.trim().to_owned())
    }
}

/// The name a body template's errors carry: the webhook's setting.
pub const BODY_TEMPLATE: &str = "body_template";

/// A template that renders a whole request body (the webhook's `body_template`), with the
/// variables, fuel and output cap of the text templates; its output is not trimmed of anything
/// but surrounding whitespace. When the body is JSON, the output must parse as JSON: this is
/// checked when the template is compiled, on a sample alert both firing and resolved, and again
/// at every render, so a template that only breaks on some alert's text fails that delivery with
/// a `config` error instead of sending a broken body.
#[derive(Clone, Debug)]
pub struct BodyTemplate {
    templates: Templates,
    json: bool,
}

impl BodyTemplate {
    /// Compiles `source` and, for a JSON body, checks it on a sample alert.
    ///
    /// # Errors
    /// [`FormatError::Template`] naming `body_template`, when it does not compile, fails to
    /// render, or renders something that is not JSON.
    pub fn new(source: &str, json: bool) -> Result<Self, FormatError> {
        let mut templates = Templates::defaults();
        templates
            .env
            .add_template_owned(BODY_TEMPLATE, source.to_owned())
            .map_err(|err| template_error(BODY_TEMPLATE, &err))?;
        let body = Self { templates, json };
        let sample = sample_alert();
        let at = sample.alert.starts_at() + chrono::Duration::hours(1);
        for status in [AlertStatus::Firing, AlertStatus::Resolved] {
            body.render(&sample, &FormatContext::new(status, at))
                .map_err(|err| match err {
                    FormatError::Template { field, message } => FormatError::Template {
                        field,
                        message: format!("for a sample {} alert: {message}", status.as_str()),
                    },
                    other => other,
                })?;
        }
        Ok(body)
    }

    /// Renders the body for `alert`.
    ///
    /// # Errors
    /// [`FormatError::Template`] when rendering fails or a JSON body is not JSON;
    /// [`FormatError::TemplateTooLarge`] past the output cap.
    pub fn render(
        &self,
        alert: &EnrichedAlert,
        ctx: &FormatContext,
    ) -> Result<Vec<u8>, FormatError> {
        let text = self
            .templates
            .render(BODY_TEMPLATE, &Vars::new(alert, ctx))?;
        if self.json {
            serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|err| {
                FormatError::Template {
                    field: BODY_TEMPLATE,
                    message: format!("the output is not JSON: {err}"),
                }
            })?;
        }
        Ok(text.into_bytes())
    }
}

/// The alert a body template is checked on at compile time.
fn sample_alert() -> EnrichedAlert {
    let pairs = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let labels = pairs(&[
        ("alertname", "Sample"),
        ("instance", "host-1:9100"),
        ("job", "node"),
        ("severity", "critical"),
    ]);
    let annotations = pairs(&[
        ("summary", "A \"sample\" alert"),
        ("description", "Line one\nline two"),
    ]);
    let starts_at = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let alert = Alert::build(
        labels,
        annotations,
        starts_at,
        None,
        Some("http://prometheus.example/graph".to_owned()),
    )
    .expect("the sample alert is valid");
    EnrichedAlert::new(alert)
}

impl Default for Templates {
    fn default() -> Self {
        Self::defaults()
    }
}

fn template_error(field: &'static str, err: &minijinja::Error) -> FormatError {
    FormatError::Template {
        field,
        message: err.to_string(),
    }
}

/// An output buffer that refuses any write that would take it past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct Capped {
    buf: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(bytes.len()) > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("template output limit reached"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The text itself, or, when it is empty, the alert's name, or `alert <fingerprint>`.
fn non_empty_or_name(text: String, alert: &Alert) -> String {
    if !text.is_empty() {
        return text;
    }
    match alert.name().map(str::trim) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => format!("alert {}", alert.fingerprint()),
    }
}

/// The variables a template sees; see [`TemplateConfig`].
#[derive(Serialize)]
struct Vars<'a> {
    #[serde(skip)]
    alert: &'a Alert,
    labels: &'a Labels,
    annotations: &'a Annotations,
    status: &'static str,
    alert_name: &'a str,
    fingerprint: String,
    starts_at: String,
    ends_at: Option<String>,
    generator_url: Option<&'a str>,
    classification: Option<&'a Classification>,
    enrichment: Option<&'a serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
}

impl<'a> Vars<'a> {
    fn new(enriched: &'a EnrichedAlert, ctx: &FormatContext) -> Self {
        let alert = &enriched.alert;
        Self {
            alert,
            labels: alert.labels(),
            annotations: alert.annotations(),
            status: ctx.status.as_str(),
            alert_name: alert.name().unwrap_or(""),
            fingerprint: alert.fingerprint().to_string(),
            starts_at: wire::format_timestamp(alert.starts_at()),
            ends_at: ctx.effective_ends_at(alert).map(wire::format_timestamp),
            generator_url: alert.generator_url(),
            classification: enriched.classification.as_ref(),
            enrichment: enriched.enrichment.as_ref(),
            title: None,
            summary: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use alert_core::{AlertStatus, Severity};
    use chrono::{TimeZone, Utc};

    use super::*;

    fn alert(pairs: &[(&str, &str)]) -> EnrichedAlert {
        let labels = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let starts = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        EnrichedAlert::new(Alert::build(labels, Annotations::new(), starts, None, None).unwrap())
    }

    fn ctx() -> FormatContext {
        FormatContext::new(
            AlertStatus::Firing,
            Utc.with_ymd_and_hms(2026, 1, 2, 4, 0, 0).unwrap(),
        )
    }

    #[test]
    fn defaults_compile() {
        Templates::new(&TemplateConfig::default()).unwrap();
    }

    #[test]
    fn chainable_undefined_renders_empty_for_absent_objects() {
        let config = TemplateConfig {
            title: Some(
                "x{{ classification.reasoning }}{{ enrichment.a.b }}{{ labels.nope.deeper }}y"
                    .to_owned(),
            ),
            ..TemplateConfig::default()
        };
        let templates = Templates::new(&config).unwrap();
        let title = templates
            .title(&alert(&[("alertname", "A")]), &ctx())
            .unwrap();
        assert_eq!(title, "xy");
    }

    #[test]
    fn classification_fields_are_visible() {
        let config = TemplateConfig {
            title: Some(
                "{{ classification.severity }} {{ classification.confidence }} {{ classification.recommendations | join(',') }}"
                    .to_owned(),
            ),
            ..TemplateConfig::default()
        };
        let templates = Templates::new(&config).unwrap();
        let enriched = alert(&[("alertname", "A")]).with_classification(
            Classification::new(Severity::Warning, 0.5, "r")
                .unwrap()
                .with_recommendations(vec!["a".into(), "b".into()]),
        );
        assert_eq!(
            templates.title(&enriched, &ctx()).unwrap(),
            "warning 0.5 a,b"
        );
    }

    #[test]
    fn defaults_fit_the_fuel_and_the_output_cap_for_the_largest_alert_ingest_accepts() {
        // Ingest's limits: 128 labels, 64 KiB in all. Here 127 labels of 400 bytes and a
        // 12 KiB description annotation come to about 64 KiB.
        let value = "v".repeat(400);
        let names: Vec<(String, String)> = (0..127)
            .map(|i| (format!("label_{i:03}"), value.clone()))
            .collect();
        let mut pairs: Vec<(&str, &str)> = names
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.push(("alertname", "A"));
        let mut enriched = alert(&pairs);
        let labels = enriched.alert.labels().clone();
        let annotations: Annotations = [("description".to_owned(), "d".repeat(12 * 1024))]
            .into_iter()
            .collect();
        let starts = enriched.alert.starts_at();
        enriched.alert = Alert::build(labels, annotations, starts, None, None).unwrap();
        let description = Templates::defaults()
            .description(&enriched, &ctx())
            .unwrap();
        assert!(description.len() > 60 * 1024, "{}", description.len());
        assert!(
            description.ends_with(&format!("label_126={value}")),
            "{description:.80}"
        );
    }

    fn render_title(title: &str, pairs: &[(&str, &str)]) -> Result<String, FormatError> {
        let config = TemplateConfig {
            title: Some(title.to_owned()),
            ..TemplateConfig::default()
        };
        Templates::new(&config)
            .unwrap()
            .title(&alert(pairs), &ctx())
    }

    #[test]
    fn output_past_the_cap_is_refused_with_a_typed_error() {
        // 200 KiB of output: well within the fuel, past the cap.
        let big = "x".repeat(1024);
        let err = render_title("{{ labels.big * 200 }}", &[("big", &big)]).unwrap_err();
        assert_eq!(
            err,
            FormatError::TemplateTooLarge {
                field: "title",
                limit: MAX_RENDERED_BYTES
            }
        );
        // The same through a loop, and just under the cap still renders.
        let err = render_title(
            "{% for i in range(200) %}{{ labels.big }}{% endfor %}",
            &[("big", &big)],
        )
        .unwrap_err();
        assert!(
            matches!(err, FormatError::TemplateTooLarge { .. }),
            "{err:?}"
        );
        let fits = render_title("{{ labels.big * 127 }}", &[("big", &big)]).unwrap();
        assert_eq!(fits.len(), 127 * 1024);
    }

    #[test]
    fn a_template_that_builds_megabytes_it_never_writes_is_stopped() {
        // 16 KiB repeated 600 times is about 10 MB: built in memory, never written, so only the
        // fuel can stop it.
        let big = "x".repeat(16 * 1024);
        let err = render_title(
            "{% set s = labels.big * 600 %}{{ s | length }}",
            &[("big", &big)],
        )
        .unwrap_err();
        assert!(
            matches!(err, FormatError::Template { field: "title", ref message } if message.contains("fuel")),
            "{err:?}"
        );
    }

    #[test]
    fn runaway_template_runs_out_of_fuel() {
        let config = TemplateConfig {
            title: Some(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
                    .to_owned(),
            ),
            ..TemplateConfig::default()
        };
        let templates = Templates::new(&config).unwrap();
        let err = templates
            .title(&alert(&[("alertname", "A")]), &ctx())
            .unwrap_err();
        assert!(
            matches!(err, FormatError::Template { field: "title", .. }),
            "{err:?}"
        );
    }
}

//! Templates: the SPEC example, the defaults, the variables, errors and the never-empty rule.

use alert_core::{AlertStatus, Annotations, EnrichedAlert, ErrorKind, PermanentReason};
use formatters::{FormatContext, FormatError, TemplateConfig, Templates};

use crate::common::{
    FP, STARTS_AT, alert_with, annotations, classified, ctx_firing, ctx_resolved, firing, labels,
    pairs, resolved,
};

fn with_title(title: &str) -> Templates {
    Templates::new(&TemplateConfig {
        title: Some(title.to_owned()),
        ..TemplateConfig::default()
    })
    .expect("compiles")
}

fn with_summary(summary: &str) -> Templates {
    Templates::new(&TemplateConfig {
        summary: Some(summary.to_owned()),
        ..TemplateConfig::default()
    })
    .expect("compiles")
}

#[test]
fn spec_example_renders_for_both_statuses() {
    let templates = with_title("[{{ status | upper }}] {{ labels.alertname }}");
    assert_eq!(
        templates.title(&firing(), &ctx_firing()).unwrap(),
        "[FIRING] DiskFull"
    );
    assert_eq!(
        templates.title(&resolved(), &ctx_resolved()).unwrap(),
        "[RESOLVED] DiskFull"
    );
}

#[test]
fn spec_example_deserialises_from_config() {
    let config: TemplateConfig =
        serde_json::from_str(r#"{"title": "[{{ status | upper }}] {{ labels.alertname }}"}"#)
            .unwrap();
    assert_eq!(
        config.title.as_deref(),
        Some("[{{ status | upper }}] {{ labels.alertname }}")
    );
    assert_eq!(config.summary, None);
    let templates = Templates::new(&config).unwrap();
    assert_eq!(
        templates.title(&firing(), &ctx_firing()).unwrap(),
        "[FIRING] DiskFull"
    );
}

#[test]
fn unknown_template_field_is_rejected() {
    let err = serde_json::from_str::<TemplateConfig>(r#"{"titel": "x"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `titel`"), "{err}");
}

#[test]
fn syntax_error_names_the_field() {
    for (config, field) in [
        (
            TemplateConfig {
                title: Some("{{ status ".to_owned()),
                ..TemplateConfig::default()
            },
            "title",
        ),
        (
            TemplateConfig {
                summary: Some("{% if %}".to_owned()),
                ..TemplateConfig::default()
            },
            "summary",
        ),
        (
            TemplateConfig {
                description: Some("{% for x in labels %}".to_owned()),
                ..TemplateConfig::default()
            },
            "description",
        ),
    ] {
        let err = Templates::new(&config).unwrap_err();
        match &err {
            FormatError::Template {
                field: got,
                message,
            } => {
                assert_eq!(*got, field);
                assert!(message.contains("syntax error"), "{message}");
            }
            other => panic!("expected a template error, got {other:?}"),
        }
        assert_eq!(
            err.kind(),
            ErrorKind::Permanent {
                reason: PermanentReason::Config
            }
        );
        assert!(err.to_string().starts_with(&format!("template `{field}`")));
    }
}

#[test]
fn render_error_names_the_field() {
    let templates = with_summary(r#"{{ "a" + 1 }}"#);
    let err = templates.summary(&firing(), &ctx_firing()).unwrap_err();
    assert!(
        matches!(
            &err,
            FormatError::Template {
                field: "summary",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn default_title_names_status_alert_and_instance() {
    let templates = Templates::defaults();
    assert_eq!(
        templates.title(&firing(), &ctx_firing()).unwrap(),
        "[FIRING] DiskFull on db-1"
    );
    assert_eq!(
        templates.title(&resolved(), &ctx_resolved()).unwrap(),
        "[RESOLVED] DiskFull on db-1"
    );
    let no_instance = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "DiskFull")]),
        Annotations::new(),
    ));
    assert_eq!(
        templates.title(&no_instance, &ctx_firing()).unwrap(),
        "[FIRING] DiskFull"
    );
    let no_name = EnrichedAlert::new(alert_with(pairs(&[("job", "node")]), Annotations::new()));
    assert_eq!(
        templates.title(&no_name, &ctx_firing()).unwrap(),
        "[FIRING] alert a3706118e550845a"
    );
}

#[test]
fn default_summary_falls_back_from_summary_to_description_to_title() {
    let templates = Templates::defaults();
    assert_eq!(
        templates.summary(&firing(), &ctx_firing()).unwrap(),
        "Disk almost full"
    );
    let only_description = EnrichedAlert::new(alert_with(
        labels(),
        pairs(&[("description", "/var on db-1 is 95% full")]),
    ));
    assert_eq!(
        templates.summary(&only_description, &ctx_firing()).unwrap(),
        "/var on db-1 is 95% full"
    );
    let bare = EnrichedAlert::new(alert_with(labels(), Annotations::new()));
    assert_eq!(
        templates.summary(&bare, &ctx_firing()).unwrap(),
        "[FIRING] DiskFull on db-1"
    );
}

#[test]
fn default_description_adds_the_labels() {
    let templates = Templates::defaults();
    assert_eq!(
        templates.description(&firing(), &ctx_firing()).unwrap(),
        "/var on db-1 is 95% full\n\nLabels: alertname=DiskFull, instance=db-1, job=node, severity=critical"
    );
    let only_summary = EnrichedAlert::new(alert_with(
        pairs(&[("alertname", "DiskFull")]),
        pairs(&[("summary", "Disk almost full")]),
    ));
    assert_eq!(
        templates.description(&only_summary, &ctx_firing()).unwrap(),
        "Disk almost full\n\nLabels: alertname=DiskFull"
    );
}

#[test]
fn every_variable_is_visible() {
    let templates = Templates::new(&TemplateConfig {
        title: Some("T".to_owned()),
        summary: Some("S({{ title }})".to_owned()),
        description: Some(
            "{{ status }}|{{ alert_name }}|{{ fingerprint }}|{{ starts_at }}|{{ ends_at }}|\
             {{ generator_url }}|{{ labels.job }}|{{ annotations.summary }}|\
             {{ classification.severity }}|{{ classification.confidence }}|\
             {{ classification.recommendations | length }}|{{ enrichment.owner.team }}|\
             {{ title }}|{{ summary }}"
                .to_owned(),
        ),
    })
    .unwrap();
    let rendered = templates
        .description(&classified(resolved()), &ctx_resolved())
        .unwrap();
    assert_eq!(
        rendered,
        format!(
            "resolved|DiskFull|{FP}|{STARTS_AT}|2026-01-02T04:05:06.000Z|\
             http://prometheus.local/graph?g0.expr=disk|node|Disk almost full|\
             critical|0.92|2|storage|T|S(T)"
        )
    );
}

#[test]
fn absent_values_render_empty() {
    let templates = with_title(
        "<{{ labels.team }}|{{ ends_at }}|{{ classification.reasoning }}|{{ enrichment.owner.team }}>",
    );
    assert_eq!(templates.title(&firing(), &ctx_firing()).unwrap(), "<|||>");
}

#[test]
fn auto_resolve_sees_now_as_the_end() {
    let templates = with_title("{{ ends_at }}");
    let ctx = FormatContext::new(
        AlertStatus::Resolved,
        crate::common::at("2026-01-02T06:00:00Z"),
    );
    assert_eq!(
        templates.title(&firing(), &ctx).unwrap(),
        "2026-01-02T06:00:00.000Z"
    );
}

#[test]
fn empty_summary_falls_back_to_the_alert_name_then_the_fingerprint() {
    let templates = with_summary("{{ labels.nope }}   ");
    assert_eq!(
        templates.summary(&firing(), &ctx_firing()).unwrap(),
        "DiskFull"
    );
    let no_name = EnrichedAlert::new(alert_with(pairs(&[("job", "node")]), annotations()));
    assert_eq!(
        templates.summary(&no_name, &ctx_firing()).unwrap(),
        "alert a3706118e550845a"
    );
}

#[test]
fn empty_title_falls_back_and_empty_description_becomes_the_summary() {
    let templates = Templates::new(&TemplateConfig {
        title: Some(String::new()),
        description: Some("{% if false %}x{% endif %}".to_owned()),
        ..TemplateConfig::default()
    })
    .unwrap();
    assert_eq!(
        templates.title(&firing(), &ctx_firing()).unwrap(),
        "DiskFull"
    );
    assert_eq!(
        templates.description(&firing(), &ctx_firing()).unwrap(),
        "Disk almost full"
    );
}

#[test]
fn a_body_template_renders_the_whole_body_and_must_be_json_when_json_is_sent() {
    use formatters::BodyTemplate;
    let source =
        r#"{"text": {{ (alert_name ~ " is " ~ status) | tojson }}, "fp": "{{ fingerprint }}"}"#;
    let body = BodyTemplate::new(source, true).unwrap();
    let rendered = crate::common::parse(
        &body
            .render(&crate::common::firing(), &crate::common::ctx_firing())
            .unwrap(),
    );
    assert_eq!(
        rendered,
        serde_json::json!({"text": "DiskFull is firing", "fp": crate::common::FP})
    );
    // A template that forgets to quote a string is refused at load, naming the setting.
    let err = BodyTemplate::new(r#"{"text": {{ alert_name }}}"#, true).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("body_template") && shown.contains("not JSON"),
        "{shown}"
    );
    // Not JSON is fine when the body is not JSON.
    BodyTemplate::new("{{ alert_name }} is {{ status }}", false).unwrap();
    // A template that breaks only on some alert's text fails that render.
    let fragile = BodyTemplate::new(r#"{"summary": "{{ annotations.summary }}"}"#, true);
    assert!(
        fragile.is_err(),
        "the sample's quoted summary breaks it at load"
    );
}

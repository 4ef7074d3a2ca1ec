//! What `deploy/` ships is checked, not just written: every Kubernetes manifest reads into its
//! `k8s-openapi` type with nothing left over (a field the type does not know fails), the
//! operator's custom resources into their shapes with unknown fields denied, the rules pass
//! `promtool check rules`, the config passes `alertpub check-config`, and every metric a rule or
//! a dashboard query names is one that `/metrics` really exposes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use alertpub_e2e::Http;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::wait_for_posts;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every document of every manifest, as JSON, with its file's name.
fn manifests() -> Vec<(String, Value)> {
    let mut documents = Vec::new();
    let dir = deploy().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for document in yaml_serde::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(document).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
            if !value.is_null() {
                documents.push((name.clone(), value));
            }
        }
    }
    documents
}

/// Reads `value` as a `T` and writes it back: what comes back must be what was read, so a
/// field `T` does not know (a typo, a field at the wrong level) fails instead of vanishing.
fn round_trip<T: DeserializeOwned + serde::Serialize>(file: &str, value: &Value) {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{file}: {} does not read: {e}", value["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, value,
        "{file}: {} has fields its type does not know",
        value["kind"]
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    #[allow(dead_code, reason = "read to be checked")]
    api_version: String,
    #[allow(dead_code, reason = "read to be checked")]
    kind: String,
    metadata: Value,
    spec: ServiceMonitorSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "read to be checked")]
struct Endpoint {
    port: String,
    path: String,
    interval: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrometheusRule {
    #[allow(dead_code, reason = "read to be checked")]
    api_version: String,
    #[allow(dead_code, reason = "read to be checked")]
    kind: String,
    metadata: Value,
    spec: RuleSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    groups: Vec<Value>,
}

/// The metric names an expression uses: `alertpub_…` identifiers and `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if word.starts_with("alertpub_") {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_rules_config_and_dashboard_are_what_they_claim() {
    use k8s_openapi::api::{apps, core, policy, rbac};

    let mut kinds = BTreeSet::new();
    let mut rule_files = Vec::new();
    let mut config = None;
    for (file, value) in manifests() {
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "StatefulSet" => round_trip::<apps::v1::StatefulSet>(&file, &value),
            "Service" => round_trip::<core::v1::Service>(&file, &value),
            "ConfigMap" => {
                round_trip::<core::v1::ConfigMap>(&file, &value);
                config = value["data"]["alertpub.yaml"].as_str().map(str::to_owned);
            }
            "Secret" => round_trip::<core::v1::Secret>(&file, &value),
            "ServiceAccount" => round_trip::<core::v1::ServiceAccount>(&file, &value),
            "Role" => round_trip::<rbac::v1::Role>(&file, &value),
            "RoleBinding" => round_trip::<rbac::v1::RoleBinding>(&file, &value),
            "PodDisruptionBudget" => round_trip::<policy::v1::PodDisruptionBudget>(&file, &value),
            "ServiceMonitor" => {
                let monitor: ServiceMonitor = serde_json::from_value(value.clone())
                    .unwrap_or_else(|e| panic!("{file}: ServiceMonitor: {e}"));
                round_trip::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                    &file,
                    &monitor.metadata,
                );
                assert_eq!(monitor.spec.endpoints.len(), 1);
                assert!(monitor.spec.selector.match_labels.is_some());
            }
            "PrometheusRule" => {
                let rule: PrometheusRule = serde_json::from_value(value.clone())
                    .unwrap_or_else(|e| panic!("{file}: PrometheusRule: {e}"));
                round_trip::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                    &file,
                    &rule.metadata,
                );
                rule_files.push(json!({"groups": rule.spec.groups}));
            }
            other => panic!("{file}: a {other:?} that no check reads"),
        }
        kinds.insert(kind);
    }
    for wanted in [
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
    ] {
        assert!(kinds.contains(wanted), "no {wanted} in deploy/kubernetes");
    }

    // The StatefulSet's probes are the conventions' paths, and its root filesystem read-only.
    let statefulset = manifests()
        .into_iter()
        .find(|(_, v)| v["kind"] == "StatefulSet")
        .unwrap()
        .1;
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    // The config the ConfigMap mounts is one alertpub accepts.
    let dir = alertpub_e2e::TempDir::new();
    let config_file = dir.path().join("alertpub.yaml");
    std::fs::write(
        &config_file,
        config.expect("the ConfigMap holds alertpub.yaml"),
    )
    .unwrap();
    let output = Command::new(alertpub_e2e::binary())
        .arg("check-config")
        .arg(&config_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Every metric a rule or a dashboard query names.
    let mut exprs = Vec::new();
    for rules in &rule_files {
        for group in rules["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                exprs.push(rule["expr"].as_str().unwrap().to_owned());
            }
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/alertpub.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    let named: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(named.len() >= 10, "{named:?}");

    // A server that has delivered through the queue and the sync API exposes them.
    let (target, server) = crate::one_webhook().await;
    let http = Http::new();
    let answer = http
        .post_json(
            &server.url("/api/v2/alerts"),
            &json!([{"labels": {"alertname": "Deploy"}}]),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    wait_for_posts(&target, 1).await;
    let mut exposed: BTreeSet<String>;
    let deadline = std::time::Instant::now() + crate::DELIVERY;
    loop {
        let metrics = http.get(&server.url("/metrics")).await.text;
        exposed = metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        if named.iter().all(|n| exposed.contains(n)) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let missing: Vec<&String> = named.iter().filter(|n| !exposed.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named by a rule or the dashboard but not on /metrics: {missing:?}"
    );

    // promtool, from Debian's prometheus package (.ci/run installs it).
    let Some([promtool]) = crate::interop::programs(
        "deploy::manifests_rules_config_and_dashboard_are_what_they_claim",
        [crate::interop::Program::Promtool],
    ) else {
        return;
    };
    for (i, rules) in rule_files.iter().enumerate() {
        let file = dir.path().join(format!("rules{i}.yaml"));
        std::fs::write(&file, serde_json::to_string_pretty(rules).unwrap()).unwrap();
        let output = Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

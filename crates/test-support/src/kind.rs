//! What every publisher crate's tests share: building the kind from JSON settings on a real
//! client, the alert they send, and one publish of it.

use std::sync::Arc;

use alert_core::{
    Alert, BuildError, Delivery, EnrichedAlert, InMemoryMessageRefs, KindSettings, Labels,
    PublishError, PublishRequest, Publisher, Receipt, TargetName,
};
use publisher_http::{BuildContext, ClientConfig, HttpClient};

/// A publisher crate's `from_settings`.
pub type FromSettings = fn(&KindSettings, &BuildContext) -> Result<Arc<dyn Publisher>, BuildError>;

/// Builds a target named `kind-test` from `settings`, with `refs` as its message-ref store.
///
/// # Errors
/// The kind's [`BuildError`].
///
/// # Panics
/// When `settings` is not a JSON object.
pub fn build(
    from_settings: FromSettings,
    settings: serde_json::Value,
    refs: Arc<InMemoryMessageRefs>,
) -> Result<Arc<dyn Publisher>, BuildError> {
    let settings: KindSettings = serde_json::from_value(settings).expect("settings are an object");
    let context = BuildContext::new(
        TargetName::new("kind-test").expect("a valid name"),
        HttpClient::new(&ClientConfig::default()).expect("a client"),
        refs,
    );
    from_settings(&settings, &context)
}

/// `DiskFull` on `db-1` (critical), started at 2026-01-01T00:00:00Z (the same start every time,
/// so a firing and its resolve are one alert's life), with a summary and a generator URL;
/// resolved a minute ago when `resolved`.
///
/// # Panics
/// Never: the alert is valid.
#[must_use]
pub fn disk_full(resolved: bool) -> EnrichedAlert {
    let labels: Labels = [
        ("alertname", "DiskFull"),
        ("instance", "db-1"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let start = chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("a valid instant");
    let end = resolved.then(|| chrono::Utc::now() - chrono::Duration::minutes(1));
    let annotations = [("summary".to_owned(), "Disk 95% full".to_owned())].into();
    let url = Some("http://prometheus.local/graph".to_owned());
    EnrichedAlert::new(Alert::build(labels, annotations, start, end, url).expect("a valid alert"))
}

/// Publishes `alert` through `publisher` now, as its first delivery.
///
/// # Errors
/// The publisher's.
pub async fn publish(
    publisher: &Arc<dyn Publisher>,
    alert: &EnrichedAlert,
) -> Result<Receipt, PublishError> {
    publisher
        .publish(PublishRequest::made_at(
            alert,
            Delivery::first(),
            chrono::Utc::now(),
        ))
        .await
}

/// Whether `python3` can import `module` (a PyPI package a test runs, such as `aiosmtpd`). In CI
/// (`CI=true`) it must: a missing package fails the test there, and skips it elsewhere.
///
/// # Panics
/// In CI, when the module cannot be imported.
#[must_use]
pub fn python_module(module: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || std::env::var("CI").as_deref() != Ok("true"),
        "python3 with {module} (PyPI) is needed in CI"
    );
    ok
}

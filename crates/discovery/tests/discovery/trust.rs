//! The trust policy against every real publisher: each kind's URL setting is a destination the
//! policy checks, so no kind lets a discovered target send to a refused host.

use std::path::Path;

use discovery::{
    ConfigError, Discovered, HostRefusal, TargetSpec, Trust, TrustError, build_targets,
};
use serde_json::json;

use crate::file::registry;

/// One target of each kind (both Slack modes) whose every request goes to loopback.
fn loopback_targets() -> Vec<TargetSpec> {
    [
        json!({"name": "pd", "kind": "pagerduty", "url": "http://127.0.0.1:1", "routing_key": "R"}),
        json!({"name": "ro", "kind": "rootly", "url": "http://127.0.0.1:1", "api_key": "K"}),
        json!({"name": "sw", "kind": "slack", "webhook_url": "http://127.0.0.1:1/hook"}),
        json!({"name": "sb", "kind": "slack", "url": "http://127.0.0.1:1/api", "token": "T", "channel": "C"}),
        json!({"name": "wh", "kind": "webhook", "url": "http://127.0.0.1:1/x"}),
        json!({"name": "am", "kind": "alertmanager", "url": "http://127.0.0.1:1"}),
    ]
    .into_iter()
    .map(|value| serde_json::from_value(value).unwrap())
    .collect()
}

#[test]
fn every_kinds_url_setting_is_checked_for_a_discovered_target() {
    let factory = registry();
    let specs = loopback_targets();
    // Trusted, each builds: the setting is one the publisher reads.
    let (set, warnings) = build_targets(
        &specs,
        Path::new("file.yaml"),
        factory.as_ref(),
        Trust::File,
    )
    .unwrap();
    assert_eq!(set.len(), specs.len());
    assert!(warnings.is_empty(), "{warnings:?}");
    // Discovered, each is refused for its host.
    let discovered = Discovered::new("Secret ns/x", Vec::<(String, Vec<u8>)>::new(), None);
    for spec in &specs {
        let err = build_targets(
            std::slice::from_ref(spec),
            Path::new("secret ns/x"),
            factory.as_ref(),
            Trust::Discovered(&discovered),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Refused { source, .. }
                if matches!(**source, TrustError::Host { reason: HostRefusal::Loopback, .. })),
            "{}: {err}",
            spec.name
        );
    }
}

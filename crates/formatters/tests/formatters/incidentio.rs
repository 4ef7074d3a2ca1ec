//! incident.io: exact alert-event bodies for a firing and a resolve.

use formatters::Templates;
use formatters::incidentio;
use serde_json::json;

use crate::common::{
    ENDS_AT, FP, GENERATOR_URL, STARTS_AT, annotations_json, ctx_firing, ctx_resolved, firing,
    labels_json, parse, resolved,
};

const DESCRIPTION: &str = "/var on db-1 is 95% full\n\n\
                           Labels: alertname=DiskFull, instance=db-1, job=node, severity=critical";

#[test]
fn a_firing_event() {
    let body = incidentio::event(&firing(), &ctx_firing(), &Templates::defaults()).unwrap();
    assert_eq!(
        parse(&body),
        json!({
            "title": "[FIRING] DiskFull on db-1",
            "status": "firing",
            "deduplication_key": format!("alertpub-{FP}"),
            "description": DESCRIPTION,
            "source_url": GENERATOR_URL,
            "metadata": {
                "labels": labels_json(),
                "annotations": annotations_json(),
                "fingerprint": FP,
                "starts_at": STARTS_AT,
            },
        })
    );
}

#[test]
fn a_resolve_event_shares_the_deduplication_key() {
    let body =
        parse(&incidentio::event(&resolved(), &ctx_resolved(), &Templates::defaults()).unwrap());
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["title"], "[RESOLVED] DiskFull on db-1");
    assert_eq!(body["deduplication_key"], format!("alertpub-{FP}"));
    assert_eq!(body["metadata"]["ends_at"], ENDS_AT);
}

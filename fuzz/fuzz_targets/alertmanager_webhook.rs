//! The Alertmanager webhook receiver: a version 4 message whose `alerts` are normalised with
//! Alertmanager's lifecycle (a firing alert has no end unless `webhook_resolve_timeout` is set).

#![no_main]

use alert_core::AlertStatus;
use alertpub_fuzz::{MAX_ALERTS, OPEN_ENDS, normalise_and_check, now};
use alertpub_server::ingest::{AlertLimits, OpenEnd, normalise};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if std::str::from_utf8(data).is_err() {
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(Value::Array(items)) = body.get("alerts") else {
        return;
    };
    if body
        .get("version")
        .and_then(Value::as_str)
        .is_some_and(|version| version != "4")
    {
        return;
    }
    let _truncated = body.get("truncatedAlerts").and_then(Value::as_u64);
    for raw in items.iter().take(MAX_ALERTS) {
        let resolved = raw.get("status").and_then(Value::as_str) == Some("resolved");
        // Alertmanager takes a 400 as final and drops the whole notification, so a resolved
        // alert is never refused because the clocks of its start and its end disagree.
        if resolved && let Err(err) = normalise(raw, now(), OpenEnd::Keep, &AlertLimits::default())
        {
            assert!(!err.0.contains("before startsAt"), "{raw}: {}", err.0);
        }
        for open_end in OPEN_ENDS {
            let Some(normalised) = normalise_and_check(raw, open_end) else {
                continue;
            };
            // An alert Alertmanager resolved is resolved here too, whatever the clocks say.
            if resolved {
                let alert = &normalised.alert.alert;
                let ends_at = alert.ends_at().expect("a resolved alert has an end");
                if ends_at <= now() {
                    assert_eq!(alert.status_at(now()), AlertStatus::Resolved, "{alert:?}");
                }
            }
        }
    }
});

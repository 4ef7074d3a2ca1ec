//! `POST /api/v2/alerts`: the body is parsed as JSON, must be an array, and each alert is
//! normalised on its own, as ingest does.

#![no_main]

use alertpub_fuzz::{MAX_ALERTS, OPEN_ENDS, normalise_and_check};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The server refuses a body that is not UTF-8 before it parses it.
    if std::str::from_utf8(data).is_err() {
        return;
    }
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for raw in items.iter().take(MAX_ALERTS) {
        for open_end in OPEN_ENDS {
            normalise_and_check(raw, open_end);
        }
    }
});

//! The OpenAPI document of `/api/v1` is kept true: schemathesis (from PyPI; `.ci/run` installs
//! it) reads `/api/v1/openapi.json` from a live server and sends generated requests to every
//! operation, checking that none gets a server error and every answer's status, content type,
//! headers and body are the ones the document gives (and the methods, resources and auth
//! checks schemathesis adds).

use std::process::Command;

use alertpub_e2e::Server;

use crate::{base_config, ok_target, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    if !crate::interop::runs(
        "openapi::schemathesis_finds_no_server_error_and_no_schema_violation",
        "schemathesis",
        &["--version"],
        "pip install schemathesis",
    ) {
        return;
    }
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        base_config().replace("max_alerts_per_request: 5", "max_alerts_per_request: 100"),
        webhook("hook", &target, "")
    );
    let server = Server::start(&config).await;
    let schema = server.url("/api/v1/openapi.json");
    let base = server.url("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .args(["run", &schema, "--url", &base])
            // Every check of what the server answers, and of its methods and resources. Not the
            // two that ask the document's input schemas to draw the exact line the server's
            // validation draws (`positive_data_acceptance`, `negative_data_rejection`): a matcher's
            // grammar and a regex that must compile, `1.0` against an integer, a filter
            // that may sit in the body or the query but not both, are not JSON Schema.
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance,negative_data_rejection",
            ])
            .args(["--max-examples", "30", "--seed", "1"])
            .args(["--request-timeout", "10", "--no-color"])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "schemathesis failed:\n{report}");
}

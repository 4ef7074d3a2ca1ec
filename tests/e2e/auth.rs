//! Bearer-token auth, and no secret in the targets API.

use alertpub_e2e::{Http, Server, TempDir};
use serde_json::json;

use crate::{base_config, ok_target};

const TOKEN: &str = "operator-token-5f3a9c";
const ROUTING_KEY: &str = "R0UTINGKEY-7d1e2b";
const PATH_TOKEN: &str = "T0KEN-IN-PATH-88c1";
const WEBHOOK_BEARER: &str = "webhook-bearer-2a9f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_and_targets_show_no_secret() {
    let target = ok_target().await;
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join("tokens.txt"),
        format!("# operators\n{TOKEN}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("routing-key"), ROUTING_KEY).unwrap();
    std::fs::write(dir.path().join("hook-bearer"), WEBHOOK_BEARER).unwrap();
    let config = format!(
        "{}targets:\n\
         \x20 - name: hook\n    kind: webhook\n    url: {}\n    auth: {{ bearer_token_file: hook-bearer }}\n\
         \x20 - name: pager\n    kind: pagerduty\n    url: {}\n    routing_key_file: routing-key\n",
        crate::server_lines(
            &base_config(),
            "  auth: { bearer_tokens_file: tokens.txt, protect_ingest: true }\n"
        ),
        target.url(&format!("/hooks/{PATH_TOKEN}")),
        target.base_url(),
    );
    let server = Server::start_in(dir, &config).await;
    let anonymous = Http::new();
    let wrong = anonymous.with_token("operator-token-5f3a9d");
    let right = anonymous.with_token(TOKEN);
    let publish = server.url("/api/v1/publish/parallel");
    let body = json!({"alert": {"labels": {"alertname": "Auth"}}, "targets": ["hook"]});

    let answer = anonymous.post_json(&publish, &body).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(answer.error_kind(), "unauthorized");
    let answer = wrong.post_json(&publish, &body).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(
        crate::posts(&target).len(),
        0,
        "nothing is sent without a valid token"
    );
    let answer = right.post_json(&publish, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    // protect_ingest: the ingest endpoints need it too.
    let alerts = server.url("/api/v2/alerts");
    let batch = json!([{"labels": {"alertname": "Ingest"}}]);
    assert_eq!(anonymous.post_json(&alerts, &batch).await.status, 401);
    assert_eq!(wrong.post_json(&alerts, &batch).await.status, 401);
    assert_eq!(right.post_json(&alerts, &batch).await.status, 200);

    // Reads stay open, and never show a secret or a URL path.
    let listing = anonymous.get(&server.url("/api/v1/targets")).await;
    assert_eq!(listing.status, 200);
    for secret in [TOKEN, ROUTING_KEY, PATH_TOKEN, WEBHOOK_BEARER, "/hooks"] {
        assert!(
            !listing.text.contains(secret),
            "the targets API shows {secret:?}: {}",
            listing.text
        );
    }
    let targets = listing.json();
    let endpoint = targets["targets"][0]["endpoint"].as_str().unwrap();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    for secret in [TOKEN, ROUTING_KEY, PATH_TOKEN, WEBHOOK_BEARER] {
        assert!(!server.log().contains(secret), "the log shows {secret:?}");
    }
}

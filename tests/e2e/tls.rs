//! TLS with rustls when `server.tls` is configured.

use alertpub_e2e::{Server, TempDir};
use publisher_http::{ClientConfig, DefaultClassifier, HttpClient, HttpRequest};

use crate::{base_config, ok_target, server_lines, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_configured_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a self-signed certificate");
    let dir = TempDir::new();
    std::fs::write(dir.path().join("server.crt"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        certified.key_pair.serialize_pem(),
    )
    .unwrap();
    let target = ok_target().await;
    let config = format!(
        "{}targets:\n{}",
        server_lines(
            &base_config(),
            "  tls: { cert_file: server.crt, key_file: server.key }\n"
        ),
        webhook("hook", &target, "")
    );
    let server = Server::start_in(dir, &config).await;

    let client = HttpClient::new(
        &ClientConfig::default().with_extra_root_pem(certified.cert.pem().into_bytes()),
    )
    .unwrap();
    let url = format!("https://{}/healthz", server.addr());
    let response = client
        .send(
            HttpRequest::new(http::Method::GET, &url).unwrap(),
            &DefaultClassifier,
        )
        .await
        .expect("the server answers over TLS");
    assert_eq!(response.status.as_u16(), 200);

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = HttpClient::new(&ClientConfig::default()).unwrap();
    let url = format!("http://{}/healthz", server.addr());
    assert!(
        plain
            .send(
                HttpRequest::new(http::Method::GET, &url).unwrap(),
                &DefaultClassifier,
            )
            .await
            .is_err()
    );
}

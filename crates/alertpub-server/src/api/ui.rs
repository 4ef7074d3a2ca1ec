//! The status page at `/`: static HTML, CSS and JS compiled into the binary (no CDN, no build
//! step), which reads and writes through the API like any client. A strict
//! Content-Security-Policy allows nothing but this origin.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");
/// The OpenAPI 3.1 document of the `/api/v1` routes, kept true by `tests/e2e/openapi.rs`.
const OPENAPI: &str = include_str!("openapi.json");

const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
                      frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

pub(super) async fn script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

pub(super) async fn style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

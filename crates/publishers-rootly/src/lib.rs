//! Publishes alerts to the Rootly Alerts API (`POST {base}/v1/alerts`).
//!
//! It writes only how to build the request and how to classify the answer; the HTTP stack is `publisher-http`.

//! The JSON error shape `{error:{kind, message}}` and the answers for unknown routes.

use alert_core::JobStoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer: a status and `{error:{kind, message}}`, plus optional extra fields.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    extra: Option<serde_json::Map<String, Value>>,
    pub(super) close: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            extra: None,
            close: false,
        }
    }

    pub(super) fn with(mut self, key: &str, value: Value) -> Self {
        self.extra
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.to_owned(), value);
        self
    }

    pub(crate) fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra.unwrap_or_default();
        body.insert(
            "error".to_owned(),
            json!({"kind": self.kind, "message": self.message}),
        );
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JobStoreError> for ApiError {
    fn from(err: JobStoreError) -> Self {
        match err {
            JobStoreError::Full { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                err.to_string(),
            ),
            JobStoreError::TooManyActiveAlerts { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_active_alerts",
                err.to_string(),
            ),
            JobStoreError::TargetFull { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "target_queue_full",
                err.to_string(),
            ),
            JobStoreError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            JobStoreError::Superseded => {
                Self::new(StatusCode::CONFLICT, "superseded", err.to_string())
            }
            _ => Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage", err.to_string()),
        }
    }
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

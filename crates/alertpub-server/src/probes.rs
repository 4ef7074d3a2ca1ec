//! The answers of `/readyz` and `/healthz`, from the queue store's health view and the shutdown's
//! phase.
//!
//! - `/readyz` is 503 while the server drains before shutting down (see
//!   [`crate::shutdown`]), and while the store is not ready: its commits keep failing (a full
//!   disk), its writer has stopped, or its state is poisoned. A load balancer then sends its
//!   traffic elsewhere.
//! - `/healthz` is 503 only when the store cannot heal by itself (its writer stopped, its state
//!   is poisoned), so the orchestrator restarts the process. A store whose commits fail retries
//!   by itself, and restarting would not give the disk room.
//!
//! Both answer from memory and never wait for the disk.

use alert_core::StoreHealth;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;

/// Cancelled when shutdown begins, before the listener stops: `/readyz` answers 503 from then
/// on while requests are still served. Handed to the handlers as a request extension.
#[derive(Clone, Debug, Default)]
pub(crate) struct Draining(pub(crate) CancellationToken);

/// The answer of `/readyz`: 503 `shutting_down` while `draining`, 503 with the store's condition
/// as the error kind while the store is not ready, else 200 with the number of targets.
pub(crate) fn readiness(health: &StoreHealth, draining: bool, targets: usize) -> Response {
    if draining {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
        .into_response();
    }
    let condition = &health.condition;
    if !condition.is_ready() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            condition.kind(),
            condition.message(),
        )
        .into_response();
    }
    axum::Json(json!({"status": "ready", "targets": targets})).into_response()
}

/// The answer of `/healthz`: 503 with the store's condition as the error kind when the store
/// cannot heal by itself, else 200.
pub(crate) fn liveness(health: &StoreHealth) -> Response {
    let condition = &health.condition;
    if !condition.is_live() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            condition.kind(),
            condition.message(),
        )
        .into_response();
    }
    axum::Json(json!({"status": "ok"})).into_response()
}

#[cfg(test)]
mod tests {
    use alert_core::{BrokenReason, StoreCondition};
    use http_body_util::BodyExt as _;
    use serde_json::Value;

    use super::*;

    async fn answer(response: Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn failing() -> StoreHealth {
        StoreHealth::new(StoreCondition::Failing {
            consecutive_failures: 3,
            last_error: "the queue's storage failed: no space left on device".to_owned(),
        })
    }

    fn broken(reason: BrokenReason) -> StoreHealth {
        StoreHealth::new(StoreCondition::Broken { reason })
    }

    #[tokio::test]
    async fn a_healthy_store_is_ready_and_alive() {
        let healthy = StoreHealth::default();
        assert_eq!(
            answer(readiness(&healthy, false, 2)).await,
            (200, json!({"status": "ready", "targets": 2}))
        );
        assert_eq!(
            answer(liveness(&healthy)).await,
            (200, json!({"status": "ok"}))
        );
    }

    #[tokio::test]
    async fn a_failing_store_is_not_ready_but_alive() {
        let (status, body) = answer(readiness(&failing(), false, 2)).await;
        assert_eq!(status, 503);
        assert_eq!(body["error"]["kind"], "store_failing");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("no space left on device"), "{message}");
        assert_eq!(answer(liveness(&failing())).await.0, 200);
    }

    #[tokio::test]
    async fn a_broken_store_is_neither_ready_nor_alive() {
        for (reason, kind) in [
            (BrokenReason::WriterStopped, "store_writer_stopped"),
            (BrokenReason::Poisoned, "store_poisoned"),
        ] {
            for response in [
                readiness(&broken(reason), false, 2),
                liveness(&broken(reason)),
            ] {
                let (status, body) = answer(response).await;
                assert_eq!((status, body["error"]["kind"].as_str()), (503, Some(kind)));
            }
        }
    }

    #[tokio::test]
    async fn a_draining_server_is_not_ready_but_alive() {
        let (status, body) = answer(readiness(&StoreHealth::default(), true, 2)).await;
        assert_eq!(
            (status, body["error"]["kind"].as_str()),
            (503, Some("shutting_down"))
        );
        assert_eq!(answer(liveness(&StoreHealth::default())).await.0, 200);
    }
}

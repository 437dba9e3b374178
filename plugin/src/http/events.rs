//! `POST /v1/stalwart-events`: Stalwart's webhook. Missing or wrong `X-Signature` → 401; a body that is
//! not the webhook payload → 400 (nothing recorded); a database error → 503 (Stalwart re-sends the
//! batch, and duplicates are recognised). 200 with what was recorded otherwise.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use super::problem::Problem;
use crate::{stalwart::webhook, Gateway};

/// Largest webhook body accepted (Stalwart batches events every `throttle` tick).
pub const MAX_EVENTS_BODY: usize = 16 * 1024 * 1024;

pub async fn stalwart_events(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = gw.webhook_key.as_deref() else {
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "webhook-not-configured",
            "the webhook intake has no HMAC key configured ([webhook] hmac_key or hmac_key_file)",
        )
        .into_response();
    };
    let signature = headers.get("x-signature").and_then(|v| v.to_str().ok());
    if !webhook::signature_ok(key, &body, signature) {
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "bad-signature",
            "missing or wrong X-Signature (base64 HMAC-SHA256 of the body with the webhook key)",
        )
        .into_response();
    }
    let payload: webhook::Payload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-webhook-payload",
                format!("line {}, column {}: {e}", e.line(), e.column()),
            )
            .into_response()
        }
    };
    // Validate every recorded event before recording any: a bad batch changes nothing.
    if let Err(e) = check_batch(&payload.events) {
        return Problem::new(StatusCode::BAD_REQUEST, "malformed-webhook-payload", e)
            .into_response();
    }
    match gw
        .store
        .record_webhook(payload.events, crate::time::now())
        .await
    {
        Ok(intake) => {
            if intake.recorded + intake.waiting > 0 {
                tracing::info!(
                    recorded = intake.recorded,
                    duplicates = intake.duplicates,
                    waiting = intake.waiting,
                    ignored = intake.ignored,
                    "stalwart events"
                );
            }
            Json(intake).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "recording webhook events failed; Stalwart will re-send them");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily-unavailable",
                e.to_string(),
            )
            .into_response()
        }
    }
}

/// Every recorded event has a valid `queueId` (when present) and `createdAt`; the first that has not,
/// by its index.
pub(crate) fn check_batch(events: &[webhook::Event]) -> Result<(), String> {
    for (i, ev) in events.iter().enumerate() {
        if !crate::audit::delivery::is_recorded(&ev.kind) {
            continue;
        }
        if let Err(e) = ev.queue_id().and_then(|_| ev.created_unix().map(|_| ())) {
            return Err(format!("events[{i}]: {e}"));
        }
    }
    Ok(())
}

//! `POST /v1/mta-hook`: Stalwart's MTA hook. Wrong token → 401, malformed JSON → 400, any internal
//! error → 503 (Stalwart then answers the client `451 4.3.5`, and the client retries later).

use std::{sync::Arc, time::Instant};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use super::{auth::bearer_ok, problem::Problem};
use crate::{stalwart::hook::Request, submission, Gateway};

pub async fn mta_hook(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let response = answer(&gw, &headers, &body).await;
    gw.metrics
        .hook_latency
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn answer(gw: &Arc<Gateway>, headers: &HeaderMap, body: &[u8]) -> Response {
    if !bearer_ok(headers, &gw.hook_token) {
        gw.metrics.answer("unauthorized");
        return Problem::unauthorized().into_response();
    }
    let request: Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            gw.metrics.answer("bad_request");
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-hook-request",
                format!("line {}, column {}: {e}", e.line(), e.column()),
            )
            .into_response();
        }
    };
    match submission::handle(gw, request).await {
        Ok(handled) => {
            // Committed: let the worker send notifications (from the database, so nothing is lost).
            gw.wake.notify_one();
            for d in &handled.decisions {
                gw.metrics.decision(d.outcome.as_str());
                tracing::info!(
                    message = handled.message_ref.as_deref().unwrap_or("-"),
                    recipient = %d.recipient,
                    outcome = d.outcome.as_str(),
                    reasons = %d.summary(),
                    "decision"
                );
            }
            gw.metrics.answer(match handled.response.action {
                crate::stalwart::hook::Action::Accept => "accept",
                crate::stalwart::hook::Action::Discard => "discard",
                crate::stalwart::hook::Action::Reject => "reject",
                crate::stalwart::hook::Action::Quarantine => "quarantine",
            });
            Json(handled.response).into_response()
        }
        Err(submission::SubmissionError::BadRequest(detail)) => {
            gw.metrics.answer("bad_request");
            Problem::new(StatusCode::BAD_REQUEST, "malformed-hook-request", detail).into_response()
        }
        Err(e) => {
            gw.metrics.answer("error");
            tracing::error!(error = %e, "hook failed; Stalwart will answer 451 and the client retries");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily-unavailable",
                e.to_string(),
            )
            .into_response()
        }
    }
}

//! `POST /v1/mta-hook`: Stalwart's MTA hook. Wrong token → 401, malformed JSON → 400, any internal
//! error → 503 (Stalwart then answers the client `451 4.3.5`, and the client retries later).
//! Every decision is counted (`nta7516_decisions_total{outcome}`) and logged (`decision`, with its
//! outcome and reasons), and every answer is counted (`nta7516_hook_answers_total{action}`).

use std::{sync::Arc, time::Instant};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use super::{auth::bearer_ok, problem::Problem};
use crate::{
    metrics::Answer,
    stalwart::hook::Request,
    submission::{self, Handled},
    Gateway,
};

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
        gw.metrics.answer(Answer::Unauthorized);
        return Problem::unauthorized().into_response();
    }
    let request: Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            gw.metrics.answer(Answer::BadRequest);
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
            // Committed: when someone is held, let the worker plan and send the notifications (from
            // the database, so nothing is lost). A delivered message gives the worker nothing to do.
            if handled.decisions.iter().any(|d| d.outcome.is_held()) {
                gw.wake.notify_one();
            }
            observe(gw, &handled);
            gw.metrics.answer(handled.response.action.into());
            Json(handled.response).into_response()
        }
        Err(submission::SubmissionError::BadRequest(detail)) => {
            gw.metrics.answer(Answer::BadRequest);
            Problem::new(StatusCode::BAD_REQUEST, "malformed-hook-request", detail).into_response()
        }
        Err(e) => {
            gw.metrics.answer(Answer::Error);
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

/// Counts and logs each decision.
fn observe(gw: &Gateway, handled: &Handled) {
    for d in &handled.decisions {
        gw.metrics.decision(d.outcome);
        tracing::info!(
            message = handled.message_ref.as_deref().unwrap_or("-"),
            recipient = %d.recipient,
            outcome = d.outcome.as_str(),
            reasons = %d.summary(),
            "decision"
        );
    }
}

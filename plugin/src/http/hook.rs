//! `POST /v1/mta-hook`: Stalwart's MTA hook for submissions; `POST /v1/mta-hook/inbound`: its hook for
//! mail received from the internet ([`crate::inbound`]). Wrong token → 401, malformed JSON → 400, any
//! internal error → 503 (Stalwart then answers the client `451 4.3.5`, and the client retries later).
//! Every decision is counted (`nta7516_decisions_total{outcome}`) and logged (`decision`, with its
//! outcome and reasons), and every answer is counted (`nta7516_hook_answers_total{action}`). A
//! submission larger than `portal.large_attachment_bytes` is read as a stream
//! ([`crate::submission::intake`]), so that its large attachments are never in memory whole.

use std::{sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use super::{auth::bearer_ok, problem::Problem};
use crate::{
    inbound,
    metrics::Answer,
    stalwart::hook::Request,
    submission::{self, Handled},
    Gateway,
};

pub async fn mta_hook(State(gw): State<Arc<Gateway>>, req: axum::extract::Request) -> Response {
    let started = Instant::now();
    let headers = req.headers().clone();
    let response = if streamed(&gw, &headers) {
        streamed_answer(&gw, &headers, req.into_body()).await
    } else {
        match Bytes::from_request(req, &()).await {
            Ok(body) => answer(&gw, &headers, &body).await,
            Err(rejection) => rejection.into_response(),
        }
    };
    gw.metrics
        .hook_latency
        .observe(started.elapsed().as_secs_f64());
    response
}

pub async fn inbound_hook(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let response = match authorized_request(&gw, &headers, &body) {
        Ok(request) => inbound_answer(&gw, request).await,
        Err(refused) => *refused,
    };
    gw.metrics
        .hook_latency
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The bearer token checked and the JSON parsed, or the error answer.
fn authorized_request(
    gw: &Gateway,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Request, Box<Response>> {
    if !bearer_ok(headers, &gw.hook_token) {
        gw.metrics.answer(Answer::Unauthorized);
        return Err(Box::new(Problem::unauthorized().into_response()));
    }
    serde_json::from_slice(body).map_err(|e| {
        gw.metrics.answer(Answer::BadRequest);
        Box::new(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-hook-request",
                format!("line {}, column {}: {e}", e.line(), e.column()),
            )
            .into_response(),
        )
    })
}

async fn inbound_answer(gw: &Arc<Gateway>, request: Request) -> Response {
    match inbound::handle(gw, request).await {
        Ok(handled) => {
            if let (Some(d), Some(r)) = (&handled.decision, &handled.message_ref) {
                gw.metrics.received(d.action);
                tracing::info!(message = %r, action = d.action.as_str(), reasons = %d.summary(), "received");
            }
            gw.metrics.answer(handled.response.action.into());
            Json(handled.response).into_response()
        }
        Err(inbound::InboundError::BadRequest(detail)) => bad_request(gw, detail),
        Err(e) => {
            tracing::error!(error = %e, "inbound hook failed; Stalwart will answer 451 and the sender retries");
            unavailable(gw, &e)
        }
    }
}

fn bad_request(gw: &Gateway, detail: String) -> Response {
    gw.metrics.answer(Answer::BadRequest);
    Problem::new(StatusCode::BAD_REQUEST, "malformed-hook-request", detail).into_response()
}

/// 503: Stalwart answers `451 4.3.5` and the client retries.
fn unavailable(gw: &Gateway, e: &dyn std::fmt::Display) -> Response {
    gw.metrics.answer(Answer::Error);
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily-unavailable",
        e.to_string(),
    )
    .into_response()
}

/// A request larger than `portal.large_attachment_bytes` (by its `Content-Length`) may carry a large
/// attachment: it is read as a stream, so that attachment never sits in memory whole.
fn streamed(gw: &Gateway, headers: &HeaderMap) -> bool {
    let threshold = gw.config.portal.large_attachment_bytes;
    let length = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    threshold > 0 && length.is_some_and(|l| l > threshold)
}

async fn streamed_answer(gw: &Arc<Gateway>, headers: &HeaderMap, body: Body) -> Response {
    if !bearer_ok(headers, &gw.hook_token) {
        gw.metrics.answer(Answer::Unauthorized);
        return Problem::unauthorized().into_response();
    }
    match submission::intake::read(gw, body.into_data_stream()).await {
        Ok((request, pre)) => handled(gw, submission::handle_presplit(gw, request, pre).await),
        Err(e) => handled(gw, Err(e)),
    }
}

async fn answer(gw: &Arc<Gateway>, headers: &HeaderMap, body: &[u8]) -> Response {
    let request = match authorized_request(gw, headers, body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    handled(gw, submission::handle(gw, request).await)
}

/// The hook's answer to a handled (or failed) submission.
fn handled(gw: &Arc<Gateway>, result: Result<Handled, submission::SubmissionError>) -> Response {
    match result {
        Ok(handled) => {
            // Committed: when someone is held, let the worker plan and send the notifications (from
            // the database, so nothing is lost). A delivered message gives the worker nothing to do.
            if handled.decisions.iter().any(|d| d.outcome.is_held()) {
                gw.wake.soon();
            }
            observe(gw, &handled);
            gw.metrics.answer(handled.response.action.into());
            Json(handled.response).into_response()
        }
        Err(submission::SubmissionError::BadRequest(detail)) => bad_request(gw, detail),
        Err(e) => {
            tracing::error!(error = %e, "hook failed; Stalwart will answer 451 and the client retries");
            unavailable(gw, &e)
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

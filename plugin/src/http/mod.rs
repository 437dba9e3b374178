//! The gateway's HTTP application (axum): [`router`] mounts every surface — Stalwart's MTA hook
//! ([`hook`]) and webhook ([`events`]), the admin API ([`crate::admin`]), the portal
//! ([`crate::portal`]) — plus health and metrics, with the [`Gateway`] as explicit state.
//!
//! This file is the top of the HTTP layer: it may import every surface, and no surface imports it.
//! What the surfaces share lives in the leaves [`problem`] (RFC 9457 errors) and [`auth`] (bearer
//! tokens), which import nothing of the gateway's HTTP code.

pub mod auth;
pub mod events;
pub mod hook;
pub mod problem;

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};

use crate::Gateway;
// Kept for callers that name them through `http::`; new code imports the leaves.
pub use auth::bearer_ok;
pub use problem::Problem;

/// Largest hook body accepted: Stalwart embeds the whole message (its own default maximum is 50 MB),
/// plus JSON escaping.
pub const MAX_HOOK_BODY: usize = 128 * 1024 * 1024;

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/v1/mta-hook",
            post(hook::mta_hook).layer(axum::extract::DefaultBodyLimit::max(MAX_HOOK_BODY)),
        )
        .route(
            "/v1/mta-hook/inbound",
            post(hook::inbound_hook).layer(axum::extract::DefaultBodyLimit::max(MAX_HOOK_BODY)),
        )
        .route(
            "/v1/stalwart-events",
            post(events::stalwart_events).layer(axum::extract::DefaultBodyLimit::max(
                events::MAX_EVENTS_BODY,
            )),
        )
        .merge(crate::admin::router(gw.clone()))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::portal::routes())
        .with_state(gw)
}

async fn healthz(State(gw): State<Arc<Gateway>>) -> axum::response::Response {
    match gw.store.ping().await {
        // Stalwart's state is detail: an unsafe Stalwart does not make the gateway unhealthy (the
        // hook holds instead), so the status stays 200.
        Ok(()) => match gw.stalwart_check.health() {
            Some(line) => (StatusCode::OK, format!("ok\n{line}\n")).into_response(),
            None => (StatusCode::OK, "ok\n").into_response(),
        },
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.metrics.render(),
    )
}

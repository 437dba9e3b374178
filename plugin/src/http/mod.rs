//! HTTP surface (axum): the MTA hook for Stalwart, health and metrics. Plain async handlers with the
//! [`Gateway`] as explicit state.

pub mod events;
pub mod hook;
pub mod problem;

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};

use crate::Gateway;
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

/// `Authorization: Bearer <token>` compared in constant time.
pub fn bearer_ok(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|presented| {
            crate::secrets::equal(presented.trim().as_bytes(), token.as_bytes())
        })
}

async fn healthz(State(gw): State<Arc<Gateway>>) -> axum::response::Response {
    match gw.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
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

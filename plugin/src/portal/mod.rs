//! The portal: the recipient's pages (link → send code → enter code → messages) and the sender's
//! "enter the recipient's mobile number" page. Server-rendered HTML in Dutch and English, no JavaScript,
//! CSRF-protected forms (double-submit cookie + HMAC), strict security headers, and one answer — 404 with
//! the same page — for every unknown or wrong link token.
//!
//! Files: [`access`] (who may read a portal message), [`brand`] (a brand's logo and colour), [`recipient`] (before verification), [`view`] (after:
//! messages, reading, downloads), [`reply`] (the recipient's secure reply and its thread), [`large`] (large attachments by link), [`sender`]
//! (the phone-number page), [`withdraw`] (the sender's withdraw page), [`session`] (the request context
//! and the portal session),
//! [`csrf`], [`html`] (layout, escaping, languages). This file: the routes and the security headers. The portal calls `challenge` and `store`; nothing calls the portal but `http`.

pub mod access;
pub mod brand;
pub mod csrf;
pub mod html;
pub mod large;
pub mod recipient;
pub mod reply;
pub mod sender;
pub mod session;
pub mod view;
pub mod withdraw;

use std::sync::Arc;

use axum::{
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};

use crate::Gateway;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/p/static/portal.css", get(css))
        .route("/p/brand/{key}/logo", get(brand::logo))
        .route("/p/brand/{key}/brand.css", get(brand::css))
        .route("/p/{token}", get(recipient::landing))
        .route("/p/{token}/sms", post(recipient::send_code))
        .route(
            "/p/{token}/code",
            get(recipient::code_form).post(recipient::check_code),
        )
        .route("/p/{token}/messages", get(view::messages))
        .route("/p/{token}/m/{id}", get(view::message))
        .route("/p/{token}/m/{id}/eml", get(view::eml))
        .route("/p/{token}/m/{id}/a/{n}", get(view::attachment))
        .route("/p/{token}/b/{blob}", get(large::download))
        .route(
            "/p/{token}/m/{id}/reply",
            get(reply::form)
                .post(reply::submit)
                .layer(axum::extract::DefaultBodyLimit::max(reply::BODY_LIMIT)),
        )
        .route("/p/{token}/m/{id}/reply/{rid}", get(reply::status))
        .route(
            "/s/{token}",
            get(sender::sender_form).post(sender::sender_submit),
        )
        .route(
            "/s/w/{token}",
            get(withdraw::withdraw_form).post(withdraw::withdraw_submit),
        )
        .layer(axum::middleware::map_response(security_headers))
}

/// The same headers on every portal answer. A handler's own `content-security-policy` and
/// `cache-control` (the brand files: stricter, and cacheable) are kept.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    let keep = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    keep(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    keep(h, "cache-control", "no-store");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    set(h, "strict-transport-security", "max-age=31536000");
    r
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CSS,
    )
        .into_response()
}

//! A brand's files: its logo (`/p/brand/{key}/logo`) and its colour as a stylesheet
//! (`/p/brand/{key}/brand.css`, since the portal's CSP allows no inline styles). The key is a hash of
//! the brand's content, so both are cached for a year (`immutable`): a changed logo or colour gets a new
//! URL. An unknown key, or a brand without that file, is the portal's 404 page.
//!
//! SVG logos are served as they are (checked at load for active content, see `config::branding`) with
//! their own CSP — no scripts, no fetches, `sandbox` — and `nosniff`, so even an SVG opened directly
//! runs nothing; the portal shows them only through `<img>`, where browsers run no script at all.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::{html, session::Ctx};
use crate::{config::Brand, Gateway};

/// The logo's own policy: inline styles (SVG uses them), nothing else; a sandboxed document.
pub const LOGO_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

const CACHE: &str = "public, max-age=31536000, immutable";

fn brand<'a>(gw: &'a Gateway, key: &str) -> Option<&'a Arc<Brand>> {
    gw.brands.by_key(key)
}

pub async fn logo(State(gw): State<Arc<Gateway>>, ctx: Ctx, Path(key): Path<String>) -> Response {
    let Some(logo) = brand(&gw, &key).and_then(|b| b.logo.as_ref()) else {
        return ctx.not_found();
    };
    let mut r = (StatusCode::OK, logo.bytes.clone()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(logo.kind.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(LOGO_CSP),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

pub async fn css(State(gw): State<Arc<Gateway>>, ctx: Ctx, Path(key): Path<String>) -> Response {
    let Some(accent) = brand(&gw, &key).and_then(|b| b.accent) else {
        return ctx.not_found();
    };
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        html::brand_css(accent),
    )
        .into_response()
}

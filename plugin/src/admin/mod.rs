//! The admin REST API under `/v1/admin/` (bearer token): recipients and their CSV import/export,
//! exemptions, the NTA 7516 peer list, held messages, settings per sender domain and audit queries.
//! Errors are problem JSON (RFC 9457); every change is audited in the transaction that makes it.
//! The OpenAPI 3.1 description is [`OPENAPI`], served at `/v1/admin/openapi.json`.
//!
//! The CLI (`stalwart-nta7516 admin …`) sends the same requests, to a running gateway (`--url`) or to
//! this router in-process over the local database ([`client`]).
//!
//! This file owns the route table ([`ROUTES`], [`routes`]) and the token check; [`api`] the handlers,
//! [`choice`] the closed choices (formats, kinds, modes), [`validate`] typed input, [`csv`] the CSV
//! form, [`client`] the CLI. The admin API may call the store, the audit log's types and exports, the
//! policy reload and the HTTP leaves [`crate::http::problem`] and [`crate::http::auth`] — never
//! [`crate::http`] itself, whose router mounts this one.

pub mod api;
pub mod choice;
pub mod client;
pub mod csv;
pub mod validate;

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Router,
};

use crate::{
    http::{auth::bearer_ok, problem::Problem},
    store::Store,
    Gateway,
};

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route of the API: `(method, path)`, paths in OpenAPI/axum template syntax. The router is
/// built from the same paths, and a test holds the OpenAPI document to this list.
pub const ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/v1/admin/recipients"),
    (Method::GET, "/v1/admin/recipients/export"),
    (Method::POST, "/v1/admin/recipients/import"),
    (Method::GET, "/v1/admin/recipients/{address}"),
    (Method::PUT, "/v1/admin/recipients/{address}"),
    (Method::DELETE, "/v1/admin/recipients/{address}"),
    (
        Method::POST,
        "/v1/admin/recipients/{address}/reset-verification",
    ),
    (Method::GET, "/v1/admin/exemptions"),
    (Method::POST, "/v1/admin/exemptions"),
    (Method::DELETE, "/v1/admin/exemptions/{id}"),
    (Method::GET, "/v1/admin/peers"),
    (Method::PUT, "/v1/admin/peers/{domain}"),
    (Method::DELETE, "/v1/admin/peers/{domain}"),
    (Method::GET, "/v1/admin/held"),
    (Method::POST, "/v1/admin/held/{id}/release-to-portal"),
    (Method::POST, "/v1/admin/held/{id}/resolve"),
    (Method::DELETE, "/v1/admin/held/{id}"),
    (Method::POST, "/v1/admin/held/{id}/withdraw"),
    (Method::GET, "/v1/admin/settings"),
    (Method::GET, "/v1/admin/settings/{domain}"),
    (Method::PUT, "/v1/admin/settings/{domain}"),
    (Method::DELETE, "/v1/admin/settings/{domain}"),
    (Method::GET, "/v1/admin/audit"),
    (Method::GET, "/v1/admin/audit/verify"),
    (Method::GET, "/v1/admin/audit/report/{message_id}"),
    (Method::POST, "/v1/admin/policy/reload"),
    (Method::GET, "/v1/admin/openapi.json"),
];

/// Reloads the gateway's policy (`[policy] file`): `Ok(message)` when swapped in, `Err(why)` when refused.
pub type PolicyReload = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// What the admin handlers need: the store, the token, and who to name as the actor in audit records.
pub struct AdminState {
    pub store: Store,
    pub token: Option<String>,
    pub actor: String,
    /// Policy reload of a running gateway; `None` in the local CLI (no gateway to reload).
    pub reload_policy: Option<PolicyReload>,
}

/// The admin routes of a running gateway.
pub fn router<S: Clone + Send + Sync + 'static>(gw: Arc<Gateway>) -> Router<S> {
    let (store, token) = (gw.store.clone(), gw.admin_token.clone());
    routes(Arc::new(AdminState {
        store,
        token,
        actor: "api".into(),
        reload_policy: Some(Arc::new(move || crate::policy::sieve::reload(&gw))),
    }))
}

pub fn routes<S: Clone + Send + Sync + 'static>(state: Arc<AdminState>) -> Router<S> {
    use api::*;
    let protected = Router::new()
        .route("/v1/admin/recipients", get(list_recipients))
        .route("/v1/admin/recipients/export", get(export_recipients))
        .route(
            "/v1/admin/recipients/import",
            post(import_recipients).layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024)),
        )
        .route(
            "/v1/admin/recipients/{address}",
            get(get_recipient)
                .put(put_recipient)
                .delete(delete_recipient),
        )
        .route(
            "/v1/admin/recipients/{address}/reset-verification",
            post(reset_verification),
        )
        .route(
            "/v1/admin/exemptions",
            get(list_exemptions).post(add_exemption),
        )
        .route(
            "/v1/admin/exemptions/{id}",
            axum::routing::delete(delete_exemption),
        )
        .route("/v1/admin/peers", get(list_peers))
        .route(
            "/v1/admin/peers/{domain}",
            put(put_peer).delete(delete_peer),
        )
        .route("/v1/admin/held", get(list_held))
        .route(
            "/v1/admin/held/{id}/release-to-portal",
            post(release_to_portal),
        )
        .route("/v1/admin/held/{id}/resolve", post(resolve_held))
        .route("/v1/admin/held/{id}", axum::routing::delete(delete_held))
        .route("/v1/admin/held/{id}/withdraw", post(withdraw_held))
        .route("/v1/admin/settings", get(list_settings))
        .route(
            "/v1/admin/settings/{domain}",
            get(get_settings).put(put_settings).delete(delete_settings),
        )
        .route("/v1/admin/audit", get(audit_query))
        .route("/v1/admin/audit/verify", get(audit_verify))
        .route("/v1/admin/audit/report/{message_id}", get(audit_report))
        .route("/v1/admin/policy/reload", post(reload_policy))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    Router::new()
        .route("/v1/admin/openapi.json", get(openapi))
        .merge(protected)
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// `Authorization: Bearer <admin token>`; without a configured token every request is refused.
async fn authorize(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    match state.token.as_deref() {
        Some(token) if bearer_ok(req.headers(), token) => next.run(req).await,
        Some(_) => Problem::unauthorized().into_response(),
        None => Problem::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "admin-not-configured",
            "the admin API has no token configured ([admin] token or token_file)",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::choice::{AuditFormat, ExemptionScope, ImportMode, ReportFormat};

    /// The `enum` of a query parameter of `GET path` in the OpenAPI document.
    fn query_enum(path: &str, name: &str) -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let p = params.iter().find(|p| p["name"] == name).unwrap();
        p["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn openapi_choices_are_the_servers() {
        let kinds: Vec<&str> = crate::audit::Kind::ALL.map(|k| k.as_str()).to_vec();
        assert_eq!(query_enum("/v1/admin/audit", "kind"), kinds);
        for f in query_enum("/v1/admin/audit", "format") {
            assert!(AuditFormat::parse(Some(&f)).is_ok(), "{f}");
        }
        let report = query_enum("/v1/admin/audit/report/{message_id}", "format");
        for f in &report {
            assert_eq!(ReportFormat::parse(Some(f)).unwrap().as_str(), f);
        }
        assert_eq!(report.len(), 3);
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let exemption = doc["components"]["schemas"]["ExemptionInput"]["oneOf"]
            .as_array()
            .unwrap();
        assert_eq!(exemption.len(), 2);
        for variant in exemption {
            let k = variant["properties"]["kind"]["enum"][0].as_str().unwrap();
            assert_eq!(ExemptionScope::parse(k).unwrap().as_str(), k);
        }
        let import = &doc["paths"]["/v1/admin/recipients/import"]["post"]["parameters"][0];
        assert_eq!(import["name"], "all_or_nothing");
        assert_eq!(import["schema"]["type"], "boolean");
        assert!(ImportMode::from_query(Some("true")).is_ok());
        assert!(ImportMode::from_query(Some("false")).is_ok());
    }
}

//! The admin API over HTTP, against SQLite and PostgreSQL: every endpoint refuses a missing or wrong
//! token, refuses bad input with a problem JSON that says what is wrong (and changes nothing), does its
//! job and audits every change; CSV import of 10 000 recipients with 3 bad rows; the OpenAPI document
//! validates and describes exactly the routes; and the CLI does the same locally and with --url.

use crate::util::{hook_request, Backend, Builder, HttpReply, TestGateway, TlsTable, ADMIN_TOKEN};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use stalwart_nta7516::{
    admin::{OPENAPI, ROUTES},
    policy::TlsStatus,
    store::audit::AuditQuery,
};

async fn gateway(b: Backend) -> TestGateway {
    Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(TlsTable::new(&[("example.test", TlsStatus::Secure)]))
        .start()
        .await
}

async fn api(gw: &TestGateway, method: Method, path: &str, body: Value) -> HttpReply {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    gw.request(method, path, Some(ADMIN_TOKEN), body).await
}

/// A 400 problem (input the OpenAPI document does not allow) whose detail contains `says`.
fn assert_bad(reply: &HttpReply, says: &str) {
    assert_problem(reply, StatusCode::BAD_REQUEST, says);
}

/// A problem with `status` whose detail contains `says`: 422 for well-formed input that is refused,
/// 409 for a request that does not fit the current state.
fn assert_problem(reply: &HttpReply, status: StatusCode, says: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type, "application/problem+json");
    let p = reply.json();
    assert_eq!(p["status"], status.as_u16());
    assert!(
        p["detail"].as_str().unwrap().contains(says),
        "problem {p} should say {says:?}"
    );
}

fn assert_not_found(reply: &HttpReply, says: &str) {
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.content_type, "application/problem+json");
    assert!(reply.json()["detail"].as_str().unwrap().contains(says));
}

/// The last admin audit record: `(action, target)`.
async fn last_admin_change(gw: &TestGateway) -> (String, String) {
    let records = gw
        .gw
        .store
        .audit_query(&AuditQuery {
            kind: Some("admin".into()),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .unwrap();
    let d = records.last().expect("an admin record").details_json();
    (
        d["action"].as_str().unwrap().to_string(),
        d["target"].as_str().unwrap().to_string(),
    )
}

async fn admin_records(gw: &TestGateway) -> usize {
    gw.gw
        .store
        .audit_query(&AuditQuery {
            kind: Some("admin".into()),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

/// Well-formed ids that name nothing (a 404), and a malformed one (a 400).
const UNKNOWN_HELD: &str = "h-00000000000000000000000000000000";
const UNKNOWN_EXEMPTION: &str = "ex-00000000000000000000000000000000";

fn concrete(path: &str) -> String {
    path.replace("{address}", "bob@example.test")
        .replace("{domain}", "example.test")
        .replace("{id}", UNKNOWN_HELD)
        .replace("{message_id}", UNKNOWN_HELD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_a_missing_or_wrong_token() {
    let gw = gateway(Backend::Sqlite).await;
    let mut checked = 0;
    for (method, path) in ROUTES {
        if *path == "/v1/admin/openapi.json" {
            continue;
        }
        for token in [None, Some("wrong-token"), Some("")] {
            let reply = gw
                .request(method.clone(), &concrete(path), token, b"{}".to_vec())
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert_eq!(reply.content_type, "application/problem+json");
            assert_eq!(reply.json()["status"], 401);
        }
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len() - 1);
    // Nothing was changed or recorded by the refused requests.
    assert_eq!(gw.count("audit_log").await, 0);
    // An unknown admin path is not a route at all.
    let reply = gw
        .request(Method::GET, "/v1/admin/nothing", Some(ADMIN_TOKEN), vec![])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_routes_and_validates() {
    let gw = gateway(Backend::Sqlite).await;
    // Served without a token, exactly the embedded document.
    let reply = gw
        .request(Method::GET, "/v1/admin/openapi.json", None, vec![])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc, serde_json::from_str::<Value>(OPENAPI).unwrap());
    assert_eq!(doc["openapi"], "3.1.0");

    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut routes: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes);

    // Each route is served (a token passes the guard, so anything but 401/404-from-the-router/405).
    for (method, path) in ROUTES {
        let reply = gw
            .request(method.clone(), &concrete(path), Some(ADMIN_TOKEN), vec![])
            .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        if reply.status == StatusCode::NOT_FOUND {
            // A 404 from a handler is a problem JSON about the unknown id, not a missing route.
            assert_eq!(
                reply.content_type, "application/problem+json",
                "{method} {path}"
            );
        }
    }

    // The PyPI validator (installed by .ci/setup.d/audit.sh into .ci/venv, on PATH under scripts/test).
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin/openapi.json");
    match std::process::Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if std::env::var("CI").is_ok() => {
            panic!("CI is set but openapi-spec-validator cannot run ({e}); .ci/setup.d/audit.sh installs it")
        }
        Err(e) => eprintln!(
            "SKIPPED: OpenAPI validation ({e}); run scripts/test or bash .ci/setup.d/audit.sh and put .ci/venv/bin on PATH"
        ),
    }
}

async fn recipients(b: Backend) {
    let gw = gateway(b).await;
    let path = "/v1/admin/recipients/Bob@Example.test";
    let r = api(
        &gw,
        Method::PUT,
        path,
        json!({"phone": "+31612345678", "verified_until": "2027-01-31T00:00:00Z"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"address": "bob@example.test", "phone": "+31612345678", "verified_until": "2027-01-31T00:00:00Z"})
    );
    assert_eq!(
        last_admin_change(&gw).await,
        ("recipient.put".into(), "bob@example.test".into())
    );
    // The audit record never holds the full number.
    let all: String = gw
        .gw
        .store
        .audit_query(&AuditQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.details.clone())
        .collect();
    assert!(all.contains("+316*****678") && !all.contains("+31612345678"));

    let got = api(
        &gw,
        Method::GET,
        "/v1/admin/recipients/bob@example.test",
        Value::Null,
    )
    .await;
    assert_eq!(got.json()["phone"], "+31612345678");
    let list = api(
        &gw,
        Method::GET,
        "/v1/admin/recipients?limit=10",
        Value::Null,
    )
    .await;
    assert_eq!(list.json()["recipients"].as_array().unwrap().len(), 1);

    let reset = api(
        &gw,
        Method::POST,
        "/v1/admin/recipients/bob@example.test/reset-verification",
        Value::Null,
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(reset.json()["verified_until"], Value::Null);
    assert_eq!(
        last_admin_change(&gw).await.0,
        "recipient.reset_verification"
    );

    // Bad input: clear problems, nothing changed, nothing recorded.
    let before = admin_records(&gw).await;
    assert_bad(
        &api(&gw, Method::PUT, path, json!({"phone": "06-12345678"})).await,
        "invalid phone number \"06-12345678\": E.164 starts with +",
    );
    assert_bad(
        &api(&gw, Method::PUT, path, json!({"phone": "+31 6 12345678"})).await,
        "only digits",
    );
    assert_bad(
        &api(&gw, Method::PUT, "/v1/admin/recipients/bob", json!({})).await,
        "invalid address \"bob\": no @",
    );
    assert_bad(
        &api(
            &gw,
            Method::PUT,
            "/v1/admin/recipients/bob@bad_domain",
            json!({}),
        )
        .await,
        "invalid domain",
    );
    assert_bad(
        &api(
            &gw,
            Method::PUT,
            path,
            json!({"verified_until": "next week"}),
        )
        .await,
        "RFC 3339",
    );
    assert_bad(
        &api(&gw, Method::PUT, path, json!({"telephone": "+31612345678"})).await,
        "unknown field `telephone`",
    );
    assert_bad(
        &api(
            &gw,
            Method::GET,
            "/v1/admin/recipients?limit=0",
            Value::Null,
        )
        .await,
        "limit",
    );
    assert_eq!(admin_records(&gw).await, before);
    assert_eq!(
        api(
            &gw,
            Method::GET,
            "/v1/admin/recipients/bob@example.test",
            Value::Null
        )
        .await
        .json()["phone"],
        "+31612345678"
    );

    assert_not_found(
        &api(
            &gw,
            Method::GET,
            "/v1/admin/recipients/nobody@example.test",
            Value::Null,
        )
        .await,
        "no recipient nobody@example.test",
    );
    assert_not_found(
        &api(
            &gw,
            Method::POST,
            "/v1/admin/recipients/nobody@example.test/reset-verification",
            Value::Null,
        )
        .await,
        "no recipient",
    );
    let del = api(
        &gw,
        Method::DELETE,
        "/v1/admin/recipients/bob@example.test",
        Value::Null,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(last_admin_change(&gw).await.0, "recipient.delete");
    assert_not_found(
        &api(
            &gw,
            Method::DELETE,
            "/v1/admin/recipients/bob@example.test",
            Value::Null,
        )
        .await,
        "no recipient",
    );
    assert_eq!(gw.count("recipients").await, 0);
}

async fn csv_import_of_10000_recipients_with_3_bad_rows(b: Backend) {
    let gw = gateway(b).await;
    let mut csv = String::from("address,phone,verified_until\n");
    let bad_lines = [1_001, 5_002, 9_999];
    for i in 0..10_000 {
        let line = i + 2; // line 1 is the header
        let row = match bad_lines.iter().position(|l| *l == line) {
            Some(0) => format!("patient{i}@example.test,0612345678,\n"),
            Some(1) => format!("patient{i}-at-example.test,+31612345678,\n"),
            Some(2) => format!("patient{i}@example.test,+31612345678,someday\n"),
            _ => format!(
                "patient{i}@example.test,+3161{:07},{}\n",
                i,
                if i % 2 == 0 {
                    "2027-01-31T00:00:00Z"
                } else {
                    ""
                }
            ),
        };
        csv.push_str(&row);
    }
    let reply = gw
        .request(
            Method::POST,
            "/v1/admin/recipients/import",
            Some(ADMIN_TOKEN),
            csv.clone().into_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    assert_eq!(v["imported"], 9_997);
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(
        rejected
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1_001, 5_002, 9_999]
    );
    assert!(rejected[0]["error"]
        .as_str()
        .unwrap()
        .contains("phone number"));
    assert!(rejected[1]["error"].as_str().unwrap().contains("no @"));
    assert!(rejected[2]["error"]
        .as_str()
        .unwrap()
        .contains("verified_until"));
    assert_eq!(gw.count("recipients").await, 9_997);
    assert_eq!(
        last_admin_change(&gw).await,
        ("recipients.import".into(), "recipients".into())
    );

    // Export: the same rows back, as CSV.
    let export = api(&gw, Method::GET, "/v1/admin/recipients/export", Value::Null).await;
    assert_eq!(export.status, StatusCode::OK);
    assert!(export.content_type.starts_with("text/csv"));
    let text = String::from_utf8(export.body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "address,phone,verified_until");
    assert_eq!(lines.len(), 1 + 9_997);
    assert!(lines.contains(&"patient0@example.test,+31610000000,2027-01-31T00:00:00Z"));
    assert!(lines.contains(&"patient1@example.test,+31610000001,"));

    // all_or_nothing: the same file imports nothing.
    let before = admin_records(&gw).await;
    let strict = gw
        .request(
            Method::POST,
            "/v1/admin/recipients/import?all_or_nothing=true",
            Some(ADMIN_TOKEN),
            csv.replace("patient", "other").into_bytes(),
        )
        .await;
    assert_problem(
        &strict,
        StatusCode::UNPROCESSABLE_ENTITY,
        "3 bad rows, nothing imported: line 1001",
    );
    assert_eq!(gw.count("recipients").await, 9_997);
    assert_eq!(admin_records(&gw).await, before);
    // A file without the header is refused as a whole.
    let headless = gw
        .request(
            Method::POST,
            "/v1/admin/recipients/import",
            Some(ADMIN_TOKEN),
            b"x@example.test,+31612345678\n".to_vec(),
        )
        .await;
    assert_bad(&headless, "line 1: the header must be");
}

async fn exemptions(b: Backend) {
    let gw = gateway(b).await;
    let r = api(
        &gw,
        Method::POST,
        "/v1/admin/exemptions",
        json!({"kind": "domain", "value": "Lab-Partner.test", "reason": "contract 2026-17", "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let e = r.json();
    assert_eq!(e["value"], "lab-partner.test");
    assert_eq!(e["expires_at"], "2099-01-01T00:00:00Z");
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(last_admin_change(&gw).await.0, "exemption.put");
    let r = api(
        &gw,
        Method::POST,
        "/v1/admin/exemptions",
        json!({"kind": "address", "value": "gp@practice.test", "reason": "GP"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let list = api(&gw, Method::GET, "/v1/admin/exemptions", Value::Null)
        .await
        .json();
    assert_eq!(list["exemptions"].as_array().unwrap().len(), 2);

    let before = admin_records(&gw).await;
    let post = |body: Value| api(&gw, Method::POST, "/v1/admin/exemptions", body);
    assert_bad(
        &post(json!({"kind": "domain", "value": "not a domain", "reason": "x"})).await,
        "invalid domain \"not a domain\"",
    );
    assert_bad(
        &post(json!({"kind": "host", "value": "x.test", "reason": "x"})).await,
        "kind must be \"address\" or \"domain\"",
    );
    assert_bad(
        &post(json!({"kind": "domain", "value": "x.test", "reason": " "})).await,
        "reason must not be empty",
    );
    assert_problem(
        &post(json!({"kind": "domain", "value": "x.test", "reason": "x", "expires_at": "2001-01-01T00:00:00Z"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "expires_at is in the past",
    );
    assert_bad(&post(json!({"kind": "domain"})).await, "missing field");
    assert_eq!(admin_records(&gw).await, before);

    let del = api(
        &gw,
        Method::DELETE,
        &format!("/v1/admin/exemptions/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(
        last_admin_change(&gw).await,
        ("exemption.delete".into(), id.clone())
    );
    assert_not_found(
        &api(
            &gw,
            Method::DELETE,
            &format!("/v1/admin/exemptions/{id}"),
            Value::Null,
        )
        .await,
        "no exemption with id",
    );
    assert_not_found(
        &api(
            &gw,
            Method::DELETE,
            &format!("/v1/admin/exemptions/{UNKNOWN_EXEMPTION}"),
            Value::Null,
        )
        .await,
        "no exemption with id",
    );
    let records = admin_records(&gw).await;
    assert_bad(
        &api(
            &gw,
            Method::DELETE,
            "/v1/admin/exemptions/ex-1;drop",
            Value::Null,
        )
        .await,
        "invalid exemption id \"ex-1;drop\": expected ex- followed by 32",
    );
    assert_eq!(admin_records(&gw).await, records, "nothing recorded");
}

async fn peers(b: Backend) {
    let gw = gateway(b).await;
    let r = api(
        &gw,
        Method::PUT,
        "/v1/admin/peers/Ziekenhuis.test",
        json!({"provider": "ZorgMail"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"domain": "ziekenhuis.test", "provider": "ZorgMail"})
    );
    assert_eq!(
        last_admin_change(&gw).await,
        ("peer.put".into(), "ziekenhuis.test".into())
    );
    let list = api(&gw, Method::GET, "/v1/admin/peers", Value::Null)
        .await
        .json();
    assert_eq!(list["peers"][0]["provider"], "ZorgMail");
    assert_bad(
        &api(
            &gw,
            Method::PUT,
            "/v1/admin/peers/localhost",
            json!({"provider": "X"}),
        )
        .await,
        "invalid domain \"localhost\": needs at least two labels",
    );
    assert_bad(
        &api(
            &gw,
            Method::PUT,
            "/v1/admin/peers/x.test",
            json!({"provider": ""}),
        )
        .await,
        "provider must not be empty",
    );
    let del = api(
        &gw,
        Method::DELETE,
        "/v1/admin/peers/ziekenhuis.test",
        Value::Null,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(last_admin_change(&gw).await.0, "peer.delete");
    assert_not_found(
        &api(
            &gw,
            Method::DELETE,
            "/v1/admin/peers/ziekenhuis.test",
            Value::Null,
        )
        .await,
        "not on the peer list",
    );
}

/// One message held for bob@ and carol@example.test; returns its id.
async fn hold_for_bob_and_carol(gw: &TestGateway) -> String {
    let req = hook_request(
        "alice@zorg.test",
        &["bob@example.test", "carol@example.test"],
        &[("Subject", "lab")],
        "results\r\n",
    );
    assert_eq!(gw.hook(&req).await.json()["action"], "discard");
    let list = api(gw, Method::GET, "/v1/admin/held", Value::Null)
        .await
        .json();
    list["held"][0]["id"].as_str().unwrap().to_string()
}

async fn held_messages(b: Backend) {
    let gw = gateway(b).await;
    let id = hold_for_bob_and_carol(&gw).await;
    let list = api(&gw, Method::GET, "/v1/admin/held", Value::Null)
        .await
        .json();
    let held = list["held"].as_array().unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["id"], id);
    assert_eq!(held[0]["recipients"].as_array().unwrap().len(), 2);
    assert_eq!(held[0]["recipients"][0]["outcome"], "challenge");

    // One recipient to the portal, then the rest.
    let path = format!("/v1/admin/held/{id}/release-to-portal");
    let r = api(
        &gw,
        Method::POST,
        &path,
        json!({"recipient": "carol@example.test"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["to_portal"], json!(["carol@example.test"]));
    let holds = gw.gw.store.holds(&id).await.unwrap();
    assert_eq!(
        holds
            .iter()
            .map(|h| (h.0.as_str(), h.1.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("bob@example.test", "challenge"),
            ("carol@example.test", "portal")
        ]
    );
    assert_problem(
        &api(
            &gw,
            Method::POST,
            &path,
            json!({"recipient": "carol@example.test"}),
        )
        .await,
        StatusCode::CONFLICT,
        "carol@example.test is not a recipient of",
    );
    assert_bad(
        &api(&gw, Method::POST, &path, json!({"rcpt": "x"})).await,
        "unknown field",
    );
    let r = api(&gw, Method::POST, &path, Value::Null).await;
    assert_eq!(r.json()["to_portal"], json!(["bob@example.test"]));
    // The change is in the message's own audit trail.
    let report = api(
        &gw,
        Method::GET,
        &format!("/v1/admin/audit/report/{id}"),
        Value::Null,
    )
    .await
    .json();
    let admin: Vec<&str> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "admin")
        .map(|t| t["summary"].as_str().unwrap())
        .collect();
    assert_eq!(admin.len(), 2);
    assert!(admin[0].starts_with("admin held.release_to_portal"));

    assert_not_found(
        &api(
            &gw,
            Method::POST,
            &format!("/v1/admin/held/{UNKNOWN_HELD}/release-to-portal"),
            Value::Null,
        )
        .await,
        &format!("no held message with id \"{UNKNOWN_HELD}\""),
    );
    assert_bad(
        &api(
            &gw,
            Method::POST,
            "/v1/admin/held/h-nope/release-to-portal",
            Value::Null,
        )
        .await,
        "invalid held message id \"h-nope\": expected h- followed by 32",
    );
    let del = api(
        &gw,
        Method::DELETE,
        &format!("/v1/admin/held/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(
        last_admin_change(&gw).await,
        ("held.delete".into(), id.clone())
    );
    let row = gw.gw.store.held(&id).await.unwrap().unwrap();
    assert!(row.sealed.is_none(), "content erased");
    assert!(gw
        .gw
        .store
        .holds(&id)
        .await
        .unwrap()
        .iter()
        .all(|h| h.2 == "deleted"));
    let list = api(&gw, Method::GET, "/v1/admin/held", Value::Null)
        .await
        .json();
    assert_eq!(list["held"], json!([]));
    assert_not_found(
        &api(
            &gw,
            Method::DELETE,
            &format!("/v1/admin/held/{UNKNOWN_HELD}"),
            Value::Null,
        )
        .await,
        "no held message",
    );
    assert_bad(
        &api(&gw, Method::DELETE, "/v1/admin/held/h-nope", Value::Null).await,
        "invalid held message id",
    );
    // Nothing changed by the refused requests: the last admin change is still the delete.
    assert_eq!(
        last_admin_change(&gw).await,
        ("held.delete".into(), id.clone())
    );
}

async fn settings(b: Backend) {
    let gw = gateway(b).await;
    let r = api(
        &gw,
        Method::PUT,
        "/v1/admin/settings/zorg.test",
        json!({"retention_days": 30, "groups": ["nta", "gdpr"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(
        (v["retention_days"].clone(), v["groups"].clone()),
        (json!(30), json!(["nta", "gdpr"]))
    );
    assert_eq!(
        last_admin_change(&gw).await,
        ("settings.put".into(), "zorg.test".into())
    );
    let got = api(
        &gw,
        Method::GET,
        "/v1/admin/settings/zorg.test",
        Value::Null,
    )
    .await
    .json();
    assert_eq!(got["groups"], json!(["nta", "gdpr"]));
    let list = api(&gw, Method::GET, "/v1/admin/settings", Value::Null)
        .await
        .json();
    assert_eq!(list["settings"].as_array().unwrap().len(), 1);
    assert_bad(
        &api(
            &gw,
            Method::PUT,
            "/v1/admin/settings/zorg.test",
            json!({"retention_days": 365}),
        )
        .await,
        "retention_days must be 1 to 90",
    );
    assert_bad(
        &api(&gw, Method::PUT, "/v1/admin/settings/zorg_test", json!({})).await,
        "invalid domain",
    );
    assert_eq!(
        api(
            &gw,
            Method::GET,
            "/v1/admin/settings/zorg.test",
            Value::Null
        )
        .await
        .json()["retention_days"],
        30
    );
    let del = api(
        &gw,
        Method::DELETE,
        "/v1/admin/settings/zorg.test",
        Value::Null,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_not_found(
        &api(
            &gw,
            Method::GET,
            "/v1/admin/settings/zorg.test",
            Value::Null,
        )
        .await,
        "no settings for zorg.test",
    );
}

async fn audit_queries(b: Backend) {
    let gw = gateway(b).await;
    for i in 0..3 {
        let req = hook_request(
            "alice@zorg.test",
            &["bob@example.test"],
            &[("Subject", &format!("n{i}"))],
            "x\r\n",
        );
        gw.hook(&req).await;
    }
    let all = api(&gw, Method::GET, "/v1/admin/audit", Value::Null)
        .await
        .json();
    let records = all["records"].as_array().unwrap();
    assert_eq!(records.len(), 6); // decision + held, three times
    let first = records[0]["message_ref"].as_str().unwrap();
    let one = api(
        &gw,
        Method::GET,
        &format!("/v1/admin/audit?message_id={first}&kind=held"),
        Value::Null,
    )
    .await
    .json();
    assert_eq!(one["records"].as_array().unwrap().len(), 1);
    let page = api(
        &gw,
        Method::GET,
        "/v1/admin/audit?after_seq=4&limit=1",
        Value::Null,
    )
    .await
    .json();
    assert_eq!(page["records"][0]["seq"], 5);
    assert_eq!(page["next_after_seq"], 5);
    let none = api(
        &gw,
        Method::GET,
        "/v1/admin/audit?until=2000-01-01T00:00:00Z",
        Value::Null,
    )
    .await
    .json();
    assert_eq!(none["records"], json!([]));
    let csv = api(&gw, Method::GET, "/v1/admin/audit?format=csv", Value::Null).await;
    let text = String::from_utf8(csv.body).unwrap();
    assert!(text.starts_with("seq,at,kind,message_ref"));
    assert_eq!(text.lines().count(), 7);
    let jsonl = api(
        &gw,
        Method::GET,
        "/v1/admin/audit?format=jsonl",
        Value::Null,
    )
    .await;
    let text = String::from_utf8(jsonl.body).unwrap();
    assert_eq!(text.lines().count(), 6);
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["hash"].as_str().unwrap().len(), 64);
    }
    assert_bad(
        &api(
            &gw,
            Method::GET,
            "/v1/admin/audit?since=yesterday",
            Value::Null,
        )
        .await,
        "invalid since \"yesterday\"",
    );
    assert_bad(
        &api(&gw, Method::GET, "/v1/admin/audit?format=xml", Value::Null).await,
        "format must be json, jsonl or csv",
    );
    let v = api(&gw, Method::GET, "/v1/admin/audit/verify", Value::Null)
        .await
        .json();
    assert_eq!(
        (v["ok"].clone(), v["records"].clone()),
        (json!(true), json!(6))
    );
    assert_not_found(
        &api(
            &gw,
            Method::GET,
            &format!("/v1/admin/audit/report/{UNKNOWN_HELD}"),
            Value::Null,
        )
        .await,
        "no records for message",
    );
    assert_bad(
        &api(
            &gw,
            Method::GET,
            "/v1/admin/audit/report/h-unknown",
            Value::Null,
        )
        .await,
        "invalid message id \"h-unknown\": expected h- or m-",
    );
    assert_bad(
        &api(
            &gw,
            Method::GET,
            &format!("/v1/admin/audit/report/{first}?format=pdf"),
            Value::Null,
        )
        .await,
        "format must be json, text or html",
    );
}

/// An uncertain release (Stalwart's reply was lost) is settled by the operator: delivered → released
/// and the content erased; not delivered → releasing again. Only uncertain holds can be resolved.
async fn resolve_uncertain_release(b: Backend) {
    let gw = gateway(b).await;
    let id = hold_for_bob_and_carol(&gw).await;
    let path = format!("/v1/admin/held/{id}/resolve");
    let resolve = |rcpt: &str, delivered: bool| {
        api(
            &gw,
            Method::POST,
            &path,
            json!({"recipient": rcpt, "delivered": delivered}),
        )
    };
    // Still held (not a release whose outcome is unknown): refused, nothing changes.
    let before = admin_records(&gw).await;
    assert_problem(
        &resolve("bob@example.test", true).await,
        StatusCode::CONFLICT,
        "is held: only an uncertain release can be resolved",
    );
    assert_bad(
        &api(
            &gw,
            Method::POST,
            &path,
            json!({"recipient": "bob@example.test"}),
        )
        .await,
        "missing field `delivered`",
    );
    assert_not_found(
        &resolve("dave@example.test", true).await,
        "has no hold for dave@example.test",
    );
    assert_eq!(admin_records(&gw).await, before);

    // Both releases went out but their replies were lost.
    sqlx::query("UPDATE holds SET state = 'uncertain' WHERE message_id = $1")
        .bind(&id)
        .execute(gw.gw.store.pool())
        .await
        .unwrap();
    let r = resolve("bob@example.test", true).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["state"], "released");
    assert_eq!(
        last_admin_change(&gw).await,
        ("held.resolve".into(), id.clone())
    );
    // Carol still needs the content.
    assert!(gw
        .gw
        .store
        .held(&id)
        .await
        .unwrap()
        .unwrap()
        .sealed
        .is_some());
    let r = resolve("carol@example.test", false).await;
    assert_eq!(r.json()["state"], "releasing");
    let states: Vec<(String, String)> = gw
        .gw
        .store
        .holds(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.0, h.2))
        .collect();
    assert_eq!(
        states,
        vec![
            ("bob@example.test".to_string(), "released".to_string()),
            ("carol@example.test".to_string(), "releasing".to_string())
        ]
    );
    assert!(gw
        .gw
        .store
        .held(&id)
        .await
        .unwrap()
        .unwrap()
        .sealed
        .is_some());
    // Resolved once: a second call is refused.
    assert_problem(
        &resolve("bob@example.test", false).await,
        StatusCode::CONFLICT,
        "is released",
    );
}

/// A map's entries in key order, to compare with a literal.
fn sorted(map: &std::collections::HashMap<String, String>) -> Vec<(&str, &str)> {
    let mut v: Vec<_> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    v.sort();
    v
}

/// The hook's read of stored recipient facts (one query over recipients, exemptions and peers): every
/// kind of row comes back under its own key, expired exemptions and other addresses do not, and an
/// address exemption and a domain exemption both count, whatever the number of recipients; the hook's
/// whole read (these facts, an earlier held copy, the sender domain's settings) gives the same.
async fn recipient_facts_in_one_query(b: Backend) {
    let gw = gateway(b).await;
    let store = &gw.gw.store;
    let now = 1_800_000_000;
    store
        .upsert_recipient("ann@a.test", Some("+31612345678"), Some(now + 60), now)
        .await
        .unwrap();
    store
        .upsert_recipient("bob@b.test", None, None, now)
        .await
        .unwrap();
    store
        .upsert_recipient("zed@z.test", Some("+31600000000"), None, now)
        .await
        .unwrap();
    store
        .add_exemption("address", "bob@b.test", "signed agreement", None, now)
        .await
        .unwrap();
    store
        .add_exemption("domain", "c.test", "peer hospital", Some(now + 10), now)
        .await
        .unwrap();
    store
        .add_exemption("domain", "a.test", "expired", Some(now - 1), now)
        .await
        .unwrap();
    store
        .add_exemption("address", "zed@z.test", "not asked for", None, now)
        .await
        .unwrap();
    store.add_peer("c.test", "zorgmail", now).await.unwrap();
    store.add_peer("z.test", "zivver", now).await.unwrap();

    let asked = ["ann@a.test", "bob@b.test", "cas@c.test", "dan@c.test"];
    let facts = store.recipient_facts(&asked, now).await.unwrap();
    let mut recipients: Vec<_> = facts
        .recipients
        .iter()
        .map(|(k, r)| (k.as_str(), r.phone.as_deref(), r.verified_until))
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        [
            ("ann@a.test", Some("+31612345678"), Some(now + 60)),
            ("bob@b.test", None, None),
        ]
    );
    assert_eq!(
        sorted(&facts.exemptions),
        [
            ("bob@b.test", "signed agreement"),
            ("c.test", "peer hospital")
        ]
    );
    assert_eq!(sorted(&facts.peers), [("c.test", "zorgmail")]);

    // Once the domain exemption expires it is no longer read; nothing asked, nothing read.
    let later = store.recipient_facts(&asked, now + 10).await.unwrap();
    assert!(!later.exemptions.contains_key("c.test"));
    assert!(later.exemptions.contains_key("bob@b.test"));
    let none = store.recipient_facts(&[], now).await.unwrap();
    assert!(none.recipients.is_empty() && none.exemptions.is_empty() && none.peers.is_empty());

    // The hook reads the same facts, an earlier attempt's held copy and the sender domain's
    // settings in one statement: the same rows under each kind, the settings' typed columns intact.
    let settings = stalwart_nta7516::store::admin::SettingsIn {
        retention_days: Some(90),
        groups: vec!["lab".into()],
        hold_confirmation: Some(true),
        collection_receipt: Some(false),
    };
    store
        .put_settings_with("test", "zorg.test", &settings, now)
        .await
        .unwrap();
    let reads = store
        .hook_reads(&asked, Some("no-such-submission"), Some("zorg.test"), now)
        .await
        .unwrap();
    assert_eq!(reads.stored.recipients.len(), 2);
    assert_eq!(sorted(&reads.stored.exemptions), sorted(&facts.exemptions));
    assert_eq!(sorted(&reads.stored.peers), sorted(&facts.peers));
    assert!(reads.earlier.is_none(), "no held copy under that key");
    let s = reads.settings.expect("the sender domain's settings");
    assert_eq!(
        (s.domain.as_str(), s.retention_days, &s.groups[..]),
        ("zorg.test", Some(90), &["lab".to_string()][..])
    );
    assert_eq!(
        (s.hold_confirmation, s.collection_receipt),
        (Some(true), Some(false))
    );
    let other = store
        .hook_reads(&asked, None, Some("elders.test"), now)
        .await
        .unwrap();
    assert!(other.settings.is_none() && other.earlier.is_none());
}

both_backends!(
    recipient_facts_in_one_query,
    recipients,
    resolve_uncertain_release,
    csv_import_of_10000_recipients_with_3_bad_rows,
    exemptions,
    peers,
    held_messages,
    settings,
    audit_queries,
);

/// The CLI against the local database and against the API (`--url`): same operations, same results,
/// audited with the CLI user or the API as actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_admin_local_and_remote() {
    let gw = gateway(Backend::Sqlite).await;
    let config = gw.dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"{}\"\n[hook]\ntoken = \"x\"\n[hold]\nmaster_key_file = \"{}\"\n",
            gw.gw.config.storage.url,
            gw.dir.path().join("master.key").display()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stalwart-nta7516"))
            .args(args)
            .env("USER", "tester")
            .env_remove("NTA7516_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cfg = config.to_str().unwrap();
    let (code, out, err) = cli(&[
        "admin",
        "--config",
        cfg,
        "recipients",
        "set",
        "bob@example.test",
        "--phone",
        "+31612345678",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"phone\": \"+31612345678\""), "{out}");
    let (code, _, err) = cli(&[
        "admin",
        "--config",
        cfg,
        "recipients",
        "set",
        "eve@example.test",
        "--phone",
        "0612",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("invalid phone number \"0612\""), "{err}");
    assert_eq!(
        last_admin_change(&gw).await,
        ("recipient.put".into(), "bob@example.test".into())
    );
    let actor = gw
        .gw
        .store
        .audit_query(&AuditQuery::default())
        .await
        .unwrap()
        .last()
        .unwrap()
        .details_json()["actor"]
        .clone();
    assert_eq!(actor, "cli:tester");

    // Through the running gateway's API.
    let url = format!("http://{}", gw.addr);
    let (code, out, err) = cli(&[
        "admin",
        "--url",
        &url,
        "--token",
        ADMIN_TOKEN,
        "peers",
        "set",
        "ziekenhuis.test",
        "--provider",
        "ZorgMail",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ZorgMail"));
    let (code, out, _) = cli(&[
        "admin",
        "--url",
        &url,
        "--token",
        ADMIN_TOKEN,
        "recipients",
        "export",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "address,phone,verified_until\r\nbob@example.test,+31612345678,\r\n"
    );
    let (code, _, err) = cli(&["admin", "--url", &url, "--token", "wrong", "peers", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("401"), "{err}");
    // Settling an uncertain release from the CLI: a hold that is still held is refused, with the
    // API's reason.
    let req = hook_request(
        "alice@zorg.test",
        &["bob@example.test"],
        &[("Subject", "lab")],
        "results\r\n",
    );
    gw.hook(&req).await;
    let id = gw.gw.store.list_held(10).await.unwrap()[0].id.clone();
    let (code, _, err) = cli(&[
        "admin",
        "--url",
        &url,
        "--token",
        ADMIN_TOKEN,
        "held",
        "resolve",
        &id,
        "--recipient",
        "bob@example.test",
        "--outcome",
        "delivered",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("only an uncertain release can be resolved"),
        "{err}"
    );
    sqlx::query("UPDATE holds SET state = 'uncertain' WHERE message_id = $1")
        .bind(&id)
        .execute(gw.gw.store.pool())
        .await
        .unwrap();
    let (code, out, err) = cli(&[
        "admin",
        "--config",
        cfg,
        "held",
        "resolve",
        &id,
        "--recipient",
        "bob@example.test",
        "--outcome",
        "delivered",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"state\": \"released\""), "{out}");

    // audit export as CSV and JSON lines, locally.
    let (code, out, err) = cli(&["audit", "--config", cfg, "export", "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    // Header; recipient and peer changes; the hook's decision and hold, and the resolve.
    assert_eq!(out.lines().count(), 1 + 2 + 3, "{out}");
    let (code, out, _) = cli(&[
        "audit",
        "--config",
        cfg,
        "export",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2000-01-02T00:00:00Z",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(out, "");
}

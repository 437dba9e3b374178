//! The MTA hook over HTTP, against SQLite and PostgreSQL: every answer shape, authentication, bad input,
//! 8-bit bodies, an unavailable database, encryption at rest, idempotency, retention and metrics.

use crate::util;
use std::sync::Arc;

use crate::util::{fixture, hook_request, Backend, Builder, TestGateway, TlsTable};
use hyper::{Method, StatusCode};
use serde_json::json;
use stalwart_nta7516::{
    policy::{Policy, PolicyFacts, PolicyVerdict, Requirement, TlsStatus},
    store::Store,
};

const LOCAL: &str = "[organisation]\nlocal_domains = [\"zorg.test\"]\n";

fn secure(domains: &[&str]) -> Arc<TlsTable> {
    TlsTable::new(
        &domains
            .iter()
            .map(|d| (*d, TlsStatus::Secure))
            .collect::<Vec<_>>(),
    )
}

async fn gateway(backend: Backend, extra: &str) -> TestGateway {
    Builder::new(backend)
        .config(LOCAL)
        .config(extra)
        .tls(secure(&["example.test", "partner.test"]))
        .start()
        .await
}

fn nothing_stored(stored: &[(String, i64)]) {
    assert!(
        stored.iter().all(|(_, n)| *n == 0),
        "something was stored: {stored:?}"
    );
}

async fn only_local_recipients_accept_without_modifications(b: Backend) {
    let gw = Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\", \"example.test\"]\n")
        .start()
        .await;
    let reply = gw
        .hook(&fixture("hook-data-plain-one-recipient.json"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"action": "accept"}));
    assert_eq!(gw.count("held_messages").await, 0);
    assert_eq!(gw.count("decisions").await, 1);
}

async fn mixed_held_and_deliverable(b: Backend) {
    // carol@partner.test: exempt domain, secure TLS → deliver. bob@example.test: 2FA → held.
    let gw = gateway(b, "[exemptions]\ndomains = [\"partner.test\"]\n").await;
    let reply = gw
        .hook(&fixture("hook-data-utf8-8bit-two-external.json"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    assert_eq!(v["action"], "accept");
    let mods = v["modifications"].as_array().unwrap();
    assert_eq!(mods.len(), 2, "{v}");
    assert_eq!(
        mods[0],
        json!({"type": "deleteRecipient", "value": "bob@example.test"})
    );
    assert_eq!(mods[1]["type"], "addHeader");
    assert_eq!(mods[1]["name"], "X-NTA7516-Id");
    let id = mods[1]["value"].as_str().unwrap();
    assert!(id.starts_with("h-"));
    let holds = gw.gw.store.holds(id).await.unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(
        (
            holds[0].0.as_str(),
            holds[0].1.as_str(),
            holds[0].2.as_str()
        ),
        ("bob@example.test", "challenge", "held")
    );
    let decisions = gw.gw.store.decisions(id).await.unwrap();
    let carol = decisions
        .iter()
        .find(|d| d.0 == "carol@partner.test")
        .unwrap();
    assert_eq!(carol.1, "deliver");
    assert!(
        carol.2.contains("admin_exemption") && carol.2.contains("tls_secure"),
        "{}",
        carol.2
    );
}

async fn all_held_is_discarded_with_250(b: Backend) {
    let gw = gateway(b, "").await;
    let reply = gw
        .hook(&fixture("hook-data-plain-one-recipient.json"))
        .await;
    let v = reply.json();
    assert_eq!(v["action"], "discard", "{v}");
    assert_eq!(v["response"]["status"], 250);
    assert_eq!(v["response"]["enhanced_status"], "2.0.0");
    let text = v["response"]["message"].as_str().unwrap();
    assert!(
        text.starts_with("Held for secure delivery (id h-"),
        "{text}"
    );
    assert!(v.get("modifications").is_none());
    assert_eq!(gw.count("held_messages").await, 1);
    assert_eq!(gw.count("challenges").await, 1);
}

async fn insecure_domain_goes_to_portal(b: Backend) {
    let gw = Builder::new(b)
        .config(LOCAL)
        .config("[exemptions]\ndomains = [\"example.test\"]\n")
        .tls(TlsTable::new(&[("example.test", TlsStatus::Insecure)]))
        .start()
        .await;
    let v = gw
        .hook(&fixture("hook-data-plain-one-recipient.json"))
        .await
        .json();
    let id = util::held_ref(&v);
    let holds = gw.gw.store.holds(&id).await.unwrap();
    assert_eq!(holds[0].1, "portal");
}

/// Rejects recipients of one domain; stands in for an admin policy in this transport-level test (the
/// Sieve engine's own tests cover policies).
struct RejectDomain(&'static str);
impl Policy for RejectDomain {
    fn evaluate(&self, _raw: &[u8], _s: &str, rcpts: &[(&str, PolicyFacts)]) -> Vec<PolicyVerdict> {
        rcpts
            .iter()
            .map(|(_, f)| {
                let mut v = PolicyVerdict::default();
                if f.recipient_domain == self.0 {
                    v.requirement = Some(Requirement::Reject);
                    v.reasons.push(stalwart_nta7516::policy::PolicyReason {
                        requirement: Requirement::Reject,
                        text: "no medical data to this domain".into(),
                    });
                }
                v
            })
            .collect()
    }
}

async fn reject_is_a_clear_5xx(b: Backend) {
    let gw = Builder::new(b)
        .config(LOCAL)
        .tls(secure(&["example.test", "partner.test"]))
        .policy(Arc::new(RejectDomain("partner.test")))
        .start()
        .await;
    let v = gw
        .hook(&fixture("hook-data-utf8-8bit-two-external.json"))
        .await
        .json();
    assert_eq!(v["action"], "reject");
    assert_eq!(v["response"]["status"], 550);
    assert_eq!(v["response"]["enhanced_status"], "5.7.1");
    let text = v["response"]["message"].as_str().unwrap();
    assert!(
        text.contains("<carol@partner.test>") && text.contains("no medical data to this domain"),
        "{text}"
    );
    assert_eq!(
        gw.count("held_messages").await,
        0,
        "a rejected message is not held"
    );
}

async fn missing_or_wrong_token_is_401_and_stores_nothing(b: Backend) {
    let gw = gateway(b, "").await;
    let body = serde_json::to_vec(&fixture("hook-data-plain-one-recipient.json")).unwrap();
    for token in [None, Some("wrong"), Some("")] {
        let r = gw
            .request(Method::POST, "/v1/mta-hook", token, body.clone())
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(r.json()["status"], 401);
    }
    nothing_stored(&gw.stored().await);
}

async fn malformed_json_is_400_and_stores_nothing(b: Backend) {
    let gw = gateway(b, "").await;
    for body in [
        &b"{\"context\": "[..],
        &b"not json"[..],
        &br#"{"context":{"stage":"DATA"}}"#[..],
    ] {
        let r = gw
            .request(
                Method::POST,
                "/v1/mta-hook",
                Some(util::TOKEN),
                body.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let p = r.json();
        assert_eq!(p["type"], "urn:nta7516:problem:malformed-hook-request");
        assert!(
            p["detail"].as_str().unwrap().contains("line 1, column"),
            "{p}"
        );
    }
    // Well-formed JSON, but a DATA stage without a message.
    let mut req = fixture("hook-data-plain-one-recipient.json");
    req.as_object_mut().unwrap().remove("message");
    let r = gw.hook(&req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("without message"));
    nothing_stored(&gw.stored().await);
}

async fn latin1_body_is_refused_permanently_and_stores_nothing(b: Backend) {
    let gw = gateway(b, "").await;
    let v = gw
        .hook(&fixture("hook-data-latin1-8bit-lossy.json"))
        .await
        .json();
    assert_eq!(v["action"], "reject");
    assert_eq!(v["response"]["status"], 554);
    assert_eq!(v["response"]["enhanced_status"], "5.6.0");
    let text = v["response"]["message"].as_str().unwrap();
    assert!(text.contains("resend") || text.contains("Resend"), "{text}");
    nothing_stored(&gw.stored().await);
}

/// The refusal of a body that cannot be held unaltered is a decision like any other: counted as
/// `reject` (never as the challenge or portal it would have been) and logged with its outcome.
async fn unholdable_body_refusal_is_counted_and_logged_as_reject(b: Backend) {
    util::init_log();
    let gw = gateway(b, "[exemptions]\ndomains = [\"partner.test\"]\n").await;
    let unique = stalwart_nta7516::ids::new_id("t");
    let held = format!("dave-{unique}@example.test");
    let deliverable = format!("erin-{unique}@partner.test");
    let mut req = fixture("hook-data-latin1-8bit-lossy.json");
    req["envelope"]["to"] =
        json!([{"address": held}, {"address": deliverable}, {"address": "me@zorg.test"}]);
    let v = gw.hook(&req).await.json();
    assert_eq!(v["action"], "reject", "{v}");
    assert_eq!(v["response"]["status"], 554);
    assert_eq!(v["response"]["enhanced_status"], "5.6.0");
    nothing_stored(&gw.stored().await);

    let text =
        String::from_utf8(gw.request(Method::GET, "/metrics", None, vec![]).await.body).unwrap();
    for line in [
        "nta7516_decisions_total{outcome=\"reject\"} 1",
        "nta7516_decisions_total{outcome=\"deliver\"} 1",
        "nta7516_decisions_total{outcome=\"local\"} 1",
        "nta7516_hook_answers_total{action=\"reject\"} 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    for never in ["outcome=\"challenge\"", "outcome=\"portal\""] {
        assert!(!text.contains(never), "{never} in {text}");
    }

    let logged = util::log_lines_with(&held);
    let decision: Vec<&String> = logged.iter().filter(|l| l.contains(" decision ")).collect();
    assert_eq!(decision.len(), 1, "{logged:#?}");
    assert!(
        decision[0].contains("outcome=\"reject\""),
        "{}",
        decision[0]
    );
    assert!(
        decision[0].contains("cannot be held unaltered"),
        "{}",
        decision[0]
    );
    assert!(
        !decision[0].contains("outcome=\"challenge\""),
        "{}",
        decision[0]
    );
    let other = util::log_lines_with(&deliverable);
    assert!(
        other
            .iter()
            .any(|l| l.contains(" decision ") && l.contains("outcome=\"deliver\"")),
        "{other:#?}"
    );
}

async fn database_unavailable_is_5xx(b: Backend) {
    let gw = gateway(b, "[exemptions]\ndomains = [\"partner.test\"]\n").await;
    gw.gw.store.close().await;
    for name in [
        "hook-data-plain-one-recipient.json",
        "hook-data-utf8-8bit-two-external.json",
    ] {
        let r = gw.hook(&fixture(name)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{name}");
        assert_eq!(
            r.json()["type"],
            "urn:nta7516:problem:temporarily-unavailable"
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("accept"));
    }
    let health = gw.request(Method::GET, "/healthz", None, vec![]).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
}

async fn retried_submission_is_not_held_or_challenged_twice(b: Backend) {
    let gw = gateway(b, "[exemptions]\ndomains = [\"partner.test\"]\n").await;
    let req = fixture("hook-data-utf8-8bit-two-external.json");
    let first = gw.hook(&req).await.json();
    let second = gw.hook(&req).await.json();
    assert_eq!(first, second, "same submission, same answer");
    assert_eq!(gw.count("held_messages").await, 1);
    assert_eq!(gw.count("holds").await, 1);
    assert_eq!(gw.count("challenges").await, 1);
    // Another message to the same recipient shares the pending verification.
    let other = hook_request(
        "alice@zorg.test",
        &["bob@example.test"],
        &[("Subject", "second")],
        "hello\r\n",
    );
    assert_eq!(gw.hook(&other).await.json()["action"], "discard");
    assert_eq!(gw.count("held_messages").await, 2);
    assert_eq!(
        gw.count("challenges").await,
        1,
        "one pending verification per recipient"
    );
}

/// The same new submission hooked 20 times at once (a client retrying while the first call is still
/// running, or two gateways behind a balancer): one held copy, one hold, one challenge, and every call
/// answered with that hold — none with a 5xx because a concurrent call committed first.
async fn concurrent_identical_submissions_are_one_hold(b: Backend) {
    let gw = gateway(b, "").await;
    let req = fixture("hook-data-plain-one-recipient.json");
    let url = format!("http://{}/v1/mta-hook", gw.addr);
    let body = serde_json::to_vec(&req).unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (url, body) = (url.clone(), body.clone());
        calls.spawn(async move {
            let headers = [
                ("content-type", "application/json".to_string()),
                ("authorization", format!("Bearer {}", util::TOKEN)),
            ];
            util::http(Method::POST, &url, &headers, body).await
        });
    }
    let mut answers: Vec<serde_json::Value> = Vec::new();
    while let Some(r) = calls.join_next().await {
        let (status, _, body) = r.unwrap();
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        answers.push(serde_json::from_slice(&body).unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(gw.count("held_messages").await, 1);
    assert_eq!(gw.count("holds").await, 1);
    assert_eq!(gw.count("challenges").await, 1);
}

async fn retried_submission_keeps_held_recipients_held(b: Backend) {
    // First attempt: example.test insecure → portal. Retry after the domain became secure and exempt:
    // the recipient stays held (never both held and delivered).
    let dir_req = hook_request(
        "alice@zorg.test",
        &["bob@example.test", "me@zorg.test"],
        &[("Subject", "x")],
        "b\r\n",
    );
    let gw = Builder::new(b)
        .config(LOCAL)
        .tls(TlsTable::new(&[("example.test", TlsStatus::Insecure)]))
        .start()
        .await;
    let first = gw.hook(&dir_req).await.json();
    assert_eq!(first["modifications"][0]["type"], "deleteRecipient");
    gw.gw
        .store
        .add_exemption("domain", "example.test", "now trusted", None, 0)
        .await
        .unwrap();
    // Same store, new verdict source: start a second gateway on the same database.
    let url = gw.gw.config.storage.url.clone();
    let mut config = gw.gw.config.clone();
    config.storage.url = url;
    let gw2 = stalwart_nta7516::Gateway::start(
        config,
        secure(&["example.test"]),
        Arc::new(stalwart_nta7516::policy::DefaultPolicy),
        true,
    )
    .await
    .unwrap();
    let handled =
        stalwart_nta7516::submission::handle(&gw2, serde_json::from_value(dir_req).unwrap())
            .await
            .unwrap();
    let bob = handled
        .decisions
        .iter()
        .find(|d| d.recipient == "bob@example.test")
        .unwrap();
    assert_eq!(bob.outcome, stalwart_nta7516::policy::Outcome::Portal);
    assert!(bob
        .reasons
        .iter()
        .any(|r| r.code == stalwart_nta7516::policy::ReasonCode::AlreadyHeld));
    assert_eq!(serde_json::to_value(&handled.response).unwrap(), first);
}

const SECRET_LINES: &[&str] = &[
    "Subject: Uitslag MRI-scan patient Jansen",
    "BSN 123456782, geboren 12-03-1961",
    "Diagnose: ernstige hernia L4-L5, operatie gepland",
];

async fn held_content_is_encrypted_at_rest_and_decrypts_exactly(b: Backend) {
    let gw = gateway(b, "").await;
    let body = format!(
        "{}\r\n{}\r\n{}\r\n",
        SECRET_LINES[1], SECRET_LINES[2], "Groet, dr. Alice"
    );
    let req = hook_request(
        "alice@zorg.test",
        &["bob@example.test"],
        &[
            ("From", "alice@zorg.test"),
            ("To", "bob@example.test"),
            ("Subject", "Uitslag MRI-scan patient Jansen"),
        ],
        &body,
    );
    let v = gw.hook(&req).await.json();
    let id = util::held_ref(&v);

    // Force everything to disk, then look for any plaintext fragment anywhere.
    let dirs = match b {
        Backend::Sqlite => vec![gw.data_dir()],
        Backend::Postgres => {
            let Ok(data) = std::env::var("NTA7516_TEST_POSTGRES_DATA") else {
                panic!("NTA7516_TEST_POSTGRES_DATA must name the test server's data directory");
            };
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(
                &std::env::var("NTA7516_TEST_POSTGRES_URL").unwrap(),
            )
            .await
            .unwrap();
            sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
            // This test's database files and the write-ahead log.
            let url = gw.gw.config.storage.url.clone();
            let mut own = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let oid: i64 = sqlx::Row::get(
                &sqlx::query(
                    "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
                )
                .fetch_one(&mut own)
                .await
                .unwrap(),
                0,
            );
            let data = std::path::PathBuf::from(data);
            vec![data.join("base").join(oid.to_string()), data.join("pg_wal")]
        }
    };
    let needles: Vec<&str> = SECRET_LINES
        .iter()
        .flat_map(|l| [&l[..16], &l[l.len() - 16..]])
        .chain(["123456782", "hernia L4-L5", "MRI-scan", "Groet, dr. Alice"])
        .collect();
    // Control: a plaintext file in the scanned area must be found, so the scan itself is proven to work.
    let control_dir = gw.data_dir();
    std::fs::write(control_dir.join("control.txt"), SECRET_LINES[1]).unwrap();
    let mut dirs = dirs;
    if !dirs.contains(&control_dir) {
        dirs.push(control_dir.clone());
    }
    let mut scanned = 0;
    let mut hits = Vec::new();
    for dir in dirs {
        for file in walk(&dir) {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            scanned += bytes.len();
            for n in &needles {
                if memchr::memmem::find(&bytes, n.as_bytes()).is_some() {
                    hits.push((file.clone(), n.to_string()));
                }
            }
        }
    }
    assert!(
        hits.iter()
            .all(|(f, _)| f == &control_dir.join("control.txt"))
            && !hits.is_empty(),
        "plaintext found outside the control file: {hits:?}"
    );
    assert!(scanned > 10_000, "scanned only {scanned} bytes");

    // And it decrypts back byte-exact.
    let held = gw.gw.store.held(&id).await.unwrap().unwrap();
    let plain = gw
        .gw
        .master
        .open(&id, held.sealed.as_ref().unwrap())
        .unwrap();
    assert_eq!(plain, util::original_bytes(&req));
    assert_eq!(held.size as usize, plain.len());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn retention_deletes_held_content(b: Backend) {
    let gw = gateway(b, "[hold]\nretention_days = 7\n").await;
    let v = gw
        .hook(&fixture("hook-data-multipart-attachment.json"))
        .await
        .json();
    let id = util::held_ref(&v);
    let store: &Store = &gw.gw.store;
    let now = stalwart_nta7516::time::now();
    assert_eq!(
        store.purge_expired(now + 6 * 86_400).await.unwrap(),
        0,
        "not yet"
    );
    assert!(store.held(&id).await.unwrap().unwrap().sealed.is_some());
    assert_eq!(store.purge_expired(now + 7 * 86_400 + 1).await.unwrap(), 1);
    assert!(
        store.held(&id).await.unwrap().unwrap().sealed.is_none(),
        "content deleted"
    );
    assert_eq!(store.holds(&id).await.unwrap()[0].2, "expired");
    // The expiry is audited with the purge, once per recipient.
    let expired: Vec<_> = store
        .audit_for_message(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "expired")
        .collect();
    assert_eq!(expired.len(), store.holds(&id).await.unwrap().len());
    assert!(store.verify_audit().await.unwrap().ok());
}

/// Records the sender group the hook offers to the policy, per call; decides nothing.
#[derive(Default)]
struct GroupsSeen(std::sync::Mutex<Vec<Option<String>>>);
impl Policy for GroupsSeen {
    fn evaluate(&self, _raw: &[u8], _s: &str, rcpts: &[(&str, PolicyFacts)]) -> Vec<PolicyVerdict> {
        let mut seen = self.0.lock().unwrap();
        rcpts
            .iter()
            .map(|(_, f)| {
                seen.push(f.sender_group.clone());
                PolicyVerdict::default()
            })
            .collect()
    }
}

/// The held message's expiry, checked against its `held` audit record.
async fn expiry(gw: &TestGateway, id: String) -> i64 {
    use sqlx::Row;
    let row = sqlx::query("SELECT expires_at FROM held_messages WHERE id = $1")
        .bind(&id)
        .fetch_one(gw.gw.store.pool())
        .await
        .unwrap();
    let at: i64 = row.get(0);
    let records = gw.gw.store.audit_for_message(&id).await.unwrap();
    let held = records.iter().find(|r| r.kind == "held").unwrap();
    let details: serde_json::Value = serde_json::from_str(&held.details).unwrap();
    assert_eq!(details["expires_at"], stalwart_nta7516::time::rfc3339(at));
    at
}

async fn send_from(gw: &TestGateway, from: &str, subject: &str) -> String {
    let req = hook_request(
        from,
        &["bob@example.test"],
        &[("Subject", subject)],
        "x\r\n",
    );
    util::held_ref(&gw.hook(&req).await.json())
}

/// The admin's settings for the sender's domain (`domain_settings`) apply in the hook: its retention
/// sets the hold's expiry and its groups are offered to the policy. Senders of other domains, and the
/// same domain once the settings are deleted, get the configuration's values.
async fn sender_domain_settings_apply(b: Backend) {
    let policy = Arc::new(GroupsSeen::default());
    let gw = Builder::new(b)
        .config(
            "[organisation]\nlocal_domains = [\"zorg.test\", \"kliniek.test\"]\n\
             [organisation.sender_groups]\n\"@zorg.test\" = \"config-group\"\n\
             \"@kliniek.test\" = \"kliniek-config\"\n[hold]\nretention_days = 60\n",
        )
        .tls(secure(&["example.test"]))
        .policy(policy.clone())
        .start()
        .await;
    let store: &Store = &gw.gw.store;
    let now = stalwart_nta7516::time::now();
    store
        .put_settings(
            "test",
            "zorg.test",
            Some(14),
            &["nta".into(), "lab".into()],
            now,
        )
        .await
        .unwrap();
    // zorg.test has settings: 14 days, groups nta and lab.
    let before = stalwart_nta7516::time::now();
    let at = expiry(&gw, send_from(&gw, "alice@zorg.test", "one").await).await;
    assert!(
        (before + 14 * 86_400..=before + 14 * 86_400 + 5).contains(&at),
        "{at}"
    );
    // Domain case does not matter.
    send_from(&gw, "Boss@ZORG.test", "two").await;
    // kliniek.test has none: the configuration's retention and group.
    let before = stalwart_nta7516::time::now();
    let at = expiry(&gw, send_from(&gw, "carol@kliniek.test", "three").await).await;
    assert!(
        (before + 60 * 86_400..=before + 60 * 86_400 + 5).contains(&at),
        "{at}"
    );
    // Settings with a retention but no groups: the configuration's group, the settings' retention.
    store
        .put_settings("test", "kliniek.test", Some(3), &[], now)
        .await
        .unwrap();
    let before = stalwart_nta7516::time::now();
    let at = expiry(&gw, send_from(&gw, "carol@kliniek.test", "four").await).await;
    assert!(
        (before + 3 * 86_400..=before + 3 * 86_400 + 5).contains(&at),
        "{at}"
    );
    // Deleted settings: back to the configuration.
    assert!(store
        .delete_settings("test", "zorg.test", now)
        .await
        .unwrap());
    send_from(&gw, "alice@zorg.test", "five").await;

    assert_eq!(
        *policy.0.lock().unwrap(),
        vec![
            Some("nta,lab".to_string()),
            Some("nta,lab".to_string()),
            Some("kliniek-config".to_string()),
            Some("kliniek-config".to_string()),
            Some("config-group".to_string()),
        ]
    );
}

async fn metrics_expose_latency_and_decisions(b: Backend) {
    let gw = gateway(b, "[exemptions]\ndomains = [\"partner.test\"]\n").await;
    gw.hook(&fixture("hook-data-utf8-8bit-two-external.json"))
        .await;
    let r = gw.request(Method::GET, "/metrics", None, vec![]).await;
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("nta7516_hook_latency_seconds_count 1"),
        "{text}"
    );
    assert!(
        text.contains("nta7516_decisions_total{outcome=\"deliver\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("nta7516_decisions_total{outcome=\"challenge\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("nta7516_hook_answers_total{action=\"accept\"} 1"),
        "{text}"
    );
}

async fn verified_recipient_is_delivered(b: Backend) {
    let gw = gateway(b, "").await;
    let now = stalwart_nta7516::time::now();
    gw.gw
        .store
        .upsert_recipient(
            "bob@example.test",
            Some("+31612345678"),
            Some(now + 86_400),
            now,
        )
        .await
        .unwrap();
    let v = gw
        .hook(&fixture("hook-data-plain-one-recipient.json"))
        .await
        .json();
    assert_eq!(v["action"], "accept");
    assert_eq!(v["modifications"][0]["name"], "X-NTA7516-Id");
    // Expired verification: held again.
    gw.gw
        .store
        .upsert_recipient("bob@example.test", Some("+31612345678"), Some(now - 1), now)
        .await
        .unwrap();
    let v = gw
        .hook(&hook_request(
            "alice@zorg.test",
            &["bob@example.test"],
            &[("Subject", "y")],
            "z\r\n",
        ))
        .await
        .json();
    assert_eq!(v["action"], "discard");
}

both_backends!(
    only_local_recipients_accept_without_modifications,
    mixed_held_and_deliverable,
    all_held_is_discarded_with_250,
    insecure_domain_goes_to_portal,
    reject_is_a_clear_5xx,
    missing_or_wrong_token_is_401_and_stores_nothing,
    malformed_json_is_400_and_stores_nothing,
    latin1_body_is_refused_permanently_and_stores_nothing,
    unholdable_body_refusal_is_counted_and_logged_as_reject,
    database_unavailable_is_5xx,
    retried_submission_is_not_held_or_challenged_twice,
    retried_submission_keeps_held_recipients_held,
    concurrent_identical_submissions_are_one_hold,
    held_content_is_encrypted_at_rest_and_decrypts_exactly,
    retention_deletes_held_content,
    sender_domain_settings_apply,
    metrics_expose_latency_and_decisions,
    verified_recipient_is_delivered,
);

//! The real Sieve policy in the hook path, and its reload (admin API; SIGHUP is in tests/cli.rs):
//! one message, two recipients, the policy exempts one and requires 2FA for the other.

use crate::util;
use std::{path::Path, sync::Arc};

use crate::util::{hook_request, Backend, Builder, TlsTable, ADMIN_TOKEN};
use hyper::{Method, StatusCode};
use stalwart_nta7516::policy::{SievePolicy, TlsStatus};

const EXEMPT_PARTNER: &str = r#"require ["envelope", "vnd.stalwart.expressions", "vnd.nta7516"];
if envelope :domain :is "to" "partner.test" { eval "nta_exempt('contracted partner')"; }
else { eval "nta_require_2fa('external recipient')"; }
"#;

const EXEMPT_ALL: &str = r#"require ["vnd.stalwart.expressions", "vnd.nta7516"];
eval "nta_exempt('everyone exempt')";
"#;

const BROKEN: &str = r#"require ["vnd.stalwart.expressions", "vnd.nta7516"];
if has_bsn { eval "nta_exempt('x')"; }
"#;

fn tls() -> Arc<TlsTable> {
    TlsTable::new(&[
        ("example.test", TlsStatus::Secure),
        ("partner.test", TlsStatus::Secure),
    ])
}

/// A two-recipient message; `n` makes it a new message (a retried one keeps its earlier holds).
fn request(n: u32) -> serde_json::Value {
    hook_request(
        "dokter@zorg.test",
        &["bob@example.test", "carol@partner.test"],
        &[("From", "dokter@zorg.test"), ("Subject", "Uitslag")],
        &format!("Geachte collega, bericht {n}.\r\n"),
    )
}

/// Sends message `n`; returns (recipient, outcome, reasons) per recipient, sorted by recipient.
async fn decisions(gw: &util::TestGateway, n: u32) -> Vec<(String, String, String)> {
    let reply = gw.hook(&request(n)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    let id = v["modifications"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "X-NTA7516-Id"))
        .and_then(|m| m["value"].as_str())
        .map(str::to_string);
    match id {
        Some(id) => {
            let mut d = gw.gw.store.decisions(&id).await.unwrap();
            d.sort();
            d
        }
        None => panic!("no message id in {v}"),
    }
}

async fn hook_uses_the_real_policy(b: Backend) {
    let policy = SievePolicy::compile(EXEMPT_PARTNER, Path::new("test.sieve")).unwrap();
    let gw = Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(tls())
        .policy(Arc::new(policy))
        .start()
        .await;
    let d = decisions(&gw, 1).await;
    assert_eq!(d[0].0, "bob@example.test");
    assert_eq!(d[0].1, "challenge", "{d:?}");
    assert!(d[0].2.contains("external recipient"), "{}", d[0].2);
    assert_eq!(d[1].0, "carol@partner.test");
    assert_eq!(d[1].1, "deliver", "{d:?}");
    assert!(d[1].2.contains("contracted partner"), "{}", d[1].2);
}

const EXEMPT_PEERS: &str = r#"require ["variables", "environment", "vnd.stalwart.expressions", "vnd.nta7516"];
if environment :is "vnd.nta7516.peer" "yes" {
    set "provider" "${env.vnd.nta7516.peer_provider}";
    eval "nta_exempt('peer ' + provider)";
} else { eval "nta_require_2fa('external recipient')"; }
"#;

/// `vnd.nta7516.peer_provider` is the provider's name, as the admin listed it.
async fn policy_reads_the_peers_provider(b: Backend) {
    let policy = SievePolicy::compile(EXEMPT_PEERS, Path::new("test.sieve")).unwrap();
    let gw = Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(tls())
        .policy(Arc::new(policy))
        .start()
        .await;
    gw.gw
        .store
        .add_peer("partner.test", "Zorgnet", 0)
        .await
        .unwrap();
    let d = decisions(&gw, 1).await;
    assert_eq!(d[0].1, "challenge", "{d:?}");
    assert_eq!(d[1].0, "carol@partner.test");
    assert_eq!(d[1].1, "deliver", "{d:?}");
    assert!(d[1].2.contains("\"peer Zorgnet\""), "{}", d[1].2);
}

async fn reload_refuses_a_broken_policy_and_keeps_the_previous(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.sieve");
    std::fs::write(&file, EXEMPT_PARTNER).unwrap();
    let gw = Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .config(&format!(
            "[policy]\nfile = {:?}\n",
            file.display().to_string()
        ))
        .tls(tls())
        .policy(Arc::new(SievePolicy::load(&file).unwrap()))
        .start()
        .await;
    let reload = || {
        gw.request(
            Method::POST,
            "/v1/admin/policy/reload",
            Some(ADMIN_TOKEN),
            vec![],
        )
    };

    // A broken policy: refused with file:line:column, the previous one stays active.
    std::fs::write(&file, BROKEN).unwrap();
    let audited = gw.count("audit_log").await;
    let r = reload().await;
    assert_eq!(
        gw.count("audit_log").await,
        audited + 1,
        "the refused reload is audited"
    );
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains(&format!("{}:2:4: unknown test \"has_bsn\"", file.display())),
        "{detail}"
    );
    assert!(detail.contains("previous policy stays active"), "{detail}");
    let d = decisions(&gw, 1).await;
    assert_eq!(
        (d[0].1.as_str(), d[1].1.as_str()),
        ("challenge", "deliver"),
        "{d:?}"
    );

    // A good one is swapped in.
    std::fs::write(&file, EXEMPT_ALL).unwrap();
    let audited = gw.count("audit_log").await;
    let r = reload().await;
    assert_eq!(
        gw.count("audit_log").await,
        audited + 1,
        "the reload is audited"
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["reloaded"], true);
    let reply = gw.hook(&request(2)).await;
    let v = reply.json();
    assert_eq!(v["action"], "accept", "{v}");
    let mods = v["modifications"].as_array().cloned().unwrap_or_default();
    assert!(
        mods.iter().all(|m| m["type"] != "deleteRecipient"),
        "after the reload both recipients are exempt and delivered: {v}"
    );
}

both_backends!(
    policy_reads_the_peers_provider,
    hook_uses_the_real_policy,
    reload_refuses_a_broken_policy_and_keeps_the_previous
);

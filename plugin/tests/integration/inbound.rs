//! Received mail through `/v1/mta-hook/inbound`, on SQLite and PostgreSQL: real DKIM signatures (made
//! by mail-auth's signer here, and by dkimpy for the fixture `tests/fixtures/inbound/dkimpy-signed.eml`),
//! SPF, DMARC and `v=NTA7516-1` records served by the smarttls testkit's DNS (a signed zone, an
//! unsigned one), the gateway's real SmartTLS seam for the peer lookup, and the exact wire answers
//! Stalwart reads: accept with the summary header, quarantine to the quarantine mailbox, reject with a
//! clear text, tempfail. Every answer leaves its `received` audit records, and `audit report` shows them.

use std::{path::Path, sync::Arc};

use hyper::{Method, StatusCode};
use mail_auth::{
    common::{crypto::Ed25519Key, headers::HeaderWriter},
    dkim::DkimSigner,
};
use nta7516_smarttls::{testkit::World, SmartTls};
use serde_json::{json, Value};
use stalwart_nta7516::policy::{smarttls::SmartTlsVerdicts, SievePolicy};

use crate::util::{inbound_request, Backend, Builder, TestGateway, TOKEN};

/// A sending server that passes SPF for the test domains, and one that does not.
const GOOD_IP: &str = "192.0.2.10";
const BAD_IP: &str = "198.51.100.7";
const TLS13: Option<(&str, &str)> = Some(("TLSv1.3", "TLS13_AES_256_GCM_SHA384"));

struct Setup {
    _world: World,
    gw: TestGateway,
    /// `peer.<signed zone>`: SPF, DKIM (Ed25519, selector s1), DMARC p=reject, and an NTA 7516 record.
    peer: String,
    /// `plain.<unsigned zone>`: SPF, DKIM, DMARC p=reject; not a peer.
    plain: String,
    key: Vec<u8>,
}

fn dkim_record(pkcs8: &[u8]) -> String {
    use base64::Engine as _;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).unwrap();
    let p = base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref());
    format!("v=DKIM1; k=ed25519; p={p}")
}

/// The production setup: a validating unbound between the gateway and the zones (so the unsigned
/// zone is provably insecure, and the DMARC tree walk gets real denials). `None`: unbound is missing
/// (skipped loudly; under CI a failure).
async fn setup(backend: Backend, policy: Option<&str>) -> Option<Setup> {
    let key = Ed25519Key::generate_pkcs8().unwrap();
    let mut w = World::behind_unbound().await?;
    let peer = w.name("peer");
    let plain = format!("plain.{}", w.plain_zone.origin());
    let spf = format!("v=spf1 ip4:{GOOD_IP} -all");
    w.zone.txt(&peer, &spf);
    w.zone.txt(
        &peer,
        "v=NTA7516-1;startdate=2024-01;enddate=2099-12;provider=Zorgmail Test",
    );
    w.zone
        .txt(&format!("s1._domainkey.{peer}"), &dkim_record(&key));
    w.zone.txt(&format!("_dmarc.{peer}"), "v=DMARC1; p=reject");
    w.plain_zone.txt(&plain, &spf);
    w.plain_zone
        .txt(&format!("s1._domainkey.{plain}"), &dkim_record(&key));
    w.plain_zone
        .txt(&format!("_dmarc.{plain}"), "v=DMARC1; p=reject");
    // The fixture signed by dkimpy: its own domain and key.
    w.zone2 = nta7516_smarttls::testkit::dns_server::ZoneBuilder::new("dkimpy.test");
    w.zone2.txt("dkimpy.test", &spf);
    w.zone2.txt("_dmarc.dkimpy.test", "v=DMARC1; p=reject");
    let record = std::fs::read_to_string(fixture_path("dkimpy-py._domainkey.txt")).unwrap();
    w.zone2.txt("py._domainkey.dkimpy.test", record.trim());
    let cfg = w.start_dns().await;
    let prober = SmartTls::new(cfg.clone()).unwrap();
    let mut b = Builder::new(backend)
        .config(&format!(
            "[organisation]\nlocal_domains = [\"zorg.test\"]\n\
             [inbound]\nenabled = true\nquarantine_mailbox = \"quarantaine@zorg.test\"\n\
             authserv_id = \"mx.zorg.test\"\n\
             [smarttls]\nresolver = \"{}\"\ndns_timeout_ms = 2000\n",
            cfg.resolver.unwrap()
        ))
        .tls(Arc::new(SmartTlsVerdicts(prober)));
    if let Some(src) = policy {
        b = b.policy(Arc::new(
            SievePolicy::compile(src, Path::new("inbound.sieve")).unwrap(),
        ));
    }
    Some(Setup {
        _world: w,
        gw: b.start().await,
        peer,
        plain,
        key,
    })
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/inbound")
        .join(name)
}

/// Stalwart's request for a signed message from `domain` (MAIL FROM `bounce@domain`) to one local
/// recipient, sent from `ip`.
fn message(s: &Setup, domain: &str, ip: &str, tls: Option<(&str, &str)>, body: &str) -> Value {
    let raw = signed(s, domain, body);
    let from = format!("bounce@{domain}");
    inbound_request(ip, tls, &from, &["cardio@zorg.test"], &raw)
}

/// A message from `from_domain`, DKIM-signed by mail-auth with the test key (selector s1).
fn signed(s: &Setup, from_domain: &str, body: &str) -> Vec<u8> {
    let msg = format!(
        "From: Praktijk <praktijk@{from_domain}>\r\nTo: cardio@zorg.test\r\n\
         Subject: Verwijzing\r\nDate: Tue, 01 Dec 2026 10:00:00 +0100\r\n\
         Message-ID: <{}@{from_domain}>\r\n\r\n{body}",
        rand_id()
    );
    let sig = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&s.key).unwrap())
        .domain(from_domain)
        .selector("s1")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(msg.as_bytes())
        .unwrap();
    format!("{}{msg}", sig.to_header()).into_bytes()
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "m{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

async fn post(gw: &TestGateway, req: &Value) -> (StatusCode, Value) {
    let reply = gw
        .request(
            Method::POST,
            "/v1/mta-hook/inbound",
            Some(TOKEN),
            serde_json::to_vec(req).unwrap(),
        )
        .await;
    let v = if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    };
    (reply.status, v)
}

/// The `received` records of one answer's message.
async fn receipts(gw: &TestGateway, message_ref: &str) -> Vec<Value> {
    gw.gw
        .store
        .audit_for_message(message_ref)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.kind == "received")
        .map(|r| r.details_json())
        .collect()
}

fn summary_header(answer: &Value) -> String {
    answer["modifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "addHeader" && m["name"] == "X-NTA7516-Inbound")
        .and_then(|m| m["value"].as_str())
        .unwrap_or_else(|| panic!("no summary header in {answer}"))
        .to_string()
}

fn ref_of(header: &str) -> String {
    header.rsplit("ref=").next().unwrap().trim().to_string()
}

async fn a_peer_over_tls_with_dmarc_pass_is_accepted_with_the_header(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    let req = message(&s, &s.peer, GOOD_IP, TLS13, "Geachte collega,\r\n");
    let (status, v) = post(&s.gw, &req).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["action"], "accept", "{v}");
    assert_eq!(v.get("response"), None, "{v}");
    let mods = v["modifications"].as_array().unwrap();
    assert_eq!(mods.len(), 1, "only the header: {v}");
    let header = summary_header(&v);
    assert_eq!(
        header,
        format!(
            "mx.zorg.test; tls=TLSv1.3; spf=pass smtp.mailfrom=bounce@{p}; dkim=pass header.d={p}; \
             dmarc=pass header.from={p}; arc=none; peer=yes; action=accept; ref={}",
            ref_of(&header),
            p = s.peer
        )
    );
    let r = receipts(&s.gw, &ref_of(&header)).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["action"], "accept");
    assert_eq!(r[0]["peer"]["status"], "yes");
    assert_eq!(r[0]["peer"]["source"], "dns_record");
    assert_eq!(r[0]["tls"]["version"], "TLSv1.3");
    assert_eq!(r[0]["auth"]["dkim"][0]["result"], "pass");
    assert_eq!(r[0]["auth"]["dmarc"]["policy"], "reject");
    assert_eq!(r[0]["client_ip"], GOOD_IP);
    let metrics =
        s.gw.request(Method::GET, "/metrics", None, Vec::new())
            .await;
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("nta7516_received_total{action=\"accept\"} 1"),
        "{text}"
    );
}

async fn a_peer_without_tls_is_refused_with_5_7_10(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    let req = message(&s, &s.peer, GOOD_IP, None, "Geachte collega,\r\n");
    let (status, v) = post(&s.gw, &req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["action"], "reject", "{v}");
    assert_eq!(v["response"]["status"], 550);
    assert_eq!(v["response"]["enhanced_status"], "5.7.10");
    let text = v["response"]["message"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "NTA 7516: {} is an NTA 7516 peer (Zorgmail Test) but its mail arrived without TLS; TLS 1.2 or newer is required (ref r-",
            s.peer
        )),
        "{text}"
    );
    assert_eq!(v.get("modifications"), None, "{v}");
    let message_ref = text.rsplit("(ref ").next().unwrap().trim_end_matches(')');
    let r = receipts(&s.gw, message_ref).await;
    assert_eq!(r.len(), 1, "a refused message is logged too");
    assert_eq!(r[0]["action"], "reject");
    assert_eq!(r[0]["reasons"][0]["code"], "peer_without_tls");
    assert_eq!(r[0]["tls"], Value::Null);
}

async fn a_modified_body_fails_dkim_and_dmarc_p_reject_refuses(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    // Signed in the unsigned zone, then altered on the way; sent from an address SPF does not allow.
    let raw = signed(&s, &s.plain, "Originele tekst.\r\n");
    let text = String::from_utf8(raw)
        .unwrap()
        .replace("Originele", "Gewijzigde");
    let req = inbound_request(
        BAD_IP,
        TLS13,
        &format!("bounce@{}", s.plain),
        &["cardio@zorg.test"],
        text.as_bytes(),
    );
    let (_, v) = post(&s.gw, &req).await;
    assert_eq!(v["action"], "reject", "{v}");
    assert_eq!(v["response"]["status"], 550);
    assert_eq!(v["response"]["enhanced_status"], "5.7.1");
    let msg = v["response"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("DMARC fails for {} (p=reject)", s.plain)),
        "{msg}"
    );
    let message_ref = msg.rsplit("(ref ").next().unwrap().trim_end_matches(')');
    let r = &receipts(&s.gw, message_ref).await[0];
    assert_eq!(
        r["auth"]["dkim"][0]["result"], "neutral",
        "body hash mismatch: {r}"
    );
    assert!(
        r["auth"]["dkim"][0]["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("body"),
        "{r}"
    );
    assert_eq!(r["auth"]["spf_mail_from"], "fail");
    assert_eq!(r["auth"]["dmarc"]["result"], "fail");
    assert_eq!(r["peer"]["status"], "no");
    // The same message unaltered from the right server: accepted (the unsigned zone works as well).
    let req = message(&s, &s.plain, GOOD_IP, None, "Originele tekst.\r\n");
    let (_, v) = post(&s.gw, &req).await;
    assert_eq!(v["action"], "accept", "{v}");
    assert!(summary_header(&v).contains("tls=none; spf=pass"), "{v}");
}

async fn a_signature_made_by_dkimpy_verifies(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    let raw = std::fs::read(fixture_path("dkimpy-signed.eml")).unwrap();
    let req = inbound_request(
        GOOD_IP,
        TLS13,
        "praktijk@dkimpy.test",
        &["cardio@zorg.test"],
        &raw,
    );
    let (_, v) = post(&s.gw, &req).await;
    assert_eq!(v["action"], "accept", "{v}");
    let header = summary_header(&v);
    assert!(
        header.contains("dkim=pass header.d=dkimpy.test; dmarc=pass header.from=dkimpy.test"),
        "{header}: {:?}",
        receipts(&s.gw, &ref_of(&header)).await
    );
    // One byte changed in the body breaks dkimpy's signature too.
    let text = String::from_utf8(raw)
        .unwrap()
        .replace("verwijzing", "verwijzinG");
    let req = inbound_request(
        BAD_IP,
        TLS13,
        "praktijk@dkimpy.test",
        &["cardio@zorg.test"],
        text.as_bytes(),
    );
    let (_, v) = post(&s.gw, &req).await;
    assert_eq!(v["action"], "reject", "{v}");
}

const QUARANTINE_BSN: &str = r#"require ["environment", "vnd.stalwart.expressions", "vnd.nta7516"];
if allof (environment :is "vnd.nta7516.direction" "inbound",
          environment :is "vnd.nta7516.peer" "no",
          eval "nta_has_bsn()") {
    eval "nta_quarantine('BSN from a sender that is not an NTA 7516 peer')";
}
"#;

async fn the_policy_quarantines_into_the_quarantine_mailbox(b: Backend) {
    let Some(s) = setup(b, Some(QUARANTINE_BSN)).await else {
        return;
    };
    let raw = signed(&s, &s.plain, "BSN 111222333 van de patient.\r\n");
    let mut req = inbound_request(
        GOOD_IP,
        TLS13,
        &format!("bounce@{}", s.plain),
        &["cardio@zorg.test", "poli@zorg.test"],
        &raw,
    );
    // A forged verdict in the message: removed, never passed on.
    req["message"]["headers"].as_array_mut().unwrap().insert(
        0,
        json!(["X-NTA7516-Inbound", " forged; peer=yes; action=accept\r\n"]),
    );
    let size = req["message"]["size"].as_u64().unwrap()
        + "X-NTA7516-Inbound: forged; peer=yes; action=accept\r\n".len() as u64;
    req["message"]["size"] = json!(size);
    let (_, v) = post(&s.gw, &req).await;
    assert_eq!(v["action"], "accept", "{v}");
    let mods = v["modifications"].as_array().unwrap();
    let header = summary_header(&v);
    let r = ref_of(&header);
    assert_eq!(
        mods,
        &vec![
            json!({"type": "deleteHeader", "index": 1, "name": "X-NTA7516-Inbound"}),
            json!({"type": "addHeader", "name": "X-NTA7516-Inbound", "value": header}),
            json!({"type": "addHeader", "name": "X-NTA7516-Quarantine",
                   "value": format!("{r}; original-recipients=cardio@zorg.test, poli@zorg.test")}),
            json!({"type": "addRecipient", "value": "quarantaine@zorg.test"}),
            json!({"type": "deleteRecipient", "value": "cardio@zorg.test"}),
            json!({"type": "deleteRecipient", "value": "poli@zorg.test"}),
        ]
    );
    assert!(header.contains("peer=no; action=quarantine"), "{header}");
    let records = receipts(&s.gw, &r).await;
    assert_eq!(records.len(), 2, "one per recipient");
    for rec in &records {
        assert_eq!(rec["action"], "quarantine");
        assert_eq!(rec["quarantine_mailbox"], "quarantaine@zorg.test");
        assert_eq!(rec["reasons"][0]["code"], "policy_quarantine");
    }
    // The report of the message: both recipients, received and quarantined, with the evidence.
    let report = s.gw.gw.store.audit_report(&r).await.unwrap().unwrap();
    assert!(report.records_intact);
    assert_eq!(report.recipients.len(), 2);
    for rr in &report.recipients {
        assert_eq!(rr.outcome.as_deref(), Some("received_quarantine"));
        let rec = rr.received.as_ref().unwrap();
        assert_eq!(rec["client_ip"], GOOD_IP);
        assert_eq!(rec["auth"]["dmarc"]["result"], "pass");
    }
    let line = &report.timeline[0].summary;
    assert!(
        line.starts_with(&format!(
            "received from {GOOD_IP} (mail.sender.test) over TLSv1.3; spf=pass dkim={}:pass dmarc=pass ({}) peer=no: quarantine (policy for cardio@zorg.test: BSN from a sender",
            s.plain, s.plain
        )),
        "{line}"
    );
}

async fn wrong_token_disabled_checks_and_submissions(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    let raw = signed(&s, &s.peer, "x\r\n");
    let req = inbound_request(GOOD_IP, TLS13, "a@b.test", &["cardio@zorg.test"], &raw);
    let reply =
        s.gw.request(
            Method::POST,
            "/v1/mta-hook/inbound",
            Some("wrong"),
            serde_json::to_vec(&req).unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply =
        s.gw.request(
            Method::POST,
            "/v1/mta-hook/inbound",
            Some(TOKEN),
            b"{\"context\":".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json()["type"],
        "urn:nta7516:problem:malformed-hook-request"
    );
    // An authenticated submission on the inbound hook is let through unchanged and not logged.
    let mut sub = req.clone();
    sub["context"]["sasl"] = json!({"login": "alice@zorg.test"});
    let (_, v) = post(&s.gw, &sub).await;
    assert_eq!(v, json!({"action": "accept"}));
    assert_eq!(s.gw.count("audit_log").await, 0, "nothing recorded");
    // Inbound checks off: 503, so Stalwart tempfails instead of letting mail in unchecked.
    let off = Builder::new(b).start().await;
    let (status, v) = post(&off, &req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(off.count("audit_log").await, 0);
}

async fn a_bounce_is_judged_by_its_helo_and_its_signature(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    // A DSN (null sender) signed by the unsigned-zone domain, from a server whose EHLO name is that
    // domain: SPF is the EHLO identity's (RFC 7208 §2.4), DMARC passes through the DKIM signature.
    let raw = signed(&s, &s.plain, "Delivery report.\r\n");
    let mut req = inbound_request(GOOD_IP, TLS13, "", &["cardio@zorg.test"], &raw);
    req["context"]["client"]["helo"] = json!(s.plain);
    let (_, v) = post(&s.gw, &req).await;
    assert_eq!(v["action"], "accept", "{v}");
    let header = summary_header(&v);
    assert!(
        header.contains(&format!(
            "spf=pass smtp.mailfrom=<>; dkim=pass header.d={p}; dmarc=pass header.from={p}",
            p = s.plain
        )),
        "{header}"
    );
    let r = &receipts(&s.gw, &ref_of(&header)).await[0];
    assert_eq!(r["auth"]["spf_helo"], "pass", "{r}");
    assert_eq!(r["helo"], s.plain.as_str());
}

async fn a_peer_whose_dmarc_cannot_be_checked_is_tempfailed(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    // Same world, but the verifier's resolver is down (the peer record still resolves through the
    // prober): DMARC is a temporary error, so the peer's message is neither let in nor refused.
    let dead = Builder::new(b)
        .config(
            "[organisation]\nlocal_domains = [\"zorg.test\"]\n[inbound]\nenabled = true\n\
             [smarttls]\nresolver = \"127.0.0.1:9\"\ndns_timeout_ms = 300\n[hook]\ntls_budget_ms = 1500\n",
        )
        .tls(s.gw.gw.tls.clone())
        .start()
        .await;
    let req = message(&s, &s.peer, GOOD_IP, TLS13, "Geachte collega,\r\n");
    let (status, v) = post(&dead, &req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["action"], "reject", "{v}");
    assert_eq!(v["response"]["status"], 451, "{v}");
    assert_eq!(v["response"]["enhanced_status"], "4.7.0");
    let text = v["response"]["message"].as_str().unwrap();
    assert!(text.contains("dmarc=temperror"), "{text}");
    let message_ref = text.rsplit("(ref ").next().unwrap().trim_end_matches(')');
    let r = &receipts(&dead, message_ref).await[0];
    assert_eq!(r["action"], "tempfail");
    assert_eq!(r["peer"]["status"], "yes");
}

async fn an_altered_8bit_body_counts_no_signature(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    // Stalwart's lossy UTF-8 conversion (a real payload): the body is not what was signed.
    let mut req = crate::util::fixture("hook-data-latin1-8bit-lossy.json");
    req["context"].as_object_mut().unwrap().remove("sasl");
    req["envelope"]["to"] = json!([{"address": "cardio@zorg.test"}]);
    let (_, v) = post(&s.gw, &req).await;
    assert_eq!(v["action"], "accept", "{v}");
    let header = summary_header(&v);
    assert!(header.contains("dkim=none"), "{header}");
    let r = &receipts(&s.gw, &ref_of(&header)).await[0];
    assert_eq!(r["auth"]["body_altered"], true, "{r}");
    assert_eq!(r["auth"]["dkim"], json!([]));
}

async fn an_unavailable_database_tempfails_and_answers_nothing_else(b: Backend) {
    let Some(s) = setup(b, None).await else {
        return;
    };
    // The receipt cannot be recorded: 503, so Stalwart answers 451 and the sending server retries.
    // No accept (the message would be received without its record), no reject (it was never judged).
    s.gw.gw.store.close().await;
    for req in [
        message(&s, &s.peer, GOOD_IP, TLS13, "Geachte collega,\r\n"),
        message(&s, &s.plain, BAD_IP, None, "Hallo.\r\n"),
    ] {
        let (status, v) = post(&s.gw, &req).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["type"], "urn:nta7516:problem:temporarily-unavailable");
        assert!(!v.to_string().contains("\"accept\""), "{v}");
    }
}

both_backends!(
    a_peer_over_tls_with_dmarc_pass_is_accepted_with_the_header,
    a_peer_without_tls_is_refused_with_5_7_10,
    a_modified_body_fails_dkim_and_dmarc_p_reject_refuses,
    a_signature_made_by_dkimpy_verifies,
    the_policy_quarantines_into_the_quarantine_mailbox,
    wrong_token_disabled_checks_and_submissions,
    a_bounce_is_judged_by_its_helo_and_its_signature,
    a_peer_whose_dmarc_cannot_be_checked_is_tempfailed,
    an_altered_8bit_body_counts_no_signature,
    an_unavailable_database_tempfails_and_answers_nothing_else,
);

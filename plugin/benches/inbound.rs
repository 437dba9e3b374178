//! The inbound hook (`/v1/mta-hook/inbound`) over HTTP on loopback: a real gateway (SQLite in WAL
//! mode, synchronous=FULL, or PostgreSQL), a validating unbound in front of the testkit's signed zones,
//! a 50 KB message with one DKIM signature (Ed25519 or RSA-2048), SPF and DMARC records, the sender an
//! NTA 7516 peer. The caches are warmed first (as on a server that has seen the sender before), then
//! each request is a full verification (SPF EHLO and MAIL FROM, DKIM, DMARC, the peer lookup), the
//! decision and its `received` audit record committed before the answer.
//!
//! Reported: latency p50/p99/p999 for sequential calls and for 8 concurrent clients, and the process's
//! CPU per call (the load generator runs in the same process, so this is an upper bound).
//!
//! Run: `cargo bench -p stalwart-nta7516 --bench inbound -- [--db sqlite|postgres] [--n N] [--rsa]`
//! (PostgreSQL: `NTA7516_TEST_POSTGRES_URL`; unbound from Debian's `unbound` package).

#[path = "../tests/integration/util/mod.rs"]
mod util;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hyper::Method;
use mail_auth::{
    common::{
        crypto::{Ed25519Key, RsaKey, Sha256},
        headers::HeaderWriter,
    },
    dkim::DkimSigner,
};
use nta7516_smarttls::{testkit::World, SmartTls};
use stalwart_nta7516::policy::smarttls::SmartTlsVerdicts;
use util::{inbound_request, Backend, Builder, TestGateway, TOKEN};

const IP: &str = "192.0.2.10";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// User + system CPU of this process.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // After the command name: state, then numbers (tpgid may be -1); utime and stime are fields 14
    // and 15 of the line, the 12th and 13th after the name.
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

fn body_50k() -> String {
    let mut s = String::with_capacity(51_000);
    let mut i = 0;
    while s.len() < 50_000 {
        s.push_str(&format!(
            "Regel {i:05}: uitslag laboratoriumonderzoek, waarden binnen de norm.\r\n"
        ));
        i += 1;
    }
    s
}

/// The signed message and the DKIM key record for `domain`.
fn signed(domain: &str, rsa: bool) -> (Vec<u8>, String) {
    use base64::Engine as _;
    let msg = format!(
        "From: Lab <lab@{domain}>\r\nTo: cardio@zorg.test\r\nSubject: Uitslag\r\n\
         Date: Tue, 01 Dec 2026 10:00:00 +0100\r\nMessage-ID: <bench@{domain}>\r\n\r\n{}",
        body_50k()
    );
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    if rsa {
        let der = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/inbound/bench-rsa2048.pkcs1.der"
        ))
        .expect("the bench's RSA key (tests/fixtures/inbound/bench-rsa2048.pkcs1.der)");
        let der = rustls_pki_types::PrivatePkcs1KeyDer::from(der);
        let key =
            RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs1(der)).unwrap();
        let record = format!("v=DKIM1; k=rsa; p={}", b64(&key.public_key()));
        (sign_with(key, domain, &msg), record)
    } else {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
        let record = format!("v=DKIM1; k=ed25519; p={}", b64(&key.public_key()));
        (sign_with(key, domain, &msg), record)
    }
}

/// The message with its DKIM-Signature header (selector s1).
fn sign_with(key: impl mail_auth::common::crypto::SigningKey, domain: &str, msg: &str) -> Vec<u8> {
    let sig = DkimSigner::from_key(key)
        .domain(domain)
        .selector("s1")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(msg.as_bytes())
        .unwrap();
    format!("{}{msg}", sig.to_header()).into_bytes()
}

async fn call(gw: &TestGateway, body: &[u8]) -> Duration {
    let t = Instant::now();
    let r = gw
        .request(
            Method::POST,
            "/v1/mta-hook/inbound",
            Some(TOKEN),
            body.to_vec(),
        )
        .await;
    let elapsed = t.elapsed();
    assert_eq!(r.status, hyper::StatusCode::OK);
    let v = r.json();
    assert_eq!(v["action"], "accept", "{v}");
    let header = v["modifications"][0]["value"].as_str().unwrap();
    assert!(
        header.contains("dkim=pass") && header.contains("dmarc=pass"),
        "{header}"
    );
    elapsed
}

fn report(label: &str, mut lat: Vec<Duration>, cpu: Duration) {
    lat.sort();
    println!(
        "{label}: {} calls, p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, CPU {:.3} ms/call (process, client included)",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        cpu.as_secs_f64() * 1000.0 / lat.len() as f64
    );
}

/// The hook's own work without HTTP: the request parsed, then `inbound::handle` (facts, policy,
/// decision, the committed `received` record, the answer).
async fn handle_only(gw: &TestGateway, req: &serde_json::Value, n: usize) {
    let body = serde_json::to_vec(req).unwrap();
    let mut lat = Vec::with_capacity(n);
    let c0 = cpu();
    for _ in 0..n {
        let t = Instant::now();
        let parsed: stalwart_nta7516::stalwart::hook::Request =
            serde_json::from_slice(&body).unwrap();
        let handled = stalwart_nta7516::inbound::handle(&gw.gw, parsed)
            .await
            .unwrap();
        lat.push(t.elapsed());
        assert_eq!(
            handled.decision.unwrap().action,
            stalwart_nta7516::policy::Action::Accept
        );
    }
    report("  parse + inbound::handle, no HTTP", lat, cpu() - c0);
}

/// Where a call's time goes: the verification alone, the peer lookup alone, one audit append alone.
async fn breakdown(gw: &TestGateway, raw: &[u8], peer: &str, n: usize) {
    let verifier = gw.gw.inbound.as_ref().unwrap();
    let from = format!("bounce@{peer}");
    let helo = format!("mx.{peer}");
    let env = stalwart_nta7516::inbound::verify::Envelope {
        ip: IP.parse().unwrap(),
        helo: &helo,
        mail_from: &from,
    };
    let mut lat = Vec::with_capacity(n);
    let c0 = cpu();
    for _ in 0..n {
        let t = Instant::now();
        let r = verifier.verify(raw, false, &env).await;
        lat.push(t.elapsed());
        assert_eq!(r.dkim_summary(), stalwart_nta7516::policy::AuthResult::Pass);
    }
    report("  verify only (mail-auth, warm caches)", lat, cpu() - c0);
    let mut lat = Vec::with_capacity(n);
    let c0 = cpu();
    for _ in 0..n {
        let t = Instant::now();
        gw.gw.tls.peer_record(peer).await;
        lat.push(t.elapsed());
    }
    report("  peer record only (SmartTLS DNS)", lat, cpu() - c0);
    let mut lat = Vec::with_capacity(n);
    let c0 = cpu();
    for i in 0..n {
        let event = stalwart_nta7516::audit::Event::Admin {
            actor: "bench".into(),
            action: "bench".into(),
            target: format!("t{i}"),
            message_ref: None,
            details: serde_json::json!({}),
        };
        let t = Instant::now();
        gw.gw.store.append_audit(&[event]).await.unwrap();
        lat.push(t.elapsed());
    }
    report("  audit append only (one record)", lat, cpu() - c0);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    let backend = match flag("--db").as_deref() {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let n: usize = flag("--n").map_or(2000, |v| v.parse().expect("--n N"));
    let rsa = args.iter().any(|a| a == "--rsa");
    let mut w = World::behind_unbound().await.expect("unbound is needed");
    let peer = w.name("lab");
    let (raw, record) = signed(&peer, rsa);
    w.zone.txt(&peer, &format!("v=spf1 ip4:{IP} -all"));
    w.zone.txt(
        &peer,
        "v=NTA7516-1;startdate=2024-01;enddate=2099-12;provider=Bench",
    );
    w.zone.txt(&format!("s1._domainkey.{peer}"), &record);
    w.zone.txt(&format!("_dmarc.{peer}"), "v=DMARC1; p=reject");
    // The sending server's EHLO name: an address, no SPF record of its own (the usual case; the
    // denial is cached like an answer).
    w.zone.addr(&format!("mx.{peer}"), IP.parse().unwrap());
    let cfg = w.start_dns().await;
    let gw = Builder::new(backend)
        .config(&format!(
            "[organisation]\nlocal_domains = [\"zorg.test\"]\n[inbound]\nenabled = true\n\
             [smarttls]\nresolver = \"{}\"\n",
            cfg.resolver.unwrap()
        ))
        .tls(Arc::new(SmartTlsVerdicts(SmartTls::new(cfg).unwrap())))
        .start()
        .await;
    let mut req = inbound_request(
        IP,
        Some(("TLSv1.3", "TLS13_AES_256_GCM_SHA384")),
        &format!("bounce@{peer}"),
        &["cardio@zorg.test"],
        &raw,
    );
    req["context"]["client"]["helo"] = serde_json::json!(format!("mx.{peer}"));
    let body = serde_json::to_vec(&req).unwrap();
    for _ in 0..50 {
        call(&gw, &body).await;
    }
    let c0 = cpu();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        lat.push(call(&gw, &body).await);
    }
    let key = if rsa { "RSA-2048" } else { "Ed25519" };
    report(
        &format!("inbound sequential ({key}, {:?})", backend),
        lat,
        cpu() - c0,
    );
    breakdown(&gw, &raw, &peer, n).await;
    handle_only(&gw, &req, n).await;
    let gw = Arc::new(gw);
    let body = Arc::new(body);
    let c0 = cpu();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (gw, body) = (gw.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for _ in 0..n / 8 {
                lat.push(call(&gw, &body).await);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    report(
        &format!("inbound 8 clients ({key}, {:?})", backend),
        all,
        cpu() - c0,
    );
}

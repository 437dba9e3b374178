//! `doctor` against real servers on loopback: a DNSSEC-signed zone served by an in-process
//! hickory-server, STARTTLS servers with rcgen certificates and an MTA-STS HTTPS server (the
//! smarttls testkit). One domain passes every check, one fails on several points, one has more than
//! ten SPF lookups, one sits in a zone whose signatures do not validate.

use base64::Engine as _;
use nta7516_smarttls::testkit::{LeafKind, SmtpServerOpts, World};
use nta7516_smarttls::SmartTlsConfig;
use ring::signature::{Ed25519KeyPair, KeyPair};
use stalwart_nta7516::doctor::{run, DoctorOptions, DoctorReport, Status};

fn dkim_ed25519_record() -> String {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let p = base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref());
    format!("v=DKIM1; k=ed25519; p={p}")
}

struct Setup {
    world: World,
    cfg: SmartTlsConfig,
    good: String,
    bad: String,
    heavy: String,
    mx_good: String,
    mx_expired: String,
    mx_plain: String,
}

async fn setup() -> Setup {
    let mut w = World::new().await;
    w.legacy_probe = false;
    // A good MX: PKIX-valid certificate, TLSA 3 1 1 of its key.
    let mx_good = w.name("mx-good");
    let cert = w.pki.leaf(&[&mx_good], LeafKind::Good);
    let spki = cert.tlsa_311();
    w.mx_server_with("mx-good", SmtpServerOpts::tls(cert, &mx_good))
        .await;
    w.tlsa(&mx_good, 3, 1, 1, &spki);
    // Bad MX hosts: an expired certificate, and one without STARTTLS. No TLSA.
    let mx_expired = w.mx_server("mx-expired", LeafKind::Expired).await;
    let mx_plain = w
        .mx_server_with("mx-plain", SmtpServerOpts::plaintext("mx-plain"))
        .await;

    // good.<zone>: everything right.
    let good = w.domain("good", &[(10, &mx_good)]);
    w.zone.txt(&good, "v=spf1 mx ip4:192.0.2.0/24 -all");
    w.zone
        .txt(&format!("s1._domainkey.{good}"), &dkim_ed25519_record());
    w.zone.txt(
        &format!("_dmarc.{good}"),
        &format!("v=DMARC1; p=reject; rua=mailto:dmarc@{good}"),
    );
    w.zone.txt(
        &format!("_smtp._tls.{good}"),
        &format!("v=TLSRPTv1; rua=mailto:tls@{good}"),
    );
    w.zone.txt(
        &good,
        &format!("v=NTA7516-1;startdate=2024-01;enddate=2099-12;provider=Zorgmail Test;ntamx=10 {mx_good}"),
    );
    w.mta_sts(
        &good,
        "20260101",
        &format!("version: STSv1\nmode: enforce\nmx: {mx_good}\nmax_age: 604800\n"),
    )
    .await;

    // bad.<zone>: two SPF records, DMARC p=none, a revoked DKIM key, no MTA-STS, no TLS-RPT,
    // an expired NTA record; MX with an expired certificate and MX without STARTTLS, no TLSA.
    let bad = w.domain("bad", &[(10, &mx_expired), (20, &mx_plain)]);
    w.zone.txt(&bad, "v=spf1 mx -all");
    w.zone.txt(&bad, "v=spf1 +all");
    w.zone
        .txt(&format!("s1._domainkey.{bad}"), "v=DKIM1; k=rsa; p=");
    w.zone.txt(&format!("_dmarc.{bad}"), "v=DMARC1; p=none");
    w.zone.txt(
        &bad,
        "v=NTA7516-1;startdate=2019-01;enddate=2020-12;provider=Old Provider",
    );
    // Test-server quirk (hickory-server NSEC, see the reference notes on hickory 0.26): a denial two
    // or more labels below the closest existing name does not validate. Give `_smtp._tls.bad` an
    // existing parent so that "no TLS-RPT record" is a secure NXDOMAIN, as from a real signed zone.
    w.zone
        .txt(&format!("_tls.{bad}"), "testkit: parent of a denied name");

    // heavy.<zone>: SPF with 12 DNS-querying terms through two includes.
    let heavy = w.domain("heavy", &[(10, &mx_good)]);
    let i1 = w.name("i1");
    let i2 = w.name("i2");
    w.zone.txt(
        &heavy,
        &format!("v=spf1 include:{i1} include:{i2} a mx -all"),
    );
    w.zone
        .txt(&i1, &format!("v=spf1 a mx a:x.{i1} mx:y.{i1} ptr ~all"));
    w.zone
        .txt(&i2, &format!("v=spf1 exists:e.{i2} a:q.{i2} ?all"));

    let cfg = w.start_dns().await;
    Setup {
        world: w,
        cfg,
        good,
        bad,
        heavy,
        mx_good,
        mx_expired,
        mx_plain,
    }
}

async fn doctor(s: &Setup, domain: &str) -> DoctorReport {
    run(
        domain,
        DoctorOptions {
            smarttls: s.cfg.clone(),
            dkim_selectors: vec!["s1".into()],
        },
    )
    .await
    .unwrap()
}

fn statuses(r: &DoctorReport) -> Vec<(&'static str, Status)> {
    r.checks.iter().map(|c| (c.id, c.status)).collect()
}

fn finding<'a>(r: &'a DoctorReport, id: &str) -> &'a str {
    &r.check(id).unwrap().finding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_good_bad_and_heavy_domains() {
    let s = setup().await;
    use Status::*;

    let r = doctor(&s, &s.good).await;
    assert_eq!(
        statuses(&r),
        vec![
            ("dnssec_domain", Pass),
            ("mx", Pass),
            ("dnssec_mx", Pass),
            ("starttls", Pass),
            ("tls", Pass),
            ("certificate", Pass),
            ("dane", Pass),
            ("spf", Pass),
            ("dkim", Pass),
            ("dmarc", Pass),
            ("mta_sts", Pass),
            ("tls_rpt", Pass),
            ("nta7516", Pass),
        ],
        "{}",
        r.render_text()
    );
    assert_eq!(r.status, Pass);
    assert_eq!(r.exit_code(), 0);
    assert!(r.checks.iter().all(|c| c.fix.is_none()));
    assert_eq!(finding(&r, "mx"), format!("1 MX: 10 {}", s.mx_good));
    assert_eq!(
        finding(&r, "spf"),
        "one SPF record ending in -all, 1 lookups"
    );
    assert_eq!(finding(&r, "dmarc"), "DMARC p=reject");
    assert_eq!(finding(&r, "mta_sts"), "MTA-STS enforce, all 1 MX listed");
    assert!(finding(&r, "nta7516").contains("provider Zorgmail Test"));
    assert!(finding(&r, "dkim").contains("s1"));
    // A single TLSA record is noted for rollover, without failing.
    assert!(r
        .check("dane")
        .unwrap()
        .details
        .iter()
        .any(|d| d.contains("rollover")));

    let r = doctor(&s, &s.bad).await;
    let text = r.render_text();
    assert_eq!(
        statuses(&r),
        vec![
            ("dnssec_domain", Pass),
            ("mx", Pass),
            ("dnssec_mx", Pass),
            ("starttls", Fail),
            ("tls", Fail),
            ("certificate", Fail),
            ("dane", Fail),
            ("spf", Fail),
            ("dkim", Fail),
            ("dmarc", Fail),
            ("mta_sts", Warn),
            ("tls_rpt", Warn),
            ("nta7516", Fail),
        ],
        "{text}"
    );
    assert_eq!(r.exit_code(), 1);
    assert_eq!(r.summary.fail, 8);
    assert!(r
        .checks
        .iter()
        .filter(|c| c.status != Pass)
        .all(|c| c.fix.is_some()));
    assert_eq!(
        finding(&r, "starttls"),
        format!("MX without working STARTTLS: {}", s.mx_plain)
    );
    assert_eq!(
        finding(&r, "certificate"),
        format!(
            "MX with an invalid certificate: {}, {}",
            s.mx_expired, s.mx_plain
        )
    );
    let cert = r.check("certificate").unwrap();
    assert!(
        cert.details[0].contains("cert_expired"),
        "{:?}",
        cert.details
    );
    assert_eq!(
        finding(&r, "dane"),
        format!("MX without valid DANE: {}, {}", s.mx_expired, s.mx_plain)
    );
    assert!(finding(&r, "spf").starts_with("2 SPF records"), "{text}");
    assert_eq!(finding(&r, "dkim"), "no valid DKIM key for selector(s) s1");
    assert!(r.check("dkim").unwrap().details[0].contains("revoked"));
    assert_eq!(
        finding(&r, "dmarc"),
        "DMARC policy p=none: forged mail is not stopped"
    );
    assert!(finding(&r, "mta_sts").starts_with("no MTA-STS record"));
    assert!(finding(&r, "tls_rpt").starts_with("no TLS-RPT record"));
    assert_eq!(
        finding(&r, "nta7516"),
        "the NTA 7516 record expired (2019-01..2020-12)"
    );

    let r = doctor(&s, &s.heavy).await;
    let spf = r.check("spf").unwrap();
    assert_eq!(spf.status, Fail, "{}", r.render_text());
    assert!(
        spf.finding.starts_with("more than 10 DNS lookups"),
        "{}",
        spf.finding
    );
    assert!(spf.details.iter().any(|d| d.contains("ptr")));
    drop(s.world);
}

/// Through the binary: exit codes, `--json` and text output, `--dkim-selector`, usage errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_command_exit_codes_and_json() {
    let s = setup().await;
    let bin = env!("CARGO_BIN_EXE_stalwart-nta7516");
    let args = |domain: &str, json: bool| {
        let mut a = vec![
            "doctor".to_string(),
            domain.to_string(),
            "--resolver".into(),
            s.cfg.resolver.unwrap().to_string(),
            "--trust-anchor".into(),
            s.cfg
                .trust_anchor_file
                .as_ref()
                .unwrap()
                .display()
                .to_string(),
            "--ca-file".into(),
            s.cfg.ca_file.as_ref().unwrap().display().to_string(),
            "--smtp-port".into(),
            s.cfg.smtp_port.to_string(),
            "--dkim-selector".into(),
            "s1".into(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };

    let out = tokio::process::Command::new(bin)
        .args(args(&s.bad, true))
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["domain"], s.bad.as_str());
    assert_eq!(v["status"], "fail");
    assert_eq!(
        v["summary"],
        serde_json::json!({"pass": 3, "warn": 2, "fail": 8})
    );
    let by_id = |id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("spf")["status"], "fail");
    assert_eq!(by_id("dmarc")["status"], "fail");
    assert_eq!(by_id("mta_sts")["status"], "warn");
    assert_eq!(by_id("dnssec_domain")["status"], "pass");
    assert!(by_id("dnssec_domain")["fix"].is_null());
    assert!(by_id("dkim")["fix"]
        .as_str()
        .unwrap()
        .contains("_domainkey"));

    // The good domain with a gateway configuration: [smarttls] (the test MTA-STS port) and
    // [doctor] dkim_selectors, the rest from flags.
    let dir = tempfile::tempdir().unwrap();
    let with_selector = dir.path().join("with-selector.toml");
    let without_selector = dir.path().join("without-selector.toml");
    let smarttls = format!(
        "[smarttls]\nmta_sts_port = {}\nlegacy_probe = false\n",
        s.cfg.mta_sts_port
    );
    std::fs::write(
        &with_selector,
        format!("{smarttls}[doctor]\ndkim_selectors = [\"s1\"]\n"),
    )
    .unwrap();
    std::fs::write(&without_selector, &smarttls).unwrap();
    let with_config = |json: bool, config: &std::path::Path| {
        let mut a = args(&s.good, json);
        a.retain(|x| x != "--dkim-selector" && x != "s1");
        a.push("--config".into());
        a.push(config.display().to_string());
        a
    };
    let out = tokio::process::Command::new(bin)
        .args(with_config(false, &with_selector))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS  dane"), "{text}");
    assert!(
        text.contains("PASS  dkim           DKIM key present for selector(s) s1"),
        "{text}"
    );
    assert!(
        text.contains("PASS: 13 passed, 0 warnings, 0 failed"),
        "{text}"
    );

    // Without selectors the DKIM check can only warn: a warning alone still exits 0.
    let out = tokio::process::Command::new(bin)
        .args(with_config(true, &without_selector))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "warn");
    assert_eq!(
        v["summary"],
        serde_json::json!({"pass": 12, "warn": 1, "fail": 0})
    );

    // Usage errors: exit 2 with a clear message.
    for (bad_args, needle) in [
        (vec!["doctor", "not a domain"], "not a domain name"),
        (
            vec!["doctor", "example.nl", "--dkim-selector", "bad selector!"],
            "not a DKIM selector",
        ),
        (
            vec!["doctor", "example.nl", "--resolver", "nonsense"],
            "nonsense",
        ),
        (
            vec!["doctor", "example.nl", "--config", "/nonexistent/gw.toml"],
            "gw.toml",
        ),
    ] {
        let out = tokio::process::Command::new(bin)
            .args(&bad_args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad_args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{bad_args:?}: {err}");
    }
}

/// A domain in a zone whose signatures do not validate: DNSSEC fails, and nothing else is trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_bogus_zone_fails_dnssec() {
    let mut w = World::new().await;
    w.legacy_probe = false;
    let origin = w.bogus_zone.origin();
    let d = format!("mail.{origin}");
    w.bogus_zone.txt(&d, "v=spf1 -all");
    let cfg = w.start_dns().await;
    let r = run(
        &d,
        DoctorOptions {
            smarttls: cfg,
            dkim_selectors: vec![],
        },
    )
    .await
    .unwrap();
    let dnssec = r.check("dnssec_domain").unwrap();
    assert_eq!(dnssec.status, Status::Fail, "{}", r.render_text());
    assert!(dnssec.finding.contains("bogus"), "{}", dnssec.finding);
    assert_eq!(r.check("mx").unwrap().status, Status::Fail);
    assert_eq!(r.check("spf").unwrap().status, Status::Fail);
    assert_eq!(r.exit_code(), 1);
}

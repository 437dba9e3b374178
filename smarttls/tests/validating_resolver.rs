//! SmartTLS behind a real validating resolver (Debian's unbound), the production setup: the
//! prober asks unbound, unbound asks a signed `test.` parent and the test zones (hickory-server,
//! in process) and validates from the `test.` trust anchor; the prober validates again itself.
//!
//! Each test is named after the clause it checks. unbound is a required tool: without it these
//! tests fail under CI and print `SKIPPED` locally.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use nta7516_smarttls::testkit::{smtp_server, LeafKind, SmtpServerOpts, TestResolver, World};
use nta7516_smarttls::{render_text, DnssecStatus, DomainReport, SmartTls, Verdict};

const BUDGET: Duration = Duration::from_secs(8);

async fn run(st: &SmartTls, domain: &str) -> DomainReport {
    let r = st.probe_uncached(domain).await;
    eprintln!("{}", render_text(&r));
    r
}

fn assert_verdict(r: &DomainReport, verdict: Verdict, codes: &[&str]) {
    assert_eq!(
        r.verdict, verdict,
        "verdict of {}: {:?}",
        r.domain, r.reasons
    );
    assert_eq!(r.reason_codes(), codes, "reason codes of {}", r.domain);
}

/// A STARTTLS server for `host` (a name in any zone) with a leaf of `kind`; returns its address.
async fn server_for(w: &mut World, host: &str, kind: LeafKind) -> (IpAddr, String) {
    let cert = w.pki.leaf(&[host], kind);
    let tlsa = cert.tlsa_311();
    let l = nta7516_smarttls::testkit::bind_fresh(w.smtp_port).await;
    let ip = l.local_addr().expect("addr").ip();
    let srv = smtp_server::start(l, SmtpServerOpts::tls(cert, host));
    // The server lives as long as the test process (the world owns only its own servers).
    std::mem::forget(srv);
    (ip, tlsa)
}

/// RFC 4035 §3.2.2 (a validating stub may set CD and validate itself) and RFC 8914 §4.7 (EDE 6
/// "DNSSEC Bogus"): a TLSA RRset that fails validation is SERVFAIL at the resolver; the prober
/// asks again with CD=1, finds it bogus itself and reports `insecure` + `dnssec_bogus`, never
/// `unknown` / `dns_failure`. Two shapes: a TLSA RRset whose signature no longer matches its data
/// (unbound: EDE 6), and a TLSA name that is a CNAME into the bogus zone; either way the host's
/// addresses are secure and only the TLSA answer is bogus (RFC 7672 §2.2: bogus TLSA is a failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4035_3_2_2_bogus_tlsa_behind_validating_resolver_is_insecure() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    let mx = w.mx_server("mx", LeafKind::Good).await;
    let tlsa_name = format!("_{}._tcp.{mx}", w.smtp_port);
    let bogus_name = format!("_{}._tcp.mx.{}", w.smtp_port, w.bogus_zone.origin());
    w.zone.cname(&tlsa_name, &bogus_name);
    w.bogus_zone.tlsa(&bogus_name, 3, 1, 1, &"ab".repeat(32));
    let d = w.domain("d", &[(10, &mx)]);
    // A TLSA RRset in the anchored zone whose data no longer matches its RRSIG: EDE 6.
    let host = w.name("mx-broken");
    let cert = w.pki.leaf(&[&host], LeafKind::Good);
    let tlsa = cert.tlsa_311();
    let broken = w
        .mx_server_with("mx-broken", SmtpServerOpts::tls(cert, &host))
        .await;
    w.tlsa(&broken, 3, 1, 1, &tlsa);
    let broken_tlsa = format!("_{}._tcp.{broken}", w.smtp_port);
    w.zone.break_tlsa_signature(&broken_tlsa);
    let d2 = w.domain("d2", &[(10, &broken)]);
    let st = w.start().await;
    for d in [&d, &d2] {
        let r = run(&st, d).await;
        assert_verdict(&r, Verdict::Insecure, &["dnssec_bogus"]);
        assert_eq!(r.mx[0].probe.address_dnssec, Some(DnssecStatus::Secure));
        assert_eq!(r.mx[0].probe.dane.code(), "bogus");
        // Through the caching entry point too (what the gateway's hook uses).
        let cached = st.domain(d, BUDGET).await;
        assert_eq!(cached.reason_codes(), ["dnssec_bogus"]);
    }
    // The resolver itself says so: SERVFAIL with EDE 6 without CD, the data with CD.
    let resolver = st.config().resolver.expect("resolver");
    let (plain, cd) = (
        dig(resolver, &broken_tlsa, false),
        dig(resolver, &broken_tlsa, true),
    );
    assert!(
        plain.contains("status: SERVFAIL") && plain.contains("EDE: 6"),
        "{plain}"
    );
    assert!(
        cd.contains("status: NOERROR") && cd.contains("TLSA"),
        "{cd}"
    );
}

/// `dig` through the resolver (bind9-dnsutils, installed by .ci/setup.d/smarttls.sh).
fn dig(resolver: std::net::SocketAddr, name: &str, cd: bool) -> String {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", resolver.ip()))
        .args(["-p", &resolver.port().to_string(), "+dnssec"])
        .arg(if cd { "+cdflag" } else { "+nocdflag" })
        .args([name, "TLSA"])
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// RFC 4035 §5.5 (bogus data must not be used) behind a validating resolver: a domain in a zone
/// whose key does not match its parent's DS is bogus at the MX lookup, and an MX host in that zone
/// is bogus at the address lookup; then no TLSA lookup happens, so DANE is `not_checked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4035_5_5_bogus_zone_behind_validating_resolver_is_insecure() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    let good = w.mx_server("mx", LeafKind::Good).await;
    let bd = format!("d.{}", w.bogus_zone.origin());
    w.bogus_zone.mx(&bd, 10, &good);
    let bhost = format!("mx.{}", w.bogus_zone.origin());
    w.bogus_zone.addr(&bhost, IpAddr::V4(Ipv4Addr::LOCALHOST));
    let d = w.domain("d", &[(10, &bhost)]);
    let st = w.start().await;
    let r = run(&st, &bd).await;
    assert_verdict(&r, Verdict::Insecure, &["dnssec_bogus"]);
    assert_eq!(r.dnssec, DnssecStatus::Bogus);
    let r = run(&st, &d).await;
    assert_verdict(&r, Verdict::Insecure, &["dnssec_bogus"]);
    assert_eq!(r.reasons[0].host.as_deref(), Some(bhost.as_str()));
    assert_eq!(r.mx[0].probe.dane.code(), "not_checked", "no TLSA lookup");
}

/// RFC 7672 §2.2 / §3.1 behind a validating resolver: secure zones stay `secure` (DANE-EE over a
/// self-signed certificate matches; a PKIX-valid host without TLSA is secure), and the start-up
/// self-check sees a resolver that validates (AD for the anchor's zone, RFC 4035 §3.2.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7672_2_2_secure_zones_stay_secure_behind_validating_resolver() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    let host = w.name("mx-dane");
    let cert = w.pki.leaf(&[&host], LeafKind::SelfSigned);
    let tlsa = cert.tlsa_311();
    let dane = w
        .mx_server_with("mx-dane", SmtpServerOpts::tls(cert, &host))
        .await;
    w.tlsa(&dane, 3, 1, 1, &tlsa);
    let pkix = w.mx_server("mx-pkix", LeafKind::Good).await;
    let d1 = w.domain("dane", &[(10, &dane)]);
    let d2 = w.domain("pkix", &[(10, &pkix)]);
    let st = w.start().await;
    let r = run(&st, &d1).await;
    assert_verdict(&r, Verdict::Secure, &[]);
    assert_eq!(r.dnssec, DnssecStatus::Secure);
    assert_eq!(r.mx[0].probe.dane.code(), "match");
    let r = run(&st, &d2).await;
    assert_verdict(&r, Verdict::Secure, &[]);
    assert_eq!(r.mx[0].probe.dane.code(), "no_tlsa");
    let check = st.check_resolver().await;
    assert!(check.validates(), "{check:?}");
    assert_eq!(check.warning(), None);
}

/// RFC 8914 / the fail-closed rule: when the resolver does not answer at all, nothing can be
/// validated, so the verdict is `unknown` (`dns_failure`), never `insecure` with a false attack
/// indicator and never `secure`; the self-check says it could not ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8914_resolver_down_is_unknown() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    let mx = w.mx_server("mx", LeafKind::Good).await;
    let d = w.domain("d", &[(10, &mx)]);
    let mut cfg = w.start_dns().await;
    cfg.dns_timeout_ms = 300;
    w.unbound = None; // killed: nothing listens on the resolver's port any more
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = SmartTls::new(cfg).expect("SmartTls");
    let r = run(&st, &d).await;
    assert_eq!(r.verdict, Verdict::Unknown, "{:?}", r.reasons);
    assert!(
        r.reasons.iter().all(|x| x.code.as_str() == "dns_failure"),
        "{:?}",
        r.reasons
    );
    let check = st.check_resolver().await;
    assert!(!check.validates());
    assert!(check
        .warning()
        .expect("warning")
        .contains("could not be asked"));
}

/// RFC 4035 §3.2.3 (AD bit) / RFC 6840 §5.7: a resolver that resolves but does not validate is
/// reported by the start-up self-check, loudly, naming the consequence for Stalwart's DANE. The
/// prober itself still validates, so verdicts stay right (secure zone → secure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4035_3_2_3_non_validating_resolver_is_reported_at_start() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    w.resolver = TestResolver::NonValidatingUnbound;
    let mx = w.mx_server("mx", LeafKind::Good).await;
    let d = w.domain("d", &[(10, &mx)]);
    let st = w.start().await;
    let check = st.check_resolver().await;
    assert!(!check.validates(), "{check:?}");
    let warning = check.warning().expect("warning");
    assert!(warning.contains("does not validate DNSSEC"), "{warning}");
    assert!(
        warning.contains("Stalwart (>= 0.16.11) disables DANE"),
        "{warning}"
    );
    let r = run(&st, &d).await;
    assert_verdict(&r, Verdict::Secure, &[]);
    assert_eq!(r.dnssec, DnssecStatus::Secure);
}

/// RFC 4035 §5 (each CNAME link validated) and RFC 7672 §2.2.2: a recipient domain that is a
/// signed CNAME (in another signed zone, and in the same zone) to a domain whose MX is
/// DANE-authenticated is `secure` by DANE; its TXT lookups through the CNAME (NTA 7516 record,
/// `_mta-sts`) are not mistaken for bogus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7672_2_2_2_signed_cname_domain_with_dane_mx_is_secure() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    let host = w.name("mx");
    let cert = w.pki.leaf(&[&host], LeafKind::SelfSigned);
    let tlsa = cert.tlsa_311();
    let mx = w
        .mx_server_with("mx", SmtpServerOpts::tls(cert, &host))
        .await;
    w.tlsa(&mx, 3, 1, 1, &tlsa);
    let d = w.domain("d", &[(10, &mx)]);
    let other_zone = format!("alias.{}", w.zone2.origin());
    w.zone2.cname(&other_zone, &d);
    let same_zone = w.name("alias");
    w.zone.cname(&same_zone, &d);
    let st = w.start().await;
    for alias in [&other_zone, &same_zone] {
        let r = run(&st, alias).await;
        assert_verdict(&r, Verdict::Secure, &[]);
        assert_eq!(r.dnssec, DnssecStatus::Secure, "{alias}");
        assert_eq!(r.mx[0].probe.dane.code(), "match", "{alias}");
        assert_eq!(
            r.note_codes(),
            ["cert_self_signed"],
            "{alias}: only the DANE note"
        );
    }
}

/// RFC 7672 §2.2.2: an MX host that is a signed CNAME into an unsigned zone has insecure
/// addresses, so DANE does not apply: its PKIX-valid certificate makes it `secure` although a
/// (mismatching) secure TLSA record sits at the original name, and DANE says `not_checked`.
/// Hosts in the unsigned zone itself have provably insecure addresses (`insecure`, not
/// `indeterminate`: the signed parent proves there is no DS, RFC 4035 §5.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7672_2_2_2_cname_into_unsigned_zone_is_pkix_only() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    let orig = w.name("mx");
    let target = format!("mx.{}", w.plain_zone.origin());
    let (ip, _) = server_for(&mut w, &orig, LeafKind::Good).await;
    w.plain_zone.addr(&target, ip);
    w.zone.cname(&orig, &target);
    w.tlsa(&orig, 3, 1, 1, &"ab".repeat(32));
    let d = w.domain("d", &[(10, &orig)]);
    let plain_host = format!("mx2.{}", w.plain_zone.origin());
    let (ip2, _) = server_for(&mut w, &plain_host, LeafKind::Good).await;
    w.plain_zone.addr(&plain_host, ip2);
    let pd = format!("p.{}", w.plain_zone.origin());
    w.plain_zone.mx(&pd, 10, &plain_host);
    let st = w.start().await;
    let r = run(&st, &d).await;
    assert_verdict(&r, Verdict::Secure, &[]);
    let p = &r.mx[0].probe;
    assert_eq!(p.address_dnssec, Some(DnssecStatus::Insecure));
    assert_eq!(p.dane.code(), "not_checked");
    assert_eq!(p.tlsa_base, None);
    let r = run(&st, &pd).await;
    assert_verdict(&r, Verdict::Secure, &[]);
    assert_eq!(r.dnssec, DnssecStatus::Insecure);
    assert_eq!(r.mx[0].probe.address_dnssec, Some(DnssecStatus::Insecure));
    assert_eq!(r.mx[0].probe.dane.code(), "no_tlsa");
}

/// RFC 7672 §2.2.2 (with RFC 7671 §7): for an MX host that is a secure CNAME, the TLSA records
/// at the CNAME-expanded name are used first (a mismatching record at the original name does not
/// count); when the expanded name has none, those at the original name are used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7672_2_2_2_tlsa_at_expanded_name_then_original() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    let real = w.name("real");
    let cert = w.pki.leaf(&[&real], LeafKind::SelfSigned);
    let tlsa = cert.tlsa_311();
    let real = w
        .mx_server_with("real", SmtpServerOpts::tls(cert, &real))
        .await;
    let alias1 = w.name("alias1");
    w.zone.cname(&alias1, &real);
    w.tlsa(&real, 3, 1, 1, &tlsa);
    w.tlsa(&alias1, 3, 1, 1, &"ab".repeat(32));
    let real2 = w.name("real2");
    let cert2 = w.pki.leaf(&[&real2], LeafKind::SelfSigned);
    let tlsa2 = cert2.tlsa_311();
    let real2 = w
        .mx_server_with("real2", SmtpServerOpts::tls(cert2, &real2))
        .await;
    let alias2 = w.name("alias2");
    w.zone.cname(&alias2, &real2);
    w.tlsa(&alias2, 3, 1, 1, &tlsa2);
    let d1 = w.domain("d1", &[(10, &alias1)]);
    let d2 = w.domain("d2", &[(10, &alias2)]);
    let st = w.start().await;
    let r = run(&st, &d1).await;
    assert_verdict(&r, Verdict::Secure, &[]);
    assert_eq!(r.mx[0].probe.tlsa_base.as_deref(), Some(real.as_str()));
    let r = run(&st, &d2).await;
    assert_verdict(&r, Verdict::Secure, &[]);
    assert_eq!(r.mx[0].probe.tlsa_base.as_deref(), Some(alias2.as_str()));
    assert_eq!(r.mx[0].probe.dane.code(), "match");
}

/// RFC 4034 §3.1.5 (a signature is valid only between inception and expiration): a zone whose
/// RRSIGs have all expired (its DNSKEY RRset's too, so unbound answers SERVFAIL with RFC 8914 EDE 9
/// "DNSKEY Missing") is bogus, behind the validating resolver as when the prober asks the zone
/// directly: the domain's MX lookup, and an MX host in that zone (address, then no TLSA lookup),
/// give `insecure` + `dnssec_bogus`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4034_3_1_5_expired_signatures_are_bogus() {
    let Some(mut w) = World::behind_unbound().await else {
        return;
    };
    for mode in [TestResolver::ValidatingUnbound, TestResolver::Authoritative] {
        if mode == TestResolver::Authoritative {
            w = World::new().await;
            w.legacy_probe = false;
        }
        let good = w.mx_server("mx", LeafKind::Good).await;
        let ed = format!("d.{}", w.expired_zone.origin());
        w.expired_zone.mx(&ed, 10, &good);
        let ehost = format!("mx.{}", w.expired_zone.origin());
        let (ip, tlsa) = server_for(&mut w, &ehost, LeafKind::Good).await;
        w.expired_zone.addr(&ehost, ip);
        w.expired_zone
            .tlsa(&format!("_{}._tcp.{ehost}", w.smtp_port), 3, 1, 1, &tlsa);
        let d = w.domain("d", &[(10, &ehost)]);
        let st = w.start().await;
        let r = run(&st, &ed).await;
        assert_verdict(&r, Verdict::Insecure, &["dnssec_bogus"]);
        assert_eq!(r.dnssec, DnssecStatus::Bogus, "{mode:?}");
        let r = run(&st, &d).await;
        assert_verdict(&r, Verdict::Insecure, &["dnssec_bogus"]);
        assert_eq!(r.mx[0].probe.dane.code(), "not_checked", "{mode:?}");
    }
}

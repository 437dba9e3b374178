//! Unit-level checks of the parsers and tables (no network).

use nta7516_smarttls::dns::DnssecStatus;
use nta7516_smarttls::grade::{suite_category, suite_name, Category, PHASE_OUT_SUITES};
use nta7516_smarttls::mta_sts::{parse_policy, parse_record_id, Mode};
use nta7516_smarttls::peer::{is_nta_record, parse, PeerStatus};
use nta7516_smarttls::ReasonCode;

#[test]
fn nta_record() {
    let r = "v=NTA7516-1;startdate=2024-03;enddate=2026-02;provider=Zorg Mail BV;ntamx=10 mx1.example.nl;ntamx=20 mx2.example.nl";
    assert!(is_nta_record(r));
    assert!(!is_nta_record("v=spf1 -all"));
    let p = parse(r, (2025, 6), DnssecStatus::Secure);
    assert_eq!(p.status, PeerStatus::Peer);
    assert_eq!(p.provider.as_deref(), Some("Zorg Mail BV"));
    assert_eq!(p.ntamx.len(), 2);
    assert_eq!(p.ntamx[1].preference, 20);
    assert_eq!(
        parse(r, (2026, 2), DnssecStatus::Secure).status,
        PeerStatus::Peer,
        "end month inclusive"
    );
    let e = parse(r, (2026, 3), DnssecStatus::Secure);
    assert_eq!(e.status, PeerStatus::Expired);
    assert!(!e.is_peer);
    assert_eq!(
        parse(r, (2024, 2), DnssecStatus::Secure).status,
        PeerStatus::NotYetValid
    );
    assert_eq!(
        parse("v=NTA7516-1;provider=x", (2025, 1), DnssecStatus::Secure).status,
        PeerStatus::Invalid
    );
    assert_eq!(
        parse(
            "v=NTA7516-1;enddate=2025-13",
            (2025, 1),
            DnssecStatus::Secure
        )
        .status,
        PeerStatus::Invalid
    );
}

#[test]
fn mta_sts_policy() {
    assert_eq!(
        parse_record_id("v=STSv1; id=20190429T010101;").as_deref(),
        Some("20190429T010101")
    );
    assert_eq!(parse_record_id("v=STSv1; id=bad-id;"), None);
    let p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n").unwrap();
    assert_eq!(p.mode, Mode::Enforce);
    assert!(p.lists("mail.example.com"));
    assert!(p.lists("MX1.Example.NET."));
    assert!(!p.lists("a.b.example.net"), "wildcard covers one label");
    assert!(!p.lists("example.net"));
    assert!(parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
    assert!(parse_policy("version: STSv2\nmode: none\nmax_age: 1\n").is_err());
}

#[test]
fn ncsc_suite_tables() {
    assert_eq!(suite_category(0x1302), Category::Good);
    assert_eq!(suite_category(0x1301), Category::Sufficient);
    assert_eq!(suite_category(0xC02F), Category::Sufficient);
    assert_eq!(suite_category(0xC027), Category::PhaseOut);
    assert_eq!(suite_category(0x009E), Category::PhaseOut);
    assert_eq!(
        suite_category(0xC013),
        Category::Insufficient,
        "CBC with SHA-1"
    );
    assert_eq!(suite_category(0x009C), Category::Insufficient, "static RSA");
    assert_eq!(
        suite_category(0x1305),
        Category::Insufficient,
        "TLS_AES_128_CCM_8_SHA256"
    );
    // 20 ECDHE (CAMELLIA/ARIA GCM+CBC, AES CBC SHA-2) + 15 DHE-RSA, as enumerated in the rules.
    assert_eq!(PHASE_OUT_SUITES.len(), 35);
    assert_eq!(suite_name(0x1302), "TLS_AES_256_GCM_SHA384");
    assert_eq!(suite_name(0xC009), "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA");
}

#[test]
fn reason_codes_are_unique_snake_case() {
    let mut seen = std::collections::HashSet::new();
    for c in ReasonCode::ALL {
        let s = c.as_str();
        assert!(seen.insert(s), "duplicate {s}");
        assert!(
            s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
            "{s}"
        );
        assert_eq!(serde_json::to_value(c).unwrap(), s);
    }
}

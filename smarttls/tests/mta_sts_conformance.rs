//! MTA-STS conformance (RFC 8461) against real servers: the `_mta-sts` TXT records come from the
//! project's DNSSEC-signed test DNS, the policies from a real HTTPS server (hyper + rustls) with
//! certificates of the test PKI, and the MX hosts are real STARTTLS servers. Each test names the
//! clause it checks. The cases were chosen after reading the test suites of postfix-mta-sts-resolver,
//! postfix-tlspol and mox; the tests are this project's own. Pure syntax cases (record and policy
//! grammar, `max_age` bounds, `mx` patterns, media types) are the unit tests of `src/mta_sts.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::RData;
use nta7516_smarttls::dns::Dns;
use nta7516_smarttls::mta_sts::{Mode, MtaStsClient, MAX_POLICY_BYTES};
use nta7516_smarttls::testkit::https::{self, PolicyAnswer, TestHttps};
use nta7516_smarttls::testkit::{bind_fresh, LeafKind, World};
use nta7516_smarttls::{render_text, MtaSts, SmartTlsConfig, Verdict};

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mx.sts.example\nmax_age: 86400\n";
const TESTING: &str = "version: STSv1\nmode: testing\nmx: mx.sts.example\nmax_age: 86400\n";

/// A policy server for `labels` of `w`'s zone: one HTTPS server whose certificate names every
/// `mta-sts.<label>.<zone>`, their A records pointing at it. Returns the server and the domains.
async fn policy_server(w: &mut World, labels: &[&str]) -> (TestHttps, Vec<String>) {
    let domains: Vec<String> = labels.iter().map(|l| w.name(l)).collect();
    let hosts: Vec<String> = domains.iter().map(|d| format!("mta-sts.{d}")).collect();
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cert = w.pki.leaf(&names, LeafKind::Good);
    let l = bind_fresh(w.https_port).await;
    let ip = l.local_addr().unwrap().ip();
    for h in &hosts {
        w.zone.addr(h, ip);
    }
    (https::start_policies(l, cert), domains)
}

/// A `_mta-sts` TXT record for `domain` made of these strings.
fn txt(w: &mut World, domain: &str, strings: &[&str]) {
    let strings = strings.iter().map(|s| s.to_string()).collect();
    w.zone
        .record(&format!("_mta-sts.{domain}"), RData::TXT(TXT::new(strings)));
}

/// A client trusting `w`'s PKI, fetching from `cfg`'s port, with this fetch timeout.
fn client(w: &World, cfg: &SmartTlsConfig, timeout: Duration) -> MtaStsClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(w.pki.root_der()).unwrap();
    MtaStsClient::new(Arc::new(roots), cfg.mta_sts_port, timeout).unwrap()
}

/// The policy of a `Policy` outcome: (id, mode, cached).
fn policy_of(r: &MtaSts) -> Option<(String, Mode, bool)> {
    match r {
        MtaSts::Policy { id, policy, cached } => Some((id.clone(), policy.mode, *cached)),
        _ => None,
    }
}

/// RFC 8461 §3.1: the TXT record. Records not beginning with `v=STSv1;` (exactly, case-sensitive)
/// are discarded — `v=STSv12`, `v=STSv1` not first, `V=STSV1` mean no policy, and no HTTPS fetch
/// happens; other TXT records at the name are ignored; the strings of one record are concatenated;
/// more than one `v=STSv1` record, or one that is syntactically invalid, means no available policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txt_record_selection() {
    let mut w = World::new().await;
    let labels = [
        "exact", "v12", "vlast", "upper", "two", "mixed", "split", "badid", "noid", "absent",
    ];
    let (srv, d) = policy_server(&mut w, &labels).await;
    srv.set("*", PolicyAnswer::text(ENFORCE));
    txt(&mut w, &d[0], &["v=STSv1; id=1;"]);
    txt(&mut w, &d[1], &["v=STSv12; id=1;"]);
    txt(&mut w, &d[2], &["id=1; v=STSv1;"]);
    txt(&mut w, &d[3], &["V=STSV1; id=1;"]);
    txt(&mut w, &d[4], &["v=STSv1; id=1;"]);
    txt(&mut w, &d[4], &["v=STSv1; id=2;"]);
    txt(&mut w, &d[5], &["v=spf1 -all"]);
    txt(&mut w, &d[5], &["v=STSv1; id=7;"]);
    txt(&mut w, &d[5], &["v=STSv10; id=8;"]);
    txt(&mut w, &d[6], &["v=STSv1; ", "id=abc;"]);
    txt(&mut w, &d[7], &["v=STSv1; id=bad-id;"]);
    txt(&mut w, &d[8], &["v=STSv1; ext=1"]);
    let cfg = w.start_dns().await;
    let dns = Dns::new(&cfg).unwrap();
    let c = client(&w, &cfg, Duration::from_secs(4));
    let check = |i: usize| c.check(&dns, &d[i]);
    assert_eq!(
        policy_of(&check(0).await),
        Some(("1".into(), Mode::Enforce, false))
    );
    for i in [1, 2, 3, 9] {
        let r = check(i).await;
        assert!(matches!(r, MtaSts::NoRecord), "{}: {r:?}", labels[i]);
        assert_eq!(
            srv.hits(&format!("mta-sts.{}", d[i])),
            0,
            "{}: fetched",
            labels[i]
        );
    }
    for i in [4, 7, 8] {
        let r = check(i).await;
        assert!(
            matches!(r, MtaSts::InvalidRecord { .. }),
            "{}: {r:?}",
            labels[i]
        );
        assert_eq!(
            srv.hits(&format!("mta-sts.{}", d[i])),
            0,
            "{}: fetched",
            labels[i]
        );
    }
    assert_eq!(
        policy_of(&check(5).await),
        Some(("7".into(), Mode::Enforce, false))
    );
    assert_eq!(
        policy_of(&check(6).await),
        Some(("abc".into(), Mode::Enforce, false))
    );
}

/// A policy padded with extension lines (ignored, RFC 8461 §3.2) to about `size` bytes.
fn padded(size: usize) -> String {
    let mut p = ENFORCE.to_string();
    let mut n = 0;
    while p.len() + 80 < size {
        p.push_str(&format!("pad{n:05}: {}\n", "x".repeat(68)));
        n += 1;
    }
    p
}

/// RFC 8461 §3.3: the HTTPS fetch. Only `200 OK` with media type `text/plain` (any case, with or
/// without `charset`) is a policy, whether sent with a length or chunked; `text/html`,
/// `application/octet-stream` or no Content-Type, `404`, `500`, and every redirect (not followed:
/// the target is never asked) are fetch failures; so are a body over 64 KiB (with a length or
/// chunked) and a body that is not UTF-8. §3.2: a policy that does not parse is a failure too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_fetch_http_rules() {
    let ok = ["plain", "charset", "upper", "chunked", "justunder"];
    let bad = [
        "html",
        "octet",
        "notype",
        "notfound",
        "error",
        "moved",
        "found",
        "temp",
        "perm",
        "big",
        "bigchunked",
        "latin1",
        "badmode",
        "badversion",
        "nomx",
    ];
    let mut w = World::new().await;
    let labels: Vec<&str> = ok.iter().chain(&bad).copied().chain(["target"]).collect();
    let (srv, d) = policy_server(&mut w, &labels).await;
    let target = format!(
        "https://mta-sts.{}/.well-known/mta-sts.txt",
        d[labels.len() - 1]
    );
    let chunked = |mut a: PolicyAnswer| {
        a.chunked = true;
        a
    };
    let no_type = PolicyAnswer {
        headers: vec![],
        ..PolicyAnswer::text(ENFORCE)
    };
    let status = |s: u16| PolicyAnswer {
        status: s,
        ..PolicyAnswer::text(ENFORCE)
    };
    let mut latin1 = PolicyAnswer::text(ENFORCE);
    latin1.body.extend_from_slice(b"note: caf\xe9\n");
    let answers = [
        PolicyAnswer::text(ENFORCE),
        PolicyAnswer::typed("text/plain; charset=utf-8", &ENFORCE.replace('\n', "\r\n")),
        PolicyAnswer::typed("TEXT/PLAIN", ENFORCE),
        chunked(PolicyAnswer::text(&padded(20_000))),
        PolicyAnswer::text(&padded(MAX_POLICY_BYTES - 100)),
        PolicyAnswer::typed("text/html", ENFORCE),
        PolicyAnswer::typed("application/octet-stream", ENFORCE),
        no_type,
        status(404),
        status(500),
        PolicyAnswer::redirect(301, &target),
        PolicyAnswer::redirect(302, &target),
        PolicyAnswer::redirect(307, &target),
        PolicyAnswer::redirect(308, &target),
        PolicyAnswer::text(&padded(MAX_POLICY_BYTES + 1000)),
        chunked(PolicyAnswer::text(&padded(MAX_POLICY_BYTES + 1000))),
        latin1,
        PolicyAnswer::text(&ENFORCE.replace("enforce", "doubt")),
        PolicyAnswer::text(&ENFORCE.replace("STSv1", "STSv2")),
        PolicyAnswer::text("version: STSv1\nmode: enforce\nmax_age: 86400\n"),
        PolicyAnswer::text(ENFORCE),
    ];
    for (i, a) in answers.into_iter().enumerate() {
        srv.set(&format!("mta-sts.{}", d[i]), a);
        txt(&mut w, &d[i], &["v=STSv1; id=1;"]);
    }
    let cfg = w.start_dns().await;
    let dns = Dns::new(&cfg).unwrap();
    let c = client(&w, &cfg, Duration::from_secs(4));
    for (i, label) in labels.iter().enumerate().take(labels.len() - 1) {
        let r = c.check(&dns, &d[i]).await;
        if i < ok.len() {
            assert_eq!(
                policy_of(&r),
                Some(("1".into(), Mode::Enforce, false)),
                "{label}: {r:?}"
            );
        } else {
            assert!(
                matches!(&r, MtaSts::FetchFailed { id, .. } if id == "1"),
                "{label}: {r:?}"
            );
            if ["moved", "found", "temp", "perm"].contains(label) {
                assert!(
                    matches!(&r, MtaSts::FetchFailed { error, .. } if error.contains("redirects are not followed")),
                    "{label}: {r:?}"
                );
            }
        }
        eprintln!("{label:>12}: {r:?}");
    }
    let target_host = format!("mta-sts.{}", d[labels.len() - 1]);
    assert_eq!(srv.hits(&target_host), 0, "a redirect was followed");
}

/// RFC 8461 §3.3 (with RFC 6125): the policy host's certificate must be PKIX-valid for
/// `mta-sts.<domain>`; expired, self-signed (`CA:FALSE` and the `openssl req -x509` `CA:TRUE`
/// shape), untrusted-CA and wrong-name certificates make the fetch fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_host_certificate_must_be_valid() {
    let mut w = World::new().await;
    let cases = [
        ("good", LeafKind::Good, true),
        ("expired", LeafKind::Expired, false),
        ("selfsigned", LeafKind::SelfSigned, false),
        ("selfsignedca", LeafKind::SelfSignedCa, false),
        ("untrusted", LeafKind::UntrustedCa, false),
        ("wrongname", LeafKind::Good, false),
    ];
    let mut servers = vec![];
    for (label, kind, _) in cases {
        let d = w.name(label);
        let host = format!("mta-sts.{d}");
        let named = if label == "wrongname" {
            w.name("elsewhere")
        } else {
            host.clone()
        };
        let l = bind_fresh(w.https_port).await;
        w.zone.addr(&host, l.local_addr().unwrap().ip());
        servers.push(https::start(l, w.pki.leaf(&[&named], kind), ENFORCE.into()));
        txt(&mut w, &d, &["v=STSv1; id=1;"]);
    }
    let cfg = w.start_dns().await;
    let dns = Dns::new(&cfg).unwrap();
    let c = client(&w, &cfg, Duration::from_secs(4));
    for (label, _, valid) in cases {
        let r = c.check(&dns, &w.name(label)).await;
        match (&r, valid) {
            (MtaSts::Policy { .. }, true) => {}
            (MtaSts::FetchFailed { error, .. }, false) => {
                assert!(error.contains("TLS"), "{label}: {error}")
            }
            _ => panic!("{label}: {r:?}"),
        }
    }
}

/// RFC 8461 §3.3 and §5: a policy host that accepts the request and never answers is a fetch
/// failure after the fetch timeout (then, without a cached policy, delivery proceeds as without
/// MTA-STS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_timeout_is_a_failure() {
    let mut w = World::new().await;
    let (srv, d) = policy_server(&mut w, &["stall"]).await;
    srv.set(
        "*",
        PolicyAnswer {
            stall: true,
            ..PolicyAnswer::text(ENFORCE)
        },
    );
    txt(&mut w, &d[0], &["v=STSv1; id=1;"]);
    let cfg = w.start_dns().await;
    let dns = Dns::new(&cfg).unwrap();
    let c = client(&w, &cfg, Duration::from_millis(400));
    let t = Instant::now();
    let r = c.check(&dns, &d[0]).await;
    assert!(
        matches!(&r, MtaSts::FetchFailed { error, .. } if error.contains("timed out")),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        srv.hits(&format!("mta-sts.{}", d[0])),
        1,
        "the request reached the server"
    );
}

/// The same domain names as four resolvers see them: `id=1`, `id=2`, two `v=STSv1` records, no
/// record; one policy server behind all of them.
struct CacheWorlds {
    first: World,
    srv: TestHttps,
    host: String,
    domain: String,
    cfg: SmartTlsConfig,
    dns: [Dns; 4],
    /// Their DNS servers run as long as they live.
    _twins: [World; 3],
}

async fn cache_worlds(policy: &str) -> CacheWorlds {
    let mut first = World::new().await;
    let (srv, d) = policy_server(&mut first, &["cached"]).await;
    let domain = d[0].clone();
    let host = format!("mta-sts.{domain}");
    srv.set("*", PolicyAnswer::text(policy));
    let ip = srv.addr.ip();
    let mut second = first.twin().await;
    let mut invalid = first.twin().await;
    let mut removed = first.twin().await;
    txt(&mut first, &domain, &["v=STSv1; id=1;"]);
    txt(&mut second, &domain, &["v=STSv1; id=2;"]);
    txt(&mut invalid, &domain, &["v=STSv1; id=3;"]);
    txt(&mut invalid, &domain, &["v=STSv1; id=4;"]);
    for w in [&mut second, &mut invalid, &mut removed] {
        w.zone.addr(&host, ip);
    }
    removed.zone.mx(&domain, 10, "mx.sts.example");
    let cfg = first.start_dns().await;
    let mut dns = vec![Dns::new(&cfg).unwrap()];
    for w in [&mut second, &mut invalid, &mut removed] {
        dns.push(Dns::new(&w.start_dns().await).unwrap());
    }
    let dns = dns.try_into().ok().unwrap();
    CacheWorlds {
        _twins: [second, invalid, removed],
        first,
        srv,
        host,
        domain,
        cfg,
        dns,
    }
}

/// RFC 8461 §5.1 (and §3.3: the TXT `id` tells whether the policy changed): with the same `id` the
/// cached policy is used and not fetched again, even when the server now serves another one; a new
/// `id` fetches the new policy, which replaces the cached one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_follows_the_record_id() {
    let cw = cache_worlds(ENFORCE).await;
    let c = client(&cw.first, &cw.cfg, Duration::from_secs(4));
    let [id1, id2, ..] = &cw.dns;
    assert_eq!(
        policy_of(&c.check(id1, &cw.domain).await),
        Some(("1".into(), Mode::Enforce, false))
    );
    cw.srv.set("*", PolicyAnswer::text(TESTING));
    assert_eq!(
        policy_of(&c.check(id1, &cw.domain).await),
        Some(("1".into(), Mode::Enforce, true))
    );
    assert_eq!(cw.srv.hits(&cw.host), 1, "same id: no fetch");
    assert_eq!(
        policy_of(&c.check(id2, &cw.domain).await),
        Some(("2".into(), Mode::Testing, false))
    );
    assert_eq!(
        policy_of(&c.check(id2, &cw.domain).await),
        Some(("2".into(), Mode::Testing, true))
    );
    assert_eq!(cw.srv.hits(&cw.host), 2);
}

/// RFC 8461 §5.1 and §3.1 (note): a cached, unexpired policy keeps applying when a changed `id`'s
/// new policy cannot be fetched (404) or is invalid (served as `text/html`), when the record
/// becomes unusable (two `v=STSv1` records), disappears, or cannot be looked up (resolver down):
/// stripping the record or blocking the fetch does not turn `enforce` off. Without a cached policy
/// the same answers mean no policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_enforce_policy_survives_failures() {
    let cw = cache_worlds(ENFORCE).await;
    let [id1, id2, invalid, removed] = &cw.dns;
    let mut down_cfg = cw.cfg.clone();
    down_cfg.resolver = Some(std::net::SocketAddr::new(
        nta7516_smarttls::testkit::fresh_ip().into(),
        cw.cfg.resolver.unwrap().port(),
    ));
    down_cfg.dns_timeout_ms = 200;
    let down = Dns::new(&down_cfg).unwrap();
    let fresh = client(&cw.first, &cw.cfg, Duration::from_secs(4));
    assert!(matches!(
        fresh.check(invalid, &cw.domain).await,
        MtaSts::InvalidRecord { .. }
    ));
    assert!(matches!(
        fresh.check(removed, &cw.domain).await,
        MtaSts::NoRecord
    ));
    assert!(matches!(
        fresh.check(&down, &cw.domain).await,
        MtaSts::DnsFailed { .. }
    ));

    let c = client(&cw.first, &cw.cfg, Duration::from_secs(4));
    assert_eq!(
        policy_of(&c.check(id1, &cw.domain).await),
        Some(("1".into(), Mode::Enforce, false))
    );
    let cached = Some(("1".into(), Mode::Enforce, true));
    cw.srv.set(
        "*",
        PolicyAnswer {
            status: 404,
            ..PolicyAnswer::text(TESTING)
        },
    );
    assert_eq!(
        policy_of(&c.check(id2, &cw.domain).await),
        cached,
        "new id, 404"
    );
    cw.srv.set("*", PolicyAnswer::typed("text/html", TESTING));
    assert_eq!(
        policy_of(&c.check(id2, &cw.domain).await),
        cached,
        "new id, text/html"
    );
    assert_eq!(
        policy_of(&c.check(invalid, &cw.domain).await),
        cached,
        "two records"
    );
    assert_eq!(
        policy_of(&c.check(removed, &cw.domain).await),
        cached,
        "record removed"
    );
    assert_eq!(
        policy_of(&c.check(&down, &cw.domain).await),
        cached,
        "resolver down"
    );
}

/// RFC 8461 §3.2 (`max_age`) and §5.1: a cached policy expires after `max_age` seconds — then a
/// missing record means no policy, and the same `id` fetches the policy again; `max_age: 0` is
/// never served from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_policy_expires_after_max_age() {
    let cw = cache_worlds(&ENFORCE.replace("86400", "2")).await;
    let [id1, _, _, removed] = &cw.dns;
    let c = client(&cw.first, &cw.cfg, Duration::from_secs(4));
    assert_eq!(
        policy_of(&c.check(id1, &cw.domain).await),
        Some(("1".into(), Mode::Enforce, false))
    );
    assert_eq!(
        policy_of(&c.check(removed, &cw.domain).await),
        Some(("1".into(), Mode::Enforce, true))
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        matches!(c.check(removed, &cw.domain).await, MtaSts::NoRecord),
        "expired"
    );
    assert_eq!(
        policy_of(&c.check(id1, &cw.domain).await),
        Some(("1".into(), Mode::Enforce, false))
    );
    assert_eq!(cw.srv.hits(&cw.host), 2, "fetched again after expiry");

    cw.srv
        .set("*", PolicyAnswer::text(&ENFORCE.replace("86400", "0")));
    let zero = client(&cw.first, &cw.cfg, Duration::from_secs(4));
    for _ in 0..2 {
        assert_eq!(
            policy_of(&zero.check(id1, &cw.domain).await),
            Some(("1".into(), Mode::Enforce, false))
        );
    }
    assert_eq!(cw.srv.hits(&cw.host), 4, "max_age 0: fetched every time");
}

/// One domain of [`policy_application_verdicts`]: its MX host, `_mta-sts` record and policy
/// answer, and what the probe must say.
struct Case {
    label: &'static str,
    mx: String,
    record: &'static str,
    answer: PolicyAnswer,
    verdict: Verdict,
    codes: &'static [&'static str],
    listed: Option<bool>,
    note: Option<&'static str>,
}

/// A case with the usual record (`id=1`) that is `Secure` with no reasons and no note.
fn case(label: &'static str, mx: &str, answer: PolicyAnswer, listed: Option<bool>) -> Case {
    Case {
        label,
        mx: mx.to_string(),
        record: "v=STSv1; id=1;",
        answer,
        verdict: Verdict::Secure,
        codes: &[],
        listed,
        note: None,
    }
}

/// The same case judged insecure because the enforce policy does not list the MX.
fn unlisted(c: Case) -> Case {
    Case {
        verdict: Verdict::Insecure,
        codes: &["mta_sts_mx_not_listed"],
        listed: Some(false),
        ..c
    }
}

/// RFC 8461 §4.1 (MX matching), §4.2 and §5 (policy application) through the whole probe, with
/// PKIX-valid MX hosts: `enforce` makes a reachable MX the policy does not list insecure
/// (`mta_sts_mx_not_listed`) — a wildcard covers one label only, never the bare parent nor two
/// labels, and matching ignores case; `testing` and `none` change nothing (PKIX decides); a
/// policy that cannot be fetched, a `v=STSv12` record and two records mean no policy (with a note
/// for the first and the last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_application_verdicts() {
    let mut w = World::new().await;
    w.legacy_probe = false;
    let mx = w.mx_server("mx", LeafKind::Good).await;
    let deep = w.mx_server("a.deep", LeafKind::Good).await;
    let zone = w.zone.origin();
    let enforce = |pattern: &str| {
        PolicyAnswer::text(&format!(
            "version: STSv1\nmode: enforce\nmx: {pattern}\nmax_age: 86400\n"
        ))
    };
    let none = PolicyAnswer::text("version: STSv1\nmode: none\nmax_age: 86400\n");
    let cases = [
        case("exact", &mx, enforce(&mx), Some(true)),
        case("wild", &mx, enforce(&format!("*.{zone}")), Some(true)),
        case("case", &mx, enforce(&mx.to_uppercase()), Some(true)),
        unlisted(case("parent", &mx, enforce(&format!("*.{mx}")), None)),
        unlisted(case("deep", &deep, enforce(&format!("*.{zone}")), None)),
        unlisted(case("other", &mx, PolicyAnswer::text(ENFORCE), None)),
        case("testing", &mx, PolicyAnswer::text(TESTING), Some(false)),
        case("none", &mx, none, None),
        Case {
            note: Some("mta_sts_fetch_failed"),
            ..case("html", &mx, PolicyAnswer::typed("text/html", ENFORCE), None)
        },
        Case {
            record: "v=STSv12; id=1;",
            ..case("v12", &mx, PolicyAnswer::text(ENFORCE), None)
        },
        Case {
            note: Some("mta_sts_invalid_record"),
            ..case("two", &mx, PolicyAnswer::text(ENFORCE), None)
        },
    ];
    let labels: Vec<&str> = cases.iter().map(|c| c.label).collect();
    let (srv, d) = policy_server(&mut w, &labels).await;
    for (c, d) in cases.iter().zip(&d) {
        w.zone.mx(d, 10, &c.mx);
        txt(&mut w, d, &[c.record]);
        srv.set(&format!("mta-sts.{d}"), c.answer.clone());
    }
    txt(&mut w, &d[10], &["v=STSv1; id=2;"]);
    let st = w.start().await;
    for (c, d) in cases.iter().zip(&d) {
        let r = st.domain(d, Duration::from_secs(8)).await;
        eprintln!("{}", render_text(&r));
        assert_eq!(r.verdict, c.verdict, "{}: {:?}", c.label, r.reasons);
        assert_eq!(r.reason_codes(), c.codes, "{}", c.label);
        assert_eq!(r.mx[0].mta_sts_listed, c.listed, "{}", c.label);
        let note = r
            .notes
            .iter()
            .map(|n| n.code.as_str())
            .find(|c| c.starts_with("mta_sts"));
        assert_eq!(note, c.note, "{}", c.label);
    }
}

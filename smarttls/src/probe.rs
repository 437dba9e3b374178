//! The probe: MX resolution, per-host SMTP/TLS/DANE probing and the domain verdict.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{RData, RecordType};
use rustls::pki_types::UnixTime;
use tokio::sync::Semaphore;

use crate::cache::{Lookup, SingleFlight};
use crate::config::SmartTlsConfig;
use crate::dane::{self, DaneStatus, TlsaRecord};
use crate::dns::{bare, Dns, DnsFailure, DnssecStatus};
use crate::grade::{self, finding, Category, Grade};
use crate::legacy::{self, HelloResult, LegacyPosture, Support};
use crate::mta_sts::{MtaSts, MtaStsClient};
use crate::peer::{self, NtaPeer};
use crate::report::{CertInfo, DomainReport, HostProbe, MxReport, Protocols, TlsFacts};
use crate::smtp::{self, SmtpError};
use crate::tls::{self, HandshakeError, Session, TrustStore};
use crate::util;
use crate::verdict::{Reason, ReasonCode as C, Verdict};

/// Shared state of a [`crate::SmartTls`].
pub(crate) struct Engine {
    pub cfg: SmartTlsConfig,
    pub dns: Dns,
    pub store: Arc<TrustStore>,
    pub mta: MtaStsClient,
    pub sem: Semaphore,
    pub probes: AtomicU64,
    pub hosts: Arc<SingleFlight<HostProbe>>,
    pub domains: Arc<SingleFlight<DomainReport>>,
}

fn ttl_host(cfg: &SmartTlsConfig, h: &HostProbe) -> Duration {
    if h.verdict == Some(Verdict::Secure) {
        Duration::from_secs(cfg.ttl_secure)
    } else {
        Duration::from_secs(cfg.ttl_failure)
    }
}

impl Engine {
    pub fn new(cfg: SmartTlsConfig) -> Result<Arc<Self>, crate::Error> {
        let dns = Dns::new(&cfg)?;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut intermediates = Vec::new();
        if let Some(path) = &cfg.ca_file {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| crate::Error::Config(format!("ca_file {}: {e}", path.display())))?;
            let mut n = 0;
            for c in certs {
                let c = c.map_err(|e| {
                    crate::Error::Config(format!("ca_file {}: {e}", path.display()))
                })?;
                // Self-signed certificates are roots; others are intermediates, used only to tell an
                // incomplete chain from an unknown issuer.
                if tls::is_self_signed(&c) {
                    roots.add(c).map_err(|e| {
                        crate::Error::Config(format!("ca_file {}: {e}", path.display()))
                    })?;
                    n += 1;
                } else {
                    intermediates.push(c);
                }
            }
            if n == 0 {
                return Err(crate::Error::Config(format!(
                    "ca_file {} holds no root certificate",
                    path.display()
                )));
            }
        }
        let roots = Arc::new(roots);
        let store = Arc::new(TrustStore {
            roots: roots.clone(),
            known_intermediates: std::sync::Mutex::new(intermediates),
        });
        let mta = MtaStsClient::new(roots, cfg.mta_sts_port, cfg.command_timeout())?;
        let c1 = cfg.clone();
        let c2 = cfg.clone();
        Ok(Arc::new(Engine {
            sem: Semaphore::new(cfg.max_concurrent_probes.max(1)),
            probes: AtomicU64::new(0),
            hosts: SingleFlight::new(move |h: &HostProbe| ttl_host(&c1, h)),
            domains: SingleFlight::new(move |d: &DomainReport| {
                if d.verdict == Verdict::Secure {
                    Duration::from_secs(c2.ttl_secure)
                } else {
                    Duration::from_secs(c2.ttl_failure)
                }
            }),
            cfg,
            dns,
            store,
            mta,
        }))
    }

    /// Host facts through the host cache (single-flight) or fresh.
    async fn host(self: &Arc<Self>, host: String, cached: bool) -> Arc<HostProbe> {
        if !cached {
            return Arc::new(self.probe_host(&host).await);
        }
        let key = format!("{host}:{}", self.cfg.smtp_port);
        let this = self.clone();
        let h2 = host.clone();
        match self
            .hosts
            .get_or_start(&key, move || async move { this.probe_host(&h2).await })
        {
            Lookup::Hit(v) => v,
            Lookup::Wait(rx) => match SingleFlight::wait(rx).await {
                Some(v) => v,
                None => Arc::new(failed_host(
                    &host,
                    self.cfg.smtp_port,
                    "host probe task failed",
                )),
            },
        }
    }

    /// Probes one MX host: addresses, TLSA, SMTP, STARTTLS, TLS, legacy ClientHellos, DANE, grade.
    pub async fn probe_host(&self, host: &str) -> HostProbe {
        let _permit = self.sem.acquire().await;
        self.probes.fetch_add(1, Ordering::SeqCst);
        let t0 = Instant::now();
        let host = bare(host);
        let port = self.cfg.smtp_port;
        let mut hp = failed_host(&host, port, "");
        hp.address_error = None;
        let tlsa_name = format!("_{port}._tcp.{host}");
        let (addrs, tlsa) = tokio::join!(
            self.dns.addresses(&host),
            self.dns.lookup(&tlsa_name, RecordType::TLSA)
        );
        let ips = match addrs {
            Err(e) => {
                hp.address_error = Some(e.to_string());
                let r = match e {
                    DnsFailure::Bogus => Reason::host(
                        C::DnssecBogus,
                        &host,
                        format!("address lookup of {host}: {e}"),
                    ),
                    _ => Reason::host(
                        C::DnsFailure,
                        &host,
                        format!("address lookup of {host}: {e}"),
                    ),
                };
                hp.verdict = Some(if r.code == C::DnssecBogus {
                    Verdict::Insecure
                } else {
                    Verdict::Unknown
                });
                hp.reasons.push(r);
                hp.elapsed_ms = t0.elapsed().as_millis() as u64;
                return hp;
            }
            Ok((ips, st)) => {
                hp.address_dnssec = Some(st);
                ips
            }
        };
        hp.addresses = ips.clone();
        if ips.is_empty() {
            hp.address_error = Some("no A/AAAA records".into());
        }
        // SMTP + TLS (and legacy probes concurrently) on the first address that accepts TCP.
        let mut main = None;
        let mut connect_errors = Vec::new();
        for ip in ips.iter().take(4) {
            let addr = SocketAddr::new(*ip, port);
            let (m, l) = tokio::join!(self.main_session(addr, &host), async {
                if self.cfg.legacy_probe {
                    Some(
                        legacy::probe(
                            addr,
                            &host,
                            &self.cfg.ehlo_name,
                            self.cfg.connect_timeout(),
                            self.cfg.command_timeout(),
                        )
                        .await,
                    )
                } else {
                    None
                }
            });
            match &m.0 {
                Err(SmtpError::Connect(e)) => connect_errors.push(format!("{addr}: {e}")),
                Err(SmtpError::Timeout("TCP connect")) => {
                    connect_errors.push(format!("{addr}: connect timed out"))
                }
                _ => {
                    hp.connected = Some(*ip);
                    main = Some((m, l));
                    break;
                }
            }
        }
        let Some(((smtp_res, tls_res), legacy)) = main else {
            hp.reachable = false;
            let text = if ips.is_empty() {
                format!("{host} has no address")
            } else {
                format!("cannot connect: {}", connect_errors.join("; "))
            };
            hp.smtp_error = Some(text.clone());
            hp.reasons.push(Reason::host(C::MxUnreachable, &host, text));
            hp.verdict = Some(Verdict::Unknown);
            hp.dane = tlsa_status(&tlsa, None, &host);
            hp.elapsed_ms = t0.elapsed().as_millis() as u64;
            return hp;
        };
        hp.reachable = true;
        hp.legacy = legacy;
        match &smtp_res {
            Ok(p) => {
                hp.banner = Some(p.banner.clone());
                hp.starttls = true;
            }
            Err(e) => {
                hp.smtp_error = Some(e.to_string());
            }
        }
        let session = match &tls_res {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                hp.tls_error = Some(match e {
                    HandshakeError::Timeout => "TLS handshake timed out".into(),
                    HandshakeError::Failed(m) | HandshakeError::NoCommonProtocol(m) => m.clone(),
                });
                None
            }
            None => None,
        };
        if let Some(s) = session {
            hp.tls = Some(tls_facts(s));
        }
        hp.protocols = protocols(session, tls_res.as_ref(), hp.legacy.as_ref());
        hp.dane = tlsa_status(&tlsa, session, &host);
        hp.grade = grade_host(&hp, session);
        judge_host(&mut hp, &smtp_res, tls_res.as_ref());
        hp.elapsed_ms = t0.elapsed().as_millis() as u64;
        hp
    }

    async fn main_session(
        &self,
        addr: SocketAddr,
        host: &str,
    ) -> (
        Result<smtp::Plaintext, SmtpError>,
        Option<Result<Session, HandshakeError>>,
    ) {
        let cfg = &self.cfg;
        match smtp::starttls(
            addr,
            &cfg.ehlo_name,
            cfg.connect_timeout(),
            cfg.command_timeout(),
        )
        .await
        {
            Err(e) => (Err(e), None),
            Ok((tcp, plain)) => {
                let t = tls::handshake(tcp, host, self.store.clone(), cfg.command_timeout()).await;
                (Ok(plain), Some(t))
            }
        }
    }

    async fn nta(&self, domain: &str) -> (Option<NtaPeer>, Option<Reason>) {
        match self.dns.lookup(domain, RecordType::TXT).await {
            Ok(a) => {
                let rec = a.records.iter().find_map(|r| match r {
                    RData::TXT(t) => {
                        let s: String = t
                            .txt_data
                            .iter()
                            .map(|x| String::from_utf8_lossy(x).into_owned())
                            .collect();
                        peer::is_nta_record(&s).then_some(s)
                    }
                    _ => None,
                });
                (
                    rec.map(|s| peer::parse(&s, util::year_month_now(), a.dnssec)),
                    None,
                )
            }
            Err(e) => (
                None,
                Some(Reason::domain(
                    C::DnsFailure,
                    format!("NTA 7516 TXT lookup: {e}"),
                )),
            ),
        }
    }

    /// Probes a domain. `cached_hosts`: share host probes through the host cache.
    pub async fn probe_domain(self: &Arc<Self>, domain: &str, cached_hosts: bool) -> DomainReport {
        let t0 = Instant::now();
        let probed_at = util::rfc3339(util::unix_now());
        let d = bare(domain);
        let (mx, mta_sts, (nta_peer, nta_err)) = tokio::join!(
            self.dns.lookup(&d, RecordType::MX),
            self.mta.check(&self.dns, &d),
            self.nta(&d)
        );
        let mut report = DomainReport {
            domain: d.clone(),
            verdict: Verdict::Unknown,
            reasons: vec![],
            notes: vec![],
            grade: Grade::from_findings(vec![]),
            mx: vec![],
            mta_sts,
            nta_peer,
            dnssec: DnssecStatus::Indeterminate,
            probed_at,
            elapsed_ms: 0,
        };
        report.notes.extend(nta_err);
        match &report.mta_sts {
            MtaSts::FetchFailed { error, .. } => report.notes.push(Reason::domain(
                C::MtaStsFetchFailed,
                format!("MTA-STS policy not fetched ({error}); proceeding without policy"),
            )),
            MtaSts::DnsFailed { error } => report.notes.push(Reason::domain(
                C::DnsFailure,
                format!("_mta-sts TXT lookup: {error}"),
            )),
            _ => {}
        }
        let done = |mut r: DomainReport, v: Verdict, reason: Option<Reason>| {
            r.verdict = v;
            r.reasons.extend(reason);
            r.elapsed_ms = t0.elapsed().as_millis() as u64;
            r
        };
        let hosts: Vec<(Option<u16>, String)> = match mx {
            Err(DnsFailure::Bogus) => {
                report.dnssec = DnssecStatus::Bogus;
                return done(
                    report,
                    Verdict::Insecure,
                    Some(Reason::domain(
                        C::DnssecBogus,
                        format!("MX lookup of {d}: DNSSEC validation failed"),
                    )),
                );
            }
            Err(e) => {
                return done(
                    report,
                    Verdict::Unknown,
                    Some(Reason::domain(
                        C::DnsFailure,
                        format!("MX lookup of {d}: {e}"),
                    )),
                )
            }
            Ok(ans) => {
                report.dnssec = ans.dnssec;
                let mut mxs: Vec<(u16, String)> = ans
                    .records
                    .iter()
                    .filter_map(|r| match r {
                        RData::MX(m) => Some((m.preference, bare(&m.exchange.to_ascii()))),
                        _ => None,
                    })
                    .collect();
                if !mxs.is_empty() {
                    if mxs.iter().any(|(_, h)| h.is_empty()) {
                        return done(
                            report,
                            Verdict::Insecure,
                            Some(Reason::domain(
                                C::NullMx,
                                format!("{d} publishes a null MX (RFC 7505): it accepts no mail"),
                            )),
                        );
                    }
                    mxs.sort_by_key(|(p, _)| *p);
                    let mut seen = std::collections::HashSet::new();
                    mxs.retain(|(_, h)| seen.insert(h.clone()));
                    mxs.truncate(self.cfg.max_mx.max(1));
                    mxs.into_iter().map(|(p, h)| (Some(p), h)).collect()
                } else if ans.nxdomain {
                    return done(
                        report,
                        Verdict::Insecure,
                        Some(Reason::domain(
                            C::NoMx,
                            format!("{d} does not exist (NXDOMAIN)"),
                        )),
                    );
                } else {
                    // RFC 5321 §5.1: no MX → the domain itself is the implicit MX, if it has an address.
                    match self.dns.addresses(&d).await {
                        Ok((ips, _)) if !ips.is_empty() => vec![(None, d.clone())],
                        Ok(_) => {
                            return done(
                                report,
                                Verdict::Insecure,
                                Some(Reason::domain(
                                    C::NoMx,
                                    format!("{d} has no MX and no A/AAAA record"),
                                )),
                            )
                        }
                        Err(DnsFailure::Bogus) => {
                            return done(
                                report,
                                Verdict::Insecure,
                                Some(Reason::domain(
                                    C::DnssecBogus,
                                    format!("address lookup of {d}: DNSSEC validation failed"),
                                )),
                            )
                        }
                        Err(e) => {
                            return done(
                                report,
                                Verdict::Unknown,
                                Some(Reason::domain(
                                    C::DnsFailure,
                                    format!("address lookup of {d}: {e}"),
                                )),
                            )
                        }
                    }
                }
            }
        };
        // Probe all hosts concurrently (bounded by the semaphore); report in preference order.
        let handles: Vec<_> = hosts
            .iter()
            .map(|(_, h)| {
                let this = self.clone();
                let h = h.clone();
                tokio::spawn(async move { this.host(h, cached_hosts).await })
            })
            .collect();
        for ((pref, h), handle) in hosts.into_iter().zip(handles) {
            let probe = match handle.await {
                Ok(p) => (*p).clone(),
                Err(e) => failed_host(&h, self.cfg.smtp_port, &format!("probe task failed: {e}")),
            };
            report.mx.push(mx_report(pref, probe, &report.mta_sts));
        }
        judge_domain(&mut report);
        report.elapsed_ms = t0.elapsed().as_millis() as u64;
        report
    }
}

fn failed_host(host: &str, port: u16, why: &str) -> HostProbe {
    let mut reasons = vec![];
    if !why.is_empty() {
        reasons.push(Reason::host(C::ProbeFailed, host, why));
    }
    HostProbe {
        host: host.to_string(),
        port,
        addresses: vec![],
        address_dnssec: None,
        address_error: None,
        connected: None,
        reachable: false,
        banner: None,
        starttls: false,
        smtp_error: None,
        tls: None,
        tls_error: None,
        protocols: Protocols {
            tls1_0: Support::Unknown,
            tls1_1: Support::Unknown,
            tls1_2: Support::Unknown,
            tls1_3: Support::Unknown,
        },
        legacy: None,
        dane: DaneStatus::NoTlsa {
            dnssec: DnssecStatus::Indeterminate,
        },
        grade: Grade::from_findings(vec![]),
        reasons,
        verdict: Some(Verdict::Unknown),
        notes: vec![],
        probed_at: util::rfc3339(util::unix_now()),
        elapsed_ms: 0,
    }
}

fn version_str(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

fn tls_facts(s: &Session) -> TlsFacts {
    let certificates = s
        .cert
        .chain
        .iter()
        .map(|c| {
            let spki = dane::spki_sha256_hex(c).unwrap_or_default();
            match x509_parser::parse_x509_certificate(c.as_ref()) {
                Ok((_, x)) => {
                    let san = x
                        .subject_alternative_name()
                        .ok()
                        .flatten()
                        .map(|e| {
                            e.value
                                .general_names
                                .iter()
                                .filter_map(|g| match g {
                                    x509_parser::extensions::GeneralName::DNSName(n) => {
                                        Some(n.to_string())
                                    }
                                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                                        Some(format!("IP:{}", hex::encode(b)))
                                    }
                                    _ => None,
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    CertInfo {
                        subject: x.subject().to_string(),
                        issuer: x.issuer().to_string(),
                        san,
                        not_before: util::rfc3339(x.validity().not_before.timestamp()),
                        not_after: util::rfc3339(x.validity().not_after.timestamp()),
                        spki_sha256: spki,
                    }
                }
                Err(e) => CertInfo {
                    subject: format!("unparsable: {e}"),
                    issuer: String::new(),
                    san: vec![],
                    not_before: String::new(),
                    not_after: String::new(),
                    spki_sha256: spki,
                },
            }
        })
        .collect();
    TlsFacts {
        version: version_str(s.version),
        cipher_suite: grade::suite_name(u16::from(s.suite)),
        key_exchange: s.group.map(|g| grade::group_category(g).0),
        pkix_valid: s.cert.problems.is_empty(),
        cert_problems: s.cert.problems.clone(),
        certificates,
    }
}

fn protocols(
    session: Option<&Session>,
    tls_res: Option<&Result<Session, HandshakeError>>,
    legacy: Option<&LegacyPosture>,
) -> Protocols {
    let tls1_3 = match tls_res {
        Some(Ok(s)) if s.version == rustls::ProtocolVersion::TLSv1_3 => Support::Offered,
        Some(Ok(_)) | Some(Err(HandshakeError::NoCommonProtocol(_))) => Support::NotOffered,
        _ => Support::Unknown,
    };
    let (tls1_0, tls1_1, mut tls1_2) = match legacy {
        Some(l) => (
            l.tls1_0.support(0x0301),
            l.tls1_1.support(0x0302),
            l.tls1_2.support(0x0303),
        ),
        None => (Support::Unknown, Support::Unknown, Support::Unknown),
    };
    if session.is_some_and(|s| s.version == rustls::ProtocolVersion::TLSv1_2) {
        tls1_2 = Support::Offered;
    }
    Protocols {
        tls1_0,
        tls1_1,
        tls1_2,
        tls1_3,
    }
}

fn tlsa_status(
    tlsa: &Result<crate::dns::Answer, DnsFailure>,
    session: Option<&Session>,
    host: &str,
) -> DaneStatus {
    match tlsa {
        Err(DnsFailure::Bogus) => DaneStatus::Bogus,
        Err(e) => DaneStatus::LookupFailed {
            error: e.to_string(),
        },
        Ok(a) => {
            let records: Vec<TlsaRecord> = a
                .records
                .iter()
                .filter_map(|r| match r {
                    RData::TLSA(t) => Some(TlsaRecord {
                        usage: u8::from(t.cert_usage),
                        selector: u8::from(t.selector),
                        matching: u8::from(t.matching),
                        data: hex::encode(&t.cert_data),
                    }),
                    _ => None,
                })
                .collect();
            if records.is_empty() {
                DaneStatus::NoTlsa { dnssec: a.dnssec }
            } else if a.dnssec != DnssecStatus::Secure {
                DaneStatus::Insecure { records }
            } else {
                match session {
                    None => DaneStatus::NotChecked { records },
                    Some(s) => dane::verify(&records, &s.cert.chain, host, UnixTime::now()),
                }
            }
        }
    }
}

fn grade_host(hp: &HostProbe, session: Option<&Session>) -> Grade {
    let mut f = Vec::new();
    if hp.reachable && !hp.starttls {
        f.push(finding("starttls", "not offered", Category::Insufficient));
    }
    if let Some(s) = session {
        let v = version_str(s.version);
        f.push(finding(
            "tls_version",
            v.clone(),
            grade::version_category(&v),
        ));
        let code = u16::from(s.suite);
        f.push(finding(
            "cipher_suite",
            grade::suite_name(code),
            grade::suite_category(code),
        ));
        if let Some(g) = s.group {
            let (name, cat) = grade::group_category(g);
            f.push(finding("key_exchange", name, cat));
        }
        for (i, c) in s.cert.chain.iter().enumerate() {
            f.extend(grade::cert_findings(c.as_ref(), i));
        }
    }
    if let Some(l) = &hp.legacy {
        for (r, v) in [(&l.tls1_0, 0x0301u16), (&l.tls1_1, 0x0302)] {
            if r.support(v) == Support::Offered {
                f.push(finding(
                    "protocol_accepted",
                    legacy::version_name(v),
                    Category::Insufficient,
                ));
            }
        }
        if hp.protocols.tls1_2 == Support::Offered
            && session.is_none_or(|s| s.version != rustls::ProtocolVersion::TLSv1_2)
        {
            f.push(finding(
                "protocol_accepted",
                "TLSv1.2",
                Category::Sufficient,
            ));
        }
        let mut suites = Vec::new();
        for (r, v) in [
            (&l.tls1_0, 0x0301u16),
            (&l.tls1_1, 0x0302),
            (&l.tls1_2_insufficient, 0x0303),
            (&l.tls1_2_phase_out, 0x0303),
        ] {
            if let HelloResult::Accepted {
                suite_code,
                version_code,
                suite,
                ..
            } = r
            {
                if *version_code == v && !suites.contains(suite_code) {
                    suites.push(*suite_code);
                    f.push(finding(
                        "suite_accepted",
                        suite.clone(),
                        grade::suite_category(*suite_code),
                    ));
                }
            }
        }
    }
    Grade::from_findings(f)
}

/// Host verdict before MTA-STS.
fn judge_host(
    hp: &mut HostProbe,
    smtp_res: &Result<smtp::Plaintext, SmtpError>,
    tls_res: Option<&Result<Session, HandshakeError>>,
) {
    let host = hp.host.clone();
    let mut reasons = Vec::new();
    let mut unknown = Vec::new();
    let mut notes = Vec::new();
    match smtp_res {
        Err(SmtpError::NoStarttls) => reasons.push(Reason::host(
            C::StarttlsMissing,
            &host,
            "EHLO does not offer STARTTLS",
        )),
        Err(e @ SmtpError::StarttlsRejected(_)) => {
            reasons.push(Reason::host(C::StarttlsFailed, &host, e.to_string()))
        }
        Err(SmtpError::Injection) => reasons.push(Reason::host(
            C::StarttlsInjection,
            &host,
            SmtpError::Injection.to_string(),
        )),
        Err(e @ SmtpError::Timeout(_)) => {
            unknown.push(Reason::host(C::Timeout, &host, e.to_string()))
        }
        Err(e) => reasons.push(Reason::host(C::SmtpError, &host, e.to_string())),
        Ok(_) => {}
    }
    let legacy_only = hp.legacy.as_ref().is_some_and(|l| {
        (l.tls1_0.support(0x0301) == Support::Offered
            || l.tls1_1.support(0x0302) == Support::Offered)
            && l.tls1_2.support(0x0303) != Support::Offered
    });
    match tls_res {
        Some(Err(HandshakeError::Timeout)) => {
            unknown.push(Reason::host(C::Timeout, &host, "TLS handshake timed out"))
        }
        Some(Err(e)) => {
            if legacy_only {
                reasons.push(Reason::host(C::TlsVersionInsufficient, &host, "the server only accepts TLS 1.0/1.1 (NCSC: insufficient); TLS 1.2 and 1.3 are refused"));
            } else {
                let m = match e {
                    HandshakeError::Failed(m) | HandshakeError::NoCommonProtocol(m) => m.clone(),
                    HandshakeError::Timeout => String::new(),
                };
                reasons.push(Reason::host(
                    C::TlsHandshakeFailed,
                    &host,
                    format!("TLS 1.2/1.3 handshake failed: {m}"),
                ));
            }
        }
        Some(Ok(s)) => {
            let code = u16::from(s.suite);
            if grade::suite_category(code) == Category::Insufficient {
                reasons.push(Reason::host(
                    C::TlsCipherInsufficient,
                    &host,
                    format!(
                        "negotiated suite {} is insufficient",
                        grade::suite_name(code)
                    ),
                ));
            }
            // Authentication: DANE when secure TLSA exists, otherwise PKIX.
            let cert_reasons: Vec<Reason> = s
                .cert
                .problems
                .iter()
                .map(|p| cert_reason(&host, p))
                .collect();
            match &hp.dane {
                DaneStatus::Match { matched, .. } => {
                    for mut r in cert_reasons {
                        r.text = format!("{} (not used: authenticated by DANE {matched})", r.text);
                        notes.push(r);
                    }
                }
                DaneStatus::Mismatch { records } => reasons.push(Reason::host(
                    C::DaneMismatch,
                    &host,
                    format!("none of the {} DNSSEC-secure TLSA record(s) at _{}._tcp.{host} matches the certificate chain", records.len(), hp.port),
                )),
                DaneStatus::NoUsableRecords { .. } => reasons.push(Reason::host(C::DaneNoUsableRecords, &host, "secure TLSA records exist but none has usage 2 or 3 with a known selector/matching type")),
                DaneStatus::Bogus => reasons.push(Reason::host(C::DnssecBogus, &host, format!("TLSA lookup of _{}._tcp.{host}: DNSSEC validation failed", hp.port))),
                DaneStatus::LookupFailed { error } => unknown.push(Reason::host(C::DnsFailure, &host, format!("TLSA lookup: {error}"))),
                DaneStatus::NoTlsa { .. } | DaneStatus::Insecure { .. } | DaneStatus::NotChecked { .. } => reasons.extend(cert_reasons),
            }
        }
        None => {
            if let DaneStatus::Bogus = hp.dane {
                reasons.push(Reason::host(
                    C::DnssecBogus,
                    &host,
                    "TLSA lookup: DNSSEC validation failed",
                ));
            }
        }
    }
    if let Some(l) = &hp.legacy {
        let mut acc = Vec::new();
        if l.tls1_0.support(0x0301) == Support::Offered {
            acc.push("TLS 1.0".to_string());
        }
        if l.tls1_1.support(0x0302) == Support::Offered {
            acc.push("TLS 1.1".to_string());
        }
        if let Some(s) = l.tls1_2_insufficient.accepted_suite(0x0303) {
            acc.push(format!("insufficient suite {s}"));
        }
        if !acc.is_empty() && tls_res.is_some_and(|r| r.is_ok()) {
            notes.push(Reason::host(
                C::TlsLegacyAccepted,
                &host,
                format!("the server also accepts {}", acc.join(", ")),
            ));
        }
    }
    hp.verdict = Some(if !reasons.is_empty() {
        Verdict::Insecure
    } else if !unknown.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Secure
    });
    reasons.extend(unknown);
    hp.reasons = reasons;
    hp.notes = notes;
}

fn cert_reason(host: &str, p: &tls::CertProblem) -> Reason {
    use tls::CertProblem as P;
    let (code, text) = match p {
        P::Expired { not_after } => (C::CertExpired, format!("certificate expired on {}", util::rfc3339(*not_after))),
        P::NotYetValid { not_before } => (C::CertNotYetValid, format!("certificate not valid before {}", util::rfc3339(*not_before))),
        P::SelfSigned => (C::CertSelfSigned, "self-signed certificate (no DANE record to vouch for it)".to_string()),
        P::UnknownIssuer => (C::CertUnknownIssuer, "certificate chain does not lead to a trusted root".to_string()),
        P::IncompleteChain => (C::CertIncompleteChain, "the server does not send the intermediate certificate(s) needed to reach a trusted root".to_string()),
        P::NameMismatch { presented } => (C::CertNameMismatch, format!("certificate is not valid for {host} (names: {})", presented.join(", "))),
        P::Invalid { error } => (C::CertInvalid, format!("invalid certificate: {error}")),
    };
    Reason::host(code, host, text)
}

fn mx_report(preference: Option<u16>, probe: HostProbe, mta: &MtaSts) -> MxReport {
    let listed = match mta {
        MtaSts::Policy { policy, .. } => Some(policy.lists(&probe.host)),
        _ => None,
    };
    let mut verdict = probe.verdict.unwrap_or(Verdict::Unknown);
    let mut reasons = probe.reasons.clone();
    let notes = probe.notes.clone();
    if let (Some(p), Some(false)) = (mta.enforced(), listed) {
        if probe.reachable {
            reasons.insert(
                0,
                Reason::host(
                    C::MtaStsMxNotListed,
                    &probe.host,
                    format!(
                        "the MTA-STS policy (enforce) lists only {}",
                        p.mx.join(", ")
                    ),
                ),
            );
            verdict = Verdict::Insecure;
        }
    }
    MxReport {
        preference,
        probe,
        mta_sts_listed: listed,
        verdict,
        reasons,
        notes,
    }
}

/// Domain verdict from the host verdicts (see [`crate::verdict`] for the rule).
fn judge_domain(r: &mut DomainReport) {
    let reachable: Vec<&MxReport> = r.mx.iter().filter(|m| m.probe.reachable).collect();
    for m in r.mx.iter().filter(|m| !m.probe.reachable) {
        // Unreachable hosts: blocking only if nothing else was reachable (handled below).
        if !reachable.is_empty() {
            for x in &m.reasons {
                let mut x = x.clone();
                if x.code == C::MxUnreachable {
                    x.text = format!(
                        "{} (skipped: Stalwart falls through to the next MX)",
                        x.text
                    );
                }
                r.notes.push(x);
            }
        }
    }
    for m in &r.mx {
        r.notes.extend(m.notes.iter().cloned());
    }
    if reachable.is_empty() {
        r.verdict = if r.mx.iter().any(|m| m.verdict == Verdict::Insecure) {
            Verdict::Insecure
        } else {
            Verdict::Unknown
        };
        for m in &r.mx {
            r.reasons.extend(m.reasons.iter().cloned());
        }
        r.grade = Grade::from_findings(vec![]);
        return;
    }
    r.grade = Grade::worst(reachable.iter().map(|m| &m.probe.grade));
    let insecure = reachable.iter().any(|m| m.verdict == Verdict::Insecure);
    let unknown = reachable.iter().any(|m| m.verdict == Verdict::Unknown);
    for m in &reachable {
        if m.verdict != Verdict::Secure {
            r.reasons.extend(m.reasons.iter().cloned());
        }
    }
    r.verdict = if insecure {
        Verdict::Insecure
    } else if unknown {
        Verdict::Unknown
    } else {
        Verdict::Secure
    };
}

/// An `Unknown` report for a lookup whose time budget ran out.
pub(crate) fn budget_exceeded(domain: &str, budget: Duration) -> DomainReport {
    DomainReport {
        domain: bare(domain),
        verdict: Verdict::Unknown,
        reasons: vec![Reason::domain(
            C::Timeout,
            format!("SmartTLS probe did not finish within the {} ms budget (it goes on in the background)", budget.as_millis()),
        )],
        notes: vec![],
        grade: Grade::from_findings(vec![]),
        mx: vec![],
        mta_sts: MtaSts::NotChecked,
        nta_peer: None,
        dnssec: DnssecStatus::Indeterminate,
        probed_at: util::rfc3339(util::unix_now()),
        elapsed_ms: budget.as_millis() as u64,
    }
}

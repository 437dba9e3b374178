//! The probe: the I/O of SmartTLS. MX resolution, per-host SMTP/STARTTLS/TLS sessions with the
//! legacy ClientHellos next to them, the TLSA, MTA-STS and NTA 7516 lookups, and the orchestration
//! of host probes (concurrent, bounded, cached single-flight) into a domain report.
//!
//! What the probe gathers is turned into report facts by [`crate::facts`] and judged by
//! [`crate::judge`]; this module only decides what to ask, of whom, and in which order.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::RecordType;
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::Semaphore;

use crate::cache::{Lookup, SingleFlight};
use crate::config::SmartTlsConfig;
use crate::dns::{bare, Addresses, Answer, Dns, DnsFailure, DnssecStatus};
use crate::error::Error;
use crate::facts::{self, Tlsa};
use crate::grade::Grade;
use crate::judge::{self, HostJudgement, MxPlan, MxTarget, Stop};
use crate::legacy::{self, LegacyPosture};
use crate::mta_sts::{MtaSts, MtaStsClient};
use crate::peer::{self, NtaPeer};
use crate::report::{DomainReport, HostProbe};
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

/// How long a result is cached: secure results for `ttl_secure`, everything else for `ttl_failure`.
fn ttl(cfg: &SmartTlsConfig, verdict: Option<Verdict>) -> Duration {
    if verdict == Some(Verdict::Secure) {
        Duration::from_secs(cfg.ttl_secure)
    } else {
        Duration::from_secs(cfg.ttl_failure)
    }
}

/// What one SMTP session on one address returned: the plaintext part, and the TLS handshake when
/// STARTTLS was accepted.
type MainSession = (
    Result<smtp::Plaintext, SmtpError>,
    Option<Result<Session, HandshakeError>>,
);

/// The first address of a host that accepted TCP: the session there and the legacy probes beside it.
struct Connected {
    ip: IpAddr,
    smtp: Result<smtp::Plaintext, SmtpError>,
    tls: Option<Result<Session, HandshakeError>>,
    legacy: Option<LegacyPosture>,
}

impl Engine {
    pub fn new(cfg: SmartTlsConfig) -> Result<Arc<Self>, Error> {
        let dns = Dns::new(&cfg)?;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut intermediates = Vec::new();
        if let Some(path) = &cfg.ca_file {
            intermediates = load_ca_file(path, &mut roots)?;
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
            hosts: SingleFlight::new(move |h: &HostProbe| ttl(&c1, h.verdict)),
            domains: SingleFlight::new(move |d: &DomainReport| ttl(&c2, Some(d.verdict))),
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
        let mut hp = facts::unprobed_host(&host, port);
        let tlsa_name = format!("_{port}._tcp.{host}");
        // The TLSA lookup at the host's own name runs beside the address lookup (the common case,
        // no CNAME, needs nothing else).
        let (addrs, own_tlsa) = tokio::join!(
            self.dns.host_addresses(&host),
            self.dns.lookup(&tlsa_name, RecordType::TLSA)
        );
        let addrs = match addrs {
            Err(e) => {
                hp.address_error = Some(e.to_string());
                set_judgement(&mut hp, judge::address_failure(&host, &e));
                hp.dane = facts::tlsa_status(
                    &Tlsa::NotLooked(format!("address lookup failed ({e}): DANE cannot apply")),
                    None,
                    &host,
                    UnixTime::now(),
                );
                hp.elapsed_ms = t0.elapsed().as_millis() as u64;
                return hp;
            }
            Ok(a) => a,
        };
        hp.address_dnssec = Some(addrs.dnssec);
        hp.addresses = addrs.ips.clone();
        if addrs.ips.is_empty() {
            hp.address_error = Some("no A/AAAA records".into());
        }
        let (tlsa, session) = tokio::join!(
            self.tlsa(&host, &addrs, own_tlsa),
            self.connect_first(&addrs.ips, &host)
        );
        if let Tlsa::Looked { base, .. } = &tlsa {
            hp.tlsa_base = Some(base.clone());
        }
        match session {
            Ok(c) => record_session(&mut hp, c, &tlsa),
            Err(why) => {
                hp.reachable = false;
                hp.smtp_error = Some(why.clone());
                set_judgement(&mut hp, judge::unreachable(&host, &why));
                hp.dane = facts::tlsa_status(&tlsa, None, &host, UnixTime::now());
            }
        }
        hp.elapsed_ms = t0.elapsed().as_millis() as u64;
        hp
    }

    /// The TLSA records that apply to `host` (RFC 7672 §2.2.2). Without a CNAME: those at
    /// `_<port>._tcp.<host>`. For an alias whose addresses are DNSSEC-secure along the whole chain:
    /// those at the CNAME-expanded name, else (none there) at the original name. For an alias whose
    /// addresses are not secure: none, DANE does not apply.
    async fn tlsa(&self, host: &str, a: &Addresses, own: Result<Answer, DnsFailure>) -> Tlsa {
        let port = self.cfg.smtp_port;
        let own = Tlsa::Looked {
            base: host.to_string(),
            answer: own,
        };
        if a.name == host {
            return own;
        }
        if a.dnssec != DnssecStatus::Secure {
            return Tlsa::NotLooked(format!(
                "{host} is an alias of {} whose addresses are not DNSSEC-secure ({}): DANE does \
                 not apply (RFC 7672 §2.2.2)",
                a.name,
                a.dnssec.as_str()
            ));
        }
        let answer = self
            .dns
            .lookup(&format!("_{port}._tcp.{}", a.name), RecordType::TLSA)
            .await;
        match answer {
            Ok(ans) if ans.records.is_empty() => own,
            answer => Tlsa::Looked {
                base: a.name.clone(),
                answer,
            },
        }
    }

    /// SMTP + TLS (and the legacy probes concurrently) on the first of up to four addresses that
    /// accepts TCP. `Err`: why no address did.
    async fn connect_first(&self, ips: &[IpAddr], host: &str) -> Result<Connected, String> {
        let port = self.cfg.smtp_port;
        let mut connect_errors = Vec::new();
        for ip in ips.iter().take(4) {
            let addr = SocketAddr::new(*ip, port);
            let ((smtp, tls), legacy) =
                tokio::join!(self.main_session(addr, host), self.legacy(addr, host));
            match &smtp {
                Err(SmtpError::Connect(e)) => connect_errors.push(format!("{addr}: {e}")),
                Err(SmtpError::Timeout(smtp::Step::Connect)) => {
                    connect_errors.push(format!("{addr}: connect timed out"))
                }
                _ => {
                    return Ok(Connected {
                        ip: *ip,
                        smtp,
                        tls,
                        legacy,
                    })
                }
            }
        }
        Err(if ips.is_empty() {
            format!("{host} has no address")
        } else {
            format!("cannot connect: {}", connect_errors.join("; "))
        })
    }

    /// EHLO, STARTTLS and the TLS handshake with the recording verifier.
    async fn main_session(&self, addr: SocketAddr, host: &str) -> MainSession {
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

    /// The raw legacy ClientHellos, when `legacy_probe` is on.
    async fn legacy(&self, addr: SocketAddr, host: &str) -> Option<LegacyPosture> {
        if !self.cfg.legacy_probe {
            return None;
        }
        Some(
            legacy::probe(
                addr,
                host,
                &self.cfg.ehlo_name,
                self.cfg.connect_timeout(),
                self.cfg.command_timeout(),
            )
            .await,
        )
    }

    /// The `v=NTA7516-1` record of `domain`, if any.
    pub(crate) async fn nta(&self, domain: &str) -> Result<Option<NtaPeer>, DnsFailure> {
        let a = self.dns.lookup(domain, RecordType::TXT).await?;
        Ok(facts::nta_record(&a).map(|s| peer::parse(&s, util::year_month_now(), a.dnssec)))
    }

    /// Probes a domain. `cached_hosts`: share host probes through the host cache.
    pub async fn probe_domain(self: &Arc<Self>, domain: &str, cached_hosts: bool) -> DomainReport {
        let t0 = Instant::now();
        let probed_at = util::rfc3339(util::unix_now());
        let d = bare(domain);
        let (mx, mta_sts, nta) = tokio::join!(
            self.dns.lookup(&d, RecordType::MX),
            self.mta.check(&self.dns, &d),
            self.nta(&d)
        );
        let mut report = new_report(&d, probed_at, mta_sts);
        match nta {
            Ok(p) => report.nta_peer = p,
            Err(e) => report.notes.push(judge::nta_lookup_note(&e)),
        }
        report.notes.extend(judge::mta_sts_note(&report.mta_sts));
        match self.mx_targets(&d, mx, &mut report).await {
            Ok(targets) => {
                self.probe_hosts(targets, cached_hosts, &mut report).await;
                judge::judge_domain(&mut report);
            }
            Err(stop) => {
                report.verdict = stop.verdict;
                report.reasons.push(stop.reason);
            }
        }
        report.elapsed_ms = t0.elapsed().as_millis() as u64;
        report
    }

    /// The hosts to probe for `d`, from its MX answer (recording its DNSSEC status in `report`), or
    /// the implicit MX after an address lookup.
    async fn mx_targets(
        &self,
        d: &str,
        mx: Result<Answer, DnsFailure>,
        report: &mut DomainReport,
    ) -> Result<Vec<MxTarget>, Stop> {
        let ans = match mx {
            Err(e) => {
                if e == DnsFailure::Bogus {
                    report.dnssec = DnssecStatus::Bogus;
                }
                return Err(judge::mx_lookup_failed(d, &e));
            }
            Ok(ans) => ans,
        };
        report.dnssec = ans.dnssec;
        let plan = judge::mx_plan(d, facts::mx_records(&ans), ans.nxdomain, self.cfg.max_mx);
        match plan {
            MxPlan::Hosts(targets) => Ok(targets),
            MxPlan::Stop(stop) => Err(stop),
            MxPlan::Implicit => {
                judge::implicit_mx(d, &self.dns.addresses(d).await).map(|target| vec![target])
            }
        }
    }

    /// Probes all hosts concurrently (bounded by the semaphore) and adds them to `report` in
    /// preference order.
    async fn probe_hosts(
        self: &Arc<Self>,
        targets: Vec<MxTarget>,
        cached_hosts: bool,
        report: &mut DomainReport,
    ) {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| {
                let this = self.clone();
                let h = t.host.clone();
                tokio::spawn(async move { this.host(h, cached_hosts).await })
            })
            .collect();
        for (t, handle) in targets.into_iter().zip(handles) {
            let probe = match handle.await {
                Ok(p) => (*p).clone(),
                Err(e) => failed_host(
                    &t.host,
                    self.cfg.smtp_port,
                    &format!("probe task failed: {e}"),
                ),
            };
            report
                .mx
                .push(judge::mx_report(t.preference, probe, &report.mta_sts));
        }
    }
}

/// Reads the configured CA file into `roots` (self-signed certificates) and returns the others,
/// which are used only to tell an incomplete chain from an unknown issuer.
fn load_ca_file(
    path: &std::path::Path,
    roots: &mut rustls::RootCertStore,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let bad = |e: &dyn std::fmt::Display| Error::Config(format!("ca_file {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
    let mut intermediates = Vec::new();
    let mut n = 0;
    for c in certs {
        let c = c.map_err(|e| bad(&e))?;
        if tls::is_self_signed(&c) {
            roots.add(c).map_err(|e| bad(&e))?;
            n += 1;
        } else {
            intermediates.push(c);
        }
    }
    if n == 0 {
        return Err(Error::Config(format!(
            "ca_file {} holds no root certificate",
            path.display()
        )));
    }
    Ok(intermediates)
}

/// Records the facts of a reachable host's session in `hp`, then grades and judges it.
fn record_session(hp: &mut HostProbe, c: Connected, tlsa: &Tlsa) {
    hp.connected = Some(c.ip);
    hp.reachable = true;
    hp.legacy = c.legacy;
    match &c.smtp {
        Ok(p) => {
            hp.banner = Some(p.banner.clone());
            hp.starttls = true;
        }
        Err(e) => hp.smtp_error = Some(e.to_string()),
    }
    let session = match &c.tls {
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
    hp.tls = session.map(facts::tls_facts);
    hp.protocols = facts::protocols(session, c.tls.as_ref(), hp.legacy.as_ref());
    hp.dane = facts::tlsa_status(tlsa, session, &hp.host, UnixTime::now());
    hp.grade = judge::grade_host(hp, session);
    set_judgement(hp, judge::judge_host(hp, &c.smtp, c.tls.as_ref()));
}

fn set_judgement(hp: &mut HostProbe, j: HostJudgement) {
    hp.verdict = Some(j.verdict);
    hp.reasons = j.reasons;
    hp.notes = j.notes;
}

/// A host whose probe could not run (`why`: the internal error).
fn failed_host(host: &str, port: u16, why: &str) -> HostProbe {
    let mut hp = facts::unprobed_host(host, port);
    hp.reasons.push(Reason::host(C::ProbeFailed, host, why));
    hp
}

/// The report of `d` before its MX hosts are known.
fn new_report(d: &str, probed_at: String, mta_sts: MtaSts) -> DomainReport {
    DomainReport {
        domain: d.to_string(),
        verdict: Verdict::Unknown,
        reasons: vec![],
        notes: vec![],
        grade: Grade::from_findings(vec![]),
        mx: vec![],
        mta_sts,
        nta_peer: None,
        dnssec: DnssecStatus::Indeterminate,
        probed_at,
        elapsed_ms: 0,
    }
}

/// An `Unknown` report for a lookup whose time budget ran out.
pub(crate) fn budget_exceeded(domain: &str, budget: Duration) -> DomainReport {
    let mut r = new_report(
        &bare(domain),
        util::rfc3339(util::unix_now()),
        MtaSts::NotChecked,
    );
    r.reasons.push(Reason::domain(
        C::Timeout,
        format!(
            "SmartTLS probe did not finish within the {} ms budget (it goes on in the background)",
            budget.as_millis()
        ),
    ));
    r.elapsed_ms = budget.as_millis() as u64;
    r
}

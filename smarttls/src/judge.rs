//! Judgement: pure functions from what a probe observed to verdicts, reasons and grades.
//!
//! [`crate::probe`] gathers the observations (DNS answers, the SMTP dialogue, the TLS session, the
//! legacy ClientHello results, the DANE status) and hands them over; this module applies the rules
//! of [`crate::verdict`] to them and grades the host by the NCSC lists of [`crate::grade`]. Nothing
//! here does I/O or keeps state, so every decision can be tested from plain values.
//!
//! The decisions, in the order a probe meets them:
//! - the domain: MX lookup failures, null MX, NXDOMAIN, the implicit MX ([`mx_plan`],
//!   [`implicit_mx`]) and the notes for MTA-STS and the NTA 7516 record;
//! - one host: address failures, unreachable hosts, then [`judge_host`] (STARTTLS, TLS, suite,
//!   authentication by DANE or PKIX, legacy protocols) and [`grade_host`];
//! - the MTA-STS `enforce` listing per host ([`mx_report`]) and the domain verdict from the host
//!   verdicts ([`judge_domain`]).

use std::net::IpAddr;

use crate::dane::DaneStatus;
use crate::dns::{DnsFailure, DnssecStatus};
use crate::grade::{self, finding, Category, Finding, FindingItem, Grade};
use crate::legacy::{HelloResult, LegacyPosture, Support};
use crate::mta_sts::MtaSts;
use crate::report::{DomainReport, HostProbe, MxReport};
use crate::smtp::{self, SmtpError};
use crate::tls::{self, HandshakeError, Session};
use crate::util;
use crate::verdict::{Reason, ReasonCode as C, Verdict};

/// A domain probe that ends before any MX host is probed: the verdict and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stop {
    pub verdict: Verdict,
    pub reason: Reason,
}

impl Stop {
    fn insecure(reason: Reason) -> Stop {
        Stop {
            verdict: Verdict::Insecure,
            reason,
        }
    }
    fn unknown(reason: Reason) -> Stop {
        Stop {
            verdict: Verdict::Unknown,
            reason,
        }
    }
}

/// One host to probe for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MxTarget {
    /// MX preference; `None` for the implicit MX of RFC 5321 §5.1.
    pub preference: Option<u16>,
    /// Host name (no trailing dot).
    pub host: String,
}

/// What the MX answer says about where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MxPlan {
    /// These hosts, in preference order, without duplicates, at most `max_mx`.
    Hosts(Vec<MxTarget>),
    /// No MX records: the domain itself, if it has an address ([`implicit_mx`]).
    Implicit,
    /// No mail can go there.
    Stop(Stop),
}

/// The note for an MTA-STS record whose policy or TXT lookup failed (RFC 8461 §5: proceed without).
pub(crate) fn mta_sts_note(mta_sts: &MtaSts) -> Option<Reason> {
    match mta_sts {
        MtaSts::FetchFailed { error, .. } => Some(Reason::domain(
            C::MtaStsFetchFailed,
            format!("MTA-STS policy not fetched ({error}); proceeding without policy"),
        )),
        MtaSts::InvalidRecord { error } => Some(Reason::domain(
            C::MtaStsInvalidRecord,
            format!("_mta-sts TXT record not usable ({error}); proceeding without policy"),
        )),
        MtaSts::DnsFailed { error } => Some(Reason::domain(
            C::DnsFailure,
            format!("_mta-sts TXT lookup: {error}"),
        )),
        _ => None,
    }
}

/// The note for a failed lookup of the `v=NTA7516-1` TXT record.
pub(crate) fn nta_lookup_note(e: &DnsFailure) -> Reason {
    Reason::domain(C::DnsFailure, format!("NTA 7516 TXT lookup: {e}"))
}

/// The MX lookup of `domain` failed: bogus DNSSEC is insecure, anything else unknown.
pub(crate) fn mx_lookup_failed(domain: &str, e: &DnsFailure) -> Stop {
    match e {
        DnsFailure::Bogus => Stop::insecure(Reason::domain(
            C::DnssecBogus,
            format!("MX lookup of {domain}: DNSSEC validation failed"),
        )),
        e => Stop::unknown(Reason::domain(
            C::DnsFailure,
            format!("MX lookup of {domain}: {e}"),
        )),
    }
}

/// Where mail for `domain` goes, from its MX records (`(preference, host)`, in answer order) and
/// whether the name does not exist.
pub(crate) fn mx_plan(
    domain: &str,
    mut mxs: Vec<(u16, String)>,
    nxdomain: bool,
    max_mx: usize,
) -> MxPlan {
    if !mxs.is_empty() {
        if mxs.iter().any(|(_, h)| h.is_empty()) {
            return MxPlan::Stop(Stop::insecure(Reason::domain(
                C::NullMx,
                format!("{domain} publishes a null MX (RFC 7505): it accepts no mail"),
            )));
        }
        mxs.sort_by_key(|(p, _)| *p);
        let mut seen = std::collections::HashSet::new();
        mxs.retain(|(_, h)| seen.insert(h.clone()));
        mxs.truncate(max_mx.max(1));
        let hosts = mxs
            .into_iter()
            .map(|(p, host)| MxTarget {
                preference: Some(p),
                host,
            })
            .collect();
        MxPlan::Hosts(hosts)
    } else if nxdomain {
        MxPlan::Stop(Stop::insecure(Reason::domain(
            C::NoMx,
            format!("{domain} does not exist (NXDOMAIN)"),
        )))
    } else {
        MxPlan::Implicit
    }
}

/// RFC 5321 §5.1: without MX the domain itself is the implicit MX, if its address lookup found one.
pub(crate) fn implicit_mx(
    domain: &str,
    addresses: &Result<(Vec<IpAddr>, DnssecStatus), DnsFailure>,
) -> Result<MxTarget, Stop> {
    match addresses {
        Ok((ips, _)) if !ips.is_empty() => Ok(MxTarget {
            preference: None,
            host: domain.to_string(),
        }),
        Ok(_) => Err(Stop::insecure(Reason::domain(
            C::NoMx,
            format!("{domain} has no MX and no A/AAAA record"),
        ))),
        Err(DnsFailure::Bogus) => Err(Stop::insecure(Reason::domain(
            C::DnssecBogus,
            format!("address lookup of {domain}: DNSSEC validation failed"),
        ))),
        Err(e) => Err(Stop::unknown(Reason::domain(
            C::DnsFailure,
            format!("address lookup of {domain}: {e}"),
        ))),
    }
}

/// A host verdict with its blocking reasons and its notes (before MTA-STS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostJudgement {
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub notes: Vec<Reason>,
}

impl HostJudgement {
    /// One reason decides: bogus DNSSEC is insecure, anything else unknown.
    fn single(reason: Reason) -> HostJudgement {
        let verdict = if reason.code == C::DnssecBogus {
            Verdict::Insecure
        } else {
            Verdict::Unknown
        };
        HostJudgement {
            verdict,
            reasons: vec![reason],
            notes: vec![],
        }
    }
}

/// The address lookup of `host` failed.
pub(crate) fn address_failure(host: &str, e: &DnsFailure) -> HostJudgement {
    let code = match e {
        DnsFailure::Bogus => C::DnssecBogus,
        _ => C::DnsFailure,
    };
    HostJudgement::single(Reason::host(
        code,
        host,
        format!("address lookup of {host}: {e}"),
    ))
}

/// No address of `host` accepted a TCP connection (`why`: no address, or the connect errors).
pub(crate) fn unreachable(host: &str, why: &str) -> HostJudgement {
    HostJudgement::single(Reason::host(C::MxUnreachable, host, why))
}

/// What one host's findings amount to, while they are collected.
#[derive(Default)]
struct Findings {
    /// Definite problems: the host is insecure.
    blocking: Vec<Reason>,
    /// Undetermined (timeouts, failed lookups): the host is unknown unless something blocks.
    unknown: Vec<Reason>,
    /// Non-blocking.
    notes: Vec<Reason>,
}

impl Findings {
    fn verdict(self) -> HostJudgement {
        let Findings {
            mut blocking,
            unknown,
            notes,
        } = self;
        let verdict = if !blocking.is_empty() {
            Verdict::Insecure
        } else if !unknown.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Secure
        };
        blocking.extend(unknown);
        HostJudgement {
            verdict,
            reasons: blocking,
            notes,
        }
    }
}

/// Host verdict before MTA-STS, from the host facts (`hp`: DANE, legacy posture) and the results of
/// the SMTP dialogue and the TLS handshake.
pub(crate) fn judge_host(
    hp: &HostProbe,
    smtp_res: &Result<smtp::Plaintext, SmtpError>,
    tls_res: Option<&Result<Session, HandshakeError>>,
) -> HostJudgement {
    let mut f = Findings::default();
    judge_smtp(&mut f, &hp.host, smtp_res);
    match tls_res {
        Some(Err(e)) => judge_handshake_failure(&mut f, hp, e),
        Some(Ok(s)) => judge_session(&mut f, hp, s),
        None => {
            if let DaneStatus::Bogus = hp.dane {
                f.blocking.push(Reason::host(
                    C::DnssecBogus,
                    &hp.host,
                    "TLSA lookup: DNSSEC validation failed",
                ));
            }
        }
    }
    if let Some(l) = &hp.legacy {
        judge_legacy(&mut f, &hp.host, l, tls_res.is_some_and(|r| r.is_ok()));
    }
    f.verdict()
}

/// The plaintext part: STARTTLS offered, accepted, not injected into.
fn judge_smtp(f: &mut Findings, host: &str, smtp_res: &Result<smtp::Plaintext, SmtpError>) {
    match smtp_res {
        Err(SmtpError::NoStarttls) => f.blocking.push(Reason::host(
            C::StarttlsMissing,
            host,
            "EHLO does not offer STARTTLS",
        )),
        Err(e @ SmtpError::StarttlsRejected(_)) => {
            f.blocking
                .push(Reason::host(C::StarttlsFailed, host, e.to_string()))
        }
        Err(SmtpError::Injection) => f.blocking.push(Reason::host(
            C::StarttlsInjection,
            host,
            SmtpError::Injection.to_string(),
        )),
        Err(e @ SmtpError::Timeout(_)) => {
            f.unknown
                .push(Reason::host(C::Timeout, host, e.to_string()))
        }
        Err(e) => f
            .blocking
            .push(Reason::host(C::SmtpError, host, e.to_string())),
        Ok(_) => {}
    }
}

/// The TLS 1.2/1.3 handshake did not complete.
fn judge_handshake_failure(f: &mut Findings, hp: &HostProbe, e: &HandshakeError) {
    let host = &hp.host;
    let m = match e {
        HandshakeError::Timeout => {
            f.unknown
                .push(Reason::host(C::Timeout, host, "TLS handshake timed out"));
            return;
        }
        HandshakeError::Failed(m) | HandshakeError::NoCommonProtocol(m) => m,
    };
    let legacy_only = hp.legacy.as_ref().is_some_and(|l| {
        (l.tls1_0.support(0x0301) == Support::Offered
            || l.tls1_1.support(0x0302) == Support::Offered)
            && l.tls1_2.support(0x0303) != Support::Offered
    });
    if legacy_only {
        f.blocking.push(Reason::host(
            C::TlsVersionInsufficient,
            host,
            "the server only accepts TLS 1.0/1.1 (NCSC: insufficient); TLS 1.2 and 1.3 are refused",
        ));
    } else {
        f.blocking.push(Reason::host(
            C::TlsHandshakeFailed,
            host,
            format!("TLS 1.2/1.3 handshake failed: {m}"),
        ));
    }
}

/// A completed handshake: an acceptable suite, and authentication by DANE when DNSSEC-secure TLSA
/// records exist, otherwise by PKIX.
fn judge_session(f: &mut Findings, hp: &HostProbe, s: &Session) {
    let host = &hp.host;
    let code = u16::from(s.suite);
    if grade::suite_category(code) == Category::Insufficient {
        f.blocking.push(Reason::host(
            C::TlsCipherInsufficient,
            host,
            format!(
                "negotiated suite {} is insufficient",
                grade::suite_name(code)
            ),
        ));
    }
    let cert_reasons: Vec<Reason> = s
        .cert
        .problems
        .iter()
        .map(|p| cert_reason(host, p))
        .collect();
    match &hp.dane {
        DaneStatus::Match { matched, .. } => {
            for mut r in cert_reasons {
                r.text = format!("{} (not used: authenticated by DANE {matched})", r.text);
                f.notes.push(r);
            }
        }
        DaneStatus::Mismatch { records } => f.blocking.push(Reason::host(
            C::DaneMismatch,
            host,
            format!(
                "none of the {} DNSSEC-secure TLSA record(s) at _{}._tcp.{host} matches the certificate chain",
                records.len(),
                hp.port
            ),
        )),
        DaneStatus::NoUsableRecords { .. } => f.blocking.push(Reason::host(
            C::DaneNoUsableRecords,
            host,
            "secure TLSA records exist but none has usage 2 or 3 with a known selector/matching type",
        )),
        DaneStatus::Bogus => f.blocking.push(Reason::host(
            C::DnssecBogus,
            host,
            format!(
                "TLSA lookup of _{}._tcp.{host}: DNSSEC validation failed",
                hp.port
            ),
        )),
        DaneStatus::LookupFailed { error } => f.unknown.push(Reason::host(
            C::DnsFailure,
            host,
            format!("TLSA lookup: {error}"),
        )),
        DaneStatus::NoTlsa { .. } | DaneStatus::Insecure { .. } | DaneStatus::NotChecked { .. } => {
            f.blocking.extend(cert_reasons)
        }
    }
}

/// A note when the server also accepts TLS 1.0/1.1 or an insufficient suite next to a good session.
fn judge_legacy(f: &mut Findings, host: &str, l: &LegacyPosture, session_ok: bool) {
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
    if !acc.is_empty() && session_ok {
        f.notes.push(Reason::host(
            C::TlsLegacyAccepted,
            host,
            format!("the server also accepts {}", acc.join(", ")),
        ));
    }
}

/// The reason for one certificate problem.
fn cert_reason(host: &str, p: &tls::CertProblem) -> Reason {
    use tls::CertProblem as P;
    let (code, text) = match p {
        P::Expired { not_after } => (
            C::CertExpired,
            format!("certificate expired on {}", util::rfc3339(*not_after)),
        ),
        P::NotYetValid { not_before } => (
            C::CertNotYetValid,
            format!("certificate not valid before {}", util::rfc3339(*not_before)),
        ),
        P::SelfSigned => (
            C::CertSelfSigned,
            "self-signed certificate (no DANE record to vouch for it)".to_string(),
        ),
        P::UnknownIssuer => (
            C::CertUnknownIssuer,
            "certificate chain does not lead to a trusted root".to_string(),
        ),
        P::IncompleteChain => (
            C::CertIncompleteChain,
            "the server does not send the intermediate certificate(s) needed to reach a trusted root"
                .to_string(),
        ),
        P::NameMismatch { presented } => (
            C::CertNameMismatch,
            format!(
                "certificate is not valid for {host} (names: {})",
                presented.join(", ")
            ),
        ),
        P::Invalid { error } => (C::CertInvalid, format!("invalid certificate: {error}")),
    };
    Reason::host(code, host, text)
}

/// The NCSC posture grade of a host: STARTTLS, the negotiated session and certificates, and what
/// the legacy ClientHellos found accepted.
pub(crate) fn grade_host(hp: &HostProbe, session: Option<&Session>) -> Grade {
    let mut f = Vec::new();
    if hp.reachable && !hp.starttls {
        f.push(finding(
            FindingItem::Starttls,
            "not offered",
            Category::Insufficient,
        ));
    }
    if let Some(s) = session {
        f.extend(session_findings(s));
    }
    if let Some(l) = &hp.legacy {
        f.extend(legacy_findings(hp, l, session));
    }
    Grade::from_findings(f)
}

/// Findings of the negotiated session: version, suite, key exchange, each certificate.
fn session_findings(s: &Session) -> Vec<Finding> {
    let mut f = Vec::new();
    f.push(finding(
        FindingItem::TlsVersion,
        grade::protocol_name(s.version),
        grade::version_category(s.version),
    ));
    let code = u16::from(s.suite);
    f.push(finding(
        FindingItem::CipherSuite,
        grade::suite_name(code),
        grade::suite_category(code),
    ));
    if let Some(g) = s.group {
        let (name, cat) = grade::group_category(g);
        f.push(finding(FindingItem::KeyExchange, name, cat));
    }
    for (i, c) in s.cert.chain.iter().enumerate() {
        f.extend(grade::cert_findings(c.as_ref(), i));
    }
    f
}

/// Findings of the legacy ClientHellos: old protocol versions and every distinct suite accepted.
fn legacy_findings(hp: &HostProbe, l: &LegacyPosture, session: Option<&Session>) -> Vec<Finding> {
    let mut f = Vec::new();
    for (r, v) in [(&l.tls1_0, 0x0301u16), (&l.tls1_1, 0x0302)] {
        if r.support(v) == Support::Offered {
            f.push(finding(
                FindingItem::ProtocolAccepted,
                crate::legacy::version_name(v),
                Category::Insufficient,
            ));
        }
    }
    if hp.protocols.tls1_2 == Support::Offered
        && session.is_none_or(|s| s.version != rustls::ProtocolVersion::TLSv1_2)
    {
        f.push(finding(
            FindingItem::ProtocolAccepted,
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
                    FindingItem::SuiteAccepted,
                    suite.clone(),
                    grade::suite_category(*suite_code),
                ));
            }
        }
    }
    f
}

/// One MX host in the domain report: its host verdict, made insecure when an MTA-STS policy in
/// `enforce` mode does not list it (and it is reachable).
pub(crate) fn mx_report(preference: Option<u16>, probe: HostProbe, mta: &MtaSts) -> MxReport {
    let listed = match mta {
        // RFC 8461 §5: `mode: none` is treated as no policy.
        MtaSts::Policy { policy, .. } if policy.mode != crate::mta_sts::Mode::None => {
            Some(policy.lists(&probe.host))
        }
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

/// Domain verdict, reasons, notes and grade from the host verdicts (see [`crate::verdict`] for the
/// rule).
pub(crate) fn judge_domain(r: &mut DomainReport) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::unprobed_host;
    use crate::mta_sts::MtaSts;

    fn codes(reasons: &[Reason]) -> Vec<&'static str> {
        reasons.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn mx_plan_sorts_dedups_and_truncates() {
        let mxs = vec![
            (20, "b.example".to_string()),
            (10, "a.example".to_string()),
            (30, "a.example".to_string()),
            (40, "c.example".to_string()),
        ];
        let MxPlan::Hosts(hosts) = mx_plan("example", mxs, false, 2) else {
            panic!("hosts expected");
        };
        let got: Vec<_> = hosts
            .iter()
            .map(|t| (t.preference, t.host.as_str()))
            .collect();
        assert_eq!(got, [(Some(10), "a.example"), (Some(20), "b.example")]);
        let MxPlan::Hosts(one) = mx_plan("example", vec![(5, "x".into())], false, 0) else {
            panic!("hosts expected");
        };
        assert_eq!(one.len(), 1, "max_mx 0 still probes one host");
    }

    #[test]
    fn mx_plan_null_mx_nxdomain_and_implicit() {
        let null = mx_plan("d", vec![(0, String::new())], false, 10);
        let MxPlan::Stop(s) = null else {
            panic!("{null:?}")
        };
        assert_eq!((s.verdict, s.reason.code), (Verdict::Insecure, C::NullMx));
        let nx = mx_plan("d", vec![], true, 10);
        let MxPlan::Stop(s) = nx else {
            panic!("{nx:?}")
        };
        assert_eq!((s.verdict, s.reason.code), (Verdict::Insecure, C::NoMx));
        assert_eq!(mx_plan("d", vec![], false, 10), MxPlan::Implicit);
    }

    #[test]
    fn implicit_mx_and_lookup_failures() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = implicit_mx("d", &Ok((vec![ip], DnssecStatus::Secure))).unwrap();
        assert_eq!((t.preference, t.host.as_str()), (None, "d"));
        let cases = [
            (
                Ok((vec![], DnssecStatus::Secure)),
                Verdict::Insecure,
                C::NoMx,
            ),
            (Err(DnsFailure::Bogus), Verdict::Insecure, C::DnssecBogus),
            (Err(DnsFailure::Timeout), Verdict::Unknown, C::DnsFailure),
        ];
        for (answer, verdict, code) in cases {
            let s = implicit_mx("d", &answer).unwrap_err();
            assert_eq!((s.verdict, s.reason.code), (verdict, code), "{answer:?}");
        }
        let s = mx_lookup_failed("d", &DnsFailure::Bogus);
        assert_eq!(
            (s.verdict, s.reason.code),
            (Verdict::Insecure, C::DnssecBogus)
        );
        let s = mx_lookup_failed("d", &DnsFailure::Failed("SERVFAIL".into()));
        assert_eq!(
            (s.verdict, s.reason.code),
            (Verdict::Unknown, C::DnsFailure)
        );
    }

    #[test]
    fn host_failures_before_tls() {
        let j = address_failure("mx", &DnsFailure::Bogus);
        assert_eq!(
            (j.verdict, codes(&j.reasons)),
            (Verdict::Insecure, vec!["dnssec_bogus"])
        );
        let j = address_failure("mx", &DnsFailure::Timeout);
        assert_eq!(
            (j.verdict, codes(&j.reasons)),
            (Verdict::Unknown, vec!["dns_failure"])
        );
        let j = unreachable("mx", "cannot connect");
        assert_eq!(
            (j.verdict, codes(&j.reasons)),
            (Verdict::Unknown, vec!["mx_unreachable"])
        );
        let hp = unprobed_host("mx", 25);
        let j = judge_host(&hp, &Err(SmtpError::NoStarttls), None);
        assert_eq!(
            (j.verdict, codes(&j.reasons)),
            (Verdict::Insecure, vec!["starttls_missing"])
        );
        let j = judge_host(&hp, &Err(SmtpError::Timeout(smtp::Step::EhloReply)), None);
        assert_eq!(
            (j.verdict, codes(&j.reasons)),
            (Verdict::Unknown, vec!["timeout"])
        );
    }

    fn mx(host: &str, reachable: bool, verdict: Verdict, reasons: Vec<Reason>) -> MxReport {
        let mut probe = unprobed_host(host, 25);
        probe.reachable = reachable;
        probe.verdict = Some(verdict);
        probe.reasons = reasons;
        mx_report(Some(10), probe, &MtaSts::NoRecord)
    }

    fn report(mx: Vec<MxReport>) -> DomainReport {
        let mut r = crate::probe::budget_exceeded("d", std::time::Duration::ZERO);
        r.reasons.clear();
        r.mx = mx;
        r
    }

    #[test]
    fn domain_verdict_from_reachable_hosts() {
        let down = || {
            let why = Reason::host(C::MxUnreachable, "down", "cannot connect");
            mx("down", false, Verdict::Unknown, vec![why])
        };
        let mut r = report(vec![down(), mx("up", true, Verdict::Secure, vec![])]);
        judge_domain(&mut r);
        assert_eq!(r.verdict, Verdict::Secure);
        assert_eq!(r.note_codes(), ["mx_unreachable"]);
        assert!(r.notes[0]
            .text
            .ends_with("(skipped: Stalwart falls through to the next MX)"));

        let mut r = report(vec![down()]);
        judge_domain(&mut r);
        assert_eq!(
            (r.verdict, r.reason_codes()),
            (Verdict::Unknown, vec!["mx_unreachable"])
        );

        let expired = Reason::host(C::CertExpired, "bad", "expired");
        let mut r = report(vec![
            mx("up", true, Verdict::Secure, vec![]),
            mx("bad", true, Verdict::Insecure, vec![expired]),
        ]);
        judge_domain(&mut r);
        assert_eq!(
            (r.verdict, r.reason_codes()),
            (Verdict::Insecure, vec!["cert_expired"])
        );
    }
}

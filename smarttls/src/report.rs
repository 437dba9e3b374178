//! Report types (serialized as the `probe --json` output) and the text rendering.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::dane::DaneStatus;
use crate::dns::DnssecStatus;
use crate::grade::Grade;
use crate::legacy::{LegacyPosture, Support};
use crate::mta_sts::MtaSts;
use crate::peer::NtaPeer;
use crate::tls::CertProblem;
use crate::verdict::{Reason, Verdict};

/// Which protocol versions the MX host accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protocols {
    /// TLS 1.0.
    pub tls1_0: Support,
    /// TLS 1.1.
    pub tls1_1: Support,
    /// TLS 1.2.
    pub tls1_2: Support,
    /// TLS 1.3.
    pub tls1_3: Support,
}

/// One certificate of the presented chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS names in subjectAltName.
    pub san: Vec<String>,
    /// notBefore (RFC 3339).
    pub not_before: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
    /// SHA-256 of the SPKI, hex (the TLSA `3 1 1` data).
    pub spki_sha256: String,
}

/// The negotiated TLS session and certificate facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFacts {
    /// `TLSv1.3` / `TLSv1.2`.
    pub version: String,
    /// IANA suite name.
    pub cipher_suite: String,
    /// Key-exchange group (`X25519` …).
    pub key_exchange: Option<String>,
    /// PKIX: chains to a trusted root, in date, matches the MX name.
    pub pkix_valid: bool,
    /// Every certificate problem found (independently of each other).
    pub cert_problems: Vec<CertProblem>,
    /// The presented chain, leaf first.
    pub certificates: Vec<CertInfo>,
}

/// Facts about one MX host (cached per host and port).
#[derive(Debug, Clone, Serialize)]
pub struct HostProbe {
    /// Host name (no trailing dot).
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// A/AAAA addresses.
    pub addresses: Vec<IpAddr>,
    /// DNSSEC status of the address answers.
    pub address_dnssec: Option<DnssecStatus>,
    /// Address lookup failure (`bogus`, `timeout`, text).
    pub address_error: Option<String>,
    /// The address the SMTP session was held with.
    pub connected: Option<IpAddr>,
    /// TCP connect worked on some address.
    pub reachable: bool,
    /// SMTP greeting.
    pub banner: Option<String>,
    /// EHLO offered STARTTLS.
    pub starttls: bool,
    /// SMTP failure, if any.
    pub smtp_error: Option<String>,
    /// The TLS session, when the handshake completed.
    pub tls: Option<TlsFacts>,
    /// Handshake failure, if any.
    pub tls_error: Option<String>,
    /// Protocol versions accepted.
    pub protocols: Protocols,
    /// Raw ClientHello probe results (when `legacy_probe`).
    pub legacy: Option<LegacyPosture>,
    /// DANE.
    pub dane: DaneStatus,
    /// The TLSA base domain DANE used (`_<port>._tcp.<this>`): the host, or its CNAME-expanded
    /// name (RFC 7672 §2.2.2). `None` when no TLSA lookup counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlsa_base: Option<String>,
    /// NCSC posture grade of this host.
    pub grade: Grade,
    /// Host-level reasons (before MTA-STS), blocking.
    #[serde(skip)]
    pub reasons: Vec<Reason>,
    /// Host-level verdict (before MTA-STS).
    #[serde(skip)]
    pub verdict: Option<Verdict>,
    /// Host-level notes.
    #[serde(skip)]
    pub notes: Vec<Reason>,
    /// When probed (RFC 3339).
    pub probed_at: String,
    /// Probe duration.
    pub elapsed_ms: u64,
}

/// One MX host in a domain report.
#[derive(Debug, Clone, Serialize)]
pub struct MxReport {
    /// MX preference (`None` for the implicit MX of RFC 5321 §5.1).
    pub preference: Option<u16>,
    /// The host facts.
    #[serde(flatten)]
    pub probe: HostProbe,
    /// Listed by an MTA-STS policy (`None` without a policy).
    pub mta_sts_listed: Option<bool>,
    /// Verdict for this host.
    pub verdict: Verdict,
    /// Blocking reasons.
    pub reasons: Vec<Reason>,
    /// Non-blocking findings.
    pub notes: Vec<Reason>,
}

/// The SmartTLS report of a recipient domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    /// The domain (lower case, no trailing dot).
    pub domain: String,
    /// Verdict. Only `secure` is deliverable.
    pub verdict: Verdict,
    /// Why not secure (empty when secure).
    pub reasons: Vec<Reason>,
    /// Non-blocking findings (unreachable hosts skipped, legacy protocols accepted, …).
    pub notes: Vec<Reason>,
    /// Worst posture grade of the reachable MX hosts.
    pub grade: Grade,
    /// MX hosts in preference order.
    pub mx: Vec<MxReport>,
    /// MTA-STS.
    pub mta_sts: MtaSts,
    /// NTA 7516 record, if any.
    pub nta_peer: Option<NtaPeer>,
    /// DNSSEC status of the MX answer (or its denial).
    pub dnssec: DnssecStatus,
    /// When probed (RFC 3339).
    pub probed_at: String,
    /// Probe duration.
    pub elapsed_ms: u64,
}

impl DomainReport {
    /// The reason codes, in order.
    pub fn reason_codes(&self) -> Vec<&'static str> {
        self.reasons.iter().map(|r| r.code.as_str()).collect()
    }
    /// The note codes, in order.
    pub fn note_codes(&self) -> Vec<&'static str> {
        self.notes.iter().map(|r| r.code.as_str()).collect()
    }
    /// JSON (the `probe --json` output).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn support(s: &Support) -> &'static str {
    match s {
        Support::Offered => "offered",
        Support::NotOffered => "not offered",
        Support::Unknown => "unknown",
    }
}

/// A readable report.
pub fn render_text(r: &DomainReport) -> String {
    let mut o = String::new();
    render_domain(&mut o, r);
    render_mta_sts(&mut o, &r.mta_sts);
    render_nta_peer(&mut o, r.nta_peer.as_ref());
    for m in &r.mx {
        render_mx(&mut o, m);
    }
    o
}

/// Verdict, grade, DNSSEC, timing, reasons and notes of the domain.
fn render_domain(o: &mut String, r: &DomainReport) {
    let _ = writeln!(o, "SmartTLS report for {}", r.domain);
    let _ = writeln!(o, "  verdict:  {}", r.verdict.as_str().to_uppercase());
    let _ = writeln!(o, "  grade:    {}", r.grade.category.as_str());
    let _ = writeln!(o, "  dnssec:   {} (MX answer)", wire_name(&r.dnssec));
    let _ = writeln!(o, "  probed:   {} ({} ms)", r.probed_at, r.elapsed_ms);
    for x in &r.reasons {
        let _ = writeln!(o, "  reason:   {x}");
    }
    for x in &r.notes {
        let _ = writeln!(o, "  note:     {x}");
    }
}

fn render_mta_sts(o: &mut String, mta_sts: &MtaSts) {
    match mta_sts {
        MtaSts::NoRecord => {
            let _ = writeln!(o, "  MTA-STS:  none");
        }
        MtaSts::Policy { id, policy, cached } => {
            let _ = writeln!(
                o,
                "  MTA-STS:  {:?} id={} mx={} max_age={}{}",
                policy.mode,
                id,
                policy.mx.join(","),
                policy.max_age,
                if *cached { " (cached)" } else { "" }
            );
        }
        other => {
            let _ = writeln!(o, "  MTA-STS:  {other:?}");
        }
    }
}

fn render_nta_peer(o: &mut String, peer: Option<&NtaPeer>) {
    match peer {
        None => {
            let _ = writeln!(o, "  NTA 7516: no v=NTA7516-1 record");
        }
        Some(p) => {
            let _ = writeln!(
                o,
                "  NTA 7516: {:?} provider={} {}..{}{}",
                p.status,
                p.provider.as_deref().unwrap_or("?"),
                p.startdate.as_deref().unwrap_or("?"),
                p.enddate.as_deref().unwrap_or("?"),
                p.reason
                    .as_ref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            );
        }
    }
}

/// One MX host: addresses, SMTP, TLS, protocols, DANE, MTA-STS, grade, reasons and notes.
fn render_mx(o: &mut String, m: &MxReport) {
    let p = &m.probe;
    let pref = m
        .preference
        .map(|x| x.to_string())
        .unwrap_or_else(|| "implicit".into());
    let _ = writeln!(
        o,
        "\n  MX {pref} {}:{}  -> {}",
        p.host,
        p.port,
        m.verdict.as_str().to_uppercase()
    );
    let addrs: Vec<String> = p.addresses.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(
        o,
        "    addresses: {} (dnssec {}){}",
        addrs.join(", "),
        p.address_dnssec
            .map_or_else(|| "-".to_string(), |d| wire_name(&d)),
        p.address_error
            .as_ref()
            .map(|e| format!(" error: {e}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "    reachable: {}  STARTTLS: {}",
        p.reachable, p.starttls
    );
    if let Some(e) = &p.smtp_error {
        let _ = writeln!(o, "    smtp: {e}");
    }
    if let Some(t) = &p.tls {
        render_tls(o, t);
    }
    if let Some(e) = &p.tls_error {
        let _ = writeln!(o, "    TLS error: {e}");
    }
    let pr = &p.protocols;
    let _ = writeln!(
        o,
        "    protocols: TLS1.0 {} · TLS1.1 {} · TLS1.2 {} · TLS1.3 {}",
        support(&pr.tls1_0),
        support(&pr.tls1_1),
        support(&pr.tls1_2),
        support(&pr.tls1_3)
    );
    let _ = writeln!(o, "    DANE: {}", dane_text(&p.dane));
    if let Some(l) = m.mta_sts_listed {
        let _ = writeln!(o, "    MTA-STS lists host: {l}");
    }
    render_grade(o, &p.grade);
    for x in &m.reasons {
        let _ = writeln!(o, "    reason: {x}");
    }
    for x in &m.notes {
        let _ = writeln!(o, "    note:   {x}");
    }
}

/// The negotiated session and the certificates.
fn render_tls(o: &mut String, t: &TlsFacts) {
    let _ = writeln!(
        o,
        "    TLS: {} {} {}  PKIX valid: {}",
        t.version,
        t.cipher_suite,
        t.key_exchange.as_deref().unwrap_or("-"),
        t.pkix_valid
    );
    for (i, c) in t.certificates.iter().enumerate() {
        let _ = writeln!(
            o,
            "    cert #{i}: subject={} issuer={} san=[{}] valid {}..{}",
            c.subject,
            c.issuer,
            c.san.join(","),
            c.not_before,
            c.not_after
        );
    }
    for pr in &t.cert_problems {
        let _ = writeln!(o, "    cert problem: {}", pr.code());
    }
}

fn render_grade(o: &mut String, g: &Grade) {
    let _ = writeln!(o, "    grade: {}", g.category.as_str());
    for f in &g.findings {
        let _ = writeln!(
            o,
            "      {:<18} {:<44} {}",
            f.item,
            f.value,
            f.category.as_str()
        );
    }
}

fn dane_text(d: &DaneStatus) -> String {
    match d {
        DaneStatus::NoTlsa { dnssec } => format!("no TLSA (denial {dnssec:?})"),
        DaneStatus::Insecure { records } => format!(
            "{} TLSA record(s), not DNSSEC-secure: ignored",
            records.len()
        ),
        DaneStatus::Bogus => "TLSA lookup BOGUS".into(),
        DaneStatus::LookupFailed { error } => format!("TLSA lookup failed: {error}"),
        DaneStatus::NotChecked { records, why } => format!(
            "not checked: {why} ({} secure TLSA record(s))",
            records.len()
        ),
        DaneStatus::Match { matched, records } => {
            format!("match ({matched}) of {} record(s)", records.len())
        }
        DaneStatus::Mismatch { records } => {
            format!("MISMATCH: none of {} record(s) matches", records.len())
        }
        DaneStatus::NoUsableRecords { records } => {
            format!("no usable record among {}", records.len())
        }
    }
}

/// The serde name of a value (e.g. `secure`), for text that matches the JSON.
fn wire_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

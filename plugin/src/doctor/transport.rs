//! Transport checks from the SmartTLS probe of the domain's own MX hosts: DNSSEC (domain and MX
//! names), MX, STARTTLS, TLS posture (NCSC-NL grade), certificate and DANE.
//!
//! Rules (the internet.nl mail test, section 2.2 of its rules):
//! * `dnssec_domain`: the SOA answer (or its denial) for the domain is DNSSEC-secure;
//! * `mx`: at least one MX record (no null MX; an implicit MX only warns);
//! * `dnssec_mx`: the address answers of every MX name are DNSSEC-secure;
//! * `starttls`: every MX is reachable, offers STARTTLS and completes a TLS 1.2/1.3 handshake;
//! * `tls`: NCSC grade of every MX (versions, suites, key exchange, accepted legacy protocols):
//!   good/sufficient pass, phase-out warns, insufficient fails;
//! * `certificate`: PKIX-valid (trusted chain, in date, matches the MX name), or authenticated by
//!   DANE (e.g. a self-signed certificate with a matching `3 1 1` record);
//! * `dane`: a DNSSEC-secure TLSA record at `_25._tcp.<mx>` that matches the presented
//!   certificate, on every MX (a single record is noted: publish two for rollover).

use nta7516_smarttls::dane::DaneStatus;
use nta7516_smarttls::dns::{Answer, DnsFailure};
use nta7516_smarttls::{Category, DnssecStatus, DomainReport, MxReport};

use super::{Check, Status};

fn dnssec_word(s: DnssecStatus) -> &'static str {
    match s {
        DnssecStatus::Secure => "secure",
        DnssecStatus::Insecure => "insecure (unsigned)",
        DnssecStatus::Bogus => "bogus",
        DnssecStatus::Indeterminate => "indeterminate",
    }
}

/// `dnssec_domain`: from the SOA lookup of the domain; below a zone apex (no SOA at the name) from
/// the MX answer or its signed denial, as SmartTLS saw it.
pub fn dnssec_domain(domain: &str, soa: &Result<Answer, DnsFailure>, r: &DomainReport) -> Check {
    let c = Check::new("dnssec_domain", "DNSSEC of the domain");
    let fix = format!(
        "sign the zone of {domain} with DNSSEC and publish the DS record at the parent (ask your DNS host)"
    );
    match soa {
        Ok(a) if a.nxdomain => c.fail(
            format!("{domain} does not exist (NXDOMAIN)"),
            "check the domain name",
        ),
        Ok(a) => match if a.records.is_empty() {
            r.dnssec
        } else {
            a.dnssec
        } {
            DnssecStatus::Secure => c.pass(format!("{domain} is DNSSEC-signed and validates")),
            DnssecStatus::Insecure => c.fail(format!("{domain} is not DNSSEC-signed"), fix),
            DnssecStatus::Bogus => c.fail(
                format!("DNSSEC validation of {domain} fails (bogus)"),
                "repair the signatures or the DS record of the zone (expired RRSIGs, key rollover)",
            ),
            DnssecStatus::Indeterminate => c.warn(
                format!("the DNSSEC status of {domain} could not be determined"),
                "run the doctor with a DNSSEC-capable resolver (or check the trust anchor)",
            ),
        },
        Err(DnsFailure::Bogus) => c.fail(
            format!("DNSSEC validation of {domain} fails (bogus)"),
            "repair the signatures or the DS record of the zone (expired RRSIGs, key rollover)",
        ),
        Err(e) => c.fail(
            super::dns_error(domain, e),
            "make the domain's name servers answer (SERVFAIL/timeout seen)",
        ),
    }
}

/// Worst status over hosts, with a detail line per host.
fn per_host(
    c: Check,
    mx: &[MxReport],
    f: impl Fn(&MxReport) -> (Status, String),
    pass: String,
    fail_finding: &str,
    fix: String,
) -> Check {
    let mut worst = Status::Pass;
    let mut c = c;
    let mut bad = vec![];
    for m in mx {
        let (s, line) = f(m);
        if s > worst {
            worst = s;
        }
        if s != Status::Pass {
            bad.push(m.probe.host.clone());
        }
        c = c.detail(format!("{} {}: {line}", s.as_str(), m.probe.host));
    }
    match worst {
        Status::Pass => c.pass(pass),
        Status::Warn => c.warn(format!("{fail_finding}: {}", bad.join(", ")), fix),
        Status::Fail => c.fail(format!("{fail_finding}: {}", bad.join(", ")), fix),
    }
}

/// All transport checks except `dnssec_domain`, in order: `mx`, `dnssec_mx`, `starttls`, `tls`,
/// `certificate`, `dane`. Without a mail server the per-MX checks fail as not tested.
pub fn checks(r: &DomainReport) -> Vec<Check> {
    let mut out = vec![mx(r)];
    if r.mx.is_empty() {
        out.extend(untested(r));
    } else {
        out.extend([dnssec_mx(r), starttls(r), tls(r), certificate(r), dane(r)]);
    }
    out
}

/// The per-MX checks when there is no MX to test, each failed with the reason.
fn untested(r: &DomainReport) -> Vec<Check> {
    let why = r
        .reasons
        .first()
        .map(|x| x.text.clone())
        .unwrap_or_else(|| "no mail server found".into());
    [
        ("dnssec_mx", "DNSSEC of the MX names"),
        ("starttls", "STARTTLS on every MX"),
        ("tls", "TLS versions and ciphers"),
        ("certificate", "MX certificates"),
        ("dane", "DANE (TLSA) on every MX"),
    ]
    .into_iter()
    .map(|(id, title)| {
        Check::new(id, title).fail(
            format!("not tested: {why}"),
            format!("publish MX records for {} first", r.domain),
        )
    })
    .collect()
}

/// `dnssec_mx`: the address answers of every MX name are DNSSEC-secure.
fn dnssec_mx(r: &DomainReport) -> Check {
    per_host(
        Check::new("dnssec_mx", "DNSSEC of the MX names"),
        &r.mx,
        |m| match (m.probe.address_dnssec, &m.probe.address_error) {
            (_, Some(e)) => (Status::Fail, format!("address lookup: {e}")),
            (Some(DnssecStatus::Secure), None) => (Status::Pass, "addresses secure".into()),
            (Some(s), None) => (Status::Fail, format!("addresses {}", dnssec_word(s))),
            (None, None) => (Status::Fail, "no address lookup".into()),
        },
        "every MX name is DNSSEC-signed".into(),
        "MX names without DNSSEC",
        "sign the zones of the MX host names with DNSSEC (DANE needs it too)".into(),
    )
}

/// `starttls`: every MX is reachable, offers STARTTLS and completes a handshake.
fn starttls(r: &DomainReport) -> Check {
    per_host(
        Check::new("starttls", "STARTTLS on every MX"),
        &r.mx,
        |m| {
            let p = &m.probe;
            if !p.reachable {
                let why = p.smtp_error.as_deref().unwrap_or("no connection");
                (Status::Fail, format!("unreachable ({why})"))
            } else if !p.starttls {
                (Status::Fail, "STARTTLS not offered".into())
            } else if let Some(t) = &p.tls {
                (Status::Pass, format!("STARTTLS, {}", t.version))
            } else {
                let why = p.tls_error.as_deref().unwrap_or("handshake failed");
                (Status::Fail, format!("TLS handshake failed ({why})"))
            }
        },
        "every MX offers STARTTLS".into(),
        "MX without working STARTTLS",
        "enable STARTTLS with TLS 1.2/1.3 on every MX (Stalwart: a certificate for the MX name on the SMTP listener)".into(),
    )
}

/// `tls`: the NCSC grade of every MX.
fn tls(r: &DomainReport) -> Check {
    per_host(
        Check::new("tls", "TLS versions and ciphers"),
        &r.mx,
        tls_line,
        format!("NCSC grade {}", r.grade.category.as_str()),
        "MX with weak or no TLS",
        "allow only TLS 1.2/1.3 with ECDHE and AEAD suites (NCSC-NL TLS guidelines)".into(),
    )
}

fn tls_line(m: &MxReport) -> (Status, String) {
    let p = &m.probe;
    if p.tls.is_none() {
        return (Status::Fail, "no TLS session to grade".into());
    }
    let worst: Vec<String> = p
        .grade
        .findings
        .iter()
        .filter(|f| f.category >= Category::PhaseOut)
        .map(|f| format!("{} {} {}", f.item, f.value, f.category.as_str()))
        .collect();
    let line = if worst.is_empty() {
        format!("grade {}", p.grade.category.as_str())
    } else {
        format!("grade {} ({})", p.grade.category.as_str(), worst.join("; "))
    };
    let s = match p.grade.category {
        Category::Good | Category::Sufficient => Status::Pass,
        Category::PhaseOut => Status::Warn,
        Category::Insufficient => Status::Fail,
    };
    (s, line)
}

/// `certificate`: PKIX-valid, or authenticated by DANE.
fn certificate(r: &DomainReport) -> Check {
    per_host(
        Check::new("certificate", "MX certificates"),
        &r.mx,
        certificate_line,
        "every MX certificate is valid".into(),
        "MX with an invalid certificate",
        "install a certificate from a trusted CA for the MX host name, renew it before it expires, and send the full chain".into(),
    )
}

fn certificate_line(m: &MxReport) -> (Status, String) {
    let p = &m.probe;
    let Some(t) = &p.tls else {
        return (Status::Fail, "no certificate seen (no TLS)".into());
    };
    let problems: Vec<&str> = t.cert_problems.iter().map(|x| x.code()).collect();
    let expiry = t
        .certificates
        .first()
        .map(|c| format!(", valid until {}", c.not_after))
        .unwrap_or_default();
    if t.pkix_valid {
        (Status::Pass, format!("PKIX-valid{expiry}"))
    } else if matches!(p.dane, DaneStatus::Match { .. }) {
        (
            Status::Pass,
            format!(
                "authenticated by DANE ({}), PKIX: {}",
                p.dane.code(),
                problems.join(", ")
            ),
        )
    } else {
        (Status::Fail, format!("{}{expiry}", problems.join(", ")))
    }
}

/// `dane`: a secure, matching TLSA record on every MX; a single record is noted (rollover).
fn dane(r: &DomainReport) -> Check {
    let dane = per_host(
        Check::new("dane", "DANE (TLSA) on every MX"),
        &r.mx,
        |m| {
            let s = match &m.probe.dane {
                DaneStatus::Match { .. } => Status::Pass,
                _ => Status::Fail,
            };
            (s, dane_line(&m.probe.dane))
        },
        "every MX has a secure, matching TLSA record".into(),
        "MX without valid DANE",
        "publish `_25._tcp.<mx> TLSA 3 1 1 <sha256 of the certificate's public key>` in a DNSSEC-signed zone, and update it before changing the key".into(),
    );
    let single: Vec<&str> = r
        .mx
        .iter()
        .filter(
            |m| matches!(&m.probe.dane, DaneStatus::Match { records, .. } if records.len() == 1),
        )
        .map(|m| m.probe.host.as_str())
        .collect();
    if single.is_empty() {
        return dane;
    }
    dane.detail(format!(
        "note: single TLSA record on {}: publish a second one (3 1 1 of the next key, or 2 1 1 of the CA) for rollover",
        single.join(", ")
    ))
}

fn dane_line(d: &DaneStatus) -> String {
    match d {
        DaneStatus::NoTlsa { .. } => "no TLSA record".to_string(),
        DaneStatus::Insecure { .. } => "TLSA present but not DNSSEC-secure".into(),
        DaneStatus::Bogus => "TLSA lookup bogus".into(),
        DaneStatus::LookupFailed { error } => format!("TLSA lookup failed: {error}"),
        DaneStatus::NotChecked { why, .. } => format!("DANE not checked: {why}"),
        DaneStatus::Match { matched, records } => {
            format!("{matched} matches ({} record(s))", records.len())
        }
        DaneStatus::Mismatch { records } => {
            format!(
                "none of {} TLSA record(s) matches the certificate",
                records.len()
            )
        }
        DaneStatus::NoUsableRecords { .. } => {
            "only unusable TLSA records (usage 0/1 do not count for SMTP)".into()
        }
    }
}

fn mx(r: &DomainReport) -> Check {
    let c = Check::new("mx", "MX records");
    if r.mx.is_empty() {
        let why = r
            .reasons
            .first()
            .map(|x| x.text.clone())
            .unwrap_or_else(|| "no MX records".into());
        return c.fail(
            why,
            format!(
                "publish MX records for {} pointing at your mail servers",
                r.domain
            ),
        );
    }
    let list: Vec<String> =
        r.mx.iter()
            .map(|m| match m.preference {
                Some(p) => format!("{p} {}", m.probe.host),
                None => format!("implicit {}", m.probe.host),
            })
            .collect();
    if r.mx.iter().all(|m| m.preference.is_none()) {
        return c.warn(
            format!(
                "no MX record; mail goes to the domain's own address ({})",
                list.join(", ")
            ),
            format!("publish an explicit MX record for {}", r.domain),
        );
    }
    c.pass(format!("{} MX: {}", r.mx.len(), list.join(", ")))
}

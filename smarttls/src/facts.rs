//! Facts: the raw results a probe gathers (DNS records, the TLS session, the legacy ClientHello
//! results) turned into the facts of the report ([`crate::report`]).
//!
//! Pure functions, between the I/O of [`crate::probe`] and the decisions of [`crate::judge`]: they
//! read records and certificates and say what they are (which MX hosts, which protocol versions are
//! offered, what DANE finds), not what they mean for delivery.

use hickory_resolver::proto::rr::RData;
use rustls::pki_types::UnixTime;

use crate::dane::{self, DaneStatus, TlsaRecord};
use crate::dns::{Answer, DnsFailure, DnssecStatus};
use crate::grade::{self, Grade};
use crate::legacy::{LegacyPosture, Support};
use crate::peer;
use crate::report::{CertInfo, HostProbe, Protocols, TlsFacts};
use crate::tls::{HandshakeError, Session};
use crate::util;
use crate::verdict::Verdict;

/// The facts of a host before anything is known: no address, not reachable, verdict unknown.
pub(crate) fn unprobed_host(host: &str, port: u16) -> HostProbe {
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
        dane: DaneStatus::NotChecked {
            records: vec![],
            why: "no TLSA lookup".into(),
        },
        tlsa_base: None,
        grade: Grade::from_findings(vec![]),
        reasons: vec![],
        verdict: Some(Verdict::Unknown),
        notes: vec![],
        probed_at: util::rfc3339(util::unix_now()),
        elapsed_ms: 0,
    }
}

/// The MX records of an answer as `(preference, host)`, in answer order (a null MX has host `""`).
pub(crate) fn mx_records(answer: &Answer) -> Vec<(u16, String)> {
    answer
        .records
        .iter()
        .filter_map(|r| match r {
            RData::MX(m) => Some((m.preference, crate::dns::bare(&m.exchange.to_ascii()))),
            _ => None,
        })
        .collect()
}

/// The first `v=NTA7516-1` TXT record of an answer, its strings joined.
pub(crate) fn nta_record(answer: &Answer) -> Option<String> {
    answer.records.iter().find_map(|r| match r {
        RData::TXT(t) => {
            let s: String = t
                .txt_data
                .iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect();
            peer::is_nta_record(&s).then_some(s)
        }
        _ => None,
    })
}

/// The session and certificate facts of a completed handshake.
pub(crate) fn tls_facts(s: &Session) -> TlsFacts {
    TlsFacts {
        version: grade::protocol_name(s.version),
        cipher_suite: grade::suite_name(u16::from(s.suite)),
        key_exchange: s.group.map(|g| grade::group_category(g).0),
        pkix_valid: s.cert.problems.is_empty(),
        cert_problems: s.cert.problems.clone(),
        certificates: s.cert.chain.iter().map(cert_info).collect(),
    }
}

/// Subject, issuer, names, validity and SPKI hash of one certificate.
fn cert_info(c: &rustls::pki_types::CertificateDer<'static>) -> CertInfo {
    let spki = dane::spki_sha256_hex(c).unwrap_or_default();
    match x509_parser::parse_x509_certificate(c.as_ref()) {
        Ok((_, x)) => CertInfo {
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            san: subject_alt_names(&x),
            not_before: util::rfc3339(x.validity().not_before.timestamp()),
            not_after: util::rfc3339(x.validity().not_after.timestamp()),
            spki_sha256: spki,
        },
        Err(e) => CertInfo {
            subject: format!("unparsable: {e}"),
            issuer: String::new(),
            san: vec![],
            not_before: String::new(),
            not_after: String::new(),
            spki_sha256: spki,
        },
    }
}

/// The DNS names (and `IP:<hex>` addresses) of the subjectAltName extension.
fn subject_alt_names(x: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    x.subject_alternative_name()
        .ok()
        .flatten()
        .map(|e| {
            e.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some(n.to_string()),
                    GeneralName::IPAddress(b) => Some(format!("IP:{}", hex::encode(b))),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Which protocol versions the host accepts: TLS 1.3 from the handshake, the older ones from the
/// legacy ClientHellos, TLS 1.2 also when the handshake negotiated it.
pub(crate) fn protocols(
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

/// What the probe found out about TLSA records for a host.
#[derive(Debug, Clone)]
pub(crate) enum Tlsa {
    /// The lookup at `_<port>._tcp.<base>` and its result.
    Looked {
        base: String,
        answer: Result<Answer, DnsFailure>,
    },
    /// No TLSA lookup counted; why.
    NotLooked(String),
}

/// The DANE status from the TLSA answer and the certificate chain of the session (if any), at `now`.
/// Only DNSSEC-secure records count (RFC 7672).
pub(crate) fn tlsa_status(
    tlsa: &Tlsa,
    session: Option<&Session>,
    host: &str,
    now: UnixTime,
) -> DaneStatus {
    let tlsa = match tlsa {
        Tlsa::NotLooked(why) => {
            return DaneStatus::NotChecked {
                records: vec![],
                why: why.clone(),
            }
        }
        Tlsa::Looked { answer, .. } => answer,
    };
    let a = match tlsa {
        Err(DnsFailure::Bogus) => return DaneStatus::Bogus,
        Err(e) => {
            return DaneStatus::LookupFailed {
                error: e.to_string(),
            }
        }
        Ok(a) => a,
    };
    let records = tlsa_records(a);
    if records.is_empty() {
        DaneStatus::NoTlsa { dnssec: a.dnssec }
    } else if a.dnssec != DnssecStatus::Secure {
        DaneStatus::Insecure { records }
    } else {
        match session {
            None => DaneStatus::NotChecked {
                records,
                why: "TLS not reached, nothing to match".into(),
            },
            Some(s) => dane::verify(&records, &s.cert.chain, host, now),
        }
    }
}

/// The TLSA records of an answer.
fn tlsa_records(a: &Answer) -> Vec<TlsaRecord> {
    a.records
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
        .collect()
}

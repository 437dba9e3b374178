//! DANE for SMTP (RFC 7672): TLSA at `_<port>._tcp.<mx>`, usable only when DNSSEC-secure.
//!
//! Usages 3 (DANE-EE: the leaf's certificate or key, no name or date checks) and 2 (DANE-TA: a
//! certificate of the chain is the trust anchor; the chain must validate to it and the leaf must
//! match the MX name). Usages 0/1 are unusable for SMTP. Selectors 0 (full certificate) and 1
//! (SPKI); matching types 0 (exact), 1 (SHA-256), 2 (SHA-512).

use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::RootCertStore;
use serde::Serialize;

use crate::dns::DnssecStatus;

/// One TLSA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsaRecord {
    /// Certificate usage (0–3).
    pub usage: u8,
    /// Selector (0 full certificate, 1 SPKI).
    pub selector: u8,
    /// Matching type (0 exact, 1 SHA-256, 2 SHA-512).
    pub matching: u8,
    /// Association data, hex.
    pub data: String,
}

impl std::fmt::Display for TlsaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = if self.data.len() > 16 {
            &self.data[..16]
        } else {
            &self.data
        };
        write!(
            f,
            "{} {} {} {}…",
            self.usage, self.selector, self.matching, d
        )
    }
}

/// DANE outcome for one MX host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DaneStatus {
    /// No TLSA records (denial `dnssec` status given): DANE does not apply.
    NoTlsa { dnssec: DnssecStatus },
    /// TLSA records exist but are not DNSSEC-secure: ignored (RFC 7672 §2.2).
    Insecure { records: Vec<TlsaRecord> },
    /// The TLSA lookup was bogus: a failure, never "no DANE".
    Bogus,
    /// The TLSA lookup failed (SERVFAIL, timeout): DANE status unknown.
    LookupFailed { error: String },
    /// DANE was not checked, `why` says why: secure TLSA but TLS not reached (nothing to match);
    /// no TLSA lookup because the address lookup failed; or the host's addresses are not
    /// DNSSEC-secure (a CNAME into an unsigned zone), so DANE does not apply (RFC 7672 §2.2.2).
    NotChecked {
        /// The secure TLSA records, when they were looked up.
        records: Vec<TlsaRecord>,
        /// Why not checked.
        why: String,
    },
    /// Secure TLSA and one record matches.
    Match {
        matched: TlsaRecord,
        records: Vec<TlsaRecord>,
    },
    /// Secure TLSA and no usable record matches.
    Mismatch { records: Vec<TlsaRecord> },
    /// Secure TLSA but only unusable records (usage 0/1, unknown selector/matching).
    NoUsableRecords { records: Vec<TlsaRecord> },
}

impl DaneStatus {
    /// Short code for reports.
    pub fn code(&self) -> &'static str {
        match self {
            DaneStatus::NoTlsa { .. } => "no_tlsa",
            DaneStatus::Insecure { .. } => "insecure",
            DaneStatus::Bogus => "bogus",
            DaneStatus::LookupFailed { .. } => "lookup_failed",
            DaneStatus::NotChecked { .. } => "not_checked",
            DaneStatus::Match { .. } => "match",
            DaneStatus::Mismatch { .. } => "mismatch",
            DaneStatus::NoUsableRecords { .. } => "no_usable_records",
        }
    }
}

fn selected(cert: &CertificateDer<'_>, selector: u8) -> Option<Vec<u8>> {
    match selector {
        0 => Some(cert.as_ref().to_vec()),
        1 => {
            let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
            Some(c.public_key().raw.to_vec())
        }
        _ => None,
    }
}

fn digest(data: &[u8], matching: u8) -> Option<Vec<u8>> {
    match matching {
        0 => Some(data.to_vec()),
        1 => Some(
            ring::digest::digest(&ring::digest::SHA256, data)
                .as_ref()
                .to_vec(),
        ),
        2 => Some(
            ring::digest::digest(&ring::digest::SHA512, data)
                .as_ref()
                .to_vec(),
        ),
        _ => None,
    }
}

/// Does `cert` match `rec` (selector + matching type)?
pub fn cert_matches(rec: &TlsaRecord, cert: &CertificateDer<'_>) -> bool {
    let Ok(want) = hex::decode(&rec.data) else {
        return false;
    };
    selected(cert, rec.selector)
        .and_then(|s| digest(&s, rec.matching))
        .is_some_and(|d| d == want)
}

fn usable(rec: &TlsaRecord) -> bool {
    matches!(rec.usage, 2 | 3) && rec.selector <= 1 && rec.matching <= 2
}

/// Matches secure TLSA `records` against the presented `chain` (leaf first) for `host`.
pub fn verify(
    records: &[TlsaRecord],
    chain: &[CertificateDer<'static>],
    host: &str,
    now: UnixTime,
) -> DaneStatus {
    let all = records.to_vec();
    if !records.iter().any(usable) {
        return DaneStatus::NoUsableRecords { records: all };
    }
    let Some(leaf) = chain.first() else {
        return DaneStatus::Mismatch { records: all };
    };
    for rec in records.iter().filter(|r| usable(r)) {
        let ok = match rec.usage {
            3 => cert_matches(rec, leaf),
            2 => chain
                .iter()
                .skip(1)
                .any(|ta| cert_matches(rec, ta) && ta_validates(leaf, &chain[1..], ta, host, now)),
            _ => false,
        };
        if ok {
            return DaneStatus::Match {
                matched: rec.clone(),
                records: all,
            };
        }
    }
    DaneStatus::Mismatch { records: all }
}

fn ta_validates(
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    ta: &CertificateDer<'static>,
    host: &str,
    now: UnixTime,
) -> bool {
    let mut roots = RootCertStore::empty();
    if roots.add(ta.clone()).is_err() {
        return false;
    }
    let Ok(parsed) = ParsedCertificate::try_from(leaf) else {
        return false;
    };
    let algs = crate::tls::provider().signature_verification_algorithms;
    if verify_server_cert_signed_by_trust_anchor(&parsed, &roots, intermediates, now, algs.all)
        .is_err()
    {
        return false;
    }
    let Ok(name) = ServerName::try_from(host.trim_end_matches('.').to_string()) else {
        return false;
    };
    verify_server_name(&parsed, &name).is_ok()
}

/// TLSA 3 1 1 association data (hex) for a certificate: SHA-256 of its SPKI.
pub fn spki_sha256_hex(cert: &CertificateDer<'_>) -> Option<String> {
    selected(cert, 1)
        .and_then(|s| digest(&s, 1))
        .map(hex::encode)
}

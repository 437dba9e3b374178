//! DNS lookups with hickory, keeping the DNSSEC status of every answer.
//!
//! The resolver always validates: with the configured trust anchors (tests pin a zone key) or the
//! IANA root KSKs. Answers are classified as `secure`, `insecure`, `bogus` or `indeterminate`;
//! negative answers carry the status of their NSEC proof.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use serde::Serialize;

use crate::config::SmartTlsConfig;
use crate::error::Error;

/// DNSSEC status of an answer (RFC 4033 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnssecStatus {
    /// Validated from a trust anchor.
    Secure,
    /// Provably unsigned.
    Insecure,
    /// Should be signed but validation failed: an attack or a broken zone.
    Bogus,
    /// Could not tell.
    Indeterminate,
}

impl DnssecStatus {
    fn from_proof(p: Proof) -> Self {
        match p {
            Proof::Secure => Self::Secure,
            Proof::Insecure => Self::Insecure,
            Proof::Bogus => Self::Bogus,
            _ => Self::Indeterminate,
        }
    }
    /// The weakest of two statuses (bogus < indeterminate < insecure < secure).
    pub fn min(self, other: Self) -> Self {
        fn rank(s: DnssecStatus) -> u8 {
            match s {
                DnssecStatus::Bogus => 0,
                DnssecStatus::Indeterminate => 1,
                DnssecStatus::Insecure => 2,
                DnssecStatus::Secure => 3,
            }
        }
        if rank(self) <= rank(other) {
            self
        } else {
            other
        }
    }
}

/// Why a lookup gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsFailure {
    /// DNSSEC validation failed.
    Bogus,
    /// No answer in time.
    Timeout,
    /// SERVFAIL, REFUSED, network error …
    Failed(String),
}

impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsFailure::Bogus => f.write_str("DNSSEC validation failed (bogus)"),
            DnsFailure::Timeout => f.write_str("DNS query timed out"),
            DnsFailure::Failed(s) => write!(f, "DNS query failed: {s}"),
        }
    }
}

/// A successful lookup: records (possibly none) and the DNSSEC status of the answer or denial.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The record data of the requested type (CNAMEs followed by the resolver).
    pub records: Vec<RData>,
    /// DNSSEC status.
    pub dnssec: DnssecStatus,
    /// `true` when the name does not exist (NXDOMAIN).
    pub nxdomain: bool,
}

/// A validating resolver.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// Builds the resolver from the configuration.
    pub fn new(cfg: &SmartTlsConfig) -> Result<Self, Error> {
        let (rcfg, mut opts) = match cfg.resolver {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                (
                    ResolverConfig::from_parts(None, vec![], vec![ns]),
                    ResolverOpts::default(),
                )
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| Error::Config(format!("system resolver configuration: {e}")))?,
        };
        opts.timeout = Duration::from_millis(cfg.dns_timeout_ms);
        opts.attempts = 2;
        opts.ndots = 0;
        let anchors = match &cfg.trust_anchor_file {
            Some(p) => TrustAnchors::from_file(p)
                .map_err(|e| Error::Config(format!("trust anchor file {}: {e}", p.display())))?,
            None => TrustAnchors::default(),
        };
        let resolver = TokioResolver::builder_with_config(rcfg, TokioRuntimeProvider::default())
            .with_options(opts)
            .with_trust_anchor(Arc::new(anchors))
            .build()
            .map_err(|e| Error::Config(format!("resolver: {e}")))?;
        Ok(Self { resolver })
    }

    /// Looks up `name` (absolute or not) for `rtype`.
    pub async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Answer, DnsFailure> {
        let fqdn = fqdn(name);
        let name = Name::from_ascii(&fqdn)
            .map_err(|e| DnsFailure::Failed(format!("bad name {fqdn}: {e}")))?;
        match self.resolver.lookup(name, rtype).await {
            Ok(lookup) => {
                let mut dnssec = DnssecStatus::Secure;
                let mut records = Vec::new();
                let mut any = false;
                for r in lookup.answers() {
                    if r.record_type() != rtype {
                        // CNAME chain links also carry a proof.
                        dnssec = dnssec.min(DnssecStatus::from_proof(r.proof));
                        continue;
                    }
                    any = true;
                    dnssec = dnssec.min(DnssecStatus::from_proof(r.proof));
                    records.push(r.data.clone());
                }
                if !any {
                    dnssec = DnssecStatus::Indeterminate;
                }
                if dnssec == DnssecStatus::Bogus {
                    return Err(DnsFailure::Bogus);
                }
                Ok(Answer {
                    records,
                    dnssec,
                    nxdomain: false,
                })
            }
            Err(e) => classify_error(e),
        }
    }

    /// A and AAAA addresses of `host` with the weakest DNSSEC status of the two answers.
    pub async fn addresses(&self, host: &str) -> Result<(Vec<IpAddr>, DnssecStatus), DnsFailure> {
        let (a, aaaa) = tokio::join!(
            self.lookup(host, RecordType::A),
            self.lookup(host, RecordType::AAAA)
        );
        let mut ips = Vec::new();
        let mut status = DnssecStatus::Secure;
        let mut failure = None;
        for r in [a, aaaa] {
            match r {
                Ok(ans) => {
                    status = status.min(ans.dnssec);
                    for rd in ans.records {
                        match rd {
                            RData::A(a) => ips.push(IpAddr::V4(a.0)),
                            RData::AAAA(a) => ips.push(IpAddr::V6(a.0)),
                            _ => {}
                        }
                    }
                }
                Err(DnsFailure::Bogus) => return Err(DnsFailure::Bogus),
                Err(e) => failure = Some(e),
            }
        }
        if ips.is_empty() {
            if let Some(f) = failure {
                return Err(f);
            }
        }
        Ok((ips, status))
    }
}

fn classify_error(e: NetError) -> Result<Answer, DnsFailure> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            let mut dnssec = DnssecStatus::Indeterminate;
            if let Some(auth) = &nr.authorities {
                let proofs: Vec<Proof> = auth
                    .iter()
                    .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
                    .map(|r: &Record| r.proof)
                    .collect();
                if !proofs.is_empty() {
                    dnssec = proofs
                        .into_iter()
                        .map(DnssecStatus::from_proof)
                        .fold(DnssecStatus::Secure, DnssecStatus::min);
                }
            }
            if dnssec == DnssecStatus::Bogus {
                return Err(DnsFailure::Bogus);
            }
            Ok(Answer {
                records: vec![],
                dnssec,
                nxdomain: nr.response_code == ResponseCode::NXDomain,
            })
        }
        NetError::Dns(DnsError::Nsec {
            proof, response, ..
        }) => {
            let dnssec = DnssecStatus::from_proof(proof);
            if dnssec == DnssecStatus::Bogus {
                return Err(DnsFailure::Bogus);
            }
            Ok(Answer {
                records: vec![],
                dnssec,
                nxdomain: response.response_code == ResponseCode::NXDomain,
            })
        }
        NetError::Dns(DnsError::DnssecBogus) => Err(DnsFailure::Bogus),
        NetError::Timeout => Err(DnsFailure::Timeout),
        other => Err(DnsFailure::Failed(other.to_string())),
    }
}

/// `name` with exactly one trailing dot, lower-cased.
pub fn fqdn(name: &str) -> String {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

/// `name` without the trailing dot, lower-cased.
pub fn bare(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

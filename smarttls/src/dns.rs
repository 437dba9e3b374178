//! DNS lookups with hickory, keeping the DNSSEC status of every answer.
//!
//! The resolver always validates: with the configured trust anchors (tests pin a zone key) or the
//! IANA root KSKs, whatever the configured resolver does (a validating resolver's SERVFAIL for
//! bogus data is asked again with CD=1 and judged here, see `dns_stack`). Answers are classified
//! as `secure`, `insecure`, `bogus` or `indeterminate`; negative answers carry the status of their
//! NSEC proof, or `insecure` in a provably unsigned zone. CNAME chains are validated link by link
//! (RFC 4035 §5): an answer is as strong as its weakest link, and [`Answer::name`] is where the
//! chain ended. The system resolver's name servers are used, never `/etc/hosts`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::caching_client::CachingClient;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts};
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::RetryDnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::{DnsRequestOptions, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{LookupFuture, NameServerPool, PoolContext, TlsConfig};
use serde::Serialize;

use crate::config::SmartTlsConfig;
pub use crate::dns_stack::ResolverValidation;
use crate::dns_stack::{self, CdRetry};
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
    /// The word of the JSON report (`secure`, `insecure`, `bogus`, `indeterminate`).
    pub fn as_str(self) -> &'static str {
        match self {
            DnssecStatus::Secure => "secure",
            DnssecStatus::Insecure => "insecure",
            DnssecStatus::Bogus => "bogus",
            DnssecStatus::Indeterminate => "indeterminate",
        }
    }

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

/// Attempts per query (hickory's retry of timeouts and SERVFAIL).
const ATTEMPTS: usize = 2;

/// A successful lookup: records (possibly none) and the DNSSEC status of the answer or denial.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The record data of the requested type (CNAMEs followed).
    pub records: Vec<RData>,
    /// DNSSEC status: the weakest of every CNAME link and of the records (or their denial).
    pub dnssec: DnssecStatus,
    /// `true` when the name does not exist (NXDOMAIN).
    pub nxdomain: bool,
    /// The owner name of the records after following CNAMEs (bare): the queried name when there
    /// was no CNAME.
    pub name: String,
}

/// The addresses of a host ([`Dns::host_addresses`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// A and AAAA addresses.
    pub ips: Vec<IpAddr>,
    /// The weakest DNSSEC status of the two answers, CNAME links included.
    pub dnssec: DnssecStatus,
    /// The CNAME-expanded host name (bare); equal to the host when it is no alias.
    pub name: String,
}

/// The resolver stack: hickory's validator (with the configured trust anchors) over the CD retry
/// of `dns_stack` over the name servers.
type Stack =
    CachingClient<DnssecDnsHandle<RetryDnsHandle<CdRetry<NameServerPool<TokioRuntimeProvider>>>>>;

/// A validating resolver.
#[derive(Clone)]
pub struct Dns {
    client: Stack,
    options: DnsRequestOptions,
    servers: Vec<SocketAddr>,
    anchor_zone: Name,
    timeout: Duration,
}

/// The most CNAME links followed by hand (RFC 1034 §3.6.2 chains; the resolver follows its own).
const MAX_CNAME_LINKS: usize = 8;

impl Dns {
    /// Builds the resolver from the configuration.
    pub fn new(cfg: &SmartTlsConfig) -> Result<Self, Error> {
        let (servers, mut opts) = match cfg.resolver {
            Some(addr) => (vec![name_server(addr)], ResolverOpts::default()),
            None => {
                let (rc, o) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| Error::Config(format!("system resolver configuration: {e}")))?;
                (rc.name_servers, o)
            }
        };
        let timeout = Duration::from_millis(cfg.dns_timeout_ms);
        opts.timeout = timeout;
        opts.attempts = ATTEMPTS;
        opts.ndots = 0;
        opts.validate = true;
        let (anchors, anchor_zone) = match &cfg.trust_anchor_file {
            Some(p) => (
                TrustAnchors::from_file(p).map_err(|e| {
                    Error::Config(format!("trust anchor file {}: {e}", p.display()))
                })?,
                first_owner(p).unwrap_or_else(Name::root),
            ),
            None => (TrustAnchors::default(), Name::root()),
        };
        let addrs = server_addrs(&servers);
        let options = request_options(&opts);
        let cache_size = opts.cache_size;
        let cx = Arc::new(PoolContext::new(
            opts,
            TlsConfig::new().map_err(|e| Error::Config(format!("resolver: {e}")))?,
        ));
        let pool = NameServerPool::from_config(servers, cx, TokioRuntimeProvider::default());
        // The CD=1 retry sits under hickory's retry: that one repeats a SERVFAIL as well, which would
        // send each bogus answer three times before the CD query.
        let cd = CdRetry::new(pool, addrs.clone(), timeout);
        let retry = RetryDnsHandle::new(cd, ATTEMPTS);
        let validator = DnssecDnsHandle::with_trust_anchor(retry, Arc::new(anchors));
        Ok(Self {
            client: CachingClient::new(cache_size, validator, true),
            options,
            servers: addrs,
            anchor_zone,
            timeout,
        })
    }

    /// The start-up self-check: does the configured resolver validate DNSSEC itself?
    pub async fn resolver_validation(&self) -> ResolverValidation {
        match self.servers.first() {
            Some(s) => dns_stack::resolver_validates(*s, &self.anchor_zone, self.timeout).await,
            None => ResolverValidation::Unreachable {
                error: "no DNS resolver configured".into(),
            },
        }
    }

    async fn resolve(&self, name: Name, rtype: RecordType) -> Result<Answer, DnsFailure> {
        let fut =
            LookupFuture::lookup(vec![name.clone()], rtype, self.options, self.client.clone());
        match fut.await {
            Ok(lookup) => answer_of(&name, rtype, lookup.answers()),
            Err(e) => classify_error(&name, e),
        }
    }

    /// Looks up `name` (absolute or not) for `rtype`, following CNAMEs (RFC 4035 §5: every link
    /// validated; the answer is as strong as its weakest link).
    pub async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Answer, DnsFailure> {
        let fqdn = fqdn(name);
        let mut name = Name::from_ascii(&fqdn)
            .map_err(|e| DnsFailure::Failed(format!("bad name {fqdn}: {e}")))?;
        let mut links = DnssecStatus::Secure;
        for _ in 0..MAX_CNAME_LINKS {
            match self.resolve(name.clone(), rtype).await {
                Ok(mut a) => {
                    a.dnssec = a.dnssec.min(links);
                    return Ok(a);
                }
                // A CNAME whose target lacks the type (or does not exist) comes back with a
                // denial for the *target*, which the validator rejects as not covering the
                // query name: follow the validated CNAME by hand and judge the target's denial.
                Err(DnsFailure::Bogus) if rtype != RecordType::CNAME => {
                    match self.cname_target(&name).await? {
                        Some((target, status)) => {
                            links = links.min(status);
                            name = target;
                        }
                        None => return Err(DnsFailure::Bogus),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(DnsFailure::Failed(format!(
            "more than {MAX_CNAME_LINKS} CNAME links from {fqdn}"
        )))
    }

    /// The validated CNAME target of `name`, if it is an alias.
    async fn cname_target(&self, name: &Name) -> Result<Option<(Name, DnssecStatus)>, DnsFailure> {
        let a = self.resolve(name.clone(), RecordType::CNAME).await?;
        Ok(a.records.iter().find_map(|r| match r {
            RData::CNAME(c) => Some((c.0.clone(), a.dnssec)),
            _ => None,
        }))
    }

    /// A and AAAA addresses of `host` with the weakest DNSSEC status of the two answers.
    pub async fn addresses(&self, host: &str) -> Result<(Vec<IpAddr>, DnssecStatus), DnsFailure> {
        self.host_addresses(host).await.map(|a| (a.ips, a.dnssec))
    }

    /// A and AAAA addresses of `host`, their DNSSEC status and the CNAME-expanded name.
    pub async fn host_addresses(&self, host: &str) -> Result<Addresses, DnsFailure> {
        let (a, aaaa) = tokio::join!(
            self.lookup(host, RecordType::A),
            self.lookup(host, RecordType::AAAA)
        );
        let mut ips = Vec::new();
        let mut status = DnssecStatus::Secure;
        let mut failure = None;
        let mut name = bare(host);
        for r in [a, aaaa] {
            match r {
                Ok(ans) => {
                    status = status.min(ans.dnssec);
                    if !ans.records.is_empty() {
                        name = ans.name.clone();
                    }
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
        Ok(Addresses {
            ips,
            dnssec: status,
            name,
        })
    }
}

/// The answer from a lookup's records: the requested type at the end of the CNAME chain from
/// `qname`, with the weakest proof among the chain's links and the records.
fn answer_of(qname: &Name, rtype: RecordType, records: &[Record]) -> Result<Answer, DnsFailure> {
    let mut owner = qname.clone();
    let mut dnssec = DnssecStatus::Secure;
    for _ in 0..MAX_CNAME_LINKS {
        let link = records.iter().find(|r| {
            r.record_type() == RecordType::CNAME && rtype != RecordType::CNAME && r.name == owner
        });
        match link {
            Some(r) => {
                dnssec = dnssec.min(DnssecStatus::from_proof(r.proof));
                if let RData::CNAME(c) = &r.data {
                    owner = c.0.clone();
                }
            }
            None => break,
        }
    }
    let mut any = false;
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.record_type() == rtype) {
        any = true;
        dnssec = dnssec.min(DnssecStatus::from_proof(r.proof));
        out.push(r.data.clone());
        owner = r.name.clone();
    }
    if !any {
        dnssec = DnssecStatus::Indeterminate;
    }
    if dnssec == DnssecStatus::Bogus {
        return Err(DnsFailure::Bogus);
    }
    Ok(Answer {
        records: out,
        dnssec,
        nxdomain: false,
        name: bare(&owner.to_ascii()),
    })
}

/// The owner name of the first record line of a trust-anchor file (the zone the self-check asks).
fn first_owner(path: &std::path::Path) -> Option<Name> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(';') && !l.starts_with('$'))?;
    Name::from_ascii(line.split_whitespace().next()?).ok()
}

/// The socket addresses of the configured name servers (first connection's port each).
fn server_addrs(servers: &[NameServerConfig]) -> Vec<SocketAddr> {
    servers
        .iter()
        .map(|s| {
            let port = s.connections.first().map_or(53, |c| c.port);
            SocketAddr::new(s.ip, port)
        })
        .collect()
}

/// Request options as hickory's resolver builds them (recursion, EDNS, DNSSEC OK).
fn request_options(opts: &ResolverOpts) -> DnsRequestOptions {
    let mut o = DnsRequestOptions::default();
    o.recursion_desired = opts.recursion_desired;
    o.use_edns = opts.edns0;
    o.edns_payload_len = opts.edns_payload_len;
    o.case_randomization = opts.case_randomization;
    o.edns_set_dnssec_ok = true;
    o
}

fn classify_error(qname: &Name, e: NetError) -> Result<Answer, DnsFailure> {
    let name = bare(&qname.to_ascii());
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            // No NSEC: an unsigned zone's denial is as insecure as its SOA (provably unsigned).
            let soa_insecure = nr.soa.as_ref().is_some_and(|s| s.proof == Proof::Insecure)
                || nr
                    .authorities
                    .as_ref()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|r| r.proof == Proof::Insecure));
            let mut dnssec = if soa_insecure {
                DnssecStatus::Insecure
            } else {
                DnssecStatus::Indeterminate
            };
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
                name,
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
                name,
            })
        }
        NetError::Dns(DnsError::DnssecBogus) => Err(DnsFailure::Bogus),
        NetError::Timeout => Err(DnsFailure::Timeout),
        other => Err(DnsFailure::Failed(other.to_string())),
    }
}

/// `name` with exactly one trailing dot, lower-cased.
/// One recursive resolver at `addr`, asked over UDP and TCP on its port (a negative answer is trusted:
/// it is the resolver's own).
pub fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

pub fn fqdn(name: &str) -> String {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    format!("{n}.")
}

/// `name` without the trailing dot, lower-cased.
pub fn bare(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::{A, CNAME};

    fn rec(name: &str, data: RData, proof: Proof) -> Record {
        let mut r = Record::from_rdata(Name::from_ascii(name).unwrap(), 300, data);
        r.proof = proof;
        r
    }

    /// RFC 4035 §5: an answer reached through a CNAME is as strong as its weakest link, and its
    /// owner is the CNAME-expanded name.
    #[test]
    fn rfc4035_5_cname_chain_status_is_the_weakest_link() {
        let q = Name::from_ascii("alias.a.test.").unwrap();
        let target = RData::CNAME(CNAME(Name::from_ascii("mx.b.test.").unwrap()));
        let addr = RData::A(A::new(192, 0, 2, 1));
        let cases = [
            (Proof::Secure, Proof::Secure, DnssecStatus::Secure),
            (Proof::Secure, Proof::Insecure, DnssecStatus::Insecure),
            (Proof::Insecure, Proof::Secure, DnssecStatus::Insecure),
        ];
        for (link, data, want) in cases {
            let records = [
                rec("alias.a.test.", target.clone(), link),
                rec("mx.b.test.", addr.clone(), data),
            ];
            let a = answer_of(&q, RecordType::A, &records).unwrap();
            assert_eq!((a.dnssec, a.name.as_str()), (want, "mx.b.test"));
        }
        let records = [
            rec("alias.a.test.", target, Proof::Bogus),
            rec("mx.b.test.", addr, Proof::Secure),
        ];
        assert_eq!(
            answer_of(&q, RecordType::A, &records).unwrap_err(),
            DnsFailure::Bogus
        );
    }
}

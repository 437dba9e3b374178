//! The query path under [`crate::dns::Dns`], for any configured resolver, validating or not.
//!
//! The prober always validates DNSSEC itself, from its own trust anchors. A validating recursive
//! resolver (the usual production setup: unbound, BIND, Knot Resolver) hides bogus data behind a
//! SERVFAIL, often with an Extended DNS Error (RFC 8914: 6 "DNSSEC Bogus", 7 "Signature
//! Expired", …), and hands the records out only when the query sets the CD bit (RFC 4035 §3.2.2:
//! a validating stub may ask with CD and validate the answer itself). [`CdRetry`] sits below the
//! validator: every query first goes out as usual; on SERVFAIL it is asked again with CD=1, and the
//! validator above then judges the data with the configured anchors, so a broken signature is
//! `bogus`, not a DNS failure. When the CD query fails too, the resolver's EDE decides: a DNSSEC
//! EDE (6–12) is bogus, anything else stays a failure (`unknown`).
//!
//! [`resolver_validates`] is the start-up self-check: does the configured resolver itself validate
//! (AD bit on the trust anchor's zone)? Stalwart relies on its resolver for DANE and (≥ 0.16.11)
//! turns DANE off when it cannot validate; the gateway says so loudly.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, Stream};
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{
    DnsRequest, DnsResponse, Edns, Message, MessageType, OpCode, Query, ResponseCode,
};
use hickory_resolver::proto::rr::rdata::opt::EdnsCode;
use hickory_resolver::proto::rr::rdata::opt::EdnsOption;
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

/// RFC 8914 §4 info codes that say "this is a DNSSEC validation failure": 6 DNSSEC Bogus,
/// 7 Signature Expired, 8 Signature Not Yet Valid, 9 DNSKEY Missing, 10 RRSIGs Missing,
/// 11 No Zone Key Bit Set, 12 NSEC Missing.
const EDE_DNSSEC: std::ops::RangeInclusive<u16> = 6..=12;

/// A [`DnsHandle`] that repeats a SERVFAIL-answered query with the CD bit set, and turns a
/// SERVFAIL that persists into `DnssecBogus` when the resolver's EDE names a DNSSEC failure.
#[derive(Clone)]
pub(crate) struct CdRetry<H> {
    inner: H,
    servers: Arc<Vec<SocketAddr>>,
    timeout: Duration,
}

impl<H> CdRetry<H> {
    pub(crate) fn new(inner: H, servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        CdRetry {
            inner,
            servers: Arc::new(servers),
            timeout,
        }
    }
}

fn is_servfail(r: &Result<DnsResponse, NetError>) -> bool {
    match r {
        Ok(resp) => resp.response_code == ResponseCode::ServFail,
        Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))) => true,
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
            nr.response_code == ResponseCode::ServFail
        }
        Err(_) => false,
    }
}

impl<H: DnsHandle> DnsHandle for CdRetry<H> {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = H::Runtime;

    fn is_verifying_dnssec(&self) -> bool {
        self.inner.is_verifying_dnssec()
    }

    fn send(&self, request: DnsRequest) -> Self::Response {
        let this = self.clone();
        Box::pin(stream::once(async move {
            let query = request.queries.first().cloned();
            let first = this.inner.send(request.clone()).first_answer().await;
            if !is_servfail(&first) {
                return first;
            }
            let mut cd = request;
            cd.metadata.checking_disabled = true;
            let second = this.inner.send(cd).first_answer().await;
            if !is_servfail(&second) {
                return second;
            }
            match query {
                Some(q) if this.ede_says_bogus(&q).await => {
                    Err(NetError::Dns(DnsError::DnssecBogus))
                }
                _ => second,
            }
        }))
    }
}

impl<H> CdRetry<H> {
    /// Asks the first resolver again without CD and reads the Extended DNS Error of its SERVFAIL.
    async fn ede_says_bogus(&self, q: &Query) -> bool {
        let Some(server) = self.servers.first() else {
            return false;
        };
        match raw_query(*server, q.name(), q.query_type(), self.timeout).await {
            Ok(m) if m.metadata.response_code == ResponseCode::ServFail => {
                let codes = ede_codes(&m);
                tracing::debug!(query = %q, ?codes, "SERVFAIL with CD=1 too; resolver EDE");
                codes.iter().any(|c| EDE_DNSSEC.contains(c))
            }
            _ => false,
        }
    }
}

/// The Extended DNS Error info codes (RFC 8914) of a response.
pub(crate) fn ede_codes(m: &Message) -> Vec<u16> {
    let Some(edns) = &m.edns else {
        return vec![];
    };
    edns.options()
        .get_all(EdnsCode::Unknown(15))
        .into_iter()
        .filter_map(|o| match o {
            EdnsOption::Unknown(15, data) if data.len() >= 2 => {
                Some(u16::from_be_bytes([data[0], data[1]]))
            }
            _ => None,
        })
        .collect()
}

/// One query over UDP with DO=1 and AD=1 (RFC 6840 §5.7: ask for the AD bit), CD=0.
pub(crate) async fn raw_query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Message, String> {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), rtype));
    m.metadata.recursion_desired = true;
    m.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.enable_dnssec();
    m.set_edns(edns);
    let bytes = m.to_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| format!("no answer from {server} within {} ms", timeout.as_millis()))?
            .map_err(|e| format!("{server}: {e}"))?;
        if let Ok(resp) = Message::from_vec(&buf[..n]) {
            if resp.metadata.id == m.metadata.id {
                return Ok(resp);
            }
        }
    }
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).ok();
    u16::from_be_bytes(b)
}

/// What the start-up self-check found out about the configured resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverValidation {
    /// It validates: its answer for the trust anchor's zone carried the AD bit.
    Validates {
        /// The resolver asked.
        server: SocketAddr,
        /// The zone asked for (the trust anchor's).
        zone: String,
    },
    /// It answered, but without AD: it does not validate (a plain forwarder, or no anchor).
    DoesNotValidate {
        /// The resolver asked.
        server: SocketAddr,
        /// The zone asked for.
        zone: String,
        /// Its response code.
        rcode: String,
    },
    /// It did not answer.
    Unreachable {
        /// What failed.
        error: String,
    },
}

impl ResolverValidation {
    /// `true` only when the resolver set the AD bit.
    pub fn validates(&self) -> bool {
        matches!(self, ResolverValidation::Validates { .. })
    }

    /// The loud warning for the log and the terminal, if the resolver cannot be trusted to
    /// validate (`None` when it validates).
    pub fn warning(&self) -> Option<String> {
        let consequence = "SmartTLS still validates DNSSEC itself, but Stalwart's DANE depends on \
             its own resolver's validation: Stalwart (>= 0.16.11) disables DANE when its resolver \
             cannot validate, and then delivers with PKIX only";
        match self {
            ResolverValidation::Validates { .. } => None,
            ResolverValidation::DoesNotValidate {
                server,
                zone,
                rcode,
            } => Some(format!(
                "WARNING: the DNS resolver {server} does not validate DNSSEC (answer for \
                 {zone} SOA: {rcode}, no AD bit). {consequence}. Point smarttls.resolver (and \
                 Stalwart) at a validating resolver."
            )),
            ResolverValidation::Unreachable { error } => Some(format!(
                "WARNING: the DNS resolver could not be asked whether it validates DNSSEC \
                 ({error}). {consequence}."
            )),
        }
    }
}

/// Asks `server` for the SOA of `zone` with DO=1/AD=1 and reads the AD bit of the answer.
pub async fn resolver_validates(
    server: SocketAddr,
    zone: &Name,
    timeout: Duration,
) -> ResolverValidation {
    let z = zone.to_ascii();
    match raw_query(server, zone, RecordType::SOA, timeout).await {
        Ok(m) if m.metadata.response_code == ResponseCode::NoError && m.metadata.authentic_data => {
            ResolverValidation::Validates { server, zone: z }
        }
        Ok(m) => ResolverValidation::DoesNotValidate {
            server,
            zone: z,
            rcode: m.metadata.response_code.to_string(),
        },
        Err(error) => ResolverValidation::Unreachable { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ede(codes: &[u16]) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        let mut edns = Edns::new();
        for c in codes {
            let mut data = c.to_be_bytes().to_vec();
            data.extend_from_slice(b"text");
            edns.options_mut().insert(EdnsOption::Unknown(15, data));
        }
        m.set_edns(edns);
        // Through the wire format, as a resolver's answer arrives.
        Message::from_vec(&m.to_vec().expect("encode")).expect("decode")
    }

    /// RFC 8914 §2: INFO-CODE is the first two octets of option 15; 6–12 are DNSSEC failures.
    #[test]
    fn rfc8914_ede_codes_are_read_and_dnssec_ones_recognised() {
        assert_eq!(ede_codes(&with_ede(&[6])), [6]);
        assert!(ede_codes(&with_ede(&[6]))
            .iter()
            .any(|c| EDE_DNSSEC.contains(c)));
        assert!(!ede_codes(&with_ede(&[22]))
            .iter()
            .any(|c| EDE_DNSSEC.contains(c)));
        assert_eq!(ede_codes(&with_ede(&[])), Vec::<u16>::new());
    }
}

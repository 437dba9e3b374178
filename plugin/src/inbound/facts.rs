//! The facts of one received message, gathered before anything is decided: the envelope, the TLS of
//! the sending server's connection, the authentication results and whether the sender's `From` domain
//! is an NTA 7516 peer (admin lists first, then its DNS record). Verification and the peer lookup run
//! concurrently, within the hook's time budget; whatever does not finish counts as `temperror` /
//! unknown.

use std::{net::IpAddr, time::Duration};

use ring::digest;

use super::{
    verify::{Envelope, Verifier},
    InboundError,
};
use crate::{
    config::Config,
    policy::{
        AuthResult, AuthResults, Peer, PeerRecord, PeerSource, SessionTls, TlsVerdicts, TlsVersion,
    },
    stalwart::hook::Request,
    time, Gateway,
};

/// The header with the gateway's verdict (added by [`super::respond`]; a copy that came with the
/// message is counted here and removed).
pub const SUMMARY_HEADER: &str = "X-NTA7516-Inbound";
/// The header naming the recipients of a quarantined message.
pub const QUARANTINE_HEADER: &str = "X-NTA7516-Quarantine";

/// Everything the decision and its record need about one received message.
#[derive(Debug, Clone)]
pub struct InboundFacts<'r> {
    /// MAIL FROM ("" for a null sender).
    pub sender: &'r str,
    /// Distinct recipients, in envelope order.
    pub recipients: Vec<&'r str>,
    pub queue_id: Option<&'r str>,
    pub client_ip: IpAddr,
    pub helo: &'r str,
    pub tls: Option<SessionTls>,
    pub auth: AuthResults,
    /// The RFC 5322.From domain (DMARC's), lower-case; "" when the message has none.
    pub from_domain: String,
    pub peer: Peer,
    /// The message as received (rebuilt from the hook request) and its SHA-256.
    pub raw: Vec<u8>,
    pub sha256: String,
    pub size: usize,
    pub now: i64,
    /// How often the message already carries each of the gateway's own headers (forged or stale
    /// copies, removed in the answer).
    pub own_headers: Vec<(&'static str, u32)>,
}

/// Gathers the facts of a DATA-stage request on the inbound hook.
pub async fn gather<'r>(
    gw: &Gateway,
    verifier: &Verifier,
    req: &'r Request,
) -> Result<InboundFacts<'r>, InboundError> {
    let (sender, recipients, message) = req
        .data()
        .map_err(|what| InboundError::BadRequest(what.into()))?;
    let client_ip: IpAddr = req.context.client.ip.parse().map_err(|_| {
        InboundError::BadRequest(format!(
            "client ip {:?} is not an address",
            req.context.client.ip
        ))
    })?;
    let helo = req.context.client.helo.as_deref().unwrap_or_default();
    // An 8-bit body Stalwart converted lossily: verify what arrived, but no DKIM body hash can match.
    let (raw, body_altered) = match message.rebuild() {
        Ok(raw) => (raw, false),
        Err(_) => (message.lossy(), true),
    };
    let budget = Duration::from_millis(gw.config.hook.tls_budget_ms);
    let env = Envelope {
        ip: client_ip,
        helo,
        mail_from: sender,
    };
    // The peer lookup (database, DNS) runs while mail-auth verifies.
    let header_from = header_from_domain(&raw);
    let verify = async {
        match tokio::time::timeout(budget, verifier.verify(&raw, body_altered, &env)).await {
            Ok(auth) => auth,
            Err(_) => timed_out(body_altered),
        }
    };
    let (auth, peer) = tokio::join!(verify, peer(gw, &header_from, budget));
    let peer = peer?;
    // The domain DMARC judged, when mail-auth found one.
    let from_domain = match auth.dmarc.domain.as_str() {
        "" => header_from,
        d => d.to_string(),
    };
    Ok(InboundFacts {
        sender,
        recipients,
        queue_id: req.context.queue.as_ref().map(|q| q.id.as_str()),
        client_ip,
        helo,
        tls: req.context.tls.as_ref().map(|t| SessionTls {
            version: TlsVersion::parse(&t.version),
            cipher: t.cipher.clone(),
        }),
        auth,
        from_domain,
        peer,
        sha256: hex::encode(digest::digest(&digest::SHA256, &raw)),
        size: message.size,
        raw,
        now: time::now(),
        own_headers: [SUMMARY_HEADER, QUARANTINE_HEADER]
            .into_iter()
            .map(|name| {
                let n = message
                    .headers
                    .iter()
                    .filter(|(h, _)| h.trim().eq_ignore_ascii_case(name))
                    .count();
                (name, n as u32)
            })
            .filter(|(_, n)| *n > 0)
            .collect(),
    })
}

/// The admin's lists (configuration, database), then the domain's DNS record.
async fn peer(gw: &Gateway, domain: &str, budget: Duration) -> Result<Peer, InboundError> {
    if domain.is_empty() {
        return Ok(Peer::No);
    }
    // The database list only when the configuration does not name the domain already.
    let listed = match gw.config.configured_peer(domain) {
        Some(_) => None,
        None => gw.store.peer_provider(domain).await?,
    };
    Ok(peer_status(&gw.config, listed, gw.tls.as_ref(), domain, budget).await)
}

/// The peer status of `domain`: `[[peers]]`, then `listed` (the admin API's list, when read), then its
/// `v=NTA7516-1` record within `budget`.
pub async fn peer_status(
    config: &Config,
    listed: Option<String>,
    tls: &dyn TlsVerdicts,
    domain: &str,
    budget: Duration,
) -> Peer {
    if domain.is_empty() {
        return Peer::No;
    }
    if let Some(p) = config.configured_peer(domain) {
        return Peer::Yes {
            provider: p.provider.clone(),
            source: PeerSource::ConfigList,
        };
    }
    if let Some(provider) = listed {
        return Peer::Yes {
            provider,
            source: PeerSource::DatabaseList,
        };
    }
    match tokio::time::timeout(budget, tls.peer_record(domain)).await {
        Ok(PeerRecord::Peer { provider, .. }) => Peer::Yes {
            provider,
            source: PeerSource::DnsRecord,
        },
        Ok(PeerRecord::None) => Peer::No,
        Ok(PeerRecord::Unknown { reason }) => Peer::Unknown { reason },
        Err(_) => Peer::Unknown {
            reason: format!(
                "NTA 7516 record lookup: no answer within {} ms",
                budget.as_millis()
            ),
        },
    }
}

/// The verification did not finish within the budget: every DNS-based result is a temporary error.
fn timed_out(body_altered: bool) -> AuthResults {
    let t = AuthResult::TempError;
    let why = "verification did not finish within the hook's time budget";
    AuthResults::unjudged(t, t, t, why, body_altered)
}

/// The domain of the first `From` header (when mail-auth gave none, e.g. after a timeout).
pub fn header_from_domain(raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::new().parse_headers(raw);
    parsed
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_domain_of_a_header() {
        let raw = b"Subject: x\r\nFrom: \"A\" <a@Zorg.Example.>\r\n\r\nbody";
        assert_eq!(header_from_domain(raw), "zorg.example");
        assert_eq!(header_from_domain(b"Subject: x\r\n\r\n"), "");
    }
}

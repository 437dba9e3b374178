//! SmartTLS as the pipeline's TLS-verdict source: the cached, single-flight probe of the `smarttls` crate,
//! mapped onto [`TlsFacts`]. Only a `secure` verdict becomes [`TlsStatus::Secure`].
//!
//! A `v=NTA7516-1` record makes the domain a peer (no 2FA) only when its answer is DNSSEC-validated: an
//! unsigned TXT record can be forged by anyone on the path, and peer status removes the recipient's 2FA.
//! Unsigned peers belong on the admin peer list instead.

use std::time::Duration;

use nta7516_smarttls::{DnssecStatus, SmartTls, Verdict};

use super::tls::{BoxFuture, PeerFact, PeerRecord, TlsFacts, TlsStatus, TlsVerdicts};

pub struct SmartTlsVerdicts(pub SmartTls);

impl TlsVerdicts for SmartTlsVerdicts {
    fn peer_record<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, PeerRecord> {
        Box::pin(async move {
            match self.0.nta_peer(domain).await {
                Ok(Some(p)) if p.is_peer => PeerRecord::Peer {
                    provider: p.provider.unwrap_or_else(|| "unnamed provider".into()),
                    dnssec: p.dnssec == DnssecStatus::Secure,
                },
                Ok(_) => PeerRecord::None,
                Err(e) => PeerRecord::Unknown {
                    reason: format!("NTA 7516 record lookup failed: {e}"),
                },
            }
        })
    }

    fn verdict<'a>(&'a self, domain: &'a str, budget: Duration) -> BoxFuture<'a, TlsFacts> {
        Box::pin(async move {
            let report = self.0.domain(domain, budget).await;
            TlsFacts {
                status: match report.verdict {
                    Verdict::Secure => TlsStatus::Secure,
                    Verdict::Insecure => TlsStatus::Insecure,
                    Verdict::Unknown => TlsStatus::Unknown,
                },
                grade: Some(report.grade.category.as_str().to_string()),
                reasons: report
                    .reasons
                    .iter()
                    .map(|r| match &r.host {
                        Some(host) => format!("{} ({host})", r.code.as_str()),
                        None => r.code.as_str().to_string(),
                    })
                    .collect(),
                nta_peer: report
                    .nta_peer
                    .as_ref()
                    .filter(|p| p.is_peer && p.dnssec == DnssecStatus::Secure)
                    .map(|p| PeerFact {
                        provider: p
                            .provider
                            .clone()
                            .unwrap_or_else(|| "unnamed provider".into()),
                    }),
            }
        })
    }
}

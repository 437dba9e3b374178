//! The TLS-verdict seam: what the pipeline needs to know about a recipient domain's mail servers.
//! SmartTLS is the real implementation ([`crate::smarttls`]); [`NoSmartTls`] is the conservative
//! stand-in when probing is switched off, and it never lets anything be delivered.

use std::{future::Future, pin::Pin, time::Duration};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsStatus {
    Secure,
    Insecure,
    /// Could not be determined (DNS failure, timeout, budget exhausted): never deliverable.
    Unknown,
}

impl TlsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsStatus::Secure => "secure",
            TlsStatus::Insecure => "insecure",
            TlsStatus::Unknown => "unknown",
        }
    }
}

/// An NTA 7516 peer fact from DNS (`v=NTA7516-1` TXT record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerFact {
    pub provider: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsFacts {
    pub status: TlsStatus,
    /// Posture grade (e.g. `good`, `sufficient`, `phase_out`, `insufficient`), when known.
    pub grade: Option<String>,
    /// Why the status is not Secure (machine codes with hosts), empty when Secure.
    pub reasons: Vec<String>,
    /// The domain publishes a valid `v=NTA7516-1` record.
    pub nta_peer: Option<PeerFact>,
}

impl TlsFacts {
    pub fn unknown(reason: impl Into<String>) -> Self {
        TlsFacts {
            status: TlsStatus::Unknown,
            grade: None,
            reasons: vec![reason.into()],
            nta_peer: None,
        }
    }
}

/// A sending domain's `v=NTA7516-1` record, for received mail: a peer promises authenticated mail over
/// TLS, so its mail is checked more strictly. Unlike a recipient's peer status (which removes 2FA and so
/// needs DNSSEC), an unsigned record counts here: forging one only makes the checks stricter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PeerRecord {
    Peer {
        provider: String,
        dnssec: bool,
    },
    None,
    /// The lookup failed (DNS error, timeout, bogus): whether the promise applies is unknown.
    Unknown {
        reason: String,
    },
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Source of TLS verdicts per recipient domain. Must answer within `budget`; when it cannot, the answer
/// is [`TlsStatus::Unknown`].
pub trait TlsVerdicts: Send + Sync + 'static {
    fn verdict<'a>(&'a self, domain: &'a str, budget: Duration) -> BoxFuture<'a, TlsFacts>;

    /// The sending domain's peer record (received mail). Without a DNS source (probing off), only the
    /// admin's peer lists apply: `None`.
    fn peer_record<'a>(&'a self, _domain: &'a str) -> BoxFuture<'a, PeerRecord> {
        Box::pin(async { PeerRecord::None })
    }
}

/// Probing switched off: every external domain is Unknown, so nothing external is ever delivered
/// without a hold.
pub struct NoSmartTls;

impl TlsVerdicts for NoSmartTls {
    fn verdict<'a>(&'a self, _domain: &'a str, _budget: Duration) -> BoxFuture<'a, TlsFacts> {
        Box::pin(async { TlsFacts::unknown("smarttls_disabled") })
    }
}

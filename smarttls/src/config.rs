//! Configuration of the SmartTLS prober.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Configuration of [`crate::SmartTls`]. Every field has a default, so an empty TOML table is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmartTlsConfig {
    /// DNS server to query (`IP:PORT`). `None` = the system resolver (`/etc/resolv.conf`),
    /// validating DNSSEC itself from the IANA root trust anchors.
    pub resolver: Option<SocketAddr>,
    /// Trust anchors in zone-file text (`name. TTL IN DNSKEY 257 3 15 <base64>` lines), as hickory's
    /// `TrustAnchors::from_file` reads them. `None` = the IANA root KSKs.
    pub trust_anchor_file: Option<PathBuf>,
    /// Extra PEM roots, added to the Mozilla roots (webpki-roots), for PKIX validation of MX and
    /// MTA-STS certificates. Non-self-signed certificates in the file are not trusted; they are
    /// known intermediates, used only to tell an incomplete chain from an unknown issuer.
    pub ca_file: Option<PathBuf>,
    /// SMTP port of the MX hosts (25; other values only for tests). DANE uses `_<port>._tcp`.
    pub smtp_port: u16,
    /// HTTPS port of `mta-sts.<domain>` (443; other values only for tests).
    pub mta_sts_port: u16,
    /// TCP connect timeout per address, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Timeout per SMTP command / TLS handshake / HTTPS fetch, in milliseconds.
    pub command_timeout_ms: u64,
    /// Timeout of one DNS query, in milliseconds.
    pub dns_timeout_ms: u64,
    /// Cache lifetime of a secure result, in seconds.
    pub ttl_secure: u64,
    /// Cache lifetime of an insecure / unknown result, in seconds (shorter, so fixes show up soon).
    pub ttl_failure: u64,
    /// Upper bound on MX host probes running at the same time.
    pub max_concurrent_probes: usize,
    /// Also probe which legacy protocol versions (TLS 1.0/1.1) and weak suites the server accepts,
    /// with raw ClientHellos (extra connections, run concurrently with the main handshake).
    pub legacy_probe: bool,
    /// Name sent in EHLO.
    pub ehlo_name: String,
    /// Maximum number of MX hosts examined (internet.nl uses 10).
    pub max_mx: usize,
}

impl Default for SmartTlsConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            trust_anchor_file: None,
            ca_file: None,
            smtp_port: 25,
            mta_sts_port: 443,
            connect_timeout_ms: 5_000,
            command_timeout_ms: 10_000,
            dns_timeout_ms: 5_000,
            ttl_secure: 3_600,
            ttl_failure: 300,
            max_concurrent_probes: 64,
            legacy_probe: true,
            ehlo_name: "smarttls.invalid".into(),
            max_mx: 10,
        }
    }
}

impl SmartTlsConfig {
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub(crate) fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }
}

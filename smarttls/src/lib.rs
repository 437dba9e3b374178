//! # SmartTLS for the NTA 7516 gateway
//!
//! Decides whether mail to a recipient domain can be delivered over **secure, authenticated TLS**
//! (the bar of DESIGN §4, the same as Stalwart's strict outbound TLS strategy), and grades the
//! domain's mail servers by the internet.nl / NCSC-NL 2025-05 TLS rules.
//!
//! For a domain it resolves the MX hosts with a DNSSEC-validating resolver (null MX, implicit MX),
//! and for each host (up to 10, in preference order) connects to the SMTP port, sends EHLO and
//! STARTTLS, performs a rustls TLS 1.2/1.3 handshake that records every certificate problem
//! separately, checks DANE (TLSA at `_25._tcp.<mx>`, DNSSEC-secure only), and probes with raw
//! ClientHellos whether the server also accepts TLS 1.0/1.1 or weak suites. It also fetches the
//! MTA-STS policy and reads the `v=NTA7516-1` peer record.
//!
//! The result is a [`DomainReport`] with a [`Verdict`] (`secure` = deliverable, `insecure`,
//! `unknown`), typed [`Reason`]s with stable codes, a [`Grade`] and the facts per MX host.
//! [`SmartTls::domain`] caches results per domain and per MX host, runs one probe per key at a time
//! (single-flight), bounds concurrent probes, and answers `unknown` (reason `timeout`) when the
//! caller's time budget runs out while the probe carries on and fills the cache.
//!
//! Modules, from the wire up: [`dns`] (lookups with DNSSEC status, CNAME chains validated link by
//! link; below it `dns_stack`: the CD=1 retry and EDE reading behind a validating resolver, and the
//! start-up check [`SmartTls::check_resolver`]), [`smtp`] (EHLO/STARTTLS
//! client), [`tls`] (recording verifier), [`legacy`] (raw ClientHello), [`mta_sts`] and [`peer`]
//! (the policy and the `v=NTA7516-1` record); `probe` (the I/O: which lookups and sessions, in
//! which order, per host and per domain) hands what it gathered to `facts` (raw results to report
//! facts, with [`dane`]) and `judge` (pure: facts to verdicts and reasons by the rules of
//! [`verdict`], and the NCSC grade of [`grade`]); [`report`] holds the result types and the text
//! rendering, [`cache`] the single-flight caches. With the `testkit` feature, [`testkit`] starts
//! real STARTTLS servers, a signed DNS server and an MTA-STS web server on loopback for tests.

pub mod cache;
pub mod config;
pub mod dane;
pub mod dns;
mod dns_stack;
mod error;
mod facts;
pub mod grade;
mod judge;
pub mod legacy;
pub mod mta_sts;
pub mod peer;
mod probe;
pub mod report;
pub mod smtp;
pub mod tls;
mod util;
pub mod verdict;

#[cfg(feature = "testkit")]
pub mod testkit;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use config::SmartTlsConfig;
pub use dns::{DnssecStatus, ResolverValidation};
pub use error::Error;
pub use grade::{Category, Finding, FindingItem, Grade};
pub use mta_sts::MtaSts;
pub use peer::{NtaPeer, PeerStatus};
pub use report::{render_text, DomainReport, HostProbe, MxReport};
pub use verdict::{Reason, ReasonCode, Verdict};

/// The SmartTLS prober with its caches. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct SmartTls {
    engine: Arc<probe::Engine>,
}

impl SmartTls {
    /// Builds the prober (resolver, trust anchors, roots).
    pub fn new(cfg: SmartTlsConfig) -> Result<SmartTls, Error> {
        Ok(SmartTls {
            engine: probe::Engine::new(cfg)?,
        })
    }

    /// The start-up self-check: does the configured resolver validate DNSSEC itself (AD bit for
    /// the trust anchor's zone)? SmartTLS validates either way; Stalwart's DANE does not, so a
    /// resolver that cannot validate deserves a loud warning ([`ResolverValidation::warning`]).
    pub async fn check_resolver(&self) -> ResolverValidation {
        self.engine.dns.resolver_validation().await
    }

    /// The configuration in use.
    pub fn config(&self) -> &SmartTlsConfig {
        &self.engine.cfg
    }

    /// The report for `domain`, from the cache or a (single-flight) probe. If the probe does not
    /// finish within `budget`, returns an `Unknown` report with reason `timeout`; the probe goes on
    /// and fills the cache for the next call.
    pub async fn domain(&self, domain: &str, budget: Duration) -> Arc<DomainReport> {
        let key = dns::bare(domain);
        let engine = self.engine.clone();
        let d = key.clone();
        let lookup = self.engine.domains.get_or_start(&key, move || async move {
            engine.probe_domain(&d, true).await
        });
        match lookup {
            cache::Lookup::Hit(v) => v,
            cache::Lookup::Wait(rx) => {
                match tokio::time::timeout(budget, cache::SingleFlight::wait(rx)).await {
                    Ok(Some(v)) => v,
                    Ok(None) => {
                        let mut r = probe::budget_exceeded(&key, budget);
                        r.reasons = vec![Reason::domain(
                            ReasonCode::ProbeFailed,
                            "the probe task failed",
                        )];
                        Arc::new(r)
                    }
                    Err(_) => Arc::new(probe::budget_exceeded(&key, budget)),
                }
            }
        }
    }

    /// Only the `v=NTA7516-1` record of `domain` (no MX or TLS probe), through the validating
    /// resolver and its cache: whether mail *from* that domain comes from an NTA 7516 peer.
    pub async fn nta_peer(&self, domain: &str) -> Result<Option<NtaPeer>, dns::DnsFailure> {
        self.engine.nta(&dns::bare(domain)).await
    }

    /// The cached report for `domain`, if any (fresh or not), without probing.
    pub fn cached(&self, domain: &str) -> Option<Arc<DomainReport>> {
        self.engine.domains.peek(&dns::bare(domain))
    }

    /// Probes `domain` now, bypassing (and not filling) the caches.
    pub async fn probe_uncached(&self, domain: &str) -> DomainReport {
        self.engine.probe_domain(domain, false).await
    }

    /// Number of MX host probes started since creation.
    pub fn probes_started(&self) -> u64 {
        self.engine.probes.load(Ordering::SeqCst)
    }

    /// Drops all cached results.
    pub fn clear_cache(&self) {
        self.engine.domains.clear();
        self.engine.hosts.clear();
    }

    /// Removes expired cache entries (call now and then from a maintenance task).
    pub fn purge_expired(&self) {
        self.engine.domains.purge();
        self.engine.hosts.purge();
    }
}

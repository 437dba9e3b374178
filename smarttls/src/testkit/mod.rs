//! Test support: real servers on loopback for SmartTLS tests (feature `testkit`).
//!
//! * [`pki`]: a test PKI with rcgen (root, intermediate, leaves with chosen defects);
//! * [`smtp_server`]: a STARTTLS SMTP server on rustls;
//! * [`legacy`]: a TLS 1.0/1.1 STARTTLS server on the system OpenSSL (Python standard library);
//! * [`dns_server`]: hickory-server with DNSSEC-signed zones and pinned trust anchors;
//! * [`https`]: an MTA-STS policy server;
//! * [`unbound`]: a real validating resolver (Debian's unbound) between the prober and the zones;
//! * [`World`]: all of the above wired together, giving a ready [`SmartTlsConfig`].
//!
//! Every MX host gets its own loopback address (127.x.y.z) with one shared SMTP port, because the
//! prober connects to the same port on every MX, as on the Internet.
//!
//! ```no_run
//! # async fn demo() {
//! use nta7516_smarttls::testkit::{World, LeafKind};
//! let mut w = World::new().await;
//! let good = w.mx_server("mx1", LeafKind::Good).await;          // mx1.<zone>
//! w.domain("secure", &[(10, &good)]);                          // secure.<zone> MX 10 mx1.<zone>
//! let st = w.start().await;                                    // DNS up, SmartTls ready
//! let r = st.domain(&w.name("secure"), std::time::Duration::from_secs(5)).await;
//! # }
//! ```

pub mod dns_server;
pub mod https;
pub mod legacy;
pub mod pki;
pub mod smtp_server;
pub mod unbound;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::TcpListener;

pub use dns_server::{TestDns, ZoneBuilder};
pub use pki::{CertKey, LeafKind, TestPki};
pub use smtp_server::{SmtpServerOpts, TestSmtpServer};

use crate::{SmartTls, SmartTlsConfig};

static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// A fresh loopback address (127.x.y.z, never 127.0.0.1), distinct within this process and
/// spread by process id across processes.
pub fn fresh_ip() -> Ipv4Addr {
    let n = NEXT_IP.fetch_add(1, Ordering::SeqCst);
    let base = (std::process::id() % 200) + 20; // second octet 20..219
    let idx = n % 60_000;
    Ipv4Addr::new(127, base as u8, (idx / 250) as u8, (idx % 250 + 2) as u8)
}

/// Binds `port` on a fresh loopback address, trying further addresses when taken.
pub async fn bind_fresh(port: u16) -> TcpListener {
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(SocketAddr::new(IpAddr::V4(fresh_ip()), port)).await {
            return l;
        }
    }
    panic!("no free loopback address for port {port}");
}

/// A free TCP port (probed on a fresh loopback address).
pub async fn free_port() -> u16 {
    let l = TcpListener::bind(SocketAddr::new(IpAddr::V4(fresh_ip()), 0))
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

static NEXT_WORLD: AtomicU32 = AtomicU32::new(0);

fn expired_zone(origin: &str) -> ZoneBuilder {
    let mut z = ZoneBuilder::new(origin);
    z.expired_signatures();
    z
}

/// Which DNS server the prober of a [`World`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestResolver {
    /// The authoritative test server itself (the prober validates against the pinned anchors).
    Authoritative,
    /// A validating unbound with the zones' trust anchors (the production setup).
    ValidatingUnbound,
    /// An unbound without trust anchors: resolves, never validates (no AD bit).
    NonValidatingUnbound,
}

/// Servers, zone and configuration for one test.
pub struct World {
    /// The PKI (its root and intermediate are in the `ca_file`).
    pub pki: TestPki,
    /// The anchored zone (`w<n>.test`).
    pub zone: ZoneBuilder,
    /// A zone signed with a key nobody trusts (`bogus<n>.test`).
    pub bogus_zone: ZoneBuilder,
    /// A second anchored zone (`x<n>.test`), for CNAMEs across zones.
    pub zone2: ZoneBuilder,
    /// An unsigned zone (`plain<n>.test`). Behind unbound it is provably insecure (the signed
    /// parent `test.` has no DS for it); served directly it has no provable status.
    pub plain_zone: ZoneBuilder,
    /// An anchored zone whose signatures have all expired (`expired<n>.test`).
    pub expired_zone: ZoneBuilder,
    /// SMTP port shared by all MX hosts.
    pub smtp_port: u16,
    /// HTTPS port shared by all MTA-STS hosts.
    pub https_port: u16,
    /// Directory for the anchor and CA files (removed on drop).
    pub dir: PathBuf,
    /// The DNS server once started.
    pub dns: Option<TestDns>,
    /// The signed parent zone `test.` (behind unbound only), delegating to the zones of `dns`.
    pub parent_dns: Option<TestDns>,
    /// Extra knobs applied to the config by [`World::config`].
    pub legacy_probe: bool,
    /// Which resolver the prober asks (set before [`World::start_dns`]).
    pub resolver: TestResolver,
    /// The unbound in front of the zones, once started.
    pub unbound: Option<unbound::Unbound>,
    smtp: Vec<TestSmtpServer>,
    https: Vec<https::TestHttps>,
    legacy: Vec<legacy::LegacyServer>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    /// A new world with a fresh PKI, zone names and ports.
    pub async fn new() -> World {
        let n = NEXT_WORLD.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("smarttls-testkit-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        World {
            pki: TestPki::new(),
            zone: ZoneBuilder::new(&format!("w{n}.test")),
            bogus_zone: ZoneBuilder::new(&format!("bogus{n}.test")),
            zone2: ZoneBuilder::new(&format!("x{n}.test")),
            plain_zone: ZoneBuilder::new(&format!("plain{n}.test")),
            expired_zone: expired_zone(&format!("expired{n}.test")),
            smtp_port: free_port().await,
            https_port: free_port().await,
            dir,
            dns: None,
            parent_dns: None,
            legacy_probe: true,
            resolver: TestResolver::Authoritative,
            unbound: None,
            smtp: vec![],
            https: vec![],
            legacy: vec![],
        }
    }

    /// A second world with the same zone names (its own DNS server, keys, PKI and ports): the same
    /// domains as another resolver sees them, e.g. after a record was removed.
    pub async fn twin(&self) -> World {
        let mut w = World::new().await;
        w.zone = ZoneBuilder::new(&self.zone.origin());
        w.bogus_zone = ZoneBuilder::new(&self.bogus_zone.origin());
        w.zone2 = ZoneBuilder::new(&self.zone2.origin());
        w.plain_zone = ZoneBuilder::new(&self.plain_zone.origin());
        w.expired_zone = expired_zone(&self.expired_zone.origin());
        w
    }

    /// `label.<zone>`.
    pub fn name(&self, label: &str) -> String {
        format!("{label}.{}", self.zone.origin())
    }

    /// Starts a STARTTLS server for `label.<zone>` with a leaf of `kind`; adds its A record.
    /// Returns the host name.
    pub async fn mx_server(&mut self, label: &str, kind: LeafKind) -> String {
        let host = self.name(label);
        let cert = self.pki.leaf(&[&host], kind);
        self.mx_server_with(label, SmtpServerOpts::tls(cert, &host))
            .await
    }

    /// Starts a server with explicit options for `label.<zone>`; adds its A record.
    pub async fn mx_server_with(&mut self, label: &str, opts: SmtpServerOpts) -> String {
        let host = self.name(label);
        let l = bind_fresh(self.smtp_port).await;
        let ip = l.local_addr().expect("addr").ip();
        self.smtp.push(smtp_server::start(l, opts));
        self.zone.addr(&host, ip);
        host
    }

    /// An MX host name whose address has nothing listening (connection refused).
    pub fn mx_down(&mut self, label: &str) -> String {
        let host = self.name(label);
        self.zone.addr(&host, IpAddr::V4(fresh_ip()));
        host
    }

    /// Starts a TLS 1.0-only legacy server (system OpenSSL via python3) for `label.<zone>`.
    /// `None` when python3 is not installed.
    pub async fn mx_legacy_tls10(&mut self, label: &str) -> Option<String> {
        self.mx_legacy(label, "TLSv1").await
    }

    /// Starts a TLS 1.1-only legacy server, like [`World::mx_legacy_tls10`].
    pub async fn mx_legacy_tls11(&mut self, label: &str) -> Option<String> {
        self.mx_legacy(label, "TLSv1_1").await
    }

    /// A legacy server speaking exactly one protocol version (`TLSv1` or `TLSv1_1`, as the helper
    /// script names them) with ECDHE-ECDSA CBC suites (SHA-1 signatures need `@SECLEVEL=0`).
    async fn mx_legacy(&mut self, label: &str, version: &str) -> Option<String> {
        let host = self.name(label);
        let cert = self.pki.leaf(&[&host], LeafKind::Good);
        let ip = fresh_ip();
        let srv = legacy::LegacyServer::start(
            &self.dir,
            IpAddr::V4(ip),
            self.smtp_port,
            &cert,
            version,
            version,
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0",
            &host,
        )
        .await?;
        self.legacy.push(srv);
        self.zone.addr(&host, IpAddr::V4(ip));
        Some(host)
    }

    /// `label.<zone>` with these MX records.
    pub fn domain(&mut self, label: &str, mx: &[(u16, &str)]) -> String {
        let d = self.name(label);
        for (p, h) in mx {
            self.zone.mx(&d, *p, h);
        }
        d
    }

    /// TLSA `usage selector matching data` at `_<port>._tcp.<host>`.
    pub fn tlsa(&mut self, host: &str, usage: u8, selector: u8, matching: u8, data_hex: &str) {
        let name = format!("_{}._tcp.{host}", self.smtp_port);
        self.zone.tlsa(&name, usage, selector, matching, data_hex);
    }

    /// Publishes an MTA-STS policy for `domain`: `_mta-sts` TXT, `mta-sts.<domain>` A record and a
    /// real HTTPS server with a PKIX-valid certificate.
    pub async fn mta_sts(&mut self, domain: &str, id: &str, policy: &str) {
        let host = format!("mta-sts.{domain}");
        let cert = self.pki.leaf(&[&host], LeafKind::Good);
        let l = bind_fresh(self.https_port).await;
        let ip = l.local_addr().expect("addr").ip();
        self.https.push(https::start(l, cert, policy.to_string()));
        self.zone.addr(&host, ip);
        self.zone
            .txt(&format!("_mta-sts.{domain}"), &format!("v=STSv1; id={id};"));
    }

    /// Starts the DNS server (call after adding all records) and, behind unbound, the parent zone
    /// and unbound itself.
    pub async fn start_dns(&mut self) -> SmartTlsConfig {
        let dns = dns_server::start_with(
            &[
                self.zone.clone(),
                self.zone2.clone(),
                self.expired_zone.clone(),
            ],
            std::slice::from_ref(&self.bogus_zone),
            std::slice::from_ref(&self.plain_zone),
        )
        .await;
        let (resolver, anchor_text) = match self.resolver {
            TestResolver::Authoritative => (dns.addr, dns.anchors.clone()),
            mode => {
                let parent = dns_server::start_parent("test.", &dns).await;
                let mut stubs = vec![("test".to_string(), parent.addr)];
                stubs.extend(
                    dns.delegations
                        .iter()
                        .map(|(n, _)| (n.to_ascii(), dns.addr)),
                );
                let validate = mode == TestResolver::ValidatingUnbound;
                let u = unbound::Unbound::start(&self.dir, &stubs, &parent.anchors, validate)
                    .await
                    .expect("unbound is required for this test (see unbound::require_unbound)");
                let anchors = parent.anchors.clone();
                self.parent_dns = Some(parent);
                let addr = u.addr;
                self.unbound = Some(u);
                (addr, anchors)
            }
        };
        let anchors = self.dir.join("anchors.zone");
        std::fs::write(&anchors, anchor_text).expect("write anchors");
        let ca = self.dir.join("ca.pem");
        std::fs::write(&ca, self.pki.ca_file_pem()).expect("write ca");
        let cfg = SmartTlsConfig {
            resolver: Some(resolver),
            trust_anchor_file: Some(anchors),
            ca_file: Some(ca),
            smtp_port: self.smtp_port,
            mta_sts_port: self.https_port,
            connect_timeout_ms: 2_000,
            command_timeout_ms: 4_000,
            dns_timeout_ms: 2_000,
            legacy_probe: self.legacy_probe,
            ..SmartTlsConfig::default()
        };
        self.dns = Some(dns);
        cfg
    }

    /// A world whose prober asks a validating unbound; `None` (after a loud `SKIPPED`, a panic
    /// under CI) when unbound is not installed.
    pub async fn behind_unbound() -> Option<World> {
        unbound::require_unbound()?;
        let mut w = World::new().await;
        w.resolver = TestResolver::ValidatingUnbound;
        w.legacy_probe = false;
        Some(w)
    }

    /// Starts DNS and returns a prober for this world.
    pub async fn start(&mut self) -> SmartTls {
        let cfg = self.start_dns().await;
        SmartTls::new(cfg).expect("SmartTls")
    }

    /// A ready-made world for gateway tests: `secure.<zone>` (PKIX-valid MX) and
    /// `insecure.<zone>` (self-signed certificate, no DANE). Returns (world, prober, secure
    /// domain, insecure domain).
    pub async fn secure_and_insecure() -> (World, SmartTls, String, String) {
        let mut w = World::new().await;
        w.legacy_probe = false;
        let good = w.mx_server("mx-good", LeafKind::Good).await;
        let bad = w.mx_server("mx-bad", LeafKind::SelfSigned).await;
        let s = w.domain("secure", &[(10, &good)]);
        let i = w.domain("insecure", &[(10, &bad)]);
        let st = w.start().await;
        (w, st, s, i)
    }
}

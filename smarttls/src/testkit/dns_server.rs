//! A real authoritative DNS server (hickory-server, in process) with DNSSEC-signed zones.
//!
//! Zones are signed with Ed25519 and NSEC. "Anchored" zones have their key in the trust-anchor
//! text handed to the prober, so their answers validate as secure; "unanchored" zones are signed
//! with a key nobody trusts, so every answer from them is bogus.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::{RuntimeProvider, Time, TokioRuntimeProvider};
use hickory_server::proto::dnssec::crypto::Ed25519SigningKey;
use hickory_server::proto::dnssec::rdata::DNSKEY;
use hickory_server::proto::dnssec::{DnssecSigner, SigningKey};
use hickory_server::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TLSA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

/// Records of one zone.
#[derive(Clone)]
pub struct ZoneBuilder {
    origin: Name,
    records: Vec<Record>,
    signed_in_past: bool,
    broken: Vec<Name>,
}

/// A runtime whose clock is 20 days behind, so a zone signed with it (7-day signatures) carries
/// RRSIGs that expired 13 days ago (RFC 4034 §3.1.5; RFC 8914 EDE 7 "Signature Expired").
#[derive(Clone, Default)]
struct PastRuntime(TokioRuntimeProvider);

struct PastTime;

#[async_trait::async_trait]
impl Time for PastTime {
    async fn delay_for(duration: Duration) {
        tokio::time::sleep(duration).await
    }
    async fn timeout<F: 'static + std::future::Future + Send>(
        duration: Duration,
        future: F,
    ) -> Result<F::Output, std::io::Error> {
        tokio::time::timeout(duration, future)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    }
    fn current_time() -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_secs()) - 20 * 86400
    }
}

impl RuntimeProvider for PastRuntime {
    type Handle = <TokioRuntimeProvider as RuntimeProvider>::Handle;
    type Timer = PastTime;
    type Udp = <TokioRuntimeProvider as RuntimeProvider>::Udp;
    type Tcp = <TokioRuntimeProvider as RuntimeProvider>::Tcp;
    fn create_handle(&self) -> Self::Handle {
        self.0.create_handle()
    }
    fn connect_tcp(
        &self,
        server: SocketAddr,
        bind: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + std::future::Future<Output = Result<Self::Tcp, std::io::Error>>>> {
        self.0.connect_tcp(server, bind, timeout)
    }
    fn bind_udp(
        &self,
        local: SocketAddr,
        server: SocketAddr,
    ) -> Pin<Box<dyn Send + std::future::Future<Output = Result<Self::Udp, std::io::Error>>>> {
        self.0.bind_udp(local, server)
    }
}

fn abs(name: &str) -> Name {
    let n = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_str(&n).expect("valid name")
}

impl ZoneBuilder {
    /// An empty zone (SOA and NS are added when signing).
    pub fn new(origin: &str) -> Self {
        ZoneBuilder {
            origin: abs(origin),
            records: vec![],
            signed_in_past: false,
            broken: vec![],
        }
    }
    /// After signing, change the TLSA data at `name` and keep the old RRSIG: a broken signature
    /// (a validating resolver answers SERVFAIL with RFC 8914 EDE 6 "DNSSEC Bogus").
    pub fn break_tlsa_signature(&mut self, name: &str) -> &mut Self {
        self.broken.push(abs(name));
        self
    }
    /// Sign this zone 20 days in the past: every signature has expired.
    pub fn expired_signatures(&mut self) -> &mut Self {
        self.signed_in_past = true;
        self
    }
    /// The origin, without trailing dot.
    pub fn origin(&self) -> String {
        self.origin.to_ascii().trim_end_matches('.').to_string()
    }
    /// Adds any record.
    pub fn record(&mut self, name: &str, rdata: RData) -> &mut Self {
        self.records.push(Record::from_rdata(abs(name), 300, rdata));
        self
    }
    /// A or AAAA.
    pub fn addr(&mut self, name: &str, ip: IpAddr) -> &mut Self {
        match ip {
            IpAddr::V4(v4) => self.record(name, RData::A(A(v4))),
            IpAddr::V6(v6) => self.record(name, RData::AAAA(AAAA(v6))),
        }
    }
    /// MX (`host` "." makes a null MX).
    pub fn mx(&mut self, name: &str, preference: u16, host: &str) -> &mut Self {
        let exchange = if host == "." { Name::root() } else { abs(host) };
        self.record(name, RData::MX(MX::new(preference, exchange)))
    }
    /// TLSA with hex data.
    pub fn tlsa(
        &mut self,
        name: &str,
        usage: u8,
        selector: u8,
        matching: u8,
        data_hex: &str,
    ) -> &mut Self {
        let data = hex::decode(data_hex).expect("hex");
        self.record(
            name,
            RData::TLSA(TLSA::new(
                CertUsage::from(usage),
                Selector::from(selector),
                Matching::from(matching),
                data,
            )),
        )
    }
    /// CNAME from `name` to `target`.
    pub fn cname(&mut self, name: &str, target: &str) -> &mut Self {
        self.record(name, RData::CNAME(CNAME(abs(target))))
    }
    /// TXT. Text longer than 255 bytes is split into several character-strings, as a zone file
    /// writes a long DKIM key (one string can hold at most 255 bytes on the wire).
    pub fn txt(&mut self, name: &str, text: &str) -> &mut Self {
        let parts = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.record(name, RData::TXT(TXT::new(parts)))
    }
}

/// A running DNS server; stops when dropped, and can be stopped and started again on the same
/// address with the same signed zones ([`TestDns::stop`], [`TestDns::restart`]): a DNS outage.
pub struct TestDns {
    /// Address (UDP and TCP).
    pub addr: SocketAddr,
    /// Trust anchors (zone-file DNSKEY lines) of the anchored zones.
    pub anchors: String,
    /// Anchors for the unanchored zones with a key they are *not* signed with, for a validating
    /// resolver (which would otherwise treat a zone without an anchor above it as insecure).
    pub decoy_anchors: String,
    /// Every zone served, with the key a parent should publish a DS for (`None`: unsigned).
    pub delegations: Vec<(Name, Option<DNSKEY>)>,
    /// The signed zones, kept so that a restart serves exactly the same records and signatures.
    zones: Vec<(LowerName, Arc<dyn ZoneHandler>)>,
    server: Option<Server<Catalog>>,
}

impl TestDns {
    /// Stops answering: the UDP and TCP sockets are closed (queries get "port unreachable" or
    /// connection refused) until [`TestDns::restart`].
    pub async fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), server.shutdown_gracefully()).await;
        }
    }

    /// Serves the same zones again on the same address (after [`TestDns::stop`]).
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut catalog = Catalog::new();
        for (origin, handler) in &self.zones {
            catalog.upsert(origin.clone(), vec![handler.clone()]);
        }
        let mut server = Server::new(catalog);
        for _ in 0..100 {
            let udp = UdpSocket::bind(self.addr).await;
            let tcp = TcpListener::bind(self.addr).await;
            if let (Ok(udp), Ok(tcp)) = (udp, tcp) {
                server.register_socket(udp);
                server.register_listener(tcp, Duration::from_secs(5), 64);
                self.server = Some(server);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot listen on {} again", self.addr);
    }

    /// Whether the server is answering (not [`TestDns::stop`]ped).
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }
}

fn sign(zone: &ZoneBuilder) -> (InMemoryZoneHandler<TokioRuntimeProvider>, DNSKEY) {
    build(zone, true)
}

/// The zone as a handler for the catalog (signed in the past when asked).
fn handler(zone: &ZoneBuilder, signed: bool) -> (Arc<dyn ZoneHandler>, DNSKEY) {
    if zone.signed_in_past {
        let (h, k) = build::<PastRuntime>(zone, signed);
        (Arc::new(h), k)
    } else {
        let (h, k) = build::<TokioRuntimeProvider>(zone, signed);
        (Arc::new(h), k)
    }
}

/// The zone with SOA, NS and `ns.<origin>`, signed (Ed25519, NSEC) when `signed`; the key either way.
fn build<P: RuntimeProvider + Send + Sync>(
    zone: &ZoneBuilder,
    signed: bool,
) -> (InMemoryZoneHandler<P>, DNSKEY) {
    let origin = zone.origin.clone();
    let pkcs8 = Ed25519SigningKey::generate_pkcs8().expect("key");
    let key = Ed25519SigningKey::from_pkcs8(&pkcs8).expect("key");
    let public = key.to_public_key().expect("public key");
    let dnskey = DNSKEY::from_key(&public);
    let signer = DnssecSigner::new(
        dnskey.clone(),
        Box::new(key),
        origin.clone(),
        Duration::from_secs(7 * 86400),
    );
    let mut z = InMemoryZoneHandler::<P>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
        signed.then_some(NxProofKind::Nsec),
    );
    let ns = Name::from_str("ns")
        .expect("ns")
        .append_domain(&origin)
        .expect("ns name");
    let serial = 1;
    z.upsert_mut(
        Record::from_rdata(
            origin.clone(),
            300,
            RData::SOA(SOA::new(
                ns.clone(),
                abs(&format!("hostmaster.{}", origin.to_ascii())),
                serial,
                3600,
                600,
                86400,
                60,
            )),
        ),
        serial,
    );
    z.upsert_mut(
        Record::from_rdata(origin.clone(), 300, RData::NS(NS(ns.clone()))),
        serial,
    );
    z.upsert_mut(
        Record::from_rdata(ns, 300, RData::A(A::new(127, 0, 0, 1))),
        serial,
    );
    for r in &zone.records {
        z.upsert_mut(r.clone(), serial);
    }
    if signed {
        z.add_zone_signing_key_mut(signer).expect("add key");
        z.secure_zone_mut().expect("sign zone");
        for name in &zone.broken {
            corrupt_tlsa(&mut z, name);
        }
    }
    (z, dnskey)
}

/// Flips the first data byte of every TLSA record at `name`, keeping the RRSIGs made before.
fn corrupt_tlsa<P: RuntimeProvider + Send + Sync>(z: &mut InMemoryZoneHandler<P>, name: &Name) {
    use hickory_server::proto::rr::{RecordSet, RecordType, RrKey};
    let key = RrKey::new(LowerName::from(name.clone()), RecordType::TLSA);
    let records = z.records_get_mut();
    let old = records.get(&key).expect("TLSA to break").clone();
    let mut new = RecordSet::new(name.clone(), RecordType::TLSA, 0);
    for r in old.records_without_rrsigs() {
        let mut r = r.clone();
        if let RData::TLSA(t) = &r.data {
            let mut data = t.cert_data.clone();
            data[0] ^= 0xff;
            r.data = RData::TLSA(TLSA::new(t.cert_usage, t.selector, t.matching, data));
        }
        new.insert(r, 0);
    }
    for sig in old.rrsigs() {
        new.insert_rrsig(sig.clone());
    }
    records.insert(key, Arc::new(new));
}

/// Starts a server on 127.0.0.1 (UDP and TCP on the same free port) for the zones.
pub async fn start(anchored: &[ZoneBuilder], unanchored: &[ZoneBuilder]) -> TestDns {
    start_with(anchored, unanchored, &[]).await
}

/// A fresh Ed25519 DNSKEY that signs nothing.
fn decoy_key() -> DNSKEY {
    let pkcs8 = Ed25519SigningKey::generate_pkcs8().expect("key");
    let other = Ed25519SigningKey::from_pkcs8(&pkcs8).expect("key");
    DNSKEY::from_key(&other.to_public_key().expect("public key"))
}

/// Like [`start`], plus `unsigned` zones (served without DNSSEC). [`TestDns::delegations`] lists
/// every zone with the key its parent should vouch for: the real key of anchored zones, a decoy
/// for unanchored ones (so they are bogus below a signed parent), none for unsigned ones.
pub async fn start_with(
    anchored: &[ZoneBuilder],
    unanchored: &[ZoneBuilder],
    unsigned: &[ZoneBuilder],
) -> TestDns {
    let mut catalog = Catalog::new();
    let mut anchors = String::new();
    let mut decoy_anchors = String::new();
    let mut delegations = Vec::new();
    let mut zones = Vec::new();
    let all = anchored.iter().map(|z| (z, Some(true)));
    let all = all.chain(unanchored.iter().map(|z| (z, Some(false))));
    for (zone, anchor) in all.chain(unsigned.iter().map(|z| (z, None))) {
        let (handler, dnskey) = handler(zone, anchor.is_some());
        let o = zone.origin.to_ascii();
        let vouched = match anchor {
            Some(true) => {
                anchors.push_str(&format!("{o} 3600 IN DNSKEY {dnskey}\n"));
                Some(dnskey)
            }
            Some(false) => {
                let other = decoy_key();
                decoy_anchors.push_str(&format!("{o} 3600 IN DNSKEY {other}\n"));
                Some(other)
            }
            None => None,
        };
        delegations.push((zone.origin.clone(), vouched));
        let origin = LowerName::from(zone.origin.clone());
        zones.push((origin.clone(), handler.clone()));
        catalog.upsert(origin, vec![handler]);
    }
    let (addr, server) = serve(catalog).await;
    TestDns {
        addr,
        anchors,
        decoy_anchors,
        delegations,
        zones,
        server: Some(server),
    }
}

/// A signed parent zone `origin` (e.g. `test.`) delegating to `child` (served at `child.addr`):
/// NS for every zone of the child server, DS for the keys it vouches for, an NSEC-proven absence
/// of DS for the unsigned ones (RFC 4035 §5.2: provably insecure). Its `anchors` are its own key.
pub async fn start_parent(origin: &str, child: &TestDns) -> TestDns {
    use hickory_server::proto::dnssec::rdata::{DNSSECRData, DS};
    use hickory_server::proto::dnssec::DigestType;
    let mut zone = ZoneBuilder::new(origin);
    for (name, key) in &child.delegations {
        let ns = format!("ns.{}", name.to_ascii());
        zone.record(&name.to_ascii(), RData::NS(NS(abs(&ns))));
        zone.addr(&ns, child.addr.ip());
        if let Some(k) = key {
            let ds = DS::from_key(k.public_key(), name, DigestType::SHA256).expect("DS");
            zone.record(&name.to_ascii(), RData::DNSSEC(DNSSECRData::DS(ds)));
        }
    }
    let (handler, dnskey) = sign(&zone);
    let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
    let origin = LowerName::from(zone.origin.clone());
    let mut catalog = Catalog::new();
    catalog.upsert(origin.clone(), vec![handler.clone()]);
    let (addr, server) = serve(catalog).await;
    TestDns {
        addr,
        anchors: format!("{} 3600 IN DNSKEY {dnskey}\n", zone.origin.to_ascii()),
        decoy_anchors: String::new(),
        delegations: vec![],
        zones: vec![(origin, handler)],
        server: Some(server),
    }
}

/// Serves `catalog` on a free 127.0.0.1 port (UDP and TCP).
async fn serve(catalog: Catalog) -> (SocketAddr, Server<Catalog>) {
    let mut server = Server::new(catalog);
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().expect("addr");
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 64);
    (addr, server)
}

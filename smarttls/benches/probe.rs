//! Benchmark (`cargo bench -p nta7516-smarttls`): on loopback, against a real rustls STARTTLS
//! server resolved through the signed in-process DNS server, reports
//!   1. the floor: bare TCP + greeting + EHLO + STARTTLS + TLS 1.3 handshake (one connection);
//!   2. the full SmartTLS probe, uncached (DNS MX/A/TLSA/TXT/_mta-sts, handshake with the recording
//!      verifier, DANE, grade), with and without the concurrent legacy ClientHello probes, and a re-probe
//!      whose DNS answers the resolver still caches (the SMTP/TLS part alone);
//!   3. `testssl -t smtp -p -E -S` on the same server, if installed.
//!
//! Goal: probe ≤ 3× floor, ≥ 50× faster than testssl.sh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nta7516_smarttls::testkit::{LeafKind, World};
use nta7516_smarttls::{SmartTls, Verdict};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const N: usize = 40;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn read_reply(rd: &mut BufReader<TcpStream>) {
    loop {
        let mut l = String::new();
        rd.read_line(&mut l).await.expect("read");
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return;
        }
    }
}

async fn floor_once(addr: std::net::SocketAddr, host: &str, cfg: Arc<rustls::ClientConfig>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).ok();
    let mut rd = BufReader::new(tcp);
    read_reply(&mut rd).await;
    rd.get_mut()
        .write_all(b"EHLO bench.invalid\r\n")
        .await
        .unwrap();
    read_reply(&mut rd).await;
    rd.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    read_reply(&mut rd).await;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            ServerName::try_from(host.to_string()).unwrap(),
            rd.into_inner(),
        )
        .await
        .expect("handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = World::new().await;
        let mx = w.mx_server("mx", LeafKind::Good).await;
        let d = w.domain("bench", &[(10, &mx)]);
        let cfg = w.start_dns().await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(w.pki.root_der()).unwrap();
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(nta7516_smarttls::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let st = SmartTls::new(cfg.clone()).unwrap();
        let warm = st.probe_uncached(&d).await;
        assert_eq!(warm.verdict, Verdict::Secure, "{:?}", warm.reasons);
        let addr = std::net::SocketAddr::new(warm.mx[0].probe.connected.unwrap(), cfg.smtp_port);

        let mut floor = Vec::new();
        for _ in 0..N {
            let t = Instant::now();
            floor_once(addr, &mx, client.clone()).await;
            floor.push(t.elapsed());
        }
        let floor = median(floor);

        let mut full = Vec::new();
        for _ in 0..N {
            // A fresh prober each time: no SmartTLS cache and no DNS cache.
            let st = SmartTls::new(cfg.clone()).unwrap();
            let t = Instant::now();
            let r = st.probe_uncached(&d).await;
            full.push(t.elapsed());
            assert_eq!(r.verdict, Verdict::Secure);
        }
        let full = median(full);

        // A re-probe after the SmartTLS cache entry expired, while the resolver still holds the DNS
        // answers and validated keys (their TTLs are longer): the SMTP/TLS part of the probe.
        let mut dns_warm = Vec::new();
        for _ in 0..N {
            let t = Instant::now();
            let r = st.probe_uncached(&d).await;
            dns_warm.push(t.elapsed());
            assert_eq!(r.verdict, Verdict::Secure);
        }
        let dns_warm = median(dns_warm);

        let mut nolegacy_cfg = cfg.clone();
        nolegacy_cfg.legacy_probe = false;
        let mut nolegacy = Vec::new();
        for _ in 0..N {
            let st = SmartTls::new(nolegacy_cfg.clone()).unwrap();
            let t = Instant::now();
            let r = st.probe_uncached(&d).await;
            nolegacy.push(t.elapsed());
            assert_eq!(r.verdict, Verdict::Secure);
        }
        let nolegacy = median(nolegacy);

        println!("SmartTLS benchmark (loopback, median of {N} runs, 2 worker threads)");
        println!("  floor: TCP+EHLO+STARTTLS+TLS1.3 handshake      {:>9.3} ms", ms(floor));
        println!(
            "  full probe, uncached (with legacy probes)      {:>9.3} ms  = {:.2}x floor",
            ms(full),
            ms(full) / ms(floor)
        );
        println!(
            "  full probe, uncached (legacy_probe = false)    {:>9.3} ms  = {:.2}x floor",
            ms(nolegacy),
            ms(nolegacy) / ms(floor)
        );
        println!(
            "  re-probe, DNS answers cached (with legacy)     {:>9.3} ms  = {:.2}x floor",
            ms(dns_warm),
            ms(dns_warm) / ms(floor)
        );
        let testssl = std::process::Command::new("testssl").arg("--version").output().is_ok_and(|o| o.status.success());
        if testssl {
            let json = w.dir.join("bench-testssl.json");
            let t = Instant::now();
            let out = tokio::process::Command::new("testssl")
                .args(["--quiet", "--color", "0", "--warnings", "off", "--nodns", "none", "-t", "smtp", "-p", "-E", "-S", "--jsonfile"])
                .arg(&json)
                .arg(addr.to_string())
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .expect("testssl");
            let el = t.elapsed();
            println!(
                "  testssl -t smtp -p -E -S (one run, exit {})    {:>9.3} ms  = {:.0}x the full probe",
                out.status.code().unwrap_or(-1),
                ms(el),
                ms(el) / ms(full)
            );
        } else {
            println!("  testssl: NOT INSTALLED (Debian package testssl.sh) — comparison skipped");
        }
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

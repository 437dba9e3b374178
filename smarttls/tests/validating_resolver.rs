//! experiment
use nta7516_smarttls::testkit::{LeafKind, SmtpServerOpts, TestResolver, World};
use nta7516_smarttls::{render_text, SmartTls};
use std::time::Duration;

async fn world(mode: TestResolver) -> World {
    let mut w = World::new().await;
    w.resolver = mode;
    w.legacy_probe = false;
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment() {
    for mode in [TestResolver::Authoritative, TestResolver::ValidatingUnbound] {
        let mut w = world(mode).await;
        let host = w.name("mx");
        let cert = w.pki.leaf(&[&host], LeafKind::SelfSigned);
        let tlsa = cert.tlsa_311();
        let mx = w
            .mx_server_with("mx", SmtpServerOpts::tls(cert, &host))
            .await;
        w.tlsa(&mx, 3, 1, 1, &tlsa);
        let d = w.domain("d", &[(10, &mx)]);
        let alias = w.name("alias");
        w.zone.cname(&alias, &d);
        let bhost = format!("mx.{}", w.bogus_zone.origin());
        w.bogus_zone
            .addr(&bhost, std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        w.bogus_zone
            .tlsa(&format!("_{}._tcp.{bhost}", w.smtp_port), 3, 1, 1, &tlsa);
        let bd = w.domain("bd", &[(10, &bhost)]);
        let st: SmartTls = w.start().await;
        eprintln!("==== {mode:?} resolver {:?}", st.config().resolver);
        for dom in [&d, &alias, &bd] {
            let r = st.domain(dom, Duration::from_secs(8)).await;
            eprintln!("{}", render_text(&r));
        }
        if mode == TestResolver::ValidatingUnbound {
            let a = st.config().resolver.unwrap();
            let out = std::process::Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &a.port().to_string(),
                    "+dnssec",
                    "+multi",
                    &alias,
                    "MX",
                ])
                .output()
                .unwrap();
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            let out = std::process::Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &a.port().to_string(),
                    "+dnssec",
                    &format!("_{}._tcp.{bhost}", w.smtp_port),
                    "TLSA",
                ])
                .output()
                .unwrap();
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            let dnsp = w.dns.as_ref().unwrap().addr.port();
            let out = std::process::Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &dnsp.to_string(),
                    "+dnssec",
                    "+norec",
                    &alias,
                    "MX",
                ])
                .output()
                .unwrap();
            eprintln!("AUTH: {}", String::from_utf8_lossy(&out.stdout));
        }
    }
}

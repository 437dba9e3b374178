//! experiment
use nta7516_smarttls::testkit::{LeafKind, SmtpServerOpts, TestResolver, World};
use nta7516_smarttls::{render_text, SmartTls};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment() {
    for mode in [TestResolver::Authoritative, TestResolver::ValidatingUnbound] {
        let mut w = World::new().await;
        w.resolver = mode;
        w.legacy_probe = false;
        let host = w.name("mx");
        let cert = w.pki.leaf(&[&host], LeafKind::SelfSigned);
        let tlsa = cert.tlsa_311();
        let mx = w
            .mx_server_with("mx", SmtpServerOpts::tls(cert, &host))
            .await;
        w.tlsa(&mx, 3, 1, 1, &tlsa);
        let d = w.domain("d", &[(10, &mx)]);
        let alias = format!("alias.{}", w.zone2.origin());
        w.zone2.cname(&alias, &d);
        // CNAME into the unsigned zone, PKIX-valid for the original name, TLSA mismatching at the original name.
        let orig = w.name("mxc");
        let cert = w.pki.leaf(&[&orig], LeafKind::Good);
        let l = nta7516_smarttls::testkit::bind_fresh(w.smtp_port).await;
        let ip = l.local_addr().unwrap().ip();
        std::mem::forget(nta7516_smarttls::testkit::smtp_server::start(
            l,
            SmtpServerOpts::tls(cert, &orig),
        ));
        let target = format!("mx.{}", w.plain_zone.origin());
        w.plain_zone.addr(&target, ip);
        w.zone.cname(&orig, &target);
        w.tlsa(&orig, 3, 1, 1, &"ab".repeat(32));
        let dc = w.domain("dc", &[(10, &orig)]);
        let pd = format!("p.{}", w.plain_zone.origin());
        w.plain_zone.mx(&pd, 10, &target);
        let st: SmartTls = w.start().await;
        eprintln!("==== {mode:?} resolver {:?}", st.config().resolver);
        for dom in [&d, &alias, &dc, &pd] {
            let r = st.domain(dom, Duration::from_secs(8)).await;
            eprintln!("{}", render_text(&r));
        }
    }
}

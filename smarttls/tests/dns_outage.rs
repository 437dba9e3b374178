//! The DNS server going away and coming back (the testkit's `TestDns::stop` / `restart`): while it is
//! down a domain is `unknown` with a DNS reason (never `secure`), a cached `secure` report is served
//! until it expires, and after the restart on the same address, with the same signed zones, the domain
//! validates as `secure` again.

use std::time::Duration;

use nta7516_smarttls::testkit::{LeafKind, World};
use nta7516_smarttls::{ReasonCode, SmartTls, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_while_dns_is_down_secure_again_after_restart() {
    let mut w = World::new().await;
    w.legacy_probe = false;
    let mx = w.mx_server("mx", LeafKind::Good).await;
    let d = w.domain("d", &[(10, &mx)]);
    let mut cfg = w.start_dns().await;
    cfg.dns_timeout_ms = 1_000;
    let st = SmartTls::new(cfg).unwrap();
    let budget = Duration::from_secs(9);
    assert_eq!(st.domain(&d, budget).await.verdict, Verdict::Secure);

    let dns = w.dns.as_mut().unwrap();
    let addr = dns.addr;
    dns.stop().await;
    assert!(!dns.is_running());
    let down = st.probe_uncached(&d).await;
    assert_eq!(down.verdict, Verdict::Unknown, "{:?}", down.reasons);
    assert!(
        down.reasons
            .iter()
            .any(|r| matches!(r.code, ReasonCode::DnsFailure | ReasonCode::Timeout)),
        "{:?}",
        down.reasons
    );
    // The proof made before the outage is still the cached answer.
    assert_eq!(st.domain(&d, budget).await.verdict, Verdict::Secure);

    let dns = w.dns.as_mut().unwrap();
    dns.restart().await;
    assert_eq!(dns.addr, addr);
    let back = st.probe_uncached(&d).await;
    assert_eq!(back.verdict, Verdict::Secure, "{:?}", back.reasons);
}

//! Single-flight: 500 concurrent lookups of one uncached domain cause exactly one probe per MX.

use std::sync::Arc;
use std::time::Duration;

use nta7516_smarttls::testkit::{LeafKind, World};
use nta7516_smarttls::Verdict;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_lookups_one_probe_per_mx() {
    let mut w = World::new().await;
    let mx1 = w.mx_server("mx1", LeafKind::Good).await;
    let mx2 = w.mx_server("mx2", LeafKind::Good).await;
    let d = w.domain("d", &[(10, &mx1), (20, &mx2)]);
    // A second domain sharing mx1: its probe reuses the per-host cache entry.
    let d2 = w.domain("d2", &[(10, &mx1)]);
    let st = w.start().await;
    assert_eq!(st.probes_started(), 0);

    let barrier = Arc::new(tokio::sync::Barrier::new(500));
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let st = st.clone();
        let d = d.clone();
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            st.domain(&d, Duration::from_secs(9)).await
        }));
    }
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.unwrap());
    }
    assert_eq!(st.probes_started(), 2, "exactly one probe per MX host");
    for r in &reports {
        assert_eq!(r.verdict, Verdict::Secure, "{:?}", r.reasons);
        assert!(Arc::ptr_eq(r, &reports[0]), "all callers share one report");
    }
    // Cached now: no new probes.
    let again = st.domain(&d, Duration::from_secs(1)).await;
    assert!(Arc::ptr_eq(&again, &reports[0]));
    let r2 = st.domain(&d2, Duration::from_secs(9)).await;
    assert_eq!(r2.verdict, Verdict::Secure);
    assert_eq!(st.probes_started(), 2, "mx1 came from the per-host cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bound_and_refresh() {
    let mut w = World::new().await;
    let mut hosts = Vec::new();
    for i in 0..4 {
        hosts.push(w.mx_server(&format!("mx{i}"), LeafKind::Good).await);
    }
    let mx: Vec<(u16, &str)> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (10 * i as u16, h.as_str()))
        .collect();
    let d = w.domain("d", &mx);
    let mut cfg = w.start_dns().await;
    cfg.max_concurrent_probes = 1;
    cfg.ttl_secure = 2;
    cfg.legacy_probe = false;
    let st = nta7516_smarttls::SmartTls::new(cfg).unwrap();
    let r = st.domain(&d, Duration::from_secs(9)).await;
    assert_eq!(r.verdict, Verdict::Secure);
    assert_eq!(st.probes_started(), 4);
    // Within the last fifth of the TTL a read is served from the cache and triggers a refresh.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let r2 = st.domain(&d, Duration::from_secs(9)).await;
    assert!(
        Arc::ptr_eq(&r, &r2),
        "stale-while-refresh serves the cached value"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r3 = st.domain(&d, Duration::from_secs(9)).await;
    assert!(
        !Arc::ptr_eq(&r, &r3),
        "the background refresh replaced the entry"
    );
    assert_eq!(r3.verdict, Verdict::Secure);
}

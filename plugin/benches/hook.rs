//! Hook round trip over HTTP on loopback (a real gateway, SQLite in WAL mode with synchronous=FULL),
//! 50 KB message, 5 external recipients, warm verdicts. Prints p50/p99 latency and requests per second.
//!
//! Two paths: `deliver` (all recipients verified, decisions committed, `accept` + header) and `hold`
//! (all recipients need 2FA: the message is sealed and committed durably, `discard`).
//!
//! Run: `cargo bench -p stalwart-nta7516 --bench hook`

#[path = "../tests/integration/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use stalwart_nta7516::policy::TlsStatus;
use util::{hook_request, Backend, Builder, TlsTable};

const RECIPIENTS: [&str; 5] = [
    "a@one.test",
    "b@two.test",
    "c@three.test",
    "d@four.test",
    "e@five.test",
];

fn body_50k(seed: usize) -> String {
    let mut s = String::with_capacity(51_000);
    let mut i = 0;
    while s.len() < 50_000 {
        s.push_str(&format!("Regel {i:05} van bericht {seed}: uitslag laboratoriumonderzoek, waarden binnen de norm.\r\n"));
        i += 1;
    }
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(name: &str, gw: &util::TestGateway, unique: bool, n: usize) {
    let template = hook_request(
        "alice@zorg.test",
        &RECIPIENTS,
        &[("Subject", "lab")],
        &body_50k(0),
    );
    for i in 0..50 {
        let req = if unique {
            hook_request(
                "alice@zorg.test",
                &RECIPIENTS,
                &[("Subject", &format!("warm {i}"))],
                &body_50k(i),
            )
        } else {
            template.clone()
        };
        gw.hook(&req).await;
    }
    // Pre-build the requests so the figures are the gateway's, not the generator's.
    let bodies: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            if unique {
                hook_request(
                    "alice@zorg.test",
                    &RECIPIENTS,
                    &[("Subject", &format!("m {i}"))],
                    &body_50k(i + 1000),
                )
            } else {
                template.clone()
            }
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for req in &bodies {
        let t = Instant::now();
        let r = gw.hook(req).await;
        lat.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let total = started.elapsed();
    lat.sort();
    println!(
        "{name:<8} sequential n={n}: p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  {:>7.0} req/s",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
        n as f64 / total.as_secs_f64()
    );
}

async fn concurrent(
    name: &str,
    gw: &std::sync::Arc<util::TestGateway>,
    clients: usize,
    per_client: usize,
) {
    let template = hook_request(
        "alice@zorg.test",
        &RECIPIENTS,
        &[("Subject", "lab")],
        &body_50k(0),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let gw = gw.clone();
        let req = template.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                assert_eq!(gw.hook(&req).await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = clients * per_client;
    println!(
        "{name:<8} {clients} concurrent clients: {total} requests in {:.2} s = {:.0} req/s",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let domains: Vec<(&str, TlsStatus)> = RECIPIENTS
        .iter()
        .map(|r| (&r[2..], TlsStatus::Secure))
        .collect();
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);

    // deliver: every recipient verified → accept with the correlation header.
    let gw = Builder::new(Backend::Sqlite)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(TlsTable::new(&domains))
        .start()
        .await;
    let now = stalwart_nta7516::time::now();
    for r in RECIPIENTS {
        gw.gw
            .store
            .upsert_recipient(r, Some("+31612345678"), Some(now + 86_400), now)
            .await
            .unwrap();
    }
    run("deliver", &gw, false, n).await;
    let gw = std::sync::Arc::new(gw);
    concurrent("deliver", &gw, 8, n / 8).await;

    // hold: nobody verified → sealed, committed, discard. Unique messages, so each one is a new hold.
    let gw = Builder::new(Backend::Sqlite)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(TlsTable::new(&domains))
        .start()
        .await;
    run("hold", &gw, true, n / 4).await;
}

//! Audit lookup by message id with 1 000 000 records, in SQLite (WAL, synchronous=FULL) and in
//! PostgreSQL (`NTA7516_TEST_POSTGRES_URL`, a fresh database). Goal: ≤ 5 ms.
//!
//! Fills the log through the real chained append (batches of 1 000 events, 100 000 messages with 10
//! records each: decisions with reasons and SmartTLS evidence, holds, delivery events), then times
//! `audit_for_message` (the query behind `audit report` and `/v1/admin/audit?message_id=`) and the
//! whole report for 2 000 random messages. Prints fill time, p50/p99/max and the chain verification time.
//!
//! Run: `cargo bench -p stalwart-nta7516 --bench audit` (records: `NTA7516_BENCH_RECORDS`, default 1 000 000)

use std::time::{Duration, Instant};

use serde_json::json;
use stalwart_nta7516::{
    audit::Event,
    policy::{Outcome, Reason, ReasonCode, Step, TlsFacts, TlsStatus},
    store::{audit::append, Store},
};

fn event(i: u64) -> Event {
    let message_ref = format!("h-{:032x}", i / 10);
    let recipient = format!("patient{}@example.test", i / 10 % 5000);
    match i % 10 {
        0..=2 => Event::Decision {
            message_ref,
            sha256: format!("{:064x}", i / 10),
            sender: "alice@zorg.test".into(),
            recipient,
            queue_id: Some(format!("{:x}", 341953382017139509 + i / 10)),
            outcome: Outcome::Challenge,
            reasons: vec![
                Reason {
                    step: Step::Policy,
                    code: ReasonCode::PolicyRequire2fa,
                    text: "no policy decision; default is require_2fa".into(),
                },
                Reason {
                    step: Step::Tls,
                    code: ReasonCode::TlsSecure,
                    text: "recipient servers pass SmartTLS".into(),
                },
            ],
            tls: Some(TlsFacts {
                status: TlsStatus::Secure,
                grade: Some("good".into()),
                reasons: vec![],
                nta_peer: None,
            }),
            attachments: Default::default(),
        },
        3 => Event::Held {
            message_ref,
            sha256: format!("{:064x}", i / 10),
            sender: "alice@zorg.test".into(),
            recipient,
            outcome: Outcome::Challenge,
            challenge_id: Some(format!("c-{i:032x}")),
            expires_at: 1_800_000_000,
        },
        n => Event::Delivery {
            message_ref,
            sha256: Some(format!("{:064x}", i / 10)),
            sender: Some("alice@zorg.test".into()),
            recipient: Some(recipient),
            at: 1_795_336_078 + n as i64,
            event_type: "delivery.start-tls".into(),
            event_id: json!(format!("{}", 1_795_336_078_000u64 + i)),
            queue_id: 341953382017139509 + i / 10,
            data: json!({"spanId": i, "domain": "example.test", "hostname": "mx.example.test",
                         "version": "TLSv1_3", "details": "TLS13_AES_256_GCM_SHA384", "elapsed": 3}),
        },
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn run(name: &str, url: &str, records: u64) {
    let store = Store::connect(url, 4).await.expect("connect");
    let started = Instant::now();
    let batch = 1000;
    for b in 0..records.div_ceil(batch) {
        let events: Vec<Event> = (b * batch..((b + 1) * batch).min(records))
            .map(event)
            .collect();
        let mut tx = store.transaction().await.unwrap();
        append(&mut tx, 1_795_336_000 + b as i64, &events)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let fill = started.elapsed();
    let messages = records / 10;

    // Warm up, then time lookups of random messages.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % messages
    };
    for _ in 0..200 {
        store
            .audit_for_message(&format!("h-{:032x}", next()))
            .await
            .unwrap();
    }
    let n = 2000;
    let mut lookups = Vec::with_capacity(n);
    let mut reports = Vec::with_capacity(n);
    for _ in 0..n {
        let id = format!("h-{:032x}", next());
        let t = Instant::now();
        let rows = store.audit_for_message(&id).await.unwrap();
        lookups.push(t.elapsed());
        assert_eq!(rows.len(), 10, "{id}");
        let t = Instant::now();
        let report = store.audit_report(&id).await.unwrap().unwrap();
        reports.push(t.elapsed());
        assert_eq!(report.timeline.len(), 10);
    }
    lookups.sort();
    reports.sort();
    let t = Instant::now();
    let v = store.verify_audit().await.unwrap();
    let verify = t.elapsed();
    assert!(v.ok(), "{:?}", v.findings);
    assert_eq!(v.records, records);
    println!(
        "{name:<10} records={records} fill={:.1}s ({:.0} records/s)",
        fill.as_secs_f64(),
        records as f64 / fill.as_secs_f64()
    );
    println!(
        "{name:<10} lookup by message id (10 records): p50={} p99={} max={}",
        ms(pct(&lookups, 0.5)),
        ms(pct(&lookups, 0.99)),
        ms(*lookups.last().unwrap())
    );
    println!(
        "{name:<10} full report (lookup + build):     p50={} p99={} max={}",
        ms(pct(&reports, 0.5)),
        ms(pct(&reports, 0.99)),
        ms(*reports.last().unwrap())
    );
    println!(
        "{name:<10} verify whole chain: {:.1}s",
        verify.as_secs_f64()
    );
    store.close().await;
}

fn main() {
    let records: u64 = std::env::var("NTA7516_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &url, records).await;
        match std::env::var("NTA7516_TEST_POSTGRES_URL") {
            Ok(base) => {
                use sqlx::Connection;
                let name = format!("bench_audit_{}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let (prefix, _) = base.rsplit_once('/').unwrap();
                run("postgresql", &format!("{prefix}/{name}"), records).await;
                sqlx::query(&format!("DROP DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Err(_) => println!("postgresql SKIPPED: set NTA7516_TEST_POSTGRES_URL"),
        }
    });
}

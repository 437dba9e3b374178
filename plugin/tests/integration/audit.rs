//! The audit log against SQLite and PostgreSQL: the hash chain detects an edited, an inserted and a
//! deleted record (and says which), concurrent appends form one chain, every hook decision is
//! recorded, and `audit verify` on the command line reports tampering.

use crate::util::{hook_request, Backend, Builder, TestGateway, TlsTable};
use serde_json::json;
use sqlx::{Connection, Executor};
use stalwart_nta7516::{
    audit::{Event, Finding, MaskedPhone},
    policy::TlsStatus,
};

async fn gateway(b: Backend) -> TestGateway {
    Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(TlsTable::new(&[("example.test", TlsStatus::Secure)]))
        .start()
        .await
}

/// Five records of different kinds, appended one by one.
async fn five_records(gw: &TestGateway) {
    for i in 0..5 {
        let event = match i % 3 {
            0 => Event::SmsSent {
                message_ref: Some(format!("h-{i}")),
                recipient: "bob@example.test".into(),
                challenge_id: "c-1".into(),
                phone: MaskedPhone::from_e164("+31612345678"),
            },
            1 => Event::CodeFailed {
                message_ref: Some(format!("h-{i}")),
                recipient: "bob@example.test".into(),
                challenge_id: "c-1".into(),
                attempts_left: 2,
            },
            _ => Event::Admin {
                actor: "test".into(),
                action: "peer.put".into(),
                target: "partner.test".into(),
                message_ref: None,
                details: json!({ "n": i }),
            },
        };
        gw.gw.store.append_audit(&[event]).await.unwrap();
    }
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert!(v.ok(), "{:?}", v.findings);
    assert_eq!((v.records, v.head_seq), (5, 5));
}

/// Runs SQL on the gateway's database behind its back, as an attacker with database access would.
async fn tamper(gw: &TestGateway, statements: &[&str]) {
    let url = &gw.gw.config.storage.url;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    for s in statements {
        conn.execute(*s).await.unwrap();
    }
}

async fn chain_detects_an_edited_record(b: Backend) {
    let gw = gateway(b).await;
    five_records(&gw).await;
    tamper(
        &gw,
        &["UPDATE audit_log SET recipient = 'mallory@evil.test' WHERE seq = 3"],
    )
    .await;
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert_eq!(v.findings, vec![Finding::Edited { seq: 3 }]);
    assert_eq!(
        v.findings[0].to_string(),
        "record 3 was edited: its content does not match its hash"
    );
}

async fn chain_detects_an_inserted_record(b: Backend) {
    let gw = gateway(b).await;
    five_records(&gw).await;
    // A forged record between 2 and 3 that is correctly chained to record 2 and hashed: later records
    // are renumbered to make room (in two steps, so no key collides on the way).
    let url = &gw.gw.config.storage.url;
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let prev: String = sqlx::Row::get(
        &sqlx::query("SELECT hash FROM audit_log WHERE seq = 2")
            .fetch_one(&mut conn)
            .await
            .unwrap(),
        0,
    );
    let details = r#"{"actor":"mallory","action":"peer.put"}"#;
    let hash = stalwart_nta7516::audit::record::hash_fields(
        100, "admin", None, None, None, None, details, &prev,
    );
    conn.execute("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3")
        .await
        .unwrap();
    conn.execute("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_log (seq, at, kind, details, prev_hash, hash) VALUES (3, 100, 'admin', $1, $2, $3)",
    )
    .bind(details)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.execute("UPDATE audit_head SET seq = 6").await.unwrap();
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert_eq!(v.findings, vec![Finding::Inserted { seqs: vec![3] }]);
    assert!(v.findings[0].to_string().starts_with("record 3 inserted"));

    // Appending past the head without moving it is an insertion too.
    let gw2 = gateway(b).await;
    five_records(&gw2).await;
    let last: String = {
        let mut c = sqlx::AnyConnection::connect(&gw2.gw.config.storage.url)
            .await
            .unwrap();
        sqlx::Row::get(
            &sqlx::query("SELECT hash FROM audit_log WHERE seq = 5")
                .fetch_one(&mut c)
                .await
                .unwrap(),
            0,
        )
    };
    let h = stalwart_nta7516::audit::record::hash_fields(
        100, "admin", None, None, None, None, "{}", &last,
    );
    tamper(
        &gw2,
        &[&format!(
            "INSERT INTO audit_log (seq, at, kind, details, prev_hash, hash) VALUES (6, 100, 'admin', '{{}}', '{last}', '{h}')"
        )],
    )
    .await;
    let v = gw2.gw.store.verify_audit().await.unwrap();
    assert_eq!(v.findings, vec![Finding::Inserted { seqs: vec![6] }]);
}

async fn chain_detects_a_deleted_record(b: Backend) {
    let gw = gateway(b).await;
    five_records(&gw).await;
    tamper(&gw, &["DELETE FROM audit_log WHERE seq = 2"]).await;
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert_eq!(v.findings, vec![Finding::Deleted { first: 2, last: 2 }]);
    assert_eq!(v.findings[0].to_string(), "record 2 was deleted");

    // The last record: only the chain head still knows it existed.
    tamper(&gw, &["DELETE FROM audit_log WHERE seq = 5"]).await;
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert_eq!(
        v.findings,
        vec![
            Finding::Deleted { first: 2, last: 2 },
            Finding::Deleted { first: 5, last: 5 }
        ]
    );
}

async fn concurrent_appends_form_one_chain(b: Backend) {
    let gw = gateway(b).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = gw.gw.store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .append_audit(&[Event::PortalViewed {
                        message_ref: format!("h-{t}-{i}"),
                        recipient: "bob@example.test".into(),
                    }])
                    .await
                    .unwrap();
            }
        }));
    }
    // Hook calls append decisions concurrently with the above.
    let mut hooks = Vec::new();
    for i in 0..10 {
        let req = hook_request(
            "alice@zorg.test",
            &["bob@example.test", "carol@zorg.test"],
            &[("Subject", &format!("n{i}"))],
            "body\r\n",
        );
        hooks.push(req);
    }
    for req in &hooks {
        assert_eq!(gw.hook(req).await.status, 200);
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert!(v.ok(), "{:?}", v.findings);
    // 200 portal views + per hook: 2 decisions and 1 held.
    assert_eq!(v.records, 200 + 10 * 3);
    assert_eq!(v.head_seq, 230);
}

/// Group commit: 16 tasks appending at once share transactions, interleaved with ordinary appends;
/// every caller gets its own sequence numbers, in order, and the chain stays one. A store whose
/// database is gone answers each grouped caller with its own error.
async fn grouped_appends_share_commits_and_keep_one_chain(b: Backend) {
    let gw = gateway(b).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = gw.gw.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..20 {
                let events: Vec<Event> = (0..2)
                    .map(|k| Event::PortalViewed {
                        message_ref: format!("h-{t}-{i}-{k}"),
                        recipient: "bob@example.test".into(),
                    })
                    .collect();
                let seqs = if i % 5 == 0 {
                    store.append_audit(&events).await.unwrap()
                } else {
                    store.append_audit_grouped(events).await.unwrap()
                };
                assert_eq!(seqs.len(), 2);
                assert_eq!(seqs[1], seqs[0] + 1, "one caller's events stay together");
                mine.extend(seqs);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 16 * 20 * 2, "no sequence number given twice");
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert!(v.ok(), "{:?}", v.findings);
    assert_eq!(v.records, 640);
    gw.gw.store.pool().close().await;
    let err = gw
        .gw
        .store
        .append_audit_grouped(vec![Event::PortalViewed {
            message_ref: "h-after".into(),
            recipient: "bob@example.test".into(),
        }])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

/// The group writer remembers the head it committed; an append by anything else in between (here an
/// ordinary append; in a cluster another instance) makes that head stale, and the next grouped append
/// notices it, reads the head under its lock and chains after it: no gap, no sequence number twice.
async fn a_grouped_append_after_another_append_chains_after_it(b: Backend) {
    let gw = gateway(b).await;
    let store = &gw.gw.store;
    let viewed = |r: &str| Event::PortalViewed {
        message_ref: r.into(),
        recipient: "bob@example.test".into(),
    };
    let mut seqs = Vec::new();
    for round in 0..3 {
        seqs.extend(
            store
                .append_audit_grouped(vec![viewed("g1")])
                .await
                .unwrap(),
        );
        seqs.extend(
            store
                .append_audit_grouped(vec![viewed("g2")])
                .await
                .unwrap(),
        );
        seqs.extend(
            store
                .append_audit(&[viewed(&format!("own-{round}"))])
                .await
                .unwrap(),
        );
    }
    assert_eq!(seqs, (1..=9).collect::<Vec<i64>>());
    assert_eq!(store.audit_head().await.unwrap().0, 9);
    let v = store.verify_audit().await.unwrap();
    assert!(v.ok(), "{:?}", v.findings);
    assert_eq!((v.records, v.head_seq), (9, 9));
}

async fn every_decision_is_recorded_with_reasons_and_tls_evidence(b: Backend) {
    let gw = gateway(b).await;
    let req = hook_request(
        "alice@zorg.test",
        &["bob@example.test", "carol@zorg.test"],
        &[("Subject", "uitslag")],
        "vertrouwelijk\r\n",
    );
    let v = gw.hook(&req).await.json();
    assert_eq!(v["action"], "accept");
    let id = v["modifications"][0]["value"].as_str().unwrap_or_default();
    let held_ref = gw.gw.store.list_held(10).await.unwrap()[0].id.clone();
    let records = gw.gw.store.audit_for_message(&held_ref).await.unwrap();
    let kinds: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| (r.kind.as_str(), r.recipient.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("decision", Some("bob@example.test")),
            ("decision", Some("carol@zorg.test")),
            ("held", Some("bob@example.test")),
        ],
        "deleted recipient {id}"
    );
    let d = records[0].details_json();
    assert_eq!(d["outcome"], "challenge");
    assert_eq!(d["tls"]["status"], "secure");
    assert_eq!(d["queue_id_hex"], "4bedcdc36e006bf");
    assert_eq!(d["queue_id"], "341953460098303679");
    let codes: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["require_2fa", "tls_secure"]);
    // The SHA-256 of the message, never its content.
    let sha = records[0].message_sha256.as_deref().unwrap();
    assert_eq!(sha.len(), 64);
    for r in &records {
        assert!(!r.details.contains("vertrouwelijk") && !r.details.contains("uitslag"));
    }
}

both_backends!(
    chain_detects_an_edited_record,
    chain_detects_an_inserted_record,
    chain_detects_a_deleted_record,
    concurrent_appends_form_one_chain,
    grouped_appends_share_commits_and_keep_one_chain,
    a_grouped_append_after_another_append_chains_after_it,
    every_decision_is_recorded_with_reasons_and_tls_evidence,
);

/// `stalwart-nta7516 audit verify` on the command line: exit 0 on an intact chain; exit 1 naming the
/// record after an edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_audit_verify_names_the_edited_record() {
    let gw = gateway(Backend::Sqlite).await;
    five_records(&gw).await;
    let config = gw.dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"{}\"\n[hook]\ntoken = \"x\"\n[hold]\nmaster_key_file = \"{}\"\n",
            gw.gw.config.storage.url,
            gw.dir.path().join("master.key").display()
        ),
    )
    .unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stalwart-nta7516"))
            .args(["audit", "verify", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let ok = run();
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK: the chain is intact"));
    tamper(&gw, &["UPDATE audit_log SET details = '{}' WHERE seq = 4"]).await;
    let bad = run();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("FAIL: record 4 was edited: its content does not match its hash"),
        "{out}"
    );
}

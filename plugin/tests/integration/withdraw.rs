//! Withdrawal by the sender and the collection receipt (issue 15), over SQLite and PostgreSQL: the hold
//! confirmation with its withdraw link (CSRF), the content erased, the recipient's link saying so, no
//! release after a later verification; a delivered or read message refused; the admin API and CLI; the
//! receipt's contents, exactly once, for an inbox release and a first portal open; no mails with the
//! settings off; a withdrawal racing a release claim or a first opening decided once. And the sender's
//! and the recipient's pages in real Chromium.

use std::time::Duration;

use crate::util::{self, hook_request, link_in, Backend, Browser, Env, Moto, Running, SENDER};
use crate::util::{webdriver::Chrome, ADMIN_TOKEN};
use hyper::{Method, StatusCode};
use stalwart_nta7516::{
    audit::WithdrawnBy,
    challenge::sender_notices,
    policy::TlsStatus,
    store::{
        admin::SettingsIn, outbox::OutboxKind, withdraw::PortalOpen, withdraw::WithdrawOutcome,
        HoldState,
    },
};

const BOB: &str = "bob@example.test";
const ANN: &str = "ann@example.test";
const EVA: &str = "eva@insecure.test";
const BODY: &str = "Vertrouwelijke uitslag: alles normaal\r\n";

fn msg(to: &[&str], subject: &str, msgid: &str) -> serde_json::Value {
    hook_request(
        SENDER,
        to,
        &[
            ("From", SENDER),
            ("To", &to.join(", ")),
            ("Subject", subject),
            ("Message-ID", msgid),
        ],
        BODY,
    )
}

/// The sender domain's notice settings, as the admin API stores them.
async fn notices(gw: &Running, confirmation: Option<bool>, receipt: Option<bool>) {
    let settings = SettingsIn {
        hold_confirmation: confirmation,
        collection_receipt: receipt,
        ..SettingsIn::default()
    };
    let now = stalwart_nta7516::time::now();
    gw.gw
        .store
        .put_settings_with("test", "zorg.test", &settings, now)
        .await
        .unwrap();
}

/// The mails the notify listener got for `rcpt`, as text.
fn mails_to(env: &Env, rcpt: &str) -> Vec<String> {
    env.notify
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_to == [rcpt])
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect()
}

/// Waits for `n` mails to `rcpt` whose text contains `needle`.
async fn wait_mails(env: &Env, rcpt: &str, needle: &str, n: usize) -> Vec<String> {
    util::eventually(10, needle, || async {
        let m: Vec<String> = mails_to(env, rcpt)
            .into_iter()
            .filter(|t| t.contains(needle))
            .collect();
        (m.len() >= n).then_some(m)
    })
    .await
}

/// The recipient's code by SMS and the right code, without the landing page (which may say withdrawn).
async fn verify(br: &mut Browser, moto: &Moto, link: &str, phone: &str) {
    let form = br.get(&format!("{link}/code")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let sent = br
        .post(&format!("{link}/sms"), &[("csrf", &form.csrf())])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let code = moto.last_code(phone).await;
    let r = br.enter_code(link, &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

async fn admin(gw: &Running, path: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let (status, _, bytes) = util::http(
        Method::POST,
        &gw.url(path),
        &[
            ("authorization", format!("Bearer {ADMIN_TOKEN}")),
            ("content-type", "application/json".into()),
        ],
        body.as_bytes().to_vec(),
    )
    .await;
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fn admin_toml() -> String {
    format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n")
}

/// Hold → confirmation with the link → withdraw (CSRF) → content erased, the recipient's link says
/// withdrawn, and a verification afterwards releases nothing.
async fn withdraw_by_link(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let phone = "+31644440001";
    gw.set_phone(BOB, phone).await;
    notices(&gw, Some(true), None).await;
    let id = util::held_ref(&gw.hook(&msg(&[BOB], "Uitslag lab", "<w1@zorg.test>")).await);
    let confirmation = wait_mails(&env, SENDER, "/s/w/", 1).await.remove(0);
    assert!(confirmation.contains("Uitslag lab") && confirmation.contains(BOB));
    assert!(confirmation.contains("held for secure delivery"));
    assert!(
        !confirmation.contains("Vertrouwelijke"),
        "never the content"
    );
    let link = link_in(confirmation.as_bytes(), "s/w");
    let notice = wait_mails(&env, BOB, "/p/", 1).await.remove(0);
    let rlink = link_in(notice.as_bytes(), "p");

    let mut sender = Browser::new(&gw, "en");
    let page = sender.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("Waiting for the recipient; can be withdrawn"));
    assert!(page.body.contains("Uitslag lab") && page.body.contains(&id));
    // Without the CSRF value, or with a wrong one: refused, nothing withdrawn.
    let r = sender.post(&link, &[("csrf", &"0".repeat(64))]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(gw.hold(&id, BOB).await.0, "held");
    let r = sender.post(&link, &[("csrf", &page.csrf())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("has been withdrawn"), "{}", r.body);
    assert_eq!(gw.hold(&id, BOB).await.0, "withdrawn");
    assert!(!gw.content_held(&id).await, "content erased");
    // The link again: withdrawn, no form.
    let again = sender.get(&link).await;
    assert!(again.body.contains(">Withdrawn<") && !again.body.contains("<form"));

    // The recipient's link says so, in both languages, with 410.
    let mut bob = Browser::new(&gw, "nl");
    let landing = bob.get(&rlink).await;
    assert_eq!(landing.status, StatusCode::GONE);
    assert!(
        landing.body.contains("Ingetrokken door de afzender"),
        "{}",
        landing.body
    );
    bob.lang = "en".into();
    assert!(bob
        .get(&rlink)
        .await
        .body
        .contains("Withdrawn by the sender"));
    // Verifying anyway releases nothing; the list says withdrawn.
    verify(&mut bob, &moto, &rlink, phone).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(env.release.messages().is_empty(), "nothing released");
    assert_eq!(gw.hold(&id, BOB).await.0, "withdrawn");
    let list = bob.get(&format!("{rlink}/messages")).await;
    assert!(
        list.body.contains("Withdrawn by the sender"),
        "{}",
        list.body
    );

    // Audited: the confirmation and the withdrawal by the sender; the report's final state.
    let records = gw.audit(&id).await;
    let confirm = records
        .iter()
        .find(|(k, _, d)| k == "notification_sent" && d["notice"] == "sender_hold_confirmation")
        .expect("confirmation recorded");
    assert_eq!(confirm.2["to"], SENDER);
    let w = records.iter().find(|(k, _, _)| k == "withdrawn").unwrap();
    assert_eq!(w.1.as_deref(), Some(BOB));
    assert_eq!(w.2["by"]["kind"], "sender");
    assert_eq!(w.2["by"]["address"], SENDER);
    assert_eq!(w.2["from"], "held");
    let records = gw.gw.store.audit_for_message(&id).await.unwrap();
    let report = stalwart_nta7516::audit::report::build(&id, &records);
    let text = report.to_text();
    assert!(
        text.contains("withdrawn by sender arts@zorg.test at"),
        "{text}"
    );
    assert!(
        text.contains("hold confirmation (with withdraw link) sent"),
        "{text}"
    );
    assert_eq!(
        serde_json::to_value(&report.recipients[0].standing).unwrap()["state"],
        "withdrawn"
    );
}

/// Released to the inbox: one receipt (recipient, subject, time, the audit command — never the content
/// or the code); the withdraw link and the admin API then refuse: already delivered.
async fn receipt_and_refusal_after_release(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let extra = format!(
        "{}[portal]\nhold_confirmation = true\ncollection_receipt = true\n",
        admin_toml()
    );
    let env = Env::new(b, Some(moto.url.clone()), &extra).await;
    let gw = env.start().await;
    let phone = "+31644440002";
    gw.set_phone(BOB, phone).await;
    let id = util::held_ref(&gw.hook(&msg(&[BOB], "Verwijzing", "<w2@zorg.test>")).await);
    let link = link_in(
        wait_mails(&env, SENDER, "/s/w/", 1).await[0].as_bytes(),
        "s/w",
    );
    let rlink = link_in(wait_mails(&env, BOB, "/p/", 1).await[0].as_bytes(), "p");
    let mut bob = Browser::new(&gw, "en");
    verify(&mut bob, &moto, &rlink, phone).await;
    env.release.wait_for(1, 10).await;
    gw.wait_hold(&id, BOB, "released", 10).await;

    let receipt = wait_mails(&env, SENDER, "Collection receipt", 1)
        .await
        .remove(0);
    assert!(receipt.contains(&format!(
        "Subject: Ontvangstbevestiging / Collection receipt: {BOB}"
    )));
    assert!(receipt.contains("\"Verwijzing\"") && receipt.contains("delivered to the mailbox"));
    assert!(
        receipt.contains(&format!("stalwart-nta7516 audit report {id}")),
        "{receipt}"
    );
    assert!(receipt.contains(&format!("/v1/admin/audit/report/{id}")));
    let code = moto.last_code(phone).await;
    assert!(!receipt.contains("Vertrouwelijke") && !receipt.contains(&code));
    let at = receipt.split("\r\nat ").nth(1).unwrap_or_default();
    assert!(at.starts_with("20") && at.contains("Z (UTC)"), "{receipt}");
    // Exactly one, even after more passes.
    gw.gw.wake.now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        wait_mails(&env, SENDER, "Collection receipt", 1)
            .await
            .len(),
        1
    );

    let mut sender = Browser::new(&gw, "en");
    let page = sender.get(&link).await;
    assert!(page
        .body
        .contains("Cannot be withdrawn, it was already delivered"));
    assert!(!page.body.contains("<form"), "no withdraw button");
    let mut nl = Browser::new(&gw, "nl");
    let page = nl.get(&link).await;
    assert!(page
        .body
        .contains("Kan niet worden ingetrokken, het is al afgeleverd"));
    let (status, problem) = admin(&gw, &format!("/v1/admin/held/{id}/withdraw"), "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("cannot be withdrawn, it was already delivered"),
        "{detail}"
    );
    assert_eq!(gw.hold(&id, BOB).await.0, "released");
    let kinds: Vec<String> = gw.audit(&id).await.into_iter().map(|r| r.0).collect();
    assert!(!kinds.contains(&"withdrawn".to_string()));
    let receipts = gw
        .audit(&id)
        .await
        .into_iter()
        .filter(|(_, _, d)| d["notice"] == "sender_collection_receipt")
        .count();
    assert_eq!(receipts, 1);
}

/// A portal recipient's first opening sends one receipt and makes the message read: no longer
/// withdrawable.
async fn receipt_on_first_portal_open(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), &admin_toml()).await;
    env.tls.set("insecure.test", TlsStatus::Insecure);
    let gw = env.start().await;
    let phone = "+31644440003";
    gw.set_phone(EVA, phone).await;
    notices(&gw, None, Some(true)).await;
    let id = util::held_ref(&gw.hook(&msg(&[EVA], "Portaal", "<w3@zorg.test>")).await);
    let rlink = link_in(wait_mails(&env, EVA, "/p/", 1).await[0].as_bytes(), "p");
    let mut eva = Browser::new(&gw, "en");
    verify(&mut eva, &moto, &rlink, phone).await;
    gw.wait_hold(&id, EVA, "portal", 10).await;
    assert!(
        mails_to(&env, SENDER).is_empty(),
        "no receipt before it is opened"
    );
    assert!(wait_mails(&env, EVA, "/p/", 1).await.len() == 1);
    for _ in 0..2 {
        let page = eva.get(&format!("{rlink}/m/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Vertrouwelijke uitslag"));
    }
    assert_eq!(
        eva.get(&format!("{rlink}/m/{id}/eml")).await.status,
        StatusCode::OK
    );
    let receipt = wait_mails(&env, SENDER, "Collection receipt", 1).await;
    assert!(
        receipt[0].contains("opened on the secure portal") && receipt[0].contains("\"Portaal\"")
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        mails_to(&env, SENDER).len(),
        1,
        "exactly one receipt, no confirmation"
    );
    let (status, problem) = admin(&gw, &format!("/v1/admin/held/{id}/withdraw"), "").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(problem["detail"].as_str().unwrap().contains("already read"));
    assert!(
        gw.content_held(&id).await,
        "still readable for its recipient"
    );
}

/// A portal message withdrawn before its recipient opened it: the message page answers 410 "withdrawn",
/// its content is gone, and no receipt follows.
async fn unopened_portal_message_withdrawn(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), &admin_toml()).await;
    env.tls.set("insecure.test", TlsStatus::Insecure);
    let gw = env.start().await;
    let phone = "+31644440004";
    gw.set_phone(EVA, phone).await;
    notices(&gw, None, Some(true)).await;
    let id = util::held_ref(
        &gw.hook(&msg(&[EVA], "Niet geopend", "<w6@zorg.test>"))
            .await,
    );
    let rlink = link_in(wait_mails(&env, EVA, "/p/", 1).await[0].as_bytes(), "p");
    let mut eva = Browser::new(&gw, "nl");
    verify(&mut eva, &moto, &rlink, phone).await;
    gw.wait_hold(&id, EVA, "portal", 10).await;
    let (status, answer) = admin(&gw, &format!("/v1/admin/held/{id}/withdraw"), "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["withdrawn"], serde_json::json!([EVA]));
    let page = eva.get(&format!("{rlink}/m/{id}")).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(
        page.body.contains("Ingetrokken door de afzender"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Vertrouwelijke"));
    assert_eq!(
        eva.get(&format!("{rlink}/m/{id}/eml")).await.status,
        StatusCode::GONE
    );
    assert!(!gw.content_held(&id).await);
    let w = gw
        .audit(&id)
        .await
        .into_iter()
        .find(|(k, _, _)| k == "withdrawn")
        .unwrap();
    assert_eq!(w.2["from"], "portal");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        mails_to(&env, SENDER).is_empty(),
        "no receipt for a withdrawn message"
    );
}

/// The admin API and the CLI withdraw for the sender: one recipient, then the rest; audited with the
/// actor; bad input and unknown ids changed nothing.
async fn admin_api_and_cli(b: Backend) {
    let env = Env::new(b, None, &admin_toml()).await;
    let gw = env.start().await;
    let id = util::held_ref(&gw.hook(&msg(&[ANN, BOB], "Twee", "<w4@zorg.test>")).await);
    let path = format!("/v1/admin/held/{id}/withdraw");
    let (status, _) = admin(&gw, &path, r#"{"recipient": "not an address"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = format!("/v1/admin/held/h-{}/withdraw", "0".repeat(32));
    let (status, _) = admin(&gw, &unknown, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin(&gw, &path, r#"{"recipient": "zed@example.test"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gw.hold(&id, ANN).await.0, "held");
    let (status, answer) = admin(&gw, &path, &format!(r#"{{"recipient": "{ANN}"}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["withdrawn"], serde_json::json!([ANN]));
    assert_eq!(gw.hold(&id, ANN).await.0, "withdrawn");
    assert_eq!(gw.hold(&id, BOB).await.0, "held");
    assert!(gw.content_held(&id).await, "Bob still needs it");

    let config = env.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"{}\"\n[hook]\ntoken = \"x\"\n[hold]\nmaster_key_file = \"{}\"\n",
            gw.gw.config.storage.url,
            env.dir.path().join("master.key").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stalwart-nta7516"))
        .args([
            "admin",
            "--config",
            config.to_str().unwrap(),
            "held",
            "withdraw",
            &id,
        ])
        .env("USER", "tester")
        .env_remove("NTA7516_ADMIN_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(BOB) && stdout.contains("already_withdrawn"),
        "{stdout}"
    );
    assert_eq!(gw.hold(&id, BOB).await.0, "withdrawn");
    assert!(
        !gw.content_held(&id).await,
        "erased once no recipient needs it"
    );
    let (status, problem) = admin(&gw, &path, "").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("already withdrawn"));
    let by: Vec<serde_json::Value> = gw
        .audit(&id)
        .await
        .into_iter()
        .filter(|(k, _, _)| k == "withdrawn")
        .map(|(_, _, d)| d["by"].clone())
        .collect();
    assert_eq!(
        by,
        vec![
            serde_json::json!({"kind": "admin", "actor": "api"}),
            serde_json::json!({"kind": "admin", "actor": "cli:tester"}),
        ]
    );
}

/// With the settings off (the defaults), the sender gets no mail; the settings API round-trips the two
/// booleans and refuses anything else.
async fn settings_off_no_mails(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), &admin_toml()).await;
    let gw = env.start().await;
    let phone = "+31644440005";
    gw.set_phone(BOB, phone).await;
    let id = util::held_ref(&gw.hook(&msg(&[BOB], "Stil", "<w5@zorg.test>")).await);
    let rlink = link_in(wait_mails(&env, BOB, "/p/", 1).await[0].as_bytes(), "p");
    let mut bob = Browser::new(&gw, "en");
    verify(&mut bob, &moto, &rlink, phone).await;
    gw.wait_hold(&id, BOB, "released", 10).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(mails_to(&env, SENDER).is_empty(), "no mail to the sender");

    let url = gw.url("/v1/admin/settings/zorg.test");
    let auth = ("authorization", format!("Bearer {ADMIN_TOKEN}"));
    let put = |body: &'static str| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            let (s, _, b) = util::http(Method::PUT, &url, &[auth], body.into()).await;
            (s, serde_json::from_slice::<serde_json::Value>(&b).unwrap())
        }
    };
    let (s, v) = put(r#"{"hold_confirmation": true, "collection_receipt": false}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["hold_confirmation"], &v["collection_receipt"]),
        (&true.into(), &false.into())
    );
    let (s, v) = put(r#"{"hold_confirmation": "yes"}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["detail"].as_str().unwrap().contains("line 1, column"),
        "{v}"
    );
    let stored = gw
        .gw
        .store
        .get_settings("zorg.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.hold_confirmation, Some(true));
    assert_eq!(stored.collection_receipt, Some(false));
}

/// A withdrawal and a release claim (or a first opening) on the same hold, at once: exactly one wins,
/// decided by the database. (A gateway without the background worker: nothing else moves the holds.)
async fn races_are_decided_once(b: Backend) {
    let gw = util::Builder::new(b).start().await;
    let state = |id: String| {
        let store = gw.gw.store.clone();
        async move { store.hold_views(&id).await.unwrap()[0].state }
    };
    for round in 0..8 {
        let portal = round % 2 == 1;
        let req = msg(&[BOB], "Race", &format!("<race-{round}@zorg.test>"));
        let id = util::held_ref(&gw.hook(&req).await.json());
        let to = if portal {
            HoldState::Portal
        } else {
            HoldState::Releasing
        };
        let now = stalwart_nta7516::time::now();
        let store = gw.gw.store.clone();
        assert!(store
            .transition_hold(&id, BOB, HoldState::Held, to, now)
            .await
            .unwrap());
        let (s1, s2, id1, id2) = (store.clone(), store.clone(), id.clone(), id.clone());
        let withdraw = tokio::spawn(async move {
            let by = WithdrawnBy::Admin {
                actor: "race".into(),
            };
            s1.withdraw(&id1, None, &by, now).await.unwrap().unwrap()[0].1
        });
        let other = tokio::spawn(async move {
            match portal {
                true => {
                    s2.portal_open(&id2, BOB, false, now).await.unwrap() == PortalOpen::Readable
                }
                false => s2
                    .transition_hold(&id2, BOB, HoldState::Releasing, HoldState::Sending, now)
                    .await
                    .unwrap(),
            }
        });
        let (outcome, other_won) = (withdraw.await.unwrap(), other.await.unwrap());
        let withdrawn = outcome == WithdrawOutcome::Withdrawn;
        assert_ne!(
            withdrawn, other_won,
            "round {round}: exactly one wins ({outcome:?})"
        );
        let expected = match (withdrawn, portal) {
            (true, _) => HoldState::Withdrawn,
            (false, true) => HoldState::Portal,
            (false, false) => HoldState::Sending,
        };
        assert_eq!(state(id.clone()).await, expected, "round {round}");
        if !withdrawn {
            let why = if portal {
                WithdrawOutcome::Read
            } else {
                WithdrawOutcome::BeingDelivered
            };
            assert_eq!(outcome, why);
        }
    }
}

/// The hook plans the sender's notices with the hold, in its own transaction: the confirmation queued
/// once (a retried submission adds nothing), the subject kept sealed, the copy marked noticed; with
/// both notices off, marked noticed and nothing queued. The planner's pass comes to the same rows for
/// a copy the hook did not plan (one held before it did). A gateway without the background worker.
async fn notices_planned_with_the_hold(b: Backend) {
    use sqlx::Row;
    let gw = util::Builder::new(b).start().await;
    let put = |confirmation, receipt| {
        let store = gw.gw.store.clone();
        async move {
            let settings = SettingsIn {
                hold_confirmation: confirmation,
                collection_receipt: receipt,
                ..SettingsIn::default()
            };
            let now = stalwart_nta7516::time::now();
            store
                .put_settings_with("test", "zorg.test", &settings, now)
                .await
                .unwrap();
        }
    };
    // (confirmations queued, noticed, withdraw token hash, subject)
    let planned = |id: String| {
        let gw = gw.gw.clone();
        async move {
            let pool = gw.store.pool();
            let row = sqlx::query(
                "SELECT sender_noticed, withdraw_token_hash FROM held_messages WHERE id = $1",
            )
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap();
            let queued: i64 = sqlx::query(
                "SELECT COUNT(*) FROM outbox WHERE kind = $1 AND ref_id = $2 AND rcpt = $3",
            )
            .bind(OutboxKind::SenderHoldConfirmation.as_str())
            .bind(&id)
            .bind(SENDER)
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0);
            let subject = sender_notices::subject(&gw, &id).await.unwrap();
            (
                queued,
                row.get::<i64, _>(0) != 0,
                row.get::<Option<String>, _>(1),
                subject,
            )
        }
    };
    put(Some(true), None).await;
    let req = msg(&[BOB], "Uitslag lab", "<plan-1@zorg.test>");
    let id = util::held_ref(&gw.hook(&req).await.json());
    let at_hold = planned(id.clone()).await;
    assert_eq!((at_hold.0, at_hold.1), (1, true), "{at_hold:?}");
    assert_eq!(at_hold.3, "Uitslag lab");
    assert_eq!(
        at_hold.2.as_ref().map(String::len),
        Some(64),
        "the link's hash"
    );
    assert_eq!(util::held_ref(&gw.hook(&req).await.json()), id, "a retry");
    assert_eq!(
        planned(id.clone()).await,
        at_hold,
        "nothing added by the retry"
    );

    // As held before the hook planned notices: the pass plans the same.
    sqlx::query(
        "UPDATE held_messages SET sender_noticed = 0, withdraw_token_hash = NULL, subject_key_id = NULL, \
         subject_wrapped_key = NULL, subject_nonce = NULL, subject_ciphertext = NULL WHERE id = $1",
    )
    .bind(&id)
    .execute(gw.gw.store.pool())
    .await
    .unwrap();
    sqlx::query("DELETE FROM outbox WHERE ref_id = $1")
        .bind(&id)
        .execute(gw.gw.store.pool())
        .await
        .unwrap();
    assert_eq!(planned(id.clone()).await, (0, false, None, "-".into()));
    let now = stalwart_nta7516::time::now();
    let queued = sender_notices::plan(&gw.gw, 10, now).await.unwrap();
    assert_eq!(queued, 1);
    assert_eq!(planned(id.clone()).await, at_hold, "the pass's rows");

    put(Some(false), Some(false)).await;
    let quiet = util::held_ref(
        &gw.hook(&msg(&[BOB], "Stil", "<plan-2@zorg.test>"))
            .await
            .json(),
    );
    assert_eq!(planned(quiet).await, (0, true, None, "-".into()));
}

both_backends!(
    withdraw_by_link,
    notices_planned_with_the_hold,
    receipt_and_refusal_after_release,
    receipt_on_first_portal_open,
    unopened_portal_message_withdrawn,
    admin_api_and_cli,
    settings_off_no_mails,
    races_are_decided_once,
);

/// Real Chromium: the sender opens the withdraw link and withdraws; the recipient's link then shows
/// "withdrawn".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_in_chromium() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(
        Backend::Sqlite,
        Some(moto.url.clone()),
        "[portal]\nhold_confirmation = true\n",
    )
    .await;
    let gw = env.start().await;
    gw.set_phone(BOB, "+31644440007").await;
    let id = util::held_ref(&gw.hook(&msg(&[BOB], "Browser", "<w7@zorg.test>")).await);
    let link = link_in(
        wait_mails(&env, SENDER, "/s/w/", 1).await[0].as_bytes(),
        "s/w",
    );
    let rlink = link_in(wait_mails(&env, BOB, "/p/", 1).await[0].as_bytes(), "p");
    let Some(chrome) = Chrome::start("en-GB,en").await else {
        return;
    };
    let axe = crate::portal_a11y::axe_source();
    let accessible = |name: &'static str| {
        let (chrome, axe) = (&chrome, axe.clone());
        async move {
            if let Some(axe) = axe {
                crate::portal_a11y::assert_accessible(chrome, &axe, name).await;
            }
        }
    };
    chrome.goto(&link).await;
    chrome.wait_for("can be withdrawn", "").await;
    assert!(!chrome.source().await.contains("<script"));
    shot(&chrome, "withdraw-form").await;
    accessible("withdraw-form").await;
    chrome.click("button[type=submit]").await;
    chrome.wait_for("has been withdrawn", "").await;
    shot(&chrome, "withdrawn").await;
    accessible("withdrawn").await;
    assert_eq!(gw.hold(&id, BOB).await.0, "withdrawn");
    chrome.goto(&rlink).await;
    chrome.wait_for("Withdrawn by the sender", "").await;
    shot(&chrome, "recipient-withdrawn").await;
    accessible("recipient-withdrawn").await;

    // After release: a second message for Ann, who verifies; it reaches the inbox and the sender's
    // link then says it cannot be withdrawn, with no button.
    gw.set_phone(ANN, "+31644440008").await;
    let second = util::held_ref(&gw.hook(&msg(&[ANN], "Tweede", "<w8@zorg.test>")).await);
    let alink = link_in(wait_mails(&env, ANN, "/p/", 1).await[0].as_bytes(), "p");
    let mut ann = Browser::new(&gw, "en");
    verify(&mut ann, &moto, &alink, "+31644440008").await;
    env.release.wait_for(1, 10).await;
    gw.wait_hold(&second, ANN, "released", 10).await;
    let links: Vec<String> = wait_mails(&env, SENDER, "/s/w/", 2)
        .await
        .iter()
        .map(|m| link_in(m.as_bytes(), "s/w"))
        .collect();
    let late = links
        .iter()
        .find(|l| **l != link)
        .expect("a second withdraw link");
    chrome.goto(late).await;
    chrome
        .wait_for("Cannot be withdrawn, it was already delivered", "")
        .await;
    assert!(!chrome.source().await.contains("<button"));
    shot(&chrome, "after-release").await;
    accessible("after-release").await;
    assert_eq!(gw.hold(&second, ANN).await.0, "released");
    // The withdrawn first message was never released.
    assert_eq!(env.release.messages().len(), 1);
}

async fn shot(chrome: &Chrome, name: &str) {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/artifacts/portal")
        .join(format!("withdraw-{name}.png"));
    let png = chrome.screenshot(&path).await;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{name}");
}

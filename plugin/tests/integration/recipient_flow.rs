//! Recipient 2FA end to end on real components: the gateway, moto's SNS server, and a real SMTP server
//! (STARTTLS + AUTH) standing in for Stalwart's `nta-release` and `nta-notify` listeners. Over SQLite and
//! PostgreSQL. Must-show 1 (release), 2 (portal), 6 (faults).

use crate::util;
use std::time::Duration;

use crate::util::{hook_request, original_bytes, Backend};
use crate::util::{link_in, smtp, Browser, Env, Moto, Running, SENDER};
use hyper::StatusCode;
use stalwart_nta7516::{policy::TlsStatus, time};

const BOB: &str = "bob@example.test";

fn message(to: &str, msgid: &str, subject: &str) -> serde_json::Value {
    hook_request(
        SENDER,
        &[to],
        &[
            ("From", "Dr. A. Arts <arts@zorg.test>"),
            ("To", to),
            ("Subject", subject),
            ("Message-ID", msgid),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        "Beste ontvanger,\r\n.Deze regel begint met een punt.\r\n..en deze met twee.\r\nUitslag: 5,4 mmol/l — in orde.\r\n",
    )
}

/// Hook → notification → link → SMS → code. Returns the portal link and the browser (with its session).
async fn verify(
    env: &Env,
    gw: &Running,
    moto: &Moto,
    rcpt: &str,
    phone: &str,
    notices: usize,
) -> (String, Browser) {
    let mails = env.notify.wait_for(notices, 10).await;
    let mail = mails
        .iter()
        .rev()
        .find(|m| m.rcpt_to == [rcpt])
        .unwrap_or_else(|| panic!("no notification to {rcpt}"));
    let link = link_in(&mail.data, "p");
    let mut br = Browser::new(gw, "nl-NL,nl;q=0.9,en;q=0.5");
    let sent = br.request_code(&link).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let code = moto.last_code(phone).await;
    let done = br.enter_code(&link, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(done.location.as_deref().unwrap().ends_with("/messages"));
    (link, br)
}

async fn release_end_to_end(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let phone = "+31611110001";
    gw.set_phone(BOB, phone).await;

    let req = message(BOB, "<e2e-1@zorg.test>", "Uitslag bloedonderzoek");
    let original = original_bytes(&req);
    let id = util::held_ref(&gw.hook(&req).await);

    // The notification: to the recipient, from the gateway, over STARTTLS + AUTH; sender and link, no
    // content and no subject.
    let notices = env.notify.wait_for(1, 10).await;
    let n = &notices[0];
    assert_eq!(n.rcpt_to, vec![BOB.to_string()]);
    assert_eq!(n.mail_from, "nta7516@zorg.test");
    assert!(n.tls && n.auth == smtp::USER);
    let text = String::from_utf8_lossy(&n.data);
    assert!(text.contains(SENDER), "{text}");
    assert!(
        !text.contains("Uitslag") && !text.contains("mmol"),
        "content leaked: {text}"
    );

    let (link, mut br) = verify(&env, &gw, &moto, BOB, phone, 1).await;
    // The SMS went through SNS to the recorded number.
    assert_eq!(moto.count_to(phone).await, 1);

    // The original bytes arrive at the release listener, byte for byte, as the original sender.
    let got = env.release.wait_for(1, 10).await;
    assert_eq!(
        got[0].data, original,
        "released bytes differ from the submitted message"
    );
    assert_eq!(got[0].mail_from, SENDER);
    assert_eq!(got[0].rcpt_to, vec![BOB.to_string()]);
    assert!(got[0].tls && got[0].auth == smtp::USER);
    let (_, queue_id, _) = gw.wait_hold(&id, BOB, "released", 10).await;
    assert_eq!(queue_id.as_deref(), Some(got[0].queue_id.as_str()));
    // Content deleted once Stalwart accepted it.
    assert!(!gw.content_held(&id).await);
    let page = br.get(&format!("{link}/messages")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Afgeleverd in uw mailbox"),
        "{}",
        page.body
    );

    // Verified for 90 days: the next message goes out at once, without a challenge.
    let answer = gw.hook(&message(BOB, "<e2e-2@zorg.test>", "Vervolg")).await;
    assert_eq!(answer["action"], "accept", "{answer}");
    let mods = answer["modifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        mods.iter().all(|m| m["type"] != "deleteRecipient"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(env.notify.messages().len(), 1, "no second notification");
    assert_eq!(env.release.messages().len(), 1, "delivered exactly once");
    assert_eq!(gw.gw.store.count("challenges").await.unwrap(), 1);
    assert_eq!(moto.count_to(phone).await, 1);
}

/// The audit trail of the whole flow, on the real components: hold → notification → SMS → code →
/// release (Stalwart's queue id from the release listener's 250) → Stalwart's webhook delivery events
/// (the captured fixture, its queue id rewritten to the one the release listener gave). The message's
/// report shows it all in order, the chain verifies, and no content or full phone number is in the log.
async fn audit_trail_end_to_end(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let key = "flow-webhook-key";
    let env = Env::new(
        b,
        Some(moto.url.clone()),
        &format!("[webhook]\nhmac_key = \"{key}\"\n"),
    )
    .await;
    let gw = env.start().await;
    let phone = "+31611110021";
    gw.set_phone(BOB, phone).await;
    let id = util::held_ref(
        &gw.hook(&message(
            BOB,
            "<audit-1@zorg.test>",
            "Uitslag bloedonderzoek",
        ))
        .await,
    );
    verify(&env, &gw, &moto, BOB, phone, 1).await;
    let got = env.release.wait_for(1, 10).await;
    gw.wait_hold(&id, BOB, "released", 10).await;
    let queue_id = u64::from_str_radix(&got[0].queue_id, 16).unwrap();

    // Stalwart delivers the released copy and reports it: the captured events, this queue id, times
    // moved to after the release (their spacing kept).
    let mut events = util::fixture("webhook-events-delivery-attempt.json");
    let list = events["events"].as_array_mut().unwrap();
    let first = list
        .iter()
        .filter_map(|e| time::parse_rfc3339(e["createdAt"].as_str()?))
        .min()
        .unwrap();
    let shift = time::now() + 5 - first;
    let mut ours = 0;
    for e in list.iter_mut() {
        if e["data"]["queueId"].is_u64() {
            e["data"]["queueId"] = serde_json::json!(queue_id);
            ours += 1;
        }
        let at = time::parse_rfc3339(e["createdAt"].as_str().unwrap()).unwrap();
        e["createdAt"] = serde_json::json!(time::rfc3339(at + shift));
    }
    assert!(ours > 0);
    let body = serde_json::to_vec(&events).unwrap();
    let (status, _, reply) = util::http(
        hyper::Method::POST,
        &gw.url("/v1/stalwart-events"),
        &[
            (
                "x-signature",
                stalwart_nta7516::stalwart::webhook::sign(key, &body),
            ),
            ("content-type", "application/json".into()),
        ],
        body,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let intake: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert!(intake["recorded"].as_u64().unwrap() > 0, "{intake}");
    assert_eq!(intake["waiting"], 0, "{intake}");

    // The proof-of-delivery report (what `audit report --message-id` prints).
    let report = gw.gw.store.audit_report(&id).await.unwrap().unwrap();
    assert!(report.records_intact);
    let mut kinds: Vec<&str> = report.timeline.iter().map(|t| t.kind.as_str()).collect();
    let deliveries = kinds.iter().filter(|k| **k == "delivery").count();
    assert_eq!(deliveries as u64, intake["recorded"].as_u64().unwrap());
    kinds.dedup();
    assert_eq!(
        kinds,
        vec![
            "decision",
            "held",
            "notification_sent",
            "sms_sent",
            "code_succeeded",
            "released",
            "delivery"
        ],
        "{:#?}",
        report.timeline
    );
    let records = gw.audit(&id).await;
    let detail = |kind: &str| {
        records
            .iter()
            .find(|(k, _, _)| k == kind)
            .unwrap_or_else(|| panic!("no {kind} record"))
            .2
            .clone()
    };
    assert_eq!(detail("notification_sent")["notice"], "recipient_notice");
    assert_eq!(detail("notification_sent")["to"], BOB);
    assert_eq!(detail("sms_sent")["phone"], "+316*****021");
    assert_eq!(detail("released")["target"], "inbox");
    assert_eq!(detail("released")["queue_id"], queue_id.to_string());
    let bob = &report.recipients[0];
    assert_eq!(bob.recipient, BOB);
    assert!(bob
        .released
        .as_deref()
        .unwrap()
        .contains(&queue_id.to_string()));
    let decimal = queue_id.to_string();
    // Stalwart's evidence of the delivery attempt (the captured one failed on the MX certificate).
    let deliveries: Vec<_> = records.iter().filter(|(k, _, _)| k == "delivery").collect();
    assert!(deliveries
        .iter()
        .all(|(_, _, d)| d["queue_id"].as_str() == Some(decimal.as_str())));
    assert!(deliveries.iter().any(|(_, _, d)| d["data"]
        .to_string()
        .contains("invalid peer certificate: UnknownIssuer")));

    // The chain verifies; no content, subject or full phone number anywhere in the log.
    assert!(gw.gw.store.verify_audit().await.unwrap().ok());
    let log = gw.whole_audit_log().await;
    for secret in ["Uitslag", "mmol", phone, "Beste ontvanger"] {
        assert!(!log.contains(secret), "{secret:?} in the audit log:\n{log}");
    }
}

async fn portal_for_insecure_recipient(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    env.tls.set("insecure.test", TlsStatus::Insecure);
    let gw = env.start().await;
    let rcpt = "eve@insecure.test";
    let phone = "+31611110002";
    gw.set_phone(rcpt, phone).await;
    let attachment = b"%PDF-1.4 lab result\n";
    let body = format!(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nUw uitslag staat in de bijlage.\r\n\
         --b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"uitslag.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        base64_encode(attachment)
    );
    let req = hook_request(
        SENDER,
        &[rcpt],
        &[
            ("From", "Dr. A. Arts <arts@zorg.test>"),
            ("To", rcpt),
            ("Subject", "Uitslag <b>met</b> bijlage"),
            ("Message-ID", "<portal-1@zorg.test>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"b1\""),
        ],
        &body,
    );
    let original = original_bytes(&req);
    let id = util::held_ref(&gw.hook(&req).await);
    assert_eq!(gw.hold(&id, rcpt).await.0, "held");
    let (link, mut br) = verify(&env, &gw, &moto, rcpt, phone, 1).await;
    gw.wait_hold(&id, rcpt, "portal", 10).await;

    let list = br.get(&format!("{link}/messages")).await;
    assert!(list.body.contains(&format!("/m/{id}")), "{}", list.body);
    let view = br.get(&format!("{link}/m/{id}")).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(
        view.body.contains("Uw uitslag staat in de bijlage."),
        "{}",
        view.body
    );
    assert!(
        view.body.contains("Uitslag &lt;b&gt;met&lt;/b&gt; bijlage"),
        "subject escaped"
    );
    assert!(view.body.contains("uitslag.pdf"));
    let eml = br.get(&format!("{link}/m/{id}/eml")).await;
    assert_eq!(eml.status, StatusCode::OK);
    assert_eq!(eml.bytes, original, ".eml download is the original message");
    assert_eq!(eml.headers["content-type"], "application/octet-stream");
    assert!(eml.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let att = br.get(&format!("{link}/m/{id}/a/0")).await;
    assert_eq!(att.status, StatusCode::OK);
    assert_eq!(att.bytes, attachment);
    assert!(att.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("uitslag.pdf"));
    assert_eq!(
        br.get(&format!("{link}/m/{id}/a/1")).await.status,
        StatusCode::NOT_FOUND
    );
    // Security headers on every portal page.
    assert!(view.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(view.headers["referrer-policy"], "no-referrer");
    // Without the session: no access.
    let mut stranger = Browser::new(&gw, "en");
    let r = stranger.get(&format!("{link}/m/{id}/eml")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.bytes != original);
    // Never submitted for SMTP delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.release.messages().is_empty(),
        "portal message was submitted"
    );
    assert_eq!(gw.hold(&id, rcpt).await.0, "portal");

    // The audit log: released to the portal at verification, then the view and each download (and
    // only those: the refused stranger and the missing attachment left no record).
    let records = gw.audit(&id).await;
    let kinds: Vec<&str> = records.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "decision",
            "held",
            "notification_sent",
            "sms_sent",
            "code_succeeded",
            "released",
            "portal_viewed",
            "portal_downloaded",
            "portal_downloaded"
        ]
    );
    assert!(records.iter().all(|(_, r, _)| r.as_deref() == Some(rcpt)));
    assert_eq!(records[5].2["target"], "portal");
    assert_eq!(records[7].2["part"], "message.eml");
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, attachment));
    assert_eq!(
        records[8].2["part"],
        format!("attachment 0 (sha256 {digest})")
    );
    let log = gw.whole_audit_log().await;
    for secret in ["uitslag.pdf", "Uitslag", "bijlage", phone] {
        assert!(!log.contains(secret), "{secret:?} in the audit log");
    }
    assert!(gw.gw.store.verify_audit().await.unwrap().ok());
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Faults 1: the SNS endpoint is down. The recipient is told to try later; nothing changes.
async fn sns_down(b: Backend) {
    let dead = format!("http://127.0.0.1:{}", util::free_port());
    let env = Env::new(b, Some(dead), "").await;
    let gw = env.start().await;
    gw.set_phone(BOB, "+31611110003").await;
    let id = util::held_ref(&gw.hook(&message(BOB, "<sns-down@zorg.test>", "x")).await);
    let mails = env.notify.wait_for(1, 10).await;
    let link = link_in(&mails[0].data, "p");
    let mut br = Browser::new(&gw, "en");
    let r = br.request_code(&link).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("try again"), "{}", r.body);
    assert!(r.body.contains("safely held"));
    assert_eq!(gw.hold(&id, BOB).await.0, "held");
    assert!(gw.content_held(&id).await);
    // The landing page still works: the recipient can try again later.
    assert_eq!(br.get(&link).await.status, StatusCode::OK);
    // The failure is audited (masked number, kind of failure); no code was stored for it.
    let records = gw.audit(&id).await;
    let failed: Vec<_> = records
        .iter()
        .filter(|(k, _, _)| k == "sms_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{records:?}");
    assert_eq!(failed[0].2["phone"], "+316*****003");
    assert_eq!(failed[0].2["failure"], "unreachable");
    assert!(records.iter().all(|(k, _, _)| k != "sms_sent"));
}

/// The common start of the fault tests: moto's SNS, the two test listeners, a running gateway, BOB's
/// mobile number and one message held for BOB (`None`: moto is missing and the test is skipped).
struct HeldForBob {
    moto: Moto,
    env: Env,
    gw: Running,
    phone: &'static str,
    id: String,
    original: Vec<u8>,
}

async fn held_for_bob(b: Backend, phone: &'static str, message_id: &str) -> Option<HeldForBob> {
    let moto = Moto::start().await?;
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    gw.set_phone(BOB, phone).await;
    let req = message(BOB, message_id, "x");
    let original = original_bytes(&req);
    let id = util::held_ref(&gw.hook(&req).await);
    Some(HeldForBob {
        moto,
        env,
        gw,
        phone,
        id,
        original,
    })
}

/// Faults 2: Stalwart's release listener is down at release time. The hold stays, is retried with
/// backoff, and is delivered exactly once when the listener is back.
async fn release_listener_down(b: Backend) {
    let Some(HeldForBob {
        moto,
        mut env,
        gw,
        phone,
        id,
        original,
    }) = held_for_bob(b, "+31611110004", "<down@zorg.test>").await
    else {
        return;
    };
    env.notify.wait_for(1, 10).await;
    env.release.stop();
    verify(&env, &gw, &moto, BOB, phone, 1).await;
    util::eventually(10, "a failed release attempt", || async {
        let h = gw.hold(&id, BOB).await;
        (h.2 >= 1).then_some(())
    })
    .await;
    let (state, qid, _) = gw.hold(&id, BOB).await;
    assert!(
        state == "releasing" || state == "sending" || state == "committing",
        "{state}"
    );
    assert!(qid.is_none());
    assert!(gw.content_held(&id).await, "content kept");
    env.release.restart().await;
    let (_, qid, _) = gw.wait_hold(&id, BOB, "released", 15).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = env.release.messages();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].data, original);
    assert_eq!(qid.as_deref(), Some(got[0].queue_id.as_str()));
    // Each failed attempt is audited with its retry time, before the one release.
    assert_release_failures_then_released(&gw, &id, "").await;
}

/// The message's audit trail holds one or more `release_failed` records (with `error` containing
/// `error_says`, and a retry time), then exactly one `released` to the inbox.
async fn assert_release_failures_then_released(gw: &util::Running, id: &str, error_says: &str) {
    let records = gw.audit(id).await;
    let kinds: Vec<&str> = records
        .iter()
        .map(|(k, _, _)| k.as_str())
        .filter(|k| k.starts_with("release"))
        .collect();
    assert!(kinds.len() >= 2, "{records:?}");
    assert_eq!(kinds.last(), Some(&"released"), "{records:?}");
    assert!(
        kinds[..kinds.len() - 1]
            .iter()
            .all(|k| *k == "release_failed"),
        "{records:?}"
    );
    let failed = records
        .iter()
        .find(|(k, _, _)| k == "release_failed")
        .unwrap();
    assert_eq!(failed.1.as_deref(), Some(BOB));
    assert_eq!(failed.2["next"], "retry");
    assert!(failed.2["retry_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(
        failed.2["error"].as_str().unwrap().contains(error_says),
        "{failed:?}"
    );
    let report = gw.gw.store.audit_report(id).await.unwrap().unwrap();
    assert!(report.records_intact);
    assert!(
        report
            .timeline
            .iter()
            .any(|t| t.summary.starts_with("release to the inbox failed (")),
        "{:#?}",
        report.timeline
    );
}

/// Faults 2b: Stalwart refuses the release (its rate limiters answer 451 after the data): the message
/// stays held, is retried, and is delivered once when Stalwart accepts it.
async fn release_refused_then_accepted(b: Backend) {
    let Some(HeldForBob {
        moto,
        env,
        gw,
        phone,
        id,
        original,
    }) = held_for_bob(b, "+31611110007", "<refused@zorg.test>").await
    else {
        return;
    };
    env.release
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    verify(&env, &gw, &moto, BOB, phone, 1).await;
    util::eventually(10, "a refused release attempt", || async {
        let h = gw.hold(&id, BOB).await;
        (h.2 >= 1 && h.0 == "releasing").then_some(())
    })
    .await;
    assert!(env.release.messages().is_empty());
    assert!(gw.content_held(&id).await, "content kept");
    env.release
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    gw.wait_hold(&id, BOB, "released", 15).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = env.release.messages();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].data, original);
    assert_release_failures_then_released(&gw, &id, "451").await;
}

/// Faults 3: the gateway restarts between hold and code entry. The link in the mail still works, the
/// message is released once, no notification is sent twice.
async fn restart_between_hold_and_code(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let first = env.start().await;
    let phone = "+31611110005";
    first.set_phone(BOB, phone).await;
    let req = message(BOB, "<restart@zorg.test>", "x");
    let original = original_bytes(&req);
    let id = util::held_ref(&first.hook(&req).await);
    env.notify.wait_for(1, 10).await;
    // Stopped once the notification is recorded as sent (the listener has the mail a moment before the
    // worker commits that; a crash inside that window is the crash-safety issue's case, not this one).
    util::eventually(10, "the notification recorded as sent", || async {
        let records = first.audit(&id).await;
        records
            .iter()
            .any(|(kind, _, _)| kind == "notification_sent")
            .then_some(())
    })
    .await;
    first.stop().await;

    let second = env.start().await;
    assert_eq!(second.hold(&id, BOB).await.0, "held");
    verify(&env, &second, &moto, BOB, phone, 1).await;
    second.wait_hold(&id, BOB, "released", 10).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = env.release.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, original);
    assert_eq!(
        env.notify.messages().len(),
        1,
        "notification not repeated after the restart"
    );
}

/// Faults 4: the recipient's TLS turns insecure between hold and release: never delivered over SMTP, the
/// message goes to the portal instead.
async fn insecure_at_release_goes_to_portal(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let phone = "+31611110006";
    gw.set_phone(BOB, phone).await;
    let id = util::held_ref(&gw.hook(&message(BOB, "<degrade@zorg.test>", "x")).await);
    assert_eq!(gw.hold(&id, BOB).await.0, "held");
    env.tls.set("example.test", TlsStatus::Insecure);
    let (link, mut br) = verify(&env, &gw, &moto, BOB, phone, 1).await;
    gw.wait_hold(&id, BOB, "portal", 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.release.messages().is_empty(), "delivered insecurely");
    assert_eq!(
        br.get(&format!("{link}/m/{id}")).await.status,
        StatusCode::OK
    );
}

/// Faults 2c: Stalwart queues the release but the reply is lost (the connection drops after the data).
/// The gateway cannot know whether it was accepted: the hold turns `uncertain`, is never re-sent on its
/// own (that could deliver twice), keeps its content for the operator, and the audit log says so.
async fn release_reply_lost_is_uncertain(b: Backend) {
    let Some(HeldForBob {
        moto,
        env,
        gw,
        phone,
        id,
        original,
    }) = held_for_bob(b, "+31611110008", "<lost@zorg.test>").await
    else {
        return;
    };
    env.release
        .vanish
        .store(true, std::sync::atomic::Ordering::SeqCst);
    verify(&env, &gw, &moto, BOB, phone, 1).await;
    let (_, qid, attempts) = gw.wait_hold(&id, BOB, "uncertain", 15).await;
    assert_eq!((qid, attempts), (None, 1));
    // Let the release worker run several more rounds: nothing is sent again.
    env.release
        .vanish
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = env.release.messages();
    assert_eq!(got.len(), 1, "sent once, never re-sent");
    assert_eq!(got[0].data, original);
    assert_eq!(gw.hold(&id, BOB).await.0, "uncertain");
    assert!(gw.content_held(&id).await, "content kept for the operator");
    let records = gw.audit(&id).await;
    let failed: Vec<_> = records
        .iter()
        .filter(|(k, _, _)| k == "release_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{records:?}");
    assert_eq!(failed[0].2["next"], "operator");
    assert!(failed[0].2["retry_at"].is_null());
    assert!(
        failed[0].2["error"]
            .as_str()
            .unwrap()
            .contains("closed connection"),
        "{failed:?}"
    );
    assert!(records.iter().all(|(k, _, _)| k != "released"));
    let report = gw.gw.store.audit_report(&id).await.unwrap().unwrap();
    assert!(report
        .timeline
        .iter()
        .any(|t| t.summary.starts_with("release outcome unknown (")
            && t.summary
                .ends_with("held as uncertain for the operator, not re-sent")));

    // The operator finds nothing in Stalwart's queue and resolves it as not delivered: the worker sends
    // it again, once, and the hold is released with the new queue id.
    let resolved = gw
        .gw
        .store
        .resolve_uncertain(
            "test-operator",
            &id,
            BOB,
            false,
            stalwart_nta7516::time::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        resolved,
        stalwart_nta7516::store::admin::Resolved::Done(
            stalwart_nta7516::store::HoldState::Releasing
        )
    );
    let (_, qid, _) = gw.wait_hold(&id, BOB, "released", 15).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = env.release.messages();
    assert_eq!(got.len(), 2, "sent again exactly once");
    assert_eq!(got[1].data, original);
    assert_eq!(qid.as_deref(), Some(got[1].queue_id.as_str()));
    let kinds: Vec<String> = gw.audit(&id).await.into_iter().map(|r| r.0).collect();
    let tail: Vec<&str> = kinds
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["admin", "released"], "{kinds:?}");
}

/// Twelve messages held for one recipient are released after one verification, over AUTH LOGIN (the
/// listener offers no PLAIN), in sessions of at most ten (Stalwart's per-session limit, which the test
/// listener enforces with 452): each exactly once, byte for byte, without a single refused attempt.
async fn many_releases_over_auth_login(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    env.release
        .login_only
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let gw = env.start().await;
    let phone = "+31611110009";
    gw.set_phone(BOB, phone).await;
    let mut held = Vec::new();
    for i in 0..12 {
        let req = message(
            BOB,
            &format!("<many-{i}@zorg.test>"),
            &format!("uitslag {i}"),
        );
        held.push((util::held_ref(&gw.hook(&req).await), original_bytes(&req)));
    }
    verify(&env, &gw, &moto, BOB, phone, 1).await;
    for (id, _) in &held {
        gw.wait_hold(id, BOB, "released", 20).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = env.release.messages();
    assert_eq!(got.len(), 12, "each exactly once");
    for (id, original) in &held {
        let copies = got.iter().filter(|m| &m.data == original).count();
        assert_eq!(copies, 1, "{id}");
    }
    assert!(got
        .iter()
        .all(|m| m.tls && m.auth == smtp::USER && m.mechanism == "LOGIN"));
    let mut per_session = std::collections::BTreeMap::new();
    for m in &got {
        *per_session.entry(m.session).or_insert(0) += 1;
    }
    assert!(per_session.len() >= 2, "{per_session:?}");
    assert!(per_session.values().all(|n| *n <= 10), "{per_session:?}");
    for (id, _) in &held {
        let records = gw.audit(id).await;
        assert!(
            records.iter().all(|(k, _, _)| k != "release_failed"),
            "{id}: {records:?}"
        );
    }
}

/// Two gateway instances on one database, their workers running, and eight more notification passes
/// started at once on both: the recipient gets one notification mail (each pass claims a row before it
/// sends it; before, every pass that had read the row sent it).
async fn two_instances_send_one_notification(b: Backend) {
    let env = Env::new(b, None, "").await;
    let (a, other) = (env.start().await, env.start().await);
    a.set_phone(BOB, "+31611110009").await;
    let id = util::held_ref(&a.hook(&message(BOB, "<two-gw@zorg.test>", "Uitslag")).await);
    let now = time::now();
    let passes = (0..8).map(|i| {
        let gw = if i % 2 == 0 {
            a.gw.clone()
        } else {
            other.gw.clone()
        };
        tokio::spawn(async move { stalwart_nta7516::challenge::notify::send_due(&gw, now).await })
    });
    for p in passes {
        p.await.unwrap().unwrap();
    }
    env.notify.wait_for(1, 10).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let to_bob = env
        .notify
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_to == [BOB])
        .count();
    assert_eq!(to_bob, 1, "one notification for hold {id}");
    let audit = a.whole_audit_log().await;
    assert_eq!(audit.matches("notification_sent").count(), 1, "{audit}");
}

/// Notifications of successive worker passes go over one SMTP session (kept between passes, not a new
/// STARTTLS session per held message); once the listener closed it (Stalwart's idle timeout), the next
/// notification goes over a new session at once, without a failed attempt or a retry.
async fn notifications_share_a_kept_session(b: Backend) {
    let env = Env::new(b, None, "").await;
    let gw = env.start().await;
    // One challenge per recipient (shared by all their held messages), so three recipients.
    let rcpts = [
        "kees@example.test",
        "lotte@example.test",
        "mila@example.test",
    ];
    for (n, rcpt) in rcpts.iter().enumerate() {
        gw.set_phone(rcpt, &format!("+3161111001{n}")).await;
    }
    let send = |n: usize| {
        let req = message(rcpts[n], &format!("<kept-{n}@zorg.test>"), "Uitslag");
        let (gw, notify) = (&gw, &env.notify);
        async move {
            util::held_ref(&gw.hook(&req).await);
            notify.wait_for(n + 1, 10).await
        }
    };
    send(0).await;
    let two = send(1).await;
    assert_eq!(
        (two[0].session, two[1].session, env.notify.sessions()),
        (1, 1, 1),
        "the second pass used the first pass's session"
    );
    env.notify.close_idle();
    let three = send(2).await;
    assert_eq!((three[2].session, env.notify.sessions()), (2, 2));
    let mut rows = Vec::new();
    for rcpt in rcpts {
        rows.extend(gw.outbox(rcpt).await);
    }
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().all(|r| *r == ("sent".to_string(), 1, None)),
        "each sent at its first attempt: {rows:?}"
    );
}

both_backends!(
    notifications_share_a_kept_session,
    two_instances_send_one_notification,
    release_end_to_end,
    many_releases_over_auth_login,
    release_reply_lost_is_uncertain,
    audit_trail_end_to_end,
    portal_for_insecure_recipient,
    sns_down,
    release_listener_down,
    release_refused_then_accepted,
    restart_between_hold_and_code,
    insecure_at_release_goes_to_portal,
);

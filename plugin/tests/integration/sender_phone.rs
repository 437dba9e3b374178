//! The sender's side of an unknown phone number (must-show 4): the "enter the mobile number" link and the
//! `[sms:+316…]` subject tag, each with an invalid number. Over SQLite and PostgreSQL.

use std::time::Duration;

use crate::util;
use crate::util::{hook_request, original_bytes, Backend};
use crate::util::{link_in, Browser, Env, Moto, Running, SENDER};
use hyper::StatusCode;

const BOB: &str = "bob@example.test";

fn msg(subject: &str, msgid: &str) -> serde_json::Value {
    hook_request(
        SENDER,
        &[BOB],
        &[
            ("From", SENDER),
            ("To", BOB),
            ("Subject", subject),
            ("Message-ID", msgid),
        ],
        "Inhoud\r\n",
    )
}

async fn held(gw: &Running, req: &serde_json::Value) -> String {
    let answer = gw.hook(req).await;
    util::held_ref(&answer)
}

async fn phone_by_link(b: Backend) {
    let env = Env::new(b, None, "").await;
    let gw = env.start().await;
    let id = held(&gw, &msg("Uitslag", "<link@zorg.test>")).await;
    // Unknown number: the sender is asked, nothing goes to the recipient.
    let mails = env.notify.wait_for(1, 10).await;
    assert_eq!(mails[0].rcpt_to, vec![SENDER.to_string()]);
    let link = link_in(&mails[0].data, "s");
    let mut br = Browser::new(&gw, "en");
    let form = br.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(BOB));
    // Invalid number: clear error, nothing changes.
    let r = br
        .post(&link, &[("csrf", &form.csrf()), ("phone", "0612345678")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("not a valid mobile number"), "{}", r.body);
    assert!(r.body.contains("role=\"alert\""));
    assert_eq!(gw.phone(BOB).await, None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        env.notify.messages().len(),
        1,
        "nothing sent to the recipient"
    );
    // Valid number (with separators): recorded, the recipient gets the notice.
    let r = br
        .post(&link, &[("csrf", &r.csrf()), ("phone", "+31 6 2222 0010")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(gw.phone(BOB).await.as_deref(), Some("+31622220010"));
    let mails = env.notify.wait_for(2, 10).await;
    assert_eq!(mails[1].rcpt_to, vec![BOB.to_string()]);
    assert!(String::from_utf8_lossy(&mails[1].data).contains("/p/"));
    // The link now says the number is known, and cannot change it.
    let again = br.get(&link).await;
    assert!(again.body.contains("number is known"), "{}", again.body);
    // Audited: the request to the sender, the sender's two entries (the invalid one without what was
    // typed), then the recipient's notice.
    let records = gw.wait_audit(&id, 6, 10).await;
    let kinds: Vec<&str> = records.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "decision",
            "held",
            "notification_sent",
            "phone_number",
            "phone_number",
            "notification_sent"
        ]
    );
    assert_eq!(records[2].2["notice"], "sender_phone_request");
    assert_eq!(records[2].2["to"], SENDER);
    assert_eq!(records[2].1.as_deref(), Some(BOB));
    assert_eq!(records[3].2["source"], "sender_link");
    assert_eq!(records[3].2["outcome"], "invalid");
    assert!(records[3].2["phone"].is_null());
    assert_eq!(records[4].2["outcome"], "recorded");
    assert_eq!(records[4].2["phone"], "+316*****010");
    assert_eq!(records[5].2["notice"], "recipient_notice");
    let log = gw.whole_audit_log().await;
    assert!(!log.contains("0612345678") && !log.contains("+31622220010"));
}

async fn phone_by_subject_tag(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let req = msg("Uitslag [sms:+31622220011] lab", "<tag@zorg.test>");
    let submitted = original_bytes(&req);
    let id = held(&gw, &req).await;
    assert_eq!(gw.phone(BOB).await.as_deref(), Some("+31622220011"));
    // The held copy is the submitted message without the tag.
    let stripped = String::from_utf8(submitted.clone())
        .unwrap()
        .replace(
            "Subject: Uitslag [sms:+31622220011] lab",
            "Subject: Uitslag lab",
        )
        .into_bytes();
    assert_ne!(stripped, submitted);
    let sealed = gw.gw.store.held(&id).await.unwrap().unwrap();
    assert_eq!(
        gw.gw
            .master
            .open(&id, sealed.sealed.as_ref().unwrap())
            .unwrap(),
        stripped
    );
    // The recipient is notified directly (no mail to the sender), verifies, gets the stripped copy.
    let mails = env.notify.wait_for(1, 10).await;
    assert_eq!(mails[0].rcpt_to, vec![BOB.to_string()]);
    let link = link_in(&mails[0].data, "p");
    let mut br = Browser::new(&gw, "nl");
    assert_eq!(br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = moto.last_code("+31622220011").await;
    assert_eq!(
        br.enter_code(&link, &code).await.status,
        StatusCode::SEE_OTHER
    );
    let got = env.release.wait_for(1, 10).await;
    assert_eq!(got[0].data, stripped);
    assert!(env.notify.messages().iter().all(|m| m.rcpt_to != [SENDER]));
    // The number from the tag is recorded with the hold, masked, with the sender who gave it.
    let records = gw.audit(&id).await;
    let tag = records
        .iter()
        .find(|(k, _, _)| k == "phone_number")
        .expect("phone_number record");
    assert_eq!(tag.2["source"], "subject_tag");
    assert_eq!(tag.2["outcome"], "recorded");
    assert_eq!(tag.2["phone"], "+316*****011");
    assert!(!gw.whole_audit_log().await.contains("+31622220011"));
}

async fn invalid_subject_tag(b: Backend) {
    let env = Env::new(b, None, "").await;
    let gw = env.start().await;
    let id = held(&gw, &msg("Uitslag [sms:12345]", "<badtag@zorg.test>")).await;
    assert_eq!(gw.phone(BOB).await, None, "invalid number not recorded");
    let sealed = gw.gw.store.held(&id).await.unwrap().unwrap();
    let copy = gw
        .gw
        .master
        .open(&id, sealed.sealed.as_ref().unwrap())
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&copy).contains("[sms:"),
        "tag removed from the held copy"
    );
    let mails = env.notify.wait_for(1, 10).await;
    assert_eq!(
        mails[0].rcpt_to,
        vec![SENDER.to_string()],
        "the sender is asked instead"
    );
    let records = gw.audit(&id).await;
    let tag = records
        .iter()
        .find(|(k, _, _)| k == "phone_number")
        .expect("phone_number record");
    assert_eq!(
        (&tag.2["source"], &tag.2["outcome"]),
        (
            &serde_json::json!("subject_tag"),
            &serde_json::json!("invalid")
        )
    );
    assert!(tag.2["phone"].is_null());
}

/// An unclaimed hold expires: its content is deleted and the sender is told it was not collected.
async fn expiry_notice_to_sender(b: Backend) {
    let env = Env::new(b, None, "").await;
    let gw = env.start().await;
    gw.set_phone(BOB, "+31622220012").await;
    let id = held(&gw, &msg("Uitslag", "<expire@zorg.test>")).await;
    env.notify.wait_for(1, 10).await; // the recipient's notice
    let later = stalwart_nta7516::time::now() + 91 * 86_400;
    assert_eq!(gw.gw.store.purge_expired(later).await.unwrap(), 1);
    gw.gw.wake.now();
    let mails = env.notify.wait_for(2, 10).await;
    let notice = &mails[1];
    assert_eq!(notice.rcpt_to, vec![SENDER.to_string()]);
    let text = String::from_utf8_lossy(&notice.data);
    assert!(
        text.contains("Not collected") && text.contains(&id) && text.contains(BOB),
        "{text}"
    );
    assert!(!text.contains("Inhoud"));
    assert_eq!(gw.hold(&id, BOB).await.0, "expired");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(env.notify.messages().len(), 2, "one notice only");
    // Audited: the expiry (with the purge) and the notice to the sender, once each.
    let records = gw.audit(&id).await;
    let expired: Vec<_> = records.iter().filter(|(k, _, _)| k == "expired").collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].1.as_deref(), Some(BOB));
    let notices: Vec<&str> = records
        .iter()
        .filter(|(k, _, _)| k == "notification_sent")
        .map(|(_, _, d)| d["notice"].as_str().unwrap())
        .collect();
    assert_eq!(notices, vec!["recipient_notice", "sender_not_collected"]);
}

both_backends!(
    phone_by_link,
    phone_by_subject_tag,
    invalid_subject_tag,
    expiry_notice_to_sender
);

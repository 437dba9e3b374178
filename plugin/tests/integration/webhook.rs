//! Stalwart's webhook over HTTP, against SQLite and PostgreSQL, with the real payloads captured from
//! Stalwart v0.15.5: HMAC checked (401), malformed bodies refused (400, nothing recorded), duplicates
//! recorded once, unknown types ignored, events correlated with the hook's decisions by queue id; and the
//! proof-of-delivery report of a message that was held, verified, released and delivered.

use crate::util;
use crate::util::{fixture, hook_request, Backend, Builder, TestGateway, TlsTable, ADMIN_TOKEN};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use stalwart_nta7516::{
    audit::{Event, MaskedPhone, Notice, ReleaseTarget},
    policy::TlsStatus,
    stalwart::webhook::sign,
    time,
};

const KEY: &str = util::WEBHOOK_KEY;

async fn gateway(b: Backend) -> TestGateway {
    Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(TlsTable::new(&[("example.test", TlsStatus::Secure)]))
        .start()
        .await
}

async fn post_events(gw: &TestGateway, body: &[u8], signature: Option<&str>) -> util::HttpReply {
    let headers: Vec<(&str, String)> = signature
        .map(|s| vec![("x-signature", s.to_string())])
        .unwrap_or_default();
    gw.request_with(Method::POST, "/v1/stalwart-events", &headers, body.to_vec())
        .await
}

async fn signed(gw: &TestGateway, body: &[u8]) -> util::HttpReply {
    post_events(gw, body, Some(&sign(KEY, body))).await
}

/// A hook call whose Stalwart queue id is the one in the fixture (hex in the hook, decimal in the
/// webhook), so the fixture's events belong to this message. Returns the message ref.
async fn hook_with_queue(gw: &TestGateway, queue_id: u64, to: &[&str]) -> String {
    let mut req = hook_request("alice@zorg.test", to, &[("Subject", "lab")], "results\r\n");
    req["context"]["queue"]["id"] = json!(format!("{queue_id:x}"));
    let v = gw.hook(&req).await.json();
    match v["action"].as_str() {
        Some("discard") => util::held_ref(&v),
        _ => v["modifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["type"] == "addHeader")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string(),
    }
}

/// The recipients are verified for a day, so a message to them goes out now (and its events count).
async fn verified(gw: &TestGateway, recipients: &[&str]) {
    for r in recipients {
        gw.gw
            .store
            .upsert_recipient(r, None, Some(time::now() + 86_400), time::now())
            .await
            .unwrap();
    }
}

fn raw(name: &str) -> Vec<u8> {
    serde_json::to_vec(&fixture(name)).unwrap()
}

async fn delivery_records(
    gw: &TestGateway,
    message_ref: &str,
) -> Vec<stalwart_nta7516::audit::Record> {
    gw.gw
        .store
        .audit_for_message(message_ref)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "delivery")
        .collect()
}

async fn real_fixture_is_recorded_and_correlated(b: Backend) {
    let gw = gateway(b).await;
    // The fixture's message: carol and bob at example.test, both "verified" so it goes out now.
    verified(&gw, &["bob@example.test", "carol@example.test"]).await;
    let message = hook_with_queue(
        &gw,
        341953382017139509,
        &["bob@example.test", "carol@example.test"],
    )
    .await;
    assert!(message.starts_with("m-"), "{message}");

    let body = raw("webhook-events-delivery-attempt.json");
    let reply = signed(&gw, &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let intake = reply.json();
    // The recorded types in the fixture (delivery evidence and outcomes), counted from the fixture.
    let events = fixture("webhook-events-delivery-attempt.json")["events"]
        .as_array()
        .unwrap()
        .clone();
    let expected = events
        .iter()
        .filter(|e| {
            stalwart_nta7516::audit::delivery::is_recorded(e["type"].as_str().unwrap())
                && e["data"]["queueId"].is_u64()
        })
        .count();
    assert!(expected >= 10, "fixture has {expected} recorded events");
    assert_eq!(intake["recorded"], expected, "{intake}");
    assert_eq!(intake["duplicates"], 0);
    assert_eq!(intake["waiting"], 0);
    // Unknown/unrecorded types (raw SMTP transcript, EHLO, ip-lookup, the inbound queue event) are ignored.
    assert_eq!(intake["ignored"], events.len() - expected);

    let records = delivery_records(&gw, &message).await;
    assert_eq!(records.len(), expected);
    // The evidence Stalwart reported: the MX hosts tried, their IPs, the TLS failure reason.
    let all: String = records.iter().map(|r| r.details.clone()).collect();
    assert!(all.contains("invalid peer certificate: UnknownIssuer"));
    assert!(all.contains("\"remoteIp\":\"127.0.0.2\""));
    assert!(all.contains("dane.tlsa-record-not-dnssec-signed"));
    // Raw SMTP transcripts never enter the log.
    assert!(!all.contains("Ready to start TLS"));
    // Every delivery record carries the message's hash and sender from the hook decision.
    let decision = gw.gw.store.audit_for_message(&message).await.unwrap()[0].clone();
    for r in &records {
        assert_eq!(r.message_sha256, decision.message_sha256);
        assert_eq!(r.sender.as_deref(), Some("alice@zorg.test"));
    }

    // The second fixture: its messages are not the gateway's (other queue ids) → kept waiting.
    let reply = signed(&gw, &raw("webhook-events-strict-tls-failure.json")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let intake = reply.json();
    assert_eq!(intake["recorded"], 0, "{intake}");
    assert!(intake["waiting"].as_u64().unwrap() > 0);
    assert!(gw.gw.store.verify_audit().await.unwrap().ok());
}

async fn wrong_or_missing_signature_is_401_and_records_nothing(b: Backend) {
    let gw = gateway(b).await;
    hook_with_queue(&gw, 341953382017139509, &["bob@example.test"]).await;
    let before = gw.count("audit_log").await;
    let body = raw("webhook-events-delivery-attempt.json");
    for sig in [
        None,
        Some(sign("another-key", &body)),
        Some(sign(KEY, b"{\"events\":[]}")),
        Some("garbage".to_string()),
    ] {
        let reply = post_events(&gw, &body, sig.as_deref()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{sig:?}");
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(reply.json()["status"], 401);
    }
    assert_eq!(gw.count("audit_log").await, before);
    assert_eq!(gw.count("webhook_unmatched").await, 0);
}

async fn malformed_payload_is_400_and_records_nothing(b: Backend) {
    let gw = gateway(b).await;
    hook_with_queue(&gw, 341953382017139509, &["bob@example.test"]).await;
    let before = gw.count("audit_log").await;
    let good = fixture("webhook-events-delivery-attempt.json");
    let mut bad_queue = good.clone();
    // One bad event among good ones: the whole batch is refused, nothing recorded.
    bad_queue["events"][5]["data"]["queueId"] = json!("not-a-number");
    let mut bad_time = good.clone();
    bad_time["events"][6]["createdAt"] = json!("yesterday");
    for (body, says) in [
        (b"{\"events\": [".to_vec(), "line 1"),
        (b"not json".to_vec(), "line 1"),
        (b"{\"event\": []}".to_vec(), "missing field `events`"),
        (b"{\"events\": [{\"id\": \"1\"}]}".to_vec(), "missing field"),
        (serde_json::to_vec(&bad_queue).unwrap(), "events[5]"),
        (serde_json::to_vec(&bad_time).unwrap(), "events[6]"),
    ] {
        let reply = signed(&gw, &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.content_type, "application/problem+json");
        let p = reply.json();
        assert!(
            p["detail"].as_str().unwrap().contains(says),
            "{p} should say {says}"
        );
    }
    assert_eq!(gw.count("audit_log").await, before);
}

async fn duplicate_events_are_recorded_once(b: Backend) {
    let gw = gateway(b).await;
    let message = hook_with_queue(&gw, 341953382017139509, &["bob@example.test"]).await;
    let body = raw("webhook-events-delivery-attempt.json");
    let first = signed(&gw, &body).await.json();
    let n = delivery_records(&gw, &message).await.len();
    assert!(n > 0);
    // Stalwart re-sends a batch after a non-2xx answer: same events again, and once more in a
    // different order within a batch that also carries one new event.
    let second = signed(&gw, &body).await.json();
    assert_eq!(second["recorded"], 0);
    assert_eq!(second["duplicates"], first["recorded"]);
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    let events = v["events"].as_array_mut().unwrap();
    events.reverse();
    let mut fresh = events[0].clone();
    fresh["type"] = json!("delivery.attempt-end");
    fresh["createdAt"] = json!("2026-11-22T08:28:05Z");
    events.push(fresh);
    let third = signed(&gw, &serde_json::to_vec(&v).unwrap()).await.json();
    assert_eq!(third["recorded"], 1, "{third}");
    assert_eq!(delivery_records(&gw, &message).await.len(), n + 1);
    assert!(gw.gw.store.verify_audit().await.unwrap().ok());
}

/// Events of a successful delivery in Stalwart's shape (CONTRACT §4.1: `delivery.start-tls` carries
/// `version` and the cipher in `details`; `delivery.delivered` the recipient, code and reply). The
/// captured fixtures only contain failed attempts, so the success events are built from the captured
/// span (its keys and values) plus these documented keys.
fn successful_delivery(queue_id: u64, to: &str, at: i64) -> (Value, Value) {
    let captured = fixture("webhook-events-delivery-attempt.json");
    let span_of = |t: &str| {
        let mut e = captured["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == t)
            .unwrap()
            .clone();
        e["data"]["queueId"] = json!(queue_id);
        e["data"]["to"] = json!([to]);
        e["createdAt"] = json!(time::rfc3339(at));
        e
    };
    let connect = span_of("delivery.connect");
    let mut start_tls = span_of("delivery.connect");
    start_tls["type"] = json!("delivery.start-tls");
    let d = start_tls["data"].as_object_mut().unwrap();
    for k in ["localIp", "remoteIp", "remotePort"] {
        d.remove(k);
    }
    d.insert("version".into(), json!("TLSv1_3"));
    d.insert("details".into(), json!("TLS13_AES_256_GCM_SHA384"));
    let mut dane = span_of("dane.tlsa-record-not-dnssec-signed");
    dane["type"] = json!("dane.authentication-success");
    let mut delivered = span_of("delivery.connect");
    delivered["type"] = json!("delivery.delivered");
    delivered["createdAt"] = json!(time::rfc3339(at + 1));
    let d = delivered["data"].as_object_mut().unwrap();
    for k in ["localIp", "remoteIp", "remotePort", "domain"] {
        d.remove(k);
    }
    d.insert("to".into(), json!(to));
    d.insert("code".into(), json!(250));
    d.insert("details".into(), json!("2.0.0 Ok: queued as 4Xyz"));
    // Two batches, the outcome first: arrival order is not event order.
    (
        json!({ "events": [delivered] }),
        json!({ "events": [connect, start_tls, dane] }),
    )
}

async fn report_shows_held_verified_released_delivered_in_order(b: Backend) {
    let gw = gateway(b).await;
    // 1. The hook holds the message for bob (2FA needed).
    let message = hook_with_queue(&gw, 341953382017139509, &["bob@example.test"]).await;
    assert!(message.starts_with("h-"));
    let now = time::now();
    let release_queue: u64 = 341953999999999999;

    // 2. Stalwart's delivery of the released copy reports before the release is recorded (the
    //    gateway's re-submission got its queue id, Stalwart started delivering at once).
    let (outcome, evidence) = successful_delivery(release_queue, "bob@example.test", now + 60);
    let early = signed(&gw, &serde_json::to_vec(&outcome).unwrap())
        .await
        .json();
    assert_eq!(early["waiting"], 1, "{early}");

    // 3. Verification and release, as the challenge code records them (audit API).
    gw.gw
        .store
        .append_audit(&[
            Event::NotificationSent {
                message_ref: message.clone(),
                recipient: "bob@example.test".into(),
                notice: Notice::RecipientNotice,
                to: "bob@example.test".into(),
                queue_id: Some("4bedcdc36e006bf".into()),
            },
            Event::SmsSent {
                message_ref: Some(message.clone()),
                recipient: "bob@example.test".into(),
                challenge_id: "c-1".into(),
                phone: MaskedPhone::from_e164("+31612345678"),
            },
            Event::CodeFailed {
                message_ref: Some(message.clone()),
                recipient: "bob@example.test".into(),
                challenge_id: "c-1".into(),
                attempts_left: 2,
            },
            Event::CodeSucceeded {
                message_ref: Some(message.clone()),
                recipient: "bob@example.test".into(),
                challenge_id: "c-1".into(),
                verified_until: now + 90 * 86_400,
            },
            Event::Released {
                message_ref: message.clone(),
                recipient: "bob@example.test".into(),
                target: ReleaseTarget::Inbox,
                queue_id: Some(release_queue),
            },
        ])
        .await
        .unwrap();
    assert_eq!(gw.count("webhook_unmatched").await, 0);

    // 4. The connection evidence arrives last.
    let late = signed(&gw, &serde_json::to_vec(&evidence).unwrap())
        .await
        .json();
    assert_eq!(late["recorded"], 3, "{late}");

    // The report, through the admin API.
    let reply = gw
        .request(
            Method::GET,
            &format!("/v1/admin/audit/report/{message}"),
            Some(ADMIN_TOKEN),
            vec![],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let r = reply.json();
    assert_eq!(r["records_intact"], true);
    assert_eq!(r["sender"], "alice@zorg.test");
    let bob = &r["recipients"][0];
    assert_eq!(bob["recipient"], "bob@example.test");
    assert_eq!(bob["outcome"], "challenge");
    assert_eq!(bob["held"], true);
    assert_eq!(bob["tls"]["status"], "secure");
    let verification: Vec<&str> = bob["verification"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        verification,
        vec![
            "recipient notified by email to bob@example.test (Stalwart queue id 4bedcdc36e006bf)",
            "verification code sent by SMS to +316*****678",
            "wrong verification code (2 attempts left)",
            &format!(
                "verification succeeded; verified until {}",
                time::rfc3339(now + 90 * 86_400)
            ),
        ]
    );
    assert!(bob["released"]
        .as_str()
        .unwrap()
        .contains("queue id 341953999999999999"));
    let d = &bob["deliveries"][0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["mx"], "mx.example.test");
    assert_eq!(d["remote_ip"], "127.0.0.2");
    assert_eq!(d["tls_version"], "TLSv1_3");
    assert_eq!(d["tls_cipher"], "TLS13_AES_256_GCM_SHA384");
    assert_eq!(d["dane"], "authentication-success");
    assert_eq!(d["code"], 250);
    assert_eq!(d["reply"], "2.0.0 Ok: queued as 4Xyz");
    assert_eq!(d["queue_id"], "341953999999999999");

    // In the order things happened (not the order they arrived).
    let kinds: Vec<String> = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let k = t["kind"].as_str().unwrap();
            if k == "delivery" {
                t["summary"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            } else {
                k.to_string()
            }
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "decision",
            "held",
            "notification_sent",
            "sms_sent",
            "code_failed",
            "code_succeeded",
            "released",
            "delivery.connect",
            "delivery.start-tls",
            "dane.authentication-success",
            "delivery.delivered",
        ]
    );

    // The same report as text and HTML.
    for (format, needles) in [
        (
            "text",
            vec![
                "decision: challenge",
                "delivery: delivered",
                "TLSv1_3 TLS13_AES_256_GCM_SHA384",
            ],
        ),
        (
            "html",
            vec![
                "<h1>Proof of delivery: h-",
                "<td>TLSv1_3</td>",
                "+316*****678",
            ],
        ),
    ] {
        let reply = gw
            .request(
                Method::GET,
                &format!("/v1/admin/audit/report/{message}?format={format}"),
                Some(ADMIN_TOKEN),
                vec![],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let text = String::from_utf8(reply.body).unwrap();
        for n in needles {
            assert!(text.contains(n), "{format} report lacks {n:?}:\n{text}");
        }
    }
    assert!(gw.gw.store.verify_audit().await.unwrap().ok());
}

both_backends!(
    real_fixture_is_recorded_and_correlated,
    wrong_or_missing_signature_is_401_and_records_nothing,
    malformed_payload_is_400_and_records_nothing,
    duplicate_events_are_recorded_once,
    report_shows_held_verified_released_delivered_in_order,
    one_delivery_with_its_dsn_is_reported_once,
    deferred_then_delivered_shows_each_recipients_standing,
    hooks_and_deliveries_at_once_are_recorded_exactly,
    a_large_delivery_is_written_in_parts_exactly,
    dedup_keys_last_the_window_across_the_upgrade,
);

/// Dedup keys live under their event's time (migration 0007): a re-sent event is recognised for the
/// dedup window after its time and its key deleted after it, by the event's time, not by when it came
/// in. A key recorded before the migration, in the old `webhook_seen`, is recognised as well until it
/// is out of the window; then that table is emptied.
async fn dedup_keys_last_the_window_across_the_upgrade(b: Backend) {
    use stalwart_nta7516::{audit::delivery::dedup_key, stalwart::webhook, store::Store};
    const W: i64 = stalwart_nta7516::store::audit::DEDUP_WINDOW;
    let gw = gateway(b).await;
    verified(&gw, &["bob@example.test"]).await;
    let message = hook_with_queue(&gw, 7777, &["bob@example.test"]).await;
    let event = |n: u64, at: &str| -> webhook::Event {
        serde_json::from_value(json!({
            "id": format!("{n}"), "createdAt": at, "type": "delivery.attempt-start",
            "data": { "queueId": 7777, "attempt": n },
        }))
        .unwrap()
    };
    let (legacy, early, late) = (
        event(1, "2026-11-22T08:00:00Z"),
        event(2, "2026-11-22T08:00:00Z"),
        event(3, "2026-11-24T08:00:00Z"),
    );
    let t0 = early.created_unix().unwrap();
    // Recorded by the version before: its key in webhook_seen, received a second after its time.
    sqlx::query("INSERT INTO webhook_seen (key, received_at) VALUES ($1, $2)")
        .bind(dedup_key(&legacy))
        .bind(t0 + 1)
        .execute(gw.gw.store.pool())
        .await
        .unwrap();
    // The upgraded gateway (the old table is read at start).
    let store = Store::connect(&gw.gw.config.storage.url, 2).await.unwrap();
    let all = || vec![legacy.clone(), early.clone(), late.clone()];
    let counts = |i: stalwart_nta7516::store::audit::Intake| (i.recorded, i.duplicates);
    let first = store.record_webhook(all(), t0 + 5).await.unwrap();
    assert_eq!(counts(first), (2, 1), "the legacy key is recognised");
    let again = store.record_webhook(all(), t0 + 9).await.unwrap();
    assert_eq!(counts(again), (0, 3), "a re-sent batch records nothing");

    assert_eq!(store.purge_webhook_keys(t0 + W - 1).await.unwrap(), 0);
    let resent = store.record_webhook(all(), t0 + W - 1).await.unwrap();
    assert_eq!(counts(resent), (0, 3), "still inside the window");
    // Out of the window: the two events of 08:00 in webhook_keys (the legacy event's key went there
    // too when it was re-sent) and the legacy key in webhook_seen; the later event's key stays.
    assert_eq!(store.purge_webhook_keys(t0 + W + 2).await.unwrap(), 3);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_seen")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "the old table is emptied");
    let late_again = store
        .record_webhook(vec![late.clone()], t0 + W + 3)
        .await
        .unwrap();
    assert_eq!(counts(late_again), (0, 1));
    let v = store.verify_audit().await.unwrap();
    assert!(v.ok(), "{:?}", v.findings);
    assert_eq!(delivery_records(&gw, &message).await.len(), 2);
}

/// A delivery of 131 events is written in parts (hooks may commit between them): the intake counts
/// over all parts, a duplicate in a later part of an event in the first is recognised, and the batch
/// re-sent records nothing new.
async fn a_large_delivery_is_written_in_parts_exactly(b: Backend) {
    let gw = gateway(b).await;
    verified(&gw, &["bob@example.test"]).await;
    let message = hook_with_queue(&gw, 4242, &["bob@example.test"]).await;
    let event = |i: u64| {
        json!({
            "id": format!("{i}"),
            "createdAt": "2026-11-22T08:00:00Z",
            "type": "delivery.attempt-start",
            "data": { "queueId": 4242, "attempt": i },
        })
    };
    let mut events: Vec<Value> = (0..130).map(event).collect();
    events.push(event(3));
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let first = signed(&gw, &body).await.json();
    assert_eq!(
        (first["recorded"].as_u64(), first["duplicates"].as_u64()),
        (Some(130), Some(1)),
        "{first}"
    );
    let again = signed(&gw, &body).await.json();
    assert_eq!(
        (again["recorded"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(131)),
        "{again}"
    );
    assert_eq!(delivery_records(&gw, &message).await.len(), 130);
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert!(v.ok(), "{:?}", v.findings);
}

/// The group writer puts hooks and webhook deliveries that arrive together in one transaction: 16
/// deliveries, each posted twice at once, while 8 more hooks come in. Every delivery is recorded once,
/// under its own message, every hook's decision is there, and the chain is one.
async fn hooks_and_deliveries_at_once_are_recorded_exactly(b: Backend) {
    use futures_util::future::join_all;
    let gw = gateway(b).await;
    let rcpt = |i: u64| format!("r{i}@example.test");
    let all: Vec<String> = (0..24).map(rcpt).collect();
    verified(&gw, &all.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let first = join_all((0..16).map(|i| {
        let to = rcpt(i);
        let gw = &gw;
        async move { hook_with_queue(gw, 1000 + i, &[to.as_str()]).await }
    }))
    .await;
    let batch = |i: u64| {
        let event = json!({
            "id": format!("{i}"),
            "createdAt": "2026-11-22T08:00:00Z",
            "type": "delivery.delivered",
            "data": { "queueId": 1000 + i, "to": rcpt(i), "hostname": "mx.example.test", "code": 250 },
        });
        serde_json::to_vec(&json!({ "events": [event] })).unwrap()
    };
    let posts = join_all((0..32).map(|k| {
        let (gw, body) = (&gw, batch(k / 2));
        async move { signed(gw, &body).await.json() }
    }));
    let more = join_all((16..24).map(|i| {
        let to = rcpt(i);
        let gw = &gw;
        async move { hook_with_queue(gw, 1000 + i, &[to.as_str()]).await }
    }));
    let (intakes, later) = tokio::join!(posts, more);
    let sum = |key: &str| {
        intakes
            .iter()
            .map(|v| v[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        (sum("recorded"), sum("duplicates")),
        (16, 16),
        "{intakes:?}"
    );
    assert_eq!(sum("waiting"), 0);
    for (i, message) in first.iter().enumerate() {
        let records = delivery_records(&gw, message).await;
        assert_eq!(records.len(), 1, "{message}: {records:?}");
        assert_eq!(
            records[0].recipient.as_deref(),
            Some(rcpt(i as u64).as_str())
        );
    }
    for message in &later {
        assert!(delivery_records(&gw, message).await.is_empty());
    }
    assert_eq!(gw.count("decisions").await, 24);
    let v = gw.gw.store.verify_audit().await.unwrap();
    assert!(v.ok(), "{:?}", v.findings);
    assert_eq!(v.records, 24 + 16, "24 decisions, 16 deliveries");
}

/// Stalwart reports one delivery as `delivery.delivered` ("OK queued") and `delivery.dsn-success`
/// ("OK") for the same recipient, span and queue id (the real payload): the report shows one delivery,
/// with the DSN attached.
async fn one_delivery_with_its_dsn_is_reported_once(b: Backend) {
    let gw = Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(TlsTable::new(&[("good.test", TlsStatus::Secure)]))
        .start()
        .await;
    let rcpt = "cap1@good.test";
    verified(&gw, &[rcpt]).await;
    let message = hook_with_queue(&gw, 343588388458201367, &[rcpt]).await;
    let reply = signed(&gw, &raw("webhook-events-delivered-and-dsn-success.json")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let outcomes: Vec<_> = delivery_records(&gw, &message)
        .await
        .into_iter()
        .filter(|r| {
            r.details.contains("delivery.delivered") || r.details.contains("delivery.dsn-success")
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "both events are kept as evidence");
    let r = gw
        .request(
            Method::GET,
            &format!("/v1/admin/audit/report/{message}"),
            Some(ADMIN_TOKEN),
            vec![],
        )
        .await
        .json();
    let deliveries = r["recipients"][0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["status"], "delivered");
    assert_eq!(deliveries[0]["dsn"], "success");
    assert_eq!(deliveries[0]["reply"], "OK queued");
    assert_eq!(deliveries[0]["mx"], "mx.good.test");
    let text = gw
        .request(
            Method::GET,
            &format!("/v1/admin/audit/report/{message}?format=text"),
            Some(ADMIN_TOKEN),
            vec![],
        )
        .await;
    let text = String::from_utf8_lossy(&text.body).to_string();
    assert_eq!(text.matches("  delivery: ").count(), 1, "{text}");
    assert!(text.contains("delivered (DSN success)"), "{text}");
}

/// The report's standing per recipient: after the real deferral (every MX failed STARTTLS
/// verification; `queue.rescheduled` lists both recipients with the next retry) both are deferred with
/// the retry time and the error; after a later attempt delivers to bob, bob is delivered (with that
/// attempt's MX and TLS) and carol still deferred.
async fn deferred_then_delivered_shows_each_recipients_standing(b: Backend) {
    let gw = gateway(b).await;
    verified(&gw, &["bob@example.test", "carol@example.test"]).await;
    let queue = 341953382017139509u64;
    let message = hook_with_queue(&gw, queue, &["bob@example.test", "carol@example.test"]).await;
    let reply = signed(&gw, &raw("webhook-events-delivery-attempt.json")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let r = report_json(&gw, &message).await;
    for rcpt in &r["recipients"].as_array().unwrap()[..2] {
        let st = &rcpt["standing"];
        assert_eq!(st["state"], "deferred", "{rcpt}");
        assert_eq!(st["next_retry"], "2026-11-22T08:29:59Z");
        assert!(
            st["last_error"].as_str().unwrap().contains("UnknownIssuer"),
            "{st}"
        );
    }
    // The retry delivers to bob (a later span), over TLS 1.3 to mx.example.test.
    let span = 341953999999999001u64;
    let ev = |id: &str, kind: &str, data: Value| json!({"id": id, "createdAt": "2026-11-22T08:30:05Z", "type": kind, "data": data});
    let base =
        json!({"spanId": span, "queueId": queue, "queueName": "remote", "from": "alice@zorg.test"});
    let with = |extra: Value| {
        let mut d = base.clone();
        d.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        d
    };
    let body = json!({"events": [
        ev("9001", "delivery.connect", with(json!({"hostname": "mx.example.test", "remoteIp": "127.0.0.2"}))),
        ev("9002", "delivery.start-tls", with(json!({"hostname": "mx.example.test", "version": "TLSv1_3", "details": "TLS13_AES_256_GCM_SHA384"}))),
        ev("9003", "delivery.delivered", with(json!({"hostname": "mx.example.test", "to": "bob@example.test", "code": 250, "details": "OK queued"}))),
        ev("9004", "delivery.dsn-success", with(json!({"hostname": "mx.example.test", "to": "bob@example.test", "code": 250, "details": "OK"}))),
        ev("9005", "queue.rescheduled", with(json!({"nextRetry": "2026-11-22T08:40:05Z", "to": ["carol@example.test"]}))),
    ]});
    let reply = signed(&gw, &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let r = report_json(&gw, &message).await;
    let by = |who: &str| {
        r["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["recipient"] == who)
            .unwrap()
            .clone()
    };
    let bob = by("bob@example.test");
    assert_eq!(bob["standing"]["state"], "delivered", "{bob}");
    assert_eq!(bob["standing"]["mx"], "mx.example.test");
    let delivered: Vec<&Value> = bob["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "delivered")
        .collect();
    assert_eq!(delivered.len(), 1, "one delivery, its DSN attached: {bob}");
    assert_eq!(delivered[0]["tls_version"], "TLSv1_3");
    assert_eq!(delivered[0]["dsn"], "success");
    let carol = by("carol@example.test");
    assert_eq!(carol["standing"]["state"], "deferred", "{carol}");
    assert_eq!(carol["standing"]["next_retry"], "2026-11-22T08:40:05Z");
}

async fn report_json(gw: &TestGateway, message: &str) -> Value {
    let path = format!("/v1/admin/audit/report/{message}");
    gw.request(Method::GET, &path, Some(ADMIN_TOKEN), vec![])
        .await
        .json()
}

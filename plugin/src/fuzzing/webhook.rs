//! `webhook`: the body of `POST /v1/stalwart-events` → the typed batch, its check before recording, the
//! per-event fields the store reads (queue id, time, recipient, duplicate key, audit record) and the
//! signature over the raw body.

use crate::{
    audit::delivery::{self, Correlation},
    http::events::check_batch,
    stalwart::webhook::{sign, signature_ok, Event, Payload},
    time,
};

pub fn webhook(data: &[u8]) {
    signature(data);
    let Ok(payload) = serde_json::from_slice::<Payload>(data) else {
        return;
    };
    let json = serde_json::to_string(&payload).expect("a parsed batch serialises");
    let again: Payload = serde_json::from_str(&json).expect("a serialised batch parses");
    assert_eq!(
        serde_json::to_string(&again).expect("serialises"),
        json,
        "serialise → parse → serialise is not a fixed point"
    );
    let checked = check_batch(&payload.events);
    for (ev, reparsed) in payload.events.iter().zip(&again.events) {
        event(ev, reparsed, checked.is_ok());
    }
}

/// An event as the store reads it. `batch_ok`: the batch passed [`check_batch`].
fn event(ev: &Event, reparsed: &Event, batch_ok: bool) {
    // The webhook_unmatched copy (serialised, parsed later) is the same event.
    assert_eq!(
        delivery::dedup_key(ev),
        delivery::dedup_key(reparsed),
        "the duplicate key changes when the event is stored and read back"
    );
    let recorded = delivery::is_recorded(&ev.kind);
    let queue_id = ev.queue_id();
    let at = ev.created_unix();
    if recorded && batch_ok {
        assert!(
            queue_id.is_ok() && at.is_ok(),
            "a bad event passed the check"
        );
    }
    if let Ok(t) = at {
        // Years 0000–9999 print as RFC 3339 and read back.
        if (-62_167_219_200..=253_402_300_799).contains(&t) {
            assert_eq!(time::parse_rfc3339(&time::rfc3339(t)), Some(t));
        }
    }
    if let (true, Ok(Some(q))) = (recorded, queue_id) {
        let corr = Correlation {
            message_ref: "h-fuzz".into(),
            sha256: None,
            sender: None,
        };
        let entry = delivery::to_audit(ev, q, at.unwrap_or(0), &corr).entry();
        assert_eq!(entry.recipient.as_deref(), ev.recipient());
        serde_json::to_string(&entry.details).expect("an audit record's details serialise");
    }
    let _ = ev.recipient();
}

/// The signature of the raw body verifies, and not for another body.
fn signature(data: &[u8]) {
    let sig = sign("fuzz-key", data);
    assert!(signature_ok("fuzz-key", data, Some(&sig)));
    assert!(!signature_ok("other-key", data, Some(&sig)));
    let mut tampered = data.to_vec();
    match tampered.last_mut() {
        Some(b) => *b ^= 1,
        None => tampered.push(0),
    }
    assert!(!signature_ok("fuzz-key", &tampered, Some(&sig)));
    let _ = signature_ok("fuzz-key", data, std::str::from_utf8(data).ok());
}

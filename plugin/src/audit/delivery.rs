//! Which of Stalwart's webhook events become audit records, and how: delivery evidence (MX lookup,
//! connection, STARTTLS version and cipher, DANE, MTA-STS) and outcomes (delivered, rejected, DSNs,
//! expiry), correlated with a message by queue id. Everything else (raw SMTP transcripts, EHLO, inbound
//! and hook events) is ignored.

use ring::digest;
use serde_json::Value;

use super::Event;
use crate::stalwart::webhook;

/// The event types recorded.
pub const RECORDED: &[&str] = &[
    "delivery.attempt-start",
    "delivery.attempt-end",
    "delivery.mx-lookup",
    "delivery.mx-lookup-failed",
    "delivery.null-mx",
    "delivery.connect",
    "delivery.connect-error",
    "delivery.start-tls",
    "delivery.start-tls-unavailable",
    "delivery.start-tls-error",
    "delivery.start-tls-disabled",
    "delivery.implicit-tls-error",
    "dane.authentication-success",
    "dane.authentication-failure",
    "dane.tlsa-record-match",
    "dane.tlsa-record-fetch",
    "dane.tlsa-record-not-found",
    "dane.tlsa-record-not-dnssec-signed",
    "dane.tlsa-record-fetch-error",
    "dane.tlsa-record-invalid",
    "dane.bogus-dnssec-record",
    "mta-sts.policy-fetch",
    "mta-sts.policy-not-found",
    "mta-sts.policy-fetch-error",
    "mta-sts.invalid-policy",
    "mta-sts.authorized",
    "mta-sts.not-authorized",
    "delivery.delivered",
    "delivery.rcpt-to-rejected",
    "delivery.rcpt-to-failed",
    "delivery.message-rejected",
    "delivery.dsn-success",
    "delivery.dsn-temp-fail",
    "delivery.dsn-perm-fail",
    "delivery.failed",
    "delivery.completed",
    "queue.rescheduled",
];

pub fn is_recorded(kind: &str) -> bool {
    RECORDED.contains(&kind)
}

/// The message a queue id belongs to.
#[derive(Debug, Clone)]
pub struct Correlation {
    pub message_ref: String,
    pub sha256: Option<String>,
    pub sender: Option<String>,
}

/// Duplicate detection: the same event sent twice (Stalwart retries a batch after a non-2xx answer)
/// has the same type, time and data. Ids are not used: v0.15.5's are not unique.
pub fn dedup_key(ev: &webhook::Event) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        ev.kind.as_bytes(),
        ev.created_at.as_bytes(),
        serde_json::to_string(&ev.data)
            .unwrap_or_default()
            .as_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    hex::encode(ctx.finish())
}

/// The audit event for a recorded webhook event. `data` is kept as Stalwart sent it, except the span's
/// copy of the sender (the record's own column) and of its recipient list — kept only where it is the
/// fact: `queue.rescheduled` lists the recipients still pending.
pub fn to_audit(ev: &webhook::Event, queue_id: u64, at: i64, corr: &Correlation) -> Event {
    let mut data = ev.data.clone();
    data.remove("from");
    if data.get("to").is_some_and(Value::is_array) && ev.kind != "queue.rescheduled" {
        data.remove("to");
    }
    Event::Delivery {
        message_ref: corr.message_ref.clone(),
        sha256: corr.sha256.clone(),
        sender: corr.sender.clone(),
        recipient: ev.recipient().map(str::to_string),
        at,
        event_type: ev.kind.clone(),
        event_id: ev.id.clone(),
        queue_id,
        data: Value::Object(data),
    }
}

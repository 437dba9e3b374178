//! Stalwart's webhook (telemetry event push) payload: `{"events":[{"id","createdAt","type","data":{…}}]}`,
//! signed with `X-Signature: base64(HMAC-SHA256(key, raw body))` (standard base64 with padding; the key
//! is the configured string's bytes — `crates/common/src/telemetry/webhooks/mod.rs`).
//!
//! `data` holds the event's keys and its delivery span's keys, camelCase; `queueId` is a decimal u64
//! (the hook's `context.queue.id` is the same number in hex). Event ids are not unique in v0.15.5.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Payload {
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Event {
    /// v0.15.5: timestamp + type id, as a string; kept as sent.
    pub id: Value,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Map<String, Value>,
}

impl Event {
    /// `queueId`, when present. A present but non-u64 value is an error.
    pub fn queue_id(&self) -> Result<Option<u64>, String> {
        match self.data.get("queueId") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                format!(
                    "event {} ({}): queueId {v} is not a u64",
                    self.id, self.kind
                )
            }),
        }
    }

    /// The single recipient of per-recipient events (`to` as a string); span-level events carry the
    /// list of pending recipients instead, which names no single one.
    pub fn recipient(&self) -> Option<&str> {
        self.data.get("to").and_then(Value::as_str)
    }

    /// `createdAt` as unix seconds.
    pub fn created_unix(&self) -> Result<i64, String> {
        crate::time::parse_rfc3339(&self.created_at).ok_or_else(|| {
            format!(
                "event {} ({}): createdAt {:?} is not an RFC 3339 time",
                self.id, self.kind, self.created_at
            )
        })
    }
}

/// Verifies `X-Signature` against the raw body (constant time).
pub fn signature_ok(key: &str, body: &[u8], presented: Option<&str>) -> bool {
    use base64::Engine;
    let Some(presented) = presented else {
        return false;
    };
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(presented.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    ring::hmac::verify(&key, body, &tag).is_ok()
}

/// What Stalwart would put in `X-Signature` for this body (tests, tools).
pub fn sign(key: &str, body: &[u8]) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, body).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_tamper() {
        let body = br#"{"events":[]}"#;
        let sig = sign("k", body);
        assert!(signature_ok("k", body, Some(&sig)));
        assert!(!signature_ok("other", body, Some(&sig)));
        assert!(!signature_ok("k", br#"{"events":[ ]}"#, Some(&sig)));
        assert!(!signature_ok("k", body, None));
        assert!(!signature_ok("k", body, Some("not base64!")));
    }
}

//! A stored audit record and its hash.
//!
//! `hash = SHA-256("nta7516-audit-v1" ‖ field…)` where each field is encoded as `0x00` (absent) or
//! `0x01 ‖ u64 big-endian length ‖ UTF-8 bytes`, in this order: time (decimal unix seconds), kind,
//! message ref, message SHA-256, sender, recipient, details (the stored JSON text), prev_hash. The
//! sequence number is not hashed: the chain of `prev_hash` links fixes the order, and a dense `seq`
//! is checked separately (so renumbering is reported as what it hides: an insertion or a deletion).

use ring::digest;
use serde::{Deserialize, Serialize};

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub message_ref: Option<String>,
    pub message_sha256: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// JSON text, exactly as stored and hashed.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    /// The hash the record's content and `prev_hash` call for.
    pub fn compute_hash(&self) -> String {
        hash_fields(
            self.at,
            &self.kind,
            self.message_ref.as_deref(),
            self.message_sha256.as_deref(),
            self.sender.as_deref(),
            self.recipient.as_deref(),
            &self.details,
            &self.prev_hash,
        )
    }

    /// Whether the stored hash matches the content.
    pub fn is_intact(&self) -> bool {
        crate::secrets::equal(self.compute_hash().as_bytes(), self.hash.as_bytes())
    }

    /// The details as JSON (`null` when the stored text is not JSON, which only tampering produces).
    pub fn details_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.details).unwrap_or(serde_json::Value::Null)
    }
}

#[allow(clippy::too_many_arguments)]
pub fn hash_fields(
    at: i64,
    kind: &str,
    message_ref: Option<&str>,
    message_sha256: Option<&str>,
    sender: Option<&str>,
    recipient: Option<&str>,
    details: &str,
    prev_hash: &str,
) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"nta7516-audit-v1");
    let at = at.to_string();
    for field in [
        Some(at.as_str()),
        Some(kind),
        message_ref,
        message_sha256,
        sender,
        recipient,
        Some(details),
        Some(prev_hash),
    ] {
        match field {
            None => ctx.update(&[0]),
            Some(v) => {
                ctx.update(&[1]);
                ctx.update(&(v.len() as u64).to_be_bytes());
                ctx.update(v.as_bytes());
            }
        }
    }
    hex::encode(ctx.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let a = hash_fields(1, "k", None, None, None, None, "{}", GENESIS);
        let b = hash_fields(1, "k", Some(""), None, None, None, "{}", GENESIS);
        assert_ne!(a, b);
        // Field boundaries are unambiguous.
        let c = hash_fields(1, "k", Some("ab"), Some("c"), None, None, "{}", GENESIS);
        let d = hash_fields(1, "k", Some("a"), Some("bc"), None, None, "{}", GENESIS);
        assert_ne!(c, d);
    }
}

//! The events the audit log records, as typed values. Callers build an [`Event`]; the store turns it
//! into a hash-chained record ([`Event::entry`] gives the columns) inside the caller's transaction.

use serde::Serialize;
use serde_json::{json, Value};

use crate::policy::{Outcome, Reason, TlsFacts};

/// A phone number in E.164 that is only ever stored masked: country code and first digit, then `*`,
/// then the last three digits (`+316*****678`). Built from the full number so no caller can forget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedPhone(String);

impl MaskedPhone {
    pub fn from_e164(phone: &str) -> MaskedPhone {
        let chars: Vec<char> = phone.chars().collect();
        if chars.len() <= 7 {
            return MaskedPhone("*".repeat(chars.len()));
        }
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 3..].iter().collect();
        MaskedPhone(format!("{head}{}{tail}", "*".repeat(chars.len() - 7)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a released message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseTarget {
    /// Re-submitted to Stalwart for delivery to the recipient's mailbox.
    Inbox,
    /// Made readable on the portal.
    Portal,
}

/// One auditable event. Every variant names the message (where there is one) and the recipient; the
/// message content is never part of an event, only its SHA-256.
#[derive(Debug, Clone)]
pub enum Event {
    /// The per-recipient decision at the MTA hook, with its chain of reasons and the SmartTLS evidence.
    Decision {
        message_ref: String,
        sha256: String,
        sender: String,
        recipient: String,
        /// Stalwart's queue id as the hook gives it (lower-case hex).
        queue_id: Option<String>,
        outcome: Outcome,
        reasons: Vec<Reason>,
        tls: Option<TlsFacts>,
    },
    /// An encrypted copy is held for this recipient.
    Held {
        message_ref: String,
        sha256: String,
        sender: String,
        recipient: String,
        outcome: Outcome,
        challenge_id: Option<String>,
        expires_at: i64,
    },
    /// The recipient was told (by mail) that a secure message waits.
    NotificationSent {
        message_ref: String,
        recipient: String,
        channel: String,
    },
    /// A verification code went out by SMS.
    SmsSent {
        message_ref: Option<String>,
        recipient: String,
        challenge_id: String,
        phone: MaskedPhone,
    },
    /// The recipient entered the right code.
    CodeSucceeded {
        message_ref: Option<String>,
        recipient: String,
        challenge_id: String,
        verified_until: i64,
    },
    /// A wrong code.
    CodeFailed {
        message_ref: Option<String>,
        recipient: String,
        challenge_id: String,
        attempts_left: u32,
    },
    /// A held message was released; for the inbox with the queue id Stalwart gave the re-submission
    /// (its webhook events are then correlated with this message).
    Released {
        message_ref: String,
        recipient: String,
        target: ReleaseTarget,
        queue_id: Option<u64>,
    },
    PortalViewed {
        message_ref: String,
        recipient: String,
    },
    PortalDownloaded {
        message_ref: String,
        recipient: String,
        /// What was downloaded (file name of the part, or `message.eml`).
        part: String,
    },
    /// The hold ran out before release; the content is deleted.
    Expired {
        message_ref: String,
        recipient: String,
    },
    /// A Stalwart delivery event (webhook), correlated with a message by queue id. `at` is the event's
    /// own time (`createdAt`).
    Delivery {
        message_ref: String,
        sha256: Option<String>,
        sender: Option<String>,
        recipient: Option<String>,
        at: i64,
        /// Stalwart's event type, e.g. `delivery.delivered`.
        event_type: String,
        event_id: Value,
        queue_id: u64,
        /// The event's data, as Stalwart sent it.
        data: Value,
    },
    /// A change made through the admin API or CLI.
    Admin {
        actor: String,
        action: String,
        target: String,
        /// The message concerned, when the change is about one (a hold).
        message_ref: Option<String>,
        details: Value,
    },
}

/// The columns of an audit record before chaining.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it happened (unix seconds); `None` = when it is appended.
    pub at: Option<i64>,
    pub kind: &'static str,
    pub message_ref: Option<String>,
    pub message_sha256: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub details: Value,
}

impl Event {
    /// The stable kind name stored with the record.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Decision { .. } => "decision",
            Event::Held { .. } => "held",
            Event::NotificationSent { .. } => "notification_sent",
            Event::SmsSent { .. } => "sms_sent",
            Event::CodeSucceeded { .. } => "code_succeeded",
            Event::CodeFailed { .. } => "code_failed",
            Event::Released { .. } => "released",
            Event::PortalViewed { .. } => "portal_viewed",
            Event::PortalDownloaded { .. } => "portal_downloaded",
            Event::Expired { .. } => "expired",
            Event::Delivery { .. } => "delivery",
            Event::Admin { .. } => "admin",
        }
    }

    pub fn entry(&self) -> Entry {
        let kind = self.kind();
        let plain = |message_ref: Option<&String>, recipient: &str, details: Value| Entry {
            at: None,
            kind,
            message_ref: message_ref.cloned(),
            message_sha256: None,
            sender: None,
            recipient: Some(recipient.to_string()),
            details,
        };
        match self {
            Event::Decision {
                message_ref,
                sha256,
                sender,
                recipient,
                queue_id,
                outcome,
                reasons,
                tls,
            } => Entry {
                at: None,
                kind,
                message_ref: Some(message_ref.clone()),
                message_sha256: Some(sha256.clone()),
                sender: Some(sender.clone()),
                recipient: Some(recipient.clone()),
                details: json!({
                    "outcome": outcome,
                    "reasons": reasons,
                    "tls": tls,
                    "queue_id": queue_id.as_deref().and_then(|h| u64::from_str_radix(h, 16).ok()).map(|q| q.to_string()),
                    "queue_id_hex": queue_id,
                }),
            },
            Event::Held {
                message_ref,
                sha256,
                sender,
                recipient,
                outcome,
                challenge_id,
                expires_at,
            } => Entry {
                at: None,
                kind,
                message_ref: Some(message_ref.clone()),
                message_sha256: Some(sha256.clone()),
                sender: Some(sender.clone()),
                recipient: Some(recipient.clone()),
                details: json!({
                    "outcome": outcome,
                    "challenge_id": challenge_id,
                    "expires_at": crate::time::rfc3339(*expires_at),
                }),
            },
            Event::NotificationSent {
                message_ref,
                recipient,
                channel,
            } => plain(Some(message_ref), recipient, json!({ "channel": channel })),
            Event::SmsSent {
                message_ref,
                recipient,
                challenge_id,
                phone,
            } => plain(
                message_ref.as_ref(),
                recipient,
                json!({ "challenge_id": challenge_id, "phone": phone }),
            ),
            Event::CodeSucceeded {
                message_ref,
                recipient,
                challenge_id,
                verified_until,
            } => plain(
                message_ref.as_ref(),
                recipient,
                json!({
                    "challenge_id": challenge_id,
                    "verified_until": crate::time::rfc3339(*verified_until),
                }),
            ),
            Event::CodeFailed {
                message_ref,
                recipient,
                challenge_id,
                attempts_left,
            } => plain(
                message_ref.as_ref(),
                recipient,
                json!({ "challenge_id": challenge_id, "attempts_left": attempts_left }),
            ),
            Event::Released {
                message_ref,
                recipient,
                target,
                queue_id,
            } => plain(
                Some(message_ref),
                recipient,
                json!({
                    "target": target,
                    "queue_id": queue_id.map(|q| q.to_string()),
                    "queue_id_hex": queue_id.map(|q| format!("{q:x}")),
                }),
            ),
            Event::PortalViewed {
                message_ref,
                recipient,
            } => plain(Some(message_ref), recipient, json!({})),
            Event::PortalDownloaded {
                message_ref,
                recipient,
                part,
            } => plain(Some(message_ref), recipient, json!({ "part": part })),
            Event::Expired {
                message_ref,
                recipient,
            } => plain(Some(message_ref), recipient, json!({})),
            Event::Delivery {
                message_ref,
                sha256,
                sender,
                recipient,
                at,
                event_type,
                event_id,
                queue_id,
                data,
            } => Entry {
                at: Some(*at),
                kind,
                message_ref: Some(message_ref.clone()),
                message_sha256: sha256.clone(),
                sender: sender.clone(),
                recipient: recipient.clone(),
                details: json!({
                    "event": event_type,
                    "event_id": event_id,
                    "queue_id": queue_id.to_string(),
                    "data": data,
                }),
            },
            Event::Admin {
                actor,
                action,
                target,
                message_ref,
                details,
            } => Entry {
                at: None,
                kind,
                message_ref: message_ref.clone(),
                message_sha256: None,
                sender: None,
                recipient: None,
                details: json!({
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "details": details,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked() {
        assert_eq!(
            MaskedPhone::from_e164("+31612345678").as_str(),
            "+316*****678"
        );
        assert_eq!(MaskedPhone::from_e164("+3161").as_str(), "*****");
    }

    #[test]
    fn released_records_queue_id_in_both_notations() {
        let e = Event::Released {
            message_ref: "h-1".into(),
            recipient: "bob@example.test".into(),
            target: ReleaseTarget::Inbox,
            queue_id: Some(341953382017139509),
        }
        .entry();
        assert_eq!(e.details["queue_id"], "341953382017139509");
        assert_eq!(e.details["queue_id_hex"], "4bedcca08e00335");
    }
}

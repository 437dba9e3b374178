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

/// Which notification mail went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// To the recipient: a secure message waits, with the portal link.
    RecipientNotice,
    /// To the sender: please enter the recipient's mobile number (link).
    SenderPhoneRequest,
    /// To the sender: the message was not collected before its hold expired.
    SenderNotCollected,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::RecipientNotice => "recipient_notice",
            Notice::SenderPhoneRequest => "sender_phone_request",
            Notice::SenderNotCollected => "sender_not_collected",
        }
    }
}

/// Why an SMS did not go out (the provider's own text is not recorded: it may repeat the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsFailure {
    /// The provider answered and refused the message.
    Refused,
    /// The provider could not be reached (or timed out).
    Unreachable,
}

/// Where a recipient's mobile number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneSource {
    /// The sender's "enter the mobile number" page (link in the sender's mail).
    SenderLink,
    /// A `[sms:+…]` tag in the subject of the held message.
    SubjectTag,
}

/// What became of a number the sender gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneOutcome {
    /// Stored as the recipient's number.
    Recorded,
    /// Not stored: the recipient already has a number (never overwritten).
    AlreadyKnown,
    /// Not stored: not a valid E.164 number.
    Invalid,
    /// Not stored: a subject tag on a message held for several recipients (whose number is it?).
    Ambiguous,
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
    /// A notification mail about this message and recipient was accepted by Stalwart's notify
    /// listener: the recipient's notice, or a mail to the sender (`to`) about this recipient.
    NotificationSent {
        message_ref: String,
        recipient: String,
        notice: Notice,
        /// The address the mail went to.
        to: String,
        /// Stalwart's queue id of the notification (from its `250` reply).
        queue_id: Option<String>,
    },
    /// A verification code went out by SMS.
    SmsSent {
        message_ref: Option<String>,
        recipient: String,
        challenge_id: String,
        phone: MaskedPhone,
    },
    /// An SMS could not be sent; the hold is unchanged and the recipient is told to try again later.
    SmsFailed {
        message_ref: Option<String>,
        recipient: String,
        challenge_id: String,
        phone: MaskedPhone,
        failure: SmsFailure,
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
    /// Too many wrong codes: the challenge is locked, its messages stay held until they expire.
    ChallengeLocked {
        message_ref: Option<String>,
        recipient: String,
        challenge_id: String,
    },
    /// A mobile number for the recipient given by the sender (link form or subject tag), and what
    /// became of it. Only the masked number is recorded, and only when it was valid.
    PhoneNumber {
        message_ref: Option<String>,
        recipient: String,
        /// The sender who gave it.
        sender: String,
        source: PhoneSource,
        outcome: PhoneOutcome,
        phone: Option<MaskedPhone>,
    },
    /// A held message was released; for the inbox with the queue id Stalwart gave the re-submission
    /// (its webhook events are then correlated with this message).
    Released {
        message_ref: String,
        recipient: String,
        target: ReleaseTarget,
        queue_id: Option<u64>,
    },
    /// A release to the inbox did not go through: retried at `retry_at`, or, when Stalwart's answer was
    /// lost (`retry_at` none), left `uncertain` for the operator (re-sending could deliver twice).
    ReleaseFailed {
        message_ref: String,
        recipient: String,
        /// What went wrong (the release listener's reply or the connection error).
        error: String,
        retry_at: Option<i64>,
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
            Event::SmsFailed { .. } => "sms_failed",
            Event::CodeSucceeded { .. } => "code_succeeded",
            Event::CodeFailed { .. } => "code_failed",
            Event::ChallengeLocked { .. } => "challenge_locked",
            Event::PhoneNumber { .. } => "phone_number",
            Event::Released { .. } => "released",
            Event::ReleaseFailed { .. } => "release_failed",
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
                notice,
                to,
                queue_id,
            } => plain(
                Some(message_ref),
                recipient,
                json!({ "channel": "email", "notice": notice, "to": to, "queue_id": queue_id }),
            ),
            Event::SmsFailed {
                message_ref,
                recipient,
                challenge_id,
                phone,
                failure,
            } => plain(
                message_ref.as_ref(),
                recipient,
                json!({ "challenge_id": challenge_id, "phone": phone, "failure": failure }),
            ),
            Event::ChallengeLocked {
                message_ref,
                recipient,
                challenge_id,
            } => plain(
                message_ref.as_ref(),
                recipient,
                json!({ "challenge_id": challenge_id }),
            ),
            Event::PhoneNumber {
                message_ref,
                recipient,
                sender,
                source,
                outcome,
                phone,
            } => Entry {
                at: None,
                kind,
                message_ref: message_ref.clone(),
                message_sha256: None,
                sender: Some(sender.clone()),
                recipient: Some(recipient.clone()),
                details: json!({ "source": source, "outcome": outcome, "phone": phone }),
            },
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
            Event::ReleaseFailed {
                message_ref,
                recipient,
                error,
                retry_at,
            } => plain(
                Some(message_ref),
                recipient,
                json!({
                    "error": error,
                    "retry_at": retry_at.map(crate::time::rfc3339),
                    "next": if retry_at.is_some() { "retry" } else { "operator" },
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

//! The events the audit log records, as typed values. Callers build an [`Event`]; the store turns it
//! into a hash-chained record ([`Event::entry`] gives the columns) inside the caller's transaction.

use serde::Serialize;
use serde_json::{json, Value};

use crate::policy::{
    Action, Attachments, AuthResults, InboundReason, Outcome, Peer, Reason, SessionTls, TlsFacts,
};

/// What the gateway found and decided about one received message, for one of its recipients
/// (NTA 7516 6.4.2: the receipt of a message is logged).
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    #[serde(skip)]
    pub message_ref: String,
    #[serde(skip)]
    pub sha256: String,
    #[serde(skip)]
    pub sender: String,
    #[serde(skip)]
    pub recipient: String,
    /// Stalwart's queue id (lower-case hex).
    pub queue_id: Option<String>,
    pub client_ip: String,
    pub helo: String,
    /// The sending server's TLS; none for a plaintext session.
    pub tls: Option<SessionTls>,
    pub from_domain: String,
    pub auth: AuthResults,
    pub peer: Peer,
    pub action: Action,
    pub reasons: Vec<InboundReason>,
    /// Where a quarantined message went instead.
    pub quarantine_mailbox: Option<String>,
}

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
    /// To the sender: the message is held for secure delivery, with the withdraw link.
    SenderHoldConfirmation,
    /// To the sender: the recipient verified and the message reached their inbox or was first opened
    /// on the portal.
    SenderCollectionReceipt,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::RecipientNotice => "recipient_notice",
            Notice::SenderPhoneRequest => "sender_phone_request",
            Notice::SenderNotCollected => "sender_not_collected",
            Notice::SenderHoldConfirmation => "sender_hold_confirmation",
            Notice::SenderCollectionReceipt => "sender_collection_receipt",
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
    /// The `phone` column of a `stalwart-nta7516 bulk send` CSV, recorded before the messages went out.
    Bulk,
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
    /// Stored in place of the recipient's earlier, different number (`bulk send --update-phones`).
    Replaced,
}

/// Who withdrew a held message (NTA 7516 6.4.2: withdrawing a sent message is logged, by whom).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WithdrawnBy {
    /// The sender, through the withdraw link of the hold confirmation.
    Sender { address: String },
    /// An administrator (admin API or CLI) for the sender.
    Admin { actor: String },
}

impl WithdrawnBy {
    /// `sender a@b` / `admin cli:root`, for reports.
    pub fn text(&self) -> String {
        match self {
            WithdrawnBy::Sender { address } => format!("sender {address}"),
            WithdrawnBy::Admin { actor } => format!("admin {actor}"),
        }
    }
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
        /// Every attachment by secure link (recorded as `"attachments": "by_link"`; nothing is
        /// added when they stay attached, so earlier records keep their form).
        attachments: Attachments,
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
    /// A mobile number for the recipient given by the sender (link form, subject tag or bulk CSV), and what
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
    /// A message received from the internet passed the inbound hook (accepted, quarantined or refused).
    Received(Box<Receipt>),
    /// A hold was withdrawn before it was delivered or read; its content is erased once no other
    /// recipient needs it.
    Withdrawn {
        message_ref: String,
        recipient: String,
        sender: String,
        by: WithdrawnBy,
        /// The hold's state before (`held`, `releasing` or `portal`).
        from: &'static str,
    },
    /// A portal recipient wrote a reply to the message's sender (committed, to be submitted); the
    /// reply's size, attachment count and SHA-256, never its text or file names.
    PortalReply {
        message_ref: String,
        recipient: String,
        /// The original sender, whom the reply goes to.
        sender: String,
        reply_id: String,
        bytes: u64,
        attachments: u32,
        sha256: String,
    },
    /// Stalwart's release listener accepted a portal reply for the sender's mailbox.
    PortalReplySent {
        message_ref: String,
        recipient: String,
        sender: String,
        reply_id: String,
        /// Stalwart's queue id (from its `250` reply).
        queue_id: Option<String>,
    },
    /// A portal reply was not accepted: retried at `retry_at`, or, when Stalwart's answer was lost
    /// (`retry_at` none), left `uncertain` for the operator (sending again could deliver it twice).
    PortalReplyFailed {
        message_ref: String,
        recipient: String,
        sender: String,
        reply_id: String,
        error: String,
        retry_at: Option<i64>,
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

/// The kind of an audit record: one per [`Event`] variant, stored with the record by its stable name
/// ([`Kind::as_str`]) and used to filter audit queries ([`Kind::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Decision,
    Held,
    NotificationSent,
    SmsSent,
    SmsFailed,
    CodeSucceeded,
    CodeFailed,
    ChallengeLocked,
    PhoneNumber,
    Released,
    ReleaseFailed,
    PortalViewed,
    PortalDownloaded,
    Expired,
    Delivery,
    Admin,
    Received,
    Withdrawn,
    PortalReply,
    PortalReplySent,
    PortalReplyFailed,
}

impl Kind {
    /// Every kind, in the order of [`Event`].
    pub const ALL: [Kind; 21] = [
        Kind::Decision,
        Kind::Held,
        Kind::NotificationSent,
        Kind::SmsSent,
        Kind::SmsFailed,
        Kind::CodeSucceeded,
        Kind::CodeFailed,
        Kind::ChallengeLocked,
        Kind::PhoneNumber,
        Kind::Released,
        Kind::ReleaseFailed,
        Kind::PortalViewed,
        Kind::PortalDownloaded,
        Kind::Expired,
        Kind::Delivery,
        Kind::Admin,
        Kind::Received,
        Kind::Withdrawn,
        Kind::PortalReply,
        Kind::PortalReplySent,
        Kind::PortalReplyFailed,
    ];

    /// The stable name stored with the record (never change one: exports and reports read it).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::Received => "received",
            Kind::Held => "held",
            Kind::NotificationSent => "notification_sent",
            Kind::SmsSent => "sms_sent",
            Kind::SmsFailed => "sms_failed",
            Kind::CodeSucceeded => "code_succeeded",
            Kind::CodeFailed => "code_failed",
            Kind::ChallengeLocked => "challenge_locked",
            Kind::PhoneNumber => "phone_number",
            Kind::Released => "released",
            Kind::ReleaseFailed => "release_failed",
            Kind::PortalViewed => "portal_viewed",
            Kind::PortalDownloaded => "portal_downloaded",
            Kind::Expired => "expired",
            Kind::Delivery => "delivery",
            Kind::Admin => "admin",
            Kind::Withdrawn => "withdrawn",
            Kind::PortalReply => "portal_reply",
            Kind::PortalReplySent => "portal_reply_sent",
            Kind::PortalReplyFailed => "portal_reply_failed",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl Event {
    /// The stable kind name stored with the record.
    pub fn kind(&self) -> &'static str {
        self.record_kind().as_str()
    }

    pub fn record_kind(&self) -> Kind {
        match self {
            Event::Decision { .. } => Kind::Decision,
            Event::Received(_) => Kind::Received,
            Event::Held { .. } => Kind::Held,
            Event::NotificationSent { .. } => Kind::NotificationSent,
            Event::SmsSent { .. } => Kind::SmsSent,
            Event::SmsFailed { .. } => Kind::SmsFailed,
            Event::CodeSucceeded { .. } => Kind::CodeSucceeded,
            Event::CodeFailed { .. } => Kind::CodeFailed,
            Event::ChallengeLocked { .. } => Kind::ChallengeLocked,
            Event::PhoneNumber { .. } => Kind::PhoneNumber,
            Event::Released { .. } => Kind::Released,
            Event::ReleaseFailed { .. } => Kind::ReleaseFailed,
            Event::PortalViewed { .. } => Kind::PortalViewed,
            Event::PortalDownloaded { .. } => Kind::PortalDownloaded,
            Event::Expired { .. } => Kind::Expired,
            Event::Delivery { .. } => Kind::Delivery,
            Event::Admin { .. } => Kind::Admin,
            Event::Withdrawn { .. } => Kind::Withdrawn,
            Event::PortalReply { .. } => Kind::PortalReply,
            Event::PortalReplySent { .. } => Kind::PortalReplySent,
            Event::PortalReplyFailed { .. } => Kind::PortalReplyFailed,
        }
    }

    /// The record's columns: who and what it is about (`subject`) and what happened
    /// (`details`).
    pub fn entry(&self) -> Entry {
        let Subject {
            at,
            message_ref,
            message_sha256,
            sender,
            recipient,
        } = self.subject();
        Entry {
            at,
            kind: self.kind(),
            message_ref,
            message_sha256,
            sender,
            recipient,
            details: self.details(),
        }
    }

    /// The indexed columns: the message, sender and recipient the event is about (and for a delivery
    /// event its own time).
    fn subject(&self) -> Subject {
        match self {
            Event::Decision {
                message_ref,
                sha256,
                sender,
                recipient,
                ..
            }
            | Event::Held {
                message_ref,
                sha256,
                sender,
                recipient,
                ..
            } => Subject {
                message_sha256: Some(sha256.clone()),
                sender: Some(sender.clone()),
                ..Subject::recipient(Some(message_ref), recipient)
            },
            Event::Received(r) => Subject {
                message_sha256: Some(r.sha256.clone()),
                sender: Some(r.sender.clone()),
                ..Subject::recipient(Some(&r.message_ref), &r.recipient)
            },
            Event::NotificationSent {
                message_ref,
                recipient,
                ..
            }
            | Event::Released {
                message_ref,
                recipient,
                ..
            }
            | Event::ReleaseFailed {
                message_ref,
                recipient,
                ..
            }
            | Event::PortalViewed {
                message_ref,
                recipient,
            }
            | Event::PortalDownloaded {
                message_ref,
                recipient,
                ..
            }
            | Event::Expired {
                message_ref,
                recipient,
            } => Subject::recipient(Some(message_ref), recipient),
            Event::SmsSent {
                message_ref,
                recipient,
                ..
            }
            | Event::SmsFailed {
                message_ref,
                recipient,
                ..
            }
            | Event::CodeSucceeded {
                message_ref,
                recipient,
                ..
            }
            | Event::CodeFailed {
                message_ref,
                recipient,
                ..
            }
            | Event::ChallengeLocked {
                message_ref,
                recipient,
                ..
            } => Subject::recipient(message_ref.as_ref(), recipient),
            Event::PhoneNumber {
                message_ref,
                recipient,
                sender,
                ..
            } => Subject {
                sender: Some(sender.clone()),
                ..Subject::recipient(message_ref.as_ref(), recipient)
            },
            Event::Delivery {
                message_ref,
                sha256,
                sender,
                recipient,
                at,
                ..
            } => Subject {
                at: Some(*at),
                message_ref: Some(message_ref.clone()),
                message_sha256: sha256.clone(),
                sender: sender.clone(),
                recipient: recipient.clone(),
            },
            Event::Admin { message_ref, .. } => Subject {
                message_ref: message_ref.clone(),
                ..Subject::default()
            },
            Event::Withdrawn {
                message_ref,
                recipient,
                sender,
                ..
            } => Subject {
                sender: Some(sender.clone()),
                ..Subject::recipient(Some(message_ref), recipient)
            },
            Event::PortalReply { .. }
            | Event::PortalReplySent { .. }
            | Event::PortalReplyFailed { .. } => self.reply_subject(),
        }
    }

    /// The `details` JSON: what happened, per event (the format is part of the hash chain: never
    /// change a key of an existing event).
    fn details(&self) -> Value {
        use crate::time::rfc3339;
        match self {
            Event::Decision {
                queue_id,
                outcome,
                reasons,
                tls,
                attachments,
                ..
            } => {
                let mut d = json!({
                    "outcome": outcome,
                    "reasons": reasons,
                    "tls": tls,
                    "queue_id": queue_id.as_deref().and_then(|h| u64::from_str_radix(h, 16).ok()).map(|q| q.to_string()),
                    "queue_id_hex": queue_id,
                });
                if *attachments == Attachments::ByLink {
                    d["attachments"] = json!(attachments);
                }
                d
            }
            Event::Received(r) => serde_json::to_value(r).unwrap_or(Value::Null),
            Event::Held {
                outcome,
                challenge_id,
                expires_at,
                ..
            } => json!({
                "outcome": outcome,
                "challenge_id": challenge_id,
                "expires_at": rfc3339(*expires_at),
            }),
            Event::NotificationSent {
                notice,
                to,
                queue_id,
                ..
            } => json!({ "channel": "email", "notice": notice, "to": to, "queue_id": queue_id }),
            Event::SmsSent {
                challenge_id,
                phone,
                ..
            } => json!({ "challenge_id": challenge_id, "phone": phone }),
            Event::SmsFailed {
                challenge_id,
                phone,
                failure,
                ..
            } => json!({ "challenge_id": challenge_id, "phone": phone, "failure": failure }),
            Event::CodeSucceeded {
                challenge_id,
                verified_until,
                ..
            } => json!({
                "challenge_id": challenge_id,
                "verified_until": rfc3339(*verified_until),
            }),
            Event::CodeFailed {
                challenge_id,
                attempts_left,
                ..
            } => json!({ "challenge_id": challenge_id, "attempts_left": attempts_left }),
            Event::ChallengeLocked { challenge_id, .. } => json!({ "challenge_id": challenge_id }),
            Event::PhoneNumber {
                source,
                outcome,
                phone,
                ..
            } => json!({ "source": source, "outcome": outcome, "phone": phone }),
            Event::Released {
                target, queue_id, ..
            } => json!({
                "target": target,
                "queue_id": queue_id.map(|q| q.to_string()),
                "queue_id_hex": queue_id.map(|q| format!("{q:x}")),
            }),
            Event::ReleaseFailed {
                error, retry_at, ..
            } => json!({
                "error": error,
                "retry_at": retry_at.map(rfc3339),
                "next": if retry_at.is_some() { "retry" } else { "operator" },
            }),
            Event::PortalViewed { .. } | Event::Expired { .. } => json!({}),
            Event::PortalDownloaded { part, .. } => json!({ "part": part }),
            Event::Delivery {
                event_type,
                event_id,
                queue_id,
                data,
                ..
            } => json!({
                "event": event_type,
                "event_id": event_id,
                "queue_id": queue_id.to_string(),
                "data": data,
            }),
            Event::Admin {
                actor,
                action,
                target,
                details,
                ..
            } => json!({ "actor": actor, "action": action, "target": target, "details": details }),
            Event::Withdrawn { by, from, .. } => json!({ "by": by, "from": from }),
            Event::PortalReply { .. }
            | Event::PortalReplySent { .. }
            | Event::PortalReplyFailed { .. } => self.reply_details(),
        }
    }
}

impl Event {
    /// The indexed columns of a portal reply's records (the original sender is the `sender`).
    fn reply_subject(&self) -> Subject {
        match self {
            Event::PortalReply {
                message_ref,
                recipient,
                sender,
                ..
            }
            | Event::PortalReplySent {
                message_ref,
                recipient,
                sender,
                ..
            }
            | Event::PortalReplyFailed {
                message_ref,
                recipient,
                sender,
                ..
            } => Subject {
                sender: Some(sender.clone()),
                ..Subject::recipient(Some(message_ref), recipient)
            },
            _ => Subject::default(),
        }
    }

    /// The `details` of a portal reply's records (never its text or file names).
    fn reply_details(&self) -> Value {
        use crate::time::rfc3339;
        match self {
            Event::PortalReply {
                sender,
                reply_id,
                bytes,
                attachments,
                sha256,
                ..
            } => json!({
                "reply_id": reply_id,
                "to": sender,
                "bytes": bytes,
                "attachments": attachments,
                "sha256": sha256,
            }),
            Event::PortalReplySent {
                sender,
                reply_id,
                queue_id,
                ..
            } => json!({ "reply_id": reply_id, "to": sender, "queue_id": queue_id }),
            Event::PortalReplyFailed {
                reply_id,
                error,
                retry_at,
                ..
            } => json!({
                "reply_id": reply_id,
                "error": error,
                "retry_at": retry_at.map(rfc3339),
                "next": if retry_at.is_some() { "retry" } else { "operator" },
            }),
            _ => Value::Null,
        }
    }
}

/// The indexed columns of a record ([`Entry`] without kind and details).
#[derive(Default)]
struct Subject {
    at: Option<i64>,
    message_ref: Option<String>,
    message_sha256: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
}

impl Subject {
    /// A record about one recipient (of a message, when there is one).
    fn recipient(message_ref: Option<&String>, recipient: &str) -> Subject {
        Subject {
            message_ref: message_ref.cloned(),
            recipient: Some(recipient.to_string()),
            ..Subject::default()
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
    fn kinds_round_trip_by_name_and_are_distinct() {
        let names: std::collections::BTreeSet<&str> =
            Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            // Kind::ALL lists every kind: the exhaustive match below stops compiling when a kind is
            // added, and its position must then be given here and in ALL.
            let at = match k {
                Kind::Decision => 0,
                Kind::Held => 1,
                Kind::NotificationSent => 2,
                Kind::SmsSent => 3,
                Kind::SmsFailed => 4,
                Kind::CodeSucceeded => 5,
                Kind::CodeFailed => 6,
                Kind::ChallengeLocked => 7,
                Kind::PhoneNumber => 8,
                Kind::Released => 9,
                Kind::ReleaseFailed => 10,
                Kind::PortalViewed => 11,
                Kind::PortalDownloaded => 12,
                Kind::Expired => 13,
                Kind::Delivery => 14,
                Kind::Admin => 15,
                Kind::Received => 16,
                Kind::Withdrawn => 17,
                Kind::PortalReply => 18,
                Kind::PortalReplySent => 19,
                Kind::PortalReplyFailed => 20,
            };
            assert_eq!(Kind::ALL[at], k);
        }
        assert_eq!(Kind::parse("Held"), None);
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

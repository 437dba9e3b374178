//! The outbox's rows as values and their one insert: what a notification is (`OutboxKind`), its state,
//! queuing a row inside the caller's transaction, and the collection receipt's row (one per hold, when
//! the sender's domain wants one). A leaf of the store, so that the hold transitions (`holds`), the
//! withdrawal (`withdraw`) and the outbox's planning and sending (`outbox`) all queue mails the same way
//! without importing each other.

use sqlx::{Any, Row, Transaction};

use super::{
    exec::{Arg, Exec},
    StoreError,
};

/// What a notification is; `ref_id` is a challenge id for the first two, a message id for the third
/// and fourth, a hold (`<message id> <recipient>`, [`receipt_ref`]) for the fifth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// To the recipient: the portal link.
    RecipientNotice,
    /// To the sender: "enter the recipient's mobile number".
    SenderPhone,
    /// To the sender: the message was not collected before it expired.
    SenderExpired,
    /// To the sender: the message is held for secure delivery; the withdraw link.
    SenderHoldConfirmation,
    /// To the sender: the recipient collected it (released to the inbox or first opened on the portal).
    SenderCollectionReceipt,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::RecipientNotice => "recipient_notice",
            OutboxKind::SenderPhone => "sender_phone",
            OutboxKind::SenderExpired => "sender_expired",
            OutboxKind::SenderHoldConfirmation => "sender_hold_confirmation",
            OutboxKind::SenderCollectionReceipt => "sender_collection_receipt",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxKind> {
        Some(match s {
            "recipient_notice" => OutboxKind::RecipientNotice,
            "sender_phone" => OutboxKind::SenderPhone,
            "sender_expired" => OutboxKind::SenderExpired,
            "sender_hold_confirmation" => OutboxKind::SenderHoldConfirmation,
            "sender_collection_receipt" => OutboxKind::SenderCollectionReceipt,
            _ => return None,
        })
    }
}

/// An outbox row's state: `pending` (retried with backoff) until Stalwart accepts it, then `sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
        }
    }
}

pub(super) async fn enqueue<E: Exec>(
    tx: &mut E,
    kind: OutboxKind,
    ref_id: &str,
    rcpt: &str,
    now: i64,
) -> Result<(), StoreError> {
    // A row for the same (kind, ref_id, rcpt) already queued is the same mail: kept once.
    let id = crate::ids::ordered_id("o");
    let args = [
        Arg::from(&id),
        kind.as_str().into(),
        ref_id.into(),
        rcpt.into(),
        now.into(),
        OutboxState::Pending.as_str().into(),
    ];
    tx.execute(
        "INSERT INTO outbox (id, kind, ref_id, rcpt, state, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $6, 0, $5, $5, $5) ON CONFLICT (kind, ref_id, rcpt) DO NOTHING",
        &args,
    )
    .await?;
    Ok(())
}

/// The outbox `ref_id` of a collection receipt: one per hold (message ids never contain a space).
pub fn receipt_ref(message_id: &str, recipient: &str) -> String {
    format!("{message_id} {recipient}")
}

/// `(message id, recipient)` of a receipt's `ref_id`.
pub fn parse_receipt_ref(ref_id: &str) -> (&str, &str) {
    ref_id.split_once(' ').unwrap_or((ref_id, ""))
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase()
}

/// A sender domain's two notice settings `(hold_confirmation, collection_receipt)`; `None`: not set.
pub(super) async fn notice_settings<E: Exec>(
    exec: &mut E,
    sender: &str,
) -> Result<(Option<bool>, Option<bool>), StoreError> {
    let domain = domain_of(sender);
    let row = exec
        .fetch_optional(
            "SELECT hold_confirmation, collection_receipt FROM domain_settings WHERE domain = $1",
            &[Arg::from(&domain)],
        )
        .await?;
    let Some(row) = row else {
        return Ok((None, None));
    };
    let flag = |i: usize| -> Result<Option<bool>, StoreError> {
        Ok(row.get::<Option<i64>>(i)?.map(|v| v != 0))
    };
    Ok((flag(0)?, flag(1)?))
}

/// Queues the sender's collection receipt of one hold `(message id, recipient)`, when the sender's
/// domain wants one (or, unset there, `default`), inside the caller's transaction. Queued at most once
/// per hold: a second call finds the outbox row and adds nothing.
pub(super) async fn queue_receipt(
    tx: &mut Transaction<'_, Any>,
    (message_id, recipient): (&str, &str),
    default: bool,
    now: i64,
) -> Result<(), StoreError> {
    let sender: Option<String> = sqlx::query("SELECT sender FROM held_messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let Some(sender) = sender else {
        return Ok(());
    };
    let (_, receipt) = notice_settings(tx, &sender).await?;
    if receipt.unwrap_or(default) {
        let ref_id = receipt_ref(message_id, recipient);
        enqueue(
            tx,
            OutboxKind::SenderCollectionReceipt,
            &ref_id,
            &sender,
            now,
        )
        .await?;
    }
    Ok(())
}

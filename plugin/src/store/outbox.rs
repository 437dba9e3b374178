//! The notification outbox (table `outbox`, and the planned-flags on `challenges` and
//! `held_messages`): planning a mail in the same transaction that marks it planned, the due rows,
//! and their outcome with its audit record. Mails are rendered at send time from `(kind, ref_id)`, so
//! no link token is stored here. May call the rest of `store`, `audit` event types and `ids`.

pub use super::queue::{OutboxKind, OutboxState};
use super::{
    audit::append,
    exec::{Arg, Exec},
    holds::{expired_holds, holds_of_sender, messages_of, HoldState},
    queue::{enqueue, parse_receipt_ref},
    Store, StoreError,
};
use crate::audit::{Event, Notice};

/// A due outbox row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub kind: OutboxKind,
    pub ref_id: String,
    pub rcpt: String,
    pub attempts: i64,
}

impl Store {
    /// Plans a challenge's mail (`RecipientNotice` or `SenderPhone`) to `rcpt`: marks it planned, stores
    /// the hashes of both link tokens, and queues it, in one transaction.
    pub async fn plan_challenge_mail(
        &self,
        challenge_id: &str,
        kind: OutboxKind,
        rcpt: &str,
        token_hashes: (&str, &str),
        now: i64,
    ) -> Result<(), StoreError> {
        let flag = match kind {
            OutboxKind::RecipientNotice => "notice_queued",
            OutboxKind::SenderPhone => "sender_asked",
            OutboxKind::SenderExpired
            | OutboxKind::SenderHoldConfirmation
            | OutboxKind::SenderCollectionReceipt => {
                return Err(StoreError::Db(sqlx::Error::Protocol(
                    "this mail is about a message, not a challenge".into(),
                )))
            }
        };
        let (id, rcpt) = (challenge_id.to_string(), rcpt.to_string());
        let hashes = (token_hashes.0.to_string(), token_hashes.1.to_string());
        self.write_op(move |db| {
            Box::pin(async move {
                db.execute(
                    &format!(
                        "UPDATE challenges SET {flag} = 1, token_hash = $1, sender_token_hash = $2 \
                         WHERE id = $3"
                    ),
                    &[(&hashes.0).into(), (&hashes.1).into(), (&id).into()],
                )
                .await?;
                enqueue(db, kind, &id, &rcpt, now).await
            })
        })
        .await
    }

    /// Messages with an expired hold whose sender was not told yet: `(message id, sender)`.
    pub async fn unnoticed_expiries(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .read_op(|db| {
                Box::pin(async move {
                    let args = [Arg::from(HoldState::Expired.as_str()), limit.into()];
                    db.fetch_all(
                        "SELECT DISTINCT m.id, m.sender FROM held_messages m \
                         JOIN holds h ON h.message_id = m.id \
                         WHERE h.state = $1 AND m.expiry_noticed = 0 LIMIT $2",
                        &args,
                    )
                    .await
                })
            })
            .await?;
        rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
    }

    /// Plans the sender's "not collected" mail for a message: marks it noticed and queues the mail.
    pub async fn plan_expiry_notice(
        &self,
        message_id: &str,
        sender: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (id, sender) = (message_id.to_string(), sender.to_string());
        self.write_op(move |db| {
            Box::pin(async move {
                db.execute(
                    "UPDATE held_messages SET expiry_noticed = 1 WHERE id = $1",
                    &[(&id).into()],
                )
                .await?;
                enqueue(db, OutboxKind::SenderExpired, &id, &sender, now).await
            })
        })
        .await
    }

    /// Pending outbox rows due now, oldest first. Rows of an unknown kind are skipped.
    pub async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = self
            .read_op(|db| {
                Box::pin(async move {
                    let args = [now.into(), OutboxState::Pending.as_str().into(), limit.into()];
                    db.fetch_all(
                        "SELECT id, kind, ref_id, rcpt, attempts FROM outbox \
                         WHERE state = $2 AND next_attempt_at <= $1 ORDER BY created_at, id LIMIT $3",
                        &args,
                    )
                    .await
                })
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(kind) = OutboxKind::parse(&r.get::<String>(1)?) else {
                continue;
            };
            out.push(OutboxRow {
                id: r.get(0)?,
                kind,
                ref_id: r.get(2)?,
                rcpt: r.get(3)?,
                attempts: r.get(4)?,
            });
        }
        Ok(out)
    }

    /// Claims a due row for this instance before it is sent: its next attempt moves `lease_secs` ahead,
    /// only while it is still pending and due. False when another instance (or another pass of this
    /// one) claimed or sent it first: that one sends it. After a crash mid-send the row is due again
    /// when the lease has run out.
    pub async fn claim_outbox(
        &self,
        row: &OutboxRow,
        now: i64,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        let id = row.id.clone();
        let claimed = self
            .write_op(move |db| {
                Box::pin(async move {
                    let args = [
                        Arg::from(now + lease_secs),
                        now.into(),
                        (&id).into(),
                        OutboxState::Pending.as_str().into(),
                    ];
                    db.execute(
                        "UPDATE outbox SET next_attempt_at = $1, updated_at = $2 WHERE id = $3 \
                         AND state = $4 AND next_attempt_at <= $2",
                        &args,
                    )
                    .await
                })
            })
            .await?;
        Ok(claimed == 1)
    }

    /// Stalwart accepted the mail: the row is `sent` with its queue id, and one audit event per message
    /// and recipient the mail is about is appended, in one transaction.
    pub async fn outbox_sent(
        &self,
        row: &OutboxRow,
        queue_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (row, queue_id) = (row.clone(), queue_id.to_string());
        self.write_op(move |db| {
            Box::pin(async move {
                let args = [
                    Arg::from(&queue_id),
                    now.into(),
                    (&row.id).into(),
                    OutboxState::Sent.as_str().into(),
                ];
                db.execute(
                    "UPDATE outbox SET state = $4, queue_id = $1, attempts = attempts + 1, \
                     updated_at = $2 WHERE id = $3",
                    &args,
                )
                .await?;
                let events = sent_events(db, &row, &queue_id).await?;
                append(db, now, &events).await?;
                Ok(())
            })
        })
        .await
    }

    /// Not submitted: counted, kept with its error, and due again at `next`.
    pub async fn outbox_retry(
        &self,
        id: &str,
        next: i64,
        error: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write_op(move |db| {
            Box::pin(async move {
                let args = [Arg::from(next), (&error).into(), now.into(), (&id).into()];
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, \
                     updated_at = $3 WHERE id = $4",
                    &args,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}

/// The audit events of a notification Stalwart accepted: one per message and recipient it is about.
async fn sent_events<E: Exec>(
    tx: &mut E,
    row: &OutboxRow,
    queue_id: &str,
) -> Result<Vec<Event>, StoreError> {
    let event =
        |(message_ref, recipient): (String, String), notice: Notice| Event::NotificationSent {
            message_ref,
            recipient,
            notice,
            to: row.rcpt.clone(),
            queue_id: Some(queue_id.to_string()),
        };
    Ok(match row.kind {
        // ref_id: the challenge; rcpt: its recipient.
        OutboxKind::RecipientNotice => messages_of(tx, &row.ref_id)
            .await?
            .into_iter()
            .map(|m| event((m, row.rcpt.clone()), Notice::RecipientNotice))
            .collect(),
        // ref_id: the challenge; rcpt: the sender asked for the recipient's number.
        OutboxKind::SenderPhone => holds_of_sender(tx, &row.ref_id, &row.rcpt)
            .await?
            .into_iter()
            .map(|h| event(h, Notice::SenderPhoneRequest))
            .collect(),
        // ref_id: the message; rcpt: its sender; one event per recipient who did not collect it.
        OutboxKind::SenderExpired => expired_holds(tx, &row.ref_id)
            .await?
            .into_iter()
            .map(|h| event(h, Notice::SenderNotCollected))
            .collect(),
        // ref_id: the message; rcpt: its sender; one event per recipient it is held for.
        OutboxKind::SenderHoldConfirmation => tx
            .fetch_all(
                "SELECT message_id, recipient FROM holds WHERE message_id = $1 ORDER BY recipient",
                &[Arg::from(&row.ref_id)],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(event(
                    (r.get(0)?, r.get(1)?),
                    Notice::SenderHoldConfirmation,
                ))
            })
            .collect::<Result<_, StoreError>>()?,
        // ref_id: the hold; rcpt: its sender.
        OutboxKind::SenderCollectionReceipt => {
            let (m, r) = parse_receipt_ref(&row.ref_id);
            vec![event(
                (m.to_string(), r.to_string()),
                Notice::SenderCollectionReceipt,
            )]
        }
    })
}

//! Withdrawal by the sender and the sender's notices (hold confirmation, collection receipt): the
//! `withdrawn` transition with its audit record and the erasure of the content, the portal's "first
//! opened" mark (after which a hold is read, and no longer withdrawable), the withdraw link's lookup, and
//! the outbox rows of the two notices — each decided in the database, so that of a withdrawal and a
//! release claim (or a first open) exactly one wins, and a receipt is queued once per hold (the outbox's
//! unique key). May call the rest of `store` and `audit` event types.

use sqlx::{Any, Row, Transaction};

use super::{
    audit::append,
    exec::{Arg, Exec},
    holds::{transition, HoldState, HoldUpdate, Holds},
    queue::{enqueue, notice_settings, queue_receipt, OutboxKind},
    sealed::Sealed,
    Store, StoreError,
};
use crate::audit::{Event, WithdrawnBy};

/// What a withdrawal did for one recipient's hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawOutcome {
    /// Withdrawn now.
    Withdrawn,
    /// Already delivered to the recipient's inbox: cannot be withdrawn.
    Delivered,
    /// Being submitted to Stalwart (or its outcome is unknown): its data may have left.
    BeingDelivered,
    /// Opened by the recipient on the portal: cannot be withdrawn.
    Read,
    /// Withdrawn before.
    AlreadyWithdrawn,
    /// Expired or deleted: nothing left to withdraw.
    Gone,
}

impl WithdrawOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawOutcome::Withdrawn => "withdrawn",
            WithdrawOutcome::Delivered => "already_delivered",
            WithdrawOutcome::BeingDelivered => "being_delivered",
            WithdrawOutcome::Read => "already_read",
            WithdrawOutcome::AlreadyWithdrawn => "already_withdrawn",
            WithdrawOutcome::Gone => "gone",
        }
    }

    /// Where a hold in `state` (opened on the portal: `read`) stands for a withdrawal; `None` when it
    /// can be withdrawn.
    pub fn of(state: HoldState, read: bool) -> Option<WithdrawOutcome> {
        Some(match state {
            HoldState::Held | HoldState::Releasing => return None,
            HoldState::Portal if !read => return None,
            HoldState::Portal => WithdrawOutcome::Read,
            HoldState::Released => WithdrawOutcome::Delivered,
            HoldState::Sending | HoldState::Committing | HoldState::Uncertain => {
                WithdrawOutcome::BeingDelivered
            }
            HoldState::Withdrawn => WithdrawOutcome::AlreadyWithdrawn,
            HoldState::Expired | HoldState::Deleted => WithdrawOutcome::Gone,
        })
    }
}

/// One hold of a message, as the sender's withdraw page shows it.
#[derive(Debug, Clone)]
pub struct HoldView {
    pub recipient: String,
    pub state: HoldState,
    /// Opened on the portal.
    pub read: bool,
}

/// The message a withdraw link opens.
#[derive(Debug, Clone)]
pub struct WithdrawLink {
    pub message_id: String,
    pub sender: String,
    pub created_at: i64,
    /// The stored token hash (compared in constant time by the caller).
    pub token_hash: String,
}

/// What the portal may do with a recipient's message ([`Store::portal_open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalOpen {
    /// Readable; the hold is marked opened (the first time: with the sender's receipt, when wanted).
    Readable,
    /// The sender withdrew it.
    Withdrawn,
    /// No portal hold of this recipient.
    NotReadable,
}

impl Store {
    /// Withdraws the holds of message `id` (or only `recipient`'s) that are neither delivered nor read:
    /// each becomes `withdrawn` with its audit record, and the content is erased once no other
    /// recipient needs it, in one transaction. A hold a release claimed (or the recipient opened) first
    /// is not withdrawn: the database decides which came first. `None` when there is no such message;
    /// otherwise every selected hold's outcome, by recipient.
    pub async fn withdraw(
        &self,
        id: &str,
        recipient: Option<&str>,
        by: &WithdrawnBy,
        now: i64,
    ) -> Result<Option<Vec<(String, WithdrawOutcome)>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let sender: Option<String> = sqlx::query("SELECT sender FROM held_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let Some(sender) = sender else {
            return Ok(None);
        };
        let holds: Vec<HoldView> = hold_views(&mut tx, id)
            .await?
            .into_iter()
            .filter(|h| recipient.is_none_or(|r| r == h.recipient))
            .collect();
        let (mut outcomes, mut events) = (Vec::new(), Vec::new());
        for h in holds {
            let outcome = withdraw_one(&mut tx, id, &h, now).await?;
            if outcome == WithdrawOutcome::Withdrawn {
                events.push(Event::Withdrawn {
                    message_ref: id.to_string(),
                    recipient: h.recipient.clone(),
                    sender: sender.clone(),
                    by: by.clone(),
                    from: h.state.as_str(),
                });
            }
            outcomes.push((h.recipient, outcome));
        }
        if !events.is_empty() {
            Store::erase_if_unneeded(&mut tx, id, now).await?;
            append(&mut tx, now, &events).await?;
        }
        tx.commit().await?;
        Ok(Some(outcomes))
    }

    /// The holds of a message, by recipient (the sender's withdraw page).
    pub async fn hold_views(&self, id: &str) -> Result<Vec<HoldView>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let views = hold_views(&mut tx, id).await?;
        tx.commit().await?;
        Ok(views)
    }

    /// Whether `recipient` may read message `id` on the portal; marks the hold opened, and at the first
    /// opening queues the sender's collection receipt (when wanted; `receipt_default` is the
    /// `[portal]` default) in the same transaction. A hold opened here can no longer be withdrawn.
    pub async fn portal_open(
        &self,
        id: &str,
        recipient: &str,
        receipt_default: bool,
        now: i64,
    ) -> Result<PortalOpen, StoreError> {
        let mut tx = self.begin_write().await?;
        let first = sqlx::query(
            "UPDATE holds SET viewed_at = $1 WHERE message_id = $2 AND recipient = $3 AND state = $4 \
             AND viewed_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(recipient)
        .bind(HoldState::Portal.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if first {
            queue_receipt(&mut tx, (id, recipient), receipt_default, now).await?;
        }
        let state: Option<String> =
            sqlx::query("SELECT state FROM holds WHERE message_id = $1 AND recipient = $2")
                .bind(id)
                .bind(recipient)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        tx.commit().await?;
        Ok(match state.as_deref().map(HoldState::parse).transpose()? {
            Some(HoldState::Portal) => PortalOpen::Readable,
            Some(HoldState::Withdrawn) => PortalOpen::Withdrawn,
            _ => PortalOpen::NotReadable,
        })
    }

    /// Whether every hold waiting on this challenge was withdrawn (its link then says so).
    pub async fn challenge_withdrawn(&self, challenge_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), SUM(CASE WHEN state = $2 THEN 1 ELSE 0 END) FROM holds WHERE challenge_id = $1",
        )
        .bind(challenge_id)
        .bind(HoldState::Withdrawn.as_str())
        .fetch_one(&self.pool)
        .await?;
        let (all, withdrawn): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
        Ok(all > 0 && withdrawn == Some(all))
    }

    /// The message a withdraw link's token hash belongs to.
    pub async fn withdraw_link(&self, hash: &str) -> Result<Option<WithdrawLink>, StoreError> {
        let row = sqlx::query(
            "SELECT id, sender, created_at, withdraw_token_hash FROM held_messages WHERE withdraw_token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(WithdrawLink {
            message_id: r.try_get(0)?,
            sender: r.try_get(1)?,
            created_at: r.try_get(2)?,
            token_hash: r.try_get(3)?,
        }))
    }

    /// Held messages the notice planner has not looked at: `(id, sender)`, oldest first.
    pub async fn unnoticed_held(&self, limit: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .read_op(|db| {
                Box::pin(async move {
                    db.fetch_all(
                        "SELECT id, sender FROM held_messages WHERE sender_noticed = 0 \
                         ORDER BY created_at, id LIMIT $1",
                        &[limit.into()],
                    )
                    .await
                })
            })
            .await?;
        rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
    }

    /// A sender's domain settings for its notices, see [`notice_settings`].
    pub async fn sender_notice_settings(
        &self,
        sender: &str,
    ) -> Result<(Option<bool>, Option<bool>), StoreError> {
        self.read_op(|db| {
            let sender = sender.to_string();
            Box::pin(async move { notice_settings(db, &sender).await })
        })
        .await
    }

    /// Marks a held message looked at by the notice planner, in one transaction with what it decided:
    /// the sealed subject kept for the sender's notices, and (with the withdraw token's hash) the hold
    /// confirmation queued to the sender.
    pub async fn plan_sender_notices(
        &self,
        id: &str,
        sender: &str,
        confirmation: Option<&str>,
        subject: Option<&Sealed>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (id, sender) = (id.to_string(), sender.to_string());
        let (confirmation, subject) = (confirmation.map(str::to_string), subject.cloned());
        self.write_op(move |db| {
            Box::pin(async move {
                let s = subject.as_ref();
                let args = [
                    Arg::from(&id),
                    confirmation.as_ref().into(),
                    s.map(|s| &s.key_id).into(),
                    s.map_or(Arg::NullBytes, |s| (&s.wrapped_key).into()),
                    s.map_or(Arg::NullBytes, |s| (&s.nonce).into()),
                    s.map_or(Arg::NullBytes, |s| (&s.ciphertext).into()),
                ];
                db.execute(
                    "UPDATE held_messages SET sender_noticed = 1, \
                     withdraw_token_hash = COALESCE($2, withdraw_token_hash), subject_key_id = $3, \
                     subject_wrapped_key = $4, subject_nonce = $5, subject_ciphertext = $6 WHERE id = $1",
                    &args,
                )
                .await?;
                if confirmation.is_some() {
                    let kind = OutboxKind::SenderHoldConfirmation;
                    enqueue(db, kind, &id, &sender, now).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// The sealed subject of a held message, while it is kept.
    pub async fn held_subject(&self, id: &str) -> Result<Option<Sealed>, StoreError> {
        let row = sqlx::query(
            "SELECT subject_key_id, subject_wrapped_key, subject_nonce, subject_ciphertext \
             FROM held_messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let Some(ciphertext) = r.try_get::<Option<Vec<u8>>, _>(3)? else {
            return Ok(None);
        };
        Ok(Some(Sealed {
            key_id: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
            wrapped_key: r.try_get::<Option<Vec<u8>>, _>(1)?.unwrap_or_default(),
            nonce: r.try_get::<Option<Vec<u8>>, _>(2)?.unwrap_or_default(),
            ciphertext,
        }))
    }

    /// When a hold reached its recipient: first opened on the portal, or released to the inbox.
    pub async fn collected_at(&self, id: &str, recipient: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query(
            "SELECT COALESCE(viewed_at, updated_at) FROM holds WHERE message_id = $1 AND recipient = $2",
        )
        .bind(id)
        .bind(recipient)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
    }
}

/// The holds of a message with their state and whether they were opened, by recipient.
async fn hold_views(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Vec<HoldView>, StoreError> {
    let rows = sqlx::query(
        "SELECT recipient, state, viewed_at FROM holds WHERE message_id = $1 ORDER BY recipient",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HoldView {
                recipient: r.try_get(0)?,
                state: HoldState::parse(&r.try_get::<String, _>(1)?)?,
                read: r.try_get::<Option<i64>, _>(2)?.is_some(),
            })
        })
        .collect()
}

/// Withdraws one hold if it still can be: the transition moves it only from the state it was read in
/// and only while unopened, so a release claim or a first opening committed meanwhile wins, and the
/// hold's state read again says why.
async fn withdraw_one(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    h: &HoldView,
    now: i64,
) -> Result<WithdrawOutcome, StoreError> {
    if let Some(outcome) = WithdrawOutcome::of(h.state, h.read) {
        return Ok(outcome);
    }
    let which = Holds::Unread {
        message_id: id,
        recipient: &h.recipient,
    };
    let to = HoldState::Withdrawn;
    if transition(&mut **tx, which, h.state, to, now, HoldUpdate::default()).await? == 1 {
        return Ok(WithdrawOutcome::Withdrawn);
    }
    let now_is = hold_views(tx, id)
        .await?
        .into_iter()
        .find(|v| v.recipient == h.recipient);
    Ok(now_is
        .and_then(|v| WithdrawOutcome::of(v.state, v.read))
        .unwrap_or(WithdrawOutcome::BeingDelivered))
}

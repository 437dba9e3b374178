//! Secure replies from the portal (table `portal_replies`): the reply state machine ([`ReplyState`]),
//! writing a reply with its audit record and the per-recipient limit in one transaction, the thread of
//! a message, and the submission worker's claim → committing → record steps. May call
//! `store::{audit, sealed}` and `audit` event types; nothing above the store.

use std::fmt;

use sqlx::{Any, Row, Transaction};

use super::{audit::append, sealed::Sealed, Store, StoreError};
use crate::audit::Event;

/// Where one reply stands. Like a release: claimed before anything is sent, `committing` before the
/// data leaves, so a crash or a lost reply never sends it twice and never loses it.
///
/// ```text
///   pending ──claim──► sending ──data──► committing ──250──► sent
///      ▲                 │                  │ │
///      └── retry/lease ──┘◄── refused ──────┘ └── reply lost, or a crash after the data ──► uncertain
/// ```
///
/// `sent` is final; `uncertain` is left to an operator (it may be in Stalwart's queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyState {
    /// Written and committed; the worker submits it when due.
    Pending,
    /// Claimed by a worker (or the request that wrote it); nothing submitted yet.
    Sending,
    /// The reply's data is being submitted to Stalwart's release listener.
    Committing,
    /// Stalwart accepted it (its queue id kept).
    Sent,
    /// The outcome of a submission is unknown: never re-sent automatically.
    Uncertain,
}

impl ReplyState {
    pub const ALL: [ReplyState; 5] = [
        ReplyState::Pending,
        ReplyState::Sending,
        ReplyState::Committing,
        ReplyState::Sent,
        ReplyState::Uncertain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Pending => "pending",
            ReplyState::Sending => "sending",
            ReplyState::Committing => "committing",
            ReplyState::Sent => "sent",
            ReplyState::Uncertain => "uncertain",
        }
    }

    pub fn parse(s: &str) -> Result<ReplyState, StoreError> {
        ReplyState::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| StoreError::UnknownState {
                what: "portal reply",
                value: s.to_string(),
            })
    }

    /// The legal state changes, and only those.
    pub fn can_transition(from: ReplyState, to: ReplyState) -> bool {
        use ReplyState::*;
        matches!(
            (from, to),
            (Pending, Sending)
                | (Sending, Committing)
                | (Sending, Pending)
                | (Committing, Sent)
                | (Committing, Pending)
                | (Committing, Uncertain)
        )
    }
}

impl fmt::Display for ReplyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reply as written, before it is stored.
pub struct NewReply<'a> {
    pub id: &'a str,
    pub message_id: &'a str,
    /// The id of the form it was written in: one reply per form (a second POST stores nothing).
    pub form_id: &'a str,
    pub recipient: &'a str,
    /// The original sender: the reply's recipient.
    pub sender: &'a str,
    pub sealed: &'a Sealed,
    /// Size of the reply mail.
    pub size: i64,
    pub attachments: i64,
    /// SHA-256 (hex) of the reply mail.
    pub sha256: &'a str,
}

/// A stored reply.
#[derive(Debug, Clone)]
pub struct ReplyRow {
    pub id: String,
    pub message_id: String,
    pub recipient: String,
    pub sender: String,
    pub state: ReplyState,
    pub attempts: i64,
    pub queue_id: Option<String>,
    pub created_at: i64,
    /// `None` once retention erased it.
    pub sealed: Option<Sealed>,
}

/// The end of one submission attempt, committed with its audit record by [`Store::finish_reply`].
pub struct ReplyStep<'a> {
    pub id: &'a str,
    pub from: ReplyState,
    pub to: ReplyState,
    pub next_attempt_at: i64,
    pub error: Option<&'a str>,
    pub queue_id: Option<&'a str>,
    pub event: Event,
}

/// A reply refused because the recipient wrote `replies_per_hour` within the last hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimited;

const COLUMNS: &str = "id, message_id, recipient, sender, state, attempts, queue_id, created_at, \
                       key_id, wrapped_key, nonce, ciphertext";

fn row(r: &sqlx::any::AnyRow) -> Result<ReplyRow, StoreError> {
    let ciphertext: Option<Vec<u8>> = r.try_get(11)?;
    let sealed = match ciphertext {
        Some(ciphertext) => Some(Sealed {
            key_id: r.try_get(8)?,
            wrapped_key: r.try_get::<Option<Vec<u8>>, _>(9)?.unwrap_or_default(),
            nonce: r.try_get::<Option<Vec<u8>>, _>(10)?.unwrap_or_default(),
            ciphertext,
        }),
        None => None,
    };
    Ok(ReplyRow {
        id: r.try_get(0)?,
        message_id: r.try_get(1)?,
        recipient: r.try_get(2)?,
        sender: r.try_get(3)?,
        state: ReplyState::parse(&r.try_get::<String, _>(4)?)?,
        attempts: r.try_get(5)?,
        queue_id: r.try_get(6)?,
        created_at: r.try_get(7)?,
        sealed,
    })
}

/// The reply a form stored already, by its form id.
async fn reply_of_form(
    tx: &mut Transaction<'_, Any>,
    reply: &NewReply<'_>,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT id FROM portal_replies WHERE message_id = $1 AND recipient = $2 AND form_id = $3",
    )
    .bind(reply.message_id)
    .bind(reply.recipient)
    .bind(reply.form_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Inserts a new reply; `false` when its form's reply exists already (the unique index).
async fn insert_reply(
    tx: &mut Transaction<'_, Any>,
    reply: &NewReply<'_>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO portal_replies (id, message_id, form_id, recipient, sender, state, size, attachments, \
         sha256, key_id, wrapped_key, nonce, ciphertext, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $14, $14) \
         ON CONFLICT (message_id, recipient, form_id) DO NOTHING",
    )
    .bind(reply.id)
    .bind(reply.message_id)
    .bind(reply.form_id)
    .bind(reply.recipient)
    .bind(reply.sender)
    .bind(ReplyState::Pending.as_str())
    .bind(reply.size)
    .bind(reply.attachments)
    .bind(reply.sha256)
    .bind(&reply.sealed.key_id)
    .bind(&reply.sealed.wrapped_key)
    .bind(&reply.sealed.nonce)
    .bind(&reply.sealed.ciphertext)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The window of the per-recipient reply limit.
pub const REPLY_WINDOW_SECS: i64 = 3_600;

impl Store {
    /// Stores a written reply (`pending`, due now) and its audit record in one transaction, unless the
    /// recipient already wrote `per_hour` replies within the last hour; the id of the stored reply. A
    /// form posted again (its `form_id` stored already: a double click, a reload) stores nothing and
    /// answers the first reply's id. The count is read inside the write transaction (on SQLite the write
    /// lock is held; on PostgreSQL concurrent requests of one recipient may each pass the last free slot:
    /// a bounded overshoot, not a bypass; the same form twice at once is one row by the unique index).
    pub async fn add_reply(
        &self,
        reply: &NewReply<'_>,
        per_hour: i64,
        event: Event,
        now: i64,
    ) -> Result<Result<String, ReplyLimited>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(first) = reply_of_form(&mut tx, reply).await? {
            tx.rollback().await?;
            return Ok(Ok(first));
        }
        let written: i64 = sqlx::query(
            "SELECT COUNT(*) FROM portal_replies WHERE recipient = $1 AND created_at > $2",
        )
        .bind(reply.recipient)
        .bind(now - REPLY_WINDOW_SECS)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        if written >= per_hour {
            tx.rollback().await?;
            return Ok(Err(ReplyLimited));
        }
        if !insert_reply(&mut tx, reply, now).await? {
            // The same form committed by a concurrent request meanwhile.
            tx.rollback().await?;
            let mut tx = self.pool.begin().await?;
            let first = reply_of_form(&mut tx, reply).await?;
            tx.commit().await?;
            return first
                .map(Ok)
                .ok_or(StoreError::Db(sqlx::Error::RowNotFound));
        }
        append(&mut tx, now, &[event]).await?;
        tx.commit().await?;
        Ok(Ok(reply.id.to_string()))
    }

    /// One reply.
    pub async fn reply(&self, id: &str) -> Result<Option<ReplyRow>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM portal_replies WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(row).transpose()
    }

    /// The replies `recipient` wrote to one message, oldest first.
    pub async fn replies_of(
        &self,
        message_id: &str,
        recipient: &str,
    ) -> Result<Vec<ReplyRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM portal_replies WHERE message_id = $1 AND recipient = $2 \
             ORDER BY created_at, id"
        ))
        .bind(message_id)
        .bind(recipient)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    /// Pending replies due now, oldest first.
    pub async fn due_replies(&self, now: i64, limit: i64) -> Result<Vec<ReplyRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM portal_replies WHERE state = $1 AND next_attempt_at <= $2 \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(ReplyState::Pending.as_str())
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    /// THE reply state change without an outcome (the claim, and `committing` before the data). An
    /// illegal change is refused before anything is touched. False when the reply was not in `from`
    /// (someone else moved it: theirs).
    pub async fn transition_reply(
        &self,
        id: &str,
        from: ReplyState,
        to: ReplyState,
        now: i64,
    ) -> Result<bool, StoreError> {
        check(from, to)?;
        let n = sqlx::query(
            "UPDATE portal_replies SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The end of one attempt: the new state (counted, with its error, next attempt and queue id) and
    /// its audit record, in one transaction. False when the reply was no longer in `step.from`.
    pub async fn finish_reply(&self, step: &ReplyStep<'_>, now: i64) -> Result<bool, StoreError> {
        check(step.from, step.to)?;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE portal_replies SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
             last_error = $3, queue_id = $4, updated_at = $5 WHERE id = $6 AND state = $7",
        )
        .bind(step.to.as_str())
        .bind(step.next_attempt_at)
        .bind(step.error)
        .bind(step.queue_id)
        .bind(now)
        .bind(step.id)
        .bind(step.from.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        append(&mut tx, now, std::slice::from_ref(&step.event)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims that outlived `lease` (their process stopped): `sending` replies (nothing submitted)
    /// are pending again; `committing` ones (the data may have reached Stalwart) become `uncertain`.
    /// Returns how many became uncertain.
    pub async fn recover_replies(&self, now: i64, lease: i64) -> Result<u64, StoreError> {
        let stale = now - lease;
        let mut tx = self.begin_write().await?;
        let moves = [
            (ReplyState::Sending, ReplyState::Pending),
            (ReplyState::Committing, ReplyState::Uncertain),
        ];
        let mut uncertain = 0;
        for (from, to) in moves {
            check(from, to)?;
            let n = sqlx::query(
                "UPDATE portal_replies SET state = $1, updated_at = $2, \
                 last_error = COALESCE(last_error, 'claim outlived its lease') \
                 WHERE state = $3 AND updated_at <= $4",
            )
            .bind(to.as_str())
            .bind(now)
            .bind(from.as_str())
            .bind(stale)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if to == ReplyState::Uncertain {
                uncertain = n;
            }
        }
        tx.commit().await?;
        Ok(uncertain)
    }

    /// Retention: erases the sealed content of sent replies whose message's content is gone.
    pub async fn purge_replies(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE portal_replies SET wrapped_key = NULL, nonce = NULL, ciphertext = NULL, updated_at = $1 \
             WHERE state = $2 AND ciphertext IS NOT NULL AND message_id IN \
             (SELECT id FROM held_messages WHERE purged_at IS NOT NULL)",
        )
        .bind(now)
        .bind(ReplyState::Sent.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}

fn check(from: ReplyState, to: ReplyState) -> Result<(), StoreError> {
    if ReplyState::can_transition(from, to) {
        Ok(())
    } else {
        Err(StoreError::IllegalTransition {
            what: "portal reply",
            from: from.as_str(),
            to: to.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ReplyState::{self, *};

    #[test]
    fn only_the_drawn_edges_are_legal() {
        let legal = [
            (Pending, Sending),
            (Sending, Committing),
            (Sending, Pending),
            (Committing, Sent),
            (Committing, Pending),
            (Committing, Uncertain),
        ];
        for from in ReplyState::ALL {
            for to in ReplyState::ALL {
                assert_eq!(
                    ReplyState::can_transition(from, to),
                    legal.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
            assert_eq!(ReplyState::parse(from.as_str()).unwrap(), from);
        }
        // Nothing leaves `sent` or `uncertain` on its own: never twice.
        assert!(ReplyState::ALL
            .iter()
            .all(|&to| !ReplyState::can_transition(Sent, to)
                && !ReplyState::can_transition(Uncertain, to)));
    }
}

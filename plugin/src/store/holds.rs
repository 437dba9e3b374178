//! The held messages and their holds (tables `held_messages`, `holds`, `decisions`): the hold state
//! machine ([`HoldState`], [`transition`]), the release worker's steps, retention, and the reads the
//! hook, the portal and the notifications need. May call `store::{audit, sealed}`, `audit` event types
//! and `policy` values; nothing above the store (the hook's commit, which also creates challenges, is
//! in `store::hook`).

use std::fmt;

use sqlx::{Any, Executor, Row, Transaction};

use super::{
    audit,
    exec::{self, Exec},
    sealed::Sealed,
    Store, StoreError,
};
use crate::{audit::Event, policy::Outcome};

/// Where one held recipient of a message stands. The release-safety rule — never an insecure delivery,
/// never a message delivered twice, never one lost — is this machine; [`HoldState::can_transition`]
/// is its whole definition and every state change goes through [`transition`].
///
/// ```text
///                      verified                claim           data sent        250
///   held ───────────► releasing ───────────► sending ───────► committing ───────────► released
///    │ │ │               ▲ ▲ ▲                 │ │ │              │ │                    ▲
///    │ │ │               │ │ └── retry/lease ──┘ │ │              │ └──► uncertain ──────┘
///    │ │ │               │ └───── refused, retry with backoff ────┘     │   (resolve: delivered)
///    │ │ │               └────────── resolve: not delivered ─────────────┘
///    │ │ │                                     │ │            reply lost, or a crash after the data
///    │ │ └─ verified (portal outcome) ─► portal ◄┘ │  TLS not secure at release
///    │ └─── retention passed ─────────► expired ◄──┘  content gone at release
///    └───── admin delete ─────────────► deleted
///
///   held, releasing, portal (never opened) ── the sender withdraws ──► withdrawn
/// ```
///
/// `released`, `expired`, `deleted` and `withdrawn` are final; `portal` only goes on to `withdrawn`,
/// and only while the recipient has not opened it (the withdrawal selects [`Holds::Unread`]). Content
/// is needed while a hold is in any other state, and by `portal` (see [`HoldState::needs_content`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldState {
    /// Waiting for the recipient's verification.
    Held,
    /// Verified; the release worker sends it when due.
    Releasing,
    /// Claimed by a release worker; nothing submitted yet.
    Sending,
    /// The message data is being submitted to Stalwart.
    Committing,
    /// Stalwart accepted it (its queue id kept).
    Released,
    /// Readable on the portal.
    Portal,
    /// Not collected within the retention period, or its content was gone at release.
    Expired,
    /// The outcome of a submission is unknown: never re-sent automatically; an operator settles it.
    Uncertain,
    /// Deleted by an administrator.
    Deleted,
    /// Withdrawn by the sender (or an administrator for them) before it was delivered or read.
    Withdrawn,
}

impl HoldState {
    pub const ALL: [HoldState; 10] = [
        HoldState::Held,
        HoldState::Releasing,
        HoldState::Sending,
        HoldState::Committing,
        HoldState::Released,
        HoldState::Portal,
        HoldState::Expired,
        HoldState::Uncertain,
        HoldState::Deleted,
        HoldState::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Releasing => "releasing",
            HoldState::Sending => "sending",
            HoldState::Committing => "committing",
            HoldState::Released => "released",
            HoldState::Portal => "portal",
            HoldState::Expired => "expired",
            HoldState::Uncertain => "uncertain",
            HoldState::Deleted => "deleted",
            HoldState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Result<HoldState, StoreError> {
        HoldState::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| StoreError::UnknownState {
                what: "hold",
                value: s.to_string(),
            })
    }

    /// The legal state changes, and only those.
    pub fn can_transition(from: HoldState, to: HoldState) -> bool {
        use HoldState::*;
        matches!(
            (from, to),
            // The recipient passed 2FA: to the inbox (via the worker) or to the portal.
            (Held, Releasing) | (Held, Portal)
            // Retention passed before verification; an administrator deleted it.
            | (Held, Expired) | (Held, Deleted)
            // The worker claims a due release.
            | (Releasing, Sending)
            // Claimed: about to submit the data; or TLS not secure now; or the content is gone; or
            // a failure before any data left (or a stale claim after a crash): try again later.
            | (Sending, Committing) | (Sending, Portal) | (Sending, Expired) | (Sending, Releasing)
            // Submitted: Stalwart accepted; refused (retry); reply lost or crashed (operator).
            | (Committing, Released) | (Committing, Releasing) | (Committing, Uncertain)
            // The operator checked Stalwart: delivered, or send again.
            | (Uncertain, Released) | (Uncertain, Releasing)
            // The sender withdrew it: not yet claimed for a release, or on the portal and never
            // opened (never once its data may have left: sending, committing, uncertain, released).
            | (Held, Withdrawn) | (Releasing, Withdrawn) | (Portal, Withdrawn)
        )
    }

    /// The states in which a hold no longer needs the sealed content.
    pub const CONTENT_DONE: [HoldState; 4] = [
        HoldState::Released,
        HoldState::Expired,
        HoldState::Deleted,
        HoldState::Withdrawn,
    ];

    /// Whether a hold in this state still needs the sealed content.
    pub fn needs_content(self) -> bool {
        !HoldState::CONTENT_DONE.contains(&self)
    }
}

impl fmt::Display for HoldState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for HoldState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Which holds a [`transition`] applies to (those of them in its `from` state).
#[derive(Debug, Clone, Copy)]
pub enum Holds<'a> {
    One {
        message_id: &'a str,
        recipient: &'a str,
    },
    OfMessage(&'a str),
    /// The holds waiting on a challenge whose outcome is `portal` (`portal: true`) or not.
    OfChallenge {
        challenge_id: &'a str,
        portal: bool,
    },
    /// Holds unchanged since this time (a claim that outlived its lease).
    UnchangedSince(i64),
    /// Holds of messages whose retention ended by this time, content not yet erased.
    OfExpiredMessages(i64),
    /// One hold, while its recipient has not opened it on the portal (`viewed_at` unset).
    Unread {
        message_id: &'a str,
        recipient: &'a str,
    },
}

/// Columns a [`transition`] sets besides the state and `updated_at`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HoldUpdate<'a> {
    /// `attempts = attempts + 1`.
    pub count_attempt: bool,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<Option<&'a str>>,
    pub release_queue_id: Option<Option<&'a str>>,
}

enum Arg<'a> {
    Int(i64),
    Text(Option<&'a str>),
}

/// A statement's text and its arguments, numbered as they are added.
struct Sql<'a> {
    text: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Sql<'a> {
    fn arg(&mut self, a: Arg<'a>) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
}

/// THE hold state change: moves the selected holds that are in `from` to `to`, with `update`'s
/// columns. An illegal change is refused with [`StoreError::IllegalTransition`] before anything is
/// touched. Returns the number of holds moved (0 when none was in `from`: someone else moved it).
pub async fn transition<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    which: Holds<'_>,
    from: HoldState,
    to: HoldState,
    now: i64,
    update: HoldUpdate<'_>,
) -> Result<u64, StoreError> {
    if !HoldState::can_transition(from, to) {
        return Err(StoreError::IllegalTransition {
            what: "hold",
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    let mut q = Sql {
        text: "UPDATE holds SET state = $1, updated_at = $2".into(),
        args: vec![Arg::Text(Some(to.as_str())), Arg::Int(now)],
    };
    if update.count_attempt {
        q.text.push_str(", attempts = attempts + 1");
    }
    if let Some(at) = update.next_attempt_at {
        let p = q.arg(Arg::Int(at));
        q.text.push_str(&format!(", next_attempt_at = {p}"));
    }
    if let Some(error) = update.last_error {
        let p = q.arg(Arg::Text(error));
        q.text.push_str(&format!(", last_error = {p}"));
    }
    if let Some(queue_id) = update.release_queue_id {
        let p = q.arg(Arg::Text(queue_id));
        q.text.push_str(&format!(", release_queue_id = {p}"));
    }
    let p = q.arg(Arg::Text(Some(from.as_str())));
    q.text.push_str(&format!(" WHERE state = {p} AND "));
    let filter = match which {
        Holds::One {
            message_id,
            recipient,
        } => {
            let (a, b) = (
                q.arg(Arg::Text(Some(message_id))),
                q.arg(Arg::Text(Some(recipient))),
            );
            format!("message_id = {a} AND recipient = {b}")
        }
        Holds::OfMessage(id) => format!("message_id = {}", q.arg(Arg::Text(Some(id)))),
        Holds::OfChallenge {
            challenge_id,
            portal,
        } => {
            let (a, b) = (
                q.arg(Arg::Text(Some(challenge_id))),
                q.arg(Arg::Text(Some(Outcome::Portal.as_str()))),
            );
            let op = if portal { "=" } else { "<>" };
            format!("challenge_id = {a} AND outcome {op} {b}")
        }
        Holds::UnchangedSince(t) => format!("updated_at <= {}", q.arg(Arg::Int(t))),
        Holds::Unread {
            message_id,
            recipient,
        } => {
            let (a, b) = (
                q.arg(Arg::Text(Some(message_id))),
                q.arg(Arg::Text(Some(recipient))),
            );
            format!("message_id = {a} AND recipient = {b} AND viewed_at IS NULL")
        }
        Holds::OfExpiredMessages(t) => format!(
            "message_id IN (SELECT id FROM held_messages WHERE expires_at <= {} AND purged_at IS NULL)",
            q.arg(Arg::Int(t))
        ),
    };
    q.text.push_str(&filter);
    let mut query = sqlx::query(&q.text);
    for a in q.args {
        query = match a {
            Arg::Int(i) => query.bind(i),
            Arg::Text(t) => query.bind(t),
        };
    }
    Ok(query.execute(exec).await?.rows_affected())
}

/// A held message as stored.
pub struct HeldRow {
    pub id: String,
    pub sender: String,
    pub sha256: String,
    pub size: i64,
    pub sealed: Option<Sealed>,
}

/// A hold the release worker may send now.
#[derive(Debug, Clone)]
pub struct DueRelease {
    pub message_id: String,
    pub recipient: String,
    pub sender: String,
    pub attempts: i64,
}

/// The end of one release attempt, committed with its audit record by [`Store::finish_release`].
pub struct ReleaseStep<'a> {
    pub message_id: &'a str,
    pub recipient: &'a str,
    pub from: HoldState,
    pub to: HoldState,
    pub next_attempt_at: i64,
    /// Kept on the hold (`None` clears it).
    pub error: Option<&'a str>,
    /// Stalwart's queue id, when it accepted the message.
    pub queue_id: Option<&'a str>,
    pub event: Event,
    /// `[portal] collection_receipt`: whether the sender gets a receipt when its domain does not say.
    pub receipt_default: bool,
}

/// A held message as the portal lists it for one recipient.
#[derive(Debug, Clone)]
pub struct HeldFor {
    pub message_id: String,
    pub sender: String,
    pub outcome: String,
    pub state: HoldState,
    pub created_at: i64,
}

impl Store {
    /// Holds already recorded for this submission (a client retry after a 451): message ref and
    /// `(recipient, outcome)` pairs.
    pub async fn existing_holds(
        &self,
        idem_key: &str,
    ) -> Result<Option<(String, Vec<(String, String)>)>, StoreError> {
        existing_holds_on(&mut *self.pool.acquire().await?, idem_key).await
    }

    /// Erases a held message's sealed content once none of its holds still needs it (every hold
    /// released, expired or deleted), inside the caller's transaction.
    pub async fn erase_if_unneeded(
        tx: &mut Transaction<'_, Any>,
        id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let [a, b, c, d] = HoldState::CONTENT_DONE;
        sqlx::query(
            "UPDATE held_messages SET wrapped_key = NULL, nonce = NULL, ciphertext = NULL, purged_at = $1 \
             WHERE id = $2 AND purged_at IS NULL AND NOT EXISTS (SELECT 1 FROM holds WHERE message_id = $2 \
             AND state NOT IN ($3, $4, $5, $6))",
        )
        .bind(now)
        .bind(id)
        .bind(a.as_str())
        .bind(b.as_str())
        .bind(c.as_str())
        .bind(d.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn held(&self, id: &str) -> Result<Option<HeldRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, sender, sha256, size, key_id, wrapped_key, nonce, ciphertext FROM held_messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let ciphertext: Option<Vec<u8>> = row.try_get(7)?;
        let sealed = match ciphertext {
            Some(ciphertext) => Some(Sealed {
                key_id: row.try_get(4)?,
                wrapped_key: row.try_get::<Option<Vec<u8>>, _>(5)?.unwrap_or_default(),
                nonce: row.try_get::<Option<Vec<u8>>, _>(6)?.unwrap_or_default(),
                ciphertext,
            }),
            None => None,
        };
        Ok(Some(HeldRow {
            id: row.try_get(0)?,
            sender: row.try_get(1)?,
            sha256: row.try_get(2)?,
            size: row.try_get(3)?,
            sealed,
        }))
    }

    /// Deletes held content past its expiry; the metadata stays (the audit trail refers to it) and its
    /// holds become `expired`. Returns the number of messages purged.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        // Each hold whose content goes: still waiting (`held`, becomes `expired`) or readable on the
        // portal (stays `portal`, but there is nothing left to read).
        let expiring = sqlx::query(
            "SELECT message_id, recipient FROM holds WHERE state IN ($2, $3) AND message_id IN \
             (SELECT id FROM held_messages WHERE expires_at <= $1 AND purged_at IS NULL) \
             ORDER BY message_id, recipient",
        )
        .bind(now)
        .bind(HoldState::Held.as_str())
        .bind(HoldState::Portal.as_str())
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| {
            Ok(Event::Expired {
                message_ref: r.try_get(0)?,
                recipient: r.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        transition(
            &mut **tx,
            Holds::OfExpiredMessages(now),
            HoldState::Held,
            HoldState::Expired,
            now,
            HoldUpdate::default(),
        )
        .await?;
        let done = sqlx::query(
            "UPDATE held_messages SET wrapped_key = NULL, nonce = NULL, ciphertext = NULL, purged_at = $1 \
             WHERE expires_at <= $1 AND purged_at IS NULL",
        )
        .bind(now)
        .execute(&mut **tx)
        .await?;
        // The sealed subject (kept for the sender's notices) goes with the retention too.
        sqlx::query(
            "UPDATE held_messages SET subject_key_id = NULL, subject_wrapped_key = NULL, \
             subject_nonce = NULL, subject_ciphertext = NULL \
             WHERE expires_at <= $1 AND subject_ciphertext IS NOT NULL",
        )
        .bind(now)
        .execute(&mut **tx)
        .await?;
        audit::append(&mut tx, now, &expiring).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Decisions recorded for a message ref: `(recipient, outcome, reasons JSON)`.
    pub async fn decisions(
        &self,
        message_ref: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(sqlx::query(
            "SELECT recipient, outcome, reasons FROM decisions WHERE message_ref = $1 ORDER BY id",
        )
        .bind(message_ref)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Holds of a message: `(recipient, outcome, state, challenge id)`, as stored (for reports).
    pub async fn holds(
        &self,
        message_ref: &str,
    ) -> Result<Vec<(String, String, String, Option<String>)>, StoreError> {
        Ok(sqlx::query(
            "SELECT recipient, outcome, state, challenge_id FROM holds WHERE message_id = $1 ORDER BY recipient",
        )
        .bind(message_ref)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<_, sqlx::Error>>()?)
    }

    /// One hold's state change outside any other work (see [`transition`]); false when the hold was
    /// not in `from`.
    pub async fn transition_hold(
        &self,
        message_id: &str,
        recipient: &str,
        from: HoldState,
        to: HoldState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let which = Holds::One {
            message_id,
            recipient,
        };
        Ok(transition(&self.pool, which, from, to, now, HoldUpdate::default()).await? == 1)
    }

    /// Holds due for release (`releasing`, next attempt reached), in a stable order.
    pub async fn due_releases(&self, now: i64, limit: i64) -> Result<Vec<DueRelease>, StoreError> {
        let rows = self
            .read_op(|db| {
                Box::pin(async move {
                    let args = [
                        now.into(),
                        HoldState::Releasing.as_str().into(),
                        limit.into(),
                    ];
                    db.fetch_all(
                        "SELECT h.message_id, h.recipient, m.sender, h.attempts FROM holds h \
                         JOIN held_messages m ON m.id = h.message_id \
                         WHERE h.state = $2 AND h.next_attempt_at <= $1 \
                         ORDER BY h.message_id, h.recipient LIMIT $3",
                        &args,
                    )
                    .await
                })
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DueRelease {
                    message_id: r.get(0)?,
                    recipient: r.get(1)?,
                    sender: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })
            .collect()
    }

    /// After a crash, claims older than `lease`: `sending` (nothing submitted yet) goes back to
    /// `releasing`; `committing` (the message may have reached Stalwart) becomes `uncertain`. Returns
    /// the number of uncertain holds.
    pub async fn recover_releases(&self, now: i64, lease: i64) -> Result<u64, StoreError> {
        let stale = Holds::UnchangedSince(now - lease);
        let mut tx = self.begin_write().await?;
        transition(
            &mut **tx,
            stale,
            HoldState::Sending,
            HoldState::Releasing,
            now,
            HoldUpdate::default(),
        )
        .await?;
        let lost = HoldUpdate {
            last_error: Some(Some("gateway stopped after the message data was sent")),
            ..HoldUpdate::default()
        };
        let n = transition(
            &mut **tx,
            stale,
            HoldState::Committing,
            HoldState::Uncertain,
            now,
            lost,
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Commits the end of a release attempt and its audit record in one transaction; once Stalwart has
    /// the message, its content goes when no other recipient still needs it. Returns false (and
    /// records nothing) when the hold is no longer in `step.from`: someone else moved it.
    pub async fn finish_release(
        &self,
        step: &ReleaseStep<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let update = HoldUpdate {
            count_attempt: true,
            next_attempt_at: Some(step.next_attempt_at),
            last_error: Some(step.error),
            release_queue_id: Some(step.queue_id),
        };
        let which = Holds::One {
            message_id: step.message_id,
            recipient: step.recipient,
        };
        if transition(&mut **tx, which, step.from, step.to, now, update).await? != 1 {
            return Ok(false);
        }
        if step.to == HoldState::Released {
            Store::erase_if_unneeded(&mut tx, step.message_id, now).await?;
            let hold = (step.message_id, step.recipient);
            super::queue::queue_receipt(&mut tx, hold, step.receipt_default, now).await?;
        }
        audit::append(&mut tx, now, std::slice::from_ref(&step.event)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Held messages of a recipient (all states), newest first.
    pub async fn held_for(&self, recipient: &str) -> Result<Vec<HeldFor>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.message_id, m.sender, h.outcome, h.state, h.created_at FROM holds h \
             JOIN held_messages m ON m.id = h.message_id WHERE h.recipient = $1 \
             ORDER BY h.created_at DESC, h.message_id",
        )
        .bind(recipient)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldFor {
                    message_id: r.try_get(0)?,
                    sender: r.try_get(1)?,
                    outcome: r.try_get(2)?,
                    state: HoldState::parse(&r.try_get::<String, _>(3)?)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Senders of the messages waiting on a challenge, first held first.
    pub async fn senders(&self, challenge_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .read_op(|db| {
                let id = challenge_id.to_string();
                Box::pin(async move {
                    db.fetch_all(
                        "SELECT m.sender, MIN(h.created_at) AS first FROM holds h \
                         JOIN held_messages m ON m.id = h.message_id \
                         WHERE h.challenge_id = $1 GROUP BY m.sender ORDER BY first",
                        &[exec::Arg::from(&id)],
                    )
                    .await
                })
            })
            .await?;
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// Recipients of a message whose holds expired (for the sender's "not collected" notice).
    pub async fn expired_recipients(&self, message_id: &str) -> Result<Vec<String>, StoreError> {
        let message_id = message_id.to_string();
        let holds = self
            .read_op(|db| {
                let message_id = message_id.clone();
                Box::pin(async move { expired_holds(db, &message_id).await })
            })
            .await?;
        Ok(holds.into_iter().map(|(_, recipient)| recipient).collect())
    }
}

/// `(message id, recipient)` of a message's expired holds, by recipient.
pub(super) async fn expired_holds<E: Exec>(
    exec: &mut E,
    message_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let args = [
        exec::Arg::from(message_id),
        HoldState::Expired.as_str().into(),
    ];
    exec.fetch_all(
        "SELECT message_id, recipient FROM holds WHERE message_id = $1 AND state = $2 ORDER BY recipient",
        &args,
    )
    .await?
    .iter()
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .collect()
}

/// The held messages waiting on a challenge (one pending verification covers several messages).
pub(super) async fn messages_of<E: Exec>(
    tx: &mut E,
    challenge_id: &str,
) -> Result<Vec<String>, StoreError> {
    tx.fetch_all(
        "SELECT DISTINCT message_id FROM holds WHERE challenge_id = $1 ORDER BY message_id",
        &[challenge_id.into()],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The messages of a challenge's portal holds still waiting (`held`), by message id.
pub(super) async fn waiting_portal_messages(
    tx: &mut Transaction<'_, Any>,
    challenge_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT message_id FROM holds WHERE challenge_id = $1 AND state = $2 AND outcome = $3 \
         ORDER BY message_id",
    )
    .bind(challenge_id)
    .bind(HoldState::Held.as_str())
    .bind(Outcome::Portal.as_str())
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<_, sqlx::Error>>()?)
}

/// The sender of the first message held for a challenge ("" when none).
pub(super) async fn first_sender(
    tx: &mut Transaction<'_, Any>,
    challenge_id: &str,
) -> Result<String, StoreError> {
    Ok(sqlx::query(
        "SELECT m.sender FROM holds h JOIN held_messages m ON m.id = h.message_id \
         WHERE h.challenge_id = $1 ORDER BY h.created_at, m.id LIMIT 1",
    )
    .bind(challenge_id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get::<String, _>(0))
    .transpose()?
    .unwrap_or_default())
}

/// `(message id, recipient)` of the holds of a challenge for messages from `sender`.
pub(super) async fn holds_of_sender<E: Exec>(
    tx: &mut E,
    challenge_id: &str,
    sender: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    tx.fetch_all(
        "SELECT h.message_id, h.recipient FROM holds h JOIN held_messages m ON m.id = h.message_id \
         WHERE h.challenge_id = $1 AND m.sender = $2 ORDER BY h.message_id",
        &[challenge_id.into(), sender.into()],
    )
    .await?
    .iter()
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .collect()
}

/// The branch of a [`TaggedRead`](super::tagged::TaggedRead) with an earlier attempt's held copy
/// and its holds (tag `h`: copy id, recipient, outcome; one row without a recipient when it has none).
pub(super) fn earlier_branch<'a>(read: &mut super::tagged::TaggedRead<'a>, idem_key: &'a str) {
    use super::tagged::NI;
    let key = read.text(idem_key);
    read.branch(format!(
        "SELECT 'h', m.id, h.recipient, h.outcome, {NI}, {NI}, {NI}, {NI} FROM held_messages m \
         LEFT JOIN holds h ON h.message_id = m.id WHERE m.idem_key = {key}"
    ));
}

/// Takes a row of [`earlier_branch`] into `earlier`; false when the row is of another branch. The
/// holds come in no order: the caller sorts them (as [`existing_holds_on`] does).
pub(super) fn take_earlier(
    row: &super::exec::Row,
    earlier: &mut Option<(String, Vec<(String, String)>)>,
) -> Result<bool, StoreError> {
    if row.get::<String>(0)? != "h" {
        return Ok(false);
    }
    let (id, holds) = earlier.get_or_insert_with(|| (String::new(), Vec::new()));
    *id = row.get(1)?;
    if let Some(recipient) = row.get::<Option<String>>(2)? {
        holds.push((recipient, row.get::<Option<String>>(3)?.unwrap_or_default()));
    }
    Ok(true)
}

/// The held copy with this idempotency key and its holds `(recipient, outcome)`, in one query on `conn`.
pub(super) async fn existing_holds_on(
    conn: &mut sqlx::AnyConnection,
    idem_key: &str,
) -> Result<Option<(String, Vec<(String, String)>)>, StoreError> {
    let mut read = super::tagged::TaggedRead::default();
    earlier_branch(&mut read, idem_key);
    let mut earlier = None;
    for row in read.fetch_all(conn).await? {
        take_earlier(&row, &mut earlier)?;
    }
    if let Some((_, holds)) = &mut earlier {
        holds.sort_unstable();
    }
    Ok(earlier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use HoldState::*;

    /// Every legal change, written out once more by hand.
    const LEGAL: &[(HoldState, HoldState)] = &[
        (Held, Releasing),
        (Held, Portal),
        (Held, Expired),
        (Held, Deleted),
        (Releasing, Sending),
        (Sending, Committing),
        (Sending, Portal),
        (Sending, Expired),
        (Sending, Releasing),
        (Committing, Released),
        (Committing, Releasing),
        (Committing, Uncertain),
        (Uncertain, Released),
        (Uncertain, Releasing),
        (Held, Withdrawn),
        (Releasing, Withdrawn),
        (Portal, Withdrawn),
    ];

    #[test]
    fn hold_transitions_are_exactly_the_legal_ones() {
        for from in HoldState::ALL {
            for to in HoldState::ALL {
                assert_eq!(
                    HoldState::can_transition(from, to),
                    LEGAL.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn illegal_hold_transitions_are_refused() {
        for (from, to) in [
            (Released, Sending),
            (Released, Releasing),
            (Uncertain, Sending),
            (Uncertain, Committing),
            (Held, Sending),
            (Held, Released),
            (Releasing, Committing),
            (Releasing, Released),
            (Portal, Releasing),
            (Expired, Releasing),
            (Deleted, Held),
            (Held, Held),
            // Once its data may have left, or it is over, nothing is withdrawn.
            (Sending, Withdrawn),
            (Committing, Withdrawn),
            (Uncertain, Withdrawn),
            (Released, Withdrawn),
            (Expired, Withdrawn),
            (Deleted, Withdrawn),
            (Withdrawn, Releasing),
            (Withdrawn, Portal),
        ] {
            assert!(!HoldState::can_transition(from, to), "{from} → {to}");
        }
        // A portal hold can only be withdrawn; final states go nowhere.
        assert!(HoldState::ALL
            .iter()
            .all(|to| HoldState::can_transition(Portal, *to) == (*to == Withdrawn)));
        for from in [Released, Expired, Deleted, Withdrawn] {
            assert!(HoldState::ALL
                .iter()
                .all(|to| !HoldState::can_transition(from, *to)));
        }
    }

    #[test]
    fn states_round_trip_and_content_rule() {
        for s in HoldState::ALL {
            assert_eq!(HoldState::parse(s.as_str()).unwrap(), s);
        }
        assert!(HoldState::parse("bogus").is_err());
        assert!(Held.needs_content() && Uncertain.needs_content() && Portal.needs_content());
        assert!(!Released.needs_content() && !Expired.needs_content() && !Deleted.needs_content());
        assert!(!Withdrawn.needs_content());
    }

    async fn store_with_hold(state: HoldState) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        sqlx::query(
            "INSERT INTO held_messages (id, idem_key, sender, sha256, size, key_id, created_at, expires_at) \
             VALUES ('m1', 'k1', 's@a', 'x', 1, 'k', 1, 100)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO holds (message_id, recipient, outcome, state, created_at, updated_at, last_error) \
             VALUES ('m1', 'r@b', 'challenge', $1, 1, 1, 'before')",
        )
        .bind(state.as_str())
        .execute(store.pool())
        .await
        .unwrap();
        (dir, store)
    }

    async fn row(store: &Store) -> (String, i64, i64, Option<String>) {
        let r = sqlx::query(
            "SELECT state, updated_at, attempts, last_error FROM holds WHERE message_id = 'm1'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    }

    /// `released → sending` is refused with a typed error and the row keeps every column.
    #[tokio::test]
    async fn refused_transition_leaves_the_row_unchanged() {
        let (_dir, store) = store_with_hold(Released).await;
        let before = row(&store).await;
        let which = Holds::One {
            message_id: "m1",
            recipient: "r@b",
        };
        let update = HoldUpdate {
            count_attempt: true,
            last_error: Some(None),
            ..HoldUpdate::default()
        };
        let refused = transition(store.pool(), which, Released, Sending, 50, update).await;
        assert!(
            matches!(
                refused,
                Err(StoreError::IllegalTransition {
                    what: "hold",
                    from: "released",
                    to: "sending"
                })
            ),
            "{refused:?}"
        );
        assert!(store
            .transition_hold("m1", "r@b", Released, Sending, 50)
            .await
            .is_err());
        assert_eq!(row(&store).await, before);
        store.close().await;
    }

    /// A legal change from a state the hold is not in moves nothing; from its state it moves it.
    #[tokio::test]
    async fn transition_moves_only_from_the_expected_state() {
        let (_dir, store) = store_with_hold(Committing).await;
        let before = row(&store).await;
        assert!(!store
            .transition_hold("m1", "r@b", Releasing, Sending, 50)
            .await
            .unwrap());
        assert_eq!(row(&store).await, before);
        assert!(store
            .transition_hold("m1", "r@b", Committing, Uncertain, 50)
            .await
            .unwrap());
        assert_eq!(
            row(&store).await,
            ("uncertain".into(), 50, 0, Some("before".into()))
        );
        store.close().await;
    }
}

//! The challenge tables: lookups by token hash, codes and tries, verification (which releases the
//! recipient's holds), portal sessions and recipients' phone numbers.

use sqlx::{Any, Row, Transaction};

use super::{phone::Phone, sms::SmsError, token_hash, Purpose};
use crate::{
    audit::{Event, MaskedPhone, PhoneOutcome, PhoneSource, ReleaseTarget, SmsFailure},
    store::{audit::append, Store, StoreError},
};

/// The held messages waiting on a challenge (one pending verification covers several messages).
pub async fn messages_of(
    tx: &mut Transaction<'_, Any>,
    challenge_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query(
        "SELECT DISTINCT message_id FROM holds WHERE challenge_id = $1 ORDER BY message_id",
    )
    .bind(challenge_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, sqlx::Error>>()?)
}

/// One event per message of the challenge, so each message's report shows its verification; one
/// without a message when the challenge has none (cannot happen through the hook, but nothing is lost).
pub fn per_message(messages: &[String], f: impl Fn(Option<String>) -> Event) -> Vec<Event> {
    if messages.is_empty() {
        return vec![f(None)];
    }
    messages.iter().map(|m| f(Some(m.clone()))).collect()
}

/// A challenge's state. Only `Pending` accepts codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeState {
    Pending,
    Verified,
    Locked,
    Expired,
}

impl ChallengeState {
    pub fn parse(s: &str) -> ChallengeState {
        match s {
            "pending" => ChallengeState::Pending,
            "verified" => ChallengeState::Verified,
            "locked" => ChallengeState::Locked,
            // Anything unknown is treated as closed.
            _ => ChallengeState::Expired,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: String,
    pub recipient: String,
    pub state: ChallengeState,
    pub code_hash: Option<String>,
    pub code_expires_at: Option<i64>,
    pub tries: i64,
    pub expires_at: i64,
}

/// A held message as the portal lists it for one recipient.
#[derive(Debug, Clone)]
pub struct HeldFor {
    pub message_id: String,
    pub sender: String,
    pub outcome: String,
    pub state: String,
    pub created_at: i64,
}

const CHALLENGE_COLS: &str = "id, recipient, state, code_hash, code_expires_at, tries, expires_at";

fn challenge(row: &sqlx::any::AnyRow) -> Result<Challenge, sqlx::Error> {
    Ok(Challenge {
        id: row.try_get(0)?,
        recipient: row.try_get(1)?,
        state: ChallengeState::parse(&row.try_get::<String, _>(2)?),
        code_hash: row.try_get(3)?,
        code_expires_at: row.try_get(4)?,
        tries: row.try_get::<i64, _>(5)?,
        expires_at: row.try_get(6)?,
    })
}

/// The challenge a presented link token opens, or `None`. Looked up by the token's SHA-256 (so the
/// database never compares secrets) and re-checked in constant time.
pub async fn by_token(
    store: &Store,
    purpose: Purpose,
    token: &str,
) -> Result<Option<Challenge>, StoreError> {
    if token.len() > 64 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let column = match purpose {
        Purpose::Recipient => "token_hash",
        Purpose::SenderPhone => "sender_token_hash",
    };
    let sql = format!("SELECT {CHALLENGE_COLS}, {column} FROM challenges WHERE {column} = $1");
    let row = sqlx::query(&sql)
        .bind(&hash)
        .fetch_optional(store.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get(7)?;
    if !crate::secrets::equal(stored.as_bytes(), hash.as_bytes()) {
        return Ok(None);
    }
    Ok(Some(challenge(&row)?))
}

/// A code went out by SMS: stores it (replacing any earlier one) and records the SMS, in one
/// transaction. Called after the provider accepted the message, so an SMS that was never sent never
/// has a usable code, and a usable code always has its audit record. Tries are per challenge and are
/// not reset. Returns false when the challenge no longer takes codes.
pub async fn code_sent(
    store: &Store,
    c: &Challenge,
    code_hash: &str,
    expires_at: i64,
    phone: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.pool().begin().await?;
    let done = sqlx::query(
        "UPDATE challenges SET code_hash = $1, code_expires_at = $2 WHERE id = $3 AND state IN ('pending', 'verified')",
    )
    .bind(code_hash)
    .bind(expires_at)
    .bind(&c.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let messages = messages_of(&mut tx, &c.id).await?;
    let events = per_message(&messages, |message_ref| Event::SmsSent {
        message_ref,
        recipient: c.recipient.clone(),
        challenge_id: c.id.clone(),
        phone: MaskedPhone::from_e164(phone),
    });
    append(&mut tx, now, &events).await?;
    tx.commit().await?;
    Ok(true)
}

/// The SMS provider failed: recorded (masked number, kind of failure; not the provider's text, which
/// may repeat the number). Nothing else changes.
pub async fn sms_failed(
    store: &Store,
    c: &Challenge,
    phone: &str,
    error: &SmsError,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let messages = messages_of(&mut tx, &c.id).await?;
    let failure = match error {
        SmsError::Refused(_) => SmsFailure::Refused,
        SmsError::Unreachable(_) => SmsFailure::Unreachable,
    };
    let events = per_message(&messages, |message_ref| Event::SmsFailed {
        message_ref,
        recipient: c.recipient.clone(),
        challenge_id: c.id.clone(),
        phone: MaskedPhone::from_e164(phone),
        failure,
    });
    append(&mut tx, now, &events).await?;
    tx.commit().await?;
    Ok(())
}

/// Counts a wrong code and records it, in one transaction; the challenge locks at `max_tries` (the
/// lock recorded too). Returns the tries used.
pub async fn wrong_code(
    store: &Store,
    c: &Challenge,
    max_tries: i64,
    now: i64,
) -> Result<i64, StoreError> {
    let mut tx = store.pool().begin().await?;
    let counted = sqlx::query(
        "UPDATE challenges SET tries = tries + 1, \
         state = CASE WHEN tries + 1 >= $1 THEN 'locked' ELSE state END \
         WHERE id = $2 AND state IN ('pending', 'verified')",
    )
    .bind(max_tries)
    .bind(&c.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let row = sqlx::query("SELECT tries FROM challenges WHERE id = $1")
        .bind(&c.id)
        .fetch_one(&mut *tx)
        .await?;
    let tries = row.try_get::<i64, _>(0)?;
    if counted {
        let messages = messages_of(&mut tx, &c.id).await?;
        let mut events = per_message(&messages, |message_ref| Event::CodeFailed {
            message_ref,
            recipient: c.recipient.clone(),
            challenge_id: c.id.clone(),
            attempts_left: (max_tries - tries).max(0) as u32,
        });
        // This update is the one that locked it (a locked challenge counts no more tries).
        if tries >= max_tries {
            events.extend(per_message(&messages, |message_ref| {
                Event::ChallengeLocked {
                    message_ref,
                    recipient: c.recipient.clone(),
                    challenge_id: c.id.clone(),
                }
            }));
        }
        append(&mut tx, now, &events).await?;
    }
    tx.commit().await?;
    Ok(tries)
}

/// The right code: in one transaction the challenge becomes verified, the recipient is verified until
/// `verified_until`, and each of its held messages moves on — `challenge` holds to `releasing` (the
/// worker re-checks TLS and submits to Stalwart), `portal` holds to `portal` (readable on the portal).
/// Returns false when the challenge was no longer pending (a concurrent request won).
pub async fn verify(
    store: &Store,
    c: &Challenge,
    verified_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.pool().begin().await?;
    let done = sqlx::query(
        "UPDATE challenges SET state = 'verified', verified_at = $1, code_hash = NULL \
         WHERE id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(&c.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO recipients (address, phone, verified_until, created_at, updated_at) \
         VALUES ($1, NULL, $2, $3, $3) ON CONFLICT (address) DO UPDATE SET \
         verified_until = excluded.verified_until, updated_at = excluded.updated_at",
    )
    .bind(&c.recipient)
    .bind(verified_until)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let to_portal = sqlx::query(
        "SELECT message_id FROM holds WHERE challenge_id = $1 AND state = 'held' AND outcome = 'portal' \
         ORDER BY message_id",
    )
    .bind(&c.id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    sqlx::query(
        "UPDATE holds SET state = CASE WHEN outcome = 'portal' THEN 'portal' ELSE 'releasing' END, \
         next_attempt_at = $1, updated_at = $1 WHERE challenge_id = $2 AND state = 'held'",
    )
    .bind(now)
    .bind(&c.id)
    .execute(&mut *tx)
    .await?;
    let messages = messages_of(&mut tx, &c.id).await?;
    let mut events = per_message(&messages, |message_ref| Event::CodeSucceeded {
        message_ref,
        recipient: c.recipient.clone(),
        challenge_id: c.id.clone(),
        verified_until,
    });
    // Portal holds are "released" to the portal now; inbox releases are recorded when Stalwart
    // accepts them (hold::release).
    events.extend(to_portal.into_iter().map(|message_ref| Event::Released {
        message_ref,
        recipient: c.recipient.clone(),
        target: ReleaseTarget::Portal,
        queue_id: None,
    }));
    append(&mut tx, now, &events).await?;
    tx.commit().await?;
    Ok(true)
}

/// Held messages of a recipient (all states), newest first.
pub async fn held_for(store: &Store, recipient: &str) -> Result<Vec<HeldFor>, StoreError> {
    Ok(sqlx::query(
        "SELECT h.message_id, m.sender, h.outcome, h.state, h.created_at FROM holds h \
         JOIN held_messages m ON m.id = h.message_id WHERE h.recipient = $1 \
         ORDER BY h.created_at DESC, h.message_id",
    )
    .bind(recipient)
    .fetch_all(store.pool())
    .await?
    .into_iter()
    .map(|r| {
        Ok(HeldFor {
            message_id: r.try_get(0)?,
            sender: r.try_get(1)?,
            outcome: r.try_get(2)?,
            state: r.try_get(3)?,
            created_at: r.try_get(4)?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?)
}

/// Senders of the messages waiting on a challenge.
pub async fn senders(store: &Store, challenge_id: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT m.sender, MIN(h.created_at) AS first FROM holds h JOIN held_messages m ON m.id = h.message_id \
         WHERE h.challenge_id = $1 GROUP BY m.sender ORDER BY first",
    )
    .bind(challenge_id)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, sqlx::Error>>()?)
}

pub async fn phone(store: &Store, recipient: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query("SELECT phone FROM recipients WHERE address = $1")
            .bind(recipient)
            .fetch_optional(store.pool())
            .await?
            .and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten()),
    )
}

/// Records a number for a recipient who has none, inside `tx`. Returns false (and changes nothing)
/// when one is known.
pub async fn set_phone_if_unknown(
    tx: &mut Transaction<'_, Any>,
    recipient: &str,
    phone: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO recipients (address, phone, verified_until, created_at, updated_at) \
         VALUES ($1, $2, NULL, $3, $3) ON CONFLICT (address) DO UPDATE SET phone = excluded.phone, \
         updated_at = excluded.updated_at WHERE recipients.phone IS NULL",
    )
    .bind(recipient)
    .bind(phone)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The sender's entry on the phone-number page: a valid number is stored when the recipient has none,
/// and the entry is recorded (masked number, or none when invalid) in the same transaction, once per
/// message of the challenge. Returns whether the number was stored.
pub async fn sender_phone_entry(
    store: &Store,
    c: &Challenge,
    phone: Option<&Phone>,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.pool().begin().await?;
    let sender = sqlx::query(
        "SELECT m.sender FROM holds h JOIN held_messages m ON m.id = h.message_id \
         WHERE h.challenge_id = $1 ORDER BY h.created_at, m.id LIMIT 1",
    )
    .bind(&c.id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get::<String, _>(0))
    .transpose()?
    .unwrap_or_default();
    let stored = match phone {
        Some(p) => set_phone_if_unknown(&mut tx, &c.recipient, p.as_str(), now).await?,
        None => false,
    };
    let outcome = match (phone, stored) {
        (None, _) => PhoneOutcome::Invalid,
        (Some(_), true) => PhoneOutcome::Recorded,
        (Some(_), false) => PhoneOutcome::AlreadyKnown,
    };
    let messages = messages_of(&mut tx, &c.id).await?;
    let events = per_message(&messages, |message_ref| Event::PhoneNumber {
        message_ref,
        recipient: c.recipient.clone(),
        sender: sender.clone(),
        source: PhoneSource::SenderLink,
        outcome,
        phone: phone.map(|p| MaskedPhone::from_e164(p.as_str())),
    });
    append(&mut tx, now, &events).await?;
    tx.commit().await?;
    Ok(stored)
}

/// A portal session for a verified recipient; returns the cookie value. `code_again`: the right code
/// was entered on a challenge that was already verified (a new session, no new verification) — that
/// code success is recorded in the same transaction, with the recipient's current verified-until.
pub async fn new_session(
    store: &Store,
    c: &Challenge,
    expires_at: i64,
    code_again: Option<i64>,
) -> Result<String, StoreError> {
    let token = super::random_token();
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "INSERT INTO portal_sessions (token_hash, recipient, challenge_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(&c.recipient)
    .bind(&c.id)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    if let Some(now) = code_again {
        let verified_until =
            sqlx::query("SELECT verified_until FROM recipients WHERE address = $1")
                .bind(&c.recipient)
                .fetch_optional(&mut *tx)
                .await?
                .and_then(|r| r.try_get::<Option<i64>, _>(0).ok().flatten())
                .unwrap_or(now);
        let messages = messages_of(&mut tx, &c.id).await?;
        let events = per_message(&messages, |message_ref| Event::CodeSucceeded {
            message_ref,
            recipient: c.recipient.clone(),
            challenge_id: c.id.clone(),
            verified_until,
        });
        append(&mut tx, now, &events).await?;
    }
    tx.commit().await?;
    Ok(token)
}

/// The recipient a session cookie belongs to, while it is valid.
pub async fn session_recipient(
    store: &Store,
    cookie: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    if cookie.len() > 64 {
        return Ok(None);
    }
    Ok(sqlx::query(
        "SELECT recipient FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash(cookie))
    .bind(now)
    .fetch_optional(store.pool())
    .await?
    .map(|r| r.try_get(0))
    .transpose()?)
}

/// Whether `recipient` may read message `id` on the portal (a hold of theirs in state `portal`).
pub async fn portal_hold(store: &Store, id: &str, recipient: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "SELECT 1 FROM holds WHERE message_id = $1 AND recipient = $2 AND state = 'portal'",
    )
    .bind(id)
    .bind(recipient)
    .fetch_optional(store.pool())
    .await?
    .is_some())
}

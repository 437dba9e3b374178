//! The challenge tables: lookups by token hash, codes and tries, verification (which releases the
//! recipient's holds), portal sessions and recipients' phone numbers.

use sqlx::Row;

use super::{token_hash, Purpose};
use crate::store::{Store, StoreError};

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

/// Stores a new code (replacing any earlier one). Tries are per challenge and are not reset.
pub async fn set_code(
    store: &Store,
    id: &str,
    code_hash: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE challenges SET code_hash = $1, code_expires_at = $2 WHERE id = $3 AND state IN ('pending', 'verified')",
    )
    .bind(code_hash)
    .bind(expires_at)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Counts a wrong code; the challenge locks at `max_tries`. Returns the tries used.
pub async fn wrong_code(store: &Store, id: &str, max_tries: i64) -> Result<i64, StoreError> {
    sqlx::query(
        "UPDATE challenges SET tries = tries + 1, \
         state = CASE WHEN tries + 1 >= $1 THEN 'locked' ELSE state END \
         WHERE id = $2 AND state IN ('pending', 'verified')",
    )
    .bind(max_tries)
    .bind(id)
    .execute(store.pool())
    .await?;
    let row = sqlx::query("SELECT tries FROM challenges WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
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
    sqlx::query(
        "UPDATE holds SET state = CASE WHEN outcome = 'portal' THEN 'portal' ELSE 'releasing' END, \
         next_attempt_at = $1, updated_at = $1 WHERE challenge_id = $2 AND state = 'held'",
    )
    .bind(now)
    .bind(&c.id)
    .execute(&mut *tx)
    .await?;
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

/// Records a number for a recipient who has none. Returns false (and changes nothing) when one is known.
pub async fn set_phone_if_unknown(
    store: &Store,
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
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A portal session for a verified recipient; returns the cookie value.
pub async fn new_session(
    store: &Store,
    c: &Challenge,
    expires_at: i64,
) -> Result<String, StoreError> {
    let token = super::random_token();
    sqlx::query(
        "INSERT INTO portal_sessions (token_hash, recipient, challenge_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(&c.recipient)
    .bind(&c.id)
    .bind(expires_at)
    .execute(store.pool())
    .await?;
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

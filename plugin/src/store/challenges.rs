//! The recipient challenges and portal sessions (tables `challenges`, `portal_sessions`): the challenge
//! state machine ([`ChallengeState`]), lookups by token hash, codes and tries, verification (which moves
//! the recipient's holds on), the sender's phone-number entry and sessions. Each change commits with its
//! audit record. Secrets arrive hashed: this file never sees a link token, code or cookie in clear. May
//! call the rest of `store`, `audit` event types and `ids`; nothing above the store.

use sqlx::Row;

use super::{
    audit::append,
    exec::{Arg, Exec},
    holds::{
        self, first_sender, messages_of, waiting_portal_messages, HoldState, HoldUpdate, Holds,
    },
    recipients::{set_phone_if_unknown, set_verified_until, verified_until},
    Store, StoreError,
};
use crate::audit::{Event, MaskedPhone, PhoneOutcome, PhoneSource, ReleaseTarget, SmsFailure};

/// What a link token opens. Each purpose has its own token (and token-hash column) for one challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The recipient's portal link (in the notification mail).
    Recipient,
    /// The sender's "enter the recipient's mobile number" link.
    SenderPhone,
}

impl Purpose {
    fn column(self) -> &'static str {
        match self {
            Purpose::Recipient => "token_hash",
            Purpose::SenderPhone => "sender_token_hash",
        }
    }
}

/// A challenge's state. Only `Pending` and `Verified` take codes (a verified recipient may open a new
/// session with a new code); only `Pending` verifies.
///
/// ```text
///   pending ──right code──► verified
///     │  │                     │
///     │  └──too many tries──► locked ◄──too many tries──┘
///     └─────link expired────► expired
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeState {
    Pending,
    Verified,
    Locked,
    Expired,
}

impl ChallengeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeState::Pending => "pending",
            ChallengeState::Verified => "verified",
            ChallengeState::Locked => "locked",
            ChallengeState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> ChallengeState {
        match s {
            "pending" => ChallengeState::Pending,
            "verified" => ChallengeState::Verified,
            "locked" => ChallengeState::Locked,
            // Anything unknown is treated as closed.
            _ => ChallengeState::Expired,
        }
    }

    /// Whether a code may be sent or entered.
    pub fn takes_codes(self) -> bool {
        matches!(self, ChallengeState::Pending | ChallengeState::Verified)
    }

    /// The legal state changes, and only those.
    pub fn can_transition(from: ChallengeState, to: ChallengeState) -> bool {
        use ChallengeState::*;
        matches!(
            (from, to),
            (Pending, Verified) | (Pending, Locked) | (Verified, Locked) | (Pending, Expired)
        )
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

/// A pending challenge whose notification is not planned yet.
#[derive(Debug, Clone)]
pub struct Unplanned {
    pub id: String,
    pub recipient: String,
    pub sender_asked: bool,
    pub has_phone: bool,
}

/// Which challenges a [`transition`] applies to (those of them in its `from` state).
#[derive(Debug, Clone, Copy)]
enum Challenges<'a> {
    One(&'a str),
    /// Those whose link expired by this time.
    ExpiredBy(i64),
}

/// THE challenge state change: refuses an illegal one before touching anything. Entering `verified`
/// records the time and drops the code. Returns the number of challenges moved.
async fn transition<E: Exec>(
    exec: &mut E,
    which: Challenges<'_>,
    from: ChallengeState,
    to: ChallengeState,
    now: i64,
) -> Result<u64, StoreError> {
    if !ChallengeState::can_transition(from, to) {
        return Err(StoreError::IllegalTransition {
            what: "challenge",
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    let verified = to == ChallengeState::Verified;
    let extra = if verified {
        ", verified_at = $4, code_hash = NULL"
    } else {
        ""
    };
    let filter = match which {
        Challenges::One(_) => "id = $3",
        Challenges::ExpiredBy(_) => "expires_at <= $3",
    };
    let sql = format!("UPDATE challenges SET state = $1{extra} WHERE state = $2 AND {filter}");
    let mut args = vec![Arg::from(to.as_str()), from.as_str().into()];
    args.push(match which {
        Challenges::One(id) => id.into(),
        Challenges::ExpiredBy(t) => t.into(),
    });
    if verified {
        args.push(now.into());
    }
    exec.execute(&sql, &args).await
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

/// One event per message of the challenge, so each message's report shows its verification; one
/// without a message when the challenge has none (cannot happen through the hook, but nothing is lost).
fn per_message(messages: &[String], f: impl Fn(Option<String>) -> Event) -> Vec<Event> {
    if messages.is_empty() {
        return vec![f(None)];
    }
    messages.iter().map(|m| f(Some(m.clone()))).collect()
}

/// The recipient's pending challenge, created when there is none: several held messages for one
/// recipient share one verification. The challenge row is locked until the hook's transaction ends
/// (a no-op `UPDATE`, portable to both backends), so a verification committing meanwhile waits and
/// then moves this hold on with the others; before, it could commit between this lookup and the
/// hook's commit and leave the new hold `held` on a challenge already verified, never released. When
/// the verification committed first, the challenge is no longer pending: with `fresh_2fa` (the hold is
/// a new 2FA hold, decided from facts in which the recipient was not verified) a recipient verified
/// by now means those facts are stale ([`StoreError::VerifiedMeanwhile`]: the hook decides again);
/// otherwise a new challenge is made.
pub(super) async fn pending_challenge<E: Exec>(
    tx: &mut E,
    recipient: &str,
    (now, expires_at): (i64, i64),
    fresh_2fa: bool,
) -> Result<String, StoreError> {
    // 'pending' is written out (it is `ChallengeState::Pending`): the lookup must match the partial
    // unique index `challenges_one_pending ... WHERE state = 'pending'` literally, or neither SQLite
    // nor a generic PostgreSQL plan can use it on this, the hook's, path.
    for _ in 0..3 {
        let locked = tx
            .fetch_optional(
                "UPDATE challenges SET state = 'pending' WHERE recipient = $1 AND state = 'pending' \
                 RETURNING id",
                &[recipient.into()],
            )
            .await?;
        if let Some(row) = locked {
            return row.get(0);
        }
        if fresh_2fa && verified_now(tx, recipient, now).await? {
            return Err(StoreError::VerifiedMeanwhile);
        }
        // None pending: a new one, invisible to every verification until this transaction commits.
        let id = crate::ids::ordered_id("c");
        let inserted = tx
            .fetch_optional(
                "INSERT INTO challenges (id, recipient, state, created_at, expires_at) \
                 VALUES ($1, $2, 'pending', $3, $4) \
                 ON CONFLICT (recipient) WHERE state = 'pending' DO NOTHING RETURNING id",
                &[
                    (&id).into(),
                    recipient.into(),
                    now.into(),
                    expires_at.into(),
                ],
            )
            .await?;
        if inserted.is_some() {
            return Ok(id);
        }
        // A concurrent hook committed one first: lock that one.
    }
    // Verified or replaced three times over within one call: a database error, so the hook answers
    // 503 and Stalwart asks again (fail closed).
    Err(sqlx::Error::RowNotFound.into())
}

/// Whether the recipient's verification is valid now (as committed).
async fn verified_now<E: Exec>(tx: &mut E, recipient: &str, now: i64) -> Result<bool, StoreError> {
    let sql = "SELECT COUNT(*) FROM recipients WHERE address = $1 AND verified_until > $2";
    let row = tx.fetch_one(sql, &[recipient.into(), now.into()]).await?;
    Ok(row.get::<i64>(0)? > 0)
}

impl Store {
    /// The challenge whose `purpose` token hashes to `hash`, with the stored hash (for the caller's
    /// constant-time re-check).
    pub async fn challenge_by_token(
        &self,
        purpose: Purpose,
        hash: &str,
    ) -> Result<Option<(Challenge, String)>, StoreError> {
        let column = purpose.column();
        let sql = format!("SELECT {CHALLENGE_COLS}, {column} FROM challenges WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((challenge(&row)?, row.try_get(7)?)))
    }

    /// The recipient of a challenge.
    pub async fn challenge_recipient(&self, id: &str) -> Result<String, StoreError> {
        self.read_op(|db| {
            let id = id.to_string();
            Box::pin(async move {
                db.fetch_one(
                    "SELECT recipient FROM challenges WHERE id = $1",
                    &[Arg::from(&id)],
                )
                .await?
                .get(0)
            })
        })
        .await
    }

    /// Pending challenges whose link expired become `expired`.
    pub async fn expire_challenges(&self, now: i64) -> Result<u64, StoreError> {
        let (from, to) = (ChallengeState::Pending, ChallengeState::Expired);
        self.write_op(move |db| {
            Box::pin(async move { transition(db, Challenges::ExpiredBy(now), from, to, now).await })
        })
        .await
    }

    /// Pending challenges without a planned recipient notice, oldest first.
    pub async fn unplanned_challenges(&self, limit: i64) -> Result<Vec<Unplanned>, StoreError> {
        let rows = self
            .read_op(|db| {
                Box::pin(async move {
                    let args = [Arg::from(ChallengeState::Pending.as_str()), limit.into()];
                    db.fetch_all(
                        "SELECT c.id, c.recipient, c.sender_asked, r.phone FROM challenges c \
                         LEFT JOIN recipients r ON r.address = c.recipient \
                         WHERE c.state = $1 AND c.notice_queued = 0 ORDER BY c.created_at LIMIT $2",
                        &args,
                    )
                    .await
                })
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Unplanned {
                    id: r.get(0)?,
                    recipient: r.get(1)?,
                    sender_asked: r.get::<i64>(2)? != 0,
                    has_phone: r.get::<Option<String>>(3)?.is_some(),
                })
            })
            .collect()
    }

    /// A code went out by SMS: stores its hash (replacing any earlier one) and records the SMS, in one
    /// transaction. Called after the provider accepted the message, so an SMS that was never sent never
    /// has a usable code, and a usable code always has its audit record. Tries are per challenge and are
    /// not reset. Returns false when the challenge no longer takes codes.
    pub async fn code_sent(
        &self,
        c: &Challenge,
        code_hash: &str,
        expires_at: i64,
        phone: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE challenges SET code_hash = $1, code_expires_at = $2 WHERE id = $3 AND state IN ($4, $5)",
        )
        .bind(code_hash)
        .bind(expires_at)
        .bind(&c.id)
        .bind(ChallengeState::Pending.as_str())
        .bind(ChallengeState::Verified.as_str())
        .execute(&mut **tx)
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

    /// The SMS provider failed: recorded (masked number, kind of failure). Nothing else changes.
    pub async fn sms_failed(
        &self,
        c: &Challenge,
        phone: &str,
        failure: SmsFailure,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let messages = messages_of(&mut tx, &c.id).await?;
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
        &self,
        c: &Challenge,
        max_tries: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let counted = sqlx::query(
            "UPDATE challenges SET tries = tries + 1 WHERE id = $1 AND state IN ($2, $3)",
        )
        .bind(&c.id)
        .bind(ChallengeState::Pending.as_str())
        .bind(ChallengeState::Verified.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query("SELECT tries, state FROM challenges WHERE id = $1")
            .bind(&c.id)
            .fetch_one(&mut **tx)
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
            // This count reached the limit: it locks the challenge (a locked one counts no more tries).
            if tries >= max_tries {
                let state = ChallengeState::parse(&row.try_get::<String, _>(1)?);
                let locked = ChallengeState::Locked;
                transition(&mut *tx, Challenges::One(&c.id), state, locked, now).await?;
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
    pub async fn verify_challenge(
        &self,
        c: &Challenge,
        verified_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let (pending, verified) = (ChallengeState::Pending, ChallengeState::Verified);
        if transition(&mut *tx, Challenges::One(&c.id), pending, verified, now).await? != 1 {
            return Ok(false);
        }
        set_verified_until(&mut tx, &c.recipient, verified_until, now).await?;
        let to_portal = waiting_portal_messages(&mut tx, &c.id).await?;
        let release = HoldUpdate {
            next_attempt_at: Some(now),
            ..HoldUpdate::default()
        };
        for (portal, to) in [(true, HoldState::Portal), (false, HoldState::Releasing)] {
            let which = Holds::OfChallenge {
                challenge_id: &c.id,
                portal,
            };
            holds::transition(&mut **tx, which, HoldState::Held, to, now, release).await?;
        }
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

    /// The sender's entry on the phone-number page: a valid number (E.164) is stored when the recipient
    /// has none, and the entry is recorded (masked number, or none when invalid) in the same
    /// transaction, once per message of the challenge. Returns whether the number was stored.
    pub async fn sender_phone_entry(
        &self,
        c: &Challenge,
        phone: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let sender = first_sender(&mut tx, &c.id).await?;
        let stored = match phone {
            Some(p) => set_phone_if_unknown(&mut tx, &c.recipient, p, now).await?,
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
            phone: phone.map(MaskedPhone::from_e164),
        });
        append(&mut tx, now, &events).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Stores a portal session (by its cookie's hash) for a verified recipient. `code_again`: the
    /// right code was entered on a challenge that was already verified (a new session, no new
    /// verification) — that code success is recorded in the same transaction, with the recipient's
    /// current verified-until.
    pub async fn new_session(
        &self,
        c: &Challenge,
        token_hash: &str,
        expires_at: i64,
        code_again: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO portal_sessions (token_hash, recipient, challenge_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(&c.recipient)
        .bind(&c.id)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        if let Some(now) = code_again {
            let verified_until = verified_until(&mut tx, &c.recipient).await?.unwrap_or(now);
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
        Ok(())
    }

    /// The recipient a session (by its cookie's hash) belongs to, while it is valid.
    pub async fn session_recipient(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT recipient FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use super::ChallengeState::{self, *};

    #[test]
    fn challenge_transitions_are_exactly_the_legal_ones() {
        let all = [Pending, Verified, Locked, Expired];
        let legal = [
            (Pending, Verified),
            (Pending, Locked),
            (Verified, Locked),
            (Pending, Expired),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    ChallengeState::can_transition(from, to),
                    legal.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
            assert_eq!(ChallengeState::parse(from.as_str()), from);
        }
        // Written out in `pending_challenge` (the partial index's predicate).
        assert_eq!(Pending.as_str(), "pending");
        // Refused, among others: a locked or expired challenge never verifies.
        assert!(!ChallengeState::can_transition(Locked, Verified));
        assert!(!ChallengeState::can_transition(Expired, Pending));
        assert!(!ChallengeState::can_transition(Verified, Pending));
        assert_eq!(ChallengeState::parse("bogus"), Expired);
    }
}

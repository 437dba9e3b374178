//! The hook's commit (tables `decisions`, `held_messages`, `holds`, `challenges`, `recipients`, in one
//! transaction with the audit records): what a submission decided, its sealed copy, one hold per held
//! recipient with their shared pending challenge, and a phone number from the subject tag. May call
//! the rest of `store`, `audit` event types and `policy` values.

use sqlx::{Any, Transaction};

use super::{
    admin::{get_settings_on, SettingsOut},
    audit,
    challenges::pending_challenge,
    holds::{existing_holds_on, HoldState},
    recipients::{recipient_facts_on, set_phone_if_unknown},
    sealed::Sealed,
    Store, StoreError, StoredFacts,
};
use crate::{
    audit::{Event, MaskedPhone, PhoneOutcome, PhoneSource},
    policy::{Decision, Outcome, ReasonCode},
};

/// What the hook commits in one transaction.
pub struct HookRecord<'a> {
    pub message_ref: &'a str,
    pub idem_key: &'a str,
    pub queue_id: Option<&'a str>,
    pub sender: &'a str,
    pub sha256: &'a str,
    pub size: usize,
    pub decisions: &'a [Decision],
    /// Present when at least one recipient is held.
    pub sealed: Option<&'a Sealed>,
    /// A retry of a submission whose held copy exists (`message_ref` is that copy's id).
    pub retry: bool,
    pub now: i64,
    pub hold_expires_at: i64,
    /// Audit events (decisions, holds) appended in the same transaction.
    pub audit: &'a [Event],
    /// A number from the sender's `[sms:+…]` subject tag for the one held recipient:
    /// `(recipient, E.164)`. Stored when the recipient has none, and recorded either way.
    pub tag_phone: Option<(&'a str, &'a str)>,
    /// The large attachments taken out of the held copy (their files already written), stored with a
    /// new held copy (a retry keeps the first attempt's).
    pub blobs: &'a [super::blobs::BlobRow],
}

/// What the hook reads before it decides (see [`Store::hook_reads`]).
#[derive(Debug, Default)]
pub struct HookReads {
    /// Recipient data, exemptions and peers of the external recipients.
    pub stored: StoredFacts,
    /// An earlier attempt's held copy and its holds `(recipient, outcome)`.
    pub earlier: Option<(String, Vec<(String, String)>)>,
    /// The sender domain's settings, when the admin set any.
    pub settings: Option<SettingsOut>,
}

impl Store {
    /// Every read of one hook call, one after the other on one connection (one pool checkout, not five:
    /// each checkout costs a ping on release, on PostgreSQL also one before use): the external
    /// recipients' stored facts, the held copy of an earlier attempt (by idempotency key) and the
    /// sender domain's settings.
    pub async fn hook_reads(
        &self,
        external: &[&str],
        idem_key: Option<&str>,
        sender_domain: Option<&str>,
        now: i64,
    ) -> Result<HookReads, StoreError> {
        let mut reads = HookReads::default();
        if external.is_empty() {
            return Ok(reads);
        }
        let mut conn = self.pool.acquire().await?;
        reads.stored = recipient_facts_on(&mut conn, external, now).await?;
        if let Some(key) = idem_key {
            reads.earlier = existing_holds_on(&mut conn, key).await?;
        }
        if let Some(domain) = sender_domain {
            reads.settings = get_settings_on(&mut conn, domain).await?;
        }
        Ok(reads)
    }

    /// Commits decisions, the sealed copy and the holds with their challenges in one transaction.
    /// Idempotent: a retried submission reuses the held copy, its holds and the pending challenges.
    pub async fn record_hook(&self, rec: &HookRecord<'_>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_decisions(&mut tx, rec).await?;
        let mut events = match rec.sealed {
            Some(sealed) => insert_holds(&mut tx, rec, sealed).await?,
            None => Vec::new(),
        };
        if let Some((recipient, phone)) = rec.tag_phone {
            let stored = set_phone_if_unknown(&mut tx, recipient, phone, rec.now).await?;
            events.push(Event::PhoneNumber {
                message_ref: Some(rec.message_ref.to_string()),
                recipient: recipient.to_string(),
                sender: rec.sender.to_string(),
                source: PhoneSource::SubjectTag,
                outcome: if stored {
                    PhoneOutcome::Recorded
                } else {
                    PhoneOutcome::AlreadyKnown
                },
                phone: Some(MaskedPhone::from_e164(phone)),
            });
        }
        audit::append(&mut tx, rec.now, &[rec.audit, &events].concat()).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The hook's decisions, one multi-row insert.
async fn insert_decisions(
    tx: &mut Transaction<'_, Any>,
    rec: &HookRecord<'_>,
) -> Result<(), StoreError> {
    if rec.decisions.is_empty() {
        return Ok(());
    }
    let rows = (0..rec.decisions.len())
        .map(|i| {
            let p = 6 + i * 3;
            format!("($1, $2, $3, ${}, ${}, ${}, $4, $5)", p, p + 1, p + 2)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO decisions (message_ref, queue_id, sender, recipient, outcome, reasons, sha256, created_at) \
         VALUES {rows}"
    );
    let mut q = sqlx::query(&sql)
        .bind(rec.message_ref)
        .bind(rec.queue_id)
        .bind(rec.sender)
        .bind(rec.sha256)
        .bind(rec.now);
    for d in rec.decisions {
        q = q
            .bind(d.recipient.as_str())
            .bind(d.outcome.as_str())
            .bind(serde_json::to_string(&d.reasons).unwrap_or_else(|_| "[]".into()));
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// The sealed copy and one `held` hold per held recipient (with its pending challenge). Returns the
/// `Held` events of the holds this call created (none for a retried submission).
async fn insert_holds(
    tx: &mut Transaction<'_, Any>,
    rec: &HookRecord<'_>,
    sealed: &Sealed,
) -> Result<Vec<Event>, StoreError> {
    // A retry of the same submission finds its copy (same idempotency key) and keeps it; its holds
    // then refer to that copy's id, which the hook took from `existing_holds`.
    let copied = sqlx::query(
        "INSERT INTO held_messages (id, idem_key, queue_id, sender, sha256, size, key_id, wrapped_key, nonce, \
         ciphertext, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (idem_key) DO NOTHING",
    )
    .bind(rec.message_ref)
    .bind(rec.idem_key)
    .bind(rec.queue_id)
    .bind(rec.sender)
    .bind(rec.sha256)
    .bind(rec.size as i64)
    .bind(&sealed.key_id)
    .bind(&sealed.wrapped_key)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(rec.now)
    .bind(rec.hold_expires_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if copied == 0 && !rec.retry {
        // Another call holds this submission under another id: its holds would refer to a copy that
        // does not exist. Roll back (the caller decides again and finds that copy).
        return Err(StoreError::DuplicateSubmission);
    }
    if copied == 1 {
        super::blobs::insert(tx, rec.blobs, rec.now).await?;
    }
    // Each held recipient's pending challenge, locked in address order: two messages to the same
    // recipients in another envelope order then wait for each other instead of deadlocking. A new 2FA
    // hold (not one kept from an earlier attempt) was decided from facts without a verification.
    let mut recipients: Vec<(&str, bool)> = rec
        .decisions
        .iter()
        .filter(|d| d.outcome.is_held())
        .map(|d| {
            let fresh_2fa = d.outcome == Outcome::Challenge && !d.has(ReasonCode::AlreadyHeld);
            (d.recipient.as_str(), fresh_2fa)
        })
        .collect();
    recipients.sort_unstable();
    recipients.dedup_by_key(|(r, _)| *r);
    let mut challenges = std::collections::HashMap::new();
    for (r, fresh_2fa) in recipients {
        let times = (rec.now, rec.hold_expires_at);
        challenges.insert(r, pending_challenge(tx, r, times, fresh_2fa).await?);
    }
    let mut held = Vec::new();
    for d in rec.decisions.iter().filter(|d| d.outcome.is_held()) {
        let challenge_id = challenges[d.recipient.as_str()].clone();
        let inserted = sqlx::query(
            "INSERT INTO holds (message_id, recipient, outcome, state, challenge_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (message_id, recipient) DO NOTHING",
        )
        .bind(rec.message_ref)
        .bind(&d.recipient)
        .bind(d.outcome.as_str())
        .bind(HoldState::Held.as_str())
        .bind(&challenge_id)
        .bind(rec.now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            held.push(Event::Held {
                message_ref: rec.message_ref.to_string(),
                sha256: rec.sha256.to_string(),
                sender: rec.sender.to_string(),
                recipient: d.recipient.clone(),
                outcome: d.outcome,
                challenge_id: Some(challenge_id),
                expires_at: rec.hold_expires_at,
            });
        }
    }
    Ok(held)
}

//! The hook's commit (tables `decisions`, `held_messages`, `holds`, `challenges`, `recipients`, in one
//! transaction with the audit records): what a submission decided, its sealed copy, one hold per held
//! recipient with their shared pending challenge, and a phone number from the subject tag. May call
//! the rest of `store`, `audit` event types and `policy` values.

use super::{
    admin::{settings_branch, take_settings, SettingsOut},
    challenges::pending_challenge,
    exec::{Arg, Exec},
    holds::{earlier_branch, take_earlier, HoldState},
    lite::ready_now,
    placeholders,
    recipients::{facts_branches, set_phone_if_unknown, take_fact},
    sealed::Sealed,
    tagged::{unknown_tag, TaggedRead},
    Store, StoreError, StoredFacts,
};
use crate::{
    audit::{Event, MaskedPhone, PhoneOutcome, PhoneSource},
    policy::{Decision, Outcome, ReasonCode},
};

/// What the hook commits: written by the store's group writer ([`super::group`]) in a transaction it
/// may share with other hooks and webhook deliveries, committed before [`Store::record_hook`] returns.
#[derive(Debug, Clone)]
pub struct HookRecord {
    pub message_ref: String,
    pub idem_key: String,
    pub queue_id: Option<String>,
    pub sender: String,
    pub sha256: String,
    pub size: usize,
    pub decisions: Vec<Decision>,
    /// Present when at least one recipient is held.
    pub sealed: Option<Sealed>,
    /// A retry of a submission whose held copy exists (`message_ref` is that copy's id).
    pub retry: bool,
    pub now: i64,
    pub hold_expires_at: i64,
    /// Audit events (decisions, holds) appended in the same transaction.
    pub audit: Vec<Event>,
    /// A number from the sender's `[sms:+…]` subject tag for the one held recipient:
    /// `(recipient, E.164)`. Stored when the recipient has none, and recorded either way.
    pub tag_phone: Option<(String, String)>,
    /// The large attachments taken out of the held copy (their files already written), stored with a
    /// new held copy (a retry keeps the first attempt's).
    pub blobs: Vec<super::blobs::BlobRow>,
    /// The sender's notices of a new held copy, planned with it (`None`: a retry, or left to the
    /// notice planner, see [`super::Store::plan_sender_notices`]).
    pub sender_notices: Option<SenderNotices>,
}

/// The sender's notices of a held copy, decided when it is held: the copy is marked noticed, its
/// subject kept sealed for the notices (`subject`), and with the withdraw token's hash
/// (`confirmation`) the hold confirmation queued, in the hook's transaction. The planner's later pass
/// would read the whole sealed copy back, open it for its subject and rewrite its row.
#[derive(Debug, Clone, Default)]
pub struct SenderNotices {
    pub confirmation: Option<String>,
    pub subject: Option<Sealed>,
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
    /// Every read of one hook call, in one statement: the external recipients' stored facts, the held
    /// copy of an earlier attempt (by idempotency key) and the sender domain's settings. On a SQLite
    /// file on the caller's thread ([`super::lite::Lite::read_now`]: no hop to a connection's worker
    /// thread and back); otherwise, or when that read would wait, on a kept connection
    /// ([`super::kept`]: no pool checkout, whose pings cost more than these reads).
    pub async fn hook_reads(
        &self,
        external: &[&str],
        idem_key: Option<&str>,
        sender_domain: Option<&str>,
        now: i64,
    ) -> Result<HookReads, StoreError> {
        if external.is_empty() {
            return Ok(HookReads::default());
        }
        let inline = self.lite.as_ref().and_then(|lite| {
            lite.read_now(|conn| {
                ready_now(hook_reads_on(conn, external, idem_key, sender_domain, now))
            })
        });
        if let Some(reads) = inline {
            return reads;
        }
        let mut conn = self.kept.take().await?;
        let reads = hook_reads_on(&mut conn, external, idem_key, sender_domain, now).await;
        self.kept.put(conn, &reads);
        reads
    }

    /// Commits decisions, the sealed copy and the holds with their challenges, and their audit records,
    /// in one transaction (shared with the other writes waiting at the same time; see [`super::group`]).
    /// Idempotent: a retried submission reuses the held copy, its holds and the pending challenges.
    pub async fn record_hook(&self, rec: HookRecord) -> Result<(), StoreError> {
        self.grouped_hook(rec).await
    }
}

/// The hook's reads in one statement ([`TaggedRead`]): the recipients' stored facts, the earlier
/// attempt's held copy and the sender domain's settings.
async fn hook_reads_on<E: Exec>(
    conn: &mut E,
    external: &[&str],
    idem_key: Option<&str>,
    sender_domain: Option<&str>,
    now: i64,
) -> Result<HookReads, StoreError> {
    let mut read = TaggedRead::default();
    facts_branches(&mut read, external, now);
    if let Some(key) = idem_key {
        earlier_branch(&mut read, key);
    }
    if let Some(domain) = sender_domain {
        settings_branch(&mut read, domain);
    }
    let mut reads = HookReads::default();
    for row in read.fetch_all(conn).await? {
        if take_fact(&row, &mut reads.stored)? || take_earlier(&row, &mut reads.earlier)? {
            continue;
        }
        match take_settings(&row)? {
            Some(settings) => reads.settings = Some(settings),
            None => return Err(unknown_tag(&row).into()),
        }
    }
    if let Some((_, holds)) = &mut reads.earlier {
        holds.sort_unstable();
    }
    Ok(reads)
}

/// Writes the hooks' records inside `tx` (the decisions of all of them in one insert) and returns, per
/// hook, the audit events to append: its own, then those of the holds and the phone number it stored.
pub(super) async fn write_hooks<E: Exec>(
    tx: &mut E,
    hooks: &[&HookRecord],
) -> Result<Vec<Vec<Event>>, StoreError> {
    insert_decisions(tx, hooks).await?;
    let mut all = Vec::with_capacity(hooks.len());
    for rec in hooks {
        let mut events = rec.audit.clone();
        if let Some(sealed) = &rec.sealed {
            events.extend(insert_holds(tx, rec, sealed).await?);
        }
        if let Some((recipient, phone)) = &rec.tag_phone {
            let stored = set_phone_if_unknown(tx, recipient, phone, rec.now).await?;
            events.push(Event::PhoneNumber {
                message_ref: Some(rec.message_ref.clone()),
                recipient: recipient.clone(),
                sender: rec.sender.clone(),
                source: PhoneSource::SubjectTag,
                outcome: if stored {
                    PhoneOutcome::Recorded
                } else {
                    PhoneOutcome::AlreadyKnown
                },
                phone: Some(MaskedPhone::from_e164(phone)),
            });
        }
        all.push(events);
    }
    Ok(all)
}

/// The hooks' decisions, multi-row inserts (at most 500 rows each).
async fn insert_decisions<E: Exec>(tx: &mut E, hooks: &[&HookRecord]) -> Result<(), StoreError> {
    let rows: Vec<(&HookRecord, &Decision, String)> = hooks
        .iter()
        .flat_map(|rec| {
            rec.decisions.iter().map(move |d| {
                let reasons = serde_json::to_string(&d.reasons).unwrap_or_else(|_| "[]".into());
                (*rec, d, reasons)
            })
        })
        .collect();
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO decisions (message_ref, queue_id, sender, recipient, outcome, reasons, sha256, \
             created_at) VALUES {}",
            placeholders(tx.sqlite(), chunk.len(), 8)
        );
        let mut args = Vec::with_capacity(chunk.len() * 8);
        for (rec, d, reasons) in chunk {
            args.extend([
                Arg::from(&rec.message_ref),
                rec.queue_id.as_deref().into(),
                (&rec.sender).into(),
                (&d.recipient).into(),
                d.outcome.as_str().into(),
                reasons.into(),
                (&rec.sha256).into(),
                rec.now.into(),
            ]);
        }
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}

/// The sealed copy and one `held` hold per held recipient (with its pending challenge). Returns the
/// `Held` events of the holds this call created (none for a retried submission).
async fn insert_holds<E: Exec>(
    tx: &mut E,
    rec: &HookRecord,
    sealed: &Sealed,
) -> Result<Vec<Event>, StoreError> {
    // A retry of the same submission finds its copy (same idempotency key) and keeps it; its holds
    // then refer to that copy's id, which the hook took from `existing_holds`.
    let notices = rec.sender_notices.as_ref();
    let subject = notices.and_then(|n| n.subject.as_ref());
    let args = [
        Arg::from(&rec.message_ref),
        (&rec.idem_key).into(),
        rec.queue_id.as_deref().into(),
        (&rec.sender).into(),
        (&rec.sha256).into(),
        (rec.size as i64).into(),
        (&sealed.key_id).into(),
        (&sealed.wrapped_key).into(),
        (&sealed.nonce).into(),
        (&sealed.ciphertext).into(),
        rec.now.into(),
        rec.hold_expires_at.into(),
        i64::from(notices.is_some()).into(),
        notices.and_then(|n| n.confirmation.as_ref()).into(),
        subject.map(|s| &s.key_id).into(),
        subject.map_or(Arg::NullBytes, |s| (&s.wrapped_key).into()),
        subject.map_or(Arg::NullBytes, |s| (&s.nonce).into()),
        subject.map_or(Arg::NullBytes, |s| (&s.ciphertext).into()),
    ];
    let copied = tx
        .execute(
            "INSERT INTO held_messages (id, idem_key, queue_id, sender, sha256, size, key_id, wrapped_key, \
             nonce, ciphertext, created_at, expires_at, sender_noticed, withdraw_token_hash, \
             subject_key_id, subject_wrapped_key, subject_nonce, subject_ciphertext) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
             ON CONFLICT (idem_key) DO NOTHING",
            &args,
        )
        .await?;
    if copied == 0 && !rec.retry {
        // Another call holds this submission under another id: its holds would refer to a copy that
        // does not exist. Roll back (the caller decides again and finds that copy).
        return Err(StoreError::DuplicateSubmission);
    }
    if copied == 1 {
        super::blobs::insert(tx, &rec.blobs, rec.now).await?;
        if notices.is_some_and(|n| n.confirmation.is_some()) {
            let kind = super::queue::OutboxKind::SenderHoldConfirmation;
            super::queue::enqueue(tx, kind, &rec.message_ref, &rec.sender, rec.now).await?;
        }
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
        let args = [
            Arg::from(&rec.message_ref),
            (&d.recipient).into(),
            d.outcome.as_str().into(),
            HoldState::Held.as_str().into(),
            (&challenge_id).into(),
            rec.now.into(),
        ];
        let inserted = tx
            .execute(
                "INSERT INTO holds (message_id, recipient, outcome, state, challenge_id, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (message_id, recipient) DO NOTHING",
                &args,
            )
            .await?;
        if inserted == 1 {
            held.push(Event::Held {
                message_ref: rec.message_ref.clone(),
                sha256: rec.sha256.clone(),
                sender: rec.sender.clone(),
                recipient: d.recipient.clone(),
                outcome: d.outcome,
                challenge_id: Some(challenge_id),
                expires_at: rec.hold_expires_at,
            });
        }
    }
    Ok(held)
}

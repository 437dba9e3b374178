//! Recording the decisions: the one `record_hook` transaction per submission, committed before the
//! hook answers. It holds the decisions with their audit events and, when someone must wait, the sealed
//! copy (under the earlier attempt's id for a retry), its expiry, and the sender's `[sms:+…]` subject
//! tag (removed from the held copy; its number stored for the one held recipient).
//!
//! A message refused because its body cannot be held unaltered stores nothing: nothing is delivered or
//! held, and the client gets a permanent error it reports to the sender.

use std::borrow::Cow;

use ring::digest;

use super::{facts::SubmissionFacts, intake::PreSplit, SubmissionError};
use crate::{
    audit::{Event, MaskedPhone, PhoneOutcome, PhoneSource},
    challenge::{
        phone::{self, Phone, SubjectTag},
        sender_notices,
    },
    hold::large,
    ids,
    policy::{Attachments, Decision, Outcome, ReasonCode},
    store::{blobs::BlobRow, HookRecord},
    Gateway,
};

/// Records the decisions; returns the message ref they were recorded under (none when nothing was).
pub async fn record(
    gw: &Gateway,
    facts: &SubmissionFacts<'_>,
    decisions: &[Decision],
    pre: Option<&PreSplit>,
) -> Result<Option<String>, SubmissionError> {
    if decisions
        .iter()
        .any(|d| d.has(ReasonCode::Unholdable8bitBody))
    {
        tracing::warn!(
            sender = facts.sender,
            size = facts.size,
            rebuilt_len = facts.body.exact.as_ref().err(),
            "8-bit body that is not UTF-8: cannot hold an exact copy"
        );
        return Ok(None);
    }
    let refused = decisions.iter().any(|d| d.outcome == Outcome::Reject);
    if refused || !decisions.iter().any(|d| d.outcome.is_held()) {
        decisions_only(gw, facts, decisions, pre).await.map(Some)
    } else {
        hold(gw, facts, decisions, pre).await.map(Some)
    }
}

/// Nothing is held (the message is refused, or every recipient may have it now): the decisions and
/// their audit records only.
async fn decisions_only(
    gw: &Gateway,
    facts: &SubmissionFacts<'_>,
    decisions: &[Decision],
    pre: Option<&PreSplit>,
) -> Result<String, SubmissionError> {
    let message_ref = ids::ordered_id("m");
    let sha = match pre {
        Some(p) => p.sha256.clone(),
        None => facts
            .body
            .exact
            .as_deref()
            .map(sha256_hex)
            .unwrap_or_default(),
    };
    let audit = decision_events(&message_ref, &sha, facts, decisions);
    gw.store
        .record_hook(HookRecord {
            message_ref: message_ref.clone(),
            idem_key: String::new(),
            queue_id: facts.queue_id.map(str::to_string),
            sender: facts.sender.to_string(),
            sha256: sha,
            size: facts.size,
            decisions: decisions.to_vec(),
            sealed: None,
            retry: false,
            now: facts.now,
            hold_expires_at: facts.now,
            audit,
            tag_phone: None,
            blobs: Vec::new(),
            sender_notices: None,
        })
        .await?;
    Ok(message_ref)
}

/// Someone must wait: seal the exact copy (the subject tag removed) and commit it with the decisions.
async fn hold(
    gw: &Gateway,
    facts: &SubmissionFacts<'_>,
    decisions: &[Decision],
    pre: Option<&PreSplit>,
) -> Result<String, SubmissionError> {
    let Ok(raw) = &facts.body.exact else {
        unreachable!("a message without an exact copy is refused, never held");
    };
    let (raw, tag) = subject_tag(raw, facts.sender);
    let sha = sha256_hex(&raw);
    let message_ref = facts
        .earlier_message
        .clone()
        .unwrap_or_else(|| ids::ordered_id("h"));
    let expires_at = facts.now + facts.retention_days * 86_400;
    // Attachments leave the held copy for sealed files (a retry keeps the first copy's).
    let split = match facts.earlier_message {
        Some(_) => None,
        None => take_out(gw, &message_ref, &raw, expires_at, scope(decisions), pre).await?,
    };
    let (held, blobs) = match &split {
        Some(s) => (&s.raw[..], &s.blobs[..]),
        None => (&raw[..], &[][..]),
    };
    let sha = pre.map_or(sha, |p| p.sha256.clone());
    let sealed = gw.master.seal(&message_ref, held)?;
    // A new copy's sender notices are planned with it (a retry's were, with the first copy).
    let sender_notices = facts
        .earlier_message
        .is_none()
        .then(|| sender_notices::at_hold(gw, &message_ref, held, facts.notices));
    let mut audit = decision_events(&message_ref, &sha, facts, decisions);
    let tag_phone = tag_phone(tag, &message_ref, facts.sender, decisions, &mut audit);
    let recorded = gw
        .store
        .record_hook(HookRecord {
            message_ref: message_ref.clone(),
            idem_key: facts.idem_key.clone().unwrap_or_default(),
            queue_id: facts.queue_id.map(str::to_string),
            sender: facts.sender.to_string(),
            sha256: sha,
            size: facts.size,
            decisions: decisions.to_vec(),
            sealed: Some(sealed),
            retry: facts.earlier_message.is_some(),
            now: facts.now,
            hold_expires_at: expires_at,
            audit,
            tag_phone: tag_phone.map(|(r, p)| (r.to_string(), p.as_str().to_string())),
            blobs: blobs.to_vec(),
            sender_notices,
        })
        .await;
    // The streaming intake's blobs are deleted by its caller (a retry of this call may use them).
    if recorded.is_err() {
        large::discard(
            gw,
            &blobs[pre.map_or(0, |p| p.blobs.len()).min(blobs.len())..],
        );
    }
    recorded?;
    Ok(message_ref)
}

/// Every attachment leaves the held copy when a held recipient's policy says so (the copy is shared
/// by the message's held recipients, so the stricter treatment applies to all of them).
fn scope(decisions: &[Decision]) -> large::Scope {
    let by_link = decisions
        .iter()
        .any(|d| d.outcome.is_held() && d.attachments == Attachments::ByLink);
    match by_link {
        true => large::Scope::All,
        false => large::Scope::Large,
    }
}

/// The held copy without the attachments `scope` takes out. The streamed intake took the large ones
/// out already (its blobs come first); with [`large::Scope::All`] the rest leave here, from what
/// stayed in memory. On an error no file of this call is left behind.
async fn take_out(
    gw: &Gateway,
    message_ref: &str,
    raw: &[u8],
    expires_at: i64,
    scope: large::Scope,
    pre: Option<&PreSplit>,
) -> Result<Option<large::Split>, SubmissionError> {
    let Some(p) = pre else {
        return Ok(large::split(gw, message_ref, raw, expires_at, scope, &[]).await?);
    };
    // Split while the request was read: the blobs belong to this copy.
    let mut blobs: Vec<BlobRow> = p
        .blobs
        .iter()
        .map(|b| BlobRow {
            message_id: message_ref.to_string(),
            ..b.clone()
        })
        .collect();
    let raw = match scope {
        large::Scope::Large => raw.to_vec(),
        large::Scope::All => {
            match large::split(gw, message_ref, raw, expires_at, scope, &blobs).await? {
                Some(more) => {
                    blobs.extend(more.blobs);
                    more.raw
                }
                None => raw.to_vec(),
            }
        }
    };
    Ok(Some(large::Split { raw, blobs }))
}

/// What the sender's subject tag said.
enum Tag {
    None,
    Valid(Phone),
    Invalid,
}

/// The sender's `[sms:+316…]` subject tag is removed from the held copy (see [`crate::challenge::phone`]).
fn subject_tag<'a>(raw: &'a [u8], sender: &str) -> (Cow<'a, [u8]>, Tag) {
    match phone::subject_tag(raw) {
        SubjectTag::None => (raw.into(), Tag::None),
        SubjectTag::Valid(phone, stripped) => (stripped.into(), Tag::Valid(phone)),
        SubjectTag::Invalid(number, stripped) => {
            tracing::warn!(
                sender,
                number,
                "invalid [sms:] subject tag removed; number ignored"
            );
            (stripped.into(), Tag::Invalid)
        }
    }
}

/// A number from the subject tag belongs to the one held recipient; with several it is ambiguous and
/// ignored (the sender then gets the phone link). A known number is never overwritten. Stored and
/// recorded in the hook's transaction; an ambiguous or invalid tag is recorded here.
fn tag_phone<'d>(
    tag: Tag,
    message_ref: &str,
    sender: &str,
    decisions: &'d [Decision],
    audit: &mut Vec<Event>,
) -> Option<(&'d str, Phone)> {
    let held: Vec<&Decision> = decisions.iter().filter(|d| d.outcome.is_held()).collect();
    let event = |d: &Decision, phone: Option<&Phone>, outcome| Event::PhoneNumber {
        message_ref: Some(message_ref.to_string()),
        recipient: d.recipient.clone(),
        sender: sender.to_string(),
        source: PhoneSource::SubjectTag,
        outcome,
        phone: phone.map(|p| MaskedPhone::from_e164(p.as_str())),
    };
    match (tag, held.as_slice()) {
        (Tag::Valid(phone), [only]) => Some((only.recipient.as_str(), phone)),
        (Tag::Valid(phone), several) => {
            audit.extend(
                several
                    .iter()
                    .map(|&d| event(d, Some(&phone), PhoneOutcome::Ambiguous)),
            );
            None
        }
        (Tag::Invalid, held) => {
            audit.extend(held.iter().map(|&d| event(d, None, PhoneOutcome::Invalid)));
            None
        }
        (Tag::None, _) => None,
    }
}

/// One audit event per decision, with the SmartTLS evidence of the recipient's domain.
fn decision_events(
    message_ref: &str,
    sha: &str,
    facts: &SubmissionFacts<'_>,
    decisions: &[Decision],
) -> Vec<Event> {
    decisions
        .iter()
        .map(|d| Event::Decision {
            message_ref: message_ref.to_string(),
            sha256: sha.to_string(),
            sender: facts.sender.to_string(),
            recipient: d.recipient.clone(),
            queue_id: facts.queue_id.map(str::to_string),
            outcome: d.outcome,
            reasons: d.reasons.clone(),
            attachments: d.attachments,
            tls: facts
                .recipients
                .iter()
                .find(|r| r.address == d.recipient)
                .and_then(|r| r.tls.clone()),
        })
        .collect()
}

fn sha256_hex(raw: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, raw))
}

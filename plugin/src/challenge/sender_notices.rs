//! The sender's notices about a held message, each optional per sender domain (admin settings, else the
//! `[portal]` defaults): the **hold confirmation** ("your message to X is held for secure delivery;
//! withdraw: <link>") and the **collection receipt** (one mail when the recipient verified and the
//! message reached their inbox or was first opened on the portal).
//!
//! A new held copy gets its notices planned with it, in the hook's transaction ([`at_hold`]): the
//! subject kept sealed (the receipt may go out after the content is erased), the confirmation queued,
//! the copy marked noticed. [`plan`] does the same later, once, for a copy held without that (before
//! the hook planned them): it reads the copy back and opens it for its subject. Receipts are queued by
//! the store in the transaction that records the release or the first opening. [`confirmation`] and
//! [`receipt`] render the mails at send time. They name the recipient, the subject the sender wrote and
//! times — never the content or a code. Calls `store`, the master key and the gateway's keys.

use mail_parser::MessageParser;

use super::token_hash;
use crate::{
    store::{hook::SenderNotices, queue::parse_receipt_ref, HoldState, Sealed, StoreError},
    Gateway,
};

/// The associated data of a message's sealed subject (distinct from the content's).
fn subject_aad(message_id: &str) -> String {
    format!("{message_id}/subject")
}

/// Which of the sender's notices a held message gets: the sender domain's settings (`None`: not set
/// there), else the `[portal]` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub confirmation: bool,
    pub receipt: bool,
}

impl Choice {
    pub fn of(gw: &Gateway, (confirmation, receipt): (Option<bool>, Option<bool>)) -> Choice {
        Choice {
            confirmation: confirmation.unwrap_or(gw.config.portal.hold_confirmation),
            receipt: receipt.unwrap_or(gw.config.portal.collection_receipt),
        }
    }
}

/// The sender's notices of a message held now, planned in the hook's transaction (see
/// [`SenderNotices`]): `raw` is the held copy as it is sealed.
pub fn at_hold(gw: &Gateway, id: &str, raw: &[u8], choice: Choice) -> SenderNotices {
    SenderNotices {
        confirmation: choice
            .confirmation
            .then(|| token_hash(&gw.keys.withdraw_token(id))),
        subject: match choice.confirmation || choice.receipt {
            true => seal_subject(gw, id, raw),
            false => None,
        },
    }
}

/// Plans the sender's notices of held messages the hook did not plan (held before it did, or by
/// another path). Returns how many confirmations were queued.
pub async fn plan(gw: &Gateway, batch: i64, now: i64) -> Result<usize, StoreError> {
    let mut planned = 0;
    for (id, sender) in gw.store.unnoticed_held(batch).await? {
        let choice = Choice::of(gw, gw.store.sender_notice_settings(&sender).await?);
        let subject = match choice.confirmation || choice.receipt {
            true => sealed_subject(gw, &id).await?,
            false => None,
        };
        let hash = choice
            .confirmation
            .then(|| token_hash(&gw.keys.withdraw_token(&id)));
        gw.store
            .plan_sender_notices(&id, &sender, hash.as_deref(), subject.as_ref(), now)
            .await?;
        planned += usize::from(choice.confirmation);
    }
    Ok(planned)
}

/// The held message's subject, sealed on its own; `None` when the content is gone or unreadable.
async fn sealed_subject(gw: &Gateway, id: &str) -> Result<Option<Sealed>, StoreError> {
    let Some(sealed) = gw.store.held(id).await?.and_then(|h| h.sealed) else {
        return Ok(None);
    };
    match gw.master.open(id, &sealed) {
        Ok(raw) => Ok(seal_subject(gw, id, &raw)),
        Err(e) => {
            tracing::error!(error = %e, message = id, "cannot open held message for its subject");
            Ok(None)
        }
    }
}

/// The subject of message `id` (`raw`: its held copy), sealed on its own.
fn seal_subject(gw: &Gateway, id: &str, raw: &[u8]) -> Option<Sealed> {
    let subject = MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default();
    gw.master.seal(&subject_aad(id), subject.as_bytes()).ok()
}

/// The subject as one safe line (no control characters, at most 200 characters), or a dash.
pub async fn subject(gw: &Gateway, id: &str) -> Result<String, StoreError> {
    let Some(sealed) = gw.store.held_subject(id).await? else {
        return Ok("-".into());
    };
    let text = gw
        .master
        .open(&subject_aad(id), &sealed)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    Ok(match line.trim() {
        "" => "-".into(),
        t => t.to_string(),
    })
}

/// The hold confirmation to the sender of message `id`: `(subject, body)`.
pub async fn confirmation(gw: &Gateway, id: &str) -> Result<(String, String), StoreError> {
    let base = gw.config.server.public_url.trim_end_matches('/');
    let link = format!("{base}/s/w/{}", gw.keys.withdraw_token(id));
    let to: Vec<String> = gw
        .store
        .hold_views(id)
        .await?
        .into_iter()
        .map(|h| h.recipient)
        .collect();
    let (to, subject) = (to.join(", "), subject(gw, id).await?);
    Ok((
        format!("Veilig vastgehouden / Held for secure delivery ({id})"),
        format!(
            "Uw bericht \"{subject}\" aan {to} wordt vastgehouden voor beveiligde aflevering:\r\n\
             de ontvanger bevestigt eerst dat hij of zij de ontvanger is.\r\n\
             Zolang het niet is afgeleverd of gelezen, kunt u het intrekken via deze link:\r\n{link}\r\n\r\n\
             Your message \"{subject}\" to {to} is held for secure delivery:\r\n\
             the recipient first confirms who they are.\r\n\
             As long as it has not been delivered or read, you can withdraw it at this link:\r\n{link}\r\n\r\n\
             Referentie / Reference: {id}\r\n"
        ),
    ))
}

/// The collection receipt of one hold (`ref_id` = `<message id> <recipient>`): `(subject, body)`.
pub async fn receipt(gw: &Gateway, ref_id: &str) -> Result<(String, String), StoreError> {
    let (id, rcpt) = parse_receipt_ref(ref_id);
    let at = gw.store.collected_at(id, rcpt).await?.unwrap_or_default();
    let at = crate::time::rfc3339(at);
    let portal = gw
        .store
        .hold_views(id)
        .await?
        .iter()
        .any(|h| h.recipient == rcpt && h.state == HoldState::Portal);
    let (nl, en) = match portal {
        true => (
            "geopend op het beveiligde portaal",
            "opened on the secure portal",
        ),
        false => ("afgeleverd in de mailbox", "delivered to the mailbox"),
    };
    let subject = subject(gw, id).await?;
    let base = gw.config.server.public_url.trim_end_matches('/');
    Ok((
        format!("Ontvangstbevestiging / Collection receipt: {rcpt}"),
        format!(
            "{rcpt} heeft zich als ontvanger bevestigd; uw bericht \"{subject}\" is {nl}\r\n\
             op {at} (UTC).\r\n\r\n\
             {rcpt} confirmed who they are; your message \"{subject}\" was {en}\r\n\
             at {at} (UTC).\r\n\r\n\
             Voor beheerders / For administrators: stalwart-nta7516 audit report {id}\r\n\
             ({base}/v1/admin/audit/report/{id})\r\n"
        ),
    ))
}

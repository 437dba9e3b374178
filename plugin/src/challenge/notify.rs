//! Notification mails, through a durable outbox.
//!
//! [`plan`] derives what must be mailed from committed state — pending challenges whose recipient has a
//! phone number (→ the recipient's notice with the portal link), pending challenges without one (→ the
//! sender's "enter the mobile number" link), expired holds (→ the sender's "not collected" notice) — and
//! records it in `outbox` in the same transaction that marks it planned. [`send_due`] submits due
//! outbox rows to Stalwart's `nta-notify` listener and retries with backoff. Nothing here runs inside the
//! hook (which queues only the sender's hold confirmation of a new copy, see
//! [`super::sender_notices::at_hold`]), and a restart loses nothing: both steps start again from the
//! database.
//!
//! Mails carry no message content and no subject: only the sender, that a secure message waits, the link,
//! and the sender domain's brand (name, support contact, privacy statement).
//! The sender's own notices ([`super::sender_notices`]: hold confirmation, collection receipt) also name
//! the subject the sender wrote, never the content or a code.
//! Calls `store` (planning, the outbox, the facts a mail needs) and `smtp`.

use super::{brand_mail, token_hash, Purpose};
use crate::{
    stalwart_submit::{Envelope, SendError, Session, Target},
    store::{
        outbox::{OutboxKind as Kind, OutboxRow},
        StoreError,
    },
    Gateway,
};

/// Rows planned or sent per pass.
const BATCH: i64 = 200;
const SEND_BATCH: i64 = 100;

/// Records due notifications in the outbox. Returns how many were planned.
pub async fn plan(gw: &Gateway, now: i64) -> Result<usize, StoreError> {
    let mut planned = 0;
    gw.store.expire_challenges(now).await?;
    for c in gw.store.unplanned_challenges(BATCH).await? {
        let (kind, rcpt) = if c.has_phone {
            (Kind::RecipientNotice, c.recipient)
        } else if !c.sender_asked {
            let Some(sender) = gw.store.senders(&c.id).await?.into_iter().next() else {
                continue;
            };
            (Kind::SenderPhone, sender)
        } else {
            continue;
        };
        let hashes = (
            token_hash(&gw.keys.link_token(Purpose::Recipient, &c.id)),
            token_hash(&gw.keys.link_token(Purpose::SenderPhone, &c.id)),
        );
        gw.store
            .plan_challenge_mail(&c.id, kind, &rcpt, (&hashes.0, &hashes.1), now)
            .await?;
        planned += 1;
    }
    for (id, sender) in gw.store.unnoticed_expiries(BATCH).await? {
        gw.store.plan_expiry_notice(&id, &sender, now).await?;
        planned += 1;
    }
    planned += super::sender_notices::plan(gw, BATCH, now).await?;
    Ok(planned)
}

/// Submits due outbox rows to the notify listener. Returns `(sent, failed)`.
pub async fn send_due(gw: &Gateway, now: i64) -> Result<(usize, usize), StoreError> {
    let Some(conf) = &gw.config.stalwart else {
        return Ok((0, 0));
    };
    let rows = gw.store.due_outbox(now, SEND_BATCH).await?;
    if rows.is_empty() {
        return Ok((0, 0));
    }
    let target = match Target::from_config(conf, false) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "notify listener misconfigured; notifications wait");
            return Ok((0, rows.len()));
        }
    };
    // The session of an earlier pass, when it still answers: a held message's notice then costs
    // one transaction, not a new STARTTLS session.
    let mut session: Option<Session> = gw.notify_session.take().await;
    let (mut sent, mut failed) = (0, 0);
    for row in rows {
        // Claimed just before it is sent, so that of several instances (or passes) only one sends it.
        // The lease counts from the claim, not from the pass's start (a long pass would otherwise
        // claim with a lease already run out); after a crash the row is due again once it has passed
        // (`stalwart.claim_lease_secs`, longer than a submission can take).
        if !gw
            .store
            .claim_outbox(&row, crate::time::now(), conf.claim_lease())
            .await?
        {
            continue;
        }
        let mail = render(gw, row.kind, &row.ref_id, &row.rcpt, now).await?;
        if session.as_ref().is_some_and(|s| !s.has_room()) {
            if let Some(s) = session.take() {
                s.quit().await;
            }
        }
        if session.is_none() {
            match Session::open(&target).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    retry_later(gw, &row, &e.to_string(), now).await?;
                    failed += 1;
                    continue;
                }
            }
        }
        let s = session.as_mut().expect("opened above");
        let result = s
            .send(&Envelope {
                from: &conf.notify_from,
                to: &row.rcpt,
                data: &mail,
            })
            .await;
        match result {
            Ok(queue_id) => {
                // Stalwart has it: recorded also across a database restart (else the row would be
                // due again after its lease, and the mail sent twice).
                crate::store::until_available("notification sent", || {
                    gw.store.outbox_sent(&row, &queue_id, now)
                })
                .await?;
                tracing::info!(
                    kind = row.kind.as_str(),
                    rcpt = row.rcpt,
                    queue_id,
                    "notification submitted"
                );
                sent += 1;
            }
            Err(SendError::Uncertain(e)) => {
                // A notification may have gone out; sending it again is better than none, but say so.
                tracing::warn!(error = %e, rcpt = row.rcpt, "notification outcome unknown; will resend");
                retry_later(gw, &row, &e.to_string(), now).await?;
                session = None;
                failed += 1;
            }
            Err(SendError::Failed(e)) => {
                if e.is_sender_refused() {
                    tracing::error!(outbox = row.id, sender = conf.notify_from, error = %e, "Stalwart refused the notification's sender; fix the service account's must-match-sender exception");
                }
                retry_later(gw, &row, &e.to_string(), now).await?;
                session = None;
                failed += 1;
            }
        }
    }
    if let Some(s) = session {
        gw.notify_session.give_back(s).await;
    }
    Ok((sent, failed))
}

async fn retry_later(
    gw: &Gateway,
    row: &OutboxRow,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    let next = now + backoff(gw, row.attempts);
    tracing::warn!(
        outbox = row.id,
        error,
        retry_at = next,
        "notification not submitted; will retry"
    );
    gw.store.outbox_retry(&row.id, next, error, now).await
}

/// `retry_base_secs · 2^attempts`, capped at `retry_max_secs`.
pub fn backoff(gw: &Gateway, attempts: i64) -> i64 {
    let (base, max) = gw
        .config
        .stalwart
        .as_ref()
        .map_or((30, 3600), |s| (s.retry_base_secs, s.retry_max_secs));
    let exp = attempts.clamp(0, 20) as u32;
    base.saturating_mul(1u64 << exp).min(max) as i64
}

/// The mail for one outbox row: RFC 5322 with CRLF line ends, in the sender domain's brand; a non-ASCII
/// name or contact is encoded ([`brand_mail`]).
async fn render(
    gw: &Gateway,
    kind: Kind,
    ref_id: &str,
    rcpt: &str,
    now: i64,
) -> Result<Vec<u8>, StoreError> {
    let base = gw.config.server.public_url.trim_end_matches('/');
    // The senders of a challenge's messages, first held first (for a recipient's notice).
    let senders = match kind {
        Kind::RecipientNotice => gw.store.senders(ref_id).await?,
        _ => Vec::new(),
    };
    // The sender domain's brand: the message's first sender's, or the sender this mail goes to.
    let brand = match kind {
        Kind::RecipientNotice => match senders.first() {
            Some(s) => gw.brands.for_sender(s).clone(),
            None => gw.brands.default_brand().clone(),
        },
        _ => gw.brands.for_sender(rcpt).clone(),
    };
    let (subject, body) = match kind {
        Kind::RecipientNotice => {
            let from = if senders.is_empty() {
                "-".to_string()
            } else {
                senders.join(", ")
            };
            let link = format!(
                "{base}/p/{}",
                gw.keys.link_token(Purpose::Recipient, ref_id)
            );
            (
                "Beveiligd bericht voor u / Secure message for you".to_string(),
                format!(
                    "{from} heeft u een beveiligd bericht gestuurd.\r\n\
                     Open deze link om het te ontvangen; u krijgt een code per sms:\r\n\
                     {link}\r\n\r\n\
                     {from} sent you a secure message.\r\n\
                     Open this link to receive it; you will get a code by text message:\r\n\
                     {link}\r\n"
                ),
            )
        }
        Kind::SenderPhone => {
            let recipient = gw.store.challenge_recipient(ref_id).await?;
            let link = format!(
                "{base}/s/{}",
                gw.keys.link_token(Purpose::SenderPhone, ref_id)
            );
            (
                format!("Mobiel nummer nodig / Mobile number needed: {recipient}"),
                format!(
                    "Uw beveiligde bericht aan {recipient} wacht. Wij kennen het mobiele nummer van deze\r\n\
                     ontvanger nog niet. Vul het eenmalig in via deze link:\r\n{link}\r\n\r\n\
                     Your secure message to {recipient} is waiting. We do not know this recipient's\r\n\
                     mobile number yet. Enter it once at this link:\r\n{link}\r\n\r\n\
                     Tip: zet [sms:+316...] in het onderwerp / put [sms:+316...] in the subject.\r\n"
                ),
            )
        }
        Kind::SenderExpired => {
            let list = gw.store.expired_recipients(ref_id).await?.join(", ");
            (
                format!("Niet opgehaald / Not collected ({ref_id})"),
                format!(
                    "Uw beveiligde bericht {ref_id} is niet opgehaald door: {list}.\r\n\
                     De bewaartermijn is verlopen en de inhoud is verwijderd. Stuur het zo nodig opnieuw.\r\n\r\n\
                     Your secure message {ref_id} was not collected by: {list}.\r\n\
                     The retention period has passed and its content was deleted. Resend it if needed.\r\n"
                ),
            )
        }
        Kind::SenderHoldConfirmation => super::sender_notices::confirmation(gw, ref_id).await?,
        Kind::SenderCollectionReceipt => super::sender_notices::receipt(gw, ref_id).await?,
    };
    let conf = gw.config.stalwart.as_ref();
    let from_addr = conf.map_or("", |c| c.notify_from.as_str());
    let from_name = brand_mail::from_name(&brand, conf.map_or("", |c| c.notify_name.as_str()));
    let domain = from_addr.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let subject = brand_mail::header_text(&brand_mail::subject(&brand, &subject));
    let (encoding, body) = brand_mail::body(&format!("{body}{}", brand_mail::signature(&brand)));
    let mail = format!(
        "Date: {}\r\nFrom: {}\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\
         Message-ID: <{}@{domain}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n{body}",
        rfc5322_date(now),
        brand_mail::from_header(from_name, from_addr),
        crate::ids::new_id("n"),
    );
    Ok(mail.into_bytes())
}

/// `Tue, 01 Dec 2026 08:00:00 +0000`.
pub fn rfc5322_date(unix: i64) -> String {
    let iso = crate::time::rfc3339(unix); // YYYY-MM-DDTHH:MM:SSZ
    let days = unix.div_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][iso[5..7].parse::<usize>().unwrap_or(1) - 1];
    format!(
        "{weekday}, {} {month} {} {} +0000",
        &iso[8..10],
        &iso[0..4],
        &iso[11..19]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            super::rfc5322_date(1_795_336_116),
            "Sun, 22 Nov 2026 08:28:36 +0000"
        );
    }
}

//! Notification mails, through a durable outbox.
//!
//! [`plan`] derives what must be mailed from committed state — pending challenges whose recipient has a
//! phone number (→ the recipient's notice with the portal link), pending challenges without one (→ the
//! sender's "enter the mobile number" link), expired holds (→ the sender's "not collected" notice) — and
//! records it in `outbox` in the same transaction that marks it planned. [`send_due`] submits due
//! outbox rows to Stalwart's `nta-notify` listener and retries with backoff. Nothing here runs inside the
//! hook, and a restart loses nothing: both steps start again from the database.
//!
//! Mails carry no message content and no subject: only the sender, that a secure message waits, the link.

use sqlx::Row;

use super::{store as cstore, token_hash, Purpose};
use crate::{
    audit::{Event, Notice},
    stalwart_submit::{Envelope, SendError, Session, Target},
    store::StoreError,
    Gateway,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RecipientNotice,
    SenderPhone,
    SenderExpired,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RecipientNotice => "recipient_notice",
            Kind::SenderPhone => "sender_phone",
            Kind::SenderExpired => "sender_expired",
        }
    }
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "recipient_notice" => Kind::RecipientNotice,
            "sender_phone" => Kind::SenderPhone,
            "sender_expired" => Kind::SenderExpired,
            _ => return None,
        })
    }
}

/// Records due notifications in the outbox. Returns how many were planned.
pub async fn plan(gw: &Gateway, now: i64) -> Result<usize, StoreError> {
    let pool = gw.store.pool();
    let mut planned = 0;
    sqlx::query(
        "UPDATE challenges SET state = 'expired' WHERE state = 'pending' AND expires_at <= $1",
    )
    .bind(now)
    .execute(pool)
    .await?;
    let rows = sqlx::query(
        "SELECT c.id, c.recipient, c.sender_asked, r.phone FROM challenges c \
         LEFT JOIN recipients r ON r.address = c.recipient \
         WHERE c.state = 'pending' AND c.notice_queued = 0 ORDER BY c.created_at LIMIT 200",
    )
    .fetch_all(pool)
    .await?;
    for row in rows {
        let id: String = row.try_get(0)?;
        let recipient: String = row.try_get(1)?;
        let sender_asked: i64 = row.try_get(2)?;
        let phone: Option<String> = row.try_get(3)?;
        let hashes = (
            token_hash(&gw.keys.link_token(Purpose::Recipient, &id)),
            token_hash(&gw.keys.link_token(Purpose::SenderPhone, &id)),
        );
        let (kind, rcpt, flag) = if phone.is_some() {
            (Kind::RecipientNotice, recipient, "notice_queued")
        } else if sender_asked == 0 {
            let Some(sender) = cstore::senders(&gw.store, &id).await?.into_iter().next() else {
                continue;
            };
            (Kind::SenderPhone, sender, "sender_asked")
        } else {
            continue;
        };
        let mut tx = pool.begin().await?;
        sqlx::query(&format!(
            "UPDATE challenges SET {flag} = 1, token_hash = $1, sender_token_hash = $2 WHERE id = $3"
        ))
        .bind(&hashes.0)
        .bind(&hashes.1)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, kind, &id, &rcpt, now).await?;
        tx.commit().await?;
        planned += 1;
    }
    let expired = sqlx::query(
        "SELECT DISTINCT m.id, m.sender FROM held_messages m JOIN holds h ON h.message_id = m.id \
         WHERE h.state = 'expired' AND m.expiry_noticed = 0 LIMIT 200",
    )
    .fetch_all(pool)
    .await?;
    for row in expired {
        let id: String = row.try_get(0)?;
        let sender: String = row.try_get(1)?;
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE held_messages SET expiry_noticed = 1 WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        enqueue(&mut tx, Kind::SenderExpired, &id, &sender, now).await?;
        tx.commit().await?;
        planned += 1;
    }
    Ok(planned)
}

async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: Kind,
    ref_id: &str,
    rcpt: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (id, kind, ref_id, rcpt, state, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5) ON CONFLICT (kind, ref_id, rcpt) DO NOTHING",
    )
    .bind(crate::ids::new_id("o"))
    .bind(kind.as_str())
    .bind(ref_id)
    .bind(rcpt)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Submits due outbox rows to the notify listener. Returns `(sent, failed)`.
pub async fn send_due(gw: &Gateway, now: i64) -> Result<(usize, usize), StoreError> {
    let Some(conf) = &gw.config.stalwart else {
        return Ok((0, 0));
    };
    let rows = sqlx::query(
        "SELECT id, kind, ref_id, rcpt, attempts FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
         ORDER BY created_at, id LIMIT 100",
    )
    .bind(now)
    .fetch_all(gw.store.pool())
    .await?;
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
    let mut session: Option<Session> = None;
    let (mut sent, mut failed) = (0, 0);
    for row in rows {
        let id: String = row.try_get(0)?;
        let kind: String = row.try_get(1)?;
        let ref_id: String = row.try_get(2)?;
        let rcpt: String = row.try_get(3)?;
        let attempts: i64 = row.try_get(4)?;
        let Some(kind) = Kind::parse(&kind) else {
            continue;
        };
        let mail = render(gw, kind, &ref_id, &rcpt, now).await?;
        if session.as_ref().is_some_and(|s| !s.has_room()) {
            if let Some(s) = session.take() {
                s.quit().await;
            }
        }
        if session.is_none() {
            match Session::open(&target).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    retry_later(gw, &id, attempts, &e.to_string(), now).await?;
                    failed += 1;
                    continue;
                }
            }
        }
        let s = session.as_mut().expect("opened above");
        let result = s
            .send(&Envelope {
                from: &conf.notify_from,
                to: &rcpt,
                data: &mail,
            })
            .await;
        match result {
            Ok(queue_id) => {
                let mut tx = gw.store.pool().begin().await?;
                sqlx::query(
                    "UPDATE outbox SET state = 'sent', queue_id = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3",
                )
                .bind(&queue_id)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                let events = sent_events(&mut tx, kind, &ref_id, &rcpt, &queue_id).await?;
                crate::store::audit::append(&mut tx, now, &events).await?;
                tx.commit().await?;
                tracing::info!(
                    kind = kind.as_str(),
                    rcpt,
                    queue_id,
                    "notification submitted"
                );
                sent += 1;
            }
            Err(SendError::Uncertain(e)) => {
                // A notification may have gone out; sending it again is better than none, but say so.
                tracing::warn!(error = %e, rcpt, "notification outcome unknown; will resend");
                retry_later(gw, &id, attempts, &e.to_string(), now).await?;
                session = None;
                failed += 1;
            }
            Err(SendError::Failed(e)) => {
                retry_later(gw, &id, attempts, &e.to_string(), now).await?;
                session = None;
                failed += 1;
            }
        }
    }
    if let Some(s) = session {
        s.quit().await;
    }
    Ok((sent, failed))
}

/// The audit events of a notification Stalwart accepted: one per message and recipient it is about.
async fn sent_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: Kind,
    ref_id: &str,
    rcpt: &str,
    queue_id: &str,
) -> Result<Vec<Event>, StoreError> {
    let event = |message_ref: String, recipient: String, notice: Notice| Event::NotificationSent {
        message_ref,
        recipient,
        notice,
        to: rcpt.to_string(),
        queue_id: Some(queue_id.to_string()),
    };
    let rows = |sql: &'static str| sqlx::query(sql).bind(ref_id);
    Ok(match kind {
        // ref_id: the challenge; rcpt: its recipient.
        Kind::RecipientNotice => cstore::messages_of(tx, ref_id)
            .await?
            .into_iter()
            .map(|m| event(m, rcpt.to_string(), Notice::RecipientNotice))
            .collect(),
        // ref_id: the challenge; rcpt: the sender asked for the recipient's number.
        Kind::SenderPhone => rows(
            "SELECT h.message_id, h.recipient FROM holds h JOIN held_messages m ON m.id = h.message_id \
             WHERE h.challenge_id = $1 AND m.sender = $2 ORDER BY h.message_id",
        )
        .bind(rcpt)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok(event(r.try_get(0)?, r.try_get(1)?, Notice::SenderPhoneRequest)))
        .collect::<Result<_, sqlx::Error>>()?,
        // ref_id: the message; rcpt: its sender; one event per recipient who did not collect it.
        Kind::SenderExpired => rows(
            "SELECT message_id, recipient FROM holds WHERE message_id = $1 AND state = 'expired' \
             ORDER BY recipient",
        )
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok(event(r.try_get(0)?, r.try_get(1)?, Notice::SenderNotCollected)))
        .collect::<Result<_, sqlx::Error>>()?,
    })
}

async fn retry_later(
    gw: &Gateway,
    id: &str,
    attempts: i64,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    let next = now + backoff(gw, attempts);
    tracing::warn!(
        outbox = id,
        error,
        retry_at = next,
        "notification not submitted; will retry"
    );
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(next)
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(gw.store.pool())
    .await?;
    Ok(())
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

/// The mail for one outbox row: RFC 5322 with CRLF line ends, ASCII only (no transfer encoding needed).
async fn render(
    gw: &Gateway,
    kind: Kind,
    ref_id: &str,
    rcpt: &str,
    now: i64,
) -> Result<Vec<u8>, StoreError> {
    let base = gw.config.server.public_url.trim_end_matches('/');
    let (subject, body) = match kind {
        Kind::RecipientNotice => {
            let senders = cstore::senders(&gw.store, ref_id).await?;
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
            let recipient: String = sqlx::query("SELECT recipient FROM challenges WHERE id = $1")
                .bind(ref_id)
                .fetch_one(gw.store.pool())
                .await?
                .try_get(0)?;
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
            let rows = sqlx::query(
                "SELECT recipient FROM holds WHERE message_id = $1 AND state = 'expired' ORDER BY recipient",
            )
            .bind(ref_id)
            .fetch_all(gw.store.pool())
            .await?;
            let list = rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?
                .join(", ");
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
    };
    let conf = gw.config.stalwart.as_ref();
    let from_addr = conf.map_or("", |c| c.notify_from.as_str());
    let from_name = conf.map_or("", |c| c.notify_name.as_str());
    let domain = from_addr.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mail = format!(
        "Date: {}\r\nFrom: \"{from_name}\" <{from_addr}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\
         Message-ID: <{}@{domain}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        rfc5322_date(now),
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

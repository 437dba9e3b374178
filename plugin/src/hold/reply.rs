//! Secure replies from the portal: the reply mail ([`compose`]) and its submission to Stalwart's
//! `nta-release` listener ([`send_now`] right after the portal committed it, [`send_due`] from the
//! background worker for every retry).
//!
//! The reply goes to the message's original sender, a local mailbox: `From` the gateway's notify address
//! (the recipient's own address is not ours to use), `Reply-To` the recipient, the header
//! `X-NTA7516-Portal-Reply: <recipient>` and a first body line saying it was sent via the secure portal,
//! `In-Reply-To`/`References` for threading, the attachments base64 in `multipart/mixed`. It is built
//! once, sealed and committed before anything is sent, so every attempt submits the same bytes.
//!
//! Sending keeps the release rule: claimed (`sending`), marked `committing` before the data, recorded
//! after Stalwart's answer (also across a database restart); a refusal or an unreachable listener makes
//! it `pending` again with backoff; a lost answer after the data makes it `uncertain`, never re-sent —
//! so a reply is never lost and never sent twice. Calls `store`, `stalwart_submit` and the master key.

use mail_builder::{
    headers::{address::Address, message_id::MessageId, text::Text},
    MessageBuilder,
};

use crate::{
    audit::Event,
    stalwart_submit::{Envelope, SendError, Session, SmtpError, Target},
    store::{
        replies::{ReplyRow, ReplyState, ReplyStep},
        StoreError,
    },
    Gateway,
};

/// Replies submitted per worker pass.
const BATCH: i64 = 100;

/// The header naming the portal recipient who wrote a reply.
pub const PORTAL_REPLY_HEADER: &str = "X-NTA7516-Portal-Reply";

/// What a reply answers: the original message's subject and threading ids (without angle brackets).
#[derive(Debug, Clone, Default)]
pub struct Original {
    pub subject: String,
    pub message_id: Option<String>,
    pub references: Vec<String>,
}

/// One attached file as uploaded (its name already sanitised).
#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A reply as the recipient wrote it.
pub struct Written<'a> {
    pub reply_id: &'a str,
    pub recipient: &'a str,
    /// The original sender: the reply's `To`.
    pub sender: &'a str,
    pub text: &'a str,
    pub attachments: &'a [Attachment],
}

/// The first line of every reply's text, in both languages.
pub fn sent_via_line(recipient: &str) -> String {
    format!(
        "Verzonden via het beveiligde portaal door / Sent via the secure portal by: {}",
        one_line(recipient)
    )
}

/// `Re: <subject>` (once).
pub fn reply_subject(subject: &str) -> String {
    let s = one_line(subject);
    let s = s.trim();
    if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

/// A header value without line breaks or other control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Builds the reply mail (CRLF, RFC 2047 subject, RFC 2231 file names, base64 attachments). `None`
/// without a `[stalwart]` section: there is no notify address to send it from.
pub fn compose(gw: &Gateway, original: &Original, w: &Written<'_>, now: i64) -> Option<Vec<u8>> {
    let conf = gw.config.stalwart.as_ref()?;
    let domain = conf
        .notify_from
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    let text = format!(
        "{}\r\n\r\n{}\r\n",
        sent_via_line(w.recipient),
        w.text.replace("\r\n", "\n").replace('\n', "\r\n")
    );
    let mut m = MessageBuilder::new()
        .from(Address::new_address(
            Some(conf.notify_name.as_str()),
            conf.notify_from.as_str(),
        ))
        .reply_to(w.recipient)
        .to(w.sender)
        .subject(reply_subject(&original.subject))
        .date(now)
        .message_id(format!("{}@{domain}", w.reply_id))
        .header(PORTAL_REPLY_HEADER, Text::new(one_line(w.recipient)))
        .text_body(text);
    if let Some(id) = &original.message_id {
        let mut refs: Vec<String> = original.references.clone();
        refs.retain(|r| r != id);
        refs.push(id.clone());
        m = m
            .in_reply_to(MessageId::new(id.clone()))
            .references(MessageId::new_list(refs.into_iter()));
    }
    for a in w.attachments {
        m = m.attachment("application/octet-stream", a.name.clone(), a.bytes.clone());
    }
    m.write_to_vec().ok()
}

/// Claimed replies that outlived `stalwart.claim_lease_secs` (their process stopped): `sending` ones
/// are pending again, `committing` ones `uncertain`. Run with the release recovery.
pub async fn recover(gw: &Gateway, now: i64) -> Result<(), StoreError> {
    let Some(conf) = &gw.config.stalwart else {
        return Ok(());
    };
    let n = gw.store.recover_replies(now, conf.claim_lease()).await?;
    if n > 0 {
        tracing::error!(replies = n, "portal reply outcome unknown after a restart; check Stalwart's queue (state uncertain, not re-sent)");
    }
    Ok(())
}

/// Submits one reply now, right after it was committed (the worker retries it when this fails).
pub async fn send_now(gw: &Gateway, id: &str) -> Result<(), StoreError> {
    let Some(reply) = gw.store.reply(id).await? else {
        return Ok(());
    };
    if reply.state == ReplyState::Pending {
        send(gw, vec![reply], crate::time::now()).await?;
    }
    Ok(())
}

/// Submits every due reply. Returns `(sent, not sent)`.
pub async fn send_due(gw: &Gateway, now: i64) -> Result<(usize, usize), StoreError> {
    let due = gw.store.due_replies(now, BATCH).await?;
    if due.is_empty() {
        return Ok((0, 0));
    }
    send(gw, due, now).await
}

async fn send(
    gw: &Gateway,
    replies: Vec<ReplyRow>,
    now: i64,
) -> Result<(usize, usize), StoreError> {
    let Some(conf) = &gw.config.stalwart else {
        return Ok((0, replies.len()));
    };
    // As for releases: nothing goes through a Stalwart that `stalwart check` finds unsafe.
    if gw.stalwart_check.gate() != crate::policy::StalwartGate::Open {
        return Ok((0, replies.len()));
    }
    let target = Target::from_config(conf, true);
    // Replies go to the release listener: over the releases' kept session.
    let mut session: Option<Session> = gw.release_session.take().await;
    let (mut sent, mut failed) = (0, 0);
    for reply in replies {
        // The claim: only one worker (or request) moves it out of `pending`.
        if !gw
            .store
            .transition_reply(&reply.id, ReplyState::Pending, ReplyState::Sending, now)
            .await?
        {
            continue;
        }
        let (at, outcome) = send_one(gw, &target, &mut session, &reply).await;
        let recorded = crate::store::until_available("portal reply outcome", || {
            record(gw, &reply, at, &outcome, now)
        })
        .await;
        if let Err(e) = recorded {
            tracing::error!(reply = %reply.id, state = %at, ?outcome, error = %e, "portal reply outcome not recorded; it stays claimed until its lease runs out");
            return Err(e);
        }
        match outcome {
            Outcome::Sent { .. } => sent += 1,
            _ => failed += 1,
        }
    }
    if let Some(s) = session {
        gw.release_session.give_back(s).await;
    }
    Ok((sent, failed))
}

/// What happened to one claimed reply.
#[derive(Debug)]
enum Outcome {
    Sent { queue_id: String },
    Retry { error: String },
    Uncertain { error: String },
}

/// One claimed reply: the state it is in now (`sending`, or `committing` once the data went out) and
/// what happened.
async fn send_one(
    gw: &Gateway,
    target: &Result<Target, SmtpError>,
    session: &mut Option<Session>,
    reply: &ReplyRow,
) -> (ReplyState, Outcome) {
    let retry = |error: String| (ReplyState::Sending, Outcome::Retry { error });
    let raw = match &reply.sealed {
        Some(sealed) => match gw.master.open(&reply.id, sealed) {
            Ok(raw) => raw,
            Err(e) => return retry(e.to_string()),
        },
        None => return retry("reply content no longer held".into()),
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => return retry(e.to_string()),
    };
    if session.as_ref().is_some_and(|s| !s.has_room()) {
        if let Some(s) = session.take() {
            s.quit().await;
        }
    }
    if session.is_none() {
        match Session::open(target).await {
            Ok(s) => *session = Some(s),
            Err(e) => return retry(e.to_string()),
        }
    }
    let now = crate::time::now();
    match gw
        .store
        .transition_reply(&reply.id, ReplyState::Sending, ReplyState::Committing, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return retry("reply changed state".into()),
        Err(e) => return retry(e.to_string()),
    }
    let from = gw
        .config
        .stalwart
        .as_ref()
        .map_or("", |c| c.notify_from.as_str());
    let s = session.as_mut().expect("opened above");
    let result = s
        .send(&Envelope {
            from,
            to: &reply.sender,
            data: &raw,
        })
        .await;
    let outcome = match result {
        Ok(queue_id) => Outcome::Sent { queue_id },
        Err(SendError::Failed(e)) => {
            *session = None;
            if e.is_sender_refused() {
                tracing::error!(reply = %reply.id, sender = from, error = %e, "Stalwart refused the portal reply's sender; fix the service account's must-match-sender exception");
            }
            Outcome::Retry {
                error: e.to_string(),
            }
        }
        Err(SendError::Uncertain(e)) => {
            *session = None;
            Outcome::Uncertain {
                error: e.to_string(),
            }
        }
    };
    (ReplyState::Committing, outcome)
}

/// Commits what happened to one reply (in state `at`) with its audit record.
async fn record(
    gw: &Gateway,
    reply: &ReplyRow,
    at: ReplyState,
    outcome: &Outcome,
    now: i64,
) -> Result<(), StoreError> {
    let (message_ref, recipient, sender, reply_id) = (
        reply.message_id.clone(),
        reply.recipient.clone(),
        reply.sender.clone(),
        reply.id.clone(),
    );
    let (to, next_at, error, queue_id, event) = match outcome {
        Outcome::Sent { queue_id } => (
            ReplyState::Sent,
            now,
            None,
            Some(queue_id.as_str()),
            Event::PortalReplySent {
                message_ref,
                recipient,
                sender,
                reply_id,
                queue_id: Some(queue_id.clone()),
            },
        ),
        Outcome::Retry { error } | Outcome::Uncertain { error } => {
            let retry_at = matches!(outcome, Outcome::Retry { .. })
                .then(|| now + crate::challenge::notify::backoff(gw, reply.attempts));
            let to = match retry_at {
                Some(_) => ReplyState::Pending,
                None => ReplyState::Uncertain,
            };
            match retry_at {
                Some(at) => {
                    tracing::warn!(reply = %reply.id, error, retry_at = at, "portal reply not submitted; will retry")
                }
                None => {
                    tracing::error!(reply = %reply.id, error, "portal reply outcome unknown; not re-sent automatically")
                }
            }
            let event = Event::PortalReplyFailed {
                message_ref,
                recipient,
                sender,
                reply_id,
                error: error.clone(),
                retry_at,
            };
            (
                to,
                retry_at.unwrap_or(now),
                Some(error.as_str()),
                None,
                event,
            )
        }
    };
    let step = ReplyStep {
        id: &reply.id,
        from: at,
        to,
        next_attempt_at: next_at,
        error,
        queue_id,
        event,
    };
    if !gw.store.finish_reply(&step, now).await? {
        tracing::warn!(reply = %reply.id, from = %at, to = %to, "portal reply changed state during its submission; left as it is");
    } else if let Some(q) = queue_id {
        tracing::info!(reply = %reply.id, queue_id = q, "portal reply submitted to Stalwart");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_header_values() {
        assert_eq!(reply_subject("Uitslag"), "Re: Uitslag");
        assert_eq!(reply_subject("RE: Uitslag"), "RE: Uitslag");
        assert_eq!(reply_subject(""), "Re: ");
        assert_eq!(reply_subject("a\r\nBcc: x@y"), "Re: a  Bcc: x@y");
        assert!(!sent_via_line("a@b\r\nX: y").contains('\n'));
    }
}

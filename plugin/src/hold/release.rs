//! Releasing verified holds into Stalwart's `nta-release` listener.
//!
//! A hold in `releasing` is claimed (`sending`), its recipient domain re-checked with the TLS-verdict seam
//! (only Secure is released over SMTP; anything else turns the hold into a portal hold, never an insecure
//! delivery), then marked `committing` and submitted: MAIL FROM the original sender, RCPT TO the
//! recipient, DATA with the held bytes. On `250` the hold is `released` with Stalwart's queue id, and the
//! content is deleted once no other recipient of the message still needs it. A refusal or an unreachable
//! listener puts the hold back to `releasing` with exponential backoff. A lost reply after the final dot
//! makes it `uncertain`: kept, reported, never sent again automatically — so nothing is delivered twice.
//! Every step is a [`HoldState`] transition through the store (see `store::holds` for the machine).
//! Calls `store`, `smtp`, the TLS-verdict seam and the master key.

use std::time::Duration;

use crate::{
    audit::{Event, ReleaseTarget},
    policy::TlsStatus,
    stalwart_submit::{Envelope, SendError, Session, Target},
    store::{
        holds::{DueRelease, ReleaseStep},
        HoldState, StoreError,
    },
    Gateway,
};

/// Holds released per pass.
const BATCH: i64 = 100;

/// Claims that outlived `stalwart.claim_lease_secs` (their process stopped: this one before a restart,
/// or another instance): `sending` holds (nothing submitted yet) go back to `releasing`; `committing`
/// holds (the message may have reached Stalwart) become `uncertain`. The worker runs this at start and
/// then periodically, so a surviving instance also takes over the claims of one that died.
pub async fn recover(gw: &Gateway, now: i64) -> Result<(), StoreError> {
    let Some(conf) = &gw.config.stalwart else {
        return Ok(());
    };
    let n = gw.store.recover_releases(now, conf.claim_lease()).await?;
    if n > 0 {
        tracing::error!(holds = n, "release outcome unknown after a restart; check Stalwart's queue before releasing these again");
    }
    Ok(())
}

/// What happened to one hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Smtp { queue_id: String },
    Portal,
    Retry { error: String },
    Uncertain { error: String },
    Expired,
}

/// Releases due holds; returns what happened to each `(message id, recipient, result)`.
pub async fn release_due(
    gw: &Gateway,
    now: i64,
) -> Result<Vec<(String, String, Released)>, StoreError> {
    let Some(conf) = &gw.config.stalwart else {
        return Ok(Vec::new());
    };
    // While `stalwart check` finds Stalwart unsafe or unreadable (`on_unsafe = "hold"`), nothing is
    // released through it: the holds stay `releasing` and leave at a run after it is safe again.
    if gw.stalwart_check.gate() != crate::policy::StalwartGate::Open {
        return Ok(Vec::new());
    }
    let due = gw.store.due_releases(now, BATCH).await?;
    let mut out = Vec::new();
    if due.is_empty() {
        return Ok(out);
    }
    let target = Target::from_config(conf, true);
    let mut session: Option<Session> = gw.release_session.take().await;
    for hold in due {
        let (id, rcpt) = (hold.message_id.as_str(), hold.recipient.as_str());
        // The claim: only one worker moves it out of `releasing`.
        if !gw
            .store
            .transition_hold(id, rcpt, HoldState::Releasing, HoldState::Sending, now)
            .await?
        {
            continue;
        }
        let (at, result) = release_one(gw, &target, &mut session, &hold).await;
        // What happened outside (Stalwart may have the message now) must reach the database, also
        // across a database restart; past the patience the hold stays claimed until `recover`.
        let recorded = crate::store::until_available("release outcome", || {
            record(gw, &hold, at, &result, now)
        })
        .await;
        if let Err(e) = recorded {
            tracing::error!(message = %hold.message_id, rcpt = %hold.recipient, state = %at, ?result, error = %e, "release outcome not recorded; the hold stays claimed until its lease runs out");
            return Err(e);
        }
        out.push((hold.message_id, hold.recipient, result));
    }
    if let Some(s) = session {
        gw.release_session.give_back(s).await;
    }
    Ok(out)
}

/// One claimed hold: returns the state it is in now (`sending`, or `committing` once the data went
/// out) and what happened.
async fn release_one(
    gw: &Gateway,
    target: &Result<Target, crate::stalwart_submit::SmtpError>,
    session: &mut Option<Session>,
    hold: &DueRelease,
) -> (HoldState, Released) {
    let (id, rcpt) = (hold.message_id.as_str(), hold.recipient.as_str());
    let raw = match prepare(gw, target, session, id, rcpt).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(result)) => return (HoldState::Sending, result),
        Err(e) => {
            let error = e.to_string();
            return (HoldState::Sending, Released::Retry { error });
        }
    };
    match gw
        .store
        .transition_hold(
            id,
            rcpt,
            HoldState::Sending,
            HoldState::Committing,
            crate::time::now(),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            let error = "hold changed state".to_string();
            return (HoldState::Sending, Released::Retry { error });
        }
        Err(e) => {
            let error = e.to_string();
            return (HoldState::Sending, Released::Retry { error });
        }
    }
    let s = session.as_mut().expect("prepare opened it");
    let result = s
        .send(&Envelope {
            from: &hold.sender,
            to: rcpt,
            data: &raw,
        })
        .await;
    let result = match result {
        Ok(queue_id) => Released::Smtp { queue_id },
        Err(SendError::Failed(e)) => {
            *session = None;
            if e.is_sender_refused() {
                // A deployment error (Stalwart's must-match-sender), not the message's: it stays held.
                tracing::error!(message = id, rcpt, sender = hold.sender, error = %e, "Stalwart refused the release's sender; fix the service account's must-match-sender exception");
            }
            Released::Retry {
                error: e.to_string(),
            }
        }
        Err(SendError::Uncertain(e)) => {
            *session = None;
            Released::Uncertain {
                error: e.to_string(),
            }
        }
    };
    (HoldState::Committing, result)
}

/// Everything before the data leaves: the TLS re-check (only Secure leaves by SMTP), the content, an
/// open session. `Ok(Err(..))`: the hold's outcome without sending.
async fn prepare(
    gw: &Gateway,
    target: &Result<Target, crate::stalwart_submit::SmtpError>,
    session: &mut Option<Session>,
    id: &str,
    rcpt: &str,
) -> Result<Result<Vec<u8>, Released>, StoreError> {
    // 1. TLS re-check: only Secure leaves by SMTP.
    let domain = rcpt.rsplit_once('@').map_or("", |(_, d)| d);
    let budget = Duration::from_millis(gw.config.hook.tls_budget_ms);
    let status = match tokio::time::timeout(budget, gw.tls.verdict(domain, budget)).await {
        Ok(f) => f.status,
        Err(_) => TlsStatus::Unknown,
    };
    if status != TlsStatus::Secure {
        tracing::info!(
            message = id,
            rcpt,
            tls = status.as_str(),
            "TLS not secure at release: portal"
        );
        return Ok(Err(Released::Portal));
    }
    // 2. The content.
    let Some(held) = gw.store.held(id).await? else {
        return Ok(Err(Released::Expired));
    };
    let Some(sealed) = held.sealed else {
        return Ok(Err(Released::Expired));
    };
    let raw = match gw.master.open(id, &sealed) {
        Ok(raw) => raw,
        Err(e) => {
            return Ok(Err(Released::Retry {
                error: e.to_string(),
            }))
        }
    };
    // Large attachments: their text parts get this recipient's download link.
    let raw = super::large::for_recipient(gw, id, rcpt, raw).await?;
    // 3. SMTP.
    let target = match target {
        Ok(t) => t,
        Err(e) => {
            return Ok(Err(Released::Retry {
                error: e.to_string(),
            }))
        }
    };
    if session.as_ref().is_some_and(|s| !s.has_room()) {
        if let Some(s) = session.take() {
            s.quit().await;
        }
    }
    if session.is_none() {
        match Session::open(target).await {
            Ok(s) => *session = Some(s),
            Err(e) => {
                return Ok(Err(Released::Retry {
                    error: e.to_string(),
                }))
            }
        }
    }
    Ok(Ok(raw))
}

/// Commits what happened to one hold (it is in state `at`) and its audit record in one transaction.
async fn record(
    gw: &Gateway,
    hold: &DueRelease,
    at: HoldState,
    result: &Released,
    now: i64,
) -> Result<(), StoreError> {
    let (id, rcpt) = (hold.message_id.as_str(), hold.recipient.as_str());
    let (message_ref, recipient) = (id.to_string(), rcpt.to_string());
    // (new state, next attempt at, error kept on the hold, Stalwart's queue id, audit event)
    let (to, next_at, error, queue_id, event) = match result {
        Released::Smtp { queue_id } => (
            HoldState::Released,
            now,
            None,
            Some(queue_id.as_str()),
            // Stalwart's queue id (hex in its reply) links its webhook delivery events to the message.
            Event::Released {
                message_ref,
                recipient,
                target: ReleaseTarget::Inbox,
                queue_id: u64::from_str_radix(queue_id, 16).ok(),
            },
        ),
        Released::Portal => (
            HoldState::Portal,
            now,
            Some("TLS not secure at release time"),
            None,
            Event::Released {
                message_ref,
                recipient,
                target: ReleaseTarget::Portal,
                queue_id: None,
            },
        ),
        Released::Retry { error } | Released::Uncertain { error } => {
            let retry_at = retry_at(gw, hold, result, now);
            let to = match retry_at {
                Some(_) => HoldState::Releasing,
                None => HoldState::Uncertain,
            };
            let event = Event::ReleaseFailed {
                message_ref,
                recipient,
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
        Released::Expired => (
            HoldState::Expired,
            now,
            Some("content no longer held"),
            None,
            Event::Expired {
                message_ref,
                recipient,
            },
        ),
    };
    let step = ReleaseStep {
        message_id: id,
        recipient: rcpt,
        from: at,
        to,
        next_attempt_at: next_at,
        error,
        queue_id,
        event,
        receipt_default: gw.config.portal.collection_receipt,
    };
    if !gw.store.finish_release(&step, now).await? {
        // Someone else moved the hold meanwhile (an operator, or a recovery after the lease): theirs.
        tracing::warn!(message = id, rcpt, from = %at, to = %to, ?queue_id, "hold changed state during its release; left as it is");
        return Ok(());
    }
    if let Some(queue_id) = queue_id {
        tracing::info!(message = id, rcpt, queue_id, "released to Stalwart");
    }
    Ok(())
}

/// When a failed release is tried again: a refused or unreachable listener with backoff; a lost reply
/// after the data never on its own (it may be queued): the operator settles it.
fn retry_at(gw: &Gateway, hold: &DueRelease, result: &Released, now: i64) -> Option<i64> {
    let (id, rcpt) = (hold.message_id.as_str(), hold.recipient.as_str());
    match result {
        Released::Retry { error } => {
            let next = now + crate::challenge::notify::backoff(gw, hold.attempts);
            tracing::warn!(
                message = id,
                rcpt,
                error,
                retry_at = next,
                "release failed; the message stays held"
            );
            Some(next)
        }
        Released::Uncertain { error } => {
            tracing::error!(
                message = id,
                rcpt,
                error,
                "release outcome unknown; not re-sent automatically"
            );
            None
        }
        _ => None,
    }
}

//! Releasing verified holds into Stalwart's `nta-release` listener.
//!
//! A hold in `releasing` is claimed (`sending`), its recipient domain re-checked with the TLS-verdict seam
//! (only Secure is released over SMTP; anything else turns the hold into a portal hold, never an insecure
//! delivery), then marked `committing` and submitted: MAIL FROM the original sender, RCPT TO the
//! recipient, DATA with the held bytes. On `250` the hold is `released` with Stalwart's queue id, and the
//! content is deleted once no other recipient of the message still needs it. A refusal or an unreachable
//! listener puts the hold back to `releasing` with exponential backoff. A lost reply after the final dot
//! makes it `uncertain`: kept, reported, never sent again automatically — so nothing is delivered twice.

use std::time::Duration;

use sqlx::Row;

use crate::{
    audit::{Event, ReleaseTarget},
    policy::TlsStatus,
    stalwart_submit::{Envelope, SendError, Session, Target},
    store::{audit::append, Store, StoreError},
    Gateway,
};

/// A claimed hold is stale after this long (a crashed worker); see [`recover`].
pub const LEASE_SECS: i64 = 600;

/// After a crash: `sending` holds (nothing submitted yet) go back to `releasing`; `committing` holds (the
/// message may have reached Stalwart) become `uncertain`.
pub async fn recover(gw: &Gateway, now: i64, lease: i64) -> Result<(), StoreError> {
    let pool = gw.store.pool();
    sqlx::query("UPDATE holds SET state = 'releasing', updated_at = $1 WHERE state = 'sending' AND updated_at <= $2")
        .bind(now)
        .bind(now - lease)
        .execute(pool)
        .await?;
    let n = sqlx::query(
        "UPDATE holds SET state = 'uncertain', last_error = 'gateway stopped after the message data was sent', \
         updated_at = $1 WHERE state = 'committing' AND updated_at <= $2",
    )
    .bind(now)
    .bind(now - lease)
    .execute(pool)
    .await?
    .rows_affected();
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
    let rows = sqlx::query(
        "SELECT h.message_id, h.recipient, m.sender, h.attempts FROM holds h JOIN held_messages m ON m.id = h.message_id \
         WHERE h.state = 'releasing' AND h.next_attempt_at <= $1 ORDER BY h.message_id, h.recipient LIMIT 100",
    )
    .bind(now)
    .fetch_all(gw.store.pool())
    .await?;
    let mut out = Vec::new();
    if rows.is_empty() {
        return Ok(out);
    }
    let target = Target::from_config(conf, true);
    let mut session: Option<Session> = None;
    for row in rows {
        let id: String = row.try_get(0)?;
        let rcpt: String = row.try_get(1)?;
        let sender: String = row.try_get(2)?;
        let attempts: i64 = row.try_get(3)?;
        if !set_state(gw, &id, &rcpt, "releasing", "sending", now).await? {
            continue; // another worker took it
        }
        let result = release_one(gw, &target, &mut session, &id, &rcpt, &sender).await;
        let result = match result {
            Ok(r) => r,
            Err(e) => Released::Retry {
                error: e.to_string(),
            },
        };
        record(gw, &id, &rcpt, attempts, &result, now).await?;
        out.push((id, rcpt, result));
    }
    if let Some(s) = session {
        s.quit().await;
    }
    Ok(out)
}

async fn release_one(
    gw: &Gateway,
    target: &Result<Target, crate::stalwart_submit::SmtpError>,
    session: &mut Option<Session>,
    id: &str,
    rcpt: &str,
    sender: &str,
) -> Result<Released, StoreError> {
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
        return Ok(Released::Portal);
    }
    // 2. The content.
    let Some(held) = gw.store.held(id).await? else {
        return Ok(Released::Expired);
    };
    let Some(sealed) = held.sealed else {
        return Ok(Released::Expired);
    };
    let raw = match gw.master.open(id, &sealed) {
        Ok(raw) => raw,
        Err(e) => {
            return Ok(Released::Retry {
                error: e.to_string(),
            })
        }
    };
    // 3. SMTP.
    let target = match target {
        Ok(t) => t,
        Err(e) => {
            return Ok(Released::Retry {
                error: e.to_string(),
            })
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
                return Ok(Released::Retry {
                    error: e.to_string(),
                })
            }
        }
    }
    if !set_state(gw, id, rcpt, "sending", "committing", crate::time::now()).await? {
        return Ok(Released::Retry {
            error: "hold changed state".into(),
        });
    }
    let s = session.as_mut().expect("opened above");
    let result = s
        .send(&Envelope {
            from: sender,
            to: rcpt,
            data: &raw,
        })
        .await;
    Ok(match result {
        Ok(queue_id) => Released::Smtp { queue_id },
        Err(SendError::Failed(e)) => {
            *session = None;
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
    })
}

async fn set_state(
    gw: &Gateway,
    id: &str,
    rcpt: &str,
    from: &str,
    to: &str,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE holds SET state = $1, updated_at = $2 WHERE message_id = $3 AND recipient = $4 AND state = $5",
    )
    .bind(to)
    .bind(now)
    .bind(id)
    .bind(rcpt)
    .bind(from)
    .execute(gw.store.pool())
    .await?
    .rows_affected()
        == 1)
}

/// Commits what happened to one hold and its audit record in one transaction.
async fn record(
    gw: &Gateway,
    id: &str,
    rcpt: &str,
    attempts: i64,
    result: &Released,
    now: i64,
) -> Result<(), StoreError> {
    let (message_ref, recipient) = (id.to_string(), rcpt.to_string());
    // (new state, next attempt at, error kept on the hold, Stalwart's queue id, audit event)
    let (state, next_at, error, queue_id, event) = match result {
        Released::Smtp { queue_id } => (
            "released",
            now,
            None,
            Some(queue_id.clone()),
            // Stalwart's queue id (hex in its reply) links its webhook delivery events to the message.
            Event::Released {
                message_ref,
                recipient,
                target: ReleaseTarget::Inbox,
                queue_id: u64::from_str_radix(queue_id, 16).ok(),
            },
        ),
        Released::Portal => (
            "portal",
            now,
            Some("TLS not secure at release time".to_string()),
            None,
            Event::Released {
                message_ref,
                recipient,
                target: ReleaseTarget::Portal,
                queue_id: None,
            },
        ),
        Released::Retry { error } | Released::Uncertain { error } => {
            // A refused or unreachable listener is retried with backoff; a lost reply after the data
            // is never re-sent on its own (it may be queued): the operator settles it.
            let retry_at = matches!(result, Released::Retry { .. })
                .then(|| now + crate::challenge::notify::backoff(gw, attempts));
            match retry_at {
                Some(next) => tracing::warn!(
                    message = id,
                    rcpt,
                    error,
                    retry_at = next,
                    "release failed; the message stays held"
                ),
                None => tracing::error!(
                    message = id,
                    rcpt,
                    error,
                    "release outcome unknown; not re-sent automatically"
                ),
            }
            (
                if retry_at.is_some() {
                    "releasing"
                } else {
                    "uncertain"
                },
                retry_at.unwrap_or(now),
                Some(error.clone()),
                None,
                Event::ReleaseFailed {
                    message_ref,
                    recipient,
                    error: error.clone(),
                    retry_at,
                },
            )
        }
        Released::Expired => (
            "expired",
            now,
            Some("content no longer held".to_string()),
            None,
            Event::Expired {
                message_ref,
                recipient,
            },
        ),
    };
    let mut tx = gw.store.pool().begin().await?;
    sqlx::query(
        "UPDATE holds SET state = $1, attempts = attempts + 1, next_attempt_at = $2, last_error = $3, \
         release_queue_id = $4, updated_at = $5 WHERE message_id = $6 AND recipient = $7",
    )
    .bind(state)
    .bind(next_at)
    .bind(error)
    .bind(queue_id.clone())
    .bind(now)
    .bind(id)
    .bind(rcpt)
    .execute(&mut *tx)
    .await?;
    if queue_id.is_some() {
        // Accepted by Stalwart: the content goes once no other recipient still needs it.
        Store::erase_if_unneeded(&mut tx, id, now).await?;
    }
    append(&mut tx, now, &[event]).await?;
    tx.commit().await?;
    if let Some(queue_id) = queue_id {
        tracing::info!(message = id, rcpt, queue_id, "released to Stalwart");
    }
    Ok(())
}

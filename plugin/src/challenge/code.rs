//! SMS codes: sending one ([`send_code`]: rate limits, the SMS, the stored hash) and checking one
//! ([`check_code`]: tries, lock, verification, the portal session). Both return a typed outcome that
//! the portal maps onto its pages. Calls `store` and the gateway's SMS sender and keys.

use super::{new_code, random_token, token_hash, Challenge, ChallengeState};
use crate::{
    audit::SmsFailure,
    challenge::sms::SmsError,
    store::{ratelimit::Scope, StoreError},
    Gateway,
};

/// What [`send_code`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSent {
    /// The SMS went out and its code works now.
    Sent,
    /// A rate limit is reached (the first exhausted scope); nothing was sent.
    Limited(Scope),
    /// The SMS provider failed (recorded); nothing usable was stored.
    SmsFailed,
    /// The challenge stopped taking codes meanwhile; the code was not stored.
    Closed,
}

/// Sends a new code to `phone` for challenge `c`, within the per-recipient, per-phone and per-IP
/// limits. The code becomes usable only together with its audit record.
pub async fn send_code(
    gw: &Gateway,
    c: &Challenge,
    phone: &str,
    ip: &str,
    now: i64,
) -> Result<CodeSent, StoreError> {
    let p = &gw.config.portal;
    let checks = [
        (
            Scope::SmsRecipient,
            c.recipient.as_str(),
            p.sms_per_recipient,
        ),
        (Scope::SmsPhone, phone, p.sms_per_phone),
        (Scope::SmsIp, ip, p.sms_per_ip),
    ];
    if let Err(scope) = gw.store.take_rate(&checks, p.rate_window_secs, now).await? {
        tracing::warn!(recipient = %c.recipient, ?scope, ip = %ip, "SMS rate limit reached");
        return Ok(CodeSent::Limited(scope));
    }
    let code = new_code();
    let minutes = (p.code_lifetime_secs + 59) / 60;
    let text = format!(
        "Uw code voor het beveiligde bericht: {code} (geldig {minutes} min). Your code for the secure message: {code}"
    );
    if let Err(e) = gw.sms.send(phone, &text).await {
        tracing::warn!(error = %e, recipient = %c.recipient, "SMS not sent; recipient told to try later");
        // Recorded as the kind of failure, not the provider's text (which may repeat the number).
        let failure = match e {
            SmsError::Refused(_) => SmsFailure::Refused,
            SmsError::Unreachable(_) => SmsFailure::Unreachable,
        };
        if let Err(e) = gw.store.sms_failed(c, phone, failure, now).await {
            tracing::error!(error = %e, recipient = %c.recipient, "SMS failure not recorded in the audit log");
        }
        return Ok(CodeSent::SmsFailed);
    }
    let hash = gw.keys.code_hash(&c.id, &code);
    match gw
        .store
        .code_sent(c, &hash, now + p.code_lifetime_secs, phone, now)
        .await
    {
        Ok(true) => Ok(CodeSent::Sent),
        Ok(false) => Ok(CodeSent::Closed),
        Err(e) => {
            tracing::error!(error = %e, recipient = %c.recipient, "SMS sent but its code not stored; it will not work");
            Err(e)
        }
    }
}

/// What an entered code amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Not six digits (nothing counted).
    Malformed,
    /// No code was sent for this challenge yet.
    NotRequested,
    /// The code's lifetime has passed.
    CodeExpired,
    /// Wrong; this many tries are left.
    Wrong { tries_left: i64 },
    /// Wrong, and that was the last try: the challenge is locked now.
    Locked,
    /// The challenge takes no codes (it was locked or expired before this attempt).
    Closed(ChallengeState),
    /// Right. `session`: the new portal session's cookie value; `verified`: this attempt verified the
    /// recipient (their holds moved on and the worker was woken).
    Accepted { session: String, verified: bool },
}

/// Checks a code entered for challenge `c`: counts a wrong one (locking at the configured tries),
/// verifies the recipient on the right one (when still pending) and opens a portal session.
pub async fn check_code(
    gw: &Gateway,
    c: &Challenge,
    input: &str,
    now: i64,
) -> Result<CodeCheck, StoreError> {
    if !c.state.takes_codes() {
        return Ok(CodeCheck::Closed(c.state));
    }
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(CodeCheck::Malformed);
    }
    let (Some(stored), Some(until)) = (&c.code_hash, c.code_expires_at) else {
        return Ok(CodeCheck::NotRequested);
    };
    if until <= now {
        return Ok(CodeCheck::CodeExpired);
    }
    let presented = gw.keys.code_hash(&c.id, &code);
    if !crate::secrets::equal(presented.as_bytes(), stored.as_bytes()) {
        let max = gw.config.portal.max_tries;
        let tries = gw.store.wrong_code(c, max, now).await?;
        tracing::warn!(recipient = %c.recipient, tries, "wrong SMS code");
        return Ok(if tries >= max {
            CodeCheck::Locked
        } else {
            CodeCheck::Wrong {
                tries_left: max - tries,
            }
        });
    }
    let pending = c.state == ChallengeState::Pending;
    if pending {
        let until = now + i64::from(gw.config.policy.verified_days) * 86_400;
        gw.store.verify_challenge(c, until, now).await?;
        gw.wake.now();
        tracing::info!(recipient = %c.recipient, "recipient verified");
    }
    let session = random_token();
    let expires_at = now + gw.config.portal.session_secs;
    gw.store
        .new_session(
            c,
            &token_hash(&session),
            expires_at,
            (!pending).then_some(now),
        )
        .await?;
    Ok(CodeCheck::Accepted {
        session,
        verified: pending,
    })
}

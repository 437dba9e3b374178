//! Mail received from the internet, one way: inbound hook request → [`facts`] (envelope, TLS of the
//! sending server's connection, SPF/DKIM/DMARC/ARC verified with mail-auth by [`verify`], the `From`
//! domain's NTA 7516 peer status) → the admin's policy (`vnd.nta7516.direction` = `inbound`) →
//! [`crate::policy::decide_inbound`] (one action per message) → the `received` audit records (committed
//! before the answer) → [`respond`] (Stalwart's hook answer: accept with the summary header, quarantine
//! to the quarantine mailbox, tempfail or reject with a clear SMTP text).
//!
//! Stalwart calls this through its second hook, `nta-inbound` (`/v1/mta-hook/inbound`), for
//! unauthenticated sessions only; `[inbound] enabled = false` makes the endpoint answer 503, so a hook
//! configured by mistake never lets mail in unchecked. Nothing is silently dropped: a message is
//! delivered (with the header), quarantined (delivered to one mailbox), or refused so that the sending
//! server tells its sender.

pub mod facts;
pub mod respond;
pub mod verify;

use std::sync::Arc;

use crate::{
    audit::{event::Receipt, Event},
    config::Config,
    ids,
    policy::{
        decide_inbound, Direction, InboundDecision, InboundInput, Peer, Policy, PolicyFacts,
        PolicyVerdict,
    },
    stalwart::hook::{Request, Response, Stage},
    Gateway,
};
use facts::InboundFacts;
pub use verify::Verifier;

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("malformed hook request: {0}")]
    BadRequest(String),
    #[error("inbound checks are off ([inbound] enabled = false): Stalwart's nta-inbound hook should not call the gateway")]
    Disabled,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// One inbound hook call: the answer and the decision behind it.
pub struct Handled {
    pub response: Response,
    /// None when nothing was decided (not the DATA stage, or an authenticated session).
    pub decision: Option<InboundDecision>,
    pub message_ref: Option<String>,
}

pub async fn handle(gw: &Arc<Gateway>, req: Request) -> Result<Handled, InboundError> {
    let Some(verifier) = gw.inbound.as_ref() else {
        return Err(InboundError::Disabled);
    };
    // Submissions are the submission hook's (its enable expression names authenticated sessions).
    if req.context.stage != Stage::Data || req.context.sasl.is_some() {
        if req.context.sasl.is_some() {
            tracing::warn!("authenticated session on the inbound hook: its enable expression should be is_empty(authenticated_as); let through unchanged");
        }
        return Ok(Handled {
            response: Response::accept(Vec::new()),
            decision: None,
            message_ref: None,
        });
    }
    let facts = facts::gather(gw, verifier, &req).await?;
    let verdicts = recipient_verdicts(gw.policy().as_ref(), &facts);
    let decision = decide(&gw.config, &facts, &verdicts);
    let message_ref = ids::ordered_id("r");
    gw.store
        .append_audit_grouped(receipts(gw, &facts, &decision, &message_ref))
        .await?;
    Ok(Handled {
        response: respond::respond(&gw.config, &facts, &decision, &message_ref),
        decision: Some(decision),
        message_ref: Some(message_ref),
    })
}

/// The decision for the message from its facts, the `[inbound]` rules and the policy's verdicts.
pub fn decide(
    config: &Config,
    facts: &InboundFacts<'_>,
    verdicts: &[(&str, PolicyVerdict)],
) -> InboundDecision {
    let input = InboundInput {
        tls: facts.tls.as_ref(),
        auth: &facts.auth,
        from_domain: &facts.from_domain,
        peer: &facts.peer,
    };
    decide_inbound(input, &config.inbound, verdicts)
}

/// The admin's policy, once per recipient, with the received message's facts.
pub fn recipient_verdicts<'f>(
    policy: &dyn Policy,
    facts: &InboundFacts<'f>,
) -> Vec<(&'f str, PolicyVerdict)> {
    let base = policy_facts(facts);
    let recipients: Vec<(&str, PolicyFacts)> = facts
        .recipients
        .iter()
        .map(|&r| {
            let domain = r.rsplit_once('@').map_or("", |(_, d)| d);
            let f = PolicyFacts {
                recipient_domain: domain.to_ascii_lowercase(),
                ..base.clone()
            };
            (r, f)
        })
        .collect();
    let verdicts = policy.evaluate(&facts.raw, facts.sender, &recipients);
    facts.recipients.iter().copied().zip(verdicts).collect()
}

/// The facts the admin's policy sees for a received message (before the recipient's domain is set);
/// also what `policy test --inbound` shows.
pub fn policy_facts(facts: &InboundFacts<'_>) -> PolicyFacts {
    let auth = &facts.auth;
    let (peer_provider, peer_unknown) = match &facts.peer {
        Peer::Yes { provider, .. } => (Some(provider.clone()), false),
        Peer::No => (None, false),
        Peer::Unknown { .. } => (None, true),
    };
    PolicyFacts {
        direction: Direction::Inbound,
        dmarc: Some(auth.dmarc.result.as_str().into()),
        dkim: Some(auth.dkim_summary().as_str().into()),
        spf: Some(auth.spf(facts.sender.is_empty()).as_str().into()),
        arc: Some(auth.arc.as_str().into()),
        tls_version: facts.tls.as_ref().map(|t| t.version.as_str().into()),
        peer_provider,
        peer_unknown,
        size: facts.size,
        ..PolicyFacts::default()
    }
}

/// One `received` record per recipient.
fn receipts(
    gw: &Gateway,
    facts: &InboundFacts<'_>,
    decision: &InboundDecision,
    message_ref: &str,
) -> Vec<Event> {
    let quarantine_mailbox = (decision.action == crate::policy::Action::Quarantine)
        .then(|| gw.config.inbound.quarantine_mailbox.clone())
        .flatten();
    facts
        .recipients
        .iter()
        .map(|r| {
            Event::Received(Box::new(Receipt {
                message_ref: message_ref.to_string(),
                sha256: facts.sha256.clone(),
                sender: facts.sender.to_string(),
                recipient: r.to_string(),
                queue_id: facts.queue_id.map(str::to_string),
                client_ip: facts.client_ip.to_string(),
                helo: facts.helo.to_string(),
                tls: facts.tls.clone(),
                from_domain: facts.from_domain.clone(),
                auth: facts.auth.clone(),
                peer: facts.peer.clone(),
                action: decision.action,
                reasons: decision.reasons.clone(),
                quarantine_mailbox: quarantine_mailbox.clone(),
            }))
        })
        .collect()
}

//! One submission through the gateway, one way: hook request → [`facts`] (gathered per recipient) →
//! [`crate::policy`] (the pure decision) → [`persist`] (one transaction, holding what must wait) →
//! [`respond`] (Stalwart's hook answer). This file only orchestrates.

pub mod facts;
pub mod intake;
pub mod persist;
pub mod respond;

use std::sync::Arc;

pub use respond::{respond, CORRELATION_HEADER};

use crate::{
    policy::{self, Decision, PolicyVerdict, RecipientInput},
    stalwart::hook::{Request, Response, Stage},
    store::StoreError,
    Gateway,
};
use facts::SubmissionFacts;

#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    #[error("malformed hook request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("sealing the held copy failed: {0}")]
    Crypto(#[from] crate::hold::crypto::KeyError),
    #[error("sealing a large attachment failed: {0}")]
    Blob(#[from] crate::hold::blob::BlobError),
}

/// The result of one hook call: the answer and the decisions behind it.
pub struct Handled {
    pub response: Response,
    pub decisions: Vec<Decision>,
    /// The ref the decisions were recorded under; none when nothing was recorded.
    pub message_ref: Option<String>,
}

pub async fn handle(gw: &Arc<Gateway>, req: Request) -> Result<Handled, SubmissionError> {
    handle_with(gw, req, None).await
}

/// A request read by the streaming intake: its large attachments already sealed ([`intake`]). The
/// files of those no hold committed are deleted before the answer.
pub async fn handle_presplit(
    gw: &Arc<Gateway>,
    req: Request,
    pre: Option<intake::PreSplit>,
) -> Result<Handled, SubmissionError> {
    let handled = handle_with(gw, req, pre.as_ref()).await;
    if let Some(pre) = &pre {
        intake::discard_unused(gw, pre).await;
    }
    handled
}

async fn handle_with(
    gw: &Arc<Gateway>,
    req: Request,
    pre: Option<&intake::PreSplit>,
) -> Result<Handled, SubmissionError> {
    // The gateway decides at DATA only; earlier stages carry no message (Stalwart's enable expression
    // names the data stage; anything else is let through to that decision).
    if req.context.stage != Stage::Data {
        return Ok(Handled {
            response: Response::accept(Vec::new()),
            decisions: Vec::new(),
            message_ref: None,
        });
    }
    let (decisions, message_ref) = match decide_and_record(gw, &req, pre).await {
        // The same submission hooked twice at once: the other call committed first. Deciding again
        // finds its held copy and answers with that hold, like a retry. Or a recipient verified while
        // this call decided: deciding again sees the verification (a second failure answers 503).
        Err(SubmissionError::Store(
            StoreError::DuplicateSubmission | StoreError::VerifiedMeanwhile,
        )) => decide_and_record(gw, &req, pre).await?,
        other => other?,
    };
    Ok(Handled {
        response: respond(&decisions, message_ref.as_deref().unwrap_or_default()),
        decisions,
        message_ref,
    })
}

/// Facts, decisions and their commit.
async fn decide_and_record(
    gw: &Arc<Gateway>,
    req: &Request,
    pre: Option<&intake::PreSplit>,
) -> Result<(Vec<Decision>, Option<String>), SubmissionError> {
    let mut facts = facts::gather(gw, req).await?;
    // Split while read: the policy and the record see the size the message arrived with.
    if let Some(p) = pre {
        facts.size = p.size;
    }
    let decisions = decide(gw, &facts);
    let message_ref = persist::record(gw, &facts, &decisions, pre).await?;
    Ok((decisions, message_ref))
}

/// The decision for every recipient, in envelope order.
fn decide(gw: &Gateway, facts: &SubmissionFacts<'_>) -> Vec<Decision> {
    let verdicts = policy_verdicts(gw, facts);
    let no_verdict = PolicyVerdict::default();
    let default_requirement = gw.config.default_requirement();
    let inputs = facts
        .recipients
        .iter()
        .zip(&verdicts)
        .map(|(r, v)| RecipientInput {
            recipient: r.address,
            is_local: r.local,
            policy: v.as_ref().unwrap_or(&no_verdict),
            default_requirement,
            exemptions: &r.exemptions,
            tls: r.tls_or_unknown(),
            earlier_hold: r.earlier_hold,
            now: facts.now,
            stalwart: facts.stalwart,
        });
    policy::decide_all(inputs, facts.body.exact.is_ok())
}

/// The admin's policy for the external recipients (the message parsed once); one verdict per
/// recipient in envelope order, none for a local one.
fn policy_verdicts(gw: &Gateway, facts: &SubmissionFacts<'_>) -> Vec<Option<PolicyVerdict>> {
    let group = facts.sender_group.as_deref();
    let external: Vec<_> = facts
        .recipients
        .iter()
        .filter(|r| !r.local)
        .map(|r| (r.address, r.policy_facts(group, facts.size)))
        .collect();
    let mut verdicts = if external.is_empty() {
        Vec::new()
    } else {
        gw.policy()
            .evaluate(&facts.body.for_policy(), facts.sender, &external)
    }
    .into_iter();
    facts
        .recipients
        .iter()
        .map(|r| if r.local { None } else { verdicts.next() })
        .collect()
}

//! The decision itself (DESIGN §3), pure: same facts, same decisions.
//!
//! Per recipient, in steps: local domain → policy → exemptions → TLS verdict, then the retry rule (a
//! recipient an earlier attempt of this submission holds stays held, as held then). Per message: a
//! message that must be held for someone but whose body cannot be held unaltered is refused.
//! A policy error, a DNS error or a probe timeout never yields [`Outcome::Deliver`], nor does a policy
//! that sends the attachments by link ([`Attachments::ByLink`]: no exemption lifts its 2FA).

use super::{
    exemptions, Attachments, Decision, Exemption, Outcome, PolicyVerdict, Reason, ReasonCode,
    Requirement, Step, TlsFacts, TlsStatus,
};

/// All inputs of one recipient's decision.
#[derive(Debug, Clone)]
pub struct RecipientInput<'a> {
    pub recipient: &'a str,
    pub is_local: bool,
    pub policy: &'a PolicyVerdict,
    /// What applies when the policy decides nothing (configurable: `require_2fa` or `exempt`).
    pub default_requirement: Requirement,
    /// Every exemption known for the recipient; [`exemptions::applicable`] picks the one that counts.
    pub exemptions: &'a [Exemption],
    pub tls: &'a TlsFacts,
    /// How an earlier attempt of this very submission (a client retry) holds the recipient, if it does.
    pub earlier_hold: Option<Outcome>,
    pub now: i64,
    /// Whether Stalwart may carry mail out now (`stalwart check` in `serve`).
    pub stalwart: StalwartGate,
}

/// What the last `stalwart check` of `serve` says about sending through Stalwart, after
/// `stalwart.on_unsafe`: `Open` also when no check is configured or `on_unsafe = "warn"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalwartGate {
    Open,
    /// A safety rule fails.
    Unsafe,
    /// The configuration could not be read (or not yet): counted as unsafe.
    Unknown,
}

/// The decisions for a whole message, in the order of `inputs`. `exact_copy` says whether the body can
/// be held unaltered (it cannot when it is 8-bit and not UTF-8).
pub fn decide_all<'a>(
    inputs: impl IntoIterator<Item = RecipientInput<'a>>,
    exact_copy: bool,
) -> Vec<Decision> {
    let decisions = inputs.into_iter().map(|i| decide(&i)).collect();
    refuse_unholdable(decisions, exact_copy)
}

/// The decision pipeline for one recipient.
pub fn decide(input: &RecipientInput<'_>) -> Decision {
    let mut reasons = Vec::new();
    let outcome = stalwart_gate(
        first_outcome(input, &mut reasons),
        input.stalwart,
        &mut reasons,
    );
    keep_held(
        Decision {
            recipient: input.recipient.to_string(),
            outcome,
            reasons,
            attachments: attachments(input),
        },
        input.earlier_hold,
    )
}

/// Whether the policy sends this (external) recipient every attachment by link.
fn attachments(input: &RecipientInput<'_>) -> Attachments {
    match (input.is_local, &input.policy.attachments_by_link) {
        (false, Some(_)) => Attachments::ByLink,
        _ => Attachments::Attached,
    }
}

fn first_outcome(input: &RecipientInput<'_>, reasons: &mut Vec<Reason>) -> Outcome {
    // 1. Local domain.
    if input.is_local {
        reasons.push(Reason::new(
            Step::Domain,
            ReasonCode::LocalDomain,
            "recipient domain is local",
        ));
        return Outcome::Local;
    }
    // 2. Policy. Attachments by link ask for the recipient's verification: at least 2FA.
    let by_link = attachments(input) == Attachments::ByLink;
    let mut requirement = requirement(input, reasons);
    if by_link {
        requirement = requirement.max(Requirement::Require2fa);
    }
    match requirement {
        // Quarantine is for received mail; a message sent out is refused instead of parked.
        Requirement::Reject | Requirement::Quarantine => return Outcome::Reject,
        Requirement::Portal => return Outcome::Portal,
        Requirement::Exempt | Requirement::Require2fa => {}
    }
    // 3. Exemptions (only when the policy did not exempt already; none lifts 2FA for a recipient
    // whose attachments go by link, so that recipient is always held).
    let needs_2fa =
        requirement == Requirement::Require2fa && (by_link || !exempted(input, reasons));
    // 4. TLS verdict.
    tls(input.tls, needs_2fa, reasons)
}

/// The policy's requirement. An error is never an exemption: it counts as at least "2FA required" (a
/// stricter decision made before the error stays), with the error as reason.
fn requirement(input: &RecipientInput<'_>, reasons: &mut Vec<Reason>) -> Requirement {
    let policy = input.policy;
    for r in &policy.reasons {
        reasons.push(Reason::new(Step::Policy, r.requirement.into(), &r.text));
    }
    if let Some(text) = &policy.attachments_by_link {
        reasons.push(Reason::new(
            Step::Policy,
            ReasonCode::AttachmentsByLink,
            text,
        ));
    }
    match (&policy.error, policy.requirement) {
        (Some(err), req) => {
            reasons.push(Reason::new(
                Step::Policy,
                ReasonCode::PolicyError,
                format!("policy failed, 2FA required: {err}"),
            ));
            req.unwrap_or(Requirement::Require2fa)
                .max(Requirement::Require2fa)
        }
        (None, Some(req)) => req,
        (None, None) => {
            let default = input.default_requirement;
            reasons.push(Reason::new(
                Step::Policy,
                default.into(),
                format!("no policy decision; default is {}", default.code()),
            ));
            default
        }
    }
}

/// Whether an exemption lifts the 2FA requirement (the one that does is recorded as the reason).
fn exempted(input: &RecipientInput<'_>, reasons: &mut Vec<Reason>) -> bool {
    let Some(exemption) = exemptions::applicable(input.exemptions, input.now) else {
        return false;
    };
    reasons.push(Reason::new(
        Step::Exemption,
        exemption.kind().code(),
        exemption.text(),
    ));
    true
}

/// Only Secure ever delivers; Unknown is held either way (after 2FA the release path re-checks TLS
/// before anything leaves).
fn tls(tls: &TlsFacts, needs_2fa: bool, reasons: &mut Vec<Reason>) -> Outcome {
    let text = |prefix: &str| {
        if tls.reasons.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}: {}", tls.reasons.join(", "))
        }
    };
    let (code, text, outcome) = match (tls.status, needs_2fa) {
        (TlsStatus::Secure, needs_2fa) => (
            ReasonCode::TlsSecure,
            "recipient servers pass SmartTLS".to_string(),
            if needs_2fa {
                Outcome::Challenge
            } else {
                Outcome::Deliver
            },
        ),
        (TlsStatus::Insecure, _) => (
            ReasonCode::TlsInsecure,
            text("recipient servers fail SmartTLS"),
            Outcome::Portal,
        ),
        (TlsStatus::Unknown, needs_2fa) => (
            ReasonCode::TlsUnknown,
            text("recipient TLS status unknown, never delivered unverified"),
            if needs_2fa {
                Outcome::Challenge
            } else {
                Outcome::Portal
            },
        ),
    };
    reasons.push(Reason::new(Step::Tls, code, text));
    outcome
}

/// While Stalwart is unsafe (or unknown), nothing is delivered through it: what would leave now is
/// held for the portal instead (a held Challenge stays a Challenge: its release re-checks later).
fn stalwart_gate(outcome: Outcome, gate: StalwartGate, reasons: &mut Vec<Reason>) -> Outcome {
    let (code, text) = match (outcome, gate) {
        (Outcome::Deliver, StalwartGate::Unsafe) => (
            ReasonCode::StalwartUnsafe,
            "Stalwart's configuration fails a safety rule (stalwart check): held for the portal",
        ),
        (Outcome::Deliver, StalwartGate::Unknown) => (
            ReasonCode::StalwartUnknown,
            "Stalwart's configuration could not be checked: held for the portal",
        ),
        _ => return outcome,
    };
    reasons.push(Reason::new(Step::Tls, code, text));
    Outcome::Portal
}

/// A retried submission: a recipient held the first time stays held as it was, whatever the new
/// verdict says, so a message is never both delivered and held.
fn keep_held(mut decision: Decision, earlier: Option<Outcome>) -> Decision {
    if let Some(outcome) = earlier.filter(|o| *o != decision.outcome) {
        decision.outcome = outcome;
        decision.reasons.push(Reason::new(
            Step::Hold,
            ReasonCode::AlreadyHeld,
            format!("already held as {} by an earlier attempt", outcome.as_str()),
        ));
    }
    decision
}

/// The SMTP-facing text of [`ReasonCode::Unholdable8bitBody`] is the hook's `554 5.6.0` answer; this
/// is the reason text recorded with the decision.
const UNHOLDABLE_TEXT: &str =
    "must be held, but its 8-bit body is not UTF-8 and cannot be held unaltered";

/// Per message: only an exact copy may be held. Without one, every recipient that would be held is
/// rejected (and a Reject refuses the whole message). Nothing changes when the message is refused
/// already (a policy Reject: nothing is held then either) or nothing is held.
fn refuse_unholdable(mut decisions: Vec<Decision>, exact_copy: bool) -> Vec<Decision> {
    if exact_copy || decisions.iter().any(|d| d.outcome == Outcome::Reject) {
        return decisions;
    }
    for d in decisions.iter_mut().filter(|d| d.outcome.is_held()) {
        d.outcome = Outcome::Reject;
        d.reasons.push(Reason::new(
            Step::Hold,
            ReasonCode::Unholdable8bitBody,
            UNHOLDABLE_TEXT,
        ));
    }
    decisions
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

//! The decision on one received message ([`crate::inbound`] gathers its facts): pure, from its facts, the `[inbound]` rules and the admin's
//! policy verdicts (one per recipient). One action for the whole message — a DATA answer is one answer —
//! the strictest that any rule gives: `accept < quarantine < tempfail < reject`.
//!
//! The rules, in the order they are checked (every one that applies is kept as a reason):
//! 1. A peer (the `From` domain is an NTA 7516 peer) promised TLS: without TLS 1.2 or newer,
//!    `inbound.peer_failure`.
//! 2. A peer promised authenticated mail: DMARC must pass (`inbound.peer_failure`); a DMARC temperror
//!    tempfails (the sending server retries).
//! 3. Peer status unknown (DNS failed) and a check 1 or 2 would fail: tempfail, the promise may apply.
//! 4. DMARC fails for a domain publishing `p=reject` / `p=quarantine`: `inbound.dmarc_reject` /
//!    `inbound.dmarc_quarantine`.
//! 5. The admin's policy: `nta_reject`, `nta_quarantine`; a policy error quarantines (nothing is lost,
//!    nothing unchecked reaches the inbox). `nta_require_2fa` and `nta_portal` mean nothing here.
//! 6. Quarantine without a `quarantine_mailbox` (only a policy can ask for it then) refuses instead.

use serde::Serialize;

use super::{
    received::{AuthResult, AuthResults, DmarcPolicy, Peer, SessionTls},
    PolicyVerdict, Requirement,
};
use crate::config::{InboundAction, InboundConfig};

/// What the decision reads about one received message.
#[derive(Debug, Clone, Copy)]
pub struct InboundInput<'a> {
    pub tls: Option<&'a SessionTls>,
    pub auth: &'a AuthResults,
    /// The RFC 5322.From domain.
    pub from_domain: &'a str,
    pub peer: &'a Peer,
}

/// What happens to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Quarantine,
    /// `451`: a check could not finish; the sending server tries again later.
    Tempfail,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Quarantine => "quarantine",
            Action::Tempfail => "tempfail",
            Action::Reject => "reject",
        }
    }
}

impl From<InboundAction> for Action {
    fn from(a: InboundAction) -> Self {
        match a {
            InboundAction::Accept => Action::Accept,
            InboundAction::Quarantine => Action::Quarantine,
            InboundAction::Reject => Action::Reject,
        }
    }
}

nta7516_smarttls::reason_codes! {
    /// Why a received message gets its action (serialized as the string shown).
    pub enum InboundCode {
        /// An NTA 7516 peer's mail arrived without TLS 1.2 or newer.
        PeerWithoutTls => "peer_without_tls",
        /// An NTA 7516 peer's mail failed DMARC.
        PeerDmarcFail => "peer_dmarc_fail",
        /// An NTA 7516 peer's mail could not be checked against DMARC (DNS): tried again later.
        PeerDmarcTemperror => "peer_dmarc_temperror",
        /// Whether the sender is a peer is unknown (DNS), and its mail would fail a peer's checks.
        PeerUnknown => "peer_unknown",
        /// DMARC failed and the sender's domain publishes `p=reject`.
        DmarcFailReject => "dmarc_fail_reject",
        /// DMARC failed and the sender's domain publishes `p=quarantine`.
        DmarcFailQuarantine => "dmarc_fail_quarantine",
        /// The admin's policy refuses the message.
        PolicyReject => "policy_reject",
        /// The admin's policy quarantines the message.
        PolicyQuarantine => "policy_quarantine",
        /// The admin's policy failed (runtime error, CPU limit): quarantined.
        PolicyError => "policy_error",
        /// A decision that means nothing for received mail (`nta_require_2fa`, `nta_portal`).
        PolicyIgnored => "policy_ignored",
        /// Quarantine was asked for, but no `inbound.quarantine_mailbox` is set: refused instead.
        QuarantineUnavailable => "quarantine_unavailable",
        /// No rule objects.
        ChecksPassed => "checks_passed",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundReason {
    pub code: InboundCode,
    pub action: Action,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundDecision {
    pub action: Action,
    pub reasons: Vec<InboundReason>,
}

impl InboundDecision {
    fn add(&mut self, code: InboundCode, action: Action, text: String) {
        self.action = self.action.max(action);
        self.reasons.push(InboundReason { code, action, text });
    }

    pub fn has(&self, code: InboundCode) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }

    /// The reasons as one line (logs, SMTP text).
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The decision for one message; `verdicts` in recipient order (empty without a policy).
pub fn decide_inbound(
    facts: InboundInput<'_>,
    rules: &InboundConfig,
    verdicts: &[(&str, PolicyVerdict)],
) -> InboundDecision {
    let mut d = InboundDecision {
        action: Action::Accept,
        reasons: Vec::new(),
    };
    peer_rules(facts, rules, &mut d);
    dmarc_rules(facts, rules, &mut d);
    for (recipient, v) in verdicts {
        policy_rules(recipient, v, &mut d);
    }
    if d.action == Action::Quarantine && rules.quarantine_mailbox.is_none() {
        d.add(
            InboundCode::QuarantineUnavailable,
            Action::Reject,
            "quarantine asked for, but no inbound.quarantine_mailbox is configured: refused".into(),
        );
    }
    if d.reasons.is_empty() {
        d.add(
            InboundCode::ChecksPassed,
            Action::Accept,
            "no rule objects".into(),
        );
    }
    d
}

/// Rules 1–3: what a peer promised.
fn peer_rules(facts: InboundInput<'_>, rules: &InboundConfig, d: &mut InboundDecision) {
    let tls_ok = facts.tls.is_some_and(|t| t.version.is_sufficient());
    let dmarc = facts.auth.dmarc.result;
    let domain = facts.from_domain;
    match facts.peer {
        Peer::Yes { provider, .. } => {
            let failure = Action::from(rules.peer_failure);
            if !tls_ok {
                let how = facts
                    .tls
                    .map_or("without TLS", |t| t.version.as_str());
                d.add(
                    InboundCode::PeerWithoutTls,
                    failure,
                    format!("{domain} is an NTA 7516 peer ({provider}) but its mail arrived {how}; TLS 1.2 or newer is required"),
                );
            }
            match dmarc {
                AuthResult::Pass => {}
                AuthResult::TempError => d.add(
                    InboundCode::PeerDmarcTemperror,
                    Action::Tempfail,
                    format!("{domain} is an NTA 7516 peer; DMARC could not be checked now (dmarc=temperror)"),
                ),
                other => d.add(
                    InboundCode::PeerDmarcFail,
                    failure,
                    format!("{domain} is an NTA 7516 peer ({provider}) but its mail fails DMARC (dmarc={})", other.as_str()),
                ),
            }
        }
        Peer::Unknown { reason } if !tls_ok || dmarc != AuthResult::Pass => d.add(
            InboundCode::PeerUnknown,
            Action::Tempfail,
            format!("whether {domain} is an NTA 7516 peer is unknown ({reason}) and its mail would fail a peer's checks"),
        ),
        Peer::Unknown { .. } | Peer::No => {}
    }
}

/// Rule 4: the sender domain's own DMARC policy.
fn dmarc_rules(facts: InboundInput<'_>, rules: &InboundConfig, d: &mut InboundDecision) {
    let dmarc = &facts.auth.dmarc;
    if dmarc.result != AuthResult::Fail {
        return;
    }
    let (code, action, p) = match dmarc.policy {
        DmarcPolicy::Reject => (InboundCode::DmarcFailReject, rules.dmarc_reject, "reject"),
        DmarcPolicy::Quarantine => (
            InboundCode::DmarcFailQuarantine,
            rules.dmarc_quarantine,
            "quarantine",
        ),
        DmarcPolicy::None => return,
    };
    d.add(
        code,
        action.into(),
        format!("DMARC fails for {} (p={p})", dmarc.domain),
    );
}

/// Rule 5: the admin's policy for one recipient.
fn policy_rules(recipient: &str, v: &PolicyVerdict, d: &mut InboundDecision) {
    if let Some(e) = &v.error {
        d.add(
            InboundCode::PolicyError,
            Action::Quarantine,
            format!("policy error for {recipient}: {e}"),
        );
    }
    for r in &v.reasons {
        let (code, action) = match r.requirement {
            Requirement::Reject => (InboundCode::PolicyReject, Action::Reject),
            Requirement::Quarantine => (InboundCode::PolicyQuarantine, Action::Quarantine),
            Requirement::Require2fa | Requirement::Portal => {
                (InboundCode::PolicyIgnored, Action::Accept)
            }
            Requirement::Exempt => continue,
        };
        d.add(code, action, format!("policy for {recipient}: {}", r.text));
    }
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;

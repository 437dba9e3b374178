//! The per-recipient decision (DESIGN §3): local domain → policy → exemptions → TLS verdict →
//! Deliver / Challenge / Portal / Reject.
//!
//! Everything here is a value: the hook handler gathers the facts (store, SmartTLS, policy), calls
//! [`decide`], and only then acts. A policy error, a DNS error or a probe timeout never yields
//! [`Outcome::Deliver`].

pub mod engine;
pub mod sieve;
pub mod smarttls;
pub mod tls;

use serde::Serialize;

pub use engine::{DefaultPolicy, Policy, PolicyFacts, PolicyVerdict, Requirement};
pub use sieve::SievePolicy;
pub use tls::{BoxFuture, NoSmartTls, PeerFact, TlsFacts, TlsStatus, TlsVerdicts};

/// What happens to one recipient of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A local domain: not the gateway's business, Stalwart delivers internally.
    Local,
    /// Leaves now through Stalwart's strict TLS strategy.
    Deliver,
    /// Held until the recipient passes 2FA; then released into the inbox (or the portal if TLS fails).
    Challenge,
    /// Held; the recipient reads it on the portal after 2FA, because their servers fail SmartTLS.
    Portal,
    /// Refused with a permanent SMTP error.
    Reject,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Local => "local",
            Outcome::Deliver => "deliver",
            Outcome::Challenge => "challenge",
            Outcome::Portal => "portal",
            Outcome::Reject => "reject",
        }
    }

    /// Whether the gateway keeps a copy of the message for this recipient.
    pub fn is_held(self) -> bool {
        matches!(self, Outcome::Challenge | Outcome::Portal)
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "local" => Outcome::Local,
            "deliver" => Outcome::Deliver,
            "challenge" => Outcome::Challenge,
            "portal" => Outcome::Portal,
            "reject" => Outcome::Reject,
            _ => return None,
        })
    }
}

/// The pipeline step a reason comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Domain,
    Policy,
    Exemption,
    Tls,
    /// The hold store (e.g. a retried submission that is already held).
    Hold,
}

/// One link in the chain of reasons behind a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub step: Step,
    /// Stable machine-readable code, e.g. `verified`, `nta_peer`, `tls_insecure`.
    pub code: String,
    pub text: String,
}

impl Reason {
    fn new(step: Step, code: &str, text: impl Into<String>) -> Self {
        Reason {
            step,
            code: code.into(),
            text: text.into(),
        }
    }
}

/// The decision for one recipient, with every reason that led to it, in pipeline order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub recipient: String,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// `reason; reason; …` for SMTP texts and logs.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What exempts a recipient from 2FA, other than the policy itself.
#[derive(Debug, Clone, Default)]
pub struct ExemptionFacts {
    /// Recipient verified until this unix time.
    pub verified_until: Option<i64>,
    /// An admin exemption (address or domain) with its reason.
    pub admin: Option<String>,
    /// The recipient domain is an NTA 7516 peer (admin list or `v=NTA7516-1` record), with provider.
    pub peer: Option<String>,
}

/// All inputs of one recipient's decision.
#[derive(Debug, Clone)]
pub struct RecipientInput<'a> {
    pub recipient: &'a str,
    pub is_local: bool,
    pub policy: &'a PolicyVerdict,
    /// What applies when the policy decides nothing (configurable: `require_2fa` or `exempt`).
    pub default_requirement: Requirement,
    pub exemptions: &'a ExemptionFacts,
    pub tls: &'a TlsFacts,
    pub now: i64,
}

/// The decision pipeline for one recipient. Pure: same inputs, same decision.
pub fn decide(input: &RecipientInput<'_>) -> Decision {
    let mut reasons = Vec::new();
    let finish = |outcome, reasons| Decision {
        recipient: input.recipient.to_string(),
        outcome,
        reasons,
    };

    // 1. Local domain.
    if input.is_local {
        reasons.push(Reason::new(
            Step::Domain,
            "local_domain",
            "recipient domain is local",
        ));
        return finish(Outcome::Local, reasons);
    }

    // 2. Policy. An error is never an exemption: it counts as at least "2FA required" (a stricter
    // decision made before the error stays), with the error as reason.
    let policy = input.policy;
    for r in &policy.reasons {
        reasons.push(Reason::new(Step::Policy, r.requirement.code(), &r.text));
    }
    let requirement = match (&policy.error, policy.requirement) {
        (Some(err), req) => {
            reasons.push(Reason::new(
                Step::Policy,
                "policy_error",
                format!("policy failed, 2FA required: {err}"),
            ));
            req.unwrap_or(Requirement::Require2fa)
                .max(Requirement::Require2fa)
        }
        (None, Some(req)) => req,
        (None, None) => {
            reasons.push(Reason::new(
                Step::Policy,
                input.default_requirement.code(),
                format!(
                    "no policy decision; default is {}",
                    input.default_requirement.code()
                ),
            ));
            input.default_requirement
        }
    };
    match requirement {
        Requirement::Reject => return finish(Outcome::Reject, reasons),
        Requirement::Portal => return finish(Outcome::Portal, reasons),
        Requirement::Exempt | Requirement::Require2fa => {}
    }

    // 3. Exemptions (only when the policy did not exempt already).
    let mut needs_2fa = requirement == Requirement::Require2fa;
    if needs_2fa {
        let ex = input.exemptions;
        if let Some(until) = ex.verified_until.filter(|u| *u > input.now) {
            reasons.push(Reason::new(
                Step::Exemption,
                "verified",
                format!("recipient verified until {}", crate::time::rfc3339(until)),
            ));
            needs_2fa = false;
        } else if let Some(provider) = &ex.peer {
            reasons.push(Reason::new(
                Step::Exemption,
                "nta_peer",
                format!("recipient domain is an NTA 7516 peer ({provider})"),
            ));
            needs_2fa = false;
        } else if let Some(why) = &ex.admin {
            reasons.push(Reason::new(
                Step::Exemption,
                "admin_exemption",
                format!("admin exemption: {why}"),
            ));
            needs_2fa = false;
        }
    }

    // 4. TLS verdict. Only Secure ever delivers.
    let tls = input.tls;
    let tls_text = |prefix: &str| {
        if tls.reasons.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}: {}", tls.reasons.join(", "))
        }
    };
    match tls.status {
        TlsStatus::Secure => {
            reasons.push(Reason::new(
                Step::Tls,
                "tls_secure",
                "recipient servers pass SmartTLS",
            ));
            if needs_2fa {
                finish(Outcome::Challenge, reasons)
            } else {
                finish(Outcome::Deliver, reasons)
            }
        }
        TlsStatus::Insecure => {
            reasons.push(Reason::new(
                Step::Tls,
                "tls_insecure",
                tls_text("recipient servers fail SmartTLS"),
            ));
            finish(Outcome::Portal, reasons)
        }
        TlsStatus::Unknown => {
            reasons.push(Reason::new(
                Step::Tls,
                "tls_unknown",
                tls_text("recipient TLS status unknown, never delivered unverified"),
            ));
            // Held either way; after 2FA the release path re-checks TLS before anything leaves.
            if needs_2fa {
                finish(Outcome::Challenge, reasons)
            } else {
                finish(Outcome::Portal, reasons)
            }
        }
    }
}

//! The values a decision is made of: the [`Outcome`] for one recipient, the chain of [`Reason`]s (each
//! from one pipeline [`Step`], with a typed [`ReasonCode`]) and the [`Decision`] that holds both.

use serde::Serialize;

use super::ReasonCode;

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
    pub code: ReasonCode,
    pub text: String,
}

impl Reason {
    pub fn new(step: Step, code: ReasonCode, text: impl Into<String>) -> Self {
        Reason {
            step,
            code,
            text: text.into(),
        }
    }
}

/// How the attachments of a message reach one recipient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attachments {
    /// In the message (those above `portal.large_attachment_bytes` of a held copy still by link).
    #[default]
    Attached,
    /// Every attachment, whatever its size, by a secure portal link that asks for the recipient's
    /// verification (the policy's `nta_portal_attachments`). The recipient is then always held.
    ByLink,
}

impl Attachments {
    pub fn as_str(self) -> &'static str {
        match self {
            Attachments::Attached => "attached",
            Attachments::ByLink => "by_link",
        }
    }
}

/// The decision for one recipient, with every reason that led to it, in pipeline order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub recipient: String,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    /// Whether the attachments go by link (its reason is among `reasons`).
    pub attachments: Attachments,
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

    /// Whether any reason carries this code.
    pub fn has(&self, code: ReasonCode) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }
}

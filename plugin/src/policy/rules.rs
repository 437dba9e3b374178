//! The seam to the admin's rules: the [`Policy`] trait that sets 2FA requirements and exemptions per
//! recipient, the [`PolicyFacts`] it is offered, the [`PolicyVerdict`] it returns and the
//! [`Requirement`] scale. The Sieve `vnd.nta7516` engine ([`super::sieve::SievePolicy`]) is the real
//! implementation; [`DefaultPolicy`] decides nothing, so the configured default requirement applies.

use serde::Serialize;

/// Strictness order: `Exempt < Require2fa < Portal < Reject` (the Sieve extension's own type).
pub use nta7516_sieve::Requirement;

/// One reason the policy gave, with the requirement it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyReason {
    pub requirement: Requirement,
    pub text: String,
}

/// What the policy said for one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyVerdict {
    /// The strictest requirement recorded; `None` when the policy decided nothing.
    pub requirement: Option<Requirement>,
    pub reasons: Vec<PolicyReason>,
    /// Sender groups the policy assigned (`nta_group`).
    pub groups: Vec<String>,
    /// A runtime error or CPU overrun: the pipeline treats it as "2FA required".
    pub error: Option<String>,
    /// The policy sends every attachment to this recipient by secure link (`nta_portal_attachments`),
    /// with its reason. The pipeline then requires 2FA whatever exempts the recipient.
    pub attachments_by_link: Option<String>,
}

/// Facts about one recipient, offered to the policy.
#[derive(Debug, Clone, Default)]
pub struct PolicyFacts {
    pub tls: Option<String>,
    pub tls_grade: Option<String>,
    pub peer_provider: Option<String>,
    pub verified_until: Option<i64>,
    pub phone_known: bool,
    pub sender_group: Option<String>,
    pub recipient_domain: String,
    pub size: usize,
    /// Received mail: DMARC, DKIM, SPF and ARC results of the gateway's verification, and the TLS
    /// version of the sending server's connection. `None` for mail sent (the policy reads `none`).
    pub dmarc: Option<String>,
    pub dkim: Option<String>,
    pub spf: Option<String>,
    pub arc: Option<String>,
    pub tls_version: Option<String>,
    /// Which way the message goes.
    pub direction: Direction,
    /// Received mail whose sender's peer record could not be looked up.
    pub peer_unknown: bool,
}

/// Mail sent by the organisation (submission hook) or received from the internet (inbound hook).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Evaluates the admin's policy. Called once per message with every external recipient, so the message is
/// parsed once; each recipient is evaluated on its own.
pub trait Policy: Send + Sync + 'static {
    fn evaluate(
        &self,
        raw_message: &[u8],
        sender: &str,
        recipients: &[(&str, PolicyFacts)],
    ) -> Vec<PolicyVerdict>;
}

/// No policy configured: no decision, so the configured default requirement applies.
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn evaluate(
        &self,
        _raw: &[u8],
        _sender: &str,
        recipients: &[(&str, PolicyFacts)],
    ) -> Vec<PolicyVerdict> {
        recipients
            .iter()
            .map(|_| PolicyVerdict::default())
            .collect()
    }
}

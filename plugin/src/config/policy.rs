//! `[organisation]`, `[exemptions]`, `[[peers]]` and `[policy]`: what the decision pipeline is told
//! about the organisation (local domains, sender groups, exemptions, NTA 7516 peers) and which policy
//! applies, with the configured default as a typed [`DefaultRequirement`].

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::policy::Requirement;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganisationConfig {
    /// Domains whose mail stays inside the organisation (internal mail is exempt).
    #[serde(default)]
    pub local_domains: Vec<String>,
    /// Sender groups: address or `@domain` → group name (offered to the policy).
    #[serde(default)]
    pub sender_groups: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExemptionsConfig {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub domain: String,
    pub provider: String,
}

/// `policy.default`: what applies to an external recipient when no policy rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultRequirement {
    /// NTA 7516's default: the recipient verifies by 2FA.
    #[default]
    #[serde(rename = "require_2fa")]
    Require2fa,
    /// Opt-in organisations: no 2FA unless a rule asks for it.
    Exempt,
}

impl DefaultRequirement {
    pub fn requirement(self) -> Requirement {
        match self {
            DefaultRequirement::Require2fa => Requirement::Require2fa,
            DefaultRequirement::Exempt => Requirement::Exempt,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Sieve policy file (`vnd.nta7516`). Without one, `default` applies to every external recipient.
    pub file: Option<PathBuf>,
    /// `require_2fa` (NTA 7516 default) or `exempt` (opt-in organisations).
    #[serde(deserialize_with = "policy_default")]
    pub default: DefaultRequirement,
    /// Days a successful verification exempts the recipient.
    #[serde(default = "default_verified_days")]
    pub verified_days: u32,
}

fn policy_default<'de, D: Deserializer<'de>>(d: D) -> Result<DefaultRequirement, D::Error> {
    super::named("policy.default", d)
}

fn default_verified_days() -> u32 {
    90
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            file: None,
            default: DefaultRequirement::default(),
            verified_days: default_verified_days(),
        }
    }
}

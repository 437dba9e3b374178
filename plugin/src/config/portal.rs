//! `[portal]`: recipient verification — code lifetime and tries, SMS rate limits, the portal session,
//! the background worker's interval, the reverse proxies trusted for the client address, and the
//! defaults of the sender's notices (hold confirmation, collection receipt).

use serde::Deserialize;

use super::ConfigError;

/// Recipient verification: codes, tries, rate limits and the background worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// Validity of an SMS code.
    #[serde(default = "default_code_lifetime")]
    pub code_lifetime_secs: i64,
    /// Wrong codes before the challenge locks.
    #[serde(default = "default_tries")]
    pub max_tries: i64,
    /// Window of the SMS rate limits below.
    #[serde(default = "default_rate_window")]
    pub rate_window_secs: i64,
    #[serde(default = "default_sms_per_recipient")]
    pub sms_per_recipient: i64,
    #[serde(default = "default_sms_per_phone")]
    pub sms_per_phone: i64,
    #[serde(default = "default_sms_per_ip")]
    pub sms_per_ip: i64,
    /// Lifetime of the portal session after a successful code.
    #[serde(default = "default_session")]
    pub session_secs: i64,
    /// How often the notification/release worker looks for work when nothing wakes it.
    #[serde(default = "default_worker_interval")]
    pub worker_interval_ms: u64,
    /// Reverse proxies in front of the portal (IP addresses). A request from one of them is counted
    /// against the SMS limit per IP with the client address it names in `X-Forwarded-For` (the
    /// right-most entry that is not itself a trusted proxy); from anyone else the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Whether a sender gets a short "held for secure delivery" mail with a withdraw link when a message
    /// is held, where the sender domain's settings (admin API) do not say.
    #[serde(default)]
    pub hold_confirmation: bool,
    /// Whether a sender gets one short mail when the recipient collected the message (released to the
    /// inbox, or first opened on the portal), where the sender domain's settings do not say.
    #[serde(default)]
    pub collection_receipt: bool,
    /// Attachments of a held message larger than this (decoded bytes) are kept sealed in the blob
    /// folder and replaced in what is released by a text part with a download link that needs the
    /// recipient's verification. 0 = off.
    #[serde(default = "default_large_attachment")]
    pub large_attachment_bytes: u64,
}

fn default_code_lifetime() -> i64 {
    300
}
fn default_tries() -> i64 {
    5
}
fn default_rate_window() -> i64 {
    3_600
}
fn default_sms_per_recipient() -> i64 {
    5
}
fn default_sms_per_phone() -> i64 {
    5
}
fn default_sms_per_ip() -> i64 {
    20
}
fn default_session() -> i64 {
    1_800
}
fn default_large_attachment() -> u64 {
    20 * 1024 * 1024
}
fn default_worker_interval() -> u64 {
    5_000
}

impl Default for PortalConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

impl PortalConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_tries < 1 || self.code_lifetime_secs < 1 {
            return Err(ConfigError::Invalid(
                "portal.max_tries and portal.code_lifetime_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

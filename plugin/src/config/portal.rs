//! `[portal]`: recipient verification — code lifetime and tries, SMS rate limits, the portal session,
//! the background worker's interval, the reverse proxies trusted for the client address, the limits
//! of a secure reply written on the portal, and the defaults of the sender's notices (hold
//! confirmation, collection receipt).

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
    /// The largest reply a portal recipient may write: its text and attachments together, in bytes
    /// (at most [`REPLY_MAX_BYTES_LIMIT`]).
    #[serde(default = "default_reply_max_bytes")]
    pub reply_max_bytes: u64,
    /// Attachments per reply (0: text only).
    #[serde(default = "default_reply_max_attachments")]
    pub reply_max_attachments: u32,
    /// Replies one recipient may write per hour (across all their messages).
    #[serde(default = "default_replies_per_hour")]
    pub replies_per_hour: i64,
}

/// The highest `reply_max_bytes` accepted (the portal's request limit is derived from it).
pub const REPLY_MAX_BYTES_LIMIT: u64 = 50 * 1024 * 1024;

fn default_reply_max_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_reply_max_attachments() -> u32 {
    5
}
fn default_replies_per_hour() -> i64 {
    10
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
        if !(1024..=REPLY_MAX_BYTES_LIMIT).contains(&self.reply_max_bytes) {
            return Err(ConfigError::Invalid(format!(
                "portal.reply_max_bytes must be between 1024 and {REPLY_MAX_BYTES_LIMIT} (50 MiB), not {}",
                self.reply_max_bytes
            )));
        }
        if self.reply_max_attachments > 50 {
            return Err(ConfigError::Invalid(format!(
                "portal.reply_max_attachments must be at most 50, not {}",
                self.reply_max_attachments
            )));
        }
        if self.replies_per_hour < 1 {
            return Err(ConfigError::Invalid(format!(
                "portal.replies_per_hour must be at least 1, not {}",
                self.replies_per_hour
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::PortalConfig;

    fn parse(toml: &str) -> Result<(), String> {
        let c: PortalConfig = toml::from_str(toml).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn reply_limits_are_checked() {
        let d = PortalConfig::default();
        assert_eq!(
            (
                d.reply_max_bytes,
                d.reply_max_attachments,
                d.replies_per_hour
            ),
            (10 * 1024 * 1024, 5, 10)
        );
        assert!(
            parse("reply_max_bytes = 65536\nreply_max_attachments = 0\nreplies_per_hour = 1")
                .is_ok()
        );
        let e = parse("reply_max_bytes = 100").unwrap_err();
        assert!(e.contains("portal.reply_max_bytes"), "{e}");
        assert!(parse("reply_max_bytes = 52428801").is_err());
        let e = parse("reply_max_attachments = 51").unwrap_err();
        assert!(e.contains("portal.reply_max_attachments"), "{e}");
        let e = parse("replies_per_hour = 0").unwrap_err();
        assert!(e.contains("portal.replies_per_hour"), "{e}");
        assert!(parse("reply_max_bytes = -1").is_err());
    }
}

//! `[stalwart]`: how the gateway reaches Stalwart's `nta-release` and `nta-notify` listeners (SMTP
//! submission with STARTTLS and AUTH as its service account) and the sender of its notification mails.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// How the gateway submits to Stalwart: released messages to `release`, its own notification mails to
/// `notify`, both with SMTP AUTH as the gateway's service account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StalwartConfig {
    /// `host:port` of the `nta-release` listener.
    pub release: String,
    /// `host:port` of the `nta-notify` listener.
    pub notify: String,
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Upgrade with STARTTLS and verify Stalwart's certificate (refuse to authenticate otherwise).
    #[serde(default = "yes")]
    pub starttls: bool,
    /// PEM file with the CA(s) that sign Stalwart's certificate; the Mozilla roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Name to verify in Stalwart's certificate; the host part of the address otherwise.
    pub tls_server_name: Option<String>,
    /// EHLO name.
    #[serde(default = "default_helo")]
    pub helo: String,
    /// Envelope and header sender of notification mails.
    pub notify_from: String,
    /// Display name of notification mails.
    #[serde(default = "default_notify_name")]
    pub notify_name: String,
    /// First retry delay after a failed submission; doubled per attempt up to `retry_max_secs`.
    #[serde(default = "default_retry_base")]
    pub retry_base_secs: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
    /// Connect/command timeout.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_helo() -> String {
    "nta7516-gateway".into()
}
fn default_notify_name() -> String {
    "Beveiligde e-mail / Secure mail".into()
}
fn default_retry_base() -> u64 {
    30
}
fn default_retry_max() -> u64 {
    3_600
}
fn default_smtp_timeout() -> u64 {
    30_000
}

impl StalwartConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.password.is_none() && self.password_file.is_none() {
            return Err(ConfigError::Invalid(
                "stalwart.password or stalwart.password_file is required".into(),
            ));
        }
        if !self.notify_from.contains('@') {
            return Err(ConfigError::Invalid(format!(
                "stalwart.notify_from must be a mail address, not {:?}",
                self.notify_from
            )));
        }
        Ok(())
    }
}

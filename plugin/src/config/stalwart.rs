//! `[stalwart]`: how the gateway reaches Stalwart's `nta-release` and `nta-notify` listeners (SMTP
//! submission with STARTTLS and AUTH as its service account), the sender of its notification mails, and
//! the management API through which `serve` checks Stalwart's configuration (`management_*`,
//! `check_interval_secs`, `on_unsafe`).

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
    /// Stalwart's management (HTTP) URL, e.g. `http://127.0.0.1:8080`: when set, `serve` runs
    /// `stalwart check` at start and every `check_interval_secs`.
    pub management_url: Option<String>,
    /// HTTP Basic user of the management API (with `management_password_file`).
    pub management_user: Option<String>,
    pub management_password_file: Option<PathBuf>,
    /// A bearer token instead of user and password.
    pub management_token_file: Option<PathBuf>,
    /// PEM roots for an `https` management URL; the Mozilla roots otherwise.
    pub management_ca_file: Option<PathBuf>,
    /// `auto` (detect), `0.15` or `0.16`.
    #[serde(default)]
    pub management_version: ManagementVersion,
    #[serde(default = "default_check_interval")]
    pub check_interval_secs: u64,
    /// What a failing safety rule (or an unreadable configuration) does: `hold` (default) holds every
    /// external recipient that would leave now; `warn` only logs.
    #[serde(default)]
    pub on_unsafe: OnUnsafe,
}

/// `stalwart.management_version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ManagementVersion {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "0.15")]
    V015,
    #[serde(rename = "0.16")]
    V016,
}

/// `stalwart.on_unsafe`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnsafe {
    /// Hold every external recipient while Stalwart is unsafe or its configuration unknown.
    #[default]
    Hold,
    /// Log, set the metric and `/healthz` detail; decide as usual.
    Warn,
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
fn default_check_interval() -> u64 {
    300
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
        self.validate_management()
    }

    fn validate_management(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.management_url else {
            return Ok(());
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "stalwart.management_url must be http:// or https://, not {url:?}"
            )));
        }
        let basic = self.management_user.is_some() && self.management_password_file.is_some();
        if !basic && self.management_token_file.is_none() {
            return Err(ConfigError::Invalid(
                "stalwart.management_url needs management_user + management_password_file, or management_token_file".into(),
            ));
        }
        if self.check_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "stalwart.check_interval_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

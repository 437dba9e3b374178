//! `[sms]`: how verification codes reach the recipient's phone ([`SmsMode`]) and the AWS SNS settings.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// `sms.mode`: where verification codes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsMode {
    /// Development: codes are written to the log, never sent.
    #[default]
    Log,
    /// AWS SNS.
    Sns,
}

impl SmsMode {
    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SmsMode::Log => "log",
            SmsMode::Sns => "sns",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `log` (development: codes are written to the log) or `sns` (AWS SNS).
    #[serde(deserialize_with = "sms_mode")]
    pub mode: SmsMode,
    /// AWS region of the SNS endpoint.
    #[serde(default = "default_region")]
    pub region: String,
    /// Alphanumeric sender id shown on the phone (`AWS.SNS.SMS.SenderID`), when set.
    pub sender_id: Option<String>,
    /// Overrides the SNS endpoint (tests, VPC endpoints).
    pub endpoint_url: Option<String>,
    /// Static credentials; without them `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    /// `AWS_SESSION_TOKEN` from the environment are used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    /// Per-request timeout towards SNS.
    #[serde(default = "default_sms_timeout")]
    pub timeout_ms: u64,
}

fn sms_mode<'de, D: Deserializer<'de>>(d: D) -> Result<SmsMode, D::Error> {
    super::named("sms.mode", d)
}

fn default_region() -> String {
    "eu-west-1".into()
}
fn default_sms_timeout() -> u64 {
    5_000
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            mode: SmsMode::default(),
            region: default_region(),
            sender_id: None,
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            timeout_ms: default_sms_timeout(),
        }
    }
}

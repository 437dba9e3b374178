//! `[bulk]`: where `stalwart-nta7516 bulk send` submits its messages — Stalwart's own submission
//! listener (SMTP with STARTTLS and AUTH, like a mail client), so that every message passes the MTA hook
//! like any other mail. The trust choices are those of `[stalwart]` ([`StalwartTrust`]).

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, SpkiPin, StalwartTrust};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkConfig {
    /// `host:port` of Stalwart's submission listener, e.g. `mail.zorg.example:587`.
    pub submission: String,
    /// The account to authenticate as; the `--as` sender when absent (Stalwart's must-match-sender
    /// then holds without an exception).
    pub username: Option<String>,
    /// The password (prefer `password_file`, or the `NTA7516__BULK__PASSWORD` environment override).
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Upgrade with STARTTLS and verify the certificate (refuse to authenticate otherwise).
    #[serde(default = "yes")]
    pub starttls: bool,
    /// PEM file with the CA(s) that sign the listener's certificate; the Mozilla roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Name to verify in the certificate; the host part of `submission` otherwise.
    pub tls_server_name: Option<String>,
    /// Trust exactly this key (SHA-256 of its SubjectPublicKeyInfo); excludes `ca_file`.
    pub pin_spki_sha256: Option<SpkiPin>,
    /// EHLO name.
    #[serde(default = "default_helo")]
    pub helo: String,
    /// Connect/command timeout.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_helo() -> String {
    "nta7516-bulk".into()
}
fn default_timeout() -> u64 {
    60_000
}

impl BulkConfig {
    /// A pin, else the CA file, else the Mozilla roots.
    pub fn trust(&self) -> StalwartTrust {
        match (&self.pin_spki_sha256, &self.ca_file) {
            (Some(pin), _) => StalwartTrust::PinnedSpki(*pin),
            (None, Some(file)) => StalwartTrust::CaFile(file.clone()),
            (None, None) => StalwartTrust::WebPki,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.pin_spki_sha256.is_some() && self.ca_file.is_some() {
            return Err(ConfigError::Invalid(
                "bulk.pin_spki_sha256 and bulk.ca_file exclude each other; keep one".into(),
            ));
        }
        if !self.starttls && self.pin_spki_sha256.is_some() {
            return Err(ConfigError::Invalid(
                "bulk.pin_spki_sha256 needs bulk.starttls = true".into(),
            ));
        }
        if !self.submission.contains(':') {
            return Err(ConfigError::Invalid(format!(
                "bulk.submission must be host:port, not {:?}",
                self.submission
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, StalwartTrust};

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::parse(text, Path::new("t.toml"), env).map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_its_password_override_and_its_refusals() {
        let c = parse(
            "[bulk]\nsubmission = \"mail.zorg.test:587\"\nca_file = \"ca.pem\"\n",
            &[("NTA7516__BULK__PASSWORD", "s3cret")],
        )
        .unwrap();
        let b = c.bulk.unwrap();
        assert_eq!(b.password.as_deref(), Some("s3cret"));
        assert!(b.starttls && b.username.is_none());
        assert_eq!(b.trust(), StalwartTrust::CaFile("ca.pem".into()));
        assert!(parse("", &[]).unwrap().bulk.is_none());
        let e = parse("[bulk]\nsubmission = \"mail.zorg.test\"\n", &[]).unwrap_err();
        assert!(e.contains("host:port"), "{e}");
        let pin = "sha256/".to_string() + &"A".repeat(43) + "=";
        let e = parse(
            &format!(
                "[bulk]\nsubmission = \"m:587\"\nca_file = \"x\"\npin_spki_sha256 = \"{pin}\"\n"
            ),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("exclude each other"), "{e}");
        let e = parse("[bulk]\nsubmission = \"m:587\"\npasword = \"x\"\n", &[]).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }
}

//! `[stalwart]`: how the gateway reaches Stalwart's `nta-release` and `nta-notify` listeners (SMTP
//! submission with STARTTLS and AUTH as its service account), how it trusts their certificate
//! ([`StalwartTrust`]), the sender of its notification mails, and the management API through which
//! `serve` checks Stalwart's configuration (`management_*`, `check_interval_secs`, `on_unsafe`).

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
    /// Name to verify in Stalwart's certificate (and to send as SNI); the host part of the address
    /// otherwise. With `pin_spki_sha256` only sent, not checked.
    pub tls_server_name: Option<String>,
    /// SHA-256 of the SubjectPublicKeyInfo of Stalwart's listener certificate (base64 or hex), as
    /// `stalwart-nta7516 stalwart trust` prints and writes it: trust exactly that key, nothing else.
    /// Excludes `ca_file`.
    pub pin_spki_sha256: Option<SpkiPin>,
    /// EHLO name.
    #[serde(default = "default_helo")]
    pub helo: String,
    /// Envelope and header sender of notification mails.
    pub notify_from: String,
    /// How Stalwart reaches the gateway's hook and webhook (`stalwart render`, `stalwart check`), e.g.
    /// `http://gateway:8470` in a container network. Default: `http://<server.listen>`, or
    /// `server.public_url` when the gateway listens on every address.
    pub gateway_url: Option<String>,
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
    /// How long a worker's claim on a release or a notification is its own. A claim older than this
    /// belongs to a process that stopped: any instance takes it over (a release claimed but not yet
    /// sending is tried again, one whose data may have gone out becomes `uncertain`; a notification is
    /// sent again). At least the time one submission can take (see [`StalwartConfig::min_claim_lease_ms`]).
    #[serde(default = "default_claim_lease")]
    pub claim_lease_secs: u64,
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
fn default_claim_lease() -> u64 {
    600
}
fn default_check_interval() -> u64 {
    300
}

/// How the gateway decides that the listener it talks to is Stalwart. One choice, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StalwartTrust {
    /// A certificate for the server name, issued by a CA in the Mozilla root program (the default: a
    /// Stalwart with a public certificate, e.g. from ACME).
    WebPki,
    /// A certificate for the server name, issued by a CA in this PEM file (a private CA, or Stalwart's
    /// own stable self-signed certificate).
    CaFile(PathBuf),
    /// Exactly the key with this SPKI hash, whatever the certificate around it says (names, issuer,
    /// dates are not checked; the handshake signature is). For a Stalwart whose key does not change.
    PinnedSpki(SpkiPin),
}

/// A SHA-256 hash of a certificate's DER SubjectPublicKeyInfo (the HPKP `pin-sha256` value). Read from
/// base64 (44 characters, `sha256/` prefix allowed) or hex (64 digits, `:` separators allowed); shown
/// as base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin(pub [u8; 32]);

impl SpkiPin {
    /// The pin of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> SpkiPin {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut pin = [0u8; 32];
        pin.copy_from_slice(digest.as_ref());
        SpkiPin(pin)
    }

    /// Hex, lower case.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine;
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpkiPin({self})")
    }
}

impl std::str::FromStr for SpkiPin {
    type Err = String;

    fn from_str(text: &str) -> Result<SpkiPin, String> {
        use base64::Engine;
        let t = text.trim();
        let t = t.strip_prefix("sha256/").unwrap_or(t);
        let hex_digits: String = t.chars().filter(|c| *c != ':').collect();
        let bytes = if hex_digits.len() == 64 && hex_digits.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(&hex_digits).ok()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
                .ok()
        };
        match bytes.map(<[u8; 32]>::try_from) {
            Some(Ok(pin)) => Ok(SpkiPin(pin)),
            _ => Err(format!(
                "{text:?} is not a SHA-256 SPKI pin: expected 44 base64 characters or 64 hex digits \
                 (as `stalwart-nta7516 stalwart trust HOST:PORT` prints)"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for SpkiPin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SpkiPin, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl StalwartConfig {
    /// The trust choice: a pin, else the CA file, else the Mozilla roots (`validate` refuses a pin
    /// together with a CA file).
    pub fn trust(&self) -> StalwartTrust {
        match (&self.pin_spki_sha256, &self.ca_file) {
            (Some(pin), _) => StalwartTrust::PinnedSpki(*pin),
            (None, Some(file)) => StalwartTrust::CaFile(file.clone()),
            (None, None) => StalwartTrust::WebPki,
        }
    }

    /// The shortest claim lease that outlasts one release: the TLS re-check (`tls_budget_ms`), then a
    /// session (connect, greeting, EHLO, STARTTLS, handshake, EHLO, AUTH) and a submission (MAIL, RCPT,
    /// DATA, the data and its dot), each step within `timeout_ms`. A shorter lease could hand a live
    /// worker's claim to another instance and send the message twice.
    pub fn min_claim_lease_ms(&self, tls_budget_ms: u64) -> u64 {
        tls_budget_ms + 12 * self.timeout_ms
    }

    /// The claim lease in seconds, as the store counts time.
    pub fn claim_lease(&self) -> i64 {
        i64::try_from(self.claim_lease_secs).unwrap_or(i64::MAX)
    }

    pub(super) fn validate_lease(&self, tls_budget_ms: u64) -> Result<(), ConfigError> {
        let min = self.min_claim_lease_ms(tls_budget_ms);
        if self.claim_lease_secs.saturating_mul(1000) < min {
            return Err(ConfigError::Invalid(format!(
                "stalwart.claim_lease_secs = {} is shorter than one release can take \
                 (hook.tls_budget_ms + 12 × stalwart.timeout_ms = {} s): another instance could take over \
                 a claim still in use and send twice",
                self.claim_lease_secs,
                min.div_ceil(1000)
            )));
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.gateway_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(char::is_whitespace)
            {
                return Err(ConfigError::Invalid(format!(
                    "stalwart.gateway_url must be an http:// or https:// URL, not {url:?}"
                )));
            }
        }
        if self.pin_spki_sha256.is_some() && self.ca_file.is_some() {
            return Err(ConfigError::Invalid(
                "stalwart.pin_spki_sha256 and stalwart.ca_file exclude each other: a pin trusts one key, \
                 a CA file the certificates it signs; keep one"
                    .into(),
            ));
        }
        if self.pin_spki_sha256.is_some() && !self.starttls {
            return Err(ConfigError::Invalid(
                "stalwart.pin_spki_sha256 needs stalwart.starttls = true (there is no certificate to pin \
                 without TLS)"
                    .into(),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const PIN_B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    const PIN_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn config(lines: &str) -> Result<Config, crate::config::ConfigError> {
        let text = format!(
            "[storage]\nurl = \"sqlite::memory:\"\n[stalwart]\nrelease = \"127.0.0.1:10025\"\n\
             notify = \"127.0.0.1:10026\"\nusername = \"svc\"\npassword = \"pw\"\n\
             notify_from = \"nta@zorg.test\"\n{lines}"
        );
        Config::parse(&text, "gateway.toml".as_ref(), std::iter::empty())
    }

    #[test]
    fn pins_read_in_base64_and_hex() {
        let b64: SpkiPin = PIN_B64.parse().unwrap();
        assert_eq!(b64.to_hex(), PIN_HEX);
        assert_eq!(b64.to_string(), PIN_B64);
        for text in [
            PIN_HEX.to_string(),
            PIN_HEX.to_uppercase(),
            format!("sha256/{PIN_B64}"),
            PIN_B64.trim_end_matches('=').to_string(),
            hex::encode(b64.0)
                .as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(":"),
        ] {
            assert_eq!(text.parse::<SpkiPin>().unwrap(), b64, "{text}");
        }
        for bad in [
            "",
            "abc",
            &PIN_HEX[..62],
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF==",
            "zz",
        ] {
            assert!(bad.parse::<SpkiPin>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_trust_choice() {
        let c = config("").unwrap().stalwart.unwrap();
        assert_eq!(c.trust(), StalwartTrust::WebPki);
        let c = config("ca_file = \"ca.pem\"\n").unwrap().stalwart.unwrap();
        assert_eq!(c.trust(), StalwartTrust::CaFile("ca.pem".into()));
        let c = config(&format!(
            "pin_spki_sha256 = \"{PIN_HEX}\"\ntls_server_name = \"localhost\"\n"
        ))
        .unwrap()
        .stalwart
        .unwrap();
        assert_eq!(
            c.trust(),
            StalwartTrust::PinnedSpki(PIN_B64.parse().unwrap())
        );
    }

    #[test]
    fn bad_pins_are_refused_at_load() {
        let e = config("pin_spki_sha256 = \"not-a-pin\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a SHA-256 SPKI pin") && e.contains("line 9"),
            "{e}"
        );
        let e = config(&format!(
            "pin_spki_sha256 = \"{PIN_B64}\"\nca_file = \"ca.pem\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("exclude each other"), "{e}");
        let e = config(&format!(
            "pin_spki_sha256 = \"{PIN_B64}\"\nstarttls = false\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs stalwart.starttls = true"), "{e}");
    }

    #[test]
    fn a_claim_lease_shorter_than_one_release_is_refused() {
        let c = config("").unwrap().stalwart.unwrap();
        assert_eq!(c.claim_lease_secs, 600);
        // 3 s TLS budget + 12 × 2 s = 27 s.
        assert!(config("timeout_ms = 2000\nclaim_lease_secs = 27\n").is_ok());
        let e = config("timeout_ms = 2000\nclaim_lease_secs = 26\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("claim_lease_secs = 26") && e.contains("27 s"),
            "{e}"
        );
    }
}

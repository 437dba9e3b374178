//! The gateway configuration: one TOML file, environment overrides, and the embedded default.
//!
//! This file owns [`Config`] (the whole file, section by section), loading and parsing (errors with line
//! and column), the embedded default, the validation order and the questions others ask of the
//! configuration ([`Config::default_requirement`], [`Config::is_local_domain`], …). Each section's
//! types, defaults and own checks live in a file of their own:
//! `http.rs` (`[server]`, `[hook]`, `[webhook]`, `[admin]`), `storage.rs` (`[storage]`, `[hold]`),
//! `policy.rs` (`[organisation]`, `[exemptions]`, `[[peers]]`, `[policy]`), `sms.rs`, `portal.rs`,
//! `smarttls.rs`, `stalwart.rs` and `doctor.rs`; `env.rs` applies the environment overrides. The sections
//! import only serde, this module's error type and the policy's `Requirement`.
//!
//! Closed choices (`sms.mode`, `policy.default`) are enums read by serde: a bad value is refused while
//! parsing, with the key, the line and the column.
//!
//! Environment overrides: `NTA7516__<SECTION>__<KEY>=value` sets `[section] key = value` (the value is
//! read as TOML when it parses, as a string otherwise), e.g. `NTA7516__STORAGE__URL=postgres://…`.

mod doctor;
mod env;
mod http;
mod policy;
mod portal;
mod smarttls;
mod sms;
mod stalwart;
mod storage;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::policy::Requirement;
pub use doctor::DoctorConfig;
pub use http::{AdminConfig, HookConfig, ServerConfig, WebhookConfig};
pub use policy::{
    DefaultRequirement, ExemptionsConfig, OrganisationConfig, PeerConfig, PolicyConfig,
};
pub use portal::PortalConfig;
pub use smarttls::SmartTlsSection;
pub use sms::{SmsConfig, SmsMode};
pub use stalwart::{ManagementVersion, OnUnsafe, StalwartConfig};
pub use storage::{HoldConfig, StorageConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub hook: HookConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub hold: HoldConfig,
    #[serde(default)]
    pub organisation: OrganisationConfig,
    #[serde(default)]
    pub exemptions: ExemptionsConfig,
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub sms: SmsConfig,
    /// SmartTLS probing of recipient mail servers (resolver, trust anchor, extra CA roots, ports, TTLs).
    #[serde(default)]
    pub smarttls: SmartTlsSection,
    /// Stalwart's `nta-release` and `nta-notify` listeners. Without this section nothing is released or
    /// notified (held messages stay held).
    #[serde(default)]
    pub stalwart: Option<StalwartConfig>,
    #[serde(default)]
    pub portal: PortalConfig,
    #[serde(default)]
    pub webhook: WebhookConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    /// `stalwart-nta7516 doctor`: what to check on the organisation's own domain.
    #[serde(default)]
    pub doctor: DoctorConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment override {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file and applies environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path, std::env::vars())
    }

    /// Parses TOML text (errors carry line and column) and applies `NTA7516__…` overrides from `env`.
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // First from the text itself, so errors point at its lines and columns.
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: toml_error(text, &e),
        })?;
        let env: Vec<(String, String)> = env.filter(|(k, _)| k.starts_with("NTA7516__")).collect();
        if !env.is_empty() {
            let mut value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.into(),
                message: toml_error(text, &e),
            })?;
            let names: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
            env::apply_env(&mut value, env.into_iter())?;
            config = value
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Env {
                    var: names.join(", "),
                    message: e.message().to_string(),
                })?;
        }
        config.validate()?;
        Ok(config)
    }

    /// The embedded default: SQLite under `data_dir`, loopback, SMS to the log. Secrets are generated on
    /// first start and kept in `data_dir` (`hook-token`, `master.key`). Environment overrides apply.
    pub fn embedded(
        data_dir: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut base = toml::Table::new();
        let mut table = |section: &str, key: &str, value: String| {
            let mut t = toml::Table::new();
            t.insert(key.into(), toml::Value::String(value));
            base.insert(section.into(), toml::Value::Table(t));
        };
        table(
            "storage",
            "url",
            format!("sqlite://{}", data_dir.join("gateway.db").display()),
        );
        table(
            "hook",
            "token_file",
            data_dir.join("hook-token").display().to_string(),
        );
        table(
            "hold",
            "master_key_file",
            data_dir.join("master.key").display().to_string(),
        );
        table(
            "webhook",
            "hmac_key_file",
            data_dir.join("webhook-key").display().to_string(),
        );
        table(
            "admin",
            "token_file",
            data_dir.join("admin-token").display().to_string(),
        );
        let text = toml::to_string(&base).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Self::parse(&text, Path::new("(embedded default)"), env)
    }

    /// The checks serde cannot make, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.storage.validate()?;
        if let Some(s) = &self.stalwart {
            s.validate()?;
        }
        self.portal.validate()?;
        self.hold.validate()
    }

    pub fn default_requirement(&self) -> Requirement {
        self.policy.default.requirement()
    }

    /// The sender's group from `organisation.sender_groups` (exact address first, then `@domain`).
    pub fn sender_group(&self, sender: &str) -> Option<&str> {
        let groups = &self.organisation.sender_groups;
        groups.get(sender).map(String::as_str).or_else(|| {
            let domain = sender.rsplit_once('@')?.1;
            groups.get(&format!("@{domain}")).map(String::as_str)
        })
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.organisation
            .local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

/// Reads a closed choice, naming its key in the error (`sms.mode: unknown variant …, expected …`); the
/// TOML parser adds the line and column.
fn named<'de, T: Deserialize<'de>, D: Deserializer<'de>>(key: &str, d: D) -> Result<T, D::Error> {
    T::deserialize(d)
        .map_err(|e| serde::de::Error::custom(format!("{key}: {}", e.to_string().trim_end())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_has_line_and_column() {
        let err = Config::parse(
            "[server]\nlisten = 12 12\n",
            Path::new("x.toml"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2, column"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::parse(
            "[hold]\nretention = 3\n",
            Path::new("x.toml"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `retention`"), "{err}");
    }

    #[test]
    fn env_overrides_apply() {
        let env = vec![
            (
                "NTA7516__STORAGE__URL".to_string(),
                "postgres://u@h/db".to_string(),
            ),
            (
                "NTA7516__HOLD__RETENTION_DAYS".to_string(),
                "30".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::parse("", Path::new("x.toml"), env.into_iter()).unwrap();
        assert_eq!(c.storage.url, "postgres://u@h/db");
        assert_eq!(c.hold.retention_days, 30);
    }

    #[test]
    fn embedded_default_is_loopback_sqlite_and_log_sms() {
        let c = Config::embedded(Path::new("data"), std::iter::empty()).unwrap();
        assert!(c.server.listen.ip().is_loopback());
        assert_eq!(c.storage.url, "sqlite://data/gateway.db");
        assert_eq!(c.sms.mode, SmsMode::Log);
        let env = vec![(
            "NTA7516__SERVER__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        )];
        let c = Config::embedded(Path::new("data"), env.into_iter()).unwrap();
        assert_eq!(c.server.listen.port(), 0);
    }

    #[test]
    fn smarttls_section_takes_the_probe_settings() {
        let c = Config::parse(
            "[smarttls]\nresolver = \"127.0.0.1:5353\"\nsmtp_port = 2525\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap();
        assert!(c.smarttls.enabled);
        assert_eq!(c.smarttls.probe.smtp_port, 2525);
        assert_eq!(
            c.smarttls.probe.resolver,
            Some("127.0.0.1:5353".parse().unwrap())
        );
        let err = Config::parse(
            "[smarttls]\nsmtp_prot = 1\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smtp_prot"), "{err}");
    }

    #[test]
    fn bad_default_requirement_is_refused() {
        let err = Config::parse(
            "[policy]\ndefault = \"deliver\"\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("policy.default"), "{err}");
        assert!(err.contains("line 2, column 11"), "{err}");
        assert!(err.contains("`deliver`"), "{err}");
        assert!(
            err.ends_with("expected `require_2fa` or `exempt`"),
            "{err:?}"
        );
        for (text, want) in [
            ("", Requirement::Require2fa),
            (
                "[policy]\ndefault = \"require_2fa\"\n",
                Requirement::Require2fa,
            ),
            ("[policy]\ndefault = \"exempt\"\n", Requirement::Exempt),
        ] {
            let c = Config::parse(text, Path::new("x"), std::iter::empty()).unwrap();
            assert_eq!(c.default_requirement(), want, "{text}");
        }
    }

    #[test]
    fn bad_sms_mode_is_refused_with_its_place() {
        let err = Config::parse(
            "[sms]\nmode = \"carrier-pigeon\"\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sms.mode"), "{err}");
        assert!(err.contains("line 2, column 8"), "{err}");
        assert!(err.contains("`log` or `sns`"), "{err}");
        let c = Config::parse(
            "[sms]\nmode = \"sns\"\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(c.sms.mode, SmsMode::Sns);
        // Through an environment override the variable is named instead of a line.
        let env = vec![("NTA7516__SMS__MODE".to_string(), "smoke".to_string())];
        let err = Config::parse("", Path::new("x"), env.into_iter())
            .unwrap_err()
            .to_string();
        assert!(err.contains("NTA7516__SMS__MODE"), "{err}");
        assert!(err.contains("sms.mode"), "{err}");
    }

    #[test]
    fn sender_groups_match_address_then_domain() {
        let c = Config::parse(
            "[organisation.sender_groups]\n\"@zorg.test\" = \"nta\"\n\"boss@zorg.test\" = \"gdpr\"\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(c.sender_group("boss@zorg.test"), Some("gdpr"));
        assert_eq!(c.sender_group("alice@zorg.test"), Some("nta"));
        assert_eq!(c.sender_group("x@other.test"), None);
    }
}

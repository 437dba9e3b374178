//! The gateway configuration: one TOML file, environment overrides, and the embedded default.
//!
//! Environment overrides: `NTA7516__<SECTION>__<KEY>=value` sets `[section] key = value` (the value is
//! read as TOML when it parses, as a string otherwise), e.g. `NTA7516__STORAGE__URL=postgres://…`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::policy::Requirement;

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

/// `[doctor]`: settings of the readiness check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoctorConfig {
    /// DKIM selectors whose key must be published (`<selector>._domainkey.<domain>`).
    pub dkim_selectors: Vec<String>,
}

/// Stalwart's webhook (`POST /v1/stalwart-events`). Without a key the intake refuses every request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The `signature-key` configured in Stalwart (HMAC-SHA256 over the body, `X-Signature`).
    pub hmac_key: Option<String>,
    pub hmac_key_file: Option<PathBuf>,
}

/// The admin API (`/v1/admin/…`). Without a token the API refuses every request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for the admin API.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// `[smarttls]`: `enabled = false` switches probing off (every external recipient is then held); the other
/// keys are the SmartTLS prober's own settings, unknown keys refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct SmartTlsSection {
    pub enabled: bool,
    pub probe: nta7516_smarttls::SmartTlsConfig,
}

impl TryFrom<toml::Table> for SmartTlsSection {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let enabled = match table.remove("enabled") {
            None => true,
            Some(toml::Value::Boolean(b)) => b,
            Some(other) => {
                return Err(format!(
                    "smarttls.enabled must be true or false, not {other}"
                ))
            }
        };
        let probe = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("[smarttls]: {}", e.message()))?;
        Ok(SmartTlsSection { enabled, probe })
    }
}

impl Default for SmartTlsSection {
    fn default() -> Self {
        SmartTlsSection {
            enabled: true,
            probe: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP listen address for the hook, portal, admin API and metrics.
    pub listen: SocketAddr,
    /// The address recipients use to reach the portal.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8470".parse().expect("static address"),
            public_url: "http://127.0.0.1:8470".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    /// Bearer token Stalwart sends (`Authorization: Bearer …`).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// How long the hook may wait for a SmartTLS verdict before treating it as unknown (held).
    #[serde(default = "default_budget")]
    pub tls_budget_ms: u64,
}

fn default_budget() -> u64 {
    3_000
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            token: None,
            token_file: None,
            tls_budget_ms: default_budget(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://path/to/file.db` (created when missing) or `postgres://user:pass@host/db`.
    pub url: String,
    #[serde(default = "default_pool")]
    pub max_connections: u32,
}

fn default_pool() -> u32 {
    8
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: "sqlite://data/gateway.db".into(),
            max_connections: default_pool(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoldConfig {
    /// 32-byte master key, hex (64 characters). Wraps the per-message keys.
    pub master_key: Option<String>,
    pub master_key_file: Option<PathBuf>,
    /// Held content is deleted after this many days (NTA 7516 practice: at most 90).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
}

fn default_retention() -> u32 {
    90
}

impl Default for HoldConfig {
    fn default() -> Self {
        HoldConfig {
            master_key: None,
            master_key_file: None,
            retention_days: default_retention(),
        }
    }
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Sieve policy file (`vnd.nta7516`). Without one, `default` applies to every external recipient.
    pub file: Option<PathBuf>,
    /// `require_2fa` (NTA 7516 default) or `exempt` (opt-in organisations).
    #[serde(default = "default_requirement")]
    pub default: String,
    /// Days a successful verification exempts the recipient.
    #[serde(default = "default_verified_days")]
    pub verified_days: u32,
}

fn default_requirement() -> String {
    "require_2fa".into()
}
fn default_verified_days() -> u32 {
    90
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            file: None,
            default: default_requirement(),
            verified_days: default_verified_days(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `log` (development: codes are written to the log) or `sns` (AWS SNS).
    pub mode: String,
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

fn default_region() -> String {
    "eu-west-1".into()
}
fn default_sms_timeout() -> u64 {
    5_000
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            mode: "log".into(),
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
fn default_worker_interval() -> u64 {
    5_000
}

impl Default for PortalConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
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
            apply_env(&mut value, env.into_iter())?;
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

    pub fn validate(&self) -> Result<(), ConfigError> {
        if Requirement::parse(&self.policy.default)
            .filter(|r| matches!(r, Requirement::Exempt | Requirement::Require2fa))
            .is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "policy.default must be \"require_2fa\" or \"exempt\", not {:?}",
                self.policy.default
            )));
        }
        if !(self.storage.url.starts_with("sqlite:") || self.storage.url.starts_with("postgres")) {
            return Err(ConfigError::Invalid(format!(
                "storage.url must start with sqlite: or postgres://, not {:?}",
                self.storage.url
            )));
        }
        if !matches!(self.sms.mode.as_str(), "log" | "sns") {
            return Err(ConfigError::Invalid(format!(
                "sms.mode must be \"log\" or \"sns\", not {:?}",
                self.sms.mode
            )));
        }
        if let Some(s) = &self.stalwart {
            if s.password.is_none() && s.password_file.is_none() {
                return Err(ConfigError::Invalid(
                    "stalwart.password or stalwart.password_file is required".into(),
                ));
            }
            if !s.notify_from.contains('@') {
                return Err(ConfigError::Invalid(format!(
                    "stalwart.notify_from must be a mail address, not {:?}",
                    s.notify_from
                )));
            }
        }
        if self.portal.max_tries < 1 || self.portal.code_lifetime_secs < 1 {
            return Err(ConfigError::Invalid(
                "portal.max_tries and portal.code_lifetime_secs must be at least 1".into(),
            ));
        }
        if self.hold.retention_days == 0 {
            return Err(ConfigError::Invalid(
                "hold.retention_days must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn default_requirement(&self) -> Requirement {
        Requirement::parse(&self.policy.default).unwrap_or(Requirement::Require2fa)
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

fn apply_env(
    root: &mut toml::Value,
    env: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in env {
        let Some(path) = var.strip_prefix("NTA7516__") else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                message: "empty key segment".into(),
            });
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let mut node = &mut *root;
        for key in &keys[..keys.len() - 1] {
            let table = node.as_table_mut().ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: format!("{key} is not a table"),
            })?;
            node = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
        }
        let table = node.as_table_mut().ok_or_else(|| ConfigError::Env {
            var: var.clone(),
            message: "parent is not a table".into(),
        })?;
        table.insert(keys[keys.len() - 1].clone(), value);
    }
    Ok(())
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
        assert_eq!(c.sms.mode, "log");
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

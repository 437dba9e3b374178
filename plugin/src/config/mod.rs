//! The gateway configuration: one TOML file, environment overrides, and the embedded default.
//!
//! This file owns [`Config`] (the whole file, section by section), loading and parsing (errors with line
//! and column), the embedded default, the validation order and the questions others ask of the
//! configuration ([`Config::default_requirement`], [`Config::is_local_domain`], …). Each section's
//! types, defaults and own checks live in a file of their own:
//! `http.rs` (`[server]`, `[hook]`, `[webhook]`, `[admin]`), `storage.rs` (`[storage]`, `[hold]`),
//! `policy.rs` (`[organisation]`, `[exemptions]`, `[[peers]]`, `[policy]`), `sms.rs`, `portal.rs`,
//! `smarttls.rs`, `stalwart.rs`, `bulk.rs`, `inbound.rs`, `branding.rs`, `doctor.rs` and `log.rs`; `env.rs` applies the environment overrides. The sections
//! import only serde, this module's error type and the policy's `Requirement`.
//!
//! Relative paths in a configuration file — the SQLite file of `storage.url` (also the default
//! `data/gateway.db`), every `*_file` key (`hook.token_file`, `hold.master_key_file`,
//! `webhook.hmac_key_file`, `admin.token_file`, `stalwart.password_file`, `stalwart.ca_file`,
//! `sms.secret_access_key_file`, `smarttls.ca_file`, `smarttls.trust_anchor_file`), `policy.file` and
//! the `branding` logos —
//! are resolved against the folder of that file, not the working directory, also when they come from an
//! environment override ([`Config::load`]). Paths on the command line (`--data-dir`, `--ca-file`, …) are
//! relative to the working directory, as usual.
//!
//! Closed choices (`sms.mode`, `policy.default`, `log.format`) are enums read by serde: a bad value is refused while
//! parsing, with the key, the line and the column.
//!
//! Environment overrides: `NTA7516__<SECTION>__<KEY>=value` sets `[section] key = value` (the value is
//! read as TOML when it parses, as a string otherwise), e.g. `NTA7516__STORAGE__URL=postgres://…`.

mod branding;
mod bulk;
mod doctor;
mod env;
mod http;
mod inbound;
mod log;
mod policy;
mod portal;
mod smarttls;
mod sms;
mod stalwart;
mod storage;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::policy::Requirement;
pub use branding::{
    Accent, Brand, BrandingConfig, Brands, DomainBranding, HttpsUrl, Logo, LogoKind, OrgName,
    Support,
};
pub use bulk::BulkConfig;
pub use doctor::DoctorConfig;
pub use http::{AdminConfig, HookConfig, ServerConfig, WebhookConfig};
pub use inbound::{InboundAction, InboundConfig};
pub use log::{LogConfig, LogFormat};
pub use policy::{
    DefaultRequirement, ExemptionsConfig, OrganisationConfig, PeerConfig, PolicyConfig,
};
pub use portal::{PortalConfig, REPLY_MAX_BYTES_LIMIT};
pub use smarttls::SmartTlsSection;
pub use sms::{SmsConfig, SmsMode};
pub use stalwart::{ManagementVersion, OnUnsafe, SpkiPin, StalwartConfig, StalwartTrust};
pub use storage::{sqlite_file, HoldConfig, StorageConfig};

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
    /// `[log]`: the log format (`text` or `json`).
    #[serde(default)]
    pub log: LogConfig,
    /// `[inbound]`: checks on mail received from the internet.
    #[serde(default)]
    pub inbound: InboundConfig,
    /// `[branding]`: the organisation's name, logo, colour and contacts on the portal and in its mails.
    #[serde(default)]
    pub branding: BrandingConfig,
    /// `[bulk]`: Stalwart's submission listener for `bulk send`.
    #[serde(default)]
    pub bulk: Option<BulkConfig>,
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
    /// Reads a TOML file, applies environment overrides and resolves relative paths against the file's
    /// folder (see the module docs).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config = Self::parse(&text, path, std::env::vars())?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(base) = absolute.parent() {
            config.resolve_relative(base);
        }
        // The files read at start are checked now, so that `check-config` finds a bad one.
        Brands::load(&config.branding)?;
        Ok(config)
    }

    /// Makes every relative path of the configuration `base/<path>`. A new path key is added here.
    pub fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut().filter(|p| p.is_relative()) {
                *p = base.join(&*p);
            }
        };
        self.storage.resolve_relative(base);
        fix(&mut self.hook.token_file);
        fix(&mut self.hold.master_key_file);
        fix(&mut self.hold.blob_dir);
        fix(&mut self.webhook.hmac_key_file);
        fix(&mut self.admin.token_file);
        fix(&mut self.policy.file);
        fix(&mut self.sms.secret_access_key_file);
        fix(&mut self.smarttls.probe.ca_file);
        fix(&mut self.smarttls.probe.trust_anchor_file);
        self.branding.resolve_relative(base);
        if let Some(s) = &mut self.stalwart {
            fix(&mut s.password_file);
            fix(&mut s.ca_file);
            fix(&mut s.management_password_file);
            fix(&mut s.management_token_file);
            fix(&mut s.management_ca_file);
        }
        if let Some(b) = &mut self.bulk {
            fix(&mut b.password_file);
            fix(&mut b.ca_file);
        }
    }

    /// What must be private on disk: the SQLite database's folder and the blob folder of large
    /// attachments (`hold.blob_dir`, 0700; its files are created 0600), the database, its `-wal` and
    /// `-shm` files and every configured secret file (0600). `Gateway::start` warns about each one that
    /// is more open ([`crate::fsperm::warn_if_open`]).
    pub fn private_paths(&self) -> Vec<(PathBuf, crate::fsperm::Kind)> {
        use crate::fsperm::Kind;
        let mut paths = Vec::new();
        if let Some(db) = self.storage.sqlite_file() {
            if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                paths.push((dir.to_path_buf(), Kind::Dir));
            }
            paths.push((db.to_path_buf(), Kind::File));
            for suffix in ["-wal", "-shm"] {
                let mut name = db.as_os_str().to_owned();
                name.push(suffix);
                paths.push((PathBuf::from(name), Kind::File));
            }
        }
        paths.push((self.hold.blob_dir(&self.storage), Kind::Dir));
        let stalwart = self.stalwart.as_ref();
        let files = [
            self.hook.token_file.as_ref(),
            self.hold.master_key_file.as_ref(),
            self.webhook.hmac_key_file.as_ref(),
            self.admin.token_file.as_ref(),
            self.sms.secret_access_key_file.as_ref(),
            stalwart.and_then(|s| s.password_file.as_ref()),
            stalwart.and_then(|s| s.management_password_file.as_ref()),
            stalwart.and_then(|s| s.management_token_file.as_ref()),
            self.bulk.as_ref().and_then(|b| b.password_file.as_ref()),
        ];
        paths.extend(files.into_iter().flatten().map(|p| (p.clone(), Kind::File)));
        paths
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
        self.server.validate()?;
        self.storage.validate()?;
        if let Some(s) = &self.stalwart {
            s.validate()?;
            s.validate_lease(self.hook.tls_budget_ms)?;
        }
        if let Some(b) = &self.bulk {
            b.validate()?;
        }
        self.portal.validate()?;
        self.inbound.validate(&self.organisation.local_domains)?;
        self.branding.validate(&self.organisation.local_domains)?;
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

    /// The host name the inbound checks speak for: `inbound.authserv_id`, else the first local domain.
    pub fn inbound_host(&self) -> &str {
        self.inbound
            .authserv_id
            .as_deref()
            .or(self.organisation.local_domains.first().map(String::as_str))
            .unwrap_or("localhost")
    }

    /// The `[[peers]]` entry for `domain`, if any.
    pub fn configured_peer(&self, domain: &str) -> Option<&PeerConfig> {
        self.peers
            .iter()
            .find(|p| p.domain.eq_ignore_ascii_case(domain))
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
    fn worker_threads_default_to_one_and_zero_means_one_per_core() {
        let parse = |text: &str| Config::parse(text, Path::new("x.toml"), std::iter::empty());
        assert_eq!(parse("").unwrap().server.runtime_threads(), 1);
        let cores = std::thread::available_parallelism().unwrap().get();
        let all = parse("[server]\nworker_threads = 0\n").unwrap();
        assert_eq!(all.server.runtime_threads(), cores);
        assert_eq!(
            parse("[server]\nworker_threads = 3\n")
                .unwrap()
                .server
                .runtime_threads(),
            3
        );
        assert!(parse("[server]\nworker_threads = 1025\n").is_err());
        assert!(parse("[server]\nworker_threads = -1\n").is_err());
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
    fn relative_paths_resolve_against_the_config_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("etc");
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(
            &path,
            "[storage]\nurl = \"sqlite:db/g.db?mode=rwc\"\n\
             [hook]\ntoken_file = \"keys/hook\"\n[hold]\nmaster_key_file = \"/abs/master.key\"\n\
             [webhook]\nhmac_key_file = \"keys/webhook\"\n[admin]\ntoken_file = \"keys/admin\"\n\
             [policy]\nfile = \"policies/p.sieve\"\n[sms]\nsecret_access_key_file = \"keys/aws\"\n\
             [smarttls]\nca_file = \"pki/ca.pem\"\ntrust_anchor_file = \"pki/anchors.zone\"\n\
             [stalwart]\nrelease = \"127.0.0.1:1\"\nnotify = \"127.0.0.1:2\"\nusername = \"u\"\n\
             password_file = \"keys/stalwart\"\nca_file = \"pki/stalwart.pem\"\nnotify_from = \"n@zorg.test\"\n",
        )
        .unwrap();
        assert_ne!(std::env::current_dir().unwrap(), dir);
        let c = Config::load(&path).unwrap();
        assert_eq!(
            c.storage.url,
            format!("sqlite://{}?mode=rwc", dir.join("db/g.db").display())
        );
        let s = c.stalwart.as_ref().unwrap();
        for (got, want) in [
            (&c.hook.token_file, "keys/hook"),
            (&c.webhook.hmac_key_file, "keys/webhook"),
            (&c.admin.token_file, "keys/admin"),
            (&c.policy.file, "policies/p.sieve"),
            (&c.sms.secret_access_key_file, "keys/aws"),
            (&c.smarttls.probe.ca_file, "pki/ca.pem"),
            (&c.smarttls.probe.trust_anchor_file, "pki/anchors.zone"),
            (&s.password_file, "keys/stalwart"),
            (&s.ca_file, "pki/stalwart.pem"),
        ] {
            assert_eq!(got.as_deref(), Some(dir.join(want).as_path()), "{want}");
        }
        assert_eq!(
            c.hold.master_key_file.as_deref(),
            Some(Path::new("/abs/master.key"))
        );
        // The default database is the config folder's too; parse() (no file) leaves paths as written.
        std::fs::write(&path, "").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(
            c.storage.sqlite_file(),
            Some(dir.join("data/gateway.db").as_path())
        );
        let c = Config::parse("", Path::new("x"), std::iter::empty()).unwrap();
        assert_eq!(c.storage.url, "sqlite://data/gateway.db");
    }

    #[test]
    fn private_paths_name_the_database_files_and_secrets() {
        use crate::fsperm::Kind;
        let c = Config::embedded(Path::new("/d"), std::iter::empty()).unwrap();
        let paths = c.private_paths();
        for (p, kind) in [
            ("/d", Kind::Dir),
            ("/d/gateway.db", Kind::File),
            ("/d/gateway.db-wal", Kind::File),
            ("/d/gateway.db-shm", Kind::File),
            ("/d/hook-token", Kind::File),
            ("/d/master.key", Kind::File),
            ("/d/webhook-key", Kind::File),
            ("/d/admin-token", Kind::File),
            ("/d/blobs", Kind::Dir),
        ] {
            assert!(paths.contains(&(PathBuf::from(p), kind)), "{p}: {paths:?}");
        }
        assert_eq!(paths.len(), 9, "{paths:?}");
    }

    /// A blob folder other local users may read is warned about at start, like the database's.
    #[cfg(unix)]
    #[test]
    fn an_open_blob_folder_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let blobs = dir.path().join("large");
        let toml = format!(
            "[storage]\nurl = \"sqlite://{}/gw.db\"\n[hold]\nblob_dir = \"{}\"\n",
            dir.path().display(),
            blobs.display()
        );
        let c = Config::parse(&toml, Path::new("x"), std::iter::empty()).unwrap();
        // Not created yet: nothing to warn about.
        assert!(crate::fsperm::warn_if_open(&c.private_paths()).is_empty());
        std::fs::create_dir(&blobs).unwrap();
        std::fs::set_permissions(&blobs, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            crate::fsperm::warn_if_open(&c.private_paths()),
            std::slice::from_ref(&blobs)
        );
        std::fs::set_permissions(&blobs, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(crate::fsperm::warn_if_open(&c.private_paths()).is_empty());
    }

    #[test]
    fn log_format_is_text_or_json() {
        let c = Config::parse("", Path::new("x"), std::iter::empty()).unwrap();
        assert_eq!(c.log.format, LogFormat::Text);
        let c = Config::parse(
            "[log]\nformat = \"json\"\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        let err = Config::parse(
            "[log]\nformat = \"xml\"\n",
            Path::new("x"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("log.format"), "{err}");
        assert!(err.contains("line 2, column 10"), "{err}");
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

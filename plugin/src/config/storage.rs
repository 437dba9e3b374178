//! `[storage]` and `[hold]`: the database, and how held content is keyed and kept.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

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

impl StorageConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("sqlite:") || self.url.starts_with("postgres")) {
            return Err(ConfigError::Invalid(format!(
                "storage.url must start with sqlite: or postgres://, not {:?}",
                self.url
            )));
        }
        Ok(())
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

impl HoldConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.retention_days == 0 {
            return Err(ConfigError::Invalid(
                "hold.retention_days must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

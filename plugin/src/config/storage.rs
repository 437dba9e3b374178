//! `[storage]` and `[hold]`: the database, and how held content is keyed and kept.

use std::path::{Path, PathBuf};

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

/// The file of a SQLite URL (`sqlite://data/gateway.db`, `sqlite:/var/lib/x.db?mode=rwc`); `None` for
/// PostgreSQL and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path.is_empty() || path.starts_with(":memory:") || query.contains("mode=memory");
    (!memory).then_some(path)
}

impl StorageConfig {
    /// The SQLite database file, when the storage is SQLite on disk.
    pub fn sqlite_file(&self) -> Option<&Path> {
        sqlite_file(&self.url).map(Path::new)
    }

    /// A relative SQLite file becomes `base/<file>` (the configuration file's folder).
    pub(super) fn resolve_relative(&mut self, base: &Path) {
        let Some(file) = sqlite_file(&self.url).filter(|f| Path::new(f).is_relative()) else {
            return;
        };
        let query = self.url.split_once('?').map(|(_, q)| format!("?{q}"));
        self.url = format!(
            "sqlite://{}{}",
            base.join(file).display(),
            query.unwrap_or_default()
        );
    }

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
    /// The folder of the sealed large attachments (`portal.large_attachment_bytes`); default `blobs`
    /// next to the SQLite file, else `data/blobs`. Several instances on one PostgreSQL need one shared
    /// folder.
    pub blob_dir: Option<PathBuf>,
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
            blob_dir: None,
        }
    }
}

impl HoldConfig {
    /// The blob folder: `blob_dir`, else `blobs` next to the SQLite file, else `data/blobs`.
    pub fn blob_dir(&self, storage: &StorageConfig) -> PathBuf {
        if let Some(dir) = &self.blob_dir {
            return dir.clone();
        }
        match storage.sqlite_file().and_then(Path::parent) {
            Some(parent) => parent.join("blobs"),
            None => PathBuf::from("data/blobs"),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.retention_days == 0 {
            return Err(ConfigError::Invalid(
                "hold.retention_days must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_and_resolved() {
        for (url, want) in [
            ("sqlite://data/gateway.db", Some("data/gateway.db")),
            ("sqlite:/var/lib/g.db?mode=rwc", Some("/var/lib/g.db")),
            ("sqlite::memory:", None),
            ("sqlite://x.db?mode=memory", None),
            ("postgres://u@h/db", None),
        ] {
            assert_eq!(sqlite_file(url), want, "{url}");
        }
        let mut c = StorageConfig {
            url: "sqlite:db/g.db?mode=rwc".into(),
            ..Default::default()
        };
        c.resolve_relative(Path::new("/etc/gw"));
        assert_eq!(c.url, "sqlite:///etc/gw/db/g.db?mode=rwc");
        c.resolve_relative(Path::new("/elsewhere"));
        assert_eq!(c.url, "sqlite:///etc/gw/db/g.db?mode=rwc", "absolute stays");
    }
}

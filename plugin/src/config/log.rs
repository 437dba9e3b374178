//! `[log]`: how the gateway writes its log to stderr ([`LogFormat`]: readable text or one JSON object per
//! line). Colours are used only when stderr is a terminal, whatever the format.

use serde::{Deserialize, Deserializer};

/// The log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per event (`timestamp`, `level`, `fields`, `target`), for log collectors.
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    #[serde(deserialize_with = "log_format")]
    pub format: LogFormat,
}

fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
    super::named("log.format", d)
}

//! `[smarttls]`: the switch for SmartTLS probing and the prober's own settings
//! ([`nta7516_smarttls::SmartTlsConfig`], unknown keys refused).

use serde::Deserialize;

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

//! `[doctor]`: what `stalwart-nta7516 doctor` checks on the organisation's own domain.

use serde::Deserialize;

/// `[doctor]`: settings of the readiness check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoctorConfig {
    /// DKIM selectors whose key must be published (`<selector>._domainkey.<domain>`).
    pub dkim_selectors: Vec<String>,
}

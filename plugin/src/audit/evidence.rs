//! The values the report and the delivery standing share: one [`Delivery`] entry and how Stalwart's
//! event data reads as text.

use serde::Serialize;
use serde_json::Value;

/// One delivery outcome reported by Stalwart for a recipient, with the evidence of the same
/// connection (same delivery span and MX host). Stalwart reports one delivery twice — the outcome
/// (`delivery.delivered`, "OK queued") and the DSN it generates for it (`delivery.dsn-success`, "OK")
/// — so a DSN event of the same span, queue id and recipient is attached to the outcome as `dsn`, not
/// counted as another delivery.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    /// `delivered`, `temporary_failure`, `permanent_failure` or `failed`.
    pub status: String,
    /// The DSN Stalwart generated for this delivery: `success`, `temp-fail` or `perm-fail`.
    pub dsn: Option<String>,
    /// Stalwart's delivery span, to pair outcome and DSN events.
    #[serde(skip)]
    pub(super) span: Option<String>,
    pub at: String,
    pub queue_id: Option<String>,
    pub mx: Option<String>,
    pub remote_ip: Option<String>,
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    pub dane: Option<String>,
    pub mta_sts: Option<String>,
    pub code: Option<i64>,
    pub reply: Option<String>,
}

impl Delivery {
    /// The status, with the DSN attached to it: `delivered (DSN success)`.
    pub fn status_text(&self) -> String {
        match &self.dsn {
            Some(dsn) => format!("{} (DSN {dsn})", self.status),
            None => self.status.clone(),
        }
    }
}

/// A JSON value as text (strings unquoted, `null` none).
pub fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A reason object (`{"type":…,"data":{"details":…,"reason":…}}`) or string as text.
pub fn reason_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            let data = o.get("data").unwrap_or(v);
            let parts: Vec<String> = ["details", "reason"]
                .iter()
                .filter_map(|k| data.get(*k).and_then(s))
                .collect();
            Some(if parts.is_empty() {
                v.to_string()
            } else {
                parts.join(": ")
            })
        }
        other => Some(other.to_string()),
    }
}

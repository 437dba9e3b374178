//! Facts about one recipient, offered to the script as lowercase environment variables.
//!
//! | variable | value |
//! |---|---|
//! | `vnd.nta7516.tls` | SmartTLS verdict of the recipient domain: `secure`, `insecure` or `unknown` |
//! | `vnd.nta7516.tls_grade` | the NCSC grade (`good`, `sufficient`, …) or "" |
//! | `vnd.nta7516.peer` | `yes` when the recipient domain (received mail: the sender's `From` domain) is an NTA 7516 peer, `unknown` when received mail's peer lookup failed, else `no` |
//! | `vnd.nta7516.peer_provider` | the peer's provider or "" |
//! | `vnd.nta7516.verified` | `yes` when the recipient passed 2FA and that is still valid, else `no` |
//! | `vnd.nta7516.verified_until` | unix time of that validity, or "" |
//! | `vnd.nta7516.phone_known` | `yes` when a phone number is on file for the recipient, else `no` |
//! | `vnd.nta7516.sender` | envelope sender address |
//! | `vnd.nta7516.sender_group` | the sender's group from the configuration (e.g. `nta`, `gdpr`, `optional`) or "" |
//! | `vnd.nta7516.recipient` | the recipient address (also in `envelope "to"`) |
//! | `vnd.nta7516.recipient_domain` | the recipient's domain, lowercase |
//! | `vnd.nta7516.size` | message size in bytes |
//! | `vnd.nta7516.direction` | `outbound` (mail sent by the organisation) or `inbound` (mail received) |
//! | `vnd.nta7516.dmarc`, `.dkim`, `.spf`, `.arc` | received mail: its authentication results (`pass`, `fail`, `softfail`, `neutral`, `temperror`, `permerror`, `none`); outbound always `none` |
//! | `vnd.nta7516.tls_version` | received mail: the TLS version of the sending server's connection (`TLSv1.3`, `TLSv1.2`, …) or `none` |
//! | `vnd.nta7516.<key>` | any extra fact (`--fact key=value`, [`Facts::extra`]) |
//!
//! Compare numbers with `:value "gt" :comparator "i;ascii-numeric"` (require `relational`).

use std::collections::BTreeMap;

/// The prefix of every fact variable.
pub const PREFIX: &str = "vnd.nta7516.";

/// Facts about one recipient. Unknown facts stay `None` and read as "" (or `no`/`none`, see the table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub tls: Option<String>,
    pub tls_grade: Option<String>,
    pub peer_provider: Option<String>,
    /// When set, `peer` reads `yes` even without a provider name.
    pub peer: bool,
    pub verified_until: Option<i64>,
    pub phone_known: bool,
    pub sender_group: Option<String>,
    /// Taken from the recipient address when empty.
    pub recipient_domain: String,
    pub size: Option<usize>,
    pub dmarc: Option<String>,
    pub dkim: Option<String>,
    pub spf: Option<String>,
    pub arc: Option<String>,
    /// `inbound` for received mail; `outbound` when unset.
    pub direction: Option<String>,
    pub tls_version: Option<String>,
    /// Received mail whose sender's peer status could not be looked up: `peer` reads `unknown`.
    pub peer_unknown: bool,
    /// Extra facts: lowercase key (without the prefix) → value.
    pub extra: BTreeMap<String, String>,
}

/// The names of the built-in facts (without the prefix), as `--fact` accepts them.
pub const KNOWN: &[&str] = &[
    "tls",
    "tls_grade",
    "peer",
    "peer_provider",
    "verified",
    "verified_until",
    "phone_known",
    "sender",
    "sender_group",
    "recipient",
    "recipient_domain",
    "size",
    "dmarc",
    "dkim",
    "spf",
    "arc",
    "direction",
    "tls_version",
];

impl Facts {
    /// Sets one fact from `key=value` text (the CLI's `--fact`). Known keys are typed (`yes`/`no`/
    /// `true`/`false` for flags, integers for times and sizes); other keys become extra facts. `sender`,
    /// `recipient` and `verified` are derived from the envelope and `verified_until` and cannot be set.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let key = key.trim().to_ascii_lowercase();
        let key = key.strip_prefix(PREFIX).unwrap_or(&key).to_string();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(format!(
                "fact name {key:?}: use letters, digits, '_', '-', '.'"
            ));
        }
        let flag = |v: &str| match v.to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" => Ok(true),
            "no" | "false" | "0" => Ok(false),
            _ => Err(format!("fact {key}: expected yes or no, not {v:?}")),
        };
        let text = |v: &str| (!v.is_empty()).then(|| v.to_string());
        match key.as_str() {
            "tls" => self.tls = text(value),
            "tls_grade" => self.tls_grade = text(value),
            "peer" => self.peer = flag(value)?,
            "peer_provider" => self.peer_provider = text(value),
            "verified_until" => {
                self.verified_until = Some(value.parse().map_err(|_| {
                    format!("fact verified_until: expected a unix time, not {value:?}")
                })?)
            }
            "phone_known" => self.phone_known = flag(value)?,
            "sender_group" => self.sender_group = text(value),
            "recipient_domain" => self.recipient_domain = value.to_ascii_lowercase(),
            "size" => {
                self.size = Some(
                    value
                        .parse()
                        .map_err(|_| format!("fact size: expected bytes, not {value:?}"))?,
                )
            }
            "dmarc" => self.dmarc = text(value),
            "dkim" => self.dkim = text(value),
            "spf" => self.spf = text(value),
            "arc" => self.arc = text(value),
            "tls_version" => self.tls_version = text(value),
            "direction" => match value.to_ascii_lowercase().as_str() {
                "inbound" | "outbound" => self.direction = Some(value.to_ascii_lowercase()),
                _ => {
                    return Err(format!(
                        "fact direction: expected inbound or outbound, not {value:?}"
                    ))
                }
            },
            "sender" | "recipient" | "verified" => {
                return Err(format!(
                    "fact {key} is derived (from the envelope or verified_until) and cannot be set"
                ))
            }
            _ => {
                self.extra.insert(key, value.to_string());
            }
        }
        Ok(())
    }

    /// The environment variables for one run: `(name, value)`, names lowercase and prefixed.
    pub fn variables(
        &self,
        sender: &str,
        recipient: &str,
        message_size: usize,
        now: i64,
    ) -> Vec<(String, String)> {
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        let domain = if self.recipient_domain.is_empty() {
            recipient
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or_default()
                .to_ascii_lowercase()
        } else {
            self.recipient_domain.to_ascii_lowercase()
        };
        let mut vars = vec![
            ("tls", self.tls.clone().unwrap_or_else(|| "unknown".into())),
            ("tls_grade", or_empty(&self.tls_grade)),
            (
                "peer",
                if self.peer_unknown && !self.peer && self.peer_provider.is_none() {
                    "unknown".into()
                } else {
                    yes_no(self.peer || self.peer_provider.is_some())
                },
            ),
            ("peer_provider", or_empty(&self.peer_provider)),
            (
                "verified",
                yes_no(self.verified_until.is_some_and(|u| u > now)),
            ),
            (
                "verified_until",
                self.verified_until
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
            ),
            ("phone_known", yes_no(self.phone_known)),
            ("sender", sender.to_string()),
            ("sender_group", or_empty(&self.sender_group)),
            ("recipient", recipient.to_string()),
            ("recipient_domain", domain),
            ("size", self.size.unwrap_or(message_size).to_string()),
            ("dmarc", or_none(&self.dmarc)),
            ("dkim", or_none(&self.dkim)),
            ("spf", or_none(&self.spf)),
            ("arc", or_none(&self.arc)),
            (
                "direction",
                self.direction.clone().unwrap_or_else(|| "outbound".into()),
            ),
            ("tls_version", or_none(&self.tls_version)),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v))
        .collect::<Vec<_>>();
        for (k, v) in &self.extra {
            if !KNOWN.contains(&k.as_str()) {
                vars.push((format!("{PREFIX}{}", k.to_ascii_lowercase()), v.clone()));
            }
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(vars: &[(String, String)], k: &str) -> String {
        vars.iter()
            .find(|(n, _)| n == &format!("{PREFIX}{k}"))
            .unwrap()
            .1
            .clone()
    }

    #[test]
    fn set_and_render() {
        let mut f = Facts::default();
        f.set("tls", "insecure").unwrap();
        f.set("vnd.nta7516.peer", "yes").unwrap();
        f.set("Ward", "cardiology").unwrap();
        f.set("verified_until", "100").unwrap();
        assert!(f.set("peer", "maybe").is_err());
        assert!(f.set("sender", "x@y").is_err());
        assert!(f.set("bad key", "1").is_err());
        let vars = f.variables("a@b.nl", "c@D.nl", 42, 50);
        let get = |k: &str| var(&vars, k);
        assert_eq!(get("tls"), "insecure");
        assert_eq!(get("peer"), "yes");
        assert_eq!(get("ward"), "cardiology");
        assert_eq!(get("verified"), "yes");
        assert_eq!(get("recipient_domain"), "d.nl");
        assert_eq!(get("size"), "42");
        assert_eq!(get("dmarc"), "none");
        assert_eq!(get("direction"), "outbound");
        assert_eq!(get("tls_version"), "none");
        f.set("direction", "Inbound").unwrap();
        f.set("tls_version", "TLSv1.3").unwrap();
        assert!(f.set("direction", "sideways").is_err());
        let vars = f.variables("a@b.nl", "c@D.nl", 42, 50);
        let get = |k: &str| var(&vars, k);
        assert_eq!(get("direction"), "inbound");
        assert_eq!(get("tls_version"), "TLSv1.3");
        let unknown = Facts {
            peer_unknown: true,
            ..Facts::default()
        };
        let vars = unknown.variables("a@b.nl", "c@d.nl", 1, 0);
        assert!(vars.contains(&(format!("{PREFIX}peer"), "unknown".into())));
        assert!(vars.iter().all(|(n, _)| n == &n.to_lowercase()));
    }
}

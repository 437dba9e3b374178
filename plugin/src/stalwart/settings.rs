//! Stalwart v0.15 management API, settings: `GET /api/settings/list?prefix=<p>` answers
//! `{"data":{"total":N,"items":{key:value}}}` with the keys below `<p>.` (the prefix and its dot
//! stripped), every value a string (`crates/http/src/management/settings.rs:188` at v0.15.5). The values
//! are the database settings merged with the local file (file wins); keys that exist only as compiled-in
//! defaults are absent, and `%{env:…}%` macros come back unexpanded.
//!
//! Lists and expressions are flattened: `bind.0000`, `events.0001`, `key.0`; an expression is either one
//! key (`tls = "'nta7516'"`) or numbered branches `tls.0000.if` / `tls.0000.then` … `tls.0001.else`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The prefixes the checker reads, one request each.
pub const PREFIXES: &[&str] = &[
    "queue.tls",
    "queue.strategy",
    "session.hook",
    "session.auth",
    "resolver",
    "server.listener",
    "webhook",
    "auth.dkim",
    "signature",
];

/// The prefixes read in addition when the gateway's `[inbound]` checks are enabled.
pub const INBOUND_PREFIXES: &[&str] = &["sieve.untrusted"];

/// The request path of one prefix.
pub fn list_path(prefix: &str) -> String {
    format!("/api/settings/list?prefix={prefix}")
}

#[derive(Deserialize)]
struct Answer {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    items: BTreeMap<String, String>,
}

/// The keys of one prefix (or of one id below it), as Stalwart answered them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub items: BTreeMap<String, String>,
}

/// One branch of a flattened expression: `if` (none for `else` or a one-key expression) → `then`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBranch {
    pub condition: Option<String>,
    pub value: String,
}

impl Settings {
    /// Parses one answer of the list route.
    pub fn parse(body: &[u8]) -> Result<Settings, serde_json::Error> {
        let a: Answer = serde_json::from_slice(body)?;
        Ok(Settings {
            items: a.data.items,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.items.get(key).map(String::as_str)
    }

    /// The ids directly below this level (`nta7516` for `nta7516.url`).
    pub fn ids(&self) -> BTreeSet<&str> {
        self.items
            .keys()
            .map(|k| k.split_once('.').map_or(k.as_str(), |(id, _)| id))
            .collect()
    }

    /// The keys below `id.`, with that prefix stripped.
    pub fn sub(&self, id: &str) -> Settings {
        let p = format!("{id}.");
        Settings {
            items: self
                .items
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.to_string(), v.clone())))
                .collect(),
        }
    }

    /// A list: the numbered keys `key.N` in order, or the one value of `key` (a `[a, b]` form split).
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        if let Some(v) = self.get(key) {
            let inner = v.trim().trim_start_matches('[').trim_end_matches(']');
            return Some(
                inner
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            );
        }
        let sub = self.sub(key);
        (!sub.items.is_empty()).then(|| sub.items.into_values().collect())
    }

    /// An expression: one key, or its numbered `if`/`then`/`else` branches in order. `None` when the key
    /// is absent (Stalwart then uses its compiled-in default).
    pub fn expression(&self, key: &str) -> Option<Vec<RawBranch>> {
        if let Some(v) = self.get(key) {
            return Some(vec![RawBranch {
                condition: None,
                value: v.to_string(),
            }]);
        }
        let sub = self.sub(key);
        if sub.items.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for n in sub.ids() {
            let b = sub.sub(n);
            match (b.get("if"), b.get("then"), b.get("else")) {
                (Some(c), Some(t), _) => out.push(RawBranch {
                    condition: Some(c.to_string()),
                    value: t.to_string(),
                }),
                (_, _, Some(e)) => out.push(RawBranch {
                    condition: None,
                    value: e.to_string(),
                }),
                // A branch without both halves: kept as an unreadable condition (never "true").
                _ => out.push(RawBranch {
                    condition: Some(format!("<incomplete branch {n}>")),
                    value: String::new(),
                }),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_lists_and_expressions() {
        let s = Settings::parse(br#"{"data":{"total":6,"items":{"tls.0000.if":"received_via_port == 10026","tls.0000.then":"'opportunistic'","tls.0001.else":"'nta7516'","m":"[plain, login]","e.0000":"a","e.0001":"b"}}}"#).unwrap();
        let e = s.expression("tls").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].condition.as_deref(),
            Some("received_via_port == 10026")
        );
        assert_eq!(e[1].condition, None);
        assert_eq!(e[1].value, "'nta7516'");
        assert_eq!(s.list("m").unwrap(), ["plain", "login"]);
        assert_eq!(s.list("e").unwrap(), ["a", "b"]);
        assert!(s.expression("route").is_none());
        assert_eq!(s.ids(), BTreeSet::from(["e", "m", "tls"]));
    }
}

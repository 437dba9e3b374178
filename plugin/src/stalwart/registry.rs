//! Stalwart v0.16 management API, registry objects over JMAP: `POST /jmap/` with
//! `{"using":["urn:ietf:params:jmap:core","urn:stalwart:jmap"],"methodCalls":[["x:<Object>/get",{"ids":…},"c0"]]}`
//! answers `{"methodResponses":[["x:<Object>/get",{"list":[…],"notFound":[]},"c0"]]}` (or
//! `["error",{"type":…},"c0"]`). Field names and encodings as the fixtures of a real 0.16.18 show them
//! (`crates/registry/src/schema/structs.rs`): durations in milliseconds, sets as `{"x":true}`,
//! expressions as `{"match":{"0":{"if","then"}},"else"}`. Only the fields the checker reads are typed;
//! the rest is ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The JMAP endpoint.
pub const PATH: &str = "/jmap/";

/// The request body of `x:<object>/get`: every object (`ids: null`), or the singleton. For
/// `DkimSignature` only the public properties are asked for: the private keys never leave Stalwart.
pub fn get_request(object: &str, singleton: bool) -> Value {
    let ids = if singleton {
        serde_json::json!(["singleton"])
    } else {
        Value::Null
    };
    let mut args = serde_json::json!({ "ids": ids });
    if object == "DkimSignature" {
        args["properties"] = serde_json::json!(["@type", "domainId", "selector", "stage"]);
    }
    serde_json::json!({
        "using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"],
        "methodCalls": [[format!("x:{object}/get"), args, "c0"]]
    })
}

/// What a `/get` answered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("not a JMAP answer: {0}")]
    Json(#[from] serde_json::Error),
    #[error("JMAP error for {method}: {kind}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Method {
        method: String,
        kind: String,
        description: Option<String>,
    },
    #[error("JMAP answer without a response to {0}")]
    Missing(String),
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "methodResponses")]
    method_responses: Vec<(String, Value, String)>,
}

#[derive(Deserialize)]
struct GetArgs<T> {
    list: Vec<T>,
}

/// The objects in the answer to `x:<object>/get`.
pub fn parse_list<T: serde::de::DeserializeOwned>(
    object: &str,
    body: &[u8],
) -> Result<Vec<T>, RegistryError> {
    let method = format!("x:{object}/get");
    let answer: Answer = serde_json::from_slice(body)?;
    let (name, args, _) = answer
        .method_responses
        .into_iter()
        .next()
        .ok_or_else(|| RegistryError::Missing(method.clone()))?;
    if name == "error" {
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
        return Err(RegistryError::Method {
            method,
            kind: text("type").unwrap_or_default(),
            description: text("description"),
        });
    }
    if name != method {
        return Err(RegistryError::Missing(method));
    }
    Ok(serde_json::from_value::<GetArgs<T>>(args)?.list)
}

/// An expression: numbered `if`/`then` branches, then `else`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Expression {
    #[serde(rename = "match", default)]
    pub branches: BTreeMap<String, Branch>,
    #[serde(rename = "else")]
    pub otherwise: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    #[serde(rename = "if")]
    pub condition: String,
    pub then: String,
}

impl Expression {
    /// The branches in their numeric order (`"10"` after `"9"`).
    pub fn ordered(&self) -> Vec<&Branch> {
        let mut v: Vec<(u64, &Branch)> = self
            .branches
            .iter()
            .map(|(k, b)| (k.parse().unwrap_or(u64::MAX), b))
            .collect();
        v.sort_by_key(|(n, _)| *n);
        v.into_iter().map(|(_, b)| b).collect()
    }
}

/// `MtaTlsStrategy` (`startTls`/`dane`/`mtaSts`: `optional` | `require` | `disable`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MtaTlsStrategy {
    pub name: String,
    #[serde(default)]
    pub allow_invalid_certs: bool,
    #[serde(default = "optional")]
    pub start_tls: String,
    #[serde(default = "optional")]
    pub dane: String,
}

fn optional() -> String {
    "optional".into()
}

/// `MtaOutboundStrategy` (singleton): the strategy-selecting expressions.
#[derive(Debug, Clone, Deserialize)]
pub struct MtaOutboundStrategy {
    pub tls: Option<Expression>,
}

/// `MtaHook`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MtaHook {
    pub url: String,
    /// Default `{"else":"true"}` (`structs_impl.rs`): absent means every session.
    pub enable: Option<Expression>,
    /// `{"data":true}`; absent means data.
    pub stages: Option<BTreeMap<String, bool>>,
    #[serde(default = "yes")]
    pub temp_fail_on_error: bool,
}

fn yes() -> bool {
    true
}

/// `NetworkListener`.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkListener {
    pub name: String,
    #[serde(default)]
    pub bind: BTreeMap<String, bool>,
    #[serde(default)]
    pub protocol: String,
}

/// `WebHook` (`eventsPolicy`: `include` | `exclude`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebHook {
    pub url: String,
    #[serde(default = "yes")]
    pub enable: bool,
    #[serde(default)]
    pub events: BTreeMap<String, bool>,
    pub events_policy: Option<String>,
}

/// `DnsResolver` (singleton): `@type` `System`, `Custom`, `Cloudflare`, `Quad9`, `Google`, …
#[derive(Debug, Clone, Deserialize)]
pub struct DnsResolver {
    #[serde(rename = "@type")]
    pub kind: String,
    /// Every other field, as sent (servers of a custom resolver, TLS flags).
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// `MtaStageAuth` (singleton).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MtaStageAuth {
    pub must_match_sender: Option<Expression>,
}

/// `SenderAuth` (singleton).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderAuth {
    pub dkim_sign_domain: Option<Expression>,
}

/// `SieveUserInterpreter` (singleton): the limits on users' Sieve scripts. `maxRedirects` defaults to 1
/// (`crates/registry/src/schema/structs_impl.rs`); absent means that default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SieveUserInterpreter {
    pub max_redirects: Option<u64>,
}

/// `Domain`.
#[derive(Debug, Clone, Deserialize)]
pub struct Domain {
    pub id: String,
    pub name: String,
}

/// `DkimSignature` (`stage`: `active`, `pending`, `retired`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DkimSignature {
    pub domain_id: String,
    pub selector: String,
    #[serde(default)]
    pub stage: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_order() {
        let e = parse_list::<Domain>(
            "Domain",
            br#"{"methodResponses":[["error",{"type":"unknownMethod"},"c0"]]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknownMethod"), "{e}");
        let x: Expression = serde_json::from_str(
            r#"{"match":{"10":{"if":"b","then":"2"},"9":{"if":"a","then":"1"}},"else":"x"}"#,
        )
        .unwrap();
        let o: Vec<&str> = x.ordered().iter().map(|b| b.condition.as_str()).collect();
        assert_eq!(o, ["a", "b"]);
        let dkim = get_request("DkimSignature", false);
        assert_eq!(dkim["methodCalls"][0][1]["properties"][2], "selector");
        assert!(get_request("MtaHook", false)["methodCalls"][0][1]
            .get("properties")
            .is_none());
    }
}

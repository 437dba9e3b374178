//! The MTA hook protocol, version 1 (Stalwart v0.15 and v0.16 speak the same one).
//!
//! Request: what Stalwart POSTs at the DATA stage. Response: what the gateway answers. Field names and
//! optionality follow Stalwart's own serde definitions (`crates/smtp/src/inbound/hooks/mod.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A hook request. Unknown fields are ignored, as Stalwart itself ignores them.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Request {
    pub context: Context,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

impl Request {
    /// Sender, distinct recipients in envelope order, and the message of a DATA-stage request; what
    /// is missing for that, named.
    pub fn data(&self) -> Result<(&str, Vec<&str>, &Message), &'static str> {
        let envelope = self
            .envelope
            .as_ref()
            .ok_or("data stage without envelope")?;
        let message = self.message.as_ref().ok_or("data stage without message")?;
        if envelope.to.is_empty() {
            return Err("envelope has no recipients");
        }
        let mut seen = std::collections::BTreeSet::new();
        let recipients = envelope
            .to
            .iter()
            .map(|a| a.address.as_str())
            .filter(|a| seen.insert(*a))
            .collect();
        Ok((envelope.from.address.as_str(), recipients, message))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Context {
    pub stage: Stage,
    pub client: Client,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<Sasl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    pub server: Server,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<Queue>,
    pub protocol: Protocol,
}

/// Hook stages, lower-case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Connect,
    Ehlo,
    Auth,
    Mail,
    Rcpt,
    Data,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub ip: String,
    pub port: u16,
    pub ptr: Option<String>,
    pub helo: Option<String>,
    #[serde(default)]
    pub active_connections: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Sasl {
    pub login: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tls {
    pub version: String,
    pub cipher: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Server {
    pub name: Option<String>,
    pub port: u16,
    pub ip: Option<String>,
}

/// Present only at DATA. `id` is the queue id in lower-case hex; webhooks carry the same number in
/// decimal.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Queue {
    pub id: String,
}

impl Queue {
    /// The queue id as the number webhooks carry.
    pub fn as_u64(&self) -> Option<u64> {
        u64::from_str_radix(&self.id, 16).ok()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Protocol {
    pub version: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Envelope {
    pub from: Address,
    #[serde(default)]
    pub to: Vec<Address>,
}

/// Addresses arrive lower-cased (`address_lcase`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Address {
    pub address: String,
}

/// The message at DATA: raw header fields in order, and the body as lossy UTF-8.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    /// `[name, value]`: the name without the colon; the value is the raw text after the colon,
    /// leading space, folding and trailing CRLF included.
    pub headers: Vec<(String, String)>,
    /// The body only (bytes after the empty line), converted with `String::from_utf8_lossy`.
    pub contents: String,
    /// Byte length of the complete message as received.
    pub size: usize,
}

impl Message {
    /// Rebuilds the message as received: `Σ(name ":" value) "\r\n" contents`.
    ///
    /// The copy is byte-exact exactly when its length equals [`Message::size`]; a longer result means a
    /// non-UTF-8 body was mangled by Stalwart's lossy conversion. Returns `Err(rebuilt_len)` then.
    pub fn rebuild(&self) -> Result<Vec<u8>, usize> {
        let len = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + 1 + v.len())
            .sum::<usize>()
            + 2
            + self.contents.len();
        if len != self.size {
            return Err(len);
        }
        Ok(self.lossy())
    }

    /// The message as Stalwart sent it, whatever its length: for a body Stalwart converted lossily
    /// the closest copy there is (see [`Message::rebuild`]).
    pub fn lossy(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.size);
        for (name, value) in &self.headers {
            v.extend_from_slice(name.as_bytes());
            v.push(b':');
            v.extend_from_slice(value.as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(self.contents.as_bytes());
        v
    }
}

/// A hook response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Response {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<SmtpResponse>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifications: Vec<Modification>,
}

/// Lower-case on the wire; `"ACCEPT"` is a parse error on Stalwart's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Discard,
    Reject,
    Quarantine,
}

/// The SMTP reply Stalwart sends to the client. Applied only when both `status` and `message` are set;
/// the key is `enhanced_status` (snake case: a camelCase key is silently ignored by Stalwart).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SmtpResponse {
    pub status: u16,
    pub enhanced_status: String,
    pub message: String,
    #[serde(default)]
    pub disconnect: bool,
}

/// Message modifications, applied by Stalwart only at DATA.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Modification {
    ChangeFrom {
        value: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        parameters: BTreeMap<String, Option<String>>,
    },
    AddRecipient {
        value: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        parameters: BTreeMap<String, Option<String>>,
    },
    /// Removes recipients whose lower-cased address equals `value` exactly.
    DeleteRecipient {
        value: String,
    },
    ReplaceContents {
        value: String,
    },
    /// Prepended above the original headers as `name: value\r\n`.
    AddHeader {
        name: String,
        value: String,
    },
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    DeleteHeader {
        index: u32,
        name: String,
    },
}

impl Response {
    pub fn accept(modifications: Vec<Modification>) -> Self {
        Response {
            action: Action::Accept,
            response: None,
            modifications,
        }
    }

    /// `discard` answered with `250 2.0.0 <message>`: nothing is queued.
    pub fn discard(message: String) -> Self {
        Response {
            action: Action::Discard,
            response: Some(SmtpResponse {
                status: 250,
                enhanced_status: "2.0.0".into(),
                message,
                disconnect: false,
            }),
            modifications: Vec::new(),
        }
    }

    pub fn reject(status: u16, enhanced_status: &str, message: String) -> Self {
        Response {
            action: Action::Reject,
            response: Some(SmtpResponse {
                status,
                enhanced_status: enhanced_status.into(),
                message,
                disconnect: false,
            }),
            modifications: Vec::new(),
        }
    }
}

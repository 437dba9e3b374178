//! Contract tests: the real payloads captured from Stalwart parse, and every answer the gateway can give
//! deserialises under Stalwart's own serde rules (mirrored below from `crates/smtp/src/inbound/hooks/mod.rs`:
//! lower-case actions, `enhanced_status`, no `null` for `modifications`/`parameters`, string parameters).

use crate::util;
use std::collections::BTreeMap;

use stalwart_nta7516::{
    policy::{Decision, Outcome, Reason, ReasonCode, Step},
    stalwart::hook::{Modification, Request, Response},
    submission::respond,
};

/// Stalwart's response types, with Stalwart's serde attributes.
#[allow(dead_code)] // fields mirror Stalwart; not all are read here
mod stalwart_side {
    use std::collections::HashMap;

    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    pub struct Response {
        pub action: Action,
        #[serde(default)]
        pub response: Option<SmtpResponse>,
        #[serde(default)]
        pub modifications: Vec<Modification>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    pub enum Action {
        #[serde(rename = "accept")]
        Accept,
        #[serde(rename = "discard")]
        Discard,
        #[serde(rename = "reject")]
        Reject,
        #[serde(rename = "quarantine")]
        Quarantine,
    }

    #[derive(Deserialize, Debug, Default)]
    pub struct SmtpResponse {
        #[serde(default)]
        pub status: Option<u16>,
        #[serde(default)]
        pub enhanced_status: Option<String>,
        #[serde(default)]
        pub message: Option<String>,
        #[serde(default)]
        pub disconnect: bool,
    }

    #[derive(Deserialize, Debug)]
    #[serde(tag = "type")]
    pub enum Modification {
        #[serde(rename = "changeFrom")]
        ChangeFrom {
            value: String,
            #[serde(default)]
            parameters: HashMap<String, Option<String>>,
        },
        #[serde(rename = "addRecipient")]
        AddRecipient {
            value: String,
            #[serde(default)]
            parameters: HashMap<String, Option<String>>,
        },
        #[serde(rename = "deleteRecipient")]
        DeleteRecipient { value: String },
        #[serde(rename = "replaceContents")]
        ReplaceContents { value: String },
        #[serde(rename = "addHeader")]
        AddHeader { name: String, value: String },
        #[serde(rename = "insertHeader")]
        InsertHeader {
            index: u32,
            name: String,
            value: String,
        },
        #[serde(rename = "changeHeader")]
        ChangeHeader {
            index: u32,
            name: String,
            value: String,
        },
        #[serde(rename = "deleteHeader")]
        DeleteHeader { index: u32, name: String },
    }
}

#[test]
fn every_hook_fixture_parses_and_rebuilds_as_documented() {
    let names = util::fixture_names("hook-");
    assert_eq!(names.len(), 4, "fixtures: {names:?}");
    for name in names {
        let value = util::fixture(&name);
        let req: Request =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let msg = req.message.as_ref().expect("data stage has a message");
        assert!(
            req.context
                .queue
                .as_ref()
                .and_then(|q| q.as_u64())
                .is_some(),
            "{name}: hex queue id"
        );
        assert!(!req.envelope.as_ref().unwrap().to.is_empty());
        match msg.rebuild() {
            Ok(raw) => {
                assert!(!name.contains("latin1"), "{name} must not rebuild exactly");
                assert_eq!(raw.len(), msg.size);
                assert_eq!(raw, util::original_bytes(&value), "{name}");
            }
            Err(len) => {
                assert!(name.contains("latin1"), "{name} should rebuild exactly");
                // Verified against Stalwart: 4 bytes more than `size` (two U+FFFD for two Latin-1 bytes).
                assert_eq!(len, msg.size + 4);
            }
        }
        // Our types serialise back to what Stalwart sent (modulo key order): nothing lost or renamed.
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["envelope"], value["envelope"], "{name}");
        assert_eq!(back["message"], value["message"], "{name}");
        assert_eq!(
            back["context"]["queue"], value["context"]["queue"],
            "{name}"
        );
    }
}

#[test]
fn every_webhook_fixture_is_valid_json_with_events() {
    for name in util::fixture_names("webhook-") {
        let v = util::fixture(&name);
        let events = v["events"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: events"));
        assert!(!events.is_empty());
        for e in events {
            assert!(
                e["type"].is_string() && e["id"].is_string() && e["createdAt"].is_string(),
                "{name}"
            );
        }
    }
}

fn d(rcpt: &str, outcome: Outcome) -> Decision {
    Decision {
        recipient: rcpt.into(),
        outcome,
        reasons: vec![],
        attachments: Default::default(),
    }
}

fn rejected(rcpt: &str, code: ReasonCode) -> Decision {
    Decision {
        reasons: vec![Reason::new(Step::Hold, code, "refused")],
        ..d(rcpt, Outcome::Reject)
    }
}

/// Every shape of answer the gateway produces.
fn all_responses() -> Vec<Response> {
    use Outcome::*;
    let mut out = vec![
        respond(&[d("a@x.test", Local)], "m-1"),
        respond(&[d("a@x.test", Deliver)], "m-2"),
        respond(&[d("a@x.test", Challenge), d("b@y.test", Deliver)], "h-3"),
        respond(&[d("a@x.test", Portal), d("b@zorg.test", Local)], "h-4"),
        respond(&[d("a@x.test", Challenge), d("b@y.test", Portal)], "h-5"),
        Response::reject(
            550,
            "5.7.1",
            "Message refused by the NTA 7516 policy".into(),
        ),
        Response::reject(554, "5.6.0", "resend with standard encoding".into()),
        // The refusals as the gateway builds them from decisions.
        respond(&[rejected("a@x.test", ReasonCode::PolicyReject)], ""),
        respond(
            &[
                d("a@x.test", Deliver),
                rejected("b@y.test", ReasonCode::Unholdable8bitBody),
            ],
            "",
        ),
    ];
    // Modifications the wire type allows, including parameters with a null value (REQUIRETLS).
    out.push(Response::accept(vec![Modification::ChangeFrom {
        value: "alice@zorg.test".into(),
        parameters: BTreeMap::from([
            ("REQUIRETLS".into(), None),
            ("BODY".into(), Some("8BITMIME".into())),
        ]),
    }]));
    out
}

#[test]
fn every_response_deserialises_under_stalwarts_rules() {
    for resp in all_responses() {
        let json = serde_json::to_string(&resp).unwrap();
        assert!(
            !json.contains(":null,") || json.contains("REQUIRETLS"),
            "no null fields: {json}"
        );
        assert!(!json.contains("\"modifications\":null") && !json.contains("\"parameters\":null"));
        assert!(!json.contains("enhancedStatus"), "{json}");
        let theirs: stalwart_side::Response = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("Stalwart would fail on {json}: {e}"));
        // What Stalwart sees matches what we meant.
        assert_eq!(
            theirs.modifications.len(),
            resp.modifications.len(),
            "{json}"
        );
        match (&resp.response, &theirs.response) {
            (Some(ours), Some(t)) => {
                // Applied only when both status and message are present.
                assert_eq!(t.status, Some(ours.status));
                assert_eq!(
                    t.enhanced_status.as_deref(),
                    Some(ours.enhanced_status.as_str())
                );
                assert_eq!(t.message.as_deref(), Some(ours.message.as_str()));
            }
            (None, None) => {}
            other => panic!("response mismatch: {other:?}"),
        }
        let action = serde_json::to_value(resp.action).unwrap();
        assert!(action
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_lowercase()));
        for m in &theirs.modifications {
            if let stalwart_side::Modification::DeleteRecipient { value } = m {
                assert_eq!(value, &value.to_lowercase());
            }
        }
    }
}

#[test]
fn stalwart_rules_reject_what_we_must_never_send() {
    // The mirror is strict where Stalwart is: these would be hook errors (451 to the client).
    for bad in [
        r#"{"action":"ACCEPT"}"#,
        r#"{"action":"accept","modifications":null}"#,
        r#"{"action":"accept","modifications":[{"type":"changeFrom","value":"a@b","parameters":null}]}"#,
        r#"{"action":"accept","modifications":[{"type":"changeFrom","value":"a@b","parameters":{"SIZE":54321}}]}"#,
    ] {
        assert!(
            serde_json::from_str::<stalwart_side::Response>(bad).is_err(),
            "{bad}"
        );
    }
    // camelCase enhancedStatus is silently ignored by Stalwart: ours never uses it.
    let t: stalwart_side::Response = serde_json::from_str(
        r#"{"action":"reject","response":{"status":550,"enhancedStatus":"5.7.1","message":"x"}}"#,
    )
    .unwrap();
    assert_eq!(t.action, stalwart_side::Action::Reject);
    assert!(t.response.unwrap().enhanced_status.is_none());
}

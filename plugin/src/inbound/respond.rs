//! The inbound decision as Stalwart's hook answer.
//!
//! - **accept**: the summary header `X-NTA7516-Inbound` is added (any the message already carried is
//!   removed first: a sender must not be able to forge the gateway's verdict);
//! - **quarantine**: the same, plus `X-NTA7516-Quarantine` naming the original recipients, the quarantine
//!   mailbox added and every original recipient deleted (added first, so the message never has no
//!   recipient — Stalwart would queue it to nobody);
//! - **tempfail**: `451 4.7.0` with the reasons; the sending server retries;
//! - **reject**: `550 5.7.10` (TLS required) or `550 5.7.1` with the reasons; the sending server bounces
//!   it to its sender.

use super::facts::{InboundFacts, QUARANTINE_HEADER, SUMMARY_HEADER};
use crate::{
    config::Config,
    policy::{Action, InboundCode, InboundDecision, Peer},
    stalwart::hook::{Modification, Response},
};

/// The longest SMTP text the gateway sends (the reply line stays far below RFC 5321's 512 octets).
const MAX_TEXT: usize = 400;

pub fn respond(
    config: &Config,
    facts: &InboundFacts<'_>,
    decision: &InboundDecision,
    message_ref: &str,
) -> Response {
    match decision.action {
        Action::Reject => {
            let tls = decision.has(InboundCode::PeerWithoutTls);
            let code = if tls { "5.7.10" } else { "5.7.1" };
            Response::reject(550, code, smtp_text(decision, message_ref))
        }
        Action::Tempfail => Response::reject(451, "4.7.0", smtp_text(decision, message_ref)),
        Action::Accept => Response::accept(headers(config, facts, decision, message_ref)),
        Action::Quarantine => {
            let mut mods = headers(config, facts, decision, message_ref);
            let mailbox = config
                .inbound
                .quarantine_mailbox
                .clone()
                .unwrap_or_default();
            mods.push(Modification::AddHeader {
                name: QUARANTINE_HEADER.into(),
                value: format!(
                    "{message_ref}; original-recipients={}",
                    facts.recipients.join(", ")
                ),
            });
            mods.push(Modification::AddRecipient {
                value: mailbox.clone(),
                parameters: Default::default(),
            });
            mods.extend(
                facts
                    .recipients
                    .iter()
                    .filter(|r| !r.eq_ignore_ascii_case(&mailbox))
                    .map(|r| Modification::DeleteRecipient {
                        value: r.to_string(),
                    }),
            );
            Response::accept(mods)
        }
    }
}

/// The forged copies of the gateway's headers removed (last first, so the indexes stay right), then
/// the summary.
fn headers(
    config: &Config,
    facts: &InboundFacts<'_>,
    decision: &InboundDecision,
    message_ref: &str,
) -> Vec<Modification> {
    let mut mods = Vec::new();
    for (name, count) in &facts.own_headers {
        mods.extend((1..=*count).rev().map(|index| Modification::DeleteHeader {
            index,
            name: name.to_string(),
        }));
    }
    mods.push(Modification::AddHeader {
        name: SUMMARY_HEADER.into(),
        value: summary(config, facts, decision, message_ref),
    });
    mods
}

/// `authserv-id; tls=…; spf=…; dkim=…; dmarc=…; arc=…; peer=…; action=…; ref=…`, one line.
pub fn summary(
    config: &Config,
    facts: &InboundFacts<'_>,
    decision: &InboundDecision,
    message_ref: &str,
) -> String {
    let auth = &facts.auth;
    let host = config.inbound_host();
    let tls = facts.tls.as_ref().map_or("none", |t| t.version.as_str());
    let dkim = match auth
        .dkim
        .iter()
        .find(|d| d.result == crate::policy::AuthResult::Pass)
    {
        Some(d) => format!("pass header.d={}", d.domain),
        None => auth.dkim_summary().as_str().to_string(),
    };
    let peer = match &facts.peer {
        Peer::Yes { .. } => "yes",
        Peer::No => "no",
        Peer::Unknown { .. } => "unknown",
    };
    let from = if facts.sender.is_empty() {
        "<>"
    } else {
        facts.sender
    };
    ascii(&format!(
        "{host}; tls={tls}; spf={} smtp.mailfrom={from}; dkim={dkim}; dmarc={} header.from={}; arc={}; peer={peer}; action={}; ref={message_ref}",
        auth.spf(facts.sender.is_empty()).as_str(),
        auth.dmarc.result.as_str(),
        facts.from_domain,
        auth.arc.as_str(),
        decision.action.as_str(),
    ))
}

fn smtp_text(decision: &InboundDecision, message_ref: &str) -> String {
    let reasons: Vec<&str> = decision
        .reasons
        .iter()
        .filter(|r| r.action == decision.action)
        .map(|r| r.text.as_str())
        .collect();
    let mut text = ascii(&format!(
        "NTA 7516: {} (ref {message_ref})",
        reasons.join("; ")
    ));
    if text.len() > MAX_TEXT {
        text.truncate(MAX_TEXT - 3);
        text.push_str("...");
    }
    text
}

/// Printable ASCII only: what a header line and an SMTP reply may carry (no CR/LF from DNS text).
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_printable_ascii() {
        assert_eq!(ascii("a\r\nb\u{e9}"), "a??b?");
    }
}

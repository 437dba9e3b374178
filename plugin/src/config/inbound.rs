//! `[inbound]`: checks on mail received from the internet (Stalwart's second hook, `nta-inbound`, on
//! its SMTP listener): what happens to mail that breaks a promise, where quarantined mail goes, and the
//! name the summary header is written under.

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// What happens to a received message (the strictest applicable rule wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundAction {
    /// Delivered to its recipients with the summary header.
    Accept,
    /// Delivered only to `quarantine_mailbox`, with the original recipients in the header.
    Quarantine,
    /// Refused at DATA with a permanent error; the sending server bounces it to its sender.
    Reject,
}

impl InboundAction {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundAction::Accept => "accept",
            InboundAction::Quarantine => "quarantine",
            InboundAction::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundConfig {
    /// Renders the `nta-inbound` hook into Stalwart's config and lets `/v1/mta-hook/inbound` decide.
    /// Off: that endpoint answers 503 (Stalwart then tempfails), so a stray hook never lets mail in
    /// unchecked.
    pub enabled: bool,
    /// Mail claiming an NTA 7516 peer's domain that fails DMARC or arrives without TLS 1.2 or newer:
    /// the peer promised authenticated, encrypted mail. `reject` (default) or `quarantine`.
    #[serde(deserialize_with = "peer_failure")]
    pub peer_failure: InboundAction,
    /// Mail failing DMARC whose domain publishes `p=reject`: `reject` (default), `quarantine` or `accept`.
    #[serde(deserialize_with = "dmarc_reject")]
    pub dmarc_reject: InboundAction,
    /// Mail failing DMARC whose domain publishes `p=quarantine`: `accept` (default: the header says it),
    /// `quarantine` or `reject`.
    #[serde(deserialize_with = "dmarc_quarantine")]
    pub dmarc_quarantine: InboundAction,
    /// The local mailbox quarantined mail is delivered to (needed when anything may quarantine; a policy
    /// `nta_quarantine` without it refuses the message instead).
    pub quarantine_mailbox: Option<String>,
    /// The host name in the summary header (`X-NTA7516-Inbound: <authserv-id>; …`); the first local
    /// domain when empty.
    pub authserv_id: Option<String>,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            enabled: false,
            peer_failure: InboundAction::Reject,
            dmarc_reject: InboundAction::Reject,
            dmarc_quarantine: InboundAction::Accept,
            quarantine_mailbox: None,
            authserv_id: None,
        }
    }
}

fn peer_failure<'de, D: Deserializer<'de>>(d: D) -> Result<InboundAction, D::Error> {
    let a: InboundAction = super::named("inbound.peer_failure", d)?;
    if a == InboundAction::Accept {
        return Err(serde::de::Error::custom(
            "inbound.peer_failure: `accept` would let a peer's unauthenticated or unencrypted mail in; use reject or quarantine",
        ));
    }
    Ok(a)
}

fn dmarc_reject<'de, D: Deserializer<'de>>(d: D) -> Result<InboundAction, D::Error> {
    super::named("inbound.dmarc_reject", d)
}

fn dmarc_quarantine<'de, D: Deserializer<'de>>(d: D) -> Result<InboundAction, D::Error> {
    super::named("inbound.dmarc_quarantine", d)
}

impl InboundConfig {
    /// A rule that quarantines needs a mailbox to quarantine into.
    pub fn validate(&self, local_domains: &[String]) -> Result<(), ConfigError> {
        let quarantines = [self.peer_failure, self.dmarc_reject, self.dmarc_quarantine]
            .contains(&InboundAction::Quarantine);
        match self.quarantine_mailbox.as_deref() {
            None if quarantines => Err(ConfigError::Invalid(
                "[inbound] a rule says `quarantine` but no quarantine_mailbox is set".into(),
            )),
            Some(m) => {
                let domain = m.rsplit_once('@');
                match domain {
                    Some((l, d))
                        if !l.is_empty()
                            && local_domains.iter().any(|x| x.eq_ignore_ascii_case(d)) =>
                    {
                        Ok(())
                    }
                    _ => Err(ConfigError::Invalid(format!(
                        "[inbound] quarantine_mailbox {m:?} must be an address in one of organisation.local_domains"
                    ))),
                }
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("x.toml"), std::iter::empty()).map_err(|e| e.to_string())
    }

    #[test]
    fn quarantine_needs_a_local_mailbox_and_peers_cannot_be_let_in_unchecked() {
        let local = "[organisation]\nlocal_domains = [\"zorg.test\"]\n";
        let err = parse(&format!(
            "{local}[inbound]\nenabled = true\ndmarc_reject = \"quarantine\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("no quarantine_mailbox"), "{err}");
        let err = parse(&format!(
            "{local}[inbound]\nquarantine_mailbox = \"q@elsewhere.test\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("local_domains"), "{err}");
        let err = parse(&format!("{local}[inbound]\npeer_failure = \"accept\"\n")).unwrap_err();
        assert!(err.contains("line 4, column"), "{err}");
        assert!(err.contains("inbound.peer_failure"), "{err}");
        let err = parse(&format!("{local}[inbound]\ndmarc_reject = \"drop\"\n")).unwrap_err();
        assert!(
            err.contains("inbound.dmarc_reject: unknown variant `drop`"),
            "{err}"
        );
        let ok = parse(&format!(
            "{local}[inbound]\nenabled = true\nquarantine_mailbox = \"q@zorg.test\"\npeer_failure = \"quarantine\"\n"
        ))
        .unwrap();
        assert_eq!(ok.inbound.peer_failure, super::InboundAction::Quarantine);
        assert!(!parse(local).unwrap().inbound.enabled, "off by default");
    }
}

//! The Stalwart side of a deployment in Stalwart's own formats: a TOML snippet for v0.15 (merged into
//! `config.toml`) and an NDJSON plan for v0.16 (applied with `stalwart-cli apply`).
//!
//! The input is [`crate::deployment::side::StalwartSide`], the typed description of what the gateway
//! needs; every key or object written here names the Stalwart source file that parses it (v0.15.5 and
//! v0.16.18 tags of stalwartlabs/stalwart), so an admin can check each one.

mod v015;
mod v016;

use crate::deployment::side::{InboundSide, StalwartSide};

/// The Stalwart release line a configuration is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalwartVersion {
    /// v0.15: TOML configuration file.
    V015,
    /// v0.16: registry objects over JMAP, applied as an NDJSON plan.
    V016,
}

impl StalwartVersion {
    /// The file name the shipped copy has under `config/stalwart/`.
    pub fn file_name(self) -> &'static str {
        match self {
            StalwartVersion::V015 => "v0.15.toml",
            StalwartVersion::V016 => "v0.16-plan.ndjson",
        }
    }
}

/// Renders the Stalwart side; `source` names the gateway configuration it came from (written into the
/// v0.15 header, so a reader knows what to render again after a change).
pub fn render(side: &StalwartSide, version: StalwartVersion, source: &str) -> String {
    match version {
        StalwartVersion::V015 => v015::render(side, source),
        StalwartVersion::V016 => v016::render(side),
    }
}

/// Event names v0.15 does not know. Added in v0.16 (crates/trc/src/lib.rs, DaneEvent::BogusDnssecRecord).
pub const NOT_IN_V015: &[&str] = &["dane.bogus-dnssec-record"];

/// The webhook events the gateway subscribes to ([`StalwartSide::webhook_events`]) that `version` knows
/// (an unknown name would make Stalwart refuse the webhook).
pub fn webhook_events(side: &StalwartSide, version: StalwartVersion) -> Vec<&'static str> {
    known_events(side.webhook_events, version)
}

/// The events of `events` that `version` knows.
pub fn known_events(events: &[&'static str], version: StalwartVersion) -> Vec<&'static str> {
    events
        .iter()
        .copied()
        .filter(|e| version != StalwartVersion::V015 || !NOT_IN_V015.contains(e))
        .collect()
}

/// The hook's `enable` expression: authenticated submissions only, never the gateway's own listeners
/// (their mail was decided already).
fn hook_enable(side: &StalwartSide) -> String {
    format!(
        "!is_empty(authenticated_as) && {}",
        not_gateway_listener(side)
    )
}

/// The inbound hook's `enable` expression: unauthenticated sessions on the internet-facing listener,
/// i.e. mail from other servers. It never overlaps [`hook_enable`] (authenticated only).
fn inbound_enable(inbound: &InboundSide) -> String {
    format!(
        "is_empty(authenticated_as) && listener == '{}'",
        inbound.listener
    )
}

/// True for every listener except the gateway's two.
fn not_gateway_listener(side: &StalwartSide) -> String {
    format!(
        "listener != '{}' && listener != '{}'",
        side.release.name, side.notify.name
    )
}

/// The TLS strategy selection: the notify port gets the notify-only strategy, everything else the
/// strict one. It never names `invalid-tls` or `default` (see the v0.15 renderer for why).
fn notify_port_condition(side: &StalwartSide) -> String {
    format!("received_via_port == {}", side.notify.bind.port())
}

/// The must-match-sender exception: the service account may send as the original senders.
fn service_account_condition(side: &StalwartSide) -> String {
    format!("authenticated_as == '{}'", side.account.login)
}

/// Stalwart's default inbound limiters (v0.15.5 `crates/common/src/manager/boot.rs` DEFAULT_SETTINGS,
/// v0.16.18 `crates/common/src/manager/defaults.rs`): id, description, keys, count per period in ms.
const LIMITERS: &[(&str, &str, &[&str], u64, u64)] = &[
    ("ip", "Sender IP throttle", &["remote_ip"], 5, 1_000),
    (
        "sender",
        "Sender address to recipient throttle",
        &["sender_domain", "rcpt"],
        25,
        3_600_000,
    ),
];

#[cfg(test)]
mod tests;

//! What a check says: the [`Rule`]s with their [`Severity`], one [`RuleResult`] each, and the
//! [`Expectations`] the gateway's configuration sets. The judging is in `rules.rs` and `tls.rs`.

use serde::Serialize;

use crate::config::Config;

/// The rules, in report order. Ids (`as_str`) are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    HookPresent,
    HookStage,
    HookTempfail,
    HookUrl,
    HookExcludesGateway,
    TlsStrict,
    TlsFallback,
    NotifyStrategy,
    SenderException,
    ResolverDnssec,
    Dkim,
    Webhook,
    /// `[inbound] enabled` only: the `nta-inbound` hook.
    InboundHook,
    /// `[inbound] enabled` only: user Sieve scripts cannot redirect.
    SieveRedirects,
}

/// How much a failing rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Safety,
    Function,
    Advice,
}

impl Rule {
    pub const ALL: [Rule; 12] = [
        Rule::HookPresent,
        Rule::HookStage,
        Rule::HookTempfail,
        Rule::HookUrl,
        Rule::HookExcludesGateway,
        Rule::TlsStrict,
        Rule::TlsFallback,
        Rule::NotifyStrategy,
        Rule::SenderException,
        Rule::ResolverDnssec,
        Rule::Dkim,
        Rule::Webhook,
    ];

    /// The rules checked after [`Rule::ALL`] when the gateway's `[inbound] enabled` is true.
    pub const INBOUND: [Rule; 2] = [Rule::InboundHook, Rule::SieveRedirects];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::HookPresent => "hook_present",
            Rule::HookStage => "hook_stage",
            Rule::HookTempfail => "hook_tempfail",
            Rule::HookUrl => "hook_url",
            Rule::HookExcludesGateway => "hook_excludes_gateway",
            Rule::TlsStrict => "tls_strict",
            Rule::TlsFallback => "tls_fallback",
            Rule::NotifyStrategy => "notify_strategy",
            Rule::SenderException => "sender_exception",
            Rule::ResolverDnssec => "resolver_dnssec",
            Rule::Dkim => "dkim",
            Rule::Webhook => "webhook",
            Rule::InboundHook => "inbound_hook",
            Rule::SieveRedirects => "sieve_redirects",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::HookPresent
            | Rule::HookStage
            | Rule::HookTempfail
            | Rule::HookUrl
            | Rule::TlsStrict
            | Rule::TlsFallback
            | Rule::NotifyStrategy
            | Rule::SieveRedirects => Severity::Safety,
            Rule::HookExcludesGateway
            | Rule::SenderException
            | Rule::Webhook
            | Rule::InboundHook => Severity::Function,
            Rule::ResolverDnssec | Rule::Dkim => Severity::Advice,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    pub rule: Rule,
    pub severity: Severity,
    pub outcome: Outcome,
    /// One line: what was found.
    pub detail: String,
    /// What to change (none when the rule passed).
    pub fix: Option<String>,
}

impl RuleResult {
    pub(super) fn pass(rule: Rule, detail: impl Into<String>) -> Self {
        RuleResult {
            rule,
            severity: rule.severity(),
            outcome: Outcome::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    pub(super) fn warn(rule: Rule, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        RuleResult {
            outcome: Outcome::Warn,
            fix: Some(fix.into()),
            ..RuleResult::pass(rule, detail)
        }
    }
    /// An advice rule never fails: its failure is a warning.
    pub(super) fn fail(rule: Rule, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        let outcome = if rule.severity() == Severity::Advice {
            Outcome::Warn
        } else {
            Outcome::Fail
        };
        RuleResult {
            outcome,
            ..RuleResult::warn(rule, detail, fix)
        }
    }
}

/// What the gateway's configuration says Stalwart must point at and allow.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Accepted base URLs of the gateway (`server.public_url`, `http://<server.listen>`).
    pub gateway_bases: Vec<String>,
    /// `server.listen` on every address (`0.0.0.0`, `[::]`): Stalwart may use any name for the gateway
    /// (a container name, a LAN address), so `http://<any host>:<this port>` is accepted too.
    pub any_host_port: Option<u16>,
    /// The service account (`stalwart.username`), when known.
    pub service_account: Option<String>,
    pub local_domains: Vec<String>,
    pub release_listener: String,
    pub notify_listener: String,
    /// No `--config`: compared with the defaults.
    pub assumed: bool,
    /// `[inbound] enabled`: the inbound rules are checked (and what they need is read).
    pub inbound: bool,
}

pub use crate::deployment::side::{EVENTS_PATH, HOOK_PATH, INBOUND_HOOK_PATH};

impl Expectations {
    pub fn from_config(config: Option<&Config>) -> Expectations {
        let server = config.map(|c| c.server.clone()).unwrap_or_default();
        let side = config.and_then(|c| crate::deployment::side::StalwartSide::from_config(c).ok());
        let mut gateway_bases = vec![normalise_url(&server.public_url)];
        gateway_bases.push(normalise_url(&format!("http://{}", server.listen)));
        // What `stalwart render` wrote (`stalwart.gateway_url` when set).
        if let Some(side) = &side {
            gateway_bases.push(normalise_url(side.hook_url.trim_end_matches(HOOK_PATH)));
        }
        gateway_bases.dedup();
        Expectations {
            gateway_bases,
            any_host_port: server
                .listen
                .ip()
                .is_unspecified()
                .then_some(server.listen.port()),
            // The login as rendered (a bare user name gets the first local domain).
            service_account: side.as_ref().map(|s| s.account.login.clone()).or_else(|| {
                config
                    .and_then(|c| c.stalwart.as_ref())
                    .map(|s| s.username.clone())
            }),
            local_domains: config
                .map(|c| c.organisation.local_domains.clone())
                .unwrap_or_default(),
            release_listener: crate::deployment::side::RELEASE_LISTENER.into(),
            notify_listener: crate::deployment::side::NOTIFY_LISTENER.into(),
            assumed: config.is_none(),
            inbound: config.is_some_and(|c| c.inbound.enabled),
        }
    }
}

pub(super) fn normalise_url(u: &str) -> String {
    u.trim().trim_end_matches('/').to_ascii_lowercase()
}

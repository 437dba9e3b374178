//! The normalised Stalwart configuration the rules read, built from either version's wire data: v0.15
//! settings ([`crate::stalwart::settings`]) or v0.16 registry objects ([`crate::stalwart::registry`]).
//! Where v0.15 leaves a key out, the compiled-in default it falls back to is filled in here (marked
//! `compiled_default`), so the rules see what Stalwart actually does.

use std::collections::BTreeMap;

use crate::stalwart::{registry, settings::Settings};

/// Which Stalwart line answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Version {
    #[serde(rename = "0.15")]
    V015,
    #[serde(rename = "0.16")]
    V016,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V015 => "0.15",
            Version::V016 => "0.16",
        }
    }
}

/// `starttls` / `dane` of a TLS strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Optional,
    Require,
    Disable,
    /// A value Stalwart would refuse or that this checker does not know.
    Other(String),
}

impl Requirement {
    /// v0.15 `RequireOptional` (`queue.rs:753`) and v0.16 `optional|require|disable`.
    pub fn parse(s: &str) -> Requirement {
        match s.trim().to_ascii_lowercase().as_str() {
            "optional" => Requirement::Optional,
            "require" | "required" => Requirement::Require,
            "disable" | "disabled" | "none" | "false" => Requirement::Disable,
            other => Requirement::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TlsStrategy {
    pub name: String,
    pub starttls: Requirement,
    pub allow_invalid_certs: bool,
}

impl TlsStrategy {
    /// STARTTLS required and invalid certificates refused.
    pub fn is_strict(&self) -> bool {
        self.starttls == Requirement::Require && !self.allow_invalid_certs
    }
}

/// An expression: branches in order, then the `else`.
#[derive(Debug, Clone, Default)]
pub struct Expr {
    pub branches: Vec<(String, String)>,
    pub otherwise: Option<String>,
    /// Not stored: Stalwart's compiled-in default.
    pub compiled_default: bool,
}

impl Expr {
    fn constant(v: &str, compiled_default: bool) -> Expr {
        Expr {
            branches: vec![],
            otherwise: Some(v.into()),
            compiled_default,
        }
    }

    /// Every value the expression can produce (branches, then `else`).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.branches
            .iter()
            .map(|(_, v)| v.as_str())
            .chain(self.otherwise.as_deref())
    }

    fn from_settings(raw: Vec<crate::stalwart::settings::RawBranch>) -> Expr {
        let mut e = Expr::default();
        for b in raw {
            match b.condition {
                Some(c) => e.branches.push((c, b.value)),
                None => e.otherwise = Some(b.value),
            }
        }
        e
    }

    fn from_registry(x: &registry::Expression) -> Expr {
        Expr {
            branches: x
                .ordered()
                .into_iter()
                .map(|b| (b.condition.clone(), b.then.clone()))
                .collect(),
            otherwise: x.otherwise.clone(),
            compiled_default: false,
        }
    }

    /// Shown in details: `if c then v; …; else v`.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .branches
            .iter()
            .map(|(c, v)| format!("if {c} then {v}"))
            .collect();
        if let Some(o) = &self.otherwise {
            parts.push(format!("else {o}"));
        }
        let text = parts.join("; ");
        if self.compiled_default {
            format!("{text} (compiled-in default)")
        } else {
            text
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub id: String,
    pub url: String,
    pub enable: Expr,
    pub stages: Vec<String>,
    pub tempfail_on_error: bool,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub enabled: bool,
    /// Event names or (v0.15) patterns: `*`, `prefix.*`, `*-suffix`.
    pub events: Vec<String>,
    /// `eventsPolicy = exclude`: every event except those listed.
    pub exclude: bool,
}

impl Webhook {
    /// Whether the webhook sends `event`.
    pub fn sends(&self, event: &str) -> bool {
        let listed = self.events.iter().any(|p| pattern_matches(p, event));
        listed != self.exclude
    }
}

fn pattern_matches(pattern: &str, event: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return event.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return event.ends_with(suffix);
    }
    pattern == event
}

/// Stalwart's DNS resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolver {
    /// `/etc/resolv.conf`: validates DNSSEC only if the host's resolver does.
    System,
    /// A public validating service (Cloudflare, Quad9, Google), by its name.
    Public(String),
    /// Servers the admin listed.
    Custom(Vec<String>),
    /// A type this checker does not know.
    Other(String),
}

/// A numeric limit as Stalwart applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// Set in the configuration.
    Set(u64),
    /// Not set: Stalwart's compiled-in default.
    Default(u64),
    /// A value that is not a number (shown as read).
    Unreadable(String),
}

/// Stalwart's default number of redirects per user Sieve run: v0.15.5
/// `crates/common/src/config/scripts.rs` (`sieve.untrusted.limits.redirects`), v0.16.18
/// `SieveUserInterpreter.maxRedirects` (`crates/registry/src/schema/structs_impl.rs`).
pub const DEFAULT_SIEVE_REDIRECTS: u64 = 1;

/// Everything the rules read.
#[derive(Debug, Clone)]
pub struct StalwartView {
    pub version: Version,
    pub tls_strategies: Vec<TlsStrategy>,
    /// The expression that picks the TLS strategy per message and MX.
    pub tls_expression: Expr,
    pub hooks: Vec<Hook>,
    pub listeners: Vec<Listener>,
    pub webhooks: Vec<Webhook>,
    pub resolver: Resolver,
    pub must_match_sender: Expr,
    /// The expression that decides which messages are DKIM-signed.
    pub dkim_sign: Expr,
    /// Signing keys: (domain, selector or signature id).
    pub dkim_keys: Vec<(String, String)>,
    /// Domains Stalwart knows as its own (v0.16 `Domain`; v0.15's live in the directory, not here).
    pub domains: Vec<String>,
    /// How many messages one user Sieve run may `redirect`; `None` when not read (inbound checks off).
    pub sieve_redirects: Option<Limit>,
}

impl StalwartView {
    pub fn strategy(&self, name: &str) -> Option<&TlsStrategy> {
        self.tls_strategies.iter().find(|s| s.name == name)
    }
}

/// The v0.15 default `queue.strategy.tls` (`crates/common/src/config/smtp/queue.rs:219`).
pub fn v015_default_tls_expression() -> Expr {
    Expr {
        branches: vec![(
            "retry_num > 0 && last_error == 'tls'".into(),
            "'invalid-tls'".into(),
        )],
        otherwise: Some("'default'".into()),
        compiled_default: true,
    }
}

/// The v0.15 answers, by prefix (every prefix of [`crate::stalwart::settings::PREFIXES`]).
pub fn from_v015(by_prefix: &BTreeMap<String, Settings>) -> StalwartView {
    let empty = Settings::default();
    let s = |p: &str| by_prefix.get(p).unwrap_or(&empty);
    let strategy = s("queue.strategy");
    StalwartView {
        version: Version::V015,
        tls_strategies: v015_strategies(s("queue.tls")),
        tls_expression: strategy
            .expression("tls")
            .map(Expr::from_settings)
            .unwrap_or_else(v015_default_tls_expression),
        hooks: v015_hooks(s("session.hook")),
        listeners: s("server.listener")
            .ids()
            .into_iter()
            .map(|id| Listener {
                name: id.to_string(),
                ports: ports(
                    s("server.listener")
                        .sub(id)
                        .list("bind")
                        .unwrap_or_default(),
                ),
            })
            .collect(),
        webhooks: v015_webhooks(s("webhook")),
        resolver: v015_resolver(s("resolver")),
        must_match_sender: s("session.auth")
            .expression("must-match-sender")
            .map(Expr::from_settings)
            .unwrap_or_else(|| Expr::constant("true", true)),
        dkim_sign: s("auth.dkim")
            .expression("sign")
            .map(Expr::from_settings)
            .unwrap_or(Expr {
                branches: vec![(
                    "is_local_domain('*', sender_domain)".into(),
                    "['rsa-' + sender_domain, 'ed25519-' + sender_domain]".into(),
                )],
                otherwise: Some("false".into()),
                compiled_default: true,
            }),
        dkim_keys: s("signature")
            .ids()
            .into_iter()
            .filter_map(|id| {
                Some((
                    s("signature").sub(id).get("domain")?.to_string(),
                    id.to_string(),
                ))
            })
            .collect(),
        domains: vec![],
        sieve_redirects: by_prefix.get("sieve.untrusted").map(|s| {
            match s.get("limits.redirects") {
                None => Limit::Default(DEFAULT_SIEVE_REDIRECTS),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_or_else(|_| Limit::Unreadable(v.into()), Limit::Set),
            }
        }),
    }
}

fn v015_strategies(tls: &Settings) -> Vec<TlsStrategy> {
    tls.ids()
        .into_iter()
        .map(|id| {
            let t = tls.sub(id);
            TlsStrategy {
                name: id.to_string(),
                starttls: Requirement::parse(t.get("starttls").unwrap_or("optional")),
                // Anything but "false" counts as allowing: an unreadable value is not "refused".
                allow_invalid_certs: t
                    .get("allow-invalid-certs")
                    .is_some_and(|v| v.trim() != "false"),
            }
        })
        .collect()
}

fn v015_hooks(hooks: &Settings) -> Vec<Hook> {
    hooks
        .ids()
        .into_iter()
        .filter_map(|id| {
            let h = hooks.sub(id);
            Some(Hook {
                id: id.to_string(),
                url: h.get("url")?.to_string(),
                enable: h
                    .expression("enable")
                    .map(Expr::from_settings)
                    .unwrap_or_else(|| Expr::constant("false", true)),
                stages: h
                    .list("stages")
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| vec!["data".into()])
                    .into_iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect(),
                tempfail_on_error: h
                    .get("options.tempfail-on-error")
                    .is_none_or(|v| v.trim() != "false"),
            })
        })
        .collect()
}

fn v015_webhooks(w: &Settings) -> Vec<Webhook> {
    w.ids()
        .into_iter()
        .filter_map(|id| {
            let h = w.sub(id);
            Some(Webhook {
                id: id.to_string(),
                url: h.get("url")?.to_string(),
                // v0.15 has no `enable` key (telemetry.rs:745).
                enabled: true,
                events: h.list("events").unwrap_or_default(),
                exclude: false,
            })
        })
        .collect()
}

fn v015_resolver(r: &Settings) -> Resolver {
    match r.get("type").unwrap_or("system").trim() {
        "system" => Resolver::System,
        "custom" => Resolver::Custom(r.list("custom").unwrap_or_default()),
        t @ ("cloudflare" | "cloudflare-tls" | "quad9" | "quad9-tls" | "google") => {
            Resolver::Public(t.into())
        }
        other => Resolver::Other(other.into()),
    }
}

fn ports(binds: impl IntoIterator<Item = String>) -> Vec<u16> {
    binds
        .into_iter()
        .filter_map(|b| b.rsplit_once(':')?.1.parse().ok())
        .collect()
}

/// The v0.16 objects (the `list` of each `/get`).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub tls_strategies: Vec<registry::MtaTlsStrategy>,
    pub outbound: Option<registry::MtaOutboundStrategy>,
    pub hooks: Vec<registry::MtaHook>,
    pub listeners: Vec<registry::NetworkListener>,
    pub webhooks: Vec<registry::WebHook>,
    pub resolver: Option<registry::DnsResolver>,
    pub stage_auth: Option<registry::MtaStageAuth>,
    pub sender_auth: Option<registry::SenderAuth>,
    pub domains: Vec<registry::Domain>,
    pub dkim: Vec<registry::DkimSignature>,
    /// Read only for the inbound rules.
    pub sieve_user: Option<registry::SieveUserInterpreter>,
}

pub fn from_v016(r: &Registry) -> StalwartView {
    let expr = |x: Option<&registry::Expression>, default: &str| {
        x.map(Expr::from_registry)
            .unwrap_or_else(|| Expr::constant(default, true))
    };
    StalwartView {
        version: Version::V016,
        tls_strategies: r
            .tls_strategies
            .iter()
            .map(|s| TlsStrategy {
                name: s.name.clone(),
                starttls: Requirement::parse(&s.start_tls),
                allow_invalid_certs: s.allow_invalid_certs,
            })
            .collect(),
        tls_expression: r
            .outbound
            .as_ref()
            .and_then(|o| o.tls.as_ref())
            .map(Expr::from_registry)
            .unwrap_or_else(v015_default_tls_expression),
        hooks: r
            .hooks
            .iter()
            .enumerate()
            .map(|(i, h)| v016_hook(i, h))
            .collect(),
        listeners: r
            .listeners
            .iter()
            .map(|l| Listener {
                name: l.name.clone(),
                ports: ports(l.bind.iter().filter(|(_, on)| **on).map(|(b, _)| b.clone())),
            })
            .collect(),
        webhooks: r
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| v016_webhook(i, w))
            .collect(),
        resolver: r.resolver.as_ref().map_or(Resolver::System, v016_resolver),
        must_match_sender: expr(
            r.stage_auth
                .as_ref()
                .and_then(|a| a.must_match_sender.as_ref()),
            "true",
        ),
        dkim_sign: expr(
            r.sender_auth
                .as_ref()
                .and_then(|a| a.dkim_sign_domain.as_ref()),
            "false",
        ),
        dkim_keys: r
            .dkim
            .iter()
            .filter(|k| k.stage == "active")
            .filter_map(|k| {
                let d = r.domains.iter().find(|d| d.id == k.domain_id)?;
                Some((d.name.clone(), k.selector.clone()))
            })
            .collect(),
        domains: r.domains.iter().map(|d| d.name.clone()).collect(),
        sieve_redirects: r.sieve_user.as_ref().map(|s| {
            s.max_redirects
                .map_or(Limit::Default(DEFAULT_SIEVE_REDIRECTS), Limit::Set)
        }),
    }
}

fn v016_hook(i: usize, h: &registry::MtaHook) -> Hook {
    Hook {
        id: format!("#{i}"),
        url: h.url.clone(),
        enable: h
            .enable
            .as_ref()
            .map(Expr::from_registry)
            .unwrap_or_else(|| Expr::constant("true", true)),
        stages: h.stages.as_ref().map_or_else(
            || vec!["data".into()],
            |s| {
                s.iter()
                    .filter(|(_, on)| **on)
                    .map(|(k, _)| k.to_ascii_lowercase())
                    .collect()
            },
        ),
        tempfail_on_error: h.temp_fail_on_error,
    }
}

fn v016_webhook(i: usize, w: &registry::WebHook) -> Webhook {
    Webhook {
        id: format!("#{i}"),
        url: w.url.clone(),
        enabled: w.enable,
        events: w
            .events
            .iter()
            .filter(|(_, on)| **on)
            .map(|(k, _)| k.clone())
            .collect(),
        // `eventsPolicy` defaults to exclude (CONTRACT §4.3).
        exclude: w.events_policy.as_deref() != Some("include"),
    }
}

fn v016_resolver(r: &registry::DnsResolver) -> Resolver {
    match r.kind.as_str() {
        "System" => Resolver::System,
        "Custom" => Resolver::Custom(
            r.rest
                .values()
                .filter_map(|v| v.as_object())
                .flat_map(|o| o.keys().cloned())
                .collect(),
        ),
        t @ ("Cloudflare" | "Quad9" | "Google") => Resolver::Public(t.into()),
        other => Resolver::Other(other.into()),
    }
}

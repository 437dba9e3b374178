//! The outbound TLS rules: which strategy the TLS expression picks for which mail.
//!
//! A branch `received_via_port == <port of nta-notify>` is the notification branch: only there may a
//! weak strategy (STARTTLS optional or invalid certificates allowed) be chosen. Every other value must
//! name an existing strict strategy — an unknown name falls back to Stalwart's opportunistic built-in
//! (`v0.15.5:crates/common/src/core.rs:281`, `crates/common/src/network/mta.rs:320` in 0.16).

use super::rule::{Expectations, Rule, RuleResult};
use super::view::{StalwartView, TlsStrategy, Version};

/// One value of the TLS expression and what it selects.
struct Choice<'a> {
    /// `None`: the `else`.
    condition: Option<&'a str>,
    value: &'a str,
    name: Option<String>,
    notify: bool,
}

/// `'name'` → `name`; anything else (a computed value) is not readable here.
fn strategy_name(value: &str) -> Option<String> {
    let v = value.trim();
    let inner = v.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.is_empty() && !inner.contains('\'')).then(|| inner.to_string())
}

/// The ports of the notify listener.
fn notify_ports(view: &StalwartView, want: &Expectations) -> Vec<u16> {
    view.listeners
        .iter()
        .filter(|l| l.name == want.notify_listener)
        .flat_map(|l| l.ports.iter().copied())
        .collect()
}

fn is_notify_condition(condition: &str, ports: &[u16]) -> bool {
    let c: String = condition.chars().filter(|c| !c.is_whitespace()).collect();
    c.strip_prefix("received_via_port==")
        .and_then(|p| p.parse::<u16>().ok())
        .is_some_and(|p| ports.contains(&p))
}

fn choices<'a>(view: &'a StalwartView, ports: &[u16]) -> Vec<Choice<'a>> {
    let e = &view.tls_expression;
    let mut out: Vec<Choice> = e
        .branches
        .iter()
        .map(|(c, v)| Choice {
            condition: Some(c.as_str()),
            value: v.as_str(),
            name: strategy_name(v),
            notify: is_notify_condition(c, ports),
        })
        .collect();
    if let Some(v) = &e.otherwise {
        out.push(Choice {
            condition: None,
            value: v,
            name: strategy_name(v),
            notify: false,
        });
    }
    out
}

fn describe(s: &TlsStrategy) -> String {
    format!(
        "{} (starttls {}, invalid certificates {})",
        s.name,
        format!("{:?}", s.starttls).to_lowercase(),
        if s.allow_invalid_certs {
            "allowed"
        } else {
            "refused"
        }
    )
}

fn when(c: &Choice<'_>) -> String {
    c.condition.map_or("else".into(), |c| format!("if {c}"))
}

fn strict_fix(view: &StalwartView) -> &'static str {
    match view.version {
        Version::V015 => "queue.strategy.tls = [ { if = \"received_via_port == <nta-notify port>\", then = \"'<notify strategy>'\" }, { else = \"'nta7516'\" } ] with [queue.tls.\"nta7516\"] starttls = \"require\", allow-invalid-certs = false",
        Version::V016 => "MtaOutboundStrategy.tls: else 'nta7516', and an MtaTlsStrategy nta7516 with startTls require, allowInvalidCerts false",
    }
}

/// Every non-notification choice names an existing strict strategy, and there is an `else`.
pub fn tls_strict(view: &StalwartView, want: &Expectations) -> RuleResult {
    let r = Rule::TlsStrict;
    let ports = notify_ports(view, want);
    let mut problems = Vec::new();
    if view.tls_expression.otherwise.is_none() {
        problems.push("no else: unmatched mail gets Stalwart's opportunistic built-in".to_string());
    }
    for c in choices(view, &ports).iter().filter(|c| !c.notify) {
        match c.name.as_deref().map(|n| (n, view.strategy(n))) {
            None => problems.push(format!(
                "{}: {} is not a plain strategy name",
                when(c),
                c.value
            )),
            Some((n, None)) => problems.push(format!(
                "{}: '{n}' does not exist (opportunistic built-in)",
                when(c)
            )),
            Some((_, Some(s))) if !s.is_strict() => {
                problems.push(format!("{}: {}", when(c), describe(s)))
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        let names: Vec<String> = choices(view, &ports)
            .iter()
            .filter(|c| !c.notify)
            .filter_map(|c| c.name.clone())
            .collect();
        return RuleResult::pass(
            r,
            format!(
                "non-notification mail uses {} (STARTTLS required, valid certificates)",
                names.join(", ")
            ),
        );
    }
    RuleResult::fail(
        r,
        format!(
            "mail may leave without verified TLS: {} [tls = {}]",
            problems.join("; "),
            view.tls_expression.display()
        ),
        strict_fix(view),
    )
}

/// `invalid-tls` / `default` are never chosen (v0.15 re-applies its defaults at boot), or (v0.16) they
/// are neutralised; an unreachable `invalid-tls` that still allows invalid certificates is a warning.
pub fn tls_fallback(view: &StalwartView) -> RuleResult {
    let r = Rule::TlsFallback;
    let named: Vec<String> = view
        .tls_expression
        .values()
        .filter_map(strategy_name)
        .filter(|n| n == "invalid-tls" || n == "default")
        .collect();
    let invalid = view.strategy("invalid-tls");
    let weak = |n: &str| view.strategy(n).is_none_or(|s| !s.is_strict());
    if !named.is_empty() && (view.version == Version::V015 || named.iter().any(|n| weak(n))) {
        let why = match view.version {
            Version::V015 => "v0.15 re-applies its DEFAULT_SETTINGS at boot (first boot; every boot without the spam-filter download), which sets invalid-tls.allow-invalid-certs = true",
            Version::V016 => "it allows opportunistic TLS or invalid certificates",
        };
        return RuleResult::fail(
            r,
            format!("the TLS expression names {}: {why} [tls = {}]", named.join(", "), view.tls_expression.display()),
            "name only the gateway's own strategies (nta7516 and the notify strategy) in the TLS expression; neutralise invalid-tls (starttls require, invalid certificates refused)",
        );
    }
    match invalid {
        Some(s) if s.allow_invalid_certs => RuleResult::warn(
            r,
            "invalid-tls is not chosen, but still allows invalid certificates",
            "neutralise it too (starttls require, allow invalid certificates false)",
        ),
        _ if named.is_empty() => RuleResult::pass(r, "invalid-tls and default are never chosen"),
        _ => RuleResult::pass(
            r,
            format!("{} chosen, but neutralised (strict)", named.join(", ")),
        ),
    }
}

/// Weak strategies are chosen only for mail received on the nta-notify listener.
pub fn notify_strategy(view: &StalwartView, want: &Expectations) -> RuleResult {
    let r = Rule::NotifyStrategy;
    let ports = notify_ports(view, want);
    if ports.is_empty() {
        return RuleResult::fail(
            r,
            format!(
                "no {} listener: notifications cannot be submitted",
                want.notify_listener
            ),
            "add the nta-notify listener of `stalwart-nta7516 stalwart render`",
        );
    }
    let all = choices(view, &ports);
    let weak = |c: &Choice<'_>| {
        c.name
            .as_deref()
            .and_then(|n| view.strategy(n))
            .is_none_or(|s| !s.is_strict())
    };
    let misplaced: Vec<String> = all
        .iter()
        .filter(|c| !c.notify && weak(c))
        .map(|c| format!("{} → {}", when(c), c.value))
        .collect();
    if !misplaced.is_empty() {
        return RuleResult::fail(
            r,
            format!(
                "a weak strategy is chosen beyond nta-notify (port {ports:?}): {}",
                misplaced.join("; ")
            ),
            "choose a weak strategy only under `received_via_port == <nta-notify port>`",
        );
    }
    match all.iter().find(|c| c.notify) {
        Some(c) => RuleResult::pass(r, format!("{} → {} only for nta-notify", when(c), c.value)),
        None => RuleResult::warn(
            r,
            format!("no strategy for nta-notify (port {ports:?}): notifications to recipients whose certificates fail stay undelivered"),
            "add `{ if = \"received_via_port == <port>\", then = \"'nta-notify'\" }` with a strategy that allows invalid certificates (notifications carry no medical content)",
        ),
    }
}

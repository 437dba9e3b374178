//! The rules: a pure function from a [`StalwartView`] and what the gateway expects ([`Expectations`],
//! from its configuration) to one [`RuleResult`] per [`Rule`]. No I/O.
//!
//! Severity: a failing *safety* rule means mail may leave Stalwart insecurely or bypass the gateway
//! (`serve` then holds, with `on_unsafe = "hold"`); a failing *function* rule breaks a part of the
//! product (releases, notifications, the audit trail) without making delivery insecure; *advice* rules
//! only warn.

use super::rule::{
    normalise_url, Expectations, Rule, RuleResult, EVENTS_PATH, HOOK_PATH, INBOUND_HOOK_PATH,
};
use super::view::{Expr, Hook, Limit, Resolver, StalwartView, Version, Webhook};

/// Every rule on the view.
pub fn check(view: &StalwartView, want: &Expectations) -> Vec<RuleResult> {
    let hook = gateway_hook(view);
    let mut out = vec![
        hook_present(view, hook),
        with_hook(Rule::HookStage, hook, hook_stage),
        with_hook(Rule::HookTempfail, hook, hook_tempfail),
        with_hook(Rule::HookUrl, hook, |h| hook_url(h, want)),
        with_hook(Rule::HookExcludesGateway, hook, |h| hook_excludes(h, want)),
    ];
    out.push(super::tls::tls_strict(view, want));
    out.push(super::tls::tls_fallback(view));
    out.push(super::tls::notify_strategy(view, want));
    out.push(sender_exception(&view.must_match_sender, want));
    out.push(resolver_dnssec(view));
    out.push(dkim(view, want));
    out.push(webhook(view, want));
    if want.inbound {
        out.push(inbound_hook(view, want));
        out.push(sieve_redirects(view));
    }
    out
}

/// Whether a hook calls the gateway's inbound endpoint.
fn is_inbound(h: &Hook) -> bool {
    h.url.trim_end_matches('/').ends_with(INBOUND_HOOK_PATH)
}

/// The hook that calls the gateway (its URL ends in the hook path), else the first hook that is not
/// the inbound one.
fn gateway_hook(view: &StalwartView) -> Option<&Hook> {
    view.hooks
        .iter()
        .find(|h| h.url.trim_end_matches('/').ends_with(HOOK_PATH))
        .or_else(|| view.hooks.iter().find(|h| !is_inbound(h)))
}

fn with_hook(rule: Rule, hook: Option<&Hook>, f: impl FnOnce(&Hook) -> RuleResult) -> RuleResult {
    match hook {
        Some(h) => f(h),
        None => RuleResult::fail(rule, "no MTA hook", "see hook_present"),
    }
}

/// Whether an expression can never be true (a constant `false`).
fn never(e: &Expr) -> bool {
    e.values().all(|v| v.trim() == "false")
}

fn hook_present(view: &StalwartView, hook: Option<&Hook>) -> RuleResult {
    let r = Rule::HookPresent;
    let fix = match view.version {
        Version::V015 => "add [session.hook.\"nta7516\"] (url, enable, stages = [\"data\"]): `stalwart-nta7516 stalwart render --version 0.15`",
        Version::V016 => "create the MtaHook of `stalwart-nta7516 stalwart render --version 0.16` and restart Stalwart",
    };
    let Some(h) = hook else {
        return RuleResult::fail(
            r,
            "no MTA hook: mail leaves without the gateway's decision",
            fix,
        );
    };
    if never(&h.enable) {
        return RuleResult::fail(
            r,
            format!("hook {} never runs: enable = {}", h.id, h.enable.display()),
            "set the hook's enable expression: !is_empty(authenticated_as) && listener != 'nta-release' && listener != 'nta-notify'",
        );
    }
    let calling = view
        .hooks
        .iter()
        .filter(|h| h.url.contains(HOOK_PATH) && !is_inbound(h))
        .count();
    if calling > 1 {
        return RuleResult::warn(
            r,
            format!("{calling} hooks call the gateway: every message is decided twice"),
            "keep one hook for the gateway",
        );
    }
    RuleResult::pass(r, format!("hook {} → {}", h.id, h.url))
}

fn hook_stage(h: &Hook) -> RuleResult {
    let r = Rule::HookStage;
    if !h.stages.iter().any(|s| s == "data") {
        return RuleResult::fail(
            r,
            format!(
                "hook runs at {:?}, not at DATA: the gateway sees no message",
                h.stages
            ),
            "set the hook's stages to data only",
        );
    }
    if h.stages.len() > 1 {
        return RuleResult::warn(
            r,
            format!(
                "hook also runs at {:?}: the gateway answers only DATA",
                h.stages
            ),
            "set the hook's stages to data only",
        );
    }
    RuleResult::pass(r, "hook runs at DATA")
}

fn hook_tempfail(h: &Hook) -> RuleResult {
    if h.tempfail_on_error {
        RuleResult::pass(
            Rule::HookTempfail,
            "a hook error answers 451 (the client retries)",
        )
    } else {
        RuleResult::fail(
            Rule::HookTempfail,
            "tempfail-on-error is off: when the gateway is down, Stalwart accepts mail undecided",
            "set the hook's tempfail-on-error (v0.15 options.tempfail-on-error, v0.16 tempFailOnError) to true",
        )
    }
}

/// How a configured URL relates to the gateway.
enum UrlMatch {
    Gateway,
    /// An environment macro (`%{env:NAME}%`) that the API returns unexpanded.
    Macro(String),
    Elsewhere,
}

fn url_match(url: &str, path: &str, want: &Expectations) -> UrlMatch {
    let u = normalise_url(url);
    let Some(base) = u.strip_suffix(path) else {
        return UrlMatch::Elsewhere;
    };
    if let Some(start) = base.find("%{env:") {
        let var = base[start + 6..].split('}').next().unwrap_or_default();
        return UrlMatch::Macro(var.to_ascii_uppercase());
    }
    let any_host = want.any_host_port.is_some_and(|port| {
        base.strip_prefix("http://")
            .and_then(|hostport| hostport.rsplit_once(':'))
            .is_some_and(|(_, p)| p == port.to_string())
    });
    if any_host || want.gateway_bases.iter().any(|b| b == base) {
        UrlMatch::Gateway
    } else {
        UrlMatch::Elsewhere
    }
}

fn expected(want: &Expectations, path: &str) -> String {
    let list: Vec<String> = want
        .gateway_bases
        .iter()
        .map(|b| format!("{b}{path}"))
        .collect();
    let note = if want.assumed {
        " (no --config: the defaults)"
    } else {
        ""
    };
    format!("{}{note}", list.join(" or "))
}

fn hook_url(h: &Hook, want: &Expectations) -> RuleResult {
    let r = Rule::HookUrl;
    match url_match(&h.url, HOOK_PATH, want) {
        UrlMatch::Gateway => RuleResult::pass(r, format!("hook calls {}", h.url)),
        other => not_the_gateway(r, "hook", &h.url, other, HOOK_PATH, want),
    }
}

/// A hook URL that is not (or not visibly) this gateway's `path`: `what` names the hook.
fn not_the_gateway(
    r: Rule,
    what: &str,
    url: &str,
    m: UrlMatch,
    path: &str,
    want: &Expectations,
) -> RuleResult {
    match m {
        UrlMatch::Macro(var) => RuleResult::warn(
            r,
            format!("{what} URL {url} comes from Stalwart's environment: not comparable here"),
            format!(
                "make sure {var} in Stalwart's environment is the gateway ({})",
                expected(want, "")
            ),
        ),
        _ => RuleResult::fail(
            r,
            format!("{what} calls {url}, not this gateway"),
            format!("set the {what}'s url to {}", expected(want, path)),
        ),
    }
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace('"', "'")
}

fn hook_excludes(h: &Hook, want: &Expectations) -> RuleResult {
    let r = Rule::HookExcludesGateway;
    let needles = [
        squash(&format!("listener != '{}'", want.release_listener)),
        squash(&format!("listener != '{}'", want.notify_listener)),
    ];
    let excludes = |text: &str| needles.iter().all(|n| squash(text).contains(n));
    let mut live = h
        .enable
        .branches
        .iter()
        .filter(|(_, v)| v.trim() != "false");
    let branches_ok = live.all(|(c, v)| excludes(&format!("{c} {v}")));
    let else_ok = h
        .enable
        .otherwise
        .as_deref()
        .is_none_or(|v| v.trim() == "false" || excludes(v));
    if branches_ok && else_ok {
        return RuleResult::pass(
            r,
            format!(
                "hook skips {} and {}",
                want.release_listener, want.notify_listener
            ),
        );
    }
    RuleResult::fail(
        r,
        format!(
            "hook also runs for the gateway's own submissions: enable = {}",
            h.enable.display()
        ),
        format!(
            "add `&& listener != '{}' && listener != '{}'` to every enabling branch",
            want.release_listener, want.notify_listener
        ),
    )
}

fn sender_exception(e: &Expr, want: &Expectations) -> RuleResult {
    let r = Rule::SenderException;
    let account = want.service_account.as_deref();
    let fix = format!(
        "must-match-sender = [ {{ if = \"authenticated_as == '{}'\", then = false }}, {{ else = true }} ] (v0.16: MtaStageAuth.mustMatchSender)",
        account.unwrap_or("<service account>")
    );
    if e.otherwise.as_deref().map(str::trim) == Some("false") && e.branches.is_empty() {
        return RuleResult::warn(r, "must-match-sender is off for every account", fix);
    }
    let exempt = e.branches.iter().find(|(c, v)| {
        v.trim() == "false"
            && c.contains("authenticated_as")
            && account.is_none_or(|a| squash(c).contains(&format!("'{a}'")))
    });
    match (exempt, account) {
        (Some((c, _)), Some(a)) => RuleResult::pass(r, format!("{a} may send as others ({c})")),
        (Some((c, _)), None) => RuleResult::pass(r, format!("an account may send as others ({c}); no --config: account not compared")),
        (None, _) => RuleResult::fail(
            r,
            format!(
                "the service account {} may not send as others (must-match-sender = {}): every release and notification is refused with 501 5.5.4",
                account.unwrap_or("(unknown)"),
                e.display()
            ),
            fix,
        ),
    }
}

fn resolver_dnssec(view: &StalwartView) -> RuleResult {
    let r = Rule::ResolverDnssec;
    let dane_off = match view.version {
        Version::V015 => "DANE needs a resolver that returns DNSSEC records",
        Version::V016 => "Stalwart ≥ 0.16.11 turns DANE off at start when its resolver cannot validate DNSSEC (log: \"DANE has been disabled\")",
    };
    let fix = "point Stalwart at a validating resolver (e.g. a local unbound, or quad9/cloudflare) and check its start log";
    match &view.resolver {
        Resolver::Public(name) => RuleResult::pass(r, format!("resolver {name} validates DNSSEC")),
        Resolver::Custom(servers) if view.version == Version::V015 && !servers.is_empty() => {
            RuleResult::pass(r, format!("custom resolver {}: it must return DNSSEC records", servers.join(", ")))
        }
        Resolver::System => RuleResult::fail(
            r,
            format!("resolver is the system's (/etc/resolv.conf): not known to validate DNSSEC; {dane_off}"),
            fix,
        ),
        other => RuleResult::fail(r, format!("resolver {other:?}: cannot tell whether it validates DNSSEC; {dane_off}"), fix),
    }
}

fn dkim(view: &StalwartView, want: &Expectations) -> RuleResult {
    let r = Rule::Dkim;
    let mut domains: Vec<String> = want
        .local_domains
        .iter()
        .chain(&view.domains)
        .map(|d| d.to_ascii_lowercase())
        .collect();
    domains.sort();
    domains.dedup();
    if domains.is_empty() {
        return RuleResult::fail(
            r,
            "no local domain known (gateway organisation.local_domains or Stalwart domains)",
            "pass --config with [organisation] local_domains",
        );
    }
    let fix = match view.version {
        Version::V015 => "add a [signature.\"<id>\"] key per domain and sign with auth.dkim.sign",
        Version::V016 => {
            "create the Domain with dkimManagement Automatic (or a DkimSignature per domain)"
        }
    };
    if never(&view.dkim_sign) {
        return RuleResult::fail(
            r,
            format!("DKIM signing is off ({})", view.dkim_sign.display()),
            fix,
        );
    }
    let missing: Vec<&str> = domains
        .iter()
        .filter(|d| {
            !view
                .dkim_keys
                .iter()
                .any(|(kd, _)| kd.eq_ignore_ascii_case(d))
        })
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        let keys: Vec<&str> = view.dkim_keys.iter().map(|(_, s)| s.as_str()).collect();
        return RuleResult::pass(
            r,
            format!(
                "signing keys for {}: {}",
                domains.join(", "),
                keys.join(", ")
            ),
        );
    }
    RuleResult::fail(
        r,
        format!("no DKIM signing key for {}", missing.join(", ")),
        fix,
    )
}

/// The events without which a proof-of-delivery report has no evidence (`audit/report.rs`).
pub const REQUIRED_EVENTS: &[&str] = &[
    "delivery.connect",
    "delivery.start-tls",
    "delivery.delivered",
    "delivery.dsn-success",
    "delivery.dsn-temp-fail",
    "delivery.dsn-perm-fail",
    "delivery.failed",
    "delivery.rcpt-to-rejected",
    "delivery.message-rejected",
];

fn webhook(view: &StalwartView, want: &Expectations) -> RuleResult {
    let r = Rule::Webhook;
    let fix = "create the webhook of `stalwart-nta7516 stalwart render` (url …/v1/stalwart-events, the audit's events, the HMAC key)";
    let Some(w) = view
        .webhooks
        .iter()
        .find(|w| w.url.trim_end_matches('/').ends_with(EVENTS_PATH))
    else {
        return RuleResult::fail(
            r,
            "no webhook to the gateway's /v1/stalwart-events: no proof of delivery",
            fix,
        );
    };
    if let UrlMatch::Elsewhere = url_match(&w.url, EVENTS_PATH, want) {
        return RuleResult::fail(
            r,
            format!("webhook {} posts to {}, not this gateway", w.id, w.url),
            format!("set its url to {}", expected(want, EVENTS_PATH)),
        );
    }
    if !w.enabled {
        return RuleResult::fail(r, format!("webhook {} is disabled", w.id), "enable it");
    }
    let missing = |list: &[&'static str]| -> Vec<&'static str> {
        list.iter().copied().filter(|e| !w.sends(e)).collect()
    };
    let required = missing(REQUIRED_EVENTS);
    if !required.is_empty() {
        return RuleResult::fail(
            r,
            format!("webhook {} does not send {}", w.id, required.join(", ")),
            "add these events to the webhook (eventsPolicy include)",
        );
    }
    // Every event the audit records that this Stalwart line knows (what `stalwart render` subscribes).
    let line = match view.version {
        Version::V015 => crate::stalwart::render::StalwartVersion::V015,
        Version::V016 => crate::stalwart::render::StalwartVersion::V016,
    };
    let known = crate::stalwart::render::known_events(crate::audit::delivery::RECORDED, line);
    let recorded = missing(&known);
    if !recorded.is_empty() {
        return RuleResult::warn(
            r,
            webhook_detail(
                w,
                &format!("; not sent (less evidence): {}", recorded.join(", ")),
            ),
            "add these events too (the audit records them)",
        );
    }
    RuleResult::pass(r, webhook_detail(w, ""))
}

fn webhook_detail(w: &Webhook, extra: &str) -> String {
    format!(
        "webhook {} → {} sends the delivery evidence{extra}",
        w.id, w.url
    )
}

/// `[inbound] enabled`: an enabled hook at DATA calls this gateway's `/v1/mta-hook/inbound` and
/// tempfails while the gateway is down; otherwise mail from the internet arrives unchecked.
fn inbound_hook(view: &StalwartView, want: &Expectations) -> RuleResult {
    let r = Rule::InboundHook;
    let fix = match view.version {
        Version::V015 => "add [session.hook.\"nta-inbound\"] of `stalwart-nta7516 stalwart render --version 0.15` (section 8) and restart Stalwart",
        Version::V016 => "create the MtaHook marked [inbound] in `stalwart-nta7516 stalwart render --version 0.16` and restart Stalwart",
    };
    let hooks: Vec<&Hook> = view.hooks.iter().filter(|h| is_inbound(h)).collect();
    let Some(h) = hooks.iter().copied().find(|h| !never(&h.enable)) else {
        let detail = match hooks.first() {
            None => format!("no hook calls the gateway's {INBOUND_HOOK_PATH}: mail from the internet arrives unchecked"),
            Some(h) => format!("inbound hook {} never runs: enable = {}", h.id, h.enable.display()),
        };
        return RuleResult::fail(r, detail, fix);
    };
    if !h.stages.iter().any(|s| s == "data") {
        return RuleResult::fail(
            r,
            format!(
                "inbound hook {} runs at {:?}, not at DATA: the gateway sees no message",
                h.id, h.stages
            ),
            "set the inbound hook's stages to data only",
        );
    }
    if !h.tempfail_on_error {
        return RuleResult::fail(
            r,
            format!("inbound hook {}: tempfail-on-error is off: while the gateway is down, Stalwart accepts mail unchecked", h.id),
            "set the inbound hook's tempfail-on-error (v0.15 options.tempfail-on-error, v0.16 tempFailOnError) to true",
        );
    }
    inbound_hook_target(h, hooks.len(), want)
}

/// The inbound hook's URL is this gateway's, and it is the only one.
fn inbound_hook_target(h: &Hook, count: usize, want: &Expectations) -> RuleResult {
    let r = Rule::InboundHook;
    match url_match(&h.url, INBOUND_HOOK_PATH, want) {
        UrlMatch::Gateway if count > 1 => RuleResult::warn(
            r,
            format!("{count} hooks call the gateway's {INBOUND_HOOK_PATH}: every received message is decided twice"),
            "keep one inbound hook",
        ),
        UrlMatch::Gateway => RuleResult::pass(
            r,
            format!(
                "inbound hook {} → {} at DATA (enable = {})",
                h.id,
                h.url,
                h.enable.display()
            ),
        ),
        other => not_the_gateway(r, "inbound hook", &h.url, other, INBOUND_HOOK_PATH, want),
    }
}

/// `[inbound] enabled`: a user's Sieve `redirect` re-sends received mail to any address through no
/// hook (Stalwart queues it as autogenerated), so the limit must be 0. Then the redirect is ignored and
/// the message stays in the INBOX; vacation replies are limited separately and keep working.
fn sieve_redirects(view: &StalwartView) -> RuleResult {
    let r = Rule::SieveRedirects;
    let fix = match view.version {
        Version::V015 => "set sieve.untrusted.limits.redirects = 0 (section 9 of `stalwart-nta7516 stalwart render --version 0.15`) and restart Stalwart",
        Version::V016 => "update SieveUserInterpreter with maxRedirects 0 (the [inbound] line of `stalwart-nta7516 stalwart render --version 0.16`) and restart Stalwart",
    };
    let key = match view.version {
        Version::V015 => "sieve.untrusted.limits.redirects",
        Version::V016 => "SieveUserInterpreter.maxRedirects",
    };
    let bypass = "received mail can be forwarded to any address past every hook";
    match &view.sieve_redirects {
        Some(Limit::Set(0)) => RuleResult::pass(
            r,
            format!("{key} = 0: users' Sieve redirects are ignored (the message stays in the INBOX)"),
        ),
        Some(Limit::Set(n)) => RuleResult::fail(
            r,
            format!("{key} = {n}: users' Sieve scripts may redirect; {bypass}"),
            fix,
        ),
        Some(Limit::Default(n)) => RuleResult::fail(
            r,
            format!("{key} is not set: Stalwart's default is {n}, so users' Sieve scripts may redirect; {bypass}"),
            fix,
        ),
        Some(Limit::Unreadable(v)) => RuleResult::fail(r, format!("{key} = {v:?} is not a number"), fix),
        None => RuleResult::fail(r, format!("{key} was not read"), fix),
    }
}

//! Stalwart v0.16: the NDJSON plan for `stalwart-cli apply` (any CLI from 1.0.8: only `create`,
//! `update` and `destroy`). Object and field encodings are those a real 0.16.18 accepted (the project's
//! shared notes, fixtures/v0.16); citations are paths in stalwartlabs/stalwart at tag v0.16.18, carried in
//! each line's `"//"` field, which the CLI's plan parser ignores.
//!
//! **Safe to apply again.** The CLI runs every `destroy` first, then the other lines in order, and stops
//! at the first failure. So the plan destroys only what it re-creates at once (the inbound limiters and
//! the built-in `invalid-tls` strategy, re-created first), never the hook, the webhook, the gateway's
//! listeners or its strategies. Its first create of a gateway object (the strict strategy) fails with
//! `primaryKeyViolation` on a server that has it, and the CLI stops there with everything in place.
//! Registry writes take effect only at the next reload or restart, so Stalwart never runs with a
//! half-applied plan. The `[inbound]` lines (the second hook, the user-Sieve redirect limit) come
//! last, each marked `[inbound]` in its citation, so a server set up before inbound checks were enabled
//! gets them with `grep -F '[inbound]'` and an apply of just those lines.

use serde_json::{json, Map, Value};

use super::{
    hook_enable, inbound_enable, not_gateway_listener, notify_port_condition,
    service_account_condition, webhook_events, StalwartVersion, LIMITERS,
};
use crate::deployment::side::{
    GatewayListener, InboundSide, StalwartSide, HOOK_TOKEN_ENV, NOTIFY_STRATEGY, STRICT_STRATEGY,
    WEBHOOK_KEY_ENV,
};

const QUEUE: &str = "crates/common/src/config/smtp/queue.rs";
const SESSION: &str = "crates/common/src/config/smtp/session.rs";
const SIEVE: &str = "crates/common/src/config/mailstore/scripts.rs";

pub(super) fn render(side: &StalwartSide) -> String {
    let lines = [
        destroy("MtaInboundThrottle", None, QUEUE),
        destroy(
            "MtaTlsStrategy",
            Some(json!({"name": "invalid-tls"})),
            QUEUE,
        ),
        create("MtaInboundThrottle", throttles(side), QUEUE),
        create("MtaTlsStrategy", neutralised_fallback(), QUEUE),
        create("MtaTlsStrategy", gateway_strategies(), QUEUE),
        create(
            "NetworkListener",
            listeners(side),
            "crates/common/src/config/server/listener.rs",
        ),
        create("MtaHook", hook(side), SESSION),
        create(
            "WebHook",
            webhook(side),
            "crates/common/src/config/telemetry.rs",
        ),
        update("MtaOutboundStrategy", outbound_strategy(side), QUEUE),
        update("MtaStageAuth", must_match_sender(side), SESSION),
        update(
            "SenderAuth",
            dkim_sign(),
            "crates/common/src/config/smtp/auth.rs",
        ),
        create(
            "Domain",
            domains(side),
            "crates/jmap/src/registry/mapping/domain.rs",
        ),
        create(
            "Account",
            account(side),
            "crates/jmap/src/registry/mapping/principal.rs",
        ),
    ];
    let mut out = String::new();
    for line in lines
        .into_iter()
        .chain(side.inbound.iter().flat_map(inbound))
    {
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// The `[inbound]` lines, last, each cited with an `[inbound]` mark: on a server that has the plan's
/// earlier lines already (the CLI stops at the strict strategy's create), apply only these, e.g.
/// `grep -F '[inbound]' plan.ndjson > inbound.ndjson`.
fn inbound(i: &InboundSide) -> [Value; 2] {
    [
        create("MtaHook", inbound_hook(i), &format!("{SESSION} [inbound]")),
        update(
            "SieveUserInterpreter",
            no_redirects(),
            &format!("{SIEVE} [inbound]"),
        ),
    ]
}

fn op(kind: &str, object: &str, source: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("@type".into(), json!(kind));
    m.insert("object".into(), json!(object));
    m.insert("//".into(), json!(format!("parsed by {source}")));
    m
}

fn destroy(object: &str, filter: Option<Value>, source: &str) -> Value {
    let mut m = op("destroy", object, source);
    if let Some(f) = filter {
        m.insert("value".into(), f);
    }
    Value::Object(m)
}

fn create(object: &str, value: Value, source: &str) -> Value {
    let mut m = op("create", object, source);
    m.insert("value".into(), value);
    Value::Object(m)
}

fn update(object: &str, value: Value, source: &str) -> Value {
    let mut m = op("update", object, source);
    m.insert("value".into(), value);
    Value::Object(m)
}

/// An expression: `match` is an object of numbered `{if, then}` pairs.
fn expr(pairs: &[(&str, &str)], otherwise: &str) -> Value {
    let mut m = Map::new();
    for (i, (cond, then)) in pairs.iter().enumerate() {
        m.insert(i.to_string(), json!({"if": cond, "then": then}));
    }
    json!({"match": m, "else": otherwise})
}

fn throttles(side: &StalwartSide) -> Value {
    let mut m = Map::new();
    for (id, description, keys, count, period) in LIMITERS {
        let key: Map<String, Value> = keys.iter().map(|k| (camel(k), Value::Bool(true))).collect();
        m.insert(
            format!("thr-{id}"),
            json!({
                "description": format!("{description} (gateway listeners exempt)"),
                "enable": true,
                "key": key,
                "rate": {"count": count, "period": period},
                "match": expr(&[], &not_gateway_listener(side)),
            }),
        );
    }
    Value::Object(m)
}

/// `remote_ip` → `remoteIp`.
fn camel(key: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in key.chars() {
        match (c, upper) {
            ('_', _) => upper = true,
            (c, true) => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

fn neutralised_fallback() -> Value {
    json!({"tls-invalid": {
        "name": "invalid-tls",
        "description": "Neutralised built-in fallback: invalid certificates NOT allowed",
        "startTls": "require",
        "allowInvalidCerts": false,
    }})
}

fn gateway_strategies() -> Value {
    json!({
        "tls-nta": {
            "name": STRICT_STRATEGY,
            "description": "NTA 7516: STARTTLS required, valid certificate, DANE/MTA-STS enforced when published",
            "startTls": "require",
            "allowInvalidCerts": false,
            "dane": "optional",
            "mtaSts": "optional",
            "tlsTimeout": 180000,
            "mtaStsTimeout": 300000,
        },
        "tls-notify": {
            "name": NOTIFY_STRATEGY,
            "description": "Gateway notifications (no medical content): must reach recipients whose certificates fail",
            "startTls": "optional",
            "allowInvalidCerts": true,
        },
    })
}

fn listener(l: &GatewayListener) -> Value {
    json!({
        "name": l.name,
        "bind": {l.bind.to_string(): true},
        "protocol": "smtp",
        "useTls": true,
        "tlsImplicit": false,
    })
}

fn listeners(side: &StalwartSide) -> Value {
    json!({"l-release": listener(&side.release), "l-notify": listener(&side.notify)})
}

fn hook(side: &StalwartSide) -> Value {
    json!({"hook-nta": hook_body(&side.hook_url, &hook_enable(side))})
}

/// The second hook, for mail from the internet: unauthenticated sessions on the port-25 listener.
fn inbound_hook(i: &InboundSide) -> Value {
    json!({"hook-nta-inbound": hook_body(&i.hook_url, &inbound_enable(i))})
}

/// One `MtaHook`: DATA only, a bearer token from Stalwart's environment, tempfail on every error.
fn hook_body(url: &str, enable: &str) -> Value {
    json!({
        "url": url,
        "enable": expr(&[], enable),
        "stages": {"data": true},
        "timeout": 60000,
        "tempFailOnError": true,
        "allowInvalidCerts": false,
        "maxResponseSize": 52428800,
        "httpAuth": {"@type": "Bearer", "bearerToken": {"@type": "EnvironmentVariable", "variableName": HOOK_TOKEN_ENV}},
        "httpHeaders": {},
    })
}

/// Forwarding: a user's Sieve `redirect` re-sends received mail to any address through no hook. With
/// `maxRedirects: 0` a user's redirect is ignored (silently) and the message stays in the INBOX;
/// vacation replies still work (they count against `maxOutMessages`, left as it is).
fn no_redirects() -> Value {
    json!({"maxRedirects": 0})
}

fn webhook(side: &StalwartSide) -> Value {
    let events: Map<String, Value> = webhook_events(side, StalwartVersion::V016)
        .into_iter()
        .map(|e| (e.to_string(), Value::Bool(true)))
        .collect();
    json!({"wh-audit": {
        "url": side.events_url,
        "enable": true,
        "eventsPolicy": "include",
        "events": events,
        "throttle": 1000,
        "timeout": 30000,
        "discardAfter": 86400000,
        "lossy": false,
        "allowInvalidCerts": false,
        "signatureKey": {"@type": "EnvironmentVariable", "variableName": WEBHOOK_KEY_ENV},
        "httpAuth": {"@type": "Unauthenticated"},
        "httpHeaders": {},
    }})
}

fn outbound_strategy(side: &StalwartSide) -> Value {
    let notify = format!("'{NOTIFY_STRATEGY}'");
    let strict = format!("'{STRICT_STRATEGY}'");
    json!({"tls": expr(&[(&notify_port_condition(side), &notify)], &strict)})
}

fn must_match_sender(side: &StalwartSide) -> Value {
    json!({"mustMatchSender": expr(&[(&service_account_condition(side), "false")], "true")})
}

fn dkim_sign() -> Value {
    json!({"dkimSignDomain": expr(
        &[("is_local_domain(sender_domain) && !is_empty(authenticated_as)", "sender_domain")],
        "false",
    )})
}

/// The local domains; a new `Domain` gets automatic DKIM management by default (Stalwart generates and
/// rotates an ed25519 and an RSA key, `crates/jmap/src/registry/mapping/bootstrap.rs`).
fn domains(side: &StalwartSide) -> Value {
    let mut m = Map::new();
    for (i, d) in side.local_domains.iter().enumerate() {
        m.insert(
            format!("dom-{i}"),
            json!({
                "name": d,
                "description": "Organisation mail domain (DKIM keys managed automatically)",
            }),
        );
    }
    Value::Object(m)
}

/// The service account. `CHANGE-ME` is refused by Stalwart as too weak on purpose: replace it with the
/// password in the gateway's `stalwart.password_file` (or a pre-hashed `$…` secret) before applying.
fn account(side: &StalwartSide) -> Value {
    // `StalwartSide` guarantees the account's domain is a local domain.
    let index = side
        .local_domains
        .iter()
        .position(|d| *d == side.account.domain)
        .unwrap_or_default();
    json!({"svc-nta": {
        "@type": "User",
        "name": side.account.name,
        "domainId": format!("#dom-{index}"),
        "description": "NTA 7516 gateway service account (release and notification submissions)",
        "credentials": {"0": {"@type": "Password", "secret": "CHANGE-ME"}},
    }})
}

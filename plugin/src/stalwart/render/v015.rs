//! Stalwart v0.15: the TOML snippet. Citations are paths in stalwartlabs/stalwart at tag v0.15.5.

use std::fmt::Write;

use super::{
    hook_enable, inbound_enable, not_gateway_listener, notify_port_condition,
    service_account_condition, webhook_events, StalwartVersion, LIMITERS,
};
use crate::deployment::side::{
    GatewayListener, InboundSide, StalwartSide, HOOK_TOKEN_ENV, NOTIFY_STRATEGY, STRICT_STRATEGY,
    WEBHOOK_KEY_ENV,
};

const SESSION: &str = "crates/common/src/config/smtp/session.rs";
const QUEUE: &str = "crates/common/src/config/smtp/queue.rs";

/// A TOML basic string.
fn s(v: &str) -> String {
    toml::Value::String(v.into()).to_string()
}

pub(super) fn render(side: &StalwartSide, source: &str) -> String {
    let mut out = String::new();
    header(&mut out, source);
    hook(&mut out, side);
    service_account(&mut out, side);
    listeners(&mut out, side);
    tls(&mut out, side);
    limiters(&mut out, side);
    webhook(&mut out, side);
    dkim(&mut out, side);
    if let Some(inbound) = &side.inbound {
        inbound_hook(&mut out, inbound);
        sieve_redirects(&mut out);
    }
    out
}

fn header(out: &mut String, source: &str) {
    let _ = write!(
        out,
        "# Stalwart v0.15 (TOML): the Stalwart side of this NTA 7516 gateway.\n\
         # Rendered by `stalwart-nta7516 stalwart render --version 0.15 --config {source}`;\n\
         # render again after changing that file. Merge into Stalwart's config.toml (keys of a table that\n\
         # already exists there go into that table), then restart Stalwart.\n\
         # Stalwart's environment must hold {HOOK_TOKEN_ENV} (the gateway's hook token) and\n\
         # {WEBHOOK_KEY_ENV} (its webhook key); `%{{env:NAME}}%` and `%{{file:PATH}}%` are expanded by\n\
         # crates/utils/src/config/mod.rs. Each key names the Stalwart v0.15.5 file that parses it.\n\
         # Then: create the service account, trust Stalwart's certificate, run `stalwart-nta7516 stalwart\n\
         # check` (README, \"Deploying next to Stalwart\").\n"
    );
}

fn hook(out: &mut String, side: &StalwartSide) {
    out.push_str(
        "\n# 1. The MTA hook at DATA, for authenticated submissions only, never for the gateway's own\n\
         #    listeners. tempfail-on-error: while the gateway is down, clients get 451 4.3.5 (fail closed).\n",
    );
    hook_tables(out, "nta7516", &hook_enable(side), &side.hook_url);
}

/// One `[session.hook."<id>"]` with its options: DATA only, a bearer token from Stalwart's environment,
/// tempfail on every error.
fn hook_tables(out: &mut String, id: &str, enable: &str, url: &str) {
    let _ = write!(
        out,
        "{head:<44}# {SESSION} (hooks)\n\
         enable = {}\n\
         url = {}\n\
         stages = [\"data\"]\n\
         timeout = \"60s\"\n\
         allow-invalid-certs = false\n\
         headers = [{}]\n\
         \n\
         {options:<44}# {SESSION} (hooks)\n\
         tempfail-on-error = true\n\
         max-response-size = 52428800\n",
        s(enable),
        s(url),
        s(&format!("Authorization: Bearer %{{env:{HOOK_TOKEN_ENV}}}%")),
        head = format!("[session.hook.{}]", s(id)),
        options = format!("[session.hook.{}.options]", s(id)),
    );
}

fn service_account(out: &mut String, side: &StalwartSide) {
    let _ = write!(
        out,
        "\n# 2. The gateway's service account submits released messages and notifications as their\n\
         #    original senders: without this exception Stalwart answers every one of them\n\
         #    \"501 5.5.4 You are not allowed to send from this address.\" Create the account\n\
         #    {login} in your directory with the password of the gateway's stalwart.password_file.\n\
         [session.auth]                                # {SESSION} (session.auth.must-match-sender)\n\
         must-match-sender = [ {{ if = {}, then = false }},\n\
         \x20                     {{ else = true }} ]\n",
        s(&service_account_condition(side)),
        login = side.account.login,
    );
}

fn listener(out: &mut String, l: &GatewayListener, what: &str) {
    let note = if l.wildcard {
        "   # every address: the gateway names Stalwart by host name; firewall this port"
    } else {
        ""
    };
    let _ = write!(
        out,
        "\n[server.listener.{}]                # crates/common/src/config/server/listener.rs; {what}\n\
         bind = [{}]{note}\n\
         protocol = \"smtp\"\n",
        s(l.name),
        s(&l.bind.to_string()),
    );
}

fn listeners(out: &mut String, side: &StalwartSide) {
    out.push_str(
        "\n# 3. The listeners the gateway submits to (STARTTLS, then AUTH as the service account). Keep them\n\
         #    off the Internet. Without a [certificate] Stalwart presents a self-signed certificate for\n\
         #    \"localhost\", new at every boot: give it a real one (README, \"Trusting Stalwart's listener certificate\").\n",
    );
    listener(out, &side.release, "released messages");
    listener(out, &side.notify, "notification mails");
}

fn tls(out: &mut String, side: &StalwartSide) {
    let _ = write!(
        out,
        "\n# 4. Outbound TLS. Stalwart's default retries a TLS failure WITH INVALID CERTIFICATES ALLOWED\n\
         #    ('invalid-tls'), and when it cannot download its spam-filter rules it writes its defaults\n\
         #    over this file at every boot (crates/common/src/manager/boot.rs), invalid-tls included. The\n\
         #    expression below never names 'invalid-tls' or 'default', so it stays safe through such boots.\n\
         [queue.strategy]                              # {QUEUE} (queue.strategy.tls)\n\
         tls = [ {{ if = {}, then = {} }},\n\
         \x20       {{ else = {} }} ]\n\
         \n\
         [queue.tls.{strict}]                       # {QUEUE} (TLS strategies); every \"deliver\" decision\n\
         starttls = \"require\"\n\
         allow-invalid-certs = false\n\
         dane = \"optional\"                             # enforced whenever a secure TLSA record exists\n\
         mta-sts = \"optional\"                          # enforced whenever a policy is in enforce mode\n\
         \n\
         [queue.tls.\"invalid-tls\"]                     # {QUEUE}; the built-in fallback, neutralised anyway\n\
         starttls = \"require\"\n\
         allow-invalid-certs = false\n\
         \n\
         [queue.tls.\"default\"]                         # {QUEUE}; never selected above, neutralised anyway\n\
         starttls = \"require\"\n\
         allow-invalid-certs = false\n\
         \n\
         [queue.tls.{notify}]                    # {QUEUE}; notification mails only (no medical content):\n\
         starttls = \"optional\"                         # they must reach portal recipients whose servers\n\
         allow-invalid-certs = true                    # fail the checks\n",
        s(&notify_port_condition(side)),
        s(&format!("'{NOTIFY_STRATEGY}'")),
        s(&format!("'{STRICT_STRATEGY}'")),
        strict = s(STRICT_STRATEGY),
        notify = s(NOTIFY_STRATEGY),
    );
}

fn limiters(out: &mut String, side: &StalwartSide) {
    out.push_str(
        "\n# 5. Stalwart's inbound limiters (5 connections/s per IP, 25 messages/h per sender domain and\n\
         #    recipient) would throttle the gateway's releases, which all come from one address. `match`\n\
         #    exempts the gateway's listeners; it is not among the defaults Stalwart rewrites at boot.\n",
    );
    for (id, _, _, _, _) in LIMITERS {
        let _ = write!(
            out,
            "[queue.limiter.inbound.{id}]                 # crates/common/src/config/smtp/throttle.rs\n\
             match = {}\n",
            s(&not_gateway_listener(side)),
        );
    }
}

fn webhook(out: &mut String, side: &StalwartSide) {
    let events: Vec<String> = webhook_events(side, StalwartVersion::V015)
        .into_iter()
        .map(s)
        .collect();
    let _ = write!(
        out,
        "\n# 6. Delivery evidence for the audit log: exactly the events the gateway records (delivery.*\n\
         #    would add raw SMTP transcripts). The signature key is the gateway's webhook key.\n\
         [webhook.\"nta-audit\"]                         # crates/common/src/config/telemetry.rs (webhooks)\n\
         url = {}\n\
         events = [ {} ]\n\
         signature-key = {}\n\
         throttle = \"1s\"\n\
         timeout = \"30s\"\n\
         discard-after = \"1d\"\n\
         lossy = false\n",
        s(&side.events_url),
        events.join(",\n           "),
        s(&format!("%{{env:{WEBHOOK_KEY_ENV}}}%")),
    );
}

fn dkim(out: &mut String, side: &StalwartSide) {
    let _ = write!(
        out,
        "\n# 7. DKIM: Stalwart signs the organisation's outgoing mail (NTA 7516: integrity). One RSA key per\n\
         #    local domain; make it with `openssl genrsa -out /etc/stalwart/dkim/DOMAIN.rsa.pem 2048` and\n\
         #    publish the public key at {sel}._domainkey.DOMAIN (`stalwart-nta7516 doctor DOMAIN` checks it).\n\
         [auth.dkim]                                   # crates/common/src/config/smtp/auth.rs (auth.dkim.sign)\n\
         sign = [ {{ if = \"is_local_domain('*', sender_domain)\", then = \"['rsa-' + sender_domain]\" }},\n\
         \x20        {{ else = false }} ]\n",
        sel = side.dkim_selector,
    );
    for domain in &side.local_domains {
        let _ = write!(
            out,
            "\n[signature.{}]                    # crates/common/src/config/smtp/auth.rs (signatures)\n\
             algorithm = \"rsa-sha256\"\n\
             domain = {}\n\
             selector = {}\n\
             private-key = {}\n\
             headers = [\"From\", \"To\", \"Cc\", \"Date\", \"Subject\", \"Message-ID\", \"MIME-Version\",\n\
             \x20          \"Content-Type\", \"In-Reply-To\", \"References\"]\n\
             canonicalization = \"relaxed/relaxed\"\n\
             report = true\n",
            s(&format!("rsa-{domain}")),
            s(domain),
            s(&side.dkim_selector),
            s(&format!("%{{file:/etc/stalwart/dkim/{domain}.rsa.pem}}%")),
        );
    }
}

fn inbound_hook(out: &mut String, inbound: &InboundSide) {
    let _ = write!(
        out,
        "\n# 8. Inbound checks ([inbound] enabled): a second hook at DATA for mail from the internet, i.e.\n\
         #    unauthenticated sessions on Stalwart's port-25 listener {listener:?} (rename it here if yours is\n\
         #    called otherwise). The gateway verifies SPF, DKIM and DMARC itself and accepts, quarantines or\n\
         #    rejects. tempfail-on-error: while the gateway is down, sending servers get 451 and retry.\n",
        listener = inbound.listener,
    );
    hook_tables(
        out,
        "nta-inbound",
        &inbound_enable(inbound),
        &inbound.hook_url,
    );
}

fn sieve_redirects(out: &mut String) {
    out.push_str(
        "\n# 9. Forwarding: a user's Sieve `redirect` re-sends received mail to any address, through no hook\n\
         #    at all. With 0 redirects a user's redirect is ignored (silently) and the message stays in\n\
         #    the INBOX; vacation replies still work (they count against outgoing-messages, not this).\n\
         [sieve.untrusted.limits]                      # crates/common/src/config/scripts.rs (sieve.untrusted.limits.redirects)\n\
         redirects = 0\n",
    );
}

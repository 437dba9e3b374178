//! The rules on the real management-API answers of Stalwart v0.15.5 and v0.16.18
//! (`tests/fixtures/v0.15`, `tests/fixtures/v0.16`, READMEs there): the configured ("world",
//! "after-plan") servers pass, the fresh installs fail the rules they break, each with its fix.

use std::{collections::BTreeMap, path::Path};

use super::view::{self, Registry, StalwartView};
use super::*;
use crate::stalwart::{registry, settings};

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The v0.15 answers of one variant (`world` or `default`).
pub(crate) fn v015(variant: &str) -> StalwartView {
    let by_prefix: BTreeMap<String, settings::Settings> = settings::PREFIXES
        .iter()
        .map(|p| {
            let file = format!("v0.15/settings-{}.{variant}.json", p.replace('.', "-"));
            (
                p.to_string(),
                settings::Settings::parse(&fixture(&file)).unwrap(),
            )
        })
        .collect();
    view::from_v015(&by_prefix)
}

/// The fixture stem of a registry object: `MtaTlsStrategy` → `mta-tls-strategy`.
pub(crate) fn stem(object: &str) -> String {
    let mut out = String::new();
    for (i, c) in object.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.replace("web-hook", "webhook")
}

fn list<T: serde::de::DeserializeOwned>(object: &str, variant: &str) -> Vec<T> {
    let body = fixture(&format!("v0.16/{}.{variant}.json", stem(object)));
    registry::parse_list(object, &body).unwrap()
}

/// The v0.16 answers of one variant (`after-plan` or `default`).
pub(crate) fn v016(variant: &str) -> StalwartView {
    let r = Registry {
        tls_strategies: list("MtaTlsStrategy", variant),
        outbound: list("MtaOutboundStrategy", variant).into_iter().next(),
        hooks: list("MtaHook", variant),
        listeners: list("NetworkListener", variant),
        webhooks: list("WebHook", variant),
        resolver: list("DnsResolver", variant).into_iter().next(),
        stage_auth: list("MtaStageAuth", variant).into_iter().next(),
        sender_auth: list("SenderAuth", variant).into_iter().next(),
        domains: list("Domain", variant),
        dkim: list("DkimSignature", variant),
        sieve_user: None,
    };
    view::from_v016(&r)
}

/// The gateway of the fixtures: listens on 127.0.0.1:8470 (the v0.16 plan's hook URL), service
/// account `svc-nta@zorg.test`, local domain `zorg.test`.
fn gateway() -> Expectations {
    Expectations::from_config(Some(&crate::deployment::fixture_gateway()))
}

fn outcomes(view: &StalwartView) -> BTreeMap<Rule, (Outcome, String, Option<String>)> {
    check(view, &gateway())
        .into_iter()
        .map(|r| (r.rule, (r.outcome, r.detail, r.fix)))
        .collect()
}

fn assert_outcome(view: &StalwartView, rule: Rule, want: Outcome, needle: &str) {
    let all = outcomes(view);
    let (o, detail, fix) = &all[&rule];
    assert_eq!(*o, want, "{rule:?}: {detail}");
    assert!(
        detail.contains(needle),
        "{rule:?}: {detail:?} lacks {needle:?}"
    );
    assert_eq!(fix.is_some(), want != Outcome::Pass, "{rule:?}: {fix:?}");
}

#[test]
fn every_rule_is_reported_once_in_order() {
    let rules: Vec<Rule> = check(&v016("default"), &gateway())
        .iter()
        .map(|r| r.rule)
        .collect();
    assert_eq!(rules, Rule::ALL);
}

#[test]
fn v016_after_plan_passes() {
    let v = v016("after-plan");
    for (rule, (o, detail, _)) in outcomes(&v) {
        assert_ne!(o, Outcome::Fail, "{rule:?}: {detail}");
    }
    assert_outcome(
        &v,
        Rule::HookUrl,
        Outcome::Pass,
        "http://127.0.0.1:8470/v1/mta-hook",
    );
    assert_outcome(&v, Rule::TlsStrict, Outcome::Pass, "nta7516");
    assert_outcome(&v, Rule::TlsFallback, Outcome::Pass, "never chosen");
    assert_outcome(
        &v,
        Rule::NotifyStrategy,
        Outcome::Pass,
        "received_via_port == 10026",
    );
    assert_outcome(
        &v,
        Rule::SenderException,
        Outcome::Pass,
        "svc-nta@zorg.test",
    );
    assert_outcome(&v, Rule::Dkim, Outcome::Pass, "v1-ed25519-20261201");
    assert_outcome(&v, Rule::HookExcludesGateway, Outcome::Pass, "nta-notify");
    // The plan's 26 events hold the required evidence; the audit would record a few more.
    assert_outcome(&v, Rule::Webhook, Outcome::Warn, "delivery.mx-lookup");
    // The plan leaves the system resolver: a warning (DANE may be off), not a failure.
    assert_outcome(
        &v,
        Rule::ResolverDnssec,
        Outcome::Warn,
        "DANE has been disabled",
    );
    let report = Report::new("http://127.0.0.1:28080", &v, &gateway());
    assert_eq!(report.exit_code(), 0);
    assert!(report.unsafe_rules().is_empty());
}

#[test]
fn v016_fresh_install_fails_with_fixes() {
    let v = v016("default");
    assert_outcome(&v, Rule::HookPresent, Outcome::Fail, "no MTA hook");
    assert_outcome(
        &v,
        Rule::TlsStrict,
        Outcome::Fail,
        "invalid-tls (starttls optional, invalid certificates allowed)",
    );
    assert_outcome(
        &v,
        Rule::TlsFallback,
        Outcome::Fail,
        "names invalid-tls, default",
    );
    assert_outcome(
        &v,
        Rule::NotifyStrategy,
        Outcome::Fail,
        "no nta-notify listener",
    );
    assert_outcome(&v, Rule::SenderException, Outcome::Fail, "501 5.5.4");
    assert_outcome(&v, Rule::ResolverDnssec, Outcome::Warn, "system");
    assert_outcome(
        &v,
        Rule::Dkim,
        Outcome::Warn,
        "no DKIM signing key for zorg.test",
    );
    assert_outcome(&v, Rule::Webhook, Outcome::Fail, "no webhook");
    let report = Report::new("http://127.0.0.1:28080", &v, &gateway());
    assert_eq!(report.exit_code(), 1);
    assert!(report.unsafe_rules().contains(&Rule::TlsFallback));
    let text = report.render_text();
    assert!(text.contains("✗ tls_fallback"), "{text}");
    assert!(
        text.contains("fix: name only the gateway's own strategies"),
        "{text}"
    );
    assert!(text.contains("UNSAFE:"), "{text}");
}

#[test]
fn v015_world_passes() {
    let v = v015("world");
    for (rule, (o, detail, _)) in outcomes(&v) {
        assert_ne!(o, Outcome::Fail, "{rule:?}: {detail}");
    }
    // The URL comes from %{env:GATEWAY_URL}%: the API never expands it.
    assert_outcome(&v, Rule::HookUrl, Outcome::Warn, "%{env:GATEWAY_URL}%");
    assert_outcome(&v, Rule::TlsStrict, Outcome::Pass, "nta7516");
    assert_outcome(&v, Rule::TlsFallback, Outcome::Pass, "never chosen");
    assert_outcome(&v, Rule::NotifyStrategy, Outcome::Pass, "'opportunistic'");
    assert_outcome(
        &v,
        Rule::SenderException,
        Outcome::Pass,
        "svc-nta@zorg.test",
    );
    assert_outcome(
        &v,
        Rule::ResolverDnssec,
        Outcome::Pass,
        "udp://127.0.0.1:5354",
    );
    // `delivery.*`, `dane.*`, `mta-sts.*` cover every recorded event but queue.rescheduled.
    assert_outcome(&v, Rule::Webhook, Outcome::Warn, "queue.rescheduled");
    // The world configures no DKIM key.
    assert_outcome(&v, Rule::Dkim, Outcome::Warn, "zorg.test");
}

#[test]
fn v015_defaults_fail_with_fixes() {
    let v = v015("default");
    assert_outcome(&v, Rule::TlsStrict, Outcome::Fail, "compiled-in default");
    assert_outcome(&v, Rule::TlsFallback, Outcome::Fail, "DEFAULT_SETTINGS");
    assert_outcome(
        &v,
        Rule::SenderException,
        Outcome::Fail,
        "must-match-sender = else true (compiled-in default)",
    );
    assert_outcome(&v, Rule::ResolverDnssec, Outcome::Warn, "system");
    assert_outcome(&v, Rule::HookPresent, Outcome::Fail, "no MTA hook");
    assert_outcome(&v, Rule::Webhook, Outcome::Fail, "no webhook");
    let r = Report::new("http://127.0.0.1:18088", &v, &gateway());
    let unsafe_rules = r.unsafe_rules();
    for rule in [Rule::HookPresent, Rule::TlsStrict, Rule::TlsFallback] {
        assert!(unsafe_rules.contains(&rule), "{unsafe_rules:?}");
    }
    // Function rules fail the command but are not "unsafe".
    assert!(!unsafe_rules.contains(&Rule::SenderException));
}

#[test]
fn v015_naming_a_neutralised_invalid_tls_still_fails() {
    // v0.15 re-applies allow-invalid-certs = true at boot: naming it is never safe.
    let mut v = v015("world");
    v.tls_expression.otherwise = Some("'invalid-tls'".into());
    assert_outcome(&v, Rule::TlsFallback, Outcome::Fail, "DEFAULT_SETTINGS");
    // v0.16 keeps what was written: a neutralised invalid-tls may be named.
    let mut v = v016("after-plan");
    v.tls_expression.otherwise = Some("'invalid-tls'".into());
    assert_outcome(&v, Rule::TlsFallback, Outcome::Pass, "neutralised");
    assert_outcome(&v, Rule::TlsStrict, Outcome::Pass, "invalid-tls");
}

#[test]
fn the_notify_strategy_beyond_nta_notify_fails() {
    let mut v = v016("after-plan");
    v.tls_expression.otherwise = Some("'nta-notify'".into());
    assert_outcome(
        &v,
        Rule::NotifyStrategy,
        Outcome::Fail,
        "else → 'nta-notify'",
    );
    assert_outcome(
        &v,
        Rule::TlsStrict,
        Outcome::Fail,
        "invalid certificates allowed",
    );
    // A port other than nta-notify's is not the notification branch.
    let mut v = v016("after-plan");
    v.tls_expression.branches[0].0 = "received_via_port == 10025".into();
    assert_outcome(&v, Rule::NotifyStrategy, Outcome::Fail, "10025");
    // An unknown strategy name falls back to the opportunistic built-in.
    let mut v = v016("after-plan");
    v.tls_expression.otherwise = Some("'strict'".into());
    assert_outcome(
        &v,
        Rule::TlsStrict,
        Outcome::Fail,
        "'strict' does not exist",
    );
}

#[test]
fn hook_rules_name_what_is_wrong() {
    let mut v = v016("after-plan");
    let h = &mut v.hooks[0];
    h.url = "http://10.0.0.9:8470/v1/mta-hook".into();
    h.tempfail_on_error = false;
    h.stages = vec!["rcpt".into()];
    h.enable.otherwise = Some("!is_empty(authenticated_as)".into());
    assert_outcome(&v, Rule::HookUrl, Outcome::Fail, "10.0.0.9");
    assert_outcome(
        &v,
        Rule::HookTempfail,
        Outcome::Fail,
        "tempfail-on-error is off",
    );
    assert_outcome(&v, Rule::HookStage, Outcome::Fail, "not at DATA");
    assert_outcome(
        &v,
        Rule::HookExcludesGateway,
        Outcome::Fail,
        "own submissions",
    );
    v.hooks[0].enable.otherwise = Some("false".into());
    assert_outcome(&v, Rule::HookPresent, Outcome::Fail, "never runs");
}

#[test]
fn webhook_events_and_json() {
    let mut v = v016("after-plan");
    v.webhooks[0].events.retain(|e| e != "delivery.start-tls");
    assert_outcome(
        &v,
        Rule::Webhook,
        Outcome::Fail,
        "does not send delivery.start-tls",
    );
    // exclude with an empty list sends everything.
    v.webhooks[0].events.clear();
    v.webhooks[0].exclude = true;
    assert_outcome(&v, Rule::Webhook, Outcome::Pass, "delivery evidence");
    let json: serde_json::Value =
        serde_json::from_str(&Report::new("u", &v, &gateway()).to_json()).unwrap();
    assert_eq!(json["version"], "0.16");
    assert_eq!(json["results"][0]["rule"], "hook_present");
    assert_eq!(json["results"][0]["outcome"], "pass");
    assert_eq!(json["results"][5]["severity"], "safety");
}

#[test]
fn a_gateway_listening_everywhere_accepts_any_host_on_its_port() {
    let mut want = gateway();
    want.any_host_port = Some(8470);
    let mut v = v016("after-plan");
    v.hooks[0].url = "http://nta-gateway:8470/v1/mta-hook".into();
    let url = |v: &StalwartView, w: &Expectations| {
        check(v, w)
            .into_iter()
            .find(|r| r.rule == Rule::HookUrl)
            .unwrap()
    };
    assert_eq!(url(&v, &want).outcome, Outcome::Pass);
    assert_eq!(url(&v, &gateway()).outcome, Outcome::Fail);
    v.hooks[0].url = "http://nta-gateway:9999/v1/mta-hook".into();
    assert_eq!(url(&v, &want).outcome, Outcome::Fail);
}

#[test]
fn without_a_config_the_defaults_are_compared() {
    let v = v016("after-plan");
    let r = check(&v, &Expectations::from_config(None));
    let url = r.iter().find(|r| r.rule == Rule::HookUrl).unwrap();
    assert_eq!(url.outcome, Outcome::Pass, "{}", url.detail);
    let sender = r.iter().find(|r| r.rule == Rule::SenderException).unwrap();
    assert!(
        sender.detail.contains("account not compared"),
        "{}",
        sender.detail
    );
}

#[test]
fn serve_keys_are_checked_when_loading() {
    let base = "[stalwart]\nrelease = \"a:1\"\nnotify = \"a:2\"\nusername = \"u\"\npassword = \"p\"\nnotify_from = \"n@zorg.test\"\n";
    let parse = |extra: &str| {
        crate::config::Config::parse(
            &format!("{base}{extra}"),
            Path::new("t.toml"),
            std::iter::empty(),
        )
    };
    let c = parse("management_url = \"http://127.0.0.1:8080\"\nmanagement_token_file = \"t\"\n")
        .unwrap();
    let s = c.stalwart.unwrap();
    assert_eq!(s.on_unsafe, crate::config::OnUnsafe::Hold);
    assert_eq!(s.check_interval_secs, 300);
    let e = parse("management_url = \"http://127.0.0.1:8080\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("management_user + management_password_file"),
        "{e}"
    );
    let e = parse("on_unsafe = \"ignore\"\n").unwrap_err().to_string();
    assert!(e.contains("line 7"), "{e}");
    let e = parse("management_url = \"ftp://x\"\nmanagement_token_file = \"t\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("http:// or https://"), "{e}");
}

/// A Stalwart 0.16 registry as `stalwart-cli apply` 1.0.8 changes it, for the rendered plan: it starts
/// as a fresh install (the `default` fixtures), runs every `destroy` first (by filter, or all objects
/// of the type), then the other lines in order, and stops at the first failure. A create whose `name`
/// exists answers `primaryKeyViolation` (types with a unique name, as the real server did).
struct Applied {
    objects: BTreeMap<&'static str, Vec<serde_json::Value>>,
    next_id: u32,
}

const REGISTRY_TYPES: &[&str] = &[
    "MtaTlsStrategy",
    "MtaOutboundStrategy",
    "MtaHook",
    "NetworkListener",
    "WebHook",
    "DnsResolver",
    "MtaStageAuth",
    "SenderAuth",
    "Domain",
    "DkimSignature",
    "MtaInboundThrottle",
    "Account",
];

impl Applied {
    fn fresh_install() -> Applied {
        let objects = REGISTRY_TYPES
            .iter()
            .map(|t| (*t, list::<serde_json::Value>(t, "default")))
            .collect();
        Applied {
            objects,
            next_id: 0,
        }
    }

    fn apply(&mut self, plan: &str) -> Result<(), String> {
        let ops: Vec<serde_json::Value> = plan
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for op in ops.iter().rev().filter(|o| o["@type"] == "destroy") {
            let filter = op
                .get("value")
                .and_then(|v| v.as_object())
                .cloned()
                .unwrap_or_default();
            self.of(op)
                .retain(|o| !filter.iter().all(|(k, v)| o.get(k) == Some(v)));
        }
        for op in ops.iter().filter(|o| o["@type"] != "destroy") {
            let value = op["value"].as_object().unwrap().clone();
            if op["@type"] == "update" {
                let singleton = self.of(op).first_mut().expect("a singleton");
                for (k, v) in value {
                    singleton[k] = v;
                }
                continue;
            }
            for (_, mut body) in value {
                let unique = ["MtaTlsStrategy", "NetworkListener", "Domain", "Account"];
                let object = op["object"].as_str().unwrap();
                let taken = self
                    .of(op)
                    .iter()
                    .any(|o| o.get("name").is_some() && o["name"] == body["name"]);
                if unique.contains(&object) && taken {
                    return Err(format!(
                        "{object}: primaryKeyViolation on name {}",
                        body["name"]
                    ));
                }
                self.next_id += 1;
                body["id"] = serde_json::json!(format!("plan{}", self.next_id));
                self.of(op).push(body);
            }
        }
        Ok(())
    }

    fn of(&mut self, op: &serde_json::Value) -> &mut Vec<serde_json::Value> {
        let t = op["object"].as_str().unwrap();
        self.objects
            .get_mut(t)
            .unwrap_or_else(|| panic!("unknown type {t}"))
    }

    fn parsed<T: serde::de::DeserializeOwned>(&self, object: &str) -> Vec<T> {
        let body = serde_json::json!({"methodResponses": [[format!("x:{object}/get"),
            {"accountId": "d333333", "list": self.objects[object], "notFound": []}, "c0"]]});
        registry::parse_list(object, &serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn view(&self) -> StalwartView {
        view::from_v016(&Registry {
            tls_strategies: self.parsed("MtaTlsStrategy"),
            outbound: self.parsed("MtaOutboundStrategy").into_iter().next(),
            hooks: self.parsed("MtaHook"),
            listeners: self.parsed("NetworkListener"),
            webhooks: self.parsed("WebHook"),
            resolver: self.parsed("DnsResolver").into_iter().next(),
            stage_auth: self.parsed("MtaStageAuth").into_iter().next(),
            sender_auth: self.parsed("SenderAuth").into_iter().next(),
            domains: self.parsed("Domain"),
            dkim: self.parsed("DkimSignature"),
            sieve_user: self
                .objects
                .contains_key("SieveUserInterpreter")
                .then(|| self.parsed("SieveUserInterpreter").into_iter().next())
                .map(Option::unwrap_or_default),
        })
    }
}

/// The plan `stalwart render` writes for the fixtures' gateway.
fn rendered_plan() -> String {
    let c = crate::deployment::fixture_gateway();
    let side = crate::deployment::side::StalwartSide::from_config(&c).unwrap();
    crate::stalwart::render::render(
        &side,
        crate::stalwart::render::StalwartVersion::V016,
        "world.toml",
    )
}

fn failed(view: &StalwartView) -> Vec<String> {
    check(view, &gateway())
        .into_iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| format!("{:?}: {}", r.rule, r.detail))
        .collect()
}

/// The rendered plan, applied to a fresh 0.16.18, leaves a Stalwart the checker finds safe; applied a
/// second time, the CLI stops at the strict strategy's create and nothing the gateway needs is gone
/// (before: a destroy-then-create plan left no hook and no gateway listeners).
#[test]
fn rendered_v016_plan_passes_the_check_and_is_safe_to_apply_again() {
    let plan = rendered_plan();
    let mut stalwart = Applied::fresh_install();
    assert!(
        !failed(&stalwart.view()).is_empty(),
        "a fresh install fails"
    );
    stalwart.apply(&plan).unwrap();
    assert_eq!(
        failed(&stalwart.view()),
        Vec::<String>::new(),
        "after the first apply"
    );
    let second = stalwart.apply(&plan).unwrap_err();
    assert!(
        second.contains("MtaTlsStrategy: primaryKeyViolation")
            && (second.contains("nta7516") || second.contains("nta-notify")),
        "the gateway's strategies stop the second run: {second}"
    );
    assert_eq!(
        failed(&stalwart.view()),
        Vec::<String>::new(),
        "after the second apply"
    );
    assert_eq!(stalwart.objects["MtaHook"].len(), 1, "one hook");
    assert_eq!(stalwart.objects["WebHook"].len(), 1, "one webhook");
    let names = |t: &str| -> Vec<String> {
        stalwart.objects[t]
            .iter()
            .map(|o| o["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let listeners = names("NetworkListener");
    assert!(listeners.contains(&"nta-release".into()) && listeners.contains(&"nta-notify".into()));
    let strategies = names("MtaTlsStrategy");
    for s in ["nta7516", "nta-notify", "invalid-tls"] {
        assert_eq!(
            strategies.iter().filter(|n| *n == s).count(),
            1,
            "{s}: {strategies:?}"
        );
    }
    assert_eq!(
        stalwart.objects["MtaInboundThrottle"].len(),
        2,
        "the limiters are back, exempting the gateway"
    );
}

/// The simulation shows what the real 0.16.18 did with a destroy-then-create plan (the project's
/// notes: fixtures/v0.16 `shipped-plan/*.after-failed-second-run`): applied twice, its destroy pass
/// ran, its Domain create failed, and Stalwart was left without hook and gateway listeners.
#[test]
fn a_destroy_then_create_plan_applied_twice_leaves_no_hook() {
    let plan = String::from_utf8(fixture(
        "v0.16/plan.destroy-then-create.applied-on-0.16.18.ndjson",
    ))
    .unwrap();
    let mut stalwart = Applied::fresh_install();
    stalwart.apply(&plan).unwrap();
    assert_eq!(failed(&stalwart.view()), Vec::<String>::new());
    let second = stalwart.apply(&plan).unwrap_err();
    assert!(second.contains("Domain: primaryKeyViolation"), "{second}");
    assert!(stalwart.objects["MtaHook"].is_empty());
    let failing = failed(&stalwart.view());
    assert!(
        failing.iter().any(|f| f.starts_with("HookPresent")),
        "{failing:?}"
    );
}

mod inbound;

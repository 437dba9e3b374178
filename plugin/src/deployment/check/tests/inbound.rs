//! The inbound rules (`[inbound] enabled`): the `nta-inbound` hook and the user-Sieve redirect limit,
//! on v0.15 settings and v0.16 registry objects. No real Stalwart answer for `sieve.untrusted` or
//! `SieveUserInterpreter` was captured: the v0.15 inputs are the rendered snippet flattened the way the
//! settings API flattens (`fixtures/v0.15/README.md`), the v0.16 ones the object shape of Stalwart's
//! schema (`crates/registry/src/schema/structs.rs` at v0.16.18, `SieveUserInterpreter`).

use std::collections::BTreeMap;

use super::*;
use crate::stalwart::render::{render, StalwartVersion};

fn inbound_gateway() -> Expectations {
    let mut c = crate::deployment::fixture_gateway();
    c.inbound.enabled = true;
    Expectations::from_config(Some(&c))
}

fn side() -> crate::deployment::side::StalwartSide {
    let mut c = crate::deployment::fixture_gateway();
    c.inbound.enabled = true;
    crate::deployment::side::StalwartSide::from_config(&c).unwrap()
}

fn result(view: &StalwartView, rule: Rule) -> RuleResult {
    check(view, &inbound_gateway())
        .into_iter()
        .find(|r| r.rule == rule)
        .unwrap_or_else(|| panic!("{rule:?} not reported"))
}

fn assert_rule(view: &StalwartView, rule: Rule, want: Outcome, needle: &str) {
    let r = result(view, rule);
    assert_eq!(r.outcome, want, "{rule:?}: {}", r.detail);
    assert!(
        r.detail.contains(needle),
        "{rule:?}: {:?} lacks {needle:?}",
        r.detail
    );
    assert_eq!(
        r.fix.is_some(),
        want != Outcome::Pass,
        "{rule:?}: {:?}",
        r.fix
    );
}

#[test]
fn inbound_rules_come_after_the_others_only_when_enabled() {
    let v = v016("after-plan");
    let off: Vec<Rule> = check(&v, &gateway()).iter().map(|r| r.rule).collect();
    assert_eq!(off, Rule::ALL);
    let on: Vec<Rule> = check(&v, &inbound_gateway())
        .iter()
        .map(|r| r.rule)
        .collect();
    let want: Vec<Rule> = Rule::ALL.into_iter().chain(Rule::INBOUND).collect();
    assert_eq!(on, want);
    assert_eq!(Rule::InboundHook.as_str(), "inbound_hook");
    assert_eq!(Rule::SieveRedirects.severity(), Severity::Safety);
}

// v0.16

/// The fresh install with a `SieveUserInterpreter` singleton at its schema defaults.
fn fresh_v016() -> Applied {
    let mut s = Applied::fresh_install();
    s.objects.insert(
        "SieveUserInterpreter",
        vec![
            serde_json::json!({"id": "singleton", "maxRedirects": 1, "maxOutMessages": 3,
            "disableCapabilities": {}}),
        ],
    );
    s
}

#[test]
fn v016_without_the_inbound_plan_fails_both_rules() {
    let mut v = v016("after-plan");
    v.sieve_redirects = Some(view::Limit::Default(1));
    assert_rule(
        &v,
        Rule::InboundHook,
        Outcome::Fail,
        "no hook calls the gateway's /v1/mta-hook/inbound",
    );
    assert_rule(
        &v,
        Rule::SieveRedirects,
        Outcome::Fail,
        "Stalwart's default is 1",
    );
    let report = Report::new("http://127.0.0.1:28080", &v, &inbound_gateway());
    assert!(report.unsafe_rules().contains(&Rule::SieveRedirects));
    assert!(!report.unsafe_rules().contains(&Rule::InboundHook));
    let text = report.render_text();
    assert!(text.contains("✗ sieve_redirects"), "{text}");
    assert!(text.contains("maxRedirects 0"), "{text}");
    // Stored, not defaulted.
    let mut s = fresh_v016();
    assert_rule(
        &s.view(),
        Rule::SieveRedirects,
        Outcome::Fail,
        "maxRedirects = 1",
    );
    s.objects.get_mut("SieveUserInterpreter").unwrap()[0]["maxRedirects"] = 5.into();
    assert_rule(
        &s.view(),
        Rule::SieveRedirects,
        Outcome::Fail,
        "maxRedirects = 5",
    );
}

/// The rendered plan with `[inbound]`, applied to a fresh install, passes every rule, the inbound ones
/// included, and the second hook is not counted as a second gateway hook.
#[test]
fn v016_rendered_inbound_plan_passes() {
    let plan = render(&side(), StalwartVersion::V016, "world.toml");
    let mut s = fresh_v016();
    assert_rule(&s.view(), Rule::InboundHook, Outcome::Fail, "no hook");
    s.apply(&plan).unwrap();
    let v = s.view();
    let failing: Vec<String> = check(&v, &inbound_gateway())
        .into_iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| format!("{:?}: {}", r.rule, r.detail))
        .collect();
    assert_eq!(failing, Vec::<String>::new());
    assert_eq!(s.objects["MtaHook"].len(), 2);
    // The inbound lines applied again on their own (a hook has no unique name): a warning.
    let mut twice = Applied {
        objects: s.objects.clone(),
        next_id: 100,
    };
    let inbound_lines: String = plan
        .lines()
        .filter(|l| l.contains("[inbound]"))
        .map(|l| format!("{l}\n"))
        .collect();
    twice.apply(&inbound_lines).unwrap();
    assert_rule(
        &twice.view(),
        Rule::InboundHook,
        Outcome::Warn,
        "2 hooks call",
    );
    assert_rule(&v, Rule::HookPresent, Outcome::Pass, "/v1/mta-hook");
    assert_rule(
        &v,
        Rule::HookUrl,
        Outcome::Pass,
        "http://127.0.0.1:8470/v1/mta-hook",
    );
    assert_rule(
        &v,
        Rule::InboundHook,
        Outcome::Pass,
        "http://127.0.0.1:8470/v1/mta-hook/inbound",
    );
    assert_rule(&v, Rule::SieveRedirects, Outcome::Pass, "maxRedirects = 0");
    // What Stalwart stores is the plan's update on its singleton.
    assert_eq!(s.objects["SieveUserInterpreter"][0]["maxRedirects"], 0);
    assert_eq!(s.objects["SieveUserInterpreter"][0]["maxOutMessages"], 3);
}

/// The research notes' full update (redirects, out-messages, capabilities), parsed as an answer.
#[test]
fn v016_sieve_user_interpreter_answer_parses() {
    let body = serde_json::json!({"methodResponses": [["x:SieveUserInterpreter/get", {"accountId": "d333333",
        "list": [{"id": "singleton", "maxRedirects": 0, "maxOutMessages": 0,
            "disableCapabilities": {"vacation": true, "vacation-seconds": true, "enotify": true}}],
        "notFound": []}, "c0"]]});
    let list: Vec<crate::stalwart::registry::SieveUserInterpreter> =
        crate::stalwart::registry::parse_list(
            "SieveUserInterpreter",
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
    assert_eq!(list[0].max_redirects, Some(0));
    let absent: crate::stalwart::registry::SieveUserInterpreter =
        serde_json::from_str(r#"{"id":"singleton"}"#).unwrap();
    assert_eq!(absent.max_redirects, None);
}

fn inbound(s: &mut Applied) -> &mut serde_json::Value {
    s.objects
        .get_mut("MtaHook")
        .unwrap()
        .iter_mut()
        .find(|h| h["url"].as_str().unwrap().ends_with("/inbound"))
        .unwrap()
}

#[test]
fn v016_inbound_hook_faults_are_named() {
    let plan = render(&side(), StalwartVersion::V016, "world.toml");
    let mut s = fresh_v016();
    s.apply(&plan).unwrap();
    inbound(&mut s)["stages"] = serde_json::json!({"rcpt": true});
    assert_rule(&s.view(), Rule::InboundHook, Outcome::Fail, "not at DATA");
    inbound(&mut s)["stages"] = serde_json::json!({"data": true});
    inbound(&mut s)["tempFailOnError"] = false.into();
    assert_rule(
        &s.view(),
        Rule::InboundHook,
        Outcome::Fail,
        "accepts mail unchecked",
    );
    inbound(&mut s)["tempFailOnError"] = true.into();
    inbound(&mut s)["url"] = "http://elsewhere:8470/v1/mta-hook/inbound".into();
    assert_rule(
        &s.view(),
        Rule::InboundHook,
        Outcome::Fail,
        "not this gateway",
    );
    inbound(&mut s)["url"] = "http://127.0.0.1:8470/v1/mta-hook/inbound".into();
    inbound(&mut s)["enable"] = serde_json::json!({"match": {}, "else": "false"});
    assert_rule(&s.view(), Rule::InboundHook, Outcome::Fail, "never runs");
}

// v0.15

/// The settings API's answers for a Stalwart whose config is the world's plus `toml` (a rendered
/// snippet): every key flattened (`a.b`, lists `a.0000`), every value a string, grouped by prefix.
fn v015_with(toml_text: &str) -> StalwartView {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    let mut flat = BTreeMap::new();
    flatten("", &toml::Value::Table(table), &mut flat);
    let mut by_prefix: BTreeMap<String, settings::Settings> = settings::PREFIXES
        .iter()
        .map(|p| {
            let file = format!("v0.15/settings-{}.world.json", p.replace('.', "-"));
            (
                p.to_string(),
                settings::Settings::parse(&fixture(&file)).unwrap(),
            )
        })
        .collect();
    for p in ["session.hook", "sieve.untrusted"] {
        let dotted = format!("{p}.");
        let mut items: BTreeMap<String, String> = flat
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&dotted)?.to_string(), v.clone())))
            .collect();
        if p == "session.hook" {
            // The world's own hook stays.
            let world: serde_json::Value =
                serde_json::from_slice(&fixture("v0.15/settings-session-hook.world.json")).unwrap();
            for (k, v) in world["data"]["items"].as_object().unwrap() {
                items.insert(k.clone(), v.as_str().unwrap().into());
            }
        }
        let body = serde_json::json!({"data": {"total": items.len(), "items": items}});
        by_prefix.insert(
            p.into(),
            settings::Settings::parse(&serde_json::to_vec(&body).unwrap()).unwrap(),
        );
    }
    view::from_v015(&by_prefix)
}

fn flatten(key: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match v {
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&join(&format!("{i:04}")), v, out)),
        toml::Value::String(s) => {
            out.insert(key.into(), s.clone());
        }
        other => {
            out.insert(key.into(), other.to_string());
        }
    }
}

/// Only the inbound sections of the rendered v0.15 snippet.
fn rendered_inbound_v015() -> String {
    let text = render(&side(), StalwartVersion::V015, "world.toml");
    let start = text.find("\n# 8. Inbound").expect("the inbound section");
    text[start..].to_string()
}

#[test]
fn v015_rendered_inbound_sections_pass() {
    let v = v015_with(&rendered_inbound_v015());
    assert_eq!(v.sieve_redirects, Some(view::Limit::Set(0)));
    assert_rule(
        &v,
        Rule::InboundHook,
        Outcome::Pass,
        "nta-inbound → http://127.0.0.1:8470/v1/mta-hook/inbound",
    );
    assert_rule(
        &v,
        Rule::SieveRedirects,
        Outcome::Pass,
        "sieve.untrusted.limits.redirects = 0",
    );
    // The world's hook is still the gateway hook, and the only one counted.
    assert_rule(&v, Rule::HookPresent, Outcome::Pass, "hook nta7516");
    assert_rule(&v, Rule::HookStage, Outcome::Pass, "DATA");
}

#[test]
fn v015_redirects_allowed_or_hook_missing_fail() {
    // The world has neither: the key absent means Stalwart's compiled-in 1.
    let v = v015_with("");
    assert_eq!(v.sieve_redirects, Some(view::Limit::Default(1)));
    assert_rule(
        &v,
        Rule::SieveRedirects,
        Outcome::Fail,
        "not set: Stalwart's default is 1",
    );
    assert_rule(
        &v,
        Rule::InboundHook,
        Outcome::Fail,
        "mail from the internet arrives unchecked",
    );
    let r = result(&v, Rule::SieveRedirects);
    assert!(r
        .fix
        .unwrap()
        .contains("sieve.untrusted.limits.redirects = 0"));
    let v = v015_with("[sieve.untrusted.limits]\nredirects = 3\n");
    assert_rule(&v, Rule::SieveRedirects, Outcome::Fail, "redirects = 3");
    let v = v015_with("[sieve.untrusted.limits]\nredirects = \"many\"\n");
    assert_rule(&v, Rule::SieveRedirects, Outcome::Fail, "not a number");
    // A hook at the inbound path that never runs, or not at DATA.
    let text = rendered_inbound_v015().replace(
        "enable = \"is_empty(authenticated_as) && listener == 'smtp'\"",
        "enable = false",
    );
    assert_rule(
        &v015_with(&text),
        Rule::InboundHook,
        Outcome::Fail,
        "never runs",
    );
    let text = rendered_inbound_v015().replace("stages = [\"data\"]", "stages = [\"rcpt\"]");
    assert_rule(
        &v015_with(&text),
        Rule::InboundHook,
        Outcome::Fail,
        "not at DATA",
    );
}

/// Without `[inbound]` nothing more is read: the view has no Sieve limit, and no inbound rule runs.
#[test]
fn v015_without_inbound_reads_no_sieve_prefix() {
    let v = v015("world");
    assert_eq!(v.sieve_redirects, None);
    assert!(check(&v, &gateway())
        .iter()
        .all(|r| !Rule::INBOUND.contains(&r.rule)));
}

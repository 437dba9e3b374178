use super::*;
use crate::config::Config;

fn example() -> StalwartSide {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = Config::parse(&text, &path, std::iter::empty()).unwrap();
    StalwartSide::from_config(&config).unwrap()
}

#[test]
fn v015_snippet_is_toml_with_the_gateway_values() {
    let side = example();
    let text = render(&side, StalwartVersion::V015, "gateway.toml");
    let v: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let hook = &v["session"]["hook"]["nta7516"];
    assert_eq!(hook["url"].as_str(), Some(side.hook_url.as_str()));
    assert_eq!(hook["options"]["tempfail-on-error"].as_bool(), Some(true));
    let mms = v["session"]["auth"]["must-match-sender"]
        .as_array()
        .unwrap();
    assert!(mms[0]["if"].as_str().unwrap().contains(&side.account.login));
    let tls = v["queue"]["strategy"]["tls"].to_string();
    assert!(
        !tls.contains("invalid-tls") && !tls.contains("'default'"),
        "{tls}"
    );
    for name in ["nta7516", "invalid-tls", "default"] {
        let s = &v["queue"]["tls"][name];
        assert_eq!(s["allow-invalid-certs"].as_bool(), Some(false), "{name}");
        assert_eq!(s["starttls"].as_str(), Some("require"), "{name}");
    }
    let events = v["webhook"]["nta-audit"]["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        webhook_events(&side, StalwartVersion::V015).len()
    );
    assert!(!events
        .iter()
        .any(|e| e.as_str() == Some("dane.bogus-dnssec-record")));
    for d in &side.local_domains {
        assert_eq!(
            v["signature"][format!("rsa-{d}")]["domain"].as_str(),
            Some(d.as_str())
        );
    }
}

#[test]
fn every_v015_table_names_the_stalwart_file_that_parses_it() {
    let text = render(&example(), StalwartVersion::V015, "gateway.toml");
    for line in text.lines().filter(|l| l.starts_with('[')) {
        assert!(line.contains("# crates/"), "no citation: {line}");
    }
}

#[test]
fn v016_plan_is_ndjson_with_a_citation_per_line() {
    let text = render(&example(), StalwartVersion::V016, "gateway.toml");
    let ops: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for op in &ops {
        assert!(["create", "update", "destroy"].contains(&op["@type"].as_str().unwrap()));
        assert!(
            op["//"].as_str().unwrap().starts_with("parsed by crates/"),
            "{op}"
        );
    }
}

/// The re-apply rule: destroys touch only what the plan re-creates before its first create of a
/// gateway object, and never a gateway object.
#[test]
fn v016_plan_is_safe_to_apply_again() {
    let text = render(&example(), StalwartVersion::V016, "gateway.toml");
    let ops: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kind = |op: &serde_json::Value| op["@type"].as_str().unwrap().to_string();
    let object = |op: &serde_json::Value| op["object"].as_str().unwrap().to_string();
    let sentinel = ops
        .iter()
        .position(|op| op["value"]["tls-nta"].is_object())
        .expect("the strict strategy is created");
    for op in ops.iter().filter(|op| kind(op) == "destroy") {
        assert!(
            ["MtaInboundThrottle", "MtaTlsStrategy"].contains(&object(op).as_str()),
            "{op}"
        );
        if object(op) == "MtaTlsStrategy" {
            assert_eq!(
                op["value"]["name"], "invalid-tls",
                "only the built-in fallback"
            );
        }
        let recreated = ops[..sentinel]
            .iter()
            .any(|c| kind(c) == "create" && object(c) == object(op));
        assert!(
            recreated,
            "{op} is re-created before the first gateway object"
        );
    }
    for (i, op) in ops.iter().enumerate() {
        let gateway = ["NetworkListener", "MtaHook", "WebHook", "Domain", "Account"];
        if kind(op) == "create" && gateway.contains(&object(op).as_str()) {
            assert!(i > sentinel, "{op} must come after the sentinel create");
        }
    }
}

/// `config/stalwart/*` are this renderer's output for `config/gateway.example.toml`.
#[test]
fn shipped_stalwart_files_are_the_rendered_example() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/stalwart");
    for version in [StalwartVersion::V015, StalwartVersion::V016] {
        let want = render(&example(), version, "config/gateway.example.toml");
        let path = dir.join(version.file_name());
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is not the rendered example; run `stalwart-nta7516 stalwart render --version {} --config \
             config/gateway.example.toml > {}`",
            path.display(),
            match version {
                StalwartVersion::V015 => "0.15",
                StalwartVersion::V016 => "0.16",
            },
            path.display()
        );
    }
}

/// The configuration behind the v0.16 fixtures (the project's `tests/fixtures/v0.16/`: a real 0.16.18
/// after a plan for `zorg.test` with the service account `svc-nta@zorg.test`).
fn fixture_world() -> StalwartSide {
    StalwartSide::from_config(&crate::deployment::fixture_gateway()).unwrap()
}

fn fixture_objects(stem: &str) -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/v0.16")
        .join(format!("{stem}.after-plan.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["methodResponses"][0][1]["list"]
        .as_array()
        .unwrap()
        .clone()
}

/// Every field the plan sets is what a real 0.16.18 stored for it: the same encoding. (The webhook's
/// event list is left out: the gateway now subscribes to the events its audit records, each checked
/// against the v0.16.18 event names; the fixture holds an older list.)
#[test]
fn v016_plan_bodies_are_what_a_real_stalwart_stored() {
    let text = render(&fixture_world(), StalwartVersion::V016, "world.toml");
    let stems = [
        ("MtaTlsStrategy", "mta-tls-strategy"),
        ("NetworkListener", "network-listener"),
        ("MtaHook", "mta-hook"),
        ("WebHook", "webhook"),
        ("MtaInboundThrottle", "mta-inbound-throttle"),
        ("MtaOutboundStrategy", "mta-outbound-strategy"),
        ("MtaStageAuth", "mta-stage-auth"),
        ("SenderAuth", "sender-auth"),
        ("Domain", "domain"),
        ("Account", "account"),
    ];
    let mut compared = 0;
    for line in text.lines() {
        let op: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(value) = op.get("value").and_then(|v| v.as_object()) else {
            continue;
        };
        if op["@type"] == "destroy" {
            continue;
        }
        let object = op["object"].as_str().unwrap();
        let stem = stems.iter().find(|(o, _)| *o == object).unwrap().1;
        let stored = fixture_objects(stem);
        let bodies: Vec<&serde_json::Value> = if op["@type"] == "update" {
            vec![op.get("value").unwrap()]
        } else {
            value.values().collect()
        };
        for body in bodies {
            let found = stored
                .iter()
                .find(|s| same_fields(body, s))
                .unwrap_or_else(|| panic!("{object}: no stored object matches {body}"));
            assert!(found.is_object());
            compared += 1;
        }
    }
    assert!(compared >= 12, "{compared} bodies compared");
}

fn same_fields(body: &serde_json::Value, stored: &serde_json::Value) -> bool {
    body.as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| match k.as_str() {
            "events" | "credentials" => true,
            "domainId" => stored.get(k).is_some(),
            _ => stored.get(k) == Some(v),
        })
}

/// The example with `[inbound] enabled = true`.
fn example_inbound() -> StalwartSide {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config = Config::parse(&text, &path, std::iter::empty()).unwrap();
    config.inbound.enabled = true;
    StalwartSide::from_config(&config).unwrap()
}

/// Inbound on adds sections after the others and changes none of them.
#[test]
fn inbound_only_appends() {
    for version in [StalwartVersion::V015, StalwartVersion::V016] {
        let off = render(&example(), version, "gateway.toml");
        let on = render(&example_inbound(), version, "gateway.toml");
        assert!(!off.contains("nta-inbound") && !off.contains("redirects"));
        let added = on
            .strip_prefix(&off)
            .expect("the disabled output comes first");
        assert!(added.contains("nta-inbound"), "{added}");
    }
}

#[test]
fn v015_inbound_hook_and_redirect_limit() {
    let side = example_inbound();
    let text = render(&side, StalwartVersion::V015, "gateway.toml");
    let v: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let hooks = v["session"]["hook"].as_table().unwrap();
    let (gateway, inbound) = (&hooks["nta7516"], &hooks["nta-inbound"]);
    assert_eq!(
        inbound["enable"].as_str(),
        Some("is_empty(authenticated_as) && listener == 'smtp'")
    );
    assert_eq!(
        inbound["url"].as_str(),
        Some(side.inbound.as_ref().unwrap().hook_url.as_str())
    );
    assert!(inbound["url"]
        .as_str()
        .unwrap()
        .ends_with("/v1/mta-hook/inbound"));
    assert_eq!(inbound["stages"].as_array().unwrap().len(), 1);
    assert_eq!(inbound["stages"][0].as_str(), Some("data"));
    assert_eq!(inbound["timeout"].as_str(), Some("60s"));
    assert_eq!(inbound["allow-invalid-certs"].as_bool(), Some(false));
    assert_eq!(
        inbound["headers"][0].as_str(),
        Some("Authorization: Bearer %{env:NTA_HOOK_TOKEN}%")
    );
    assert_eq!(
        inbound["options"]["tempfail-on-error"].as_bool(),
        Some(true)
    );
    assert_eq!(
        inbound["options"]["max-response-size"].as_integer(),
        Some(52_428_800)
    );
    // Every other key exactly as the gateway hook has it.
    let keys = |t: &toml::Value| t.as_table().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(inbound), keys(gateway));
    for k in [
        "stages",
        "timeout",
        "allow-invalid-certs",
        "headers",
        "options",
    ] {
        assert_eq!(inbound[k], gateway[k], "{k}");
    }
    assert_eq!(
        v["sieve"]["untrusted"]["limits"]["redirects"].as_integer(),
        Some(0)
    );
    for line in text.lines().filter(|l| l.starts_with('[')) {
        assert!(line.contains("# crates/"), "no citation: {line}");
    }
}

#[test]
fn v016_inbound_hook_and_redirect_limit() {
    let side = example_inbound();
    let text = render(&side, StalwartVersion::V016, "gateway.toml");
    let ops: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |key: &str| {
        ops.iter()
            .position(|op| op["value"].get(key).is_some())
            .unwrap_or_else(|| panic!("no {key}"))
    };
    let (gw, inb) = (find("hook-nta"), find("hook-nta-inbound"));
    assert_eq!(ops[inb]["@type"], "create");
    assert_eq!(ops[inb]["object"], "MtaHook");
    let inbound = ops[inb]["value"].as_object().unwrap();
    assert_eq!(inbound.len(), 1, "one hook per line: {inbound:?}");
    let (gateway, inbound) = (&ops[gw]["value"]["hook-nta"], &inbound["hook-nta-inbound"]);
    assert_eq!(
        inbound["url"].as_str(),
        Some(side.inbound.as_ref().unwrap().hook_url.as_str())
    );
    assert_eq!(
        inbound["enable"],
        serde_json::json!({"match": {}, "else": "is_empty(authenticated_as) && listener == 'smtp'"})
    );
    assert_eq!(inbound["stages"], serde_json::json!({"data": true}));
    assert_eq!(inbound["tempFailOnError"], true);
    assert_eq!(inbound["maxResponseSize"], 52_428_800);
    for (k, v) in gateway.as_object().unwrap() {
        if k != "url" && k != "enable" {
            assert_eq!(&inbound[k], v, "{k}");
        }
    }
    assert_eq!(
        inbound.as_object().unwrap().len(),
        gateway.as_object().unwrap().len()
    );
    let sieve = ops
        .iter()
        .find(|op| op["object"] == "SieveUserInterpreter")
        .unwrap();
    assert_eq!(sieve["@type"], "update");
    assert_eq!(sieve["value"], serde_json::json!({"maxRedirects": 0}));
    // Both after the sentinel (gateway objects), and extractable for a server that has the rest.
    let sentinel = find("tls-nta");
    assert!(inb > sentinel);
    let marked: Vec<&serde_json::Value> = ops
        .iter()
        .filter(|op| op["//"].as_str().unwrap().contains("[inbound]"))
        .collect();
    assert_eq!(marked.len(), 2);
    assert!(marked.contains(&sieve) && marked.contains(&&ops[inb]));
    for op in &ops {
        assert!(op["//"].as_str().unwrap().starts_with("parsed by crates/"));
    }
}

/// The inbound hook has the fields and encodings a real 0.16.18 stored for the gateway's hook.
#[test]
fn v016_inbound_hook_body_matches_a_stored_hook() {
    let text = render(&example_inbound(), StalwartVersion::V016, "gateway.toml");
    let op: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|op| op["value"].get("hook-nta-inbound").is_some())
        .unwrap();
    let stored = &fixture_objects("mta-hook")[0];
    let body = &op["value"]["hook-nta-inbound"];
    for (k, v) in body.as_object().unwrap() {
        match k.as_str() {
            "url" | "enable" => assert!(stored.get(k).is_some(), "{k}"),
            _ => assert_eq!(stored.get(k), Some(v), "{k}"),
        }
    }
}

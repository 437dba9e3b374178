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

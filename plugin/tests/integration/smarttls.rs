//! The gateway with the real SmartTLS: recipient domains served by real STARTTLS servers (rcgen
//! certificates) and a real DNSSEC-signed DNS server, all on loopback (the smarttls crate's testkit).

use std::sync::Arc;

use crate::util::{hook_request, Backend, Builder};
use nta7516_smarttls::testkit::World;
use stalwart_nta7516::policy::smarttls::SmartTlsVerdicts;

/// One recipient on a secure domain, one on an insecure one (self-signed certificate, no DANE):
/// the first is delivered, the second goes to the portal, decided by real probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_domain_goes_to_portal_secure_one_is_delivered() {
    let (_world, prober, secure, insecure) = World::secure_and_insecure().await;
    let gw = Builder::new(Backend::Sqlite)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n[policy]\ndefault = \"exempt\"\n[hook]\ntls_budget_ms = 8000\n")
        .tls(Arc::new(SmartTlsVerdicts(prober.clone())))
        .start()
        .await;
    let good = format!("bob@{secure}");
    let bad = format!("carol@{insecure}");
    let req = hook_request(
        "alice@zorg.test",
        &[&good, &bad],
        &[("Subject", "uitslag")],
        "tekst\r\n",
    );
    let v = gw.hook(&req).await.json();
    assert_eq!(v["action"], "accept", "{v}");
    let mods = v["modifications"].as_array().unwrap();
    assert_eq!(
        mods[0],
        serde_json::json!({"type": "deleteRecipient", "value": bad})
    );
    assert_eq!(mods[1]["name"], "X-NTA7516-Id");
    let id = mods[1]["value"].as_str().unwrap();
    let decisions = gw.gw.store.decisions(id).await.unwrap();
    let by = |r: &str| decisions.iter().find(|d| d.0 == r).unwrap().clone();
    assert_eq!(by(&good).1, "deliver");
    assert_eq!(by(&bad).1, "portal");
    assert!(by(&bad).2.contains("cert_self_signed"), "{}", by(&bad).2);
    assert!(by(&good).2.contains("tls_secure"));
    // Both domains were probed once, and the cache answers the next message without a new probe.
    let probes = prober.probes_started();
    gw.hook(&hook_request(
        "alice@zorg.test",
        &[&good],
        &[("Subject", "2")],
        "x\r\n",
    ))
    .await;
    assert_eq!(prober.probes_started(), probes);
}

/// `stalwart-nta7516 probe` against the same kind of world: readable report, `--json`, exit codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_command_reports_and_exits_by_verdict() {
    let mut world = World::new().await;
    world.legacy_probe = false;
    let good = world
        .mx_server("mx-good", nta7516_smarttls::testkit::LeafKind::Good)
        .await;
    let bad = world
        .mx_server("mx-bad", nta7516_smarttls::testkit::LeafKind::SelfSigned)
        .await;
    let secure = world.domain("secure", &[(10, &good)]);
    let insecure = world.domain("insecure", &[(10, &bad)]);
    let cfg = world.start_dns().await;
    let args = |domain: &str, json: bool| {
        let mut a = vec![
            "probe".to_string(),
            domain.to_string(),
            "--resolver".into(),
            cfg.resolver.unwrap().to_string(),
            "--trust-anchor".into(),
            cfg.trust_anchor_file
                .as_ref()
                .unwrap()
                .display()
                .to_string(),
            "--ca-file".into(),
            cfg.ca_file.as_ref().unwrap().display().to_string(),
            "--smtp-port".into(),
            cfg.smtp_port.to_string(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let bin = env!("CARGO_BIN_EXE_stalwart-nta7516");

    let out = tokio::process::Command::new(bin)
        .args(args(&insecure, true))
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "insecure");
    assert_eq!(report["reasons"][0]["code"], "cert_self_signed");
    assert_eq!(report["mx"][0]["host"], bad.as_str());

    let out = tokio::process::Command::new(bin)
        .args(args(&secure, false))
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&good) && text.contains("TLSv1.3"), "{text}");
    assert!(text.to_lowercase().contains("secure"), "{text}");

    // A bad resolver address is a usage error (exit 2) with a clear message.
    let out = tokio::process::Command::new(bin)
        .args(["probe", &secure, "--resolver", "not-an-address"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-address"));
}

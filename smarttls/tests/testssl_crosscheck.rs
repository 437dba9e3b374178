//! Cross-check of the probe's protocol findings against testssl.sh (`testssl -t smtp -p`) on the
//! same real servers: offered / not offered for TLS 1.0, 1.1, 1.2 and 1.3 must agree.

use std::net::SocketAddr;
use std::process::Stdio;

use nta7516_smarttls::legacy::Support;
use nta7516_smarttls::testkit::{LeafKind, SmtpServerOpts, World};

fn testssl_available() -> bool {
    std::process::Command::new("testssl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs testssl on `addr` and returns offered-ness of (TLS1, TLS1_1, TLS1_2, TLS1_3).
async fn testssl_protocols(addr: SocketAddr, dir: &std::path::Path) -> [bool; 4] {
    let json = dir.join(format!("testssl-{}-{}.json", addr.ip(), addr.port()));
    let _ = std::fs::remove_file(&json);
    let out = tokio::process::Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--nodns",
            "none",
            "-t",
            "smtp",
            "-p",
            "--jsonfile",
        ])
        .arg(&json)
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run testssl");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "testssl wrote no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let v: serde_json::Value = serde_json::from_str(&text).expect("testssl JSON");
    let offered = |id: &str| -> bool {
        let f = v
            .as_array()
            .expect("array")
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("testssl gave no {id} finding: {text}"));
        let finding = f["finding"].as_str().unwrap_or("");
        finding.starts_with("offered")
    };
    [
        offered("TLS1"),
        offered("TLS1_1"),
        offered("TLS1_2"),
        offered("TLS1_3"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_findings_match_testssl() {
    if !testssl_available() {
        eprintln!("\n\n!!!!!!!! SKIPPED protocol_findings_match_testssl: `testssl` (Debian package testssl.sh) is not installed; CI installs it via .ci/setup.d/smarttls.sh !!!!!!!!\n\n");
        return;
    }
    let mut w = World::new().await;
    let mut targets: Vec<(String, String)> = Vec::new(); // (label, domain)
    let both = w.mx_server("both", LeafKind::Good).await;
    targets.push((
        "rustls TLS 1.2+1.3".into(),
        w.domain("both-d", &[(10, &both)]),
    ));
    let h = w.name("only12");
    let mut o = SmtpServerOpts::tls(w.pki.leaf(&[&h], LeafKind::Good), &h);
    o.tls13 = false;
    let only12 = w.mx_server_with("only12", o).await;
    targets.push((
        "rustls TLS 1.2 only".into(),
        w.domain("only12-d", &[(10, &only12)]),
    ));
    let h = w.name("only13");
    let mut o = SmtpServerOpts::tls(w.pki.leaf(&[&h], LeafKind::Good), &h);
    o.tls12 = false;
    let only13 = w.mx_server_with("only13", o).await;
    targets.push((
        "rustls TLS 1.3 only".into(),
        w.domain("only13-d", &[(10, &only13)]),
    ));
    match w.mx_legacy_tls10("legacy").await {
        Some(l) => targets.push(("OpenSSL TLS 1.0 only".into(), w.domain("legacy-d", &[(10, &l)]))),
        None => eprintln!("\n!!!!!!!! python3 missing: the TLS 1.0 target of the testssl cross-check is SKIPPED !!!!!!!!\n"),
    }
    if let Some(l) = w.mx_legacy_tls11("legacy11").await {
        targets.push((
            "OpenSSL TLS 1.1 only".into(),
            w.domain("legacy11-d", &[(10, &l)]),
        ));
    }
    let st = w.start().await;
    let dir = w.dir.clone();

    let mut jobs = Vec::new();
    for (label, d) in &targets {
        let r = st.probe_uncached(d).await;
        let mx = &r.mx[0].probe;
        let addr = SocketAddr::new(mx.connected.expect("connected"), mx.port);
        let p = &mx.protocols;
        let ours = [&p.tls1_0, &p.tls1_1, &p.tls1_2, &p.tls1_3].map(|s| match s {
            Support::Offered => Some(true),
            Support::NotOffered => Some(false),
            Support::Unknown => None,
        });
        let dir = dir.clone();
        jobs.push((
            label.clone(),
            ours,
            tokio::spawn(async move { testssl_protocols(addr, &dir).await }),
        ));
    }
    let mut mismatches = Vec::new();
    for (label, ours, job) in jobs {
        let theirs = job.await.unwrap();
        eprintln!(
            "{label:<22} probe {:?}  testssl {:?}   (TLS1.0, 1.1, 1.2, 1.3)",
            ours, theirs
        );
        if ours != theirs.map(Some) {
            mismatches.push(label);
        }
    }
    assert!(
        mismatches.is_empty(),
        "probe and testssl disagree on: {mismatches:?}"
    );
}

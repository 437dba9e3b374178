//! `policy check`, `policy test`, `serve` with a policy that does not compile, and SIGHUP reload.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_stalwart-nta7516");

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/policies")
        .join(name)
}

/// `policy test POLICY --eml EML --from FROM` with the rest of the arguments (`--to`, `--fact`).
fn policy_test(policy: &Path, eml: &Path, from: &str, rest: &[&str]) -> (i32, String, String) {
    let (policy, eml) = (policy.to_str().unwrap(), eml.to_str().unwrap());
    let args = ["policy", "test", policy, "--eml", eml, "--from", from];
    run(&[&args[..], rest].concat())
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BROKEN: &str =
    "require [\"vnd.stalwart.expressions\", \"vnd.nta7516\"];\n\nif has_bsn { keep; }\n";

#[test]
fn policy_check_accepts_the_examples_and_refuses_with_line_and_column() {
    for name in ["hospital.sieve", "gp-practice.sieve", "lab.sieve"] {
        let file = example(name);
        let (code, out, err) = run(&["policy", "check", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains(": ok"), "{out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sieve");
    std::fs::write(&bad, BROKEN).unwrap();
    let (code, out, err) = run(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("{}:3:4: unknown test \"has_bsn\"", bad.display())),
        "{err}"
    );
    let (code, _, err) = run(&[
        "policy",
        "check",
        dir.path().join("missing.sieve").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read the policy"), "{err}");
}

#[test]
fn policy_test_prints_the_decision_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    std::fs::write(
        &eml,
        "From: arts@ziekenhuis.nl\r\nSubject: Uitslag\r\n\r\nBSN 123456782\r\n",
    )
    .unwrap();
    let hospital = example("hospital.sieve");
    let (code, out, err) = policy_test(
        &hospital,
        &eml,
        "arts@ziekenhuis.nl",
        &[
            "--to",
            "huisarts@gmail.com",
            "--to",
            "lab@regiolab.nl",
            "--fact",
            "tls=secure",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "huisarts@gmail.com: require_2fa\n  require_2fa: external recipient: hospital default\n\
         lab@regiolab.nl: exempt\n  exempt: contracted partner domain\n"
    );
    // Facts change the answer: insecure TLS means portal.
    let (code, out, _) = policy_test(
        &hospital,
        &eml,
        "a@b.nl",
        &["--to", "x@gmail.com", "--fact", "tls=insecure"],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("x@gmail.com: portal\n"), "{out}");
    // A bad fact is a usage error.
    let (code, _, err) = policy_test(
        &hospital,
        &eml,
        "a@b.nl",
        &["--to", "x@gmail.com", "--fact", "peer=maybe"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("expected yes or no"), "{err}");
}

/// `policy check` accepts `nta_portal_attachments`; `policy test` shows its effect: at least 2FA
/// (an exemption does not lift it) and the attachments by secure link, with the reason.
#[test]
fn policy_check_and_test_know_portal_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("att.sieve");
    std::fs::write(
        &policy,
        "require [\"vnd.stalwart.expressions\", \"vnd.nta7516\"];\n\
         eval \"nta_exempt('partner')\";\n\
         if eval \"nta_has_tag('[att]')\" { eval \"nta_portal_attachments('attachments on the portal')\"; }\n",
    )
    .unwrap();
    let (code, out, err) = run(&["policy", "check", policy.to_str().unwrap()]);
    assert_eq!((code, out.ends_with(": ok\n")), (0, true), "{out}{err}");
    let eml = dir.path().join("m.eml");
    let test = |subject: &str| {
        std::fs::write(
            &eml,
            format!("From: a@b.nl\r\nSubject: {subject}\r\n\r\nhi\r\n"),
        )
        .unwrap();
        let (code, out, err) = policy_test(&policy, &eml, "a@b.nl", &["--to", "x@partner.nl"]);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(
        test("Uitslag [att]"),
        "x@partner.nl: require_2fa\n  exempt: partner\n  \
         attachments by secure link: attachments on the portal\n"
    );
    assert_eq!(test("Uitslag"), "x@partner.nl: exempt\n  exempt: partner\n");
}

#[test]
fn serve_refuses_a_policy_that_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sieve");
    std::fs::write(&bad, BROKEN).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NTA7516__SERVER__LISTEN", "127.0.0.1:0")
        .env("NTA7516__POLICY__FILE", &bad)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("error: {}:3:4: unknown test", bad.display())),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn sighup_reloads_and_a_broken_policy_keeps_the_previous() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.sieve");
    std::fs::copy(example("hospital.sieve"), &file).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NTA7516__SERVER__LISTEN", "127.0.0.1:0")
        .env("NTA7516__POLICY__FILE", &file)
        .env("RUST_LOG", "info,sqlx=warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| -> String {
        let mut seen = String::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return seen;
            }
        }
        panic!("{needle:?} not logged; log so far:\n{seen}");
    };
    wait_for("Sieve policy loaded");
    let listening = wait_for("listening on");
    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    std::fs::write(&file, BROKEN).unwrap();
    hup();
    let log = wait_for("policy refused");
    assert!(log.contains("3:4: unknown test"), "{log}");
    assert!(log.contains("previous policy stays active"), "{log}");
    std::fs::copy(example("lab.sieve"), &file).unwrap();
    hup();
    wait_for("policy reloaded");

    // The same through the admin API from the CLI: `policy reload --url … --token …`.
    let base = listening
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("listen address")
        .trim_end_matches('"')
        .to_string();
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let reload = |token: &str| {
        Command::new(BIN)
            .args(["policy", "reload", "--url", &base, "--token", token.trim()])
            .env_remove("NTA7516_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    std::fs::write(&file, BROKEN).unwrap();
    let out = reload(&token);
    assert!(!out.status.success(), "a broken policy is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3:4: unknown test"), "{err}");
    std::fs::copy(example("hospital.sieve"), &file).unwrap();
    let out = reload(&token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = reload("wrong-token");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A policy that decides only mail sent (so the inbound action is the gateway's own rules).
const OUTBOUND_ONLY: &str =
    "require [\"environment\", \"vnd.stalwart.expressions\", \"vnd.nta7516\"];\n\
    if environment :is \"vnd.nta7516.direction\" \"outbound\" {\n\
    \x20   eval \"nta_require_2fa('sent mail: 2FA')\";\n}\n";

/// `policy test --inbound` against a signed zone of the smarttls testkit: `relay.<zone>` and
/// `sender.<zone>` publish SPF passing 127.0.0.1, `sender.<zone>` publishes DMARC `p=reject`. A
/// message From `sender.<zone>` with the MAIL FROM of `relay.<zone>` (SPF passes, not aligned, no DKIM)
/// fails DMARC: reject. The same message with an aligned MAIL FROM passes: accept. The EHLO name is
/// `relay.<zone>` (SPF passes for it too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_test_inbound_verifies_and_decides() {
    let mut w = nta7516_smarttls::testkit::World::new().await;
    let sender = w.name("sender");
    let relay = w.name("relay");
    w.zone.txt(&sender, "v=spf1 ip4:127.0.0.1 -all");
    w.zone.txt(&relay, "v=spf1 ip4:127.0.0.1 -all");
    // `psd=n` ends DMARC's tree walk (RFC 9989) at this record: the testkit's server refuses
    // `_dmarc.test` (not one of its zones), which would make the result a temperror.
    w.zone
        .txt(&format!("_dmarc.{sender}"), "v=DMARC1; p=reject; psd=n");
    let cfg = w.start_dns().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[organisation]\nlocal_domains = [\"zorg.test\"]\n[inbound]\nenabled = true\n\
             [smarttls]\nresolver = \"{}\"\ntrust_anchor_file = {:?}\n",
            cfg.resolver.unwrap(),
            cfg.trust_anchor_file
                .as_ref()
                .unwrap()
                .display()
                .to_string(),
        ),
    )
    .unwrap();
    let policy = dir.path().join("p.sieve");
    std::fs::write(&policy, OUTBOUND_ONLY).unwrap();
    let eml = dir.path().join("m.eml");
    std::fs::write(
        &eml,
        format!(
            "From: a@{sender}\r\nTo: b@zorg.test\r\nSubject: hello\r\nMessage-ID: <1@{sender}>\r\n\
             Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\nhello\r\n"
        ),
    )
    .unwrap();
    let args = |mail_from: &str| -> Vec<String> {
        [
            "policy",
            "test",
            policy.to_str().unwrap(),
            "--eml",
            eml.to_str().unwrap(),
            "--inbound",
            "--config",
            config.to_str().unwrap(),
            "--client-ip",
            "127.0.0.1",
            "--helo",
            &relay,
            "--mail-from",
            mail_from,
            "--to",
            "b@zorg.test",
            "--tls-version",
            "TLSv1.3",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |a: Vec<String>| async move {
        let out = tokio::process::Command::new(BIN)
            .args(a)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    };

    let (code, out, err) = run(args(&format!("bounce@{relay}"))).await;
    assert_eq!(code, 0, "{err}");
    for line in [
        "  spf (mail from): pass\n",
        "  spf (helo): pass\n",
        "  dkim: none (no signature)\n",
        &format!("  dmarc: fail (domain {sender}, p=reject)"),
        "  tls: TLSv1.3\n",
        &format!("  from domain: {sender} (NTA 7516 peer: no)\n"),
        "  vnd.nta7516.direction = inbound\n",
        "  vnd.nta7516.spf = pass\n",
        "  vnd.nta7516.dmarc = fail\n",
        "  vnd.nta7516.tls_version = TLSv1.3\n",
        "  b@zorg.test: none\n",
        "\naction: reject\n",
        "  dmarc_fail_reject (reject): ",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }

    let (code, out, err) = run(args(&format!("a@{sender}"))).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("  dmarc: pass (domain {sender}, p=reject)")),
        "{out}"
    );
    assert!(out.contains("\naction: accept\n"), "{out}");
}

#[test]
fn policy_test_inbound_argument_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    std::fs::write(&eml, "From: a@b.nl\r\n\r\nx\r\n").unwrap();
    let policy = example("hospital.sieve");
    let base = [
        "policy",
        "test",
        policy.to_str().unwrap(),
        "--eml",
        eml.to_str().unwrap(),
        "--from",
        "a@b.nl",
        "--to",
        "c@d.nl",
    ];
    let with = |extra: &[&str]| -> (i32, String) {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        let (code, _, err) = run(&a);
        (code, err)
    };
    let (code, err) = with(&["--inbound", "--config", "g.toml", "--helo", "h"]);
    assert_eq!(code, 2);
    assert!(err.contains("--client-ip"), "{err}");
    let (code, err) = with(&["--client-ip", "127.0.0.1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--inbound"), "{err}");
    let all = [
        "--inbound",
        "--config",
        "g.toml",
        "--helo",
        "h",
        "--client-ip",
    ];
    let (code, err) = with(&[&all[..], &["300.1.1.1"]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("300.1.1.1"), "{err}");
    let (code, err) = with(&[&all[..], &["127.0.0.1", "--tls-version", "TLSv9"]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("\"TLSv9\" is not a TLS version"), "{err}");
    let (code, err) = with(&[&all[..], &["127.0.0.1", "--fact", "tls=secure"]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("--fact"), "{err}");
    // A configuration that cannot be read is named.
    let missing = dir.path().join("missing.toml");
    let (code, err) = with(&[
        "--inbound",
        "--config",
        missing.to_str().unwrap(),
        "--helo",
        "h",
        "--client-ip",
        "127.0.0.1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.toml"), "{err}");
}

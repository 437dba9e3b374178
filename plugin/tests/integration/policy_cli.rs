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
    let (code, out, err) = run(&[
        "policy",
        "test",
        hospital.to_str().unwrap(),
        "--eml",
        eml.to_str().unwrap(),
        "--from",
        "arts@ziekenhuis.nl",
        "--to",
        "huisarts@gmail.com",
        "--to",
        "lab@regiolab.nl",
        "--fact",
        "tls=secure",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "huisarts@gmail.com: require_2fa\n  require_2fa: external recipient: hospital default\n\
         lab@regiolab.nl: exempt\n  exempt: contracted partner domain\n"
    );
    // Facts change the answer: insecure TLS means portal.
    let (code, out, _) = run(&[
        "policy",
        "test",
        hospital.to_str().unwrap(),
        "--eml",
        eml.to_str().unwrap(),
        "--from",
        "a@b.nl",
        "--to",
        "x@gmail.com",
        "--fact",
        "tls=insecure",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("x@gmail.com: portal\n"), "{out}");
    // A bad fact is a usage error.
    let (code, _, err) = run(&[
        "policy",
        "test",
        hospital.to_str().unwrap(),
        "--eml",
        eml.to_str().unwrap(),
        "--from",
        "a@b.nl",
        "--to",
        "x@gmail.com",
        "--fact",
        "peer=maybe",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("expected yes or no"), "{err}");
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

//! The admin API as its OpenAPI document says, checked by schemathesis (PyPI, pinned and installed into
//! `.ci/venv` by `.ci/setup.d/schema.sh`) against a real gateway over SQLite and PostgreSQL: every
//! operation, every check (`--checks all`), every phase (examples, coverage, fuzzing, and the stateful
//! phase that follows the document's links from a create to its read and delete), with held messages
//! in the database so the held-message operations have real ids. Schemathesis must exit 0: no server
//! error, no answer outside the document, no schema-valid request refused, no schema-violating request
//! accepted.
//!
//! One check is widened, for two operations, in `admin_schema.toml` (beside this file), with the
//! reason: a well-formed exemption that expires in the past and an `all_or_nothing` import with bad
//! rows are refused with 422, which JSON Schema cannot describe as invalid input.
//!
//! `NTA7516_SCHEMATHESIS_EXAMPLES` (default 25 per operation), `NTA7516_SCHEMATHESIS_STATEFUL_SECS`
//! (default 40) and `NTA7516_SCHEMATHESIS_SEED` (default fixed, so CI starts from the same cases each
//! run) make a bigger or a different run.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use hyper::Method;
use stalwart_nta7516::policy::TlsStatus;

use crate::util::{hook_request, which, Backend, Builder, TestGateway, TlsTable, ADMIN_TOKEN};

/// schemathesis from the project's virtualenv or PATH. Missing: a failure under CI, a loud skip locally.
fn schemathesis() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/venv/bin/schemathesis");
    if venv.exists() {
        return Some(venv);
    }
    if let Some(p) = which("schemathesis") {
        return Some(p);
    }
    if std::env::var("CI").is_ok() {
        panic!("CI is set but schemathesis is missing: run .ci/setup.d/schema.sh");
    }
    eprintln!("SKIPPED: schemathesis not found (run bash .ci/setup.d/schema.sh)");
    None
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?}: not a number"))
        })
        .unwrap_or(default)
}

/// Messages held for two external recipients each: ids for the held-message operations and the
/// proof-of-delivery report (the stateful phase deletes some as it goes). Every other message's
/// second recipient is an uncertain release (its reply was lost), for `resolve`.
async fn hold_messages(gw: &TestGateway, n: usize) {
    for i in 0..n {
        let req = hook_request(
            "alice@zorg.test",
            &["bob@example.test", "carol@example.test"],
            &[("Subject", &format!("lab {i}"))],
            "results\r\n",
        );
        let answer = gw.hook(&req).await.json();
        assert_eq!(answer["action"], "discard");
        if i % 2 == 1 {
            sqlx::query(
                "UPDATE holds SET state = 'uncertain' WHERE message_id = $1 AND recipient = $2",
            )
            .bind(crate::util::held_ref(&answer))
            .bind("carol@example.test")
            .execute(gw.gw.store.pool())
            .await
            .unwrap();
        }
    }
    let listed = gw
        .request(Method::GET, "/v1/admin/held", Some(ADMIN_TOKEN), vec![])
        .await
        .json();
    assert_eq!(listed["held"].as_array().unwrap().len(), n);
}

/// `"Tested: N"` and `"N generated"` of schemathesis' summary.
fn summary_number(out: &str, before: &str, after: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix(before)?.trim();
        rest.split(after).next()?.parse().ok()
    })
}

/// `schemathesis run` of `phases` against the gateway at `base` with the admin token and every check.
fn command(bin: &Path, base: &str, scratch: &Path, phases: &str) -> Command {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/admin_schema.toml");
    let seed = env_number("NTA7516_SCHEMATHESIS_SEED", 7516);
    let mut cmd = Command::new(bin);
    // Run in a scratch folder: schemathesis keeps nothing (no example database, no report) in the tree.
    cmd.current_dir(scratch)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(format!("{base}/v1/admin/openapi.json"))
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--checks", "all"])
        .args(["--phases", phases])
        .args(["--seed", &seed.to_string()])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"])
        .arg("--no-color");
    cmd
}

/// Runs `cmd`; its output, after asserting that schemathesis exited 0 (it found nothing).
async fn run(mut cmd: Command, what: &str) -> String {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run schemathesis"))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis ({what}) found the API and its document disagree ({}):\n{text}",
        out.status
    );
    text
}

/// Two runs: examples, coverage and fuzzing with a bounded number of examples per operation (every
/// operation must be tested); then the stateful phase along the links for a fixed time (it repeats
/// scenarios until the time is spent, so a loaded machine runs fewer, not longer).
async fn admin_api_matches_its_openapi_document(b: Backend) {
    let Some(bin) = schemathesis() else { return };
    let gw = Builder::new(b)
        .config("[organisation]\nlocal_domains = [\"zorg.test\"]\n")
        .tls(TlsTable::new(&[("example.test", TlsStatus::Secure)]))
        .start()
        .await;
    hold_messages(&gw, 40).await;
    let (base, scratch) = (format!("http://{}", gw.addr), tempfile::tempdir().unwrap());
    let started = std::time::Instant::now();
    let examples = env_number("NTA7516_SCHEMATHESIS_EXAMPLES", 25).to_string();
    let mut cmd = command(&bin, &base, scratch.path(), "examples,coverage,fuzzing");
    cmd.args(["--max-examples", &examples]);
    let text = run(cmd, &format!("{b:?}, examples, coverage, fuzzing")).await;
    let tested = summary_number(&text, "Tested:", " ");
    let selected = summary_number(&text, "Selected:", "/");
    let generated = summary_number(&text, "", " generated").unwrap_or(0);
    assert!(
        tested.is_some() && tested == selected && selected >= Some(25),
        "every operation tested: {tested:?} of {selected:?}\n{text}"
    );
    assert!(generated >= 500, "only {generated} cases generated\n{text}");

    let secs = env_number("NTA7516_SCHEMATHESIS_STATEFUL_SECS", 40).to_string();
    let mut cmd = command(&bin, &base, scratch.path(), "stateful");
    cmd.args(["--max-time", &secs]);
    let stateful = run(cmd, &format!("{b:?}, stateful")).await;
    let scenarios = summary_number(&stateful, "Scenarios:", " ").unwrap_or(0);
    assert!(
        scenarios >= 10,
        "only {scenarios} stateful scenarios\n{stateful}"
    );
    let links = stateful.lines().find(|l| l.contains("API Links:"));
    eprintln!(
        "schemathesis ({b:?}): {generated} cases over {} operations, then {scenarios} stateful \
         scenarios ({}), 0 failures, in {:.0?}",
        tested.unwrap(),
        links.unwrap_or("").trim(),
        started.elapsed()
    );
}

both_backends!(admin_api_matches_its_openapi_document);

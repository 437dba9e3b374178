//! The binary itself: `serve` with no configuration runs the embedded default, announces the SMS
//! development sink, generates its secrets once and answers the hook with them; `check-config` reports
//! errors with line and column.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_stalwart-nta7516");

#[test]
fn serve_without_config_runs_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NTA7516__SERVER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("SMS development sink active") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(
        banner.contains("listening on http://127.0.0.1:"),
        "{banner}"
    );
    assert!(
        banner.contains("DEVELOPMENT MODE: SMS codes are NOT sent"),
        "{banner}"
    );
    let token = std::fs::read_to_string(dir.path().join("data/hook-token")).unwrap();
    assert!(
        banner.contains(token.trim()),
        "the generated token is printed once"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/master.key"))
            .unwrap()
            .trim()
            .len(),
        64
    );
    assert!(dir.path().join("data/gateway.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "secret files are private");
    }

    // Second start: same secrets, not printed again. The address is taken, so it stops right after
    // loading them.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env(
            "NTA7516__SERVER__LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let again = String::from_utf8_lossy(&out.stderr);
    assert!(!again.contains(token.trim()), "{again}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/hook-token")).unwrap(),
        token
    );
}

#[test]
fn check_config_reports_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:8470\"\n[hold]\nretention_days = \"ninety\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("retention_days") || err.contains("line 4"),
        "{err}"
    );

    std::fs::write(&path, "[server]\nlisten = 8470 8470\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2, column"));

    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.example.toml");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `[server] worker_threads` sizes the runtime before anything starts: a value out of range stops
/// `serve` with the key's name before it opens the database, and `check-config` names it too.
#[test]
fn serve_refuses_a_worker_count_out_of_range_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let db = dir.path().join("gateway.db");
    std::fs::write(
        &path,
        format!(
            "[server]\nworker_threads = 5000\n[storage]\nurl = \"sqlite://{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    for command in ["serve", "check-config"] {
        let out = Command::new(BIN)
            .args([command, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("server.worker_threads must be 0 (one per CPU core) … 1024, not 5000"),
            "{command}: {err}"
        );
    }
    assert!(!db.exists(), "nothing was opened");
}

/// `stalwart render`: the shipped files are its output for the example (byte for byte, as an admin
/// would produce them), and a configuration it cannot render is a usage error naming the key.
#[test]
fn stalwart_render_prints_the_shipped_files_and_names_bad_keys() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The compose setup's copy is rendered from docker/gateway.toml (its password comes from the
    // environment in compose; rendering does not use it).
    let shipped = [
        (
            "0.15",
            "config/gateway.example.toml",
            "config/stalwart/v0.15.toml",
        ),
        (
            "0.16",
            "config/gateway.example.toml",
            "config/stalwart/v0.16-plan.ndjson",
        ),
        (
            "0.15",
            "docker/gateway.toml",
            "docker/stalwart-nta7516.v0.15.toml",
        ),
    ];
    for (version, config, file) in shipped {
        let out = Command::new(BIN)
            .current_dir(&root)
            .args([
                "stalwart",
                "render",
                "--version",
                version,
                "--config",
                config,
            ])
            .env("NTA7516__STALWART__PASSWORD", "unused")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shipped = std::fs::read(root.join(file)).unwrap();
        assert!(out.stdout == shipped, "{file} differs from the render");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        "[organisation]\nlocal_domains = [\"zorg.test\"]\n[stalwart]\nrelease = \"127.0.0.1:10025\"\n\
         notify = \"mail.zorg.test\"\nusername = \"svc\"\npassword = \"x\"\nnotify_from = \"a@zorg.test\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["stalwart", "render", "--version", "0.16", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stalwart.notify") && err.contains("host:port"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing rendered");
}

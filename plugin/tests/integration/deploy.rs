//! Running the gateway as a service: the embedded default keeps its data private (folder 0700, database
//! with its WAL/SHM files and the secret files 0600) and a start warns about what is more open; relative
//! paths of a configuration file are found from its own folder whatever the working directory; the log
//! written to a pipe has no colour codes, as text or as JSON lines.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::util;
use stalwart_nta7516::{
    config::Config,
    policy::{DefaultPolicy, NoSmartTls},
    stalwart_submit::Target,
    Gateway,
};

const BIN: &str = env!("CARGO_BIN_EXE_stalwart-nta7516");

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn start_embedded(data: &Path) -> Arc<Gateway> {
    let config = Config::embedded(data, std::iter::empty()).unwrap();
    Gateway::start(config, Arc::new(NoSmartTls), Arc::new(DefaultPolicy), true)
        .await
        .expect("gateway starts")
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_creates_private_files() {
    util::init_log();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("var/data");
    let gw = start_embedded(&data).await;
    // A write, so the WAL and its index are in use.
    sqlx::query("CREATE TABLE perm_probe (x INTEGER); INSERT INTO perm_probe VALUES (1)")
        .execute(gw.store.pool())
        .await
        .unwrap();
    assert_eq!(mode(&tmp.path().join("var")), 0o700, "created parent");
    assert_eq!(mode(&data), 0o700, "data directory");
    for file in [
        "gateway.db",
        "gateway.db-wal",
        "gateway.db-shm",
        "hook-token",
        "master.key",
        "webhook-key",
        "admin-token",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert!(
        util::log_lines_with(&data.display().to_string()).is_empty(),
        "no warning for what the gateway created itself"
    );
    gw.store.close().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_data_directory_and_database_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    util::init_log();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = data.join("gateway.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gw = start_embedded(&data).await;
    // Left as found: the gateway warns, it does not change an operator's modes.
    assert_eq!(mode(&data), 0o755);
    assert_eq!(mode(&db), 0o644);
    let dir_line = format!("{} has mode 0755", data.display());
    let lines = util::log_lines_with(&dir_line);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!("fix: chmod 700 {}", data.display())),
        "{}",
        lines[0]
    );
    let db_line = format!("{} has mode 0644", db.display());
    let lines = util::log_lines_with(&db_line);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("fix: chmod 600 {}", db.display())),
        "{}",
        lines[0]
    );
    // The secrets it generated itself are private: not named.
    assert!(util::log_lines_with(&data.join("master.key").display().to_string()).is_empty());
    gw.store.close().await;
}

/// A configuration file with relative paths, in a folder that is not the working directory of the test.
fn relative_config(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/stalwart-password"), "s3cret-from-file\n").unwrap();
    std::fs::write(dir.join("secrets/hook-token"), "hook-token-from-file\n").unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [storage]\nurl = \"sqlite://db/gateway.db\"\n\
         [hook]\ntoken_file = \"secrets/hook-token\"\n\
         [hold]\nmaster_key = \"0000000000000000000000000000000000000000000000000000000000000001\"\n\
         [stalwart]\nrelease = \"127.0.0.1:10025\"\nnotify = \"127.0.0.1:10026\"\n\
         username = \"nta-gateway\"\npassword_file = \"secrets/stalwart-password\"\n\
         notify_from = \"noreply@zorg.test\"\n",
    )
    .unwrap();
    path
}

#[test]
fn relative_password_file_is_found_from_the_config_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let path = relative_config(&tmp.path().join("etc"));
    assert_ne!(std::env::current_dir().unwrap(), tmp.path().join("etc"));
    let config = Config::load(&path).unwrap();
    let target = Target::from_config(config.stalwart.as_ref().unwrap(), true).unwrap();
    assert_eq!(target.password, "s3cret-from-file");
}

/// `serve --config` from another working directory: the relative database and token are the config
/// folder's, and the log on a pipe carries no ANSI colour codes.
#[test]
fn serve_resolves_relative_paths_and_logs_plain_text_to_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc");
    let path = relative_config(&etc);
    let cwd = tmp.path().join("elsewhere");
    std::fs::create_dir(&cwd).unwrap();
    let log = run_serve(&path, &cwd, &[], "SMS development sink active");
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    assert!(log.contains(" WARN "), "a tracing line was written: {log}");
    assert!(!log.contains("\x1b["), "ANSI codes on a pipe: {log:?}");
    assert!(
        etc.join("db/gateway.db").exists(),
        "database beside the config"
    );
    assert!(!cwd.join("db").exists(), "nothing in the working directory");
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = relative_config(&tmp.path().join("etc"));
    let log = run_serve(
        &path,
        tmp.path(),
        &[("NTA7516__LOG__FORMAT", "json")],
        "SMS development sink active",
    );
    let line = log
        .lines()
        .find(|l| l.contains("SMS development sink active"))
        .unwrap_or_else(|| panic!("no warning in {log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "WARN", "{v}");
    assert!(!log.contains("\x1b["), "{log:?}");
    // A bad format is refused with its key, before anything starts.
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env("NTA7516__LOG__FORMAT", "xml")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("log.format"), "{err}");
    assert!(err.contains("`text` or `json`"), "{err}");
}

/// Runs `serve --config <path>` in `cwd` with stderr on a pipe until a line contains `until` (or 20 s),
/// then stops it; returns what it wrote.
fn run_serve(path: &Path, cwd: &Path, env: &[(&str, &str)], until: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(path)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains(until) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    log
}

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// docker/gateway.toml, with the overrides compose.yml sets, is a valid configuration whose port, data
/// path and policy agree with the Dockerfile, compose.yml and the systemd unit (no Docker engine here:
/// this and `scripts/lint-deploy.sh` are what checks them).
#[test]
fn docker_files_agree_on_paths_and_ports() {
    let compose = repo_file("docker/compose.yml");
    let dockerfile = repo_file("docker/Dockerfile");
    let unit = repo_file("config/systemd/stalwart-nta7516.service");
    // Every NTA7516__ variable compose.yml gives the gateway, with a placeholder value.
    let env: Vec<(String, String)> = compose
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| k.starts_with("NTA7516__"))
        .map(|(k, v)| {
            // `${VAR:-default}`: the default compose.yml gives; `${VAR:?…}` (a required secret): a
            // placeholder of the right shape.
            let default = v.trim().strip_prefix("${").and_then(|v| v.split_once(":-"));
            let v = match (k, default) {
                (_, Some((_, d))) => d.trim_end_matches('}').to_string(),
                ("NTA7516__HOLD__MASTER_KEY", None) => "ab".repeat(32),
                _ => "placeholder-secret".into(),
            };
            (k.to_string(), v)
        })
        .collect();
    assert_eq!(env.len(), 7, "{env:?}");
    let mut config = Config::parse(
        &repo_file("docker/gateway.toml"),
        Path::new("docker/gateway.toml"),
        env.into_iter(),
    )
    .unwrap();
    config.resolve_relative(Path::new("/etc/stalwart-nta7516"));
    assert!(config.server.listen.ip().is_unspecified());
    assert_eq!(config.server.listen.port(), 8470);
    assert_eq!(config.log.format, stalwart_nta7516::config::LogFormat::Text);
    let db = config.storage.sqlite_file().unwrap();
    assert!(db.starts_with("/var/lib/stalwart-nta7516"), "{db:?}");
    let policy = config.policy.file.as_deref().unwrap();
    let shipped = policy
        .strip_prefix("/etc/stalwart-nta7516/policies")
        .unwrap();
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/policies")
        .join(shipped)
        .exists());
    let s = config.stalwart.as_ref().unwrap();
    assert_eq!(
        (s.release.as_str(), s.notify.as_str()),
        ("stalwart:10025", "stalwart:10026")
    );
    for (file, text, needles) in [
        (
            "docker/compose.yml",
            &compose,
            &[
                "./gateway.toml:/etc/stalwart-nta7516/gateway.toml:ro",
                "../config/policies:/etc/stalwart-nta7516/policies:ro",
                "gateway-data:/var/lib/stalwart-nta7516",
                "\"127.0.0.1:8470:8470\"",
                "stalwart-data:/opt/stalwart",
                "profiles: [postgres]",
            ][..],
        ),
        (
            "docker/Dockerfile",
            &dockerfile,
            &[
                "EXPOSE 8470",
                "\"http://127.0.0.1:8470/healthz\"",
                "VOLUME [\"/var/lib/stalwart-nta7516\"]",
                "CMD [\"serve\", \"--config\", \"/etc/stalwart-nta7516/gateway.toml\"]",
                "cargo build --release --locked -p stalwart-nta7516",
            ][..],
        ),
        (
            "config/systemd/stalwart-nta7516.service",
            &unit,
            &[
                "ExecStart=/usr/local/bin/stalwart-nta7516 serve --config /etc/stalwart-nta7516/gateway.toml",
                "StateDirectory=stalwart-nta7516\n",
                "StateDirectoryMode=0700\n",
                "UMask=0077\n",
            ][..],
        ),
    ] {
        for needle in needles {
            assert!(text.contains(needle), "{file} lacks {needle:?}");
        }
    }
}

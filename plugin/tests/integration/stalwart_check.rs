//! `stalwart check` against a real HTTP server on loopback that answers like Stalwart's management API,
//! with the real answers of v0.15.5 and v0.16.18 (`tests/fixtures/v0.15`, `v0.16`): the built binary
//! exits 0 on the configured servers and 1 on the fresh installs, naming the rules; and in a running
//! gateway `on_unsafe = "hold"` holds what would be delivered while Stalwart is unsafe (or unreadable)
//! and delivers again once it is safe, while `warn` only logs.

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use hyper::Method;
use serde_json::Value;

use crate::util::{env::Env, eventually, hook_request, http, log_lines_with, Backend};

const BIN: &str = env!("CARGO_BIN_EXE_stalwart-nta7516");
const ADMIN: &str = "admin";
const PASSWORD: &str = "acceptance-admin";

/// Which answers the server gives: a Stalwart line and a fixture variant.
#[derive(Clone, Copy)]
pub enum Served {
    V015(&'static str),
    V016(&'static str),
}

/// A loopback HTTP server answering `GET /api/settings/list?prefix=…` (v0.15) or `POST /jmap/` with
/// `x:<Object>/get` (v0.16) from the fixtures, behind HTTP Basic `admin`/`acceptance-admin`.
pub struct FixtureServer {
    pub url: String,
    served: Arc<Mutex<Served>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FixtureServer {
    pub async fn start(served: Served) -> FixtureServer {
        let served = Arc::new(Mutex::new(served));
        let app = Router::new()
            .route("/api/settings/list", get(settings))
            .route("/jmap/", post(jmap))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FixtureServer {
            url: format!("http://{addr}"),
            served,
            task,
        }
    }

    pub fn serve(&self, s: Served) {
        *self.served.lock().unwrap() = s;
    }
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn authorised(headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let want = base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{PASSWORD}"));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Basic {want}"))
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn settings(State(s): State<Arc<Mutex<Served>>>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Served::V015(variant) = *s.lock().unwrap() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let prefix = uri
        .query()
        .and_then(|q| q.strip_prefix("prefix="))
        .unwrap_or_default()
        .replace('.', "-");
    json(
        StatusCode::OK,
        fixture(&format!("v0.15/settings-{prefix}.{variant}.json")),
    )
}

/// `x:MtaTlsStrategy/get` → `mta-tls-strategy`, as the fixture files are named.
fn stem(method: &str) -> String {
    let object = method.trim_start_matches("x:").trim_end_matches("/get");
    let mut out = String::new();
    for (i, c) in object.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.replace("web-hook", "webhook")
}

async fn jmap(State(s): State<Arc<Mutex<Served>>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Served::V016(variant) = *s.lock().unwrap() else {
        // v0.15 knows neither the capability nor the registry methods (RFC 8620 §3.6.1).
        let problem = br#"{"type":"urn:ietf:params:jmap:error:unknownCapability","status":400,"detail":"urn:stalwart:jmap"}"#;
        return json(StatusCode::BAD_REQUEST, problem.to_vec());
    };
    let req: Value = serde_json::from_slice(&body).unwrap();
    let method = req["methodCalls"][0][0].as_str().unwrap_or_default();
    json(
        StatusCode::OK,
        fixture(&format!("v0.16/{}.{variant}.json", stem(method))),
    )
}

/// The gateway of the fixtures (the v0.16 plan's hook URL, service account, local domain).
const GATEWAY_TOML: &str = r#"
[server]
listen = "127.0.0.1:8470"
public_url = "https://veilig.zorg.test"
[hook]
token = "t"
[hold]
master_key = "0000000000000000000000000000000000000000000000000000000000000000"
[organisation]
local_domains = ["zorg.test"]
[stalwart]
release = "127.0.0.1:10025"
notify = "127.0.0.1:10026"
username = "svc-nta@zorg.test"
password = "x"
notify_from = "beveiligd@zorg.test"
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn stalwart_check(url: &str, password: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, GATEWAY_TOML).unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let mut args: Vec<String> = ["stalwart", "check", "--url", url, "--user", ADMIN]
        .map(String::from)
        .to_vec();
    args.extend(["--password-file".into(), pw.display().to_string()]);
    args.extend(["--config".into(), config.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap();
    drop(dir);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn assert_lines(run: &Run, lines: &[&str]) {
    for l in lines {
        assert!(
            run.stdout.contains(l),
            "missing {l:?} in:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[tokio::test]
async fn check_command_on_v016_fixtures() {
    let server = FixtureServer::start(Served::V016("after-plan")).await;
    let ok = stalwart_check(&server.url, PASSWORD, &[]).await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert_lines(
        &ok,
        &[
            "Stalwart 0.16 at",
            "✓ tls_strict",
            "✓ hook_url",
            "✓ sender_exception",
            "OK:",
        ],
    );
    server.serve(Served::V016("default"));
    let bad = stalwart_check(&server.url, PASSWORD, &["--version", "0.16"]).await;
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    assert_lines(
        &bad,
        &[
            "✗ hook_present",
            "✗ tls_strict",
            "'invalid-tls'",
            "✗ tls_fallback",
            "✗ sender_exception",
            "fix: must-match-sender",
            "! resolver_dnssec",
            "UNSAFE:",
        ],
    );
    let json = stalwart_check(&server.url, PASSWORD, &["--json"]).await;
    assert_eq!(json.code, 1);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["version"], "0.16");
    let fallback = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "tls_fallback")
        .unwrap();
    assert_eq!(fallback["outcome"], "fail");
    assert!(fallback["fix"]
        .as_str()
        .unwrap()
        .contains("neutralise invalid-tls"));
}

#[tokio::test]
async fn check_command_on_v015_fixtures_detects_the_version() {
    let server = FixtureServer::start(Served::V015("world")).await;
    let ok = stalwart_check(&server.url, PASSWORD, &[]).await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert_lines(
        &ok,
        &[
            "Stalwart 0.15 at",
            "✓ tls_fallback",
            "! hook_url",
            "%{env:GATEWAY_URL}%",
        ],
    );
    server.serve(Served::V015("default"));
    let bad = stalwart_check(&server.url, PASSWORD, &[]).await;
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    assert_lines(
        &bad,
        &[
            "✗ tls_fallback",
            "DEFAULT_SETTINGS",
            "✗ sender_exception",
            "! resolver_dnssec",
        ],
    );
}

#[tokio::test]
async fn check_command_usage_and_connection_errors_exit_2() {
    let server = FixtureServer::start(Served::V016("after-plan")).await;
    let refused = stalwart_check(&server.url, "wrong", &[]).await;
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("HTTP 401"), "{}", refused.stderr);
    let closed = format!("http://127.0.0.1:{}", crate::util::free_port());
    let down = stalwart_check(&closed, PASSWORD, &[]).await;
    assert_eq!(down.code, 2, "{}", down.stderr);
    assert!(down.stderr.contains("cannot connect"), "{}", down.stderr);
    let bad = stalwart_check(&server.url, PASSWORD, &["--version", "0.14"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

/// A gateway whose `[stalwart]` checks `url` every second.
async fn gateway(url: &str, on_unsafe: &str) -> (Env, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("stalwart-admin");
    std::fs::write(&pw, PASSWORD).unwrap();
    let extra = format!(
        "[stalwart]\nmanagement_url = \"{url}\"\nmanagement_user = \"{ADMIN}\"\n\
         management_password_file = \"{}\"\ncheck_interval_secs = 1\non_unsafe = \"{on_unsafe}\"\n\
         [exemptions]\ndomains = [\"example.test\"]\n",
        pw.display()
    );
    (Env::new(Backend::Sqlite, None, &extra).await, dir)
}

/// bob@example.test: exempt, servers Secure — delivered at once unless Stalwart is unsafe. `n` makes
/// each submission a new one (the same bytes again would be a retry, which stays as held).
async fn submit(gw: &crate::util::env::Running, n: u32) -> Value {
    let subject = format!("uitslag {n}");
    gw.hook(&hook_request(
        crate::util::env::SENDER,
        &["bob@example.test"],
        &[("Subject", subject.as_str())],
        "Hallo\r\n",
    ))
    .await
}

fn assert_accepted(answer: &Value) {
    assert_eq!(answer["action"], "accept", "{answer}");
    let deleted = answer["modifications"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["type"] == "deleteRecipient");
    assert!(!deleted, "{answer}");
}

async fn healthz(gw: &crate::util::env::Running) -> String {
    let (_, _, body) = http(Method::GET, &gw.url("/healthz"), &[], vec![]).await;
    String::from_utf8_lossy(&body).into()
}

async fn wait_for_health(gw: &crate::util::env::Running, needle: &str) {
    eventually(10, needle, || async {
        healthz(gw).await.contains(needle).then_some(())
    })
    .await;
}

#[tokio::test]
async fn hold_while_stalwart_is_unsafe_then_deliver_again() {
    let server = FixtureServer::start(Served::V015("default")).await;
    let (env, _dir) = gateway(&server.url, "hold").await;
    let gw = env.start().await;
    wait_for_health(&gw, "stalwart: unsafe").await;
    let held = submit(&gw, 1).await;
    crate::util::held_ref(&held);
    let metrics =
        String::from_utf8_lossy(&http(Method::GET, &gw.url("/metrics"), &[], vec![]).await.2)
            .to_string();
    assert!(metrics.contains("nta7516_stalwart_unsafe 1"), "{metrics}");
    assert!(
        metrics.contains("nta7516_stalwart_rule_failed{rule=\"tls_fallback\"} 1"),
        "{metrics}"
    );
    let reason: String =
        sqlx::query_scalar("SELECT reasons FROM decisions WHERE recipient = 'bob@example.test'")
            .fetch_one(gw.gw.store.pool())
            .await
            .unwrap();
    assert!(reason.contains("stalwart_unsafe"), "{reason}");
    // Several intervals pass while unsafe: the error is logged once.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let unsafe_lines = log_lines_with("Stalwart is UNSAFE")
        .into_iter()
        .filter(|l| l.contains(&format!(":{port}")))
        .count();
    assert_eq!(unsafe_lines, 1);
    server.serve(Served::V015("world"));
    wait_for_health(&gw, "stalwart: safe").await;
    assert_accepted(&submit(&gw, 2).await);
    gw.stop().await;
}

/// A hold verified while Stalwart is unsafe is not released through it; it leaves once Stalwart is safe.
#[tokio::test]
async fn no_release_while_stalwart_is_unsafe() {
    use stalwart_nta7516::store::HoldState;
    let server = FixtureServer::start(Served::V015("default")).await;
    let (env, _dir) = gateway(&server.url, "hold").await;
    let gw = env.start().await;
    wait_for_health(&gw, "stalwart: unsafe").await;
    // carol@other.test: not exempt, 2FA required → held; then verified (moved to releasing).
    let req = hook_request(
        crate::util::env::SENDER,
        &["carol@other.test"],
        &[("Subject", "x")],
        "Hallo\r\n",
    );
    env.tls
        .set("other.test", stalwart_nta7516::policy::TlsStatus::Secure);
    let id = crate::util::held_ref(&gw.hook(&req).await);
    let now = stalwart_nta7516::time::now();
    let moved = gw
        .gw
        .store
        .transition_hold(
            &id,
            "carol@other.test",
            HoldState::Held,
            HoldState::Releasing,
            now,
        )
        .await
        .unwrap();
    assert!(moved);
    gw.gw.wake.now();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        env.release.messages().is_empty(),
        "released through an unsafe Stalwart"
    );
    assert_eq!(gw.hold(&id, "carol@other.test").await.0, "releasing");
    server.serve(Served::V015("world"));
    wait_for_health(&gw, "stalwart: safe").await;
    gw.gw.wake.now();
    env.release.wait_for(1, 10).await;
    gw.stop().await;
}

#[tokio::test]
async fn an_unreadable_stalwart_counts_as_unsafe() {
    let url = format!("http://127.0.0.1:{}", crate::util::free_port());
    let (env, _dir) = gateway(&url, "hold").await;
    let gw = env.start().await;
    wait_for_health(&gw, "stalwart: unknown").await;
    crate::util::held_ref(&submit(&gw, 1).await);
    let logged = log_lines_with("unknown counts as unsafe");
    assert!(logged.iter().any(|l| l.contains(&url)), "{logged:?}");
    gw.stop().await;
}

#[tokio::test]
async fn warn_only_logs() {
    let server = FixtureServer::start(Served::V016("default")).await;
    let (env, _dir) = gateway(&server.url, "warn").await;
    let gw = env.start().await;
    wait_for_health(&gw, "stalwart: unsafe").await;
    assert!(healthz(&gw).await.contains("on_unsafe = warn"));
    assert_accepted(&submit(&gw, 1).await);
    let logged = log_lines_with("delivery continues");
    assert!(logged.iter().any(|l| l.contains(&server.url)), "{logged:?}");
    gw.stop().await;
}

//! The one test harness of the gateway's integration tests: a real gateway on a loopback port, over SQLite
//! (temp dir) or a real PostgreSQL server (`NTA7516_TEST_POSTGRES_URL`, started by `scripts/test`; one
//! fresh database per test), one HTTP client ([`http`]), one TLS-verdict stub ([`TlsTable`]), the hold id
//! of an answer ([`held_ref`]); [`env`] adds the environment of the recipient-2FA tests (a real SMTP server
//! with STARTTLS and AUTH for Stalwart's listeners, moto's SNS server, a cookie-keeping browser, a gateway
//! that restarts on the same database); [`procs`] runs the gateway binary as several real processes on
//! one PostgreSQL database; [`webdriver`] drives headless Chromium.
#![allow(dead_code)]

pub mod env;
pub mod procs;
pub mod smtp;
pub mod stalwart_smtp;
pub mod webdriver;

pub use env::*;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use hyper::{Method, StatusCode};
use sqlx::Connection;
use stalwart_nta7516::{
    config::Config,
    policy::{BoxFuture, DefaultPolicy, Policy, TlsFacts, TlsStatus, TlsVerdicts},
    Gateway,
};

pub const TOKEN: &str = "test-hook-token-0123456789";
pub const WEBHOOK_KEY: &str = "test-webhook-hmac-key";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the same test body against both backends. The PostgreSQL variant needs
/// `NTA7516_TEST_POSTGRES_URL`; under CI (`CI` set) its absence is a failure, locally it is skipped loudly.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::util::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if !$crate::util::postgres_available() { return; }
                   super::$name($crate::util::Backend::Postgres).await
               } )*
        }
    };
}

pub fn postgres_available() -> bool {
    if std::env::var("NTA7516_TEST_POSTGRES_URL").is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok() {
        panic!("CI is set but NTA7516_TEST_POSTGRES_URL is not: PostgreSQL tests must run in CI");
    }
    eprintln!("SKIPPED: PostgreSQL variant (set NTA7516_TEST_POSTGRES_URL to run it)");
    false
}

/// A fresh database on the test PostgreSQL server; returns its URL.
pub async fn fresh_postgres_db() -> String {
    let base = std::env::var("NTA7516_TEST_POSTGRES_URL").expect("NTA7516_TEST_POSTGRES_URL");
    let name = format!(
        "t_{}",
        stalwart_nta7516::ids::new_id("db").replace('-', "_")
    );
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database name");
    format!("{prefix}/{name}")
}

/// TLS verdicts per domain for tests of the pipeline seam, changeable while the gateway runs (the SmartTLS
/// crate has its own tests against real servers, and the hook tests that need real probes use it). A domain
/// not in the table is `Unknown`.
#[derive(Default)]
pub struct TlsTable(pub Mutex<HashMap<String, TlsStatus>>);

impl TlsTable {
    pub fn new(entries: &[(&str, TlsStatus)]) -> Arc<Self> {
        Arc::new(TlsTable(Mutex::new(
            entries.iter().map(|(d, s)| (d.to_string(), *s)).collect(),
        )))
    }
    pub fn set(&self, domain: &str, status: TlsStatus) {
        self.0.lock().unwrap().insert(domain.into(), status);
    }
}

impl TlsVerdicts for TlsTable {
    fn verdict<'a>(&'a self, domain: &'a str, _budget: Duration) -> BoxFuture<'a, TlsFacts> {
        let status = self
            .0
            .lock()
            .unwrap()
            .get(domain)
            .copied()
            .unwrap_or(TlsStatus::Unknown);
        let reasons = match status {
            TlsStatus::Secure => vec![],
            TlsStatus::Insecure => vec!["starttls_missing".into()],
            TlsStatus::Unknown => vec!["dns_failure".into()],
        };
        Box::pin(async move {
            TlsFacts {
                status,
                grade: None,
                reasons,
                nta_peer: None,
            }
        })
    }
}

/// Everything the gateway logs in this test binary (`warn,stalwart_nta7516=info`, or `RUST_LOG` with
/// the gateway's info lines always included; no colours), kept for checks on the log and also printed
/// into each test's captured output. Tests run in parallel: look for lines that name something unique to
/// the test ([`log_lines_with`]).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        print!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the one log subscriber of the test binary (idempotent).
pub fn init_log() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "warn".into())
            .add_directive("stalwart_nta7516=info".parse().unwrap());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init()
            .expect("the only log subscriber of this test binary");
    });
}

/// The logged lines that contain `needle`.
pub fn log_lines_with(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOG.lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The hold id in the answer to a submission whose every recipient is held (`discard`, `… (id h-…) …`).
pub fn held_ref(answer: &serde_json::Value) -> String {
    assert_eq!(answer["action"], "discard", "{answer}");
    let text = answer["response"]["message"].as_str().unwrap();
    let i = text.find("(id ").expect("hold id in the answer") + 4;
    text[i..i + text[i..].find(')').unwrap()].to_string()
}

/// One HTTP request: (status, headers, body). The one client of the tests (a new connection pool per call:
/// each test has its own runtime); a failure to connect or read is a panic naming the URL.
pub async fn http(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (StatusCode, hyper::HeaderMap, Vec<u8>) {
    procs::try_http_full(method, url, headers, body, 300)
        .await
        .unwrap_or_else(|e| panic!("HTTP {url}: {e}"))
}

pub struct TestGateway {
    pub gw: Arc<Gateway>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

pub struct Builder {
    backend: Backend,
    config_toml: String,
    tls: Arc<dyn TlsVerdicts>,
    policy: Arc<dyn Policy>,
}

impl Builder {
    pub fn new(backend: Backend) -> Self {
        Builder {
            backend,
            config_toml: String::new(),
            tls: TlsTable::new(&[]),
            policy: Arc::new(DefaultPolicy),
        }
    }
    /// Extra TOML appended to the base test configuration.
    pub fn config(mut self, toml: &str) -> Self {
        self.config_toml.push_str(toml);
        self.config_toml.push('\n');
        self
    }
    pub fn tls(mut self, tls: Arc<dyn TlsVerdicts>) -> Self {
        self.tls = tls;
        self
    }
    pub fn policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policy = policy;
        self
    }
    pub async fn start(self) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match self.backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("gateway.db").display()),
            Backend::Postgres => fresh_postgres_db().await,
        };
        let base = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\n\
             [hook]\ntoken = \"{TOKEN}\"\n[storage]\nurl = \"{url}\"\n\
             [webhook]\nhmac_key = \"{WEBHOOK_KEY}\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
             [hold]\nmaster_key_file = \"{}\"\n",
            dir.path().join("master.key").display(),
        );
        let mut merged: toml::Table = toml::from_str(&base).unwrap();
        merge(
            &mut merged,
            toml::from_str(&self.config_toml).expect("test TOML"),
        );
        let text = toml::to_string(&merged).unwrap();
        let config =
            Config::parse(&text, Path::new("test.toml"), std::iter::empty()).expect("test config");
        let gw = Gateway::start(config, self.tls, self.policy, true)
            .await
            .expect("gateway starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = stalwart_nta7516::http::router(gw.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        TestGateway {
            gw,
            addr,
            dir,
            server,
        }
    }
}

/// Merges `from` into `into`, table by table (a test's extra TOML over the base configuration).
pub fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

pub struct HttpReply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl TestGateway {
    /// A JSON request, with the bearer token when one is given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> HttpReply {
        let auth: Vec<(&str, String)> = token
            .map(|t| ("authorization", format!("Bearer {t}")))
            .into_iter()
            .collect();
        self.request_with(method, path, &auth, body).await
    }

    /// A JSON request with exactly these extra headers (no bearer token).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> HttpReply {
        let mut all = vec![("content-type", "application/json".to_string())];
        all.extend(headers.iter().cloned());
        let url = format!("http://{}{path}", self.addr);
        let (status, headers, body) = http(method, &url, &all, body).await;
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        HttpReply {
            status,
            content_type,
            body,
        }
    }

    pub async fn hook(&self, body: &serde_json::Value) -> HttpReply {
        self.request(
            Method::POST,
            "/v1/mta-hook",
            Some(TOKEN),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.gw.store.count(table).await.expect("count")
    }

    /// Row counts of every table that would show something stored.
    pub async fn stored(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for t in [
            "held_messages",
            "holds",
            "challenges",
            "decisions",
            "recipients",
        ] {
            out.push((t.to_string(), self.count(t).await));
        }
        out
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

pub fn fixture_names(prefix: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// A DATA-stage hook request as Stalwart would send it for a UTF-8 message.
pub fn hook_request(
    from: &str,
    to: &[&str],
    headers: &[(&str, &str)],
    body: &str,
) -> serde_json::Value {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), format!(" {v}\r\n")))
        .collect();
    let size = headers
        .iter()
        .map(|(n, v)| n.len() + 1 + v.len())
        .sum::<usize>()
        + 2
        + body.len();
    serde_json::json!({
        "context": {
            "stage": "data",
            "client": {"ip": "127.0.0.1", "port": 50000, "ptr": null, "helo": "client", "activeConnections": 1},
            "sasl": {"login": from},
            "server": {"name": "Stalwart v0.15.5", "port": 587, "ip": "127.0.0.1"},
            "queue": {"id": "4bedcdc36e006bf"},
            "protocol": {"version": 1}
        },
        "envelope": {
            "from": {"address": from},
            "to": to.iter().map(|a| serde_json::json!({"address": a})).collect::<Vec<_>>()
        },
        "message": {"headers": headers, "contents": body, "size": size}
    })
}

/// Stalwart's DATA-stage request for a message received on port 25 (no `sasl`).
pub fn inbound_request(
    ip: &str,
    tls: Option<(&str, &str)>,
    from: &str,
    to: &[&str],
    raw: &[u8],
) -> serde_json::Value {
    let text = std::str::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in format!("{head}\r\n").split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            headers.last_mut().unwrap().1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let mut context = serde_json::json!({
        "stage": "data",
        "client": {"ip": ip, "port": 40000, "ptr": null, "helo": "mail.sender.test", "activeConnections": 1},
        "server": {"name": "Stalwart v0.15.5", "port": 25, "ip": "127.0.0.1"},
        "queue": {"id": "1a2b3c"},
        "protocol": {"version": 1}
    });
    if let Some((version, cipher)) = tls {
        context["tls"] = serde_json::json!({"version": version, "cipher": cipher});
    }
    serde_json::json!({
        "context": context,
        "envelope": {
            "from": {"address": from},
            "to": to.iter().map(|a| serde_json::json!({"address": a})).collect::<Vec<_>>()
        },
        "message": {"headers": headers, "contents": body, "size": raw.len()}
    })
}

/// The original bytes of a hook request's message (headers + CRLF + body).
pub fn original_bytes(req: &serde_json::Value) -> Vec<u8> {
    let msg = &req["message"];
    let mut out = Vec::new();
    for h in msg["headers"].as_array().unwrap() {
        out.extend_from_slice(h[0].as_str().unwrap().as_bytes());
        out.push(b':');
        out.extend_from_slice(h[1].as_str().unwrap().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg["contents"].as_str().unwrap().as_bytes());
    out
}

//! Test support for the recipient-2FA tests: a real SMTP server ([`smtp`]), moto's real SNS server
//! ([`Moto`]), a cookie-keeping HTTP client ([`Browser`]) and a gateway that can be stopped and started
//! again on the same database ([`Running`]).
#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{body::Bytes, Method, Request, StatusCode};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use stalwart_nta7516::{
    config::Config,
    policy::{DefaultPolicy, Policy, TlsStatus, TlsVerdicts},
    Gateway,
};

pub use super::smtp::SmtpServer;
use super::{http, merge, smtp, TlsTable};

/// moto's SNS server (`moto_server`), from PATH or the project's `.ci/venv`. Missing: a failure under CI,
/// a loud skip locally.
pub struct Moto {
    pub url: String,
    child: Child,
}

impl Moto {
    pub async fn start() -> Option<Moto> {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/venv/bin/moto_server");
        let bin = if venv.exists() {
            venv
        } else if let Some(p) = which("moto_server") {
            p
        } else {
            if std::env::var("CI").is_ok() {
                panic!("CI is set but moto_server is missing: run .ci/setup.d/challenge.sh");
            }
            eprintln!("SKIPPED: moto_server not found (run .ci/setup.d/challenge.sh)");
            return None;
        };
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = tokio::time::timeout(Duration::from_secs(2), async {
                let req = Request::get(format!("{url}/moto-api/"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                Client::builder(TokioExecutor::new())
                    .build_http()
                    .request(req)
                    .await
                    .map(|r| r.status().is_success())
            })
            .await;
            if matches!(ok, Ok(Ok(true))) {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Moto { url, child })
    }

    /// Every SMS "sent": (phone, message).
    pub async fn sms(&self) -> Vec<(String, String)> {
        let (_, _, body) = http(
            Method::GET,
            &format!("{}/moto-api/data.json", self.url),
            &[],
            vec![],
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["sns"]["SMS"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m["phone_number"].as_str().unwrap_or("").to_string(),
                    m["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The 6-digit code of the last SMS to `phone`.
    pub async fn last_code(&self, phone: &str) -> String {
        let all = self.sms().await;
        let (_, text) = all
            .iter()
            .rev()
            .find(|(p, _)| p == phone)
            .unwrap_or_else(|| panic!("no SMS to {phone} in {all:?}"));
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .expect("6-digit code in the SMS")
            .to_string()
    }

    pub async fn count_to(&self, phone: &str) -> usize {
        self.sms().await.iter().filter(|(p, _)| p == phone).count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The environment of one test: database URL, key file, SMTP listeners, moto. Gateways started from it
/// share the database and master key, so a restart is a real restart.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub release: SmtpServer,
    pub notify: SmtpServer,
    pub sms_endpoint: Option<String>,
    pub extra: String,
    pub tls: Arc<TlsTable>,
    /// The `[stalwart]` lines that say how the gateway trusts the listeners' certificate: the stand-in's
    /// CA file by default; a test may put `pin_spki_sha256 = "…"` here before `start`.
    pub trust_toml: String,
}

pub const LOCAL: &str = "zorg.test";
pub const SENDER: &str = "arts@zorg.test";

impl Env {
    pub async fn new(
        backend: crate::util::Backend,
        sms_endpoint: Option<String>,
        extra: &str,
    ) -> Env {
        super::init_log();
        let dir = tempfile::tempdir().unwrap();
        let db_url = match backend {
            crate::util::Backend::Sqlite => {
                format!("sqlite://{}", dir.path().join("gateway.db").display())
            }
            crate::util::Backend::Postgres => crate::util::fresh_postgres_db().await,
        };
        let release = SmtpServer::start().await;
        let notify = SmtpServer::start_sharing(&release).await;
        // A correctly deployed Stalwart: the service account may send as the gateway's senders.
        for s in [&release, &notify] {
            s.sender_exception
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let trust_toml = format!(
            "ca_file = \"{}\"\ntls_server_name = \"localhost\"\n",
            release.ca_file.display()
        );
        Env {
            trust_toml,
            dir,
            db_url,
            release,
            notify,
            sms_endpoint,
            extra: extra.to_string(),
            tls: TlsTable::new(&[("example.test", TlsStatus::Secure)]),
        }
    }

    fn config(&self, addr: SocketAddr) -> Config {
        let sms = match &self.sms_endpoint {
            Some(url) => format!(
                "[sms]\nmode = \"sns\"\nregion = \"eu-west-1\"\nendpoint_url = \"{url}\"\n\
                 access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nsender_id = \"Zorg\"\ntimeout_ms = 2000\n"
            ),
            None => "[sms]\nmode = \"log\"\n".into(),
        };
        let base = format!(
            "[server]\nlisten = \"{addr}\"\npublic_url = \"http://{addr}\"\n\
             [hook]\ntoken = \"{token}\"\n[storage]\nurl = \"{db}\"\n\
             [hold]\nmaster_key_file = \"{key}\"\n\
             [organisation]\nlocal_domains = [\"{LOCAL}\"]\n{sms}\
             [stalwart]\nrelease = \"{rel}\"\nnotify = \"{not}\"\nusername = \"{user}\"\npassword = \"{pass}\"\n\
             starttls = true\n{trust}notify_from = \"nta7516@{LOCAL}\"\n\
             retry_base_secs = 1\nretry_max_secs = 2\ntimeout_ms = 5000\n\
             [portal]\nworker_interval_ms = 100\n",
            token = crate::util::TOKEN,
            db = self.db_url,
            key = self.dir.path().join("master.key").display(),
            rel = self.release.addr,
            not = self.notify.addr,
            user = smtp::USER,
            pass = smtp::PASS,
            trust = self.trust_toml,
        );
        let mut merged: toml::Table = toml::from_str(&base).unwrap();
        let extra: toml::Table = toml::from_str(&self.extra).expect("extra TOML");
        merge(&mut merged, extra);
        Config::parse(
            &toml::to_string(&merged).unwrap(),
            Path::new("test.toml"),
            std::iter::empty(),
        )
        .expect("test config")
    }

    /// Starts a gateway (HTTP server with client addresses + the worker) on this environment.
    pub async fn start(&self) -> Running {
        self.start_with_tls(self.tls.clone()).await
    }

    /// Like [`Env::start`], with these TLS verdicts instead of the table (e.g. the real SmartTLS).
    pub async fn start_with_tls(&self, tls: Arc<dyn TlsVerdicts>) -> Running {
        self.start_with(tls, Arc::new(DefaultPolicy)).await
    }

    /// Like [`Env::start`], deciding with this policy (e.g. a compiled Sieve script).
    pub async fn start_with_policy(&self, policy: Arc<dyn Policy>) -> Running {
        self.start_with(self.tls.clone(), policy).await
    }

    async fn start_with(&self, tls: Arc<dyn TlsVerdicts>, policy: Arc<dyn Policy>) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gw = Gateway::start(self.config(addr), tls, policy, true)
            .await
            .expect("gateway starts");
        let app = stalwart_nta7516::http::router(gw.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let worker = stalwart_nta7516::challenge::worker::spawn(gw.clone());
        // As `serve` does: the `stalwart check` task when a management URL is configured.
        let monitor = stalwart_nta7516::deployment::check::monitor::spawn(gw.clone());
        Running {
            gw,
            addr,
            server,
            worker,
            monitor,
        }
    }
}

pub struct Running {
    pub gw: Arc<Gateway>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
    monitor: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn hook(&self, req: &serde_json::Value) -> serde_json::Value {
        let (status, _, body) = http(
            Method::POST,
            &self.url("/v1/mta-hook"),
            &[
                ("authorization", format!("Bearer {}", crate::util::TOKEN)),
                ("content-type", "application/json".into()),
            ],
            serde_json::to_vec(req).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Stops the HTTP server and the worker and closes the database: a gateway process ending.
    pub async fn stop(self) {
        self.server.abort();
        self.worker.abort();
        if let Some(m) = self.monitor {
            m.abort();
            let _ = m.await;
        }
        let _ = self.server.await;
        let _ = self.worker.await;
        self.gw.store.close().await;
    }

    /// `(state, release queue id, attempts)` of one hold.
    pub async fn hold(&self, id: &str, rcpt: &str) -> (String, Option<String>, i64) {
        use sqlx::Row;
        let r = sqlx::query(
            "SELECT state, release_queue_id, attempts FROM holds WHERE message_id = $1 AND recipient = $2",
        )
        .bind(id)
        .bind(rcpt)
        .fetch_one(self.gw.store.pool())
        .await
        .unwrap();
        (r.get(0), r.get(1), r.get(2))
    }

    /// Waits until the hold reaches `state`.
    pub async fn wait_hold(
        &self,
        id: &str,
        rcpt: &str,
        state: &str,
        secs: u64,
    ) -> (String, Option<String>, i64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let h = self.hold(id, rcpt).await;
            if h.0 == state {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "hold {id}/{rcpt} is {h:?}, expected {state}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The audit records of a message: `(kind, recipient, details)` in chain order.
    pub async fn audit(
        &self,
        message_ref: &str,
    ) -> Vec<(String, Option<String>, serde_json::Value)> {
        self.gw
            .store
            .audit_for_message(message_ref)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let details = serde_json::from_str(&r.details).unwrap();
                (r.kind, r.recipient, details)
            })
            .collect()
    }

    /// The audit records of a message once there are at least `n` (a mail the fake listener received
    /// is recorded only after the gateway read Stalwart's reply).
    pub async fn wait_audit(
        &self,
        message_ref: &str,
        n: usize,
        secs: u64,
    ) -> Vec<(String, Option<String>, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let records = self.audit(message_ref).await;
            if records.len() >= n || Instant::now() >= deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the held message still has its sealed content.
    pub async fn content_held(&self, id: &str) -> bool {
        self.gw
            .store
            .held(id)
            .await
            .unwrap()
            .expect("a held message")
            .sealed
            .is_some()
    }

    /// Every audit record's details, concatenated: for "this never enters the log" checks.
    pub async fn whole_audit_log(&self) -> String {
        let q = stalwart_nta7516::store::audit::AuditQuery {
            limit: Some(10_000),
            ..Default::default()
        };
        self.gw
            .store
            .audit_query(&q)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {:?} {}\n",
                    r.kind, r.sender, r.recipient, r.details
                )
            })
            .collect()
    }

    pub async fn phone(&self, rcpt: &str) -> Option<String> {
        self.gw.store.phone(rcpt).await.unwrap()
    }

    pub async fn set_phone(&self, rcpt: &str, phone: &str) {
        self.gw
            .store
            .upsert_recipient(rcpt, Some(phone), None, stalwart_nta7516::time::now())
            .await
            .unwrap();
    }

    /// `(state, attempts, last_error)` of the outbox rows to `rcpt`.
    pub async fn outbox(&self, rcpt: &str) -> Vec<(String, i64, Option<String>)> {
        use sqlx::Row;
        sqlx::query("SELECT state, attempts, last_error FROM outbox WHERE rcpt = $1")
            .bind(rcpt)
            .fetch_all(self.gw.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

/// A browser-like client: keeps cookies, sends Accept-Language, reads forms.
pub struct Browser {
    base: String,
    pub cookies: HashMap<String, String>,
    pub lang: String,
    /// Sent as `X-Forwarded-For` (as a reverse proxy in front of the portal would).
    pub forwarded_for: Option<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub bytes: Vec<u8>,
    pub headers: hyper::HeaderMap,
}

impl Page {
    /// The value of the hidden CSRF field.
    pub fn csrf(&self) -> String {
        let i = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("CSRF field")
            + 19;
        self.body[i..i + 64].to_string()
    }
}

impl Browser {
    pub fn new(r: &Running, lang: &str) -> Browser {
        Browser::at(&format!("http://{}", r.addr), lang)
    }

    /// A browser on the gateway at `base` (`http://host:port`).
    pub fn at(base: &str, lang: &str) -> Browser {
        Browser {
            base: base.to_string(),
            cookies: HashMap::new(),
            lang: lang.into(),
            forwarded_for: None,
        }
    }

    /// Goes on on another gateway (same cookies): the next instance behind a balancer.
    pub fn switch_to(&mut self, base: &str) {
        self.base = base.to_string();
    }

    /// One request; `Err` when no answer came (the gateway may have been killed meanwhile).
    pub async fn try_go(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Result<Page, String> {
        // Absolute links (from mails) are followed on this gateway: only their path counts.
        let path = match path.strip_prefix("http://") {
            Some(rest) => &rest[rest.find('/').unwrap_or(rest.len())..],
            None => path,
        };
        let mut headers = vec![("accept-language", self.lang.clone())];
        if let Some(xff) = &self.forwarded_for {
            headers.push(("x-forwarded-for", xff.clone()));
        }
        if !self.cookies.is_empty() {
            headers.push((
                "cookie",
                self.cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let body = match form {
            Some(f) => {
                headers.push(("content-type", "application/x-www-form-urlencoded".into()));
                f.iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes()
            }
            None => vec![],
        };
        let url = format!("{}{path}", self.base);
        let (status, h, bytes) =
            super::procs::try_http_full(method, &url, &headers, body, 20).await?;
        for c in h.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let kv = c.split(';').next().unwrap();
            if let Some((k, v)) = kv.split_once('=') {
                self.cookies.insert(k.into(), v.into());
            }
        }
        Ok(Page {
            status,
            location: h.get("location").map(|v| v.to_str().unwrap().to_string()),
            body: String::from_utf8_lossy(&bytes).to_string(),
            bytes,
            headers: h,
        })
    }

    async fn go(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let base = self.base.clone();
        self.try_go(method, path, form)
            .await
            .unwrap_or_else(|e| panic!("HTTP {base}{path}: {e}"))
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.go(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.go(Method::POST, path, Some(form)).await
    }

    /// Landing → "send me a code" (the SMS goes out). Returns the answer to the POST.
    pub async fn request_code(&mut self, link: &str) -> Page {
        let landing = self.get(link).await;
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
        let csrf = landing.csrf();
        self.post(&format!("{link}/sms"), &[("csrf", &csrf)]).await
    }

    /// The code form → submit `code`.
    pub async fn enter_code(&mut self, link: &str, code: &str) -> Page {
        let form = self.get(&format!("{link}/code")).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post(&format!("{link}/code"), &[("csrf", &csrf), ("code", code)])
            .await
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first `http://…/p/<token>` (or `/s/`) link in a mail.
pub fn link_in(mail: &[u8], kind: &str) -> String {
    let text = String::from_utf8_lossy(mail);
    let i = text.find(&format!("/{kind}/")).expect("link in mail");
    let start = text[..i].rfind("http://").expect("absolute link");
    let end = text[i..]
        .find(['\r', '\n', ' '])
        .map_or(text.len(), |e| i + e);
    text[start..end].to_string()
}

/// Waits (polling) until `f` returns Some.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Gateways as real processes: `stalwart-nta7516 serve --config …` started N times on one PostgreSQL
//! database ([`Cluster`]), each on its own port, with the STARTTLS stand-ins for Stalwart's release and
//! notify listeners ([`SmtpServer`]), moto for SNS ([`Moto`]) and real SmartTLS verdicts (the binary
//! has no TLS seam: `[smarttls]` points at the smarttls testkit's signed DNS world, with a secure
//! domain whose recipients are exempt (`open`, delivered at once), a secure one that needs 2FA
//! (`secure`, challenged) and an insecure one (`insecure`, portal)). A process is stopped with
//! SIGKILL ([`Cluster::kill`]) and started again on the same configuration ([`Cluster::restart`]).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Method, Request, StatusCode};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use nta7516_smarttls::testkit::{LeafKind, World};
use stalwart_nta7516::store::Store;

use super::{env::free_port, merge, smtp, Moto, SmtpServer, ADMIN_TOKEN, TOKEN, WEBHOOK_KEY};

/// The three recipient domains of the world (see the module docs).
pub struct Domains {
    pub open: String,
    pub secure: String,
    pub insecure: String,
}

/// One gateway process (or its place while it is killed).
pub struct Proc {
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// How often it was killed.
    pub kills: usize,
}

impl Proc {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stalwart-nta7516"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env(
                "RUST_LOG",
                "info,sqlx=warn,hickory_net=error,hickory_proto=error",
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the gateway binary");
        self.child = Some(child);
    }

    /// Waits until `/healthz` answers 200.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("{}/healthz", self.base());
            if let Ok((StatusCode::OK, _)) = try_http(Method::GET, &url, &[], vec![], 2).await {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "gateway on {} exited ({status}):\n{}",
                    self.port,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gateway on {} did not become ready:\n{}",
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: the process ends at once, wherever it was.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().unwrap();
            self.kills += 1;
        }
    }

    /// Starts the process again on the same configuration (killing it first if it runs) and waits
    /// until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.ready().await;
    }
}

/// Which of `procs` holds the TCP connection whose local port is `port` (the client side a stand-in
/// sees), from `/proc/net/tcp*` and each process's open sockets.
pub fn owner_of(procs: &[Proc], port: u16) -> Option<usize> {
    let inode = socket_inode(port)?;
    let target = format!("socket:[{inode}]");
    procs.iter().position(|p| {
        let Some(pid) = p.pid() else { return false };
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target))
    })
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// N gateway processes on one PostgreSQL database and the world around them.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub release: SmtpServer,
    pub notify: SmtpServer,
    pub moto: Moto,
    /// The test's own connection to the shared database (for set-up and counting).
    pub store: Store,
    pub domains: Domains,
    pub procs: Vec<Proc>,
    _world: World,
}

impl Cluster {
    /// Starts `n` gateways at once on a fresh PostgreSQL database, `extra` TOML merged over the base
    /// configuration. `None` (skipped loudly; a failure under CI) without PostgreSQL or moto.
    pub async fn start(n: usize, extra: &str) -> Option<Cluster> {
        if !super::postgres_available() {
            return None;
        }
        let moto = Moto::start().await?;
        let dir = tempfile::tempdir().unwrap();
        let db_url = super::fresh_postgres_db().await;
        let release = SmtpServer::start().await;
        let notify = SmtpServer::start_sharing(&release).await;
        for s in [&release, &notify] {
            s.sender_exception
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut world = World::new().await;
        world.legacy_probe = false;
        let good = world.mx_server("mx-good", LeafKind::Good).await;
        let bad = world.mx_server("mx-bad", LeafKind::SelfSigned).await;
        let domains = Domains {
            open: world.domain("open", &[(10, &good)]),
            secure: world.domain("secure", &[(10, &good)]),
            insecure: world.domain("insecure", &[(10, &bad)]),
        };
        let smarttls = world.start_dns().await;
        let master = stalwart_nta7516::hold::crypto::MasterKey::generate_hex().unwrap();
        let base = Base {
            db_url: &db_url,
            master: &master,
            release: &release,
            notify: &notify,
            moto: &moto,
            domains: &domains,
            smarttls: &smarttls,
        };
        let mut procs = Vec::new();
        for i in 0..n {
            let port = free_port();
            let config = dir.path().join(format!("gateway-{i}.toml"));
            std::fs::write(&config, base.config(port, extra)).unwrap();
            let log = dir.path().join(format!("gateway-{i}.log"));
            procs.push(Proc {
                port,
                config,
                log,
                child: None,
                kills: 0,
            });
        }
        // All at once: the migrations of several first starts meet on the fresh database.
        procs.iter_mut().for_each(Proc::spawn);
        for p in &mut procs {
            p.ready().await;
        }
        let store = Store::connect(&db_url, 4).await.expect("test store");
        Some(Cluster {
            dir,
            db_url,
            release,
            notify,
            moto,
            store,
            domains,
            procs,
            _world: world,
        })
    }

    pub fn base(&self, i: usize) -> String {
        self.procs[i].base()
    }

    pub async fn set_phone(&self, rcpt: &str, phone: &str) {
        self.store
            .upsert_recipient(rcpt, Some(phone), None, stalwart_nta7516::time::now())
            .await
            .unwrap();
    }

    /// One hook call on instance `i`: `Err` when no answer came (refused, reset, timed out).
    pub async fn hook(&self, i: usize, body: &[u8]) -> Result<(StatusCode, Vec<u8>), String> {
        let url = format!("{}/v1/mta-hook", self.base(i));
        hook_at(&url, body.to_vec()).await
    }

    /// Every process's log, for a failure message.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .enumerate()
            .map(|(i, p)| format!("--- gateway {i} ---\n{}", p.log_text()))
            .collect()
    }
}

/// A hook call to `url` with the hook token.
pub async fn hook_at(url: &str, body: Vec<u8>) -> Result<(StatusCode, Vec<u8>), String> {
    let headers = [
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {TOKEN}")),
    ];
    try_http(Method::POST, url, &headers, body, 20).await
}

/// One HTTP request that may fail (the server may be killed meanwhile): `(status, body)` or the error.
pub async fn try_http(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout_secs: u64,
) -> Result<(StatusCode, Vec<u8>), String> {
    let (status, _, body) = try_http_full(method, url, headers, body, timeout_secs).await?;
    Ok((status, body))
}

/// [`try_http`] with the answer's headers.
pub async fn try_http_full(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout_secs: u64,
) -> Result<(StatusCode, hyper::HeaderMap, Vec<u8>), String> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let call = async {
        let resp = Client::builder(TokioExecutor::new())
            .build_http()
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, headers, body.to_bytes().to_vec()))
    };
    tokio::time::timeout(Duration::from_secs(timeout_secs), call)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// The inode of the IPv4/IPv6 TCP socket bound to local port `port` (from `/proc/net/tcp*`).
fn socket_inode(port: u16) -> Option<String> {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|f| {
        std::fs::read_to_string(f)
            .ok()?
            .lines()
            .skip(1)
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.len() > 9 && cols[1].ends_with(&want) && cols[9] != "0")
                    .then(|| cols[9].to_string())
            })
    })
}

/// The parts of the base configuration.
struct Base<'a> {
    db_url: &'a str,
    master: &'a str,
    release: &'a SmtpServer,
    notify: &'a SmtpServer,
    moto: &'a Moto,
    domains: &'a Domains,
    smarttls: &'a nta7516_smarttls::SmartTlsConfig,
}

impl Base<'_> {
    fn config(&self, port: u16, extra: &str) -> String {
        let st = self.smarttls;
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             [hook]\ntoken = \"{TOKEN}\"\ntls_budget_ms = 3000\n\
             [storage]\nurl = \"{db}\"\nmax_connections = 8\n\
             [hold]\nmaster_key = \"{master}\"\n\
             [webhook]\nhmac_key = \"{WEBHOOK_KEY}\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
             [organisation]\nlocal_domains = [\"{local}\"]\n\
             [exemptions]\ndomains = [\"{open}\"]\n\
             [sms]\nmode = \"sns\"\nregion = \"eu-west-1\"\nendpoint_url = \"{sns}\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nsender_id = \"Zorg\"\ntimeout_ms = 2000\n\
             [stalwart]\nrelease = \"{rel}\"\nnotify = \"{not}\"\nusername = \"{user}\"\npassword = \"{pass}\"\n\
             starttls = true\nca_file = \"{ca}\"\ntls_server_name = \"localhost\"\nnotify_from = \"nta7516@{local}\"\n\
             retry_base_secs = 1\nretry_max_secs = 2\ntimeout_ms = 3000\nclaim_lease_secs = 40\n\
             [portal]\nworker_interval_ms = 100\nsms_per_ip = 100000\nsms_per_phone = 1000\nsms_per_recipient = 1000\n\
             [smarttls]\nresolver = \"{resolver}\"\ntrust_anchor_file = \"{anchor}\"\nca_file = \"{st_ca}\"\n\
             smtp_port = {smtp_port}\nmta_sts_port = {sts_port}\nlegacy_probe = false\n\
             connect_timeout_ms = 2000\ncommand_timeout_ms = 2000\ndns_timeout_ms = 2000\n",
            db = self.db_url,
            master = self.master,
            local = super::LOCAL,
            open = self.domains.open,
            sns = self.moto.url,
            rel = self.release.addr,
            not = self.notify.addr,
            user = smtp::USER,
            pass = smtp::PASS,
            ca = self.release.ca_file.display(),
            resolver = st.resolver.unwrap(),
            anchor = st.trust_anchor_file.as_ref().unwrap().display(),
            st_ca = st.ca_file.as_ref().unwrap().display(),
            smtp_port = st.smtp_port,
            sts_port = st.mta_sts_port,
        );
        let mut merged: toml::Table = toml::from_str(&text).unwrap();
        merge(&mut merged, toml::from_str(extra).expect("extra TOML"));
        toml::to_string(&merged).unwrap()
    }
}

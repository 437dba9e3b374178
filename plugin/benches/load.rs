//! A load that looks like Stalwart's, against real gateway processes (`stalwart-nta7516 serve`).
//!
//! Each of C clients (default 8; a new connection per request, as Stalwart's hook client builds one per call) sends
//! DATA-stage hook requests with 50 KB bodies and 1–5 recipients at a fixed total rate; 80 % of the
//! messages go only to exempt recipients on a DANE/PKIX-secure domain (accepted), 20 % have one recipient
//! who needs 2FA (held: sealed copy, challenge, notification mail). For every accepted message the client
//! queues the webhook events Stalwart sends for its delivery (the recorded types of the real payload
//! `tests/fixtures/webhook-events-delivered-and-dsn-success.json`, per recipient domain), and posts them
//! as one signed batch every second (Stalwart's webhook throttle).
//!
//! Real parts: the gateway binary in its own process (its CPU time read from `/proc/<pid>/stat`, so the
//! load generator's own work is not counted), real SmartTLS over the testkit's DNSSEC-signed DNS with a
//! real STARTTLS MX (the verdict cache is warmed first, as in production), real STARTTLS+AUTH stand-ins
//! for Stalwart's release/notify listeners, SQLite or PostgreSQL.
//!
//! Reported: messages and recipients, gateway CPU ms per message (hook + the webhook events it causes +
//! the workers), hook latency p50/p99/p999, webhook latency p50/p99, answers that were not 200, peak RSS.
//!
//! Run (release build):
//!   cargo bench -p stalwart-nta7516 --bench load -- [--db sqlite|postgres] [--instances N]
//!       [--rate MSGS_PER_SEC | --rate 0 (closed loop: as fast as the clients get answers)]
//!       [--secs S] [--clients C] [--body-kb K] [--no-webhook]
//! PostgreSQL: `NTA7516_TEST_POSTGRES_URL` (a server where the bench may create a database).
//! The SQLite database and the gateways' files go to `TMPDIR`: `TMPDIR=/dev/shm` (tmpfs) takes the disk's
//! `fsync` latency out of the figures, to compare CPU; the default shows what the disk adds.
//! `NTA7516_BENCH_BIN=<path>` runs another build of the gateway (to compare two builds on the same
//! machine in alternating runs); `NTA7516_BENCH_LOG` sets the gateway's `RUST_LOG` (default `warn`).

#[path = "../tests/integration/util/mod.rs"]
#[allow(unused)]
mod util;

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;
use hyper::Method;
use nta7516_smarttls::testkit::{LeafKind, World};
use serde_json::{json, Value};
use util::{http, smtp::SmtpServer, Backend};

const BIN: &str = env!("CARGO_BIN_EXE_stalwart-nta7516");
/// Recipient domains whose recipients are exempt (delivered without 2FA).
const EXEMPT_DOMAINS: usize = 5;

#[derive(Debug, Clone)]
struct Args {
    db: Backend,
    instances: usize,
    /// Messages per second over all clients; 0 = closed loop.
    rate: f64,
    secs: u64,
    clients: usize,
    body_kb: usize,
    /// Post the webhook events of the delivered messages (`--no-webhook`: the hook's cost alone).
    webhook: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        db: Backend::Sqlite,
        instances: 1,
        rate: 100.0,
        secs: 20,
        clients: 8,
        body_kb: 50,
        webhook: true,
    };
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|s| s != "--bench")
        .collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--db" => {
                a.db = match value().as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => usage(&format!("--db {other}: sqlite or postgres")),
                }
            }
            "--instances" => a.instances = number(flag, value()),
            "--rate" => a.rate = number(flag, value()),
            "--secs" => a.secs = number(flag, value()),
            "--clients" => a.clients = number(flag, value()),
            "--body-kb" => a.body_kb = number(flag, value()),
            "--no-webhook" => a.webhook = false,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if a.db == Backend::Sqlite && a.instances > 1 {
        usage("several instances share a PostgreSQL database; SQLite is one instance");
    }
    a
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| usage(&format!("{flag} {v}: not a number")))
}

fn usage(msg: &str) -> ! {
    eprintln!("load bench: {msg}");
    eprintln!(
        "usage: --db sqlite|postgres --instances N --rate MSGS_PER_SEC (0 = closed loop) --secs S --clients C --body-kb K [--no-webhook]"
    );
    std::process::exit(2)
}

/// The recipient domains: exempt ones and one whose recipients need 2FA, all on one secure MX.
struct Domains {
    exempt: Vec<String>,
    challenge: String,
    mx: String,
}

async fn world() -> (World, Domains) {
    let mut w = World::new().await;
    w.legacy_probe = false;
    let mx = w.mx_server("mx", LeafKind::Good).await;
    let exempt = (0..EXEMPT_DOMAINS)
        .map(|i| w.domain(&format!("ok{i}"), &[(10, &mx)]))
        .collect();
    let challenge = w.domain("tfa", &[(10, &mx)]);
    (
        w,
        Domains {
            exempt,
            challenge,
            mx,
        },
    )
}

/// The shared parts every instance uses: database, key, listeners, the config written per instance.
struct Site {
    dir: tempfile::TempDir,
    db_url: String,
    release: SmtpServer,
    notify: SmtpServer,
}

impl Site {
    async fn new(db: Backend) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let db_url = match db {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("gateway.db").display()),
            Backend::Postgres => {
                if !util::postgres_available() {
                    usage("--db postgres needs NTA7516_TEST_POSTGRES_URL");
                }
                util::fresh_postgres_db().await
            }
        };
        let release = SmtpServer::start().await;
        let notify = SmtpServer::start_sharing(&release).await;
        for s in [&release, &notify] {
            s.sender_exception
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let key = stalwart_nta7516::hold::crypto::MasterKey::generate_hex().unwrap();
        let key_file = dir.path().join("master.key");
        stalwart_nta7516::fsperm::create_private_file(&key_file).unwrap();
        std::fs::write(&key_file, key).unwrap();
        Site {
            dir,
            db_url,
            release,
            notify,
        }
    }

    fn config(
        &self,
        port: u16,
        smarttls: &nta7516_smarttls::SmartTlsConfig,
        d: &Domains,
    ) -> String {
        let exempt: Vec<String> = d.exempt.iter().map(|x| format!("\"{x}\"")).collect();
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             [hook]\ntoken = \"{token}\"\n[webhook]\nhmac_key = \"{wkey}\"\n\
             [storage]\nurl = \"{db}\"\n[hold]\nmaster_key_file = \"{key}\"\n\
             [organisation]\nlocal_domains = [\"zorg.test\"]\n\
             [exemptions]\ndomains = [{exempt}]\n[sms]\nmode = \"log\"\n\
             [smarttls]\nresolver = \"{resolver}\"\ntrust_anchor_file = \"{anchor}\"\nca_file = \"{ca}\"\n\
             smtp_port = {smtp_port}\nmta_sts_port = {sts_port}\nlegacy_probe = false\n\
             [stalwart]\nrelease = \"{rel}\"\nnotify = \"{not}\"\nusername = \"{user}\"\npassword = \"{pass}\"\n\
             starttls = true\nca_file = \"{sca}\"\ntls_server_name = \"localhost\"\n\
             notify_from = \"nta7516@zorg.test\"\n[log]\nformat = \"text\"\n",
            token = util::TOKEN,
            wkey = util::WEBHOOK_KEY,
            db = self.db_url,
            key = self.dir.path().join("master.key").display(),
            exempt = exempt.join(", "),
            resolver = smarttls.resolver.unwrap(),
            anchor = smarttls.trust_anchor_file.as_ref().unwrap().display(),
            ca = smarttls.ca_file.as_ref().unwrap().display(),
            smtp_port = smarttls.smtp_port,
            sts_port = smarttls.mta_sts_port,
            rel = self.release.addr,
            not = self.notify.addr,
            user = util::smtp::USER,
            pass = util::smtp::PASS,
            sca = self.release.ca_file.display(),
        )
    }
}

/// One `serve` process.
struct Instance {
    child: Child,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_instance(site: &Site, n: usize, config: impl Fn(u16) -> String) -> Instance {
    let port = util::free_port();
    let path = site.dir.path().join(format!("gateway-{n}.toml"));
    std::fs::write(&path, config(port)).unwrap();
    let log = std::fs::File::create(site.dir.path().join(format!("gateway-{n}.log"))).unwrap();
    // Another build of the gateway to compare with this one: `NTA7516_BENCH_BIN`.
    let bin = std::env::var("NTA7516_BENCH_BIN").unwrap_or_else(|_| BIN.into());
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&path)
        .env(
            "RUST_LOG",
            std::env::var("NTA7516_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the gateway binary");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(Some(exit)) = child.try_wait() {
            let log = std::fs::read_to_string(site.dir.path().join(format!("gateway-{n}.log")));
            panic!("gateway {n} exited ({exit}): {}", log.unwrap_or_default());
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let (status, _, _) =
                http(Method::GET, &format!("{url}/healthz"), &[], Vec::new()).await;
            if status == 200 {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            let log = std::fs::read_to_string(site.dir.path().join(format!("gateway-{n}.log")));
            panic!(
                "gateway {n} did not become healthy: {}",
                log.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Instance { child, url }
}

/// Total CPU (user + system) of a process so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3 of the file, utime 14, stime 15.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // The kernel's tick rate, from getconf (no libc binding needed for one number).
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Peak resident set of a process (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn body(kb: usize, seed: u64) -> String {
    let mut s = String::with_capacity(kb * 1024 + 100);
    let mut i = 0;
    while s.len() < kb * 1024 {
        s.push_str(&format!(
            "Regel {i:05} van bericht {seed}: uitslag laboratoriumonderzoek, waarden binnen de norm.\r\n"
        ));
        i += 1;
    }
    s
}

/// One message: its hook request and, when it is accepted, the webhook events of its delivery.
struct Message {
    request: Vec<u8>,
    queue_id: u64,
    /// (domain, recipient) pairs delivered by Stalwart.
    delivered: Vec<(String, String)>,
    held: bool,
}

fn message(rng: &mut Rng, client: usize, seq: u64, d: &Domains, body: &str) -> Message {
    let count = 1 + rng.below(5) as usize;
    let held = rng.below(5) == 0;
    let offset = rng.below(EXEMPT_DOMAINS as u64) as usize;
    let mut rcpts: Vec<(String, String)> = (0..count)
        .map(|i| {
            let dom = d.exempt[(i + offset) % EXEMPT_DOMAINS].clone();
            let who = format!("r{client}x{seq}x{i}@{dom}");
            (dom, who)
        })
        .collect();
    if held {
        let who = format!("p{client}x{seq}@{}", d.challenge);
        rcpts[0] = (d.challenge.clone(), who);
    }
    let queue_id = ((client as u64 + 1) << 40) | seq;
    let to: Vec<&str> = rcpts.iter().map(|(_, r)| r.as_str()).collect();
    let mut req = util::hook_request(
        "arts@zorg.test",
        &to,
        &[
            ("Subject", &format!("uitslag {client}-{seq}")),
            ("Message-Id", &format!("<{client}.{seq}@zorg.test>")),
        ],
        body,
    );
    req["context"]["queue"]["id"] = json!(format!("{queue_id:x}"));
    let delivered = rcpts
        .into_iter()
        .filter(|(dom, _)| *dom != d.challenge)
        .collect();
    Message {
        request: serde_json::to_vec(&req).unwrap(),
        queue_id,
        delivered,
        held,
    }
}

/// The recorded events of the real delivered+dsn-success payload, one attempt for the message and the
/// per-domain events once per recipient domain, with this message's queue id, domains and recipients.
struct EventTemplate {
    per_message: Vec<Value>,
    per_recipient: Vec<Value>,
}

fn event_template() -> EventTemplate {
    let payload = util::fixture("webhook-events-delivered-and-dsn-success.json");
    let recorded = stalwart_nta7516::audit::delivery::RECORDED;
    let (mut per_message, mut per_recipient) = (Vec::new(), Vec::new());
    for ev in payload["events"].as_array().unwrap() {
        let kind = ev["type"].as_str().unwrap();
        if !recorded.contains(&kind) {
            continue;
        }
        if ev["data"].get("domain").is_some() || ev["data"]["to"].is_string() {
            per_recipient.push(ev.clone());
        } else {
            per_message.push(ev.clone());
        }
    }
    EventTemplate {
        per_message,
        per_recipient,
    }
}

fn events_for(
    t: &EventTemplate,
    m: &Message,
    mx: &str,
    now: &str,
    next_id: &mut u64,
) -> Vec<Value> {
    let all: Vec<String> = m.delivered.iter().map(|(_, r)| r.clone()).collect();
    let stamp = |ev: &Value, next_id: &mut u64| {
        let mut ev = ev.clone();
        *next_id += 1;
        ev["id"] = json!(next_id.to_string());
        ev["createdAt"] = json!(now);
        ev["data"]["queueId"] = json!(m.queue_id);
        ev["data"]["spanId"] = json!(m.queue_id + 1);
        if ev["data"]["to"].is_array() {
            ev["data"]["to"] = json!(all);
        }
        ev
    };
    let mut out: Vec<Value> = Vec::new();
    out.push(stamp(&t.per_message[0], next_id));
    for (dom, rcpt) in &m.delivered {
        for ev in &t.per_recipient {
            let mut ev = stamp(ev, next_id);
            let data = ev["data"].as_object_mut().unwrap();
            if data.contains_key("domain") {
                data.insert("domain".into(), json!(dom));
            }
            if data.get("to").is_some_and(Value::is_string) {
                data.insert("to".into(), json!(rcpt));
            }
            if data.contains_key("hostname") {
                data.insert("hostname".into(), json!(mx));
            }
            out.push(ev);
        }
    }
    out.extend(t.per_message[1..].iter().map(|e| stamp(e, next_id)));
    out
}

/// What the clients measured.
#[derive(Default)]
struct Tally {
    hook: Vec<Duration>,
    webhook: Vec<Duration>,
    messages: usize,
    recipients: usize,
    held: usize,
    events: usize,
    not_ok: Vec<String>,
}

fn sign(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, util::WEBHOOK_KEY.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, body).as_ref())
}

async fn post_events(url: &str, events: Vec<Value>, tally: &Mutex<Tally>) {
    if events.is_empty() {
        return;
    }
    let n = events.len();
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let headers = [
        ("x-signature", sign(&body)),
        ("content-type", "application/json".into()),
    ];
    let t = Instant::now();
    let (status, _, reply) = http(
        Method::POST,
        &format!("{url}/v1/stalwart-events"),
        &headers,
        body,
    )
    .await;
    let took = t.elapsed();
    let mut tally = tally.lock().unwrap();
    tally.webhook.push(took);
    tally.events += n;
    if status != 200 {
        tally.not_ok.push(format!(
            "webhook {status}: {}",
            String::from_utf8_lossy(&reply)
        ));
    }
}

struct Plan {
    args: Args,
    domains: Domains,
    template: EventTemplate,
    body: String,
}

/// One client: hook requests at its share of the rate, webhook batches every second.
async fn client(
    plan: Arc<Plan>,
    id: usize,
    url: String,
    until: Instant,
    tally: Arc<Mutex<Tally>>,
    warm: bool,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x1000_0001));
    let interval = if plan.args.rate > 0.0 {
        Some(Duration::from_secs_f64(
            plan.args.clients as f64 / plan.args.rate,
        ))
    } else {
        None
    };
    let start = Instant::now() + Duration::from_millis(id as u64 * 7);
    let (mut pending, mut last_batch, mut next_id) =
        (Vec::new(), Instant::now(), id as u64 * 1_000_000_000);
    let mut seq: u64 = if warm { 1 << 30 } else { 0 };
    while Instant::now() < until {
        if let Some(iv) = interval {
            let due = start + iv * (seq as u32 & 0x3fff_ffff);
            tokio::time::sleep_until(due.into()).await;
        }
        let m = message(&mut rng, id, seq, &plan.domains, &plan.body);
        seq += 1;
        let headers = [
            ("authorization", format!("Bearer {}", util::TOKEN)),
            ("content-type", "application/json".into()),
        ];
        let t = Instant::now();
        let (status, _, reply) = http(
            Method::POST,
            &format!("{url}/v1/mta-hook"),
            &headers,
            m.request.clone(),
        )
        .await;
        let took = t.elapsed();
        {
            let mut tally = tally.lock().unwrap();
            tally.hook.push(took);
            tally.messages += 1;
            tally.recipients += m.delivered.len() + m.held as usize;
            tally.held += m.held as usize;
            if status != 200 {
                tally.not_ok.push(format!(
                    "hook {status}: {}",
                    String::from_utf8_lossy(&reply)
                ));
            }
        }
        if status == 200 && !m.delivered.is_empty() && plan.args.webhook {
            let now = stalwart_nta7516::time::rfc3339(stalwart_nta7516::time::now());
            pending.extend(events_for(
                &plan.template,
                &m,
                &plan.domains.mx,
                &now,
                &mut next_id,
            ));
        }
        if last_batch.elapsed() >= Duration::from_secs(1) {
            post_events(&url, std::mem::take(&mut pending), &tally).await;
            last_batch = Instant::now();
        }
    }
    post_events(&url, pending, &tally).await;
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

async fn run_clients(plan: &Arc<Plan>, urls: &[String], secs: u64, warm: bool) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..plan.args.clients)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            tokio::spawn(client(plan.clone(), i, url, until, tally.clone(), warm))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap()
}

fn report(args: &Args, t: &mut Tally, cpu: Duration, wall: Duration, rss: f64) {
    t.hook.sort();
    t.webhook.sort();
    let per_msg = cpu.as_secs_f64() * 1000.0 / t.messages.max(1) as f64;
    println!(
        "{db:<8} {inst} inst  {clients} clients  rate {rate:>5}  | {msgs:>6} msgs {rps:>7.1}/s  {rcpts} rcpts  {held} held  {events} events \
         | CPU {per_msg:.3} ms/msg | hook p50 {p50:.2} p99 {p99:.2} p999 {p999:.2} ms | webhook p50 {w50:.2} p99 {w99:.2} ms | not-200 {bad} | peak RSS {rss:.0} MiB",
        db = format!("{:?}", args.db).to_lowercase(),
        inst = args.instances,
        clients = args.clients,
        rate = if args.rate > 0.0 { format!("{}", args.rate) } else { "max".into() },
        msgs = t.messages,
        rps = t.messages as f64 / wall.as_secs_f64(),
        rcpts = t.recipients,
        held = t.held,
        events = t.events,
        p50 = percentile(&t.hook, 0.50),
        p99 = percentile(&t.hook, 0.99),
        p999 = percentile(&t.hook, 0.999),
        w50 = percentile(&t.webhook, 0.50),
        w99 = percentile(&t.webhook, 0.99),
        bad = t.not_ok.len(),
    );
    for line in t.not_ok.iter().take(5) {
        println!("  {line}");
    }
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let (mut w, domains) = world().await;
    let smarttls = w.start_dns().await;
    let site = Site::new(args.db).await;
    let mut instances = Vec::new();
    for n in 0..args.instances {
        let cfg = |port| site.config(port, &smarttls, &domains);
        instances.push(start_instance(&site, n, cfg).await);
    }
    let urls: Vec<String> = instances.iter().map(|i| i.url.clone()).collect();
    let plan = Arc::new(Plan {
        body: body(args.body_kb, 1),
        template: event_template(),
        domains,
        args: args.clone(),
    });
    // Warm-up: every domain's verdict cached, connections and statements prepared.
    let warm = run_clients(&plan, &urls, 3, true).await;
    if !warm.not_ok.is_empty() {
        panic!(
            "warm-up answers: {:?}",
            &warm.not_ok[..warm.not_ok.len().min(3)]
        );
    }
    let pids: Vec<u32> = instances.iter().map(|i| i.child.id()).collect();
    let cpu0: Duration = pids.iter().map(|p| cpu_time(*p)).sum();
    let started = Instant::now();
    let mut tally = run_clients(&plan, &urls, args.secs, false).await;
    let wall = started.elapsed();
    // The workers finish what the run gave them (notification mails) before the CPU is read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = pids.iter().map(|p| cpu_time(*p)).sum::<Duration>() - cpu0;
    let rss = pids.iter().map(|p| peak_rss_mib(*p)).fold(0.0, f64::max);
    report(&args, &mut tally, cpu, wall, rss);
    drop(instances);
    drop(w);
}

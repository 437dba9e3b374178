//! Dependency outages (issue 13), each in the middle of a run on one gateway that is never restarted:
//! PostgreSQL restarted, the DNS server stopped (real SmartTLS over the testkit's signed DNS world),
//! SNS unreachable, the release listener refusing. Every test prints its counts and asserts: every
//! message is delivered once, held once, or answered 4xx/5xx; nothing lost, nothing doubled; nothing
//! delivered insecurely; and the gateway recovers by itself once the dependency is back.
//!
//! "Delivered" is either a hook answer that keeps the recipient (Stalwart delivers it under its strict
//! TLS) or a release that reached the release listener; "held" is one hold row that has not left.
//! A hook call answered 503 is what Stalwart turns into `451` for its client, who sends the same
//! message again later: the tests do that retry once the dependency is back.
//!
//! The PostgreSQL test restarts a server of its own ([`PgServer`]), not the shared test server: the
//! other tests of this binary use that one at the same time. SNS is made unreachable by a relay in
//! front of moto ([`Relay`]), so moto keeps its record of every SMS across the outage.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use hyper::{Method, StatusCode};
use nta7516_smarttls::{
    testkit::{LeafKind, World},
    SmartTls,
};
use stalwart_nta7516::policy::smarttls::SmartTlsVerdicts;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::util::{
    self, hook_request, link_in, smtp::Phase, Backend, Browser, Env, Moto, Running, SmtpServer,
    SENDER,
};

// ---------------------------------------------------------------------------------------------
// The ledger: every submitted message, what the gateway answered, where it ended.

/// What the gateway answered one hook call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// `accept`, the recipient kept: Stalwart delivers it.
    Accepted,
    /// `discard` with this hold id.
    Held(String),
    /// A 4xx/5xx HTTP status (Stalwart answers its client `451`).
    Refused(StatusCode),
    /// `reject` (a 5xx to the client).
    Rejected,
}

struct Message {
    marker: String,
    rcpt: String,
    req: serde_json::Value,
    answers: Vec<Answer>,
}

/// The counts the issue asks for, over every message of a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    submitted: usize,
    delivered_once: usize,
    held_once: usize,
    refused: usize,
    lost: usize,
    duplicated: usize,
    /// 4xx/5xx answers along the way (each retried later unless counted in `refused`).
    tempfailed_answers: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "submitted {} · delivered once {} · held once {} · refused {} · lost {} · duplicated {} \
             (503 answers on the way: {})",
            self.submitted,
            self.delivered_once,
            self.held_once,
            self.refused,
            self.lost,
            self.duplicated,
            self.tempfailed_answers
        )
    }
}

#[derive(Default)]
struct Ledger {
    tag: String,
    messages: Vec<Message>,
}

impl Ledger {
    fn new(tag: &str) -> Ledger {
        Ledger {
            tag: tag.to_string(),
            messages: Vec::new(),
        }
    }

    /// A new message to `rcpt` (one recipient, a unique Message-ID); returns its index.
    fn message(&mut self, rcpt: &str) -> usize {
        let i = self.messages.len();
        let marker = format!("<outage-{}-{i}@zorg.test>", self.tag);
        let req = hook_request(
            SENDER,
            &[rcpt],
            &[
                ("From", SENDER),
                ("To", rcpt),
                ("Subject", &format!("uitslag {i}")),
                ("Message-ID", &marker),
            ],
            &format!("Bericht {i} van {}.\r\n", self.tag),
        );
        self.messages.push(Message {
            marker,
            rcpt: rcpt.to_string(),
            req,
            answers: Vec::new(),
        });
        i
    }

    /// Hooks message `i` (again, when it was hooked before: a client's retry) and records the answer.
    async fn submit(&mut self, gw: &Running, i: usize) -> Answer {
        let m = &mut self.messages[i];
        let answer = hook(gw, &m.req, &m.rcpt).await;
        m.answers.push(answer.clone());
        answer
    }

    /// A new message to `rcpt`, hooked once.
    async fn send(&mut self, gw: &Running, rcpt: &str) -> (usize, Answer) {
        let i = self.message(rcpt);
        (i, self.submit(gw, i).await)
    }

    /// The client retries every message whose last answer was a temporary failure.
    async fn retry_refused(&mut self, gw: &Running) -> usize {
        let due: Vec<usize> = (0..self.messages.len())
            .filter(|i| matches!(self.messages[*i].answers.last(), Some(Answer::Refused(_))))
            .collect();
        for i in &due {
            let a = self.submit(gw, *i).await;
            assert!(
                !matches!(a, Answer::Refused(_)),
                "still refused after recovery: {a:?}"
            );
        }
        due.len()
    }

    fn hold_ids(&self, i: usize) -> BTreeSet<String> {
        self.messages[i]
            .answers
            .iter()
            .filter_map(|a| match a {
                Answer::Held(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    /// Where every message ended: from the answers, the holds in the database and what reached the
    /// release listener. Also checks that the database has no hold no answer named (an orphan).
    async fn tally(&self, gw: &Running, release: &SmtpServer) -> Tally {
        let mails = release.messages();
        let mut t = Tally {
            submitted: self.messages.len(),
            ..Tally::default()
        };
        assert!(mails.iter().all(|r| r.tls), "a release without TLS");
        let mut all_holds = BTreeSet::new();
        for (i, m) in self.messages.iter().enumerate() {
            let accepted = m.answers.iter().filter(|a| **a == Answer::Accepted).count();
            t.tempfailed_answers += m
                .answers
                .iter()
                .filter(|a| matches!(a, Answer::Refused(_)))
                .count();
            let released = mails
                .iter()
                .filter(|r| memchr::memmem::find(&r.data, m.marker.as_bytes()).is_some())
                .count();
            let holds = self.hold_ids(i);
            let mut left = 0;
            for id in &holds {
                all_holds.insert(id.clone());
                let (state, queue_id, _) = gw.hold(id, &m.rcpt).await;
                if state == "released" {
                    assert!(queue_id.is_some(), "released without a queue id: {id}");
                    left += 1;
                }
            }
            assert_eq!(
                left, released,
                "{}: hold state and listener disagree",
                m.marker
            );
            let delivered = accepted + released;
            if delivered > 1 || holds.len() > 1 || (accepted > 0 && !holds.is_empty()) {
                t.duplicated += 1;
            } else if delivered == 1 {
                t.delivered_once += 1;
            } else if holds.len() == 1 {
                t.held_once += 1;
            } else if matches!(
                m.answers.last(),
                Some(Answer::Refused(_) | Answer::Rejected)
            ) {
                t.refused += 1;
            } else {
                t.lost += 1;
            }
        }
        let stored = gw.gw.store.count("held_messages").await.unwrap() as usize;
        assert_eq!(stored, all_holds.len(), "held copies no answer named");
        t
    }
}

/// One hook call, with the answer read as the [`Answer`] for `rcpt`.
async fn hook(gw: &Running, req: &serde_json::Value, rcpt: &str) -> Answer {
    let (status, _, body) = util::http(
        Method::POST,
        &gw.url("/v1/mta-hook"),
        &[
            ("authorization", format!("Bearer {}", util::TOKEN)),
            ("content-type", "application/json".into()),
        ],
        serde_json::to_vec(req).unwrap(),
    )
    .await;
    if status != StatusCode::OK {
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{status}"
        );
        return Answer::Refused(status);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    match v["action"].as_str() {
        Some("discard") => Answer::Held(util::held_ref(&v)),
        Some("reject") => Answer::Rejected,
        Some("accept") => {
            let deleted = v["modifications"].as_array().is_some_and(|mods| {
                mods.iter()
                    .any(|m| m["type"] == "deleteRecipient" && m["value"] == rcpt)
            });
            assert!(!deleted, "a single recipient deleted but accepted: {v}");
            Answer::Accepted
        }
        other => panic!("unexpected hook action {other:?}: {v}"),
    }
}

/// Prints the counts and asserts the properties every outage test shares.
fn report(test: &str, t: &Tally) {
    // Straight to stderr, past the test harness's capture: the counts show in every run's output.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "outage {test}: {t}");
    assert_eq!(t.lost, 0, "{test}: lost messages: {t}");
    assert_eq!(t.duplicated, 0, "{test}: duplicated messages: {t}");
    assert_eq!(
        t.delivered_once + t.held_once + t.refused,
        t.submitted,
        "{test}: {t}"
    );
}

async fn healthz(gw: &Running) -> StatusCode {
    util::http(Method::GET, &gw.url("/healthz"), &[], vec![])
        .await
        .0
}

/// Notification mail → link → SMS code → entered: the recipient is verified.
async fn verify(env: &Env, gw: &Running, moto: &Moto, rcpt: &str, phone: &str) -> Browser {
    let (link, mut br) = landing(env, gw, rcpt).await;
    let sent = br.request_code(&link).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let code = moto.last_code(phone).await;
    let done = br.enter_code(&link, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    br
}

/// The portal link of `rcpt`'s notification mail, and a browser for it.
async fn landing(env: &Env, gw: &Running, rcpt: &str) -> (String, Browser) {
    let mail = util::eventually(15, "the notification mail", || async {
        env.notify
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.rcpt_to == [rcpt])
    })
    .await;
    (link_in(&mail.data, "p"), Browser::new(gw, "nl-NL,nl;q=0.9"))
}

// ---------------------------------------------------------------------------------------------
// 1. PostgreSQL restarted mid-run.

/// A PostgreSQL server of this test's own (initdb in a temporary folder, its own port), so that
/// restarting it breaks nothing else: the tests of this binary run in parallel, and the shared test
/// server (`NTA7516_TEST_POSTGRES_DATA`) serves all of them.
struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PgServer {
    /// `None` (a loud skip; a failure under CI) without PostgreSQL's server binaries.
    fn start() -> Option<PgServer> {
        let Some(bin) = pg_bin() else {
            assert!(
                std::env::var("CI").is_err(),
                "CI is set but PostgreSQL's initdb is missing"
            );
            eprintln!("SKIPPED: no /usr/lib/postgresql/*/bin/initdb");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(uid) = postgres_uid() {
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        let pg = PgServer {
            dir,
            bin,
            port: util::free_port(),
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-U", "nta", "-A", "trust", "--no-sync"],
        );
        pg.up();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        let mut cmd = match postgres_uid() {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&tool);
                c
            }
            None => Command::new(&tool),
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (and waits until it accepts connections).
    fn up(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-w", "-o", &opts, "start"],
        );
    }

    /// Stops it the hard way (`-m immediate`: every connection cut, crash recovery at the next start).
    fn down(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://nta@127.0.0.1:{}/{db}", self.port)
    }

    /// [`PgServer::down`] off the runtime's threads (the gateway keeps running meanwhile).
    async fn stop(self: &Arc<Self>) {
        let pg = self.clone();
        tokio::task::spawn_blocking(move || pg.down())
            .await
            .unwrap();
    }

    /// [`PgServer::up`] off the runtime's threads.
    async fn start_again(self: &Arc<Self>) {
        let pg = self.clone();
        tokio::task::spawn_blocking(move || pg.up()).await.unwrap();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let pid = Path::new(&self.data()).join("postmaster.pid");
        if pid.exists() {
            self.down();
        }
    }
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop()
}

/// The `postgres` user's id when running as root (PostgreSQL refuses to run as root).
fn postgres_uid() -> Option<u32> {
    let id = |args: &[&str]| {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .ok()
    };
    (id(&["-u"])? == 0)
        .then(|| id(&["-u", "postgres"]))
        .flatten()
}

/// Holds, notifications and releases across three hard PostgreSQL restarts (the last one under a
/// stream of hook calls). During an outage a hook call answers 503 (also for a verified recipient
/// whose mail would be accepted) or, when the database is back within the pool's 5 s, is answered as
/// usual; never accepted without the database. The health check and the portal say 503 meanwhile. A
/// release whose `250` arrives while the database is down (first restart), and a notification whose
/// `250` does (second restart), are recorded once it is back — not left claimed, so neither is
/// reported uncertain nor sent again. The workers carry on by themselves; one gateway throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run() {
    if !util::postgres_available() {
        return;
    }
    let Some(pg) = PgServer::start().map(Arc::new) else {
        return;
    };
    let Some(moto) = Moto::start().await else {
        return;
    };
    // The stalled replies below stay well inside the submission client's command timeout.
    let slow = "[stalwart]\ntimeout_ms = 20000\n";
    let mut env = Env::new(Backend::Sqlite, Some(moto.url.clone()), slow).await;
    env.db_url = pg.url("postgres");
    let gw = env.start().await;
    let rcpts: Vec<String> = (0..5).map(|i| format!("r{i}@example.test")).collect();
    let phone = |i: usize| format!("+3161222000{i}");
    for (i, r) in rcpts.iter().enumerate() {
        gw.set_phone(r, &phone(i)).await;
    }
    let mut ledger = Ledger::new("pg");

    // Before: two held messages for each of r0..r3, their notifications; r0 verified and released.
    for r in rcpts[..4].iter().chain(&rcpts[..4]) {
        let (_, a) = ledger.send(&gw, r).await;
        assert!(matches!(a, Answer::Held(_)), "{a:?}");
    }
    env.notify.wait_for(4, 15).await;
    verify(&env, &gw, &moto, &rcpts[0], &phone(0)).await;
    env.release.wait_for(2, 15).await;

    // Restart 1: r1 verified while the release listener is slow; its first release is between the
    // final dot and the `250` when PostgreSQL goes down, and the `250` arrives during the outage.
    env.release.stall.next(Phase::AfterDot, usize::MAX);
    verify(&env, &gw, &moto, &rcpts[1], &phone(1)).await;
    env.release.wait_for(3, 15).await;
    pg.stop().await;
    env.release.stall.resume();
    during_outage(
        &env,
        &gw,
        &mut ledger,
        [&rcpts[0], &rcpts[2], "new@example.test"],
    )
    .await;
    pg.start_again().await;
    health_back(&gw).await;
    let (_, _, metrics) = util::http(Method::GET, &gw.url("/metrics"), &[], vec![]).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("nta7516_hook_answers_total{action=\"error\"} 3"),
        "{metrics}"
    );
    assert_eq!(ledger.retry_refused(&gw).await, 3);
    // r1's two holds go out once each (the one sent during the outage is recorded, not resent).
    for i in (0..ledger.messages.len()).filter(|i| ledger.messages[*i].rcpt == rcpts[1]) {
        let id = ledger.hold_ids(i).into_iter().next().unwrap();
        gw.wait_hold(&id, &rcpts[1], "released", 20).await;
    }
    // The worker resumed: the sender notice for the new recipient (no phone) goes out.
    util::eventually(15, "the sender notice for the new recipient", || async {
        (env.notify.messages().len() == 5).then_some(())
    })
    .await;

    // Restart 2: a notification (to r4, new) between its final dot and its `250`.
    env.notify.stall.next(Phase::AfterDot, usize::MAX);
    let (r4, a) = ledger.send(&gw, &rcpts[4]).await;
    let Answer::Held(r4_hold) = a else {
        panic!("{a:?}")
    };
    env.notify.wait_for(6, 15).await;
    pg.stop().await;
    env.notify.stall.resume();
    // Down for longer than the pool's acquire timeout (5 s), so recording the `250` fails at least once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    pg.start_again().await;
    health_back(&gw).await;
    util::eventually(20, "the r4 notification recorded as sent", || async {
        let records = gw.audit(&r4_hold).await;
        records
            .iter()
            .any(|r| r.0 == "notification_sent")
            .then_some(())
    })
    .await;
    assert_eq!(ledger.messages[r4].answers.len(), 1);

    // Restart 3, under load: a stream of messages (to verified r0: accepted; to r3: held) while
    // PostgreSQL stops hard and starts again, some calls inside their transaction when it goes.
    let stream = async {
        for k in 0..12 {
            ledger
                .send(&gw, &rcpts[if k % 2 == 0 { 0 } else { 3 }])
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pg.stop().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pg.start_again().await;
    };
    tokio::join!(stream, restart);
    health_back(&gw).await;
    let under_load = ledger.retry_refused(&gw).await;

    // After: r2 verifies and gets all three of its messages (the retried one joined its challenge);
    // verified r0's message from the outage was accepted at the retry.
    verify(&env, &gw, &moto, &rcpts[2], &phone(2)).await;
    let r0_retry = ledger
        .messages
        .iter()
        .find(|m| m.rcpt == rcpts[0] && m.answers.len() == 2)
        .unwrap();
    assert_eq!(r0_retry.answers[1], Answer::Accepted);
    let released_expected = 2 + 2 + 3;
    env.release.wait_for(released_expected, 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.release.messages().len(), released_expected);
    let notices: Vec<Vec<String>> = env
        .notify
        .messages()
        .into_iter()
        .map(|m| m.rcpt_to)
        .collect();
    assert_eq!(notices.len(), 6, "one notification each: {notices:?}");
    let t = ledger.tally(&gw, &env.release).await;
    report("postgres restart", &t);
    assert_eq!(t.tempfailed_answers, 3 + under_load);
    assert_eq!((t.delivered_once, t.held_once), (8 + 6, 4 + 6), "{t}");
    let chain = gw.gw.store.verify_audit().await.unwrap();
    assert!(chain.ok(), "{:?}", chain.findings);
    gw.stop().await;
}

/// While the database is down: a message to each of `rcpts` is answered 503, the health check is 503,
/// the portal shows its error page (all at once: each waits for the pool's 5 s acquire timeout).
async fn during_outage(env: &Env, gw: &Running, ledger: &mut Ledger, rcpts: [&str; 3]) {
    let during: Vec<usize> = rcpts.into_iter().map(|r| ledger.message(r)).collect();
    let (link, mut br) = landing(env, gw, rcpts[1]).await;
    let m = |k: usize| &ledger.messages[during[k]];
    let (a0, a1, a2, health, page) = tokio::join!(
        hook(gw, &m(0).req, &m(0).rcpt),
        hook(gw, &m(1).req, &m(1).rcpt),
        hook(gw, &m(2).req, &m(2).rcpt),
        healthz(gw),
        br.get(&link),
    );
    for (i, a) in during.iter().zip([a0, a1, a2]) {
        assert_eq!(a, Answer::Refused(StatusCode::SERVICE_UNAVAILABLE));
        ledger.messages[*i].answers.push(a);
    }
    assert_eq!(health, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
}

async fn health_back(gw: &Running) {
    util::eventually(15, "health back", || async {
        (healthz(gw).await == StatusCode::OK).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. The DNS server stopped mid-run (real SmartTLS).

/// How long an `unknown` (or `insecure`) verdict is cached in this test (`ttl_failure`, 300 s by
/// default): after the outage a domain probed during it is judged again once this has passed.
const TTL_FAILURE_SECS: u64 = 2;

/// Real SmartTLS verdicts over the testkit's signed DNS; the DNS server stops and starts again on the
/// same address. Expected, and why:
/// - a domain proven secure *before* the outage is still delivered during it, from the cache (the
///   proof stays valid for `ttl_secure`; the cache is per instance, and an outage does not undo a
///   DNSSEC proof already made; Stalwart then delivers under its own strict DANE/MTA-STS rules);
/// - a domain not yet proven is `unknown` while DNS is down: held for the portal, never delivered;
/// - after the restart, new domains are probed and delivered again, by the same gateway; a domain
///   probed during the outage stays `unknown` for `ttl_failure`, then is delivered again.
async fn dns_stopped_mid_run(b: Backend) {
    let mut world = World::new().await;
    world.legacy_probe = false;
    let mx = world.mx_server("mx", LeafKind::Good).await;
    let domains: Vec<String> = (0..9)
        .map(|i| world.domain(&format!("d{i}"), &[(10, &mx)]))
        .collect();
    let mut cfg = world.start_dns().await;
    cfg.ttl_failure = TTL_FAILURE_SECS;
    cfg.dns_timeout_ms = 1_000;
    let st = SmartTls::new(cfg).unwrap();
    let env = Env::new(
        b,
        None,
        "[policy]\ndefault = \"exempt\"\n[hook]\ntls_budget_ms = 8000\n",
    )
    .await;
    let gw = env.start_with_tls(Arc::new(SmartTlsVerdicts(st))).await;
    let rcpt = |d: usize| format!("bob@{}", domains[d]);
    let mut ledger = Ledger::new(&format!("dns-{b:?}"));

    for d in 0..3 {
        assert_eq!(ledger.send(&gw, &rcpt(d)).await.1, Answer::Accepted);
    }
    world.dns.as_mut().unwrap().stop().await;
    // Proven before the outage: delivered from the cache.
    assert_eq!(ledger.send(&gw, &rcpt(0)).await.1, Answer::Accepted);
    // Not proven yet: unknown → held for the portal, never delivered.
    for d in 3..6 {
        let (i, a) = ledger.send(&gw, &rcpt(d)).await;
        let Answer::Held(id) = a else {
            panic!("{a:?} for {} while DNS is down", rcpt(d));
        };
        let decisions = gw.gw.store.decisions(&id).await.unwrap();
        assert_eq!(decisions[0].1, "portal", "{decisions:?}");
        assert!(decisions[0].2.contains("tls_unknown"), "{decisions:?}");
        assert_eq!(ledger.messages[i].answers.len(), 1);
    }
    world.dns.as_mut().unwrap().restart().await;
    // Back, same gateway: new domains are delivered again.
    for d in 6..9 {
        assert_eq!(ledger.send(&gw, &rcpt(d)).await.1, Answer::Accepted);
    }
    // A domain probed during the outage, once its `unknown` has expired.
    tokio::time::sleep(Duration::from_secs(TTL_FAILURE_SECS) + Duration::from_millis(500)).await;
    assert_eq!(ledger.send(&gw, &rcpt(3)).await.1, Answer::Accepted);
    let t = ledger.tally(&gw, &env.release).await;
    report(&format!("dns stopped ({b:?})"), &t);
    assert_eq!((t.delivered_once, t.held_once), (8, 3), "{t}");
    // The held ones stay held for the portal (nothing re-delivers them behind the recipient's back).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.release.messages().is_empty());
    gw.stop().await;
}

/// The release path while DNS is down (real SmartTLS, 2FA required): a domain proven secure when the
/// message was held, whose proof has expired (`ttl_secure` 3 s here) by the time the recipient
/// verifies during the outage, is `unknown` at the release's re-check — the message goes to the
/// portal (readable there), never over SMTP. Once DNS is back, the same gateway delivers the verified
/// recipient's next message.
async fn dns_stopped_at_release(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let mut world = World::new().await;
    world.legacy_probe = false;
    let mx = world.mx_server("mx", LeafKind::Good).await;
    let domain = world.domain("care", &[(10, &mx)]);
    let mut cfg = world.start_dns().await;
    cfg.ttl_secure = 3;
    cfg.ttl_failure = TTL_FAILURE_SECS;
    cfg.dns_timeout_ms = 1_000;
    let st = SmartTls::new(cfg).unwrap();
    let env = Env::new(b, Some(moto.url.clone()), "[hook]\ntls_budget_ms = 8000\n").await;
    let gw = env.start_with_tls(Arc::new(SmartTlsVerdicts(st))).await;
    let (rcpt, phone) = (format!("bob@{domain}"), "+31612500001");
    gw.set_phone(&rcpt, phone).await;
    let mut ledger = Ledger::new(&format!("dns-release-{b:?}"));
    let (_, a) = ledger.send(&gw, &rcpt).await;
    let Answer::Held(id) = a else { panic!("{a:?}") };
    let decisions = gw.gw.store.decisions(&id).await.unwrap();
    assert_eq!(decisions[0].1, "challenge", "{decisions:?}");
    assert!(decisions[0].2.contains("tls_secure"), "{decisions:?}");

    world.dns.as_mut().unwrap().stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    verify(&env, &gw, &moto, &rcpt, phone).await;
    gw.wait_hold(&id, &rcpt, "portal", 20).await;
    assert!(gw.content_held(&id).await, "readable on the portal");
    assert!(env.release.messages().is_empty(), "nothing over SMTP");

    world.dns.as_mut().unwrap().restart().await;
    tokio::time::sleep(Duration::from_secs(TTL_FAILURE_SECS) + Duration::from_millis(500)).await;
    assert_eq!(ledger.send(&gw, &rcpt).await.1, Answer::Accepted);
    let t = ledger.tally(&gw, &env.release).await;
    report(&format!("dns stopped at release ({b:?})"), &t);
    assert_eq!((t.delivered_once, t.held_once), (1, 1), "{t}");
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. SNS unreachable.

/// A TCP relay in front of a server: stopped, every connection (also kept-alive ones) is cut and new
/// ones are refused — the server unreachable, while it keeps its own state.
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let mut r = Relay {
            addr: "127.0.0.1:0".parse().unwrap(),
            target,
            task: None,
        };
        r.listen().await;
        r
    }

    async fn listen(&mut self) {
        let mut listener = None;
        for _ in 0..100 {
            if let Ok(l) = TcpListener::bind(self.addr).await {
                listener = Some(l);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listener = listener.expect("relay listens");
        self.addr = listener.local_addr().unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        }));
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn restart(&mut self) {
        self.stop();
        self.listen().await;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SNS unreachable when the recipient asks for a code: the portal shows its error page, the audit says
/// `sms_failed` (unreachable), no code is stored (no `sms_sent`, entering a code finds none); once SNS
/// is reachable again the next request sends one SMS and the message is released once.
async fn sns_unreachable(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let moto_addr: SocketAddr = moto.url.trim_start_matches("http://").parse().unwrap();
    let mut relay = Relay::start(moto_addr).await;
    let env = Env::new(b, Some(format!("http://{}", relay.addr)), "").await;
    let gw = env.start().await;
    let (rcpt, phone) = ("bob@example.test", "+31612300001");
    gw.set_phone(rcpt, phone).await;
    let mut ledger = Ledger::new(&format!("sns-{b:?}"));
    let (_, a) = ledger.send(&gw, rcpt).await;
    let Answer::Held(id) = a else { panic!("{a:?}") };
    let (link, mut br) = landing(&env, &gw, rcpt).await;

    relay.stop();
    for _ in 0..2 {
        let page = br.request_code(&link).await;
        assert_eq!(
            page.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            page.body
        );
        assert!(
            page.body.contains("Probeer het later opnieuw"),
            "{}",
            page.body
        );
    }
    // Nothing marked sent: no code to enter, the audit has the failures only.
    let page = br.enter_code(&link, "123456").await;
    assert_ne!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let kinds = |records: Vec<(String, Option<String>, serde_json::Value)>| {
        records.into_iter().map(|r| (r.0, r.2)).collect::<Vec<_>>()
    };
    let records = kinds(gw.audit(&id).await);
    let failed: Vec<_> = records.iter().filter(|r| r.0 == "sms_failed").collect();
    assert_eq!(failed.len(), 2, "{records:?}");
    assert!(
        failed[0].1.to_string().contains("unreachable"),
        "{failed:?}"
    );
    assert!(!records.iter().any(|r| r.0 == "sms_sent"), "{records:?}");
    assert_eq!(moto.count_to(phone).await, 0);
    assert_eq!(gw.hold(&id, rcpt).await.0, "held");

    relay.restart().await;
    let page = br.request_code(&link).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let code = moto.last_code(phone).await;
    let done = br.enter_code(&link, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    gw.wait_hold(&id, rcpt, "released", 15).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(moto.count_to(phone).await, 1, "one SMS, not two");
    // As documented: the failed requests count toward the SMS limits like the sent one (5 per
    // recipient per window by default), so a recipient who kept trying during the outage may wait.
    let window = gw.gw.config.portal.rate_window_secs;
    let scope = stalwart_nta7516::store::ratelimit::Scope::SmsRecipient;
    let taken = gw
        .gw
        .store
        .rate_count(scope, rcpt, window, stalwart_nta7516::time::now());
    assert_eq!(taken.await.unwrap(), 3);
    let records = kinds(gw.audit(&id).await);
    assert_eq!(records.iter().filter(|r| r.0 == "sms_sent").count(), 1);
    let t = ledger.tally(&gw, &env.release).await;
    report(&format!("sns unreachable ({b:?})"), &t);
    assert_eq!(t.delivered_once, 1, "{t}");
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. The release listener refusing.

/// The ways the release listener refuses, in turn, each for a few release attempts.
const REFUSALS: &[(&str, Option<(&str, &str)>)] = &[
    ("not listening", None),
    ("451 at MAIL", Some(("MAIL", "451 4.3.0 Try again later"))),
    (
        "550 at RCPT",
        Some(("RCPT", "550 5.1.1 Mailbox unavailable")),
    ),
    (
        "554 at DATA",
        Some(("DATA", "554 5.3.0 Transaction failed")),
    ),
    (
        "452 at RCPT",
        Some(("RCPT", "452 4.5.3 Too many recipients")),
    ),
];

/// Verified recipients whose holds are due while the release listener refuses (down, then 4xx/5xx at
/// MAIL, RCPT and DATA): every hold stays in its retry state with its content, every failed attempt is
/// audited; when the listener accepts again each release goes out once.
async fn release_listener_refusing(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let mut env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let rcpts = ["ann@example.test", "ben@example.test"];
    let mut ledger = Ledger::new(&format!("release-{b:?}"));
    for (i, r) in rcpts.iter().enumerate() {
        gw.set_phone(r, &format!("+3161240000{i}")).await;
        for _ in 0..3 {
            assert!(matches!(ledger.send(&gw, r).await.1, Answer::Held(_)));
        }
    }
    env.notify.wait_for(2, 15).await;
    env.release.stop();
    for (i, r) in rcpts.iter().enumerate() {
        verify(&env, &gw, &moto, r, &format!("+3161240000{i}")).await;
    }
    let holds: Vec<(String, String)> = (0..ledger.messages.len())
        .map(|i| {
            let id = ledger.hold_ids(i).into_iter().next().unwrap();
            (id, ledger.messages[i].rcpt.clone())
        })
        .collect();
    let mut listening = false;
    for (what, refusal) in REFUSALS {
        if refusal.is_some() && !listening {
            env.release.restart().await;
            listening = true;
        }
        *env.release.fail_at.lock().unwrap() = *refusal;
        let before = failed_attempts(&gw, &holds).await;
        util::eventually(15, &format!("release attempts while {what}"), || async {
            (failed_attempts(&gw, &holds).await >= before + holds.len()).then_some(())
        })
        .await;
        for (id, rcpt) in &holds {
            let (state, qid, _) = gw.hold(id, rcpt).await;
            assert!(
                ["releasing", "sending", "committing"].contains(&state.as_str()),
                "{what}: {state}"
            );
            assert!(qid.is_none(), "{what}");
            assert!(gw.content_held(id).await, "{what}: content kept");
        }
        assert!(
            env.release.messages().is_empty(),
            "{what}: nothing delivered"
        );
    }
    *env.release.fail_at.lock().unwrap() = None;
    for (id, rcpt) in &holds {
        gw.wait_hold(id, rcpt, "released", 20).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(env.release.messages().len(), holds.len(), "once each");
    // Every refusal is in the audit trail with the listener's reply.
    let log = gw.whole_audit_log().await;
    for code in ["451 to MAIL", "550 to RCPT", "554 to DATA", "452 to RCPT"] {
        assert!(log.contains(code), "{code} not audited");
    }
    let t = ledger.tally(&gw, &env.release).await;
    report(&format!("release listener refusing ({b:?})"), &t);
    assert_eq!(t.delivered_once, 6, "{t}");
    gw.stop().await;
}

/// `release_failed` records of these holds so far.
async fn failed_attempts(gw: &Running, holds: &[(String, String)]) -> usize {
    let mut n = 0;
    for (id, _) in holds {
        n += gw
            .audit(id)
            .await
            .iter()
            .filter(|r| r.0 == "release_failed")
            .count();
    }
    n
}

both_backends!(
    dns_stopped_mid_run,
    dns_stopped_at_release,
    sns_unreachable,
    release_listener_refusing
);

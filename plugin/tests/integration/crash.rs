//! kill -9 at every step: three `serve` processes on one PostgreSQL database (`util::procs`), 1 000
//! submissions through the hook at concurrency 8 while a random instance is SIGKILLed and restarted
//! every second or so (during hook calls, between a commit and its answer, during notifications and
//! releases), then kills at chosen points: a release stopped before `DATA`, one after its final dot,
//! a notification after its final dot (the SMTP stand-in stalls there, the test kills the process that
//! holds the connection). A hook call that got no answer is retried like Stalwart retries. Afterwards
//! every message is delivered once, held once or was refused; nothing is lost, nothing is doubled.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};

use crate::cluster::{copies, message, notices};
use crate::util::{
    self,
    procs::{hook_at, owner_of, Cluster, Proc},
    smtp::{Phase, SmtpServer},
    Browser, Moto,
};
use stalwart_nta7516::store::Store;

const SUBMISSIONS: usize = 1000;
const CONCURRENCY: usize = 8;

/// xorshift64*: the test's randomness, from a printed seed (`NTA7516_CRASH_SEED` repeats a run).
#[derive(Clone)]
struct Rng(Arc<Mutex<u64>>);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("NTA7516_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("crash test seed: {seed}");
        Rng(Arc::new(Mutex::new(seed)))
    }
    fn below(&self, n: u64) -> u64 {
        let mut x = self.0.lock().unwrap();
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % n.max(1)
    }
    fn millis(&self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// What the hook said in the end about one message.
#[derive(Debug)]
enum Final {
    Answer(serde_json::Value),
    /// Refused (4xx/5xx other than 503); the status is for the printed list.
    Refused(#[allow(dead_code)] StatusCode),
}

/// Notification mails per (recipient, link path): a mail sent again is the same link again.
fn notices_per_link(c: &Cluster) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for m in c.notify.messages() {
        let text = String::from_utf8_lossy(&m.data);
        let path = ["/p/", "/s/"]
            .iter()
            .find_map(|k| {
                text.find(k).map(|i| {
                    text[i..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
            })
            .unwrap_or_default();
        *out.entry((m.rcpt_to.join(","), path)).or_insert(0) += 1;
    }
    out
}

async fn scalar(c: &Cluster, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(c.store.pool())
        .await
        .unwrap()
}

struct Sent {
    msgid: String,
    rcpts: Vec<String>,
    answer: Final,
    /// Calls without an answer (the process was killed), each retried.
    unanswered: usize,
}

/// Submits `body` until it is answered (a call without an answer or a 503 is retried on another
/// instance, as Stalwart retries after its 451).
async fn submit(bases: &[String], rng: &Rng, body: Vec<u8>) -> (Final, usize) {
    let mut unanswered = 0;
    for _ in 0..200 {
        let url = format!(
            "{}/v1/mta-hook",
            bases[rng.below(bases.len() as u64) as usize]
        );
        match hook_at(&url, body.clone()).await {
            Ok((StatusCode::OK, b)) => {
                return (
                    Final::Answer(serde_json::from_slice(&b).unwrap()),
                    unanswered,
                )
            }
            Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => {}
            Ok((status, _)) => return (Final::Refused(status), unanswered),
            Err(_) => unanswered += 1,
        }
        tokio::time::sleep(rng.millis(20, 200)).await;
    }
    panic!("a submission was never answered");
}

/// Every recipient pool of the run.
struct Pools {
    /// Exempt, secure: delivered at once.
    open: Vec<String>,
    /// 2FA: held until verified, then released (and later messages delivered).
    challenged: Vec<String>,
    /// Insecure: held for the portal.
    insecure: Vec<String>,
}

impl Pools {
    fn new(c: &Cluster) -> Pools {
        let d = &c.domains;
        Pools {
            open: (0..20).map(|i| format!("o{i}@{}", d.open)).collect(),
            challenged: (0..8).map(|i| format!("c{i}@{}", d.secure)).collect(),
            insecure: (0..4).map(|i| format!("p{i}@{}", d.insecure)).collect(),
        }
    }
    fn pick(&self, rng: &Rng) -> String {
        let pool = match rng.below(10) {
            0..=3 => &self.open,
            4..=8 => &self.challenged,
            _ => &self.insecure,
        };
        pool[rng.below(pool.len() as u64) as usize].clone()
    }
}

fn phone(rcpt: &str) -> String {
    let n: u32 = rcpt[1..rcpt.find('@').unwrap()].parse().unwrap();
    format!("+316555000{n:02}")
}

/// Kills a random instance every 0.3–1.5 s and starts it again 0.1–0.6 s later, until `done`.
async fn killer(procs: &mut [Proc], rng: &Rng, done: &AtomicBool) -> usize {
    let mut kills = 0;
    while !done.load(SeqCst) {
        tokio::time::sleep(rng.millis(300, 1500)).await;
        let i = rng.below(procs.len() as u64) as usize;
        procs[i].kill();
        kills += 1;
        tokio::time::sleep(rng.millis(100, 600)).await;
        procs[i].restart().await;
    }
    kills
}

/// Portal verification that survives kills: the code requested on one instance and entered on
/// another, the whole again from another instance when a step gets no answer. Returns the code
/// requests made.
async fn verify(
    bases: &[String],
    rng: &Rng,
    (moto, notify, store): (&Moto, &SmtpServer, &Store),
    rcpt: &str,
) -> usize {
    let mut requests = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(Instant::now() < deadline, "{rcpt} could not verify");
        // A code entry whose answer was lost may have verified already.
        let verified: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM challenges WHERE recipient = $1 AND state = 'verified'",
        )
        .bind(rcpt)
        .fetch_one(store.pool())
        .await
        .unwrap();
        if verified > 0 {
            return requests;
        }
        let link = newest_link(notify, rcpt).await;
        let i = rng.below(bases.len() as u64) as usize;
        let mut br = Browser::at(&bases[i], "nl-NL");
        let step = async {
            let landing = br.try_go(Method::GET, &link, None).await?;
            if landing.status != StatusCode::OK {
                return Err(format!("landing {}", landing.status));
            }
            let csrf = landing.csrf();
            requests += 1;
            let sms = format!("{link}/sms");
            let sent = br
                .try_go(Method::POST, &sms, Some(&[("csrf", &csrf)]))
                .await?;
            if sent.status != StatusCode::SEE_OTHER {
                return Err(format!("code request {}", sent.status));
            }
            let code = moto.last_code(&phone(rcpt)).await;
            br.switch_to(&bases[(i + 1) % bases.len()]);
            let form_path = format!("{link}/code");
            let form = br.try_go(Method::GET, &form_path, None).await?;
            let csrf = form.csrf();
            let fields = [("csrf", csrf.as_str()), ("code", code.as_str())];
            let done = br.try_go(Method::POST, &form_path, Some(&fields)).await?;
            match done.location.as_deref() {
                Some(l) if l.ends_with("/messages") => Ok(()),
                _ => Err(format!("code entry {}", done.status)),
            }
        };
        match step.await {
            Ok(()) => return requests,
            Err(e) => eprintln!("verification of {rcpt} again: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn newest_link(notify: &SmtpServer, rcpt: &str) -> String {
    util::eventually(60, &format!("a notification to {rcpt}"), || async {
        notify
            .messages()
            .iter()
            .rev()
            .find(|m| m.rcpt_to == [rcpt])
            .map(|m| util::link_in(&m.data, "p"))
    })
    .await
}

/// Stops the next message at `server` at `phase`, runs `trigger`, and kills the instance holding the
/// stopped connection, then starts it again. Returns which instance it was.
async fn kill_at(
    procs: &mut [Proc],
    server: &SmtpServer,
    phase: Phase,
    trigger: impl std::future::Future<Output = usize>,
) -> (usize, usize) {
    let dropped = server.stall.dropped();
    server.stall.next(phase, 1);
    let (requests, peer) = tokio::join!(trigger, async {
        util::eventually(60, "a stopped session", || async {
            server.stall.stopped().first().copied()
        })
        .await
    });
    let owner = owner_of(procs, peer.port()).expect("the process holding the stopped connection");
    procs[owner].kill();
    util::eventually(10, "the stopped session to see the kill", || async {
        (server.stall.dropped() > dropped).then_some(())
    })
    .await;
    server.stall.resume();
    procs[owner].restart().await;
    (owner, requests)
}

/// Kills instance `i` during one hook call: before its commit (its transaction waits for the audit
/// chain's head, which the test locks meanwhile), or after it (the answer is there to read, and
/// nobody reads it). The caller asks again, as Stalwart would.
async fn kill_in_hook(procs: &mut [Proc], i: usize, store: &Store, body: &[u8], commit: bool) {
    use tokio::io::AsyncWriteExt;
    let mut lock = None;
    if !commit {
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await
            .unwrap();
        lock = Some(tx);
    }
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", procs[i].port))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/mta-hook HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        util::TOKEN,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    if commit {
        // The first byte of the answer: the transaction committed.
        tokio::time::timeout(Duration::from_secs(20), tcp.readable())
            .await
            .unwrap()
            .unwrap();
    } else {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    procs[i].kill();
    drop(tcp);
    if let Some(tx) = lock {
        tx.rollback().await.unwrap();
    }
    procs[i].restart().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_every_step() {
    util::init_log();
    let started = Instant::now();
    let Some(mut c) = Cluster::start(3, "").await else {
        return;
    };
    let rng = Rng::new();
    let pools = Pools::new(&c);
    // c9 is the phase-2 recipient whose notification is killed after its dot.
    let fresh = format!("c9@{}", c.domains.secure);
    for r in pools.challenged.iter().chain([&fresh]) {
        c.set_phone(r, &phone(r)).await;
    }
    let bases: Vec<String> = (0..c.procs.len()).map(|i| c.base(i)).collect();

    // Phase 1: the submissions, a random kill every second or so, and half of the challenged
    // recipients verifying meanwhile (their releases run under the kills too).
    let done = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    let plan: Arc<Vec<(String, Vec<String>)>> = Arc::new(
        (0..SUBMISSIONS)
            .map(|k| {
                let mut rcpts = vec![pools.pick(&rng)];
                if rng.below(3) == 0 {
                    let other = pools.pick(&rng);
                    if !rcpts.contains(&other) {
                        rcpts.push(other);
                    }
                }
                (format!("<crash-{k}@zorg.test>"), rcpts)
            })
            .collect(),
    );
    for _ in 0..CONCURRENCY {
        let (bases, rng, next, sent, plan) = (
            bases.clone(),
            rng.clone(),
            next.clone(),
            sent.clone(),
            plan.clone(),
        );
        clients.spawn(async move {
            loop {
                let k = next.fetch_add(1, SeqCst);
                let Some((msgid, rcpts)) = plan.get(k) else {
                    return;
                };
                let to: Vec<&str> = rcpts.iter().map(String::as_str).collect();
                let (answer, unanswered) = submit(&bases, &rng, message(&to, msgid)).await;
                sent.lock().unwrap().push(Sent {
                    msgid: msgid.clone(),
                    rcpts: rcpts.clone(),
                    answer,
                    unanswered,
                });
            }
        });
    }
    let (requests, random_kills) = {
        let Cluster {
            procs,
            moto,
            notify,
            release,
            store: c_store,
            ..
        } = &mut c;
        let c_store = &*c_store;
        let early: Vec<String> = pools.challenged[..4].to_vec();
        let (random_kills, early_requests, ()) = tokio::join!(
            killer(procs, &rng, &done),
            async {
                let mut n = 0;
                for r in &early {
                    while !notify.messages().iter().any(|m| m.rcpt_to == [r.as_str()]) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    n += verify(&bases, &rng, (moto, notify, c_store), r).await;
                }
                n
            },
            async {
                while clients.join_next().await.is_some() {}
                done.store(true, SeqCst);
            }
        );
        println!(
            "phase 1: {SUBMISSIONS} submissions, {random_kills} random kills, {:?}",
            started.elapsed()
        );

        // Phase 2: kills at chosen points. A release stopped before DATA, one after its final dot.
        let late = &pools.challenged[4..];
        let mut requests = early_requests;
        for (phase, r) in [(Phase::BeforeData, &late[0]), (Phase::AfterDot, &late[1])] {
            let (owner, n) = kill_at(
                procs,
                release,
                phase,
                verify(&bases, &rng, (moto, notify, c_store), r),
            )
            .await;
            println!("killed gateway {owner} in a release stopped at {phase:?}");
            requests += n;
        }
        // A hook killed inside its transaction (waiting for the audit chain's head, which the test
        // holds), and one killed after its commit with its answer unread: both asked again elsewhere.
        for (k, commit) in [(0, false), (1, true)] {
            let msgid = format!("<crash-hook-{k}@zorg.test>");
            let rcpts = vec![pools.challenged[6 + k].clone(), pools.open[k].clone()];
            let to: Vec<&str> = rcpts.iter().map(String::as_str).collect();
            let body = message(&to, &msgid);
            let i = rng.below(procs.len() as u64) as usize;
            kill_in_hook(procs, i, c_store, &body, commit).await;
            let (answer, unanswered) = submit(&bases, &rng, body).await;
            sent.lock().unwrap().push(Sent {
                msgid,
                rcpts,
                answer,
                unanswered: unanswered + 1,
            });
            println!(
                "killed gateway {i} in a hook call {}",
                if commit {
                    "after its commit"
                } else {
                    "before its commit"
                }
            );
        }
        // A notification stopped after its final dot: a new recipient's first message.
        let msgid = "<crash-notice@zorg.test>".to_string();
        let body = message(&[&fresh], &msgid);
        let (owner, _) = kill_at(procs, notify, Phase::AfterDot, async {
            let (answer, unanswered) = submit(&bases, &rng, body).await;
            let rcpts = vec![fresh.clone()];
            sent.lock().unwrap().push(Sent {
                msgid,
                rcpts,
                answer,
                unanswered,
            });
            0
        })
        .await;
        println!("killed gateway {owner} in a notification stopped after its dot");
        for r in &late[2..] {
            requests += verify(&bases, &rng, (moto, notify, c_store), r).await;
        }
        println!("phase 2 done, {:?}", started.elapsed());
        (requests, random_kills)
    };

    // Every claim of a killed process is taken over after the lease; wait until no release is open.
    // The killed notification is due again after the lease too: sent again (better twice than none).
    let open_states = "('releasing', 'sending', 'committing')";
    util::eventually(
        120,
        "every release to end and the killed notification to be re-sent",
        || async {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM holds WHERE state IN {open_states}"
            ))
            .fetch_one(c.store.pool())
            .await
            .unwrap();
            let again = notices(&c).get(&fresh).copied().unwrap_or(0) >= 2;
            (n == 0 && again).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    check(&c, &sent, requests, random_kills).await;
    println!("crash test took {:?}", started.elapsed());
}

/// The end state against every answer: counts, and the properties.
async fn check(c: &Cluster, sent: &[Sent], requests: usize, random_kills: usize) {
    assert_eq!(
        sent.len(),
        SUBMISSIONS + 3,
        "the submissions and the three of phase 2"
    );
    let holds = hold_states(c).await;
    let copies = copies(c);
    let mut answered_held: HashSet<(String, String)> = HashSet::new();
    let (mut delivered, mut held, mut refused, mut lost, mut doubled) = (0, 0, 0, 0, 0);
    let mut held_ids: HashSet<String> = HashSet::new();
    let mut refusals = Vec::new();
    for s in sent {
        let a = match &s.answer {
            Final::Answer(a) if a["action"] != "reject" => a,
            other => {
                refusals.push(format!("{other:?}"));
                refused += s.rcpts.len();
                continue;
            }
        };
        let (held_rcpts, id) = held_of(a, &s.rcpts);
        if let Some(id) = &id {
            held_ids.insert(id.clone());
        }
        for r in &s.rcpts {
            let n_copies = copies
                .get(&(s.msgid.clone(), r.clone()))
                .copied()
                .unwrap_or(0);
            if !held_rcpts.contains(r) {
                // Delivered by Stalwart on this answer: never also held or released.
                let also_held = id
                    .as_ref()
                    .is_some_and(|id| holds.contains_key(&(id.clone(), r.clone())));
                if also_held || n_copies > 0 {
                    doubled += 1;
                } else {
                    delivered += 1;
                }
                continue;
            }
            let id = id.clone().expect("a held answer names its hold");
            answered_held.insert((id.clone(), r.clone()));
            match holds.get(&(id, r.clone())).map(String::as_str) {
                None => lost += 1,
                Some(_) if n_copies > 1 => doubled += 1,
                Some("released") if n_copies == 0 => lost += 1,
                Some("released") => held += 1,
                Some("uncertain") => held += 1,
                Some(_) if n_copies > 0 => doubled += 1,
                Some(_) => held += 1,
            }
        }
    }
    // No held copy nobody was told about (it would be released beside a delivery).
    let stored: HashSet<String> = holds.keys().map(|(id, _)| id.clone()).collect();
    let orphans: Vec<&String> = stored.difference(&held_ids).collect();
    let unanswered: usize = sent.iter().map(|s| s.unanswered).sum();
    let retried = sent.iter().filter(|s| s.unanswered > 0).count();
    let uncertain = holds.values().filter(|s| *s == "uncertain").count();
    let released = holds.values().filter(|s| *s == "released").count();
    let mails = notices_per_link(c);
    let resent: usize = mails.values().map(|n| n.saturating_sub(1)).sum();
    // A hold on a challenge already verified would never be released.
    let stuck = scalar(
        c,
        "SELECT COUNT(*) FROM holds h JOIN challenges ch ON ch.id = h.challenge_id \
         WHERE h.state = 'held' AND ch.state = 'verified'",
    )
    .await;
    // Held copies whose hook call committed, lost its answer and was answered again with that hold.
    let committed_unanswered = scalar(
        c,
        "SELECT COUNT(*) FROM (SELECT message_ref FROM decisions \
         GROUP BY message_ref HAVING COUNT(*) > COUNT(DISTINCT recipient)) x",
    )
    .await;
    let sms = c.moto.sms().await.len();
    let chain = c.store.verify_audit().await.unwrap();
    let kills: usize = c.procs.iter().map(|p| p.kills).sum();
    let challenges: Vec<(String, i64)> =
        sqlx::query_as("SELECT recipient, COUNT(*) FROM challenges GROUP BY recipient")
            .fetch_all(c.store.pool())
            .await
            .unwrap();
    let recipients: usize = sent.iter().map(|s| s.rcpts.len()).sum();
    let asked_again = challenges.iter().filter(|(_, n)| *n > 1).count();
    println!(
        "kill -9: submitted {} messages ({recipients} recipients) / delivered once {delivered} / held once {held} / refused {refused} / \
         lost {lost} / duplicated {doubled} (recipient counts); {kills} kills ({random_kills} random), {unanswered} \
         hook calls unanswered ({retried} messages retried, {committed_unanswered} of them committed before the kill), releases {released} + uncertain {uncertain} \
         (operator settles), notifications {} ({resent} re-sent after a crash), SMS {sms} for {requests} code \
         requests, challenges {} ({asked_again} recipients asked again: a message decided just before their \
         verification committed), audit records {}; refusals {refusals:?}",
        sent.len(),
        mails.values().sum::<usize>(),
        challenges.len(),
        chain.records
    );
    assert_eq!(delivered + held + refused + lost + doubled, recipients);
    assert_eq!(stuck, 0, "holds left held on a verified challenge");
    assert!(
        committed_unanswered >= 1,
        "the hook killed after its commit"
    );
    assert_eq!((lost, doubled), (0, 0), "{}", c.logs());
    assert!(
        orphans.is_empty(),
        "held copies no answer named: {orphans:?}"
    );
    assert!(
        uncertain >= 2,
        "the releases killed before DATA and after the dot are uncertain"
    );
    assert!(sms <= requests, "an SMS without a request");
    assert!(chain.ok(), "{:?}", chain.findings);
}

/// `(message id, recipient) → hold state` of every hold.
async fn hold_states(c: &Cluster) -> HashMap<(String, String), String> {
    use sqlx::Row;
    sqlx::query("SELECT message_id, recipient, state FROM holds")
        .fetch_all(c.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

/// The recipients an answer held and the hold id it named.
fn held_of(a: &serde_json::Value, rcpts: &[String]) -> (Vec<String>, Option<String>) {
    match a["action"].as_str() {
        Some("discard") => (rcpts.to_vec(), Some(util::held_ref(a))),
        Some("accept") => {
            let mods = a["modifications"].as_array().cloned().unwrap_or_default();
            let held: Vec<String> = mods
                .iter()
                .filter(|m| m["type"] == "deleteRecipient")
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect();
            let id = mods
                .iter()
                .find(|m| m["name"] == "X-NTA7516-Id")
                .and_then(|m| m["value"].as_str().map(str::to_string))
                .filter(|_| !held.is_empty());
            (held, id)
        }
        _ => (vec![], None),
    }
}

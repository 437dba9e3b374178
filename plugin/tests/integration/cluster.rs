//! Several gateway processes on one PostgreSQL database (`util::procs`): what must happen once happens
//! once, whichever instance Stalwart or the recipient reaches. Two and three `serve` processes, all
//! workers running, real SmartTLS verdicts, the STARTTLS stand-ins for Stalwart's listeners and moto.

use std::io::Write as _;
use std::{collections::HashMap, time::Duration};

use hyper::StatusCode;

use crate::util::{self, hook_request, link_in, procs::Cluster, Browser, SENDER};

/// Generous timeouts for the tests that count releases exactly: on a loaded machine a slow probe must
/// not make a domain's verdict unknown (a release then goes to the portal), nor a slow release
/// uncertain. The lease outlasts them (`hook.tls_budget_ms + 12 × stalwart.timeout_ms`).
const SLOW_OK: &str = "[hook]\ntls_budget_ms = 10000\n\
    [smarttls]\nconnect_timeout_ms = 5000\ncommand_timeout_ms = 5000\ndns_timeout_ms = 5000\n\
    [stalwart]\ntimeout_ms = 10000\nclaim_lease_secs = 140\n";

/// A message to `to` with its own Message-ID (which the release stand-in's copies are counted by).
pub fn message(to: &[&str], msgid: &str) -> Vec<u8> {
    let req = hook_request(
        SENDER,
        to,
        &[
            ("From", "Dr. A. Arts <arts@zorg.test>"),
            ("Subject", "Uitslag"),
            ("Message-ID", msgid),
        ],
        "Beste ontvanger,\r\nde uitslag is in orde.\r\n",
    );
    serde_json::to_vec(&req).unwrap()
}

/// The Message-ID header value of a mail the stand-in received.
pub fn message_id(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// Copies at the release stand-in per (Message-ID, recipient).
pub fn copies(c: &Cluster) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for m in c.release.messages() {
        for r in &m.rcpt_to {
            *out.entry((message_id(&m.data), r.clone())).or_insert(0) += 1;
        }
    }
    out
}

/// Notification mails per recipient at the notify stand-in.
pub fn notices(c: &Cluster) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in c.notify.messages() {
        for r in m.rcpt_to {
            *out.entry(r).or_insert(0) += 1;
        }
    }
    out
}

/// The portal link of the newest notification to `rcpt`, waiting for it.
pub async fn portal_link(c: &Cluster, rcpt: &str, secs: u64) -> String {
    util::eventually(secs, &format!("a notification to {rcpt}"), || async {
        c.notify
            .messages()
            .iter()
            .rev()
            .find(|m| m.rcpt_to == [rcpt])
            .map(|m| link_in(&m.data, "p"))
    })
    .await
}

/// The hook calls `calls` (instance, body) at once; every answer.
async fn hook_all(c: &Cluster, calls: Vec<(usize, Vec<u8>)>) -> Vec<(StatusCode, Vec<u8>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, body) in calls {
        let url = format!("{}/v1/mta-hook", c.base(i));
        set.spawn(async move { util::procs::hook_at(&url, body).await });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap().expect("every hook call is answered"));
    }
    out
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

async fn count(c: &Cluster, table: &str) -> i64 {
    c.store.count(table).await.unwrap()
}

/// `n` instances: the same message hooked 20 times at once over all of them; ten messages to one
/// recipient at once; every recipient's code requested on one instance and entered on the next. Then
/// one challenge and one notification per recipient, one SMS per request, one release per hold, one
/// valid audit chain.
async fn one_database(n: usize) {
    util::init_log();
    let Some(c) = Cluster::start(n, SLOW_OK).await else {
        return;
    };
    let secure = c.domains.secure.clone();
    let rcpts: Vec<String> = (0..4).map(|i| format!("r{i}@{secure}")).collect();
    let phones: Vec<String> = (0..4).map(|i| format!("+3161234000{i}")).collect();
    for (r, p) in rcpts.iter().zip(&phones) {
        c.set_phone(r, p).await;
    }
    let submitted = hold_everywhere(&c, &rcpts).await;
    assert_eq!(count(&c, "held_messages").await, submitted);
    assert_eq!(count(&c, "holds").await, submitted);
    assert_eq!(
        count(&c, "challenges").await,
        4,
        "one challenge per recipient"
    );

    // Every worker runs; one notification per recipient however many passes saw it.
    c.notify.wait_for(4, 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = notices(&c);
    for r in &rcpts {
        assert_eq!(mails.get(r), Some(&1), "notifications: {mails:?}");
    }
    assert_eq!(c.notify.messages().len(), 4, "{mails:?}");
    for (k, (r, phone)) in rcpts.iter().zip(&phones).enumerate() {
        verify_across(&c, r, phone, (k % n, (k + 1) % n)).await;
    }
    for phone in &phones {
        assert_eq!(
            c.moto.count_to(phone).await,
            1,
            "one SMS per request to {phone}"
        );
    }

    // One release per held recipient.
    c.release.wait_for(submitted as usize, 30).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let copies = copies(&c);
    let doubled = copies.values().filter(|n| **n > 1).count();
    assert_eq!(copies.len(), submitted as usize, "{copies:?}");
    assert_eq!(doubled, 0, "{copies:?}");
    let released: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE state = 'released'")
        .fetch_one(c.store.pool())
        .await
        .unwrap();
    assert_eq!(released, submitted);
    let chain = c.store.verify_audit().await.unwrap();
    assert!(chain.ok() && chain.records > 0, "{:?}", chain.findings);
    // Straight to stderr, past the harness's capture: the counts show in every CI run's output.
    let _ = writeln!(
        std::io::stderr(),
        "cluster of {n}: submitted {submitted} (+19 repeats of one) / delivered once {} / held once {submitted} / \
         refused 0 / lost {} / duplicated {doubled}; challenges 4, notifications {}, SMS {}, audit records {}",
        copies.len(),
        submitted as usize - copies.len(),
        c.notify.messages().len(),
        c.moto.sms().await.len(),
        chain.records
    );
}

/// The hook calls of the cluster tests, spread over every instance: one submission retried 20 times
/// at once (one hold, every call answered with it, none 503); ten messages to one recipient at once;
/// two each to two more. Returns how many messages were held.
async fn hold_everywhere(c: &Cluster, rcpts: &[String]) -> i64 {
    let n = c.procs.len();
    let same = message(&[&rcpts[0]], "<same@zorg.test>");
    let answers = hook_all(c, (0..20).map(|k| (k % n, same.clone())).collect()).await;
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}\n{}",
        c.logs()
    );
    let first = json(&answers[0].1);
    assert!(answers.iter().all(|(_, b)| json(b) == first), "{answers:?}");
    util::held_ref(&first);
    let calls = (0..10)
        .map(|k| (k % n, message(&[&rcpts[1]], &format!("<r1-{k}@zorg.test>"))))
        .collect();
    for (status, body) in hook_all(c, calls).await {
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        util::held_ref(&json(&body));
    }
    for k in 0..4 {
        let body = message(&[&rcpts[2 + k % 2]], &format!("<r23-{k}@zorg.test>"));
        let (status, body) = c.hook(k % n, &body).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        util::held_ref(&json(&body));
    }
    1 + 10 + 4
}

/// The code requested on instance `on.0` and entered on `on.1`; the session then works on `on.0`.
async fn verify_across(c: &Cluster, rcpt: &str, phone: &str, on: (usize, usize)) {
    let link = portal_link(c, rcpt, 5).await;
    let mut br = Browser::at(&c.base(on.0), "nl-NL");
    let sent = br.request_code(&link).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let code = c.moto.last_code(phone).await;
    br.switch_to(&c.base(on.1));
    let done = br.enter_code(&link, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(done.location.as_deref().unwrap().ends_with("/messages"));
    br.switch_to(&c.base(on.0));
    let page = br.get(&format!("{link}/messages")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database() {
    one_database(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_database() {
    one_database(3).await;
}

/// A hook holding a message for a recipient whose verification commits at the same moment, on two
/// instances. The test holds the audit chain's head, so both transactions stop at their last step:
/// the hook has inserted its hold on the pending challenge, the verification has begun. Before, the
/// verification moved on only the holds it could see and the hook's hold stayed `held` on a verified
/// challenge, never released; now the hook's hold locks the challenge, the verification waits for it
/// and releases both messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_meeting_a_hook_releases_its_hold() {
    util::init_log();
    let Some(c) = Cluster::start(2, SLOW_OK).await else {
        return;
    };
    let rcpt = format!("v@{}", c.domains.secure);
    let (link, mut br, code, csrf) =
        held_with_code(&c, &rcpt, "+31612340099", "<race-1@zorg.test>").await;
    let head = lock_audit_head(&c).await;
    let hook_url = format!("{}/v1/mta-hook", c.base(0));
    let second = message(&[&rcpt], "<race-2@zorg.test>");
    let hook = tokio::spawn(async move { util::procs::hook_at(&hook_url, second).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let entry = tokio::spawn(async move {
        let fields = [("csrf", csrf.as_str()), ("code", code.as_str())];
        br.try_go(hyper::Method::POST, &format!("{link}/code"), Some(&fields))
            .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    head.rollback().await.unwrap();
    let (status, body) = hook.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    util::held_ref(&json(&body));
    let done = entry.await.unwrap().unwrap();
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);

    c.release.wait_for(2, 20).await;
    let stuck: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM holds h JOIN challenges ch ON ch.id = h.challenge_id \
         WHERE h.state = 'held' AND ch.state = 'verified'",
    )
    .fetch_one(c.store.pool())
    .await
    .unwrap();
    assert_eq!(stuck, 0);
    assert_eq!(count(&c, "challenges").await, 1);
}

/// Messages to the same two held recipients in both envelope orders, 40 at once over two instances:
/// each hook locks the recipients' pending challenges in address order, so none waits for another in
/// a circle (PostgreSQL would break the deadlock by failing one: a 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_envelopes_never_answer_503() {
    util::init_log();
    let Some(c) = Cluster::start(2, SLOW_OK).await else {
        return;
    };
    let (a, b) = (
        format!("a@{}", c.domains.secure),
        format!("b@{}", c.domains.secure),
    );
    for (k, r) in [&a, &b].into_iter().enumerate() {
        let body = message(&[r], &format!("<first-{k}@zorg.test>"));
        util::held_ref(&json(&c.hook(k, &body).await.unwrap().1));
    }
    let calls = (0..40)
        .map(|k| {
            let to: [&str; 2] = if k % 2 == 0 { [&a, &b] } else { [&b, &a] };
            (k % 2, message(&to, &format!("<crossed-{k}@zorg.test>")))
        })
        .collect();
    let answers = hook_all(&c, calls).await;
    let failed: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .map(|(s, b)| format!("{s} {}", String::from_utf8_lossy(b)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 40 failed: {failed:?}",
        failed.len()
    );
    assert_eq!(count(&c, "holds").await, 2 + 80);
    assert_eq!(count(&c, "challenges").await, 2);
}

/// The other order: the verification commits while a hook for the same recipient is deciding (it
/// gathered its facts before). The test holds the audit chain's head so that the verification stops
/// before its commit, and the hook, started then, waits for the challenge the verification changed.
/// Before, the hook then made a second challenge and held the message again, asking the recipient to
/// verify once more; now it decides again, sees the verification and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_meeting_a_verification_decides_again() {
    util::init_log();
    let Some(c) = Cluster::start(2, SLOW_OK).await else {
        return;
    };
    let rcpt = format!("w@{}", c.domains.secure);
    let (link, mut br, code, csrf) =
        held_with_code(&c, &rcpt, "+31612340098", "<order-1@zorg.test>").await;

    let head = lock_audit_head(&c).await;
    let entry = tokio::spawn(async move {
        let fields = [("csrf", csrf.as_str()), ("code", code.as_str())];
        br.try_go(hyper::Method::POST, &format!("{link}/code"), Some(&fields))
            .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hook_url = format!("{}/v1/mta-hook", c.base(0));
    let second = message(&[&rcpt], "<order-2@zorg.test>");
    let hook = tokio::spawn(async move { util::procs::hook_at(&hook_url, second).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    head.rollback().await.unwrap();
    let done = entry.await.unwrap().unwrap();
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let (status, body) = hook.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    let answer = json(&body);
    assert_eq!(answer["action"], "accept", "{answer}");
    assert_eq!(count(&c, "challenges").await, 1, "asked once");
    assert_eq!(count(&c, "holds").await, 1);
    c.release.wait_for(1, 20).await;
}

/// A message held for `rcpt` (its phone known) on instance 0, and a code requested on instance 1:
/// (portal link, the browser there, the code sent, the code form's CSRF token).
async fn held_with_code(
    c: &Cluster,
    rcpt: &str,
    phone: &str,
    message_id: &str,
) -> (String, Browser, String, String) {
    c.set_phone(rcpt, phone).await;
    let first = c.hook(0, &message(&[rcpt], message_id)).await.unwrap();
    util::held_ref(&json(&first.1));
    let link = portal_link(c, rcpt, 20).await;
    let mut br = Browser::at(&c.base(1), "nl-NL");
    assert_eq!(br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = c.moto.last_code(phone).await;
    let csrf = br.get(&format!("{link}/code")).await.csrf();
    (link, br, code, csrf)
}

/// Holds the audit chain's head row (every append waits for it) until the transaction is dropped.
async fn lock_audit_head(c: &Cluster) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut head = c.store.pool().begin().await.unwrap();
    sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
        .execute(&mut *head)
        .await
        .unwrap();
    head
}

//! Abuse of the recipient flow (must-show 3), over SQLite and PostgreSQL, on the real gateway with moto's
//! SNS: wrong codes lock the challenge, guessed link tokens get the same 404 as fast as near misses, SMS
//! rate limits hold, expired codes are refused, and one recipient's code or session never opens another's
//! message.

use crate::util;
use std::time::{Duration, Instant};

use crate::util::{hook_request, Backend};
use crate::util::{link_in, Browser, Env, Moto, Running, SENDER};
use hyper::StatusCode;
use stalwart_nta7516::policy::TlsStatus;

async fn hold(gw: &Running, rcpt: &str, msgid: &str) -> String {
    let answer = gw
        .hook(&hook_request(
            SENDER,
            &[rcpt],
            &[
                ("From", SENDER),
                ("To", rcpt),
                ("Subject", "Uitslag"),
                ("Message-ID", msgid),
            ],
            "Vertrouwelijke inhoud\r\n",
        ))
        .await;
    util::held_ref(&answer)
}

async fn link_for(env: &Env, rcpt: &str) -> String {
    let mail = util::eventually(10, "notification", || async {
        env.notify
            .messages()
            .into_iter()
            .find(|m| m.rcpt_to == [rcpt])
    })
    .await;
    link_in(&mail.data, "p")
}

async fn challenge_state(gw: &Running, rcpt: &str) -> (String, i64) {
    use sqlx::Row;
    let r = sqlx::query("SELECT state, tries FROM challenges WHERE recipient = $1")
        .bind(rcpt)
        .fetch_one(gw.gw.store.pool())
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// Moves the recipient's current code's expiry one second into the past, as if its lifetime had run out.
async fn age_code(gw: &Running, rcpt: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let done = sqlx::query(
        "UPDATE challenges SET code_expires_at = $1 WHERE recipient = $2 AND code_hash IS NOT NULL",
    )
    .bind(now - 1)
    .bind(rcpt)
    .execute(gw.gw.store.pool())
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1, "one code to age");
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

async fn five_wrong_codes_lock_the_challenge(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let (rcpt, phone) = ("bob@example.test", "+31622220001");
    gw.set_phone(rcpt, phone).await;
    let id = hold(&gw, rcpt, "<lock@zorg.test>").await;
    let link = link_for(&env, rcpt).await;
    let mut br = Browser::new(&gw, "en");
    assert_eq!(br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = moto.last_code(phone).await;
    for attempt in 1..=4 {
        let r = br.enter_code(&link, &wrong(&code)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "attempt {attempt}"
        );
        assert!(
            r.body.contains(&format!("Tries left: {}", 5 - attempt)),
            "{}",
            r.body
        );
    }
    let r = br.enter_code(&link, &wrong(&code)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("blocked"), "{}", r.body);
    assert_eq!(challenge_state(&gw, rcpt).await, ("locked".to_string(), 5));
    // Even the right code does nothing now; no new code can be requested.
    let r = br.get(&format!("{link}/code")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(br.get(&link).await.status, StatusCode::FORBIDDEN);
    assert_eq!(gw.hold(&id, rcpt).await.0, "held");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(env.release.messages().is_empty());
    assert_eq!(moto.count_to(phone).await, 1);
    // Each wrong code is audited as a failure with the tries left, then the lock; never a success.
    let records = gw.audit(&id).await;
    let left: Vec<u64> = records
        .iter()
        .filter(|(k, _, _)| k == "code_failed")
        .map(|(_, _, d)| d["attempts_left"].as_u64().unwrap())
        .collect();
    assert_eq!(left, vec![4, 3, 2, 1, 0]);
    let kinds: Vec<&str> = records.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"challenge_locked"), "{kinds:?}");
    assert!(!kinds.contains(&"code_succeeded") && !kinds.contains(&"released"));
    assert!(gw.gw.store.verify_audit().await.unwrap().ok());
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn guessed_tokens_get_the_same_404(b: Backend) {
    let env = Env::new(b, None, "").await;
    let gw = env.start().await;
    gw.set_phone("bob@example.test", "+31622220002").await;
    hold(&gw, "bob@example.test", "<guess@zorg.test>").await;
    let link = link_for(&env, "bob@example.test").await;
    let token = link.rsplit('/').next().unwrap().to_string();
    let mut near = token.clone();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    let mut br = Browser::new(&gw, "nl");
    assert_eq!(br.get(&format!("/p/{token}")).await.status, StatusCode::OK);
    let not_found = br.get(&format!("/p/{near}")).await;
    assert_eq!(not_found.status, StatusCode::NOT_FOUND);
    // The lookup is by hash, so a near miss costs what a random token costs. Timing on a loaded machine
    // is noisy: up to three rounds of 60 pairs, and a leak (a near miss consistently slower) fails all.
    let mut diffs = Vec::new();
    for _ in 0..3 {
        let (mr, mn) = token_medians(&mut br, &near, &not_found).await;
        eprintln!("token lookup medians: random {mr:?}, near miss {mn:?} (60 samples each)");
        diffs.push(mr.abs_diff(mn));
        if mr.abs_diff(mn) < Duration::from_millis(3) {
            return;
        }
    }
    panic!("timing difference between random and near-miss tokens in every round: {diffs:?}");
}

/// Median lookup times of 60 random and 60 near-miss tokens, interleaved; every answer the same 404.
async fn token_medians(
    br: &mut Browser,
    near: &str,
    not_found: &crate::util::Page,
) -> (Duration, Duration) {
    let (mut t_random, mut t_near) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let random = stalwart_nta7516::challenge::random_token();
        for (t, samples) in [(random.as_str(), &mut t_random), (near, &mut t_near)] {
            let start = Instant::now();
            let r = br.get(&format!("/p/{t}")).await;
            samples.push(start.elapsed());
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{t}");
            assert_eq!(
                r.body, not_found.body,
                "every wrong token gets the same page"
            );
        }
        // Other routes under a wrong token: the same 404.
        if i % 20 == 0 {
            assert_eq!(
                br.get(&format!("/p/{random}/code")).await.status,
                StatusCode::NOT_FOUND
            );
            assert_eq!(
                br.get(&format!("/s/{random}")).await.status,
                StatusCode::NOT_FOUND
            );
            assert_eq!(
                br.get(&format!("/p/{random}/messages")).await.status,
                StatusCode::NOT_FOUND
            );
        }
    }
    (median(t_random), median(t_near))
}

async fn sms_rate_limits_hold(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(
        b,
        Some(moto.url.clone()),
        "[portal]\nsms_per_recipient = 3\nsms_per_phone = 3\nsms_per_ip = 5\n",
    )
    .await;
    let gw = env.start().await;
    let (p1, p2) = ("+31622220003", "+31622220004");
    gw.set_phone("a@example.test", p1).await;
    gw.set_phone("c@example.test", p1).await; // same phone, other recipient
    gw.set_phone("b@example.test", p2).await;
    for r in ["a", "b", "c"] {
        hold(
            &gw,
            &format!("{r}@example.test"),
            &format!("<rl-{r}@zorg.test>"),
        )
        .await;
    }
    let (la, lb, lc) = (
        link_for(&env, "a@example.test").await,
        link_for(&env, "b@example.test").await,
        link_for(&env, "c@example.test").await,
    );
    let mut br = Browser::new(&gw, "en");
    for _ in 0..3 {
        assert_eq!(br.request_code(&la).await.status, StatusCode::SEE_OTHER);
    }
    let r = br.request_code(&la).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "per recipient");
    assert!(r.body.contains("Wait an hour"));
    assert_eq!(
        br.request_code(&lc).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "per phone"
    );
    assert_eq!(br.request_code(&lb).await.status, StatusCode::SEE_OTHER);
    assert_eq!(br.request_code(&lb).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        br.request_code(&lb).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "per IP"
    );
    assert_eq!(moto.count_to(p1).await, 3);
    assert_eq!(moto.count_to(p2).await, 2);
}

async fn expired_code_is_refused(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    // The default code lifetime; the test ages the stored code instead of sleeping past a short one
    // (a 1 s lifetime also expired the fresh code on a loaded CI machine).
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let (rcpt, phone) = ("bob@example.test", "+31622220005");
    gw.set_phone(rcpt, phone).await;
    let id = hold(&gw, rcpt, "<expired@zorg.test>").await;
    let link = link_for(&env, rcpt).await;
    let mut br = Browser::new(&gw, "nl");
    assert_eq!(br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = moto.last_code(phone).await;
    age_code(&gw, rcpt).await;
    let r = br.enter_code(&link, &code).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("verlopen"), "{}", r.body);
    assert_eq!(challenge_state(&gw, rcpt).await, ("pending".to_string(), 0));
    assert_eq!(gw.hold(&id, rcpt).await.0, "held");
    // A fresh code works.
    assert_eq!(br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = moto.last_code(phone).await;
    assert_eq!(
        br.enter_code(&link, &code).await.status,
        StatusCode::SEE_OTHER
    );
    gw.wait_hold(&id, rcpt, "released", 10).await;
}

async fn one_recipients_code_does_not_open_anothers_message(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    env.tls.set("insecure.test", TlsStatus::Insecure);
    let gw = env.start().await;
    let (a, b_) = ("ann@insecure.test", "ben@insecure.test");
    let (pa, pb) = ("+31622220006", "+31622220007");
    gw.set_phone(a, pa).await;
    gw.set_phone(b_, pb).await;
    let id_a = hold(&gw, a, "<x-a@zorg.test>").await;
    let id_b = hold(&gw, b_, "<x-b@zorg.test>").await;
    let (la, lb) = (link_for(&env, a).await, link_for(&env, b_).await);
    let mut ann = Browser::new(&gw, "en");
    assert_eq!(ann.request_code(&la).await.status, StatusCode::SEE_OTHER);
    let mut ben = Browser::new(&gw, "en");
    assert_eq!(ben.request_code(&lb).await.status, StatusCode::SEE_OTHER);
    let code_a = moto.last_code(pa).await;
    // Ann's code on Ben's link: wrong code, counted against Ben's challenge, nothing opens.
    let r = ann.enter_code(&lb, &code_a).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(challenge_state(&gw, b_).await, ("pending".to_string(), 1));
    assert_eq!(gw.hold(&id_b, b_).await.0, "held");
    // Ann verifies on her own link and reads her own message.
    assert_eq!(
        ann.enter_code(&la, &code_a).await.status,
        StatusCode::SEE_OTHER
    );
    gw.wait_hold(&id_a, a, "portal", 10).await;
    assert_eq!(
        ann.get(&format!("{la}/m/{id_a}")).await.status,
        StatusCode::OK
    );
    // Her session does not open Ben's message, by either link.
    for path in [
        format!("{la}/m/{id_b}"),
        format!("{la}/m/{id_b}/eml"),
        format!("{la}/m/{id_b}/a/0"),
    ] {
        let r = ann.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.body.contains("Vertrouwelijke"));
    }
    for path in [
        format!("{lb}/messages"),
        format!("{lb}/m/{id_b}"),
        format!("{lb}/m/{id_b}/eml"),
    ] {
        let r = ann.get(&path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(!r.body.contains("Vertrouwelijke"));
    }
    assert_eq!(gw.hold(&id_b, b_).await.0, "held");
}

async fn forms_without_csrf_are_refused(b: Backend) {
    let env = Env::new(b, None, "").await;
    let gw = env.start().await;
    gw.set_phone("bob@example.test", "+31622220008").await;
    hold(&gw, "bob@example.test", "<csrf@zorg.test>").await;
    let link = link_for(&env, "bob@example.test").await;
    let mut br = Browser::new(&gw, "en");
    br.get(&link).await; // has the CSRF cookie, but forges the field
    let r = br
        .post(&format!("{link}/sms"), &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut other = Browser::new(&gw, "en"); // no cookie at all
    let r = other
        .post(&format!("{link}/code"), &[("code", "123456")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        challenge_state(&gw, "bob@example.test").await,
        ("pending".to_string(), 0)
    );
}

/// Behind a trusted reverse proxy the SMS limit per IP counts the client the proxy names (the right-most
/// `X-Forwarded-For` entry), so two clients have their own budgets and a forged entry to the left does
/// not help; without `trusted_proxies` the header is ignored and cannot be used to escape the limit.
async fn sms_limit_per_ip_behind_a_proxy(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    for trusted in [true, false] {
        let proxies = if trusted {
            "trusted_proxies = [\"127.0.0.1\", \"::1\"]\n"
        } else {
            ""
        };
        let env = Env::new(
            b,
            Some(moto.url.clone()),
            &format!(
                "[portal]\nsms_per_recipient = 10\nsms_per_phone = 10\nsms_per_ip = 2\n{proxies}"
            ),
        )
        .await;
        let gw = env.start().await;
        let rcpt = "xff@example.test";
        gw.set_phone(rcpt, "+31622220011").await;
        hold(&gw, rcpt, "<xff@zorg.test>").await;
        let link = link_for(&env, rcpt).await;
        let client = |xff: &str| {
            let mut br = Browser::new(&gw, "en");
            br.forwarded_for = Some(xff.to_string());
            br
        };
        let mut a = client("203.0.113.5");
        assert_eq!(a.request_code(&link).await.status, StatusCode::SEE_OTHER);
        assert_eq!(a.request_code(&link).await.status, StatusCode::SEE_OTHER);
        assert_eq!(
            a.request_code(&link).await.status,
            StatusCode::TOO_MANY_REQUESTS,
            "trusted={trusted}: third code from one client"
        );
        // The client claims another address; the proxy appends the real one.
        let mut forged = client("198.51.100.1, 203.0.113.5");
        assert_eq!(
            forged.request_code(&link).await.status,
            StatusCode::TOO_MANY_REQUESTS,
            "trusted={trusted}: forged left-most entry"
        );
        let mut other = client("203.0.113.6");
        let expected = if trusted {
            StatusCode::SEE_OTHER // its own budget
        } else {
            StatusCode::TOO_MANY_REQUESTS // the header is not believed: same peer
        };
        assert_eq!(
            other.request_code(&link).await.status,
            expected,
            "trusted={trusted}: another client"
        );
    }
}

both_backends!(
    sms_limit_per_ip_behind_a_proxy,
    five_wrong_codes_lock_the_challenge,
    guessed_tokens_get_the_same_404,
    sms_rate_limits_hold,
    expired_code_is_refused,
    one_recipients_code_does_not_open_anothers_message,
    forms_without_csrf_are_refused,
);

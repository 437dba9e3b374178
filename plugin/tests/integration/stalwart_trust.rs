//! Trusting Stalwart's listeners, and Stalwart's must-match-sender, on real components (must-show 3).
//!
//! - The SMTP client with `stalwart.pin_spki_sha256`: delivers to a real STARTTLS listener whose
//!   self-signed certificate carries the pinned key (also after a re-issue with the same key); refuses one with another key, naming both pins, and
//!   the gateway then marks nothing sent or released (the notification stays pending, the hold held).
//! - `stalwart-nta7516 stalwart trust` against a real STARTTLS listener: prints the pin (checked against
//!   rcgen's own encoding of the key), `--write` puts it in a config that then loads, comments kept;
//!   refuses a non-loopback address without `--yes`, a listener without STARTTLS, a closed port (exit 2).
//! - The stand-in listener enforces Stalwart's default must-match-sender: without the service account's
//!   exception the notification and the release are refused with `501 5.5.4`, nothing is lost or counted,
//!   the log names `must-match-sender`; with the exception each goes out exactly once.

use std::{process::Command, sync::atomic::Ordering::SeqCst, time::Duration};

use crate::util::{
    self, hook_request, link_in, original_bytes, smtp, Backend, Browser, Env, Moto, SmtpServer,
    SENDER,
};
use hyper::StatusCode;
use stalwart_nta7516::{
    config::{Config, StalwartTrust},
    stalwart_submit::{Envelope, Session, SmtpError, Target},
};

const BIN: &str = env!("CARGO_BIN_EXE_stalwart-nta7516");
const BOB: &str = "bob@example.test";

fn message(msgid: &str) -> serde_json::Value {
    hook_request(
        SENDER,
        &[BOB],
        &[
            ("From", "Dr. A. Arts <arts@zorg.test>"),
            ("To", BOB),
            ("Subject", "Uitslag"),
            ("Message-ID", msgid),
        ],
        "Beste ontvanger,\r\nde uitslag.\r\n",
    )
}

/// A gateway configuration text whose `[stalwart]` points at `addr` with these trust lines.
fn config_text(addr: &str, trust: &str) -> String {
    format!(
        "# the gateway's configuration\n[storage]\nurl = \"sqlite::memory:\"\n\n\
         [stalwart]\n# Stalwart's nta-release listener\nrelease = \"{addr}\"\nnotify = \"{addr}\"\n\
         username = \"{}\"\npassword = \"{}\"\nnotify_from = \"nta7516@zorg.test\"\n{trust}timeout_ms = 5000\n",
        smtp::USER,
        smtp::PASS
    )
}

fn target(addr: &str, pin: &str) -> Target {
    let text = config_text(addr, &format!("pin_spki_sha256 = \"{pin}\"\n"));
    let config = Config::parse(&text, "t.toml".as_ref(), std::iter::empty()).unwrap();
    let stalwart = config.stalwart.unwrap();
    assert!(matches!(stalwart.trust(), StalwartTrust::PinnedSpki(p) if p.to_string() == pin));
    Target::from_config(&stalwart, true).unwrap()
}

#[tokio::test]
async fn pinned_client_delivers_and_refuses_another_key() {
    let server = SmtpServer::start().await;
    server.sender_exception.store(true, SeqCst);
    let addr = server.addr.to_string();
    // The pin alone is trusted: the certificate is self-signed for "localhost" and we connect to an IP.
    let mut session = Session::open(&target(&addr, &server.spki_pin))
        .await
        .unwrap();
    let env = Envelope {
        from: SENDER,
        to: BOB,
        data: b"Subject: x\r\n\r\nhi\r\n",
    };
    let queue_id = session.send(&env).await.unwrap();
    session.quit().await;
    let got = server.wait_for(1, 5).await;
    assert!(got[0].tls && got[0].auth == smtp::USER);
    assert_eq!(got[0].queue_id, queue_id);

    // A re-issued certificate (other names, other dates) around the same key: still trusted.
    let reissued = SmtpServer::start_reissued(&server, &["mail.zorg.test"]).await;
    reissued.sender_exception.store(true, SeqCst);
    assert_eq!(reissued.spki_pin, server.spki_pin);
    let mut session = Session::open(&target(&reissued.addr.to_string(), &server.spki_pin))
        .await
        .unwrap();
    session.send(&env).await.unwrap();
    session.quit().await;
    assert_eq!(reissued.wait_for(1, 5).await.len(), 1);

    // Another listener, another key: the handshake fails before AUTH, with both pins in the error.
    let other = SmtpServer::start().await;
    other.sender_exception.store(true, SeqCst);
    assert_ne!(other.spki_pin, server.spki_pin);
    let err = Session::open(&target(&other.addr.to_string(), &server.spki_pin))
        .await
        .err()
        .expect("another key is refused");
    match &err {
        SmtpError::PinMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected.to_string(), server.spki_pin);
            assert_eq!(presented.to_string(), other.spki_pin);
        }
        e => panic!("expected a pin mismatch, got {e}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&server.spki_pin) && text.contains(&other.spki_pin),
        "{text}"
    );
    assert!(other.messages().is_empty());
}

/// Waits until the outbox row to `rcpt` failed at least once and is still pending.
async fn failed_pending(gw: &util::Running, rcpt: &str) -> String {
    util::eventually(10, "a failed notification attempt", || async {
        let rows = gw.outbox(rcpt).await;
        match rows.as_slice() {
            [(state, attempts, Some(error))] if state == "pending" && *attempts >= 1 => {
                Some(error.clone())
            }
            _ => None,
        }
    })
    .await
}

/// The recipient verifies with the link of the last notification and the SMS code from moto.
async fn verify(env: &Env, gw: &util::Running, moto: &Moto, phone: &str) {
    let mails = env.notify.wait_for(1, 10).await;
    let link = link_in(&mails.last().unwrap().data, "p");
    let mut br = Browser::new(gw, "nl-NL,nl;q=0.9");
    assert_eq!(br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = moto.last_code(phone).await;
    assert_eq!(
        br.enter_code(&link, &code).await.status,
        StatusCode::SEE_OTHER
    );
}

/// The gateway with a pin: the notification goes out to the listener with the pinned key; the release
/// listener has another key, so the release is refused and the message stays held, content kept.
async fn gateway_pinned_listener(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let mut env = Env::new(b, Some(moto.url.clone()), "").await;
    env.release = SmtpServer::start().await; // a key of its own
    env.release.sender_exception.store(true, SeqCst);
    env.trust_toml = format!("pin_spki_sha256 = \"{}\"\n", env.notify.spki_pin);
    let gw = env.start().await;
    let phone = "+31611119001";
    gw.set_phone(BOB, phone).await;
    let id = util::held_ref(&gw.hook(&message("<pinned@zorg.test>")).await);
    let n = env.notify.wait_for(1, 10).await;
    assert!(n[0].tls && n[0].auth == smtp::USER);
    util::eventually(10, "the notification recorded as sent", || async {
        (gw.outbox(BOB).await.first().map(|r| r.0.as_str()) == Some("sent")).then_some(())
    })
    .await;

    verify(&env, &gw, &moto, phone).await;
    util::eventually(10, "a refused release attempt", || async {
        let h = gw.hold(&id, BOB).await;
        (h.2 >= 1 && h.0 == "releasing").then_some(())
    })
    .await;
    let (_, queue_id, _) = gw.hold(&id, BOB).await;
    assert!(queue_id.is_none(), "not released");
    assert!(gw.content_held(&id).await, "content kept");
    assert!(env.release.messages().is_empty());
    let failed = gw
        .audit(&id)
        .await
        .into_iter()
        .find(|(k, _, _)| k == "release_failed")
        .expect("the refused release is audited");
    let error = failed.2["error"].as_str().unwrap().to_string();
    assert!(
        error.contains(&env.notify.spki_pin) && error.contains(&env.release.spki_pin),
        "{error}"
    );
}

/// A pin of a key no listener has: the notification is refused at the handshake, stays pending with
/// the reason, nothing arrives.
async fn gateway_refuses_unpinned_key(b: Backend) {
    let mut env = Env::new(b, None, "").await;
    let stranger = SmtpServer::start().await;
    env.trust_toml = format!("pin_spki_sha256 = \"{}\"\n", stranger.spki_pin);
    let gw = env.start().await;
    gw.set_phone(BOB, "+31611119002").await;
    util::held_ref(&gw.hook(&message("<unpinned@zorg.test>")).await);
    let error = failed_pending(&gw, BOB).await;
    assert!(error.contains("expected SPKI pin"), "{error}");
    assert!(
        error.contains(&stranger.spki_pin) && error.contains(&env.notify.spki_pin),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.notify.messages().is_empty(), "nothing delivered");
    assert_eq!(gw.outbox(BOB).await[0].0, "pending");
}

/// Stalwart's default must-match-sender (no exception for the service account): the notification
/// and the release are refused at MAIL FROM with 501 5.5.4, kept, logged with the hint; once the
/// exception is there each goes out exactly once.
async fn must_match_sender_without_exception(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    for s in [&env.release, &env.notify] {
        s.sender_exception.store(false, SeqCst);
    }
    let gw = env.start().await;
    let phone = "+31611119003";
    gw.set_phone(BOB, phone).await;
    let req = message("<mms@zorg.test>");
    let original = original_bytes(&req);
    let id = util::held_ref(&gw.hook(&req).await);

    // The notification: refused, pending, the reason kept, not counted as sent.
    let error = failed_pending(&gw, BOB).await;
    assert!(
        error.contains("501 5.5.4 You are not allowed to send from this address."),
        "{error}"
    );
    assert!(error.contains("must-match-sender"), "{error}");
    assert!(env.notify.messages().is_empty());
    let logged = util::log_lines_with("must-match-sender");
    assert!(
        logged
            .iter()
            .any(|l| l.contains("ERROR") && l.contains("notification")),
        "{logged:?}"
    );
    env.notify.sender_exception.store(true, SeqCst);
    env.notify.wait_for(1, 10).await;
    util::eventually(10, "the notification recorded as sent", || async {
        (gw.outbox(BOB).await[0].0 == "sent").then_some(())
    })
    .await;

    // The release: refused at MAIL FROM, the hold stays, content kept.
    verify(&env, &gw, &moto, phone).await;
    util::eventually(10, "a refused release attempt", || async {
        let h = gw.hold(&id, BOB).await;
        (h.2 >= 1 && h.0 == "releasing").then_some(())
    })
    .await;
    assert!(env.release.messages().is_empty());
    assert!(gw.content_held(&id).await, "content kept");
    let logged = util::log_lines_with("must-match-sender");
    assert!(
        logged
            .iter()
            .any(|l| l.contains("ERROR") && l.contains("release") && l.contains(&id)),
        "{logged:?}"
    );
    env.release.sender_exception.store(true, SeqCst);
    gw.wait_hold(&id, BOB, "released", 15).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = env.release.messages();
    assert_eq!(got.len(), 1, "released exactly once");
    assert_eq!(got[0].data, original);
    assert_eq!(got[0].mail_from, SENDER);
    assert_eq!(env.notify.messages().len(), 1, "notified exactly once");
    let failed = gw.audit(&id).await;
    let failed = failed
        .iter()
        .find(|(k, _, _)| k == "release_failed")
        .unwrap();
    assert!(
        failed.2["error"].as_str().unwrap().contains("501 5.5.4"),
        "{failed:?}"
    );
}

both_backends!(
    gateway_pinned_listener,
    gateway_refuses_unpinned_key,
    must_match_sender_without_exception,
);

fn trust(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["stalwart", "trust"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_command_prints_and_writes_the_pin() {
    let server = SmtpServer::start().await;
    let addr = server.addr.to_string();
    let (code, out, err) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || trust(&[&addr])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("pin_spki_sha256 = \"{}\"", server.spki_pin)),
        "{out}"
    );
    assert!(out.contains("names:          localhost"), "{out}");
    assert!(
        out.contains("Stalwart's built-in self-signed \"localhost\" certificate"),
        "{out}"
    );
    assert!(server.messages().is_empty());

    // --write: into a config that had the CA-file workaround; the pin replaces it, comments stay.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let ca = format!(
        "ca_file = \"{}\"\ntls_server_name = \"localhost\"\n",
        server.ca_file.display()
    );
    std::fs::write(&path, config_text(&addr, &ca)).unwrap();
    let p = path.to_str().unwrap().to_string();
    let (code, out, err) = tokio::task::spawn_blocking(move || trust(&["--config", &p, "--write"]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("removed stalwart.ca_file"), "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# Stalwart's nta-release listener") && text.contains("# the gateway's"),
        "{text}"
    );
    assert!(!text.contains("ca_file"), "{text}");
    let config = Config::load(&path).expect("the written config loads");
    match config.stalwart.unwrap().trust() {
        StalwartTrust::PinnedSpki(pin) => assert_eq!(pin.to_string(), server.spki_pin),
        t => panic!("{t:?}"),
    }
    // And the client trusts the listener with it.
    let s = Session::open(&target(&addr, &server.spki_pin))
        .await
        .unwrap();
    s.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_command_refusals_exit_2() {
    // Not loopback, not a terminal, no --yes: refused before connecting.
    let (code, _, err) = trust(&["192.0.2.1:10025"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not a loopback address") && err.contains("--yes"),
        "{err}"
    );
    // Nothing listens.
    let port = util::free_port();
    let (code, _, err) = trust(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    // A listener that offers no STARTTLS.
    let server = SmtpServer::start().await;
    server.no_starttls.store(true, SeqCst);
    let addr = server.addr.to_string();
    let (code, _, err) = tokio::task::spawn_blocking(move || trust(&[&addr]))
        .await
        .unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not offer STARTTLS"), "{err}");
    // --write without --config.
    let (code, _, err) = trust(&["127.0.0.1:1", "--write"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--write needs --config"), "{err}");
}

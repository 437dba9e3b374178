//! `stalwart-nta7516 bulk` on the real flow: the real binary, a gateway on SQLite or PostgreSQL with
//! moto for SNS, and a stand-in for Stalwart's submission listener that calls the gateway's MTA hook at
//! DATA and answers as Stalwart does (STARTTLS, AUTH, must-match-sender; `util::stalwart_smtp`).
//! A 200-row CSV with 3 bad rows is refused with their lines; `--skip-bad` sends the 197 others; a run
//! killed at row 100 and run again sends 197 in all, none twice; every message is held for 2FA with
//! the CSV's number, which reaches the recipient by SMS. A known, verified number is kept unless
//! `--update-phones`; a sender the account may not use is refused with Stalwart's reason.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use hyper::StatusCode;

use crate::util::{
    link_in,
    smtp::{Phase, SmtpServer},
    stalwart_smtp::HookTarget,
    Backend, Browser, Env, Moto, Running, SENDER, TOKEN,
};

const BIN: &str = env!("CARGO_BIN_EXE_stalwart-nta7516");
const SENDER_PASS: &str = "arts-app-password-7";

const LETTER: &str = "From: Dr. A. Arts <arts@zorg.test>\n\
Subject: Correctie onderzoek voor {{naam}}\n\
MIME-Version: 1.0\n\
Content-Type: multipart/alternative; boundary=\"grens\"\n\
\n\
--grens\n\
Content-Type: text/plain; charset=utf-8\n\
\n\
Beste {{naam}},\n\
\n\
In onze vorige brief stond een fout. Uw adres: {{adres}}.\n\
--grens\n\
Content-Type: text/html; charset=utf-8\n\
\n\
<p>Beste {{naam}},</p><p>In onze vorige brief stond een fout.</p>\n\
--grens--\n";

/// The gateway, moto, the submission stand-in and a folder for the files.
struct World {
    env: Env,
    gw: Running,
    moto: Moto,
    submission: SmtpServer,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn world(b: Backend) -> Option<World> {
    let moto = Moto::start().await?;
    let env = Env::new(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let submission = SmtpServer::start().await;
    *submission.hook.lock().unwrap() = Some(HookTarget {
        url: gw.url("/v1/mta-hook"),
        token: TOKEN.into(),
    });
    submission
        .accounts
        .lock()
        .unwrap()
        .push((SENDER.into(), SENDER_PASS.into()));
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("bulk-password");
    std::fs::write(&password, format!("{SENDER_PASS}\n")).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"{}\"\n[bulk]\nsubmission = \"{}\"\nusername = \"{SENDER}\"\n\
             password_file = \"{}\"\nca_file = \"{}\"\ntls_server_name = \"localhost\"\ntimeout_ms = 20000\n",
            env.db_url,
            submission.addr,
            password.display(),
            submission.ca_file.display()
        ),
    )
    .unwrap();
    Some(World {
        env,
        gw,
        moto,
        submission,
        dir,
        config,
    })
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl World {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("bulk")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// `bulk send` with the world's configuration and `extra` flags.
    fn send_args(&self, template: &Path, csv: &Path, sender: &str, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "send",
            "--template",
            template.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
            "--as",
            sender,
            "--config",
            self.config.to_str().unwrap(),
            "--rate",
            "400/s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    async fn run(&self, args: Vec<String>) -> Out {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self.command(&args);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    fn hooked(&self) -> Vec<crate::util::stalwart_smtp::Hooked> {
        self.submission.hooked.lock().unwrap().clone()
    }
}

/// Row `i` (1-based): address, phone, name. Rows 17, 88 and 150 are bad (address, phone, empty
/// name); row 10 has a two-line address, so from row 11 on a row is on line `i + 2`.
fn people() -> (String, Vec<(String, String)>) {
    let mut csv = String::from("\u{feff}email;phone;naam;adres\r\n");
    let mut good = Vec::new();
    for i in 1..=200 {
        let email = if i == 17 {
            "p017-at-example.test".to_string()
        } else {
            format!("P{i:03}@Example.test")
        };
        let phone = if i == 88 {
            "0612345678".to_string()
        } else {
            format!("+3161000{i:04}")
        };
        let naam = if i == 150 {
            String::new()
        } else {
            format!("Deelnemer {i}")
        };
        let adres = if i == 10 {
            "\"Dorpsstraat 10\r\n1234 AB Dorp\"".to_string()
        } else {
            format!("\"Laan {i}; Stad\"")
        };
        csv.push_str(&format!("{email};{phone};{naam};{adres}\r\n"));
        if ![17, 88, 150].contains(&i) {
            good.push((email.to_lowercase(), phone));
        }
    }
    (csv, good)
}

async fn two_hundred_rows(b: Backend) {
    let Some(w) = world(b).await else { return };
    let (csv_text, good) = people();
    let (template, csv) = (w.path("brief.eml"), w.path("deelnemers.csv"));
    std::fs::write(&template, LETTER).unwrap();
    std::fs::write(&csv, &csv_text).unwrap();
    let journal = w.path("deelnemers.csv.journal");

    // Checked whole: the three bad rows by their lines, nothing sent, nothing stored.
    let checked = w
        .run(vec![
            "check".into(),
            "--template".into(),
            template.display().to_string(),
            "--csv".into(),
            csv.display().to_string(),
        ])
        .await;
    assert!(!checked.ok, "{}", checked.stderr);
    assert!(
        checked
            .stderr
            .contains("3 of 200 rows are bad (lines 19, 90, 152)"),
        "{}",
        checked.stderr
    );
    assert!(
        checked.stderr.contains("line 19: invalid address"),
        "{}",
        checked.stderr
    );
    assert!(
        checked.stderr.contains("line 90: phone \"0612345678\""),
        "{}",
        checked.stderr
    );
    assert!(
        checked.stderr.contains("line 152: {{naam}} is empty"),
        "{}",
        checked.stderr
    );
    let refused = w.run(w.send_args(&template, &csv, SENDER, &[])).await;
    assert!(!refused.ok);
    assert!(
        refused
            .stderr
            .contains("lines 19, 90, 152): nothing was sent"),
        "{}",
        refused.stderr
    );
    assert!(w.hooked().is_empty());
    assert!(!journal.exists());
    assert_eq!(w.gw.gw.store.count("recipients").await.unwrap(), 0);

    // --skip-bad, killed while the 100th good row (row 102, line 104) is being submitted (after DATA,
    // before the data).
    w.submission.stall.next_after(Phase::BeforeData, 99, 1);
    let args = w.send_args(&template, &csv, SENDER, &["--skip-bad"]);
    let mut child = w
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.submission.stall.waiting() == 0 {
        assert!(Instant::now() < deadline, "row 100 never reached DATA");
        assert!(child.try_wait().unwrap().is_none(), "bulk send ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    w.submission.stall.resume();
    assert_eq!(w.hooked().len(), 99);

    // Run again: the 99 are skipped, row 100 is uncertain and not sent again, the rest go out.
    let second = w
        .run(w.send_args(&template, &csv, SENDER, &["--skip-bad"]))
        .await;
    assert!(!second.ok, "an uncertain row is not a clean run");
    assert!(
        second.stdout.contains("already sent:   99"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("uncertain:      1 (line 104)"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("held for 2FA:   97"),
        "{}",
        second.stdout
    );
    assert_eq!(w.hooked().len(), 196);

    // The operator sees row 100 is not held, and sends it after all: 197 in all, each once.
    let third = w
        .run(w.send_args(
            &template,
            &csv,
            SENDER,
            &["--skip-bad", "--resend-uncertain"],
        ))
        .await;
    assert!(third.ok, "{}\n{}", third.stdout, third.stderr);
    assert!(
        third.stdout.contains("held for 2FA:   1\n"),
        "{}",
        third.stdout
    );
    assert!(
        third.stdout.contains("already sent:   196"),
        "{}",
        third.stdout
    );
    let hooked = w.hooked();
    assert_eq!(hooked.len(), 197);
    let ids: HashSet<String> = hooked.iter().map(|h| h.message_id()).collect();
    assert_eq!(ids.len(), 197, "a message went through the hook twice");
    let rcpts: HashSet<String> = hooked.iter().map(|h| h.rcpt_to[0].to_lowercase()).collect();
    let wanted: HashSet<String> = good.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(rcpts, wanted);
    for h in &hooked {
        assert_eq!((h.login.as_str(), h.mail_from.as_str()), (SENDER, SENDER));
        assert!(
            h.reply
                .starts_with("250 2.0.0 Held for secure delivery (id h-"),
            "{}",
            h.reply
        );
    }
    // The letter was filled in per row (text and HTML, the Subject encoded words-free here).
    let p001 = hooked
        .iter()
        .find(|h| h.rcpt_to[0] == "p001@example.test")
        .unwrap();
    let text = String::from_utf8_lossy(&p001.data);
    assert!(
        text.contains("Subject: Correctie onderzoek voor Deelnemer 1\r\n"),
        "{text}"
    );
    assert!(text.contains("Uw adres: Laan 1; Stad."), "{text}");
    assert!(text.contains("From: Dr. A. Arts <arts@zorg.test>\r\nTo: <p001@example.test>"));
    assert_held_with_phones(&w, &good).await;
    assert_nothing_of_the_csv_kept(&w, &journal).await;
}

/// Every recipient has the CSV's number, every message is held for 2FA, and the number is the one
/// the code goes to.
async fn assert_held_with_phones(w: &World, good: &[(String, String)]) {
    for (email, phone) in good {
        assert_eq!(
            w.gw.phone(email).await.as_deref(),
            Some(phone.as_str()),
            "{email}"
        );
    }
    let store = &w.gw.gw.store;
    assert_eq!(store.count("held_messages").await.unwrap(), 197);
    assert_eq!(store.count("holds").await.unwrap(), 197);
    use sqlx::Row;
    let challenged: i64 = sqlx::query("SELECT COUNT(*) FROM holds WHERE outcome = 'challenge'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(challenged, 197);
    // One recipient through the notice and the SMS: the code goes to the CSV's number.
    let (email, phone) = &good[41];
    let deadline = Instant::now() + Duration::from_secs(60);
    let notice = loop {
        let mails = w.env.notify.messages();
        if let Some(m) = mails.iter().find(|m| m.rcpt_to == [email.clone()]) {
            break m.clone();
        }
        assert!(Instant::now() < deadline, "no notice to {email}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let link = link_in(&notice.data, "p");
    let mut br = Browser::new(&w.gw, "nl-NL");
    let sent = br.request_code(&link).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let code = w.moto.last_code(phone).await;
    assert_eq!(code.len(), 6);
}

/// The journal is private and names no one; the audit trail has the masked numbers, not the CSV.
async fn assert_nothing_of_the_csv_kept(w: &World, journal: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(journal).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(journal).unwrap();
    assert!(!text.contains('@') && !text.contains("+316") && !text.contains("Deelnemer"));
    let log = w.gw.whole_audit_log().await;
    assert!(log.contains("\"source\":\"bulk\""), "{log}");
    assert!(!log.contains("Deelnemer") && !log.contains("Laan 1") && !log.contains("+3161000"));
}

const SECOND_LETTER: &str = "Subject: Herinnering\n\nBeste {{naam}}, zie de vorige brief.\n";

async fn known_numbers_and_the_sender(b: Backend) {
    let Some(w) = world(b).await else { return };
    let now = stalwart_nta7516::time::now();
    // A recipient who verified with their own number, and one whose number is known.
    let store = &w.gw.gw.store;
    store
        .upsert_recipient(
            "keep@example.test",
            Some("+31611111111"),
            Some(now + 86_400),
            now,
        )
        .await
        .unwrap();
    let csv = w.path("twee.csv");
    std::fs::write(
        &csv,
        "email,phone,naam\nkeep@example.test,+31622222222,Kees\nnew@example.test,+31633333333,Nina\n",
    )
    .unwrap();
    let template = w.path("brief.eml");
    std::fs::write(&template, SECOND_LETTER).unwrap();
    let first = w.run(w.send_args(&template, &csv, SENDER, &[])).await;
    assert!(first.ok, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first
            .stderr
            .contains("1 recorded, 0 already known, 0 replaced, 1 kept"),
        "{}",
        first.stderr
    );
    assert_eq!(
        w.gw.phone("keep@example.test").await.as_deref(),
        Some("+31611111111")
    );
    assert_eq!(
        w.gw.phone("new@example.test").await.as_deref(),
        Some("+31633333333")
    );
    // The verified recipient's message goes out now; the new one is held.
    assert!(
        first
            .stdout
            .contains("held for 2FA:   1\nsent:           1\n"),
        "{}",
        first.stdout
    );

    // A second letter with --update-phones replaces the known number (audited as replaced).
    let template2 = w.path("brief2.eml");
    std::fs::write(
        &template2,
        SECOND_LETTER.replace("Herinnering", "Tweede herinnering"),
    )
    .unwrap();
    let second = w
        .run(w.send_args(&template2, &csv, SENDER, &["--update-phones"]))
        .await;
    assert!(second.ok, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second
            .stderr
            .contains("0 recorded, 1 already known, 1 replaced, 0 kept"),
        "{}",
        second.stderr
    );
    assert_eq!(
        w.gw.phone("keep@example.test").await.as_deref(),
        Some("+31622222222")
    );
    assert!(w
        .gw
        .whole_audit_log()
        .await
        .contains("\"outcome\":\"replaced\""));

    // Sending as someone the account may not send as: Stalwart's must-match-sender, explained.
    let before = w.hooked().len();
    let template3 = w.path("brief3.eml");
    std::fs::write(&template3, SECOND_LETTER.replace("Herinnering", "Derde")).unwrap();
    let other = w
        .run(w.send_args(&template3, &csv, "secretariaat@zorg.test", &[]))
        .await;
    assert!(!other.ok);
    assert!(
        other
            .stderr
            .contains("501 5.5.4 You are not allowed to send from this address.")
            && other.stderr.contains("must-match-sender")
            && other.stderr.contains(&format!(
                "the account {SENDER} may not send as <secretariaat@zorg.test>"
            )),
        "{}",
        other.stderr
    );
    assert!(
        other.stdout.contains("not sent yet:   2"),
        "{}",
        other.stdout
    );
    assert_eq!(w.hooked().len(), before, "nothing reached the hook");
    // Refused by Stalwart (here at RCPT): each row with its line and the reply, kept for a next run.
    *w.submission.fail_at.lock().unwrap() = Some(("RCPT", "550 5.1.1 Mailbox unknown"));
    let refused = w.run(w.send_args(&template3, &csv, SENDER, &[])).await;
    *w.submission.fail_at.lock().unwrap() = None;
    assert!(!refused.ok);
    assert!(
        refused
            .stdout
            .contains("refused:        2\n  line 2: 550 5.1.1 Mailbox unknown\n  line 3: 550"),
        "{}",
        refused.stdout
    );
    assert_eq!(w.hooked().len(), before);
    let later = w.run(w.send_args(&template3, &csv, SENDER, &[])).await;
    assert!(later.ok, "{}\n{}", later.stdout, later.stderr);
    assert_eq!(w.hooked().len(), before + 2, "refused rows are tried again");
    // A dry run shows one message and sends nothing.
    let dry = w
        .run(w.send_args(&template3, &csv, SENDER, &["--dry-run"]))
        .await;
    assert!(dry.ok, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("Subject: Derde\r\n") && dry.stdout.contains("Beste Kees"),
        "{}",
        dry.stdout
    );
    assert_eq!(w.hooked().len(), before + 2);
}

/// Killed after a message's data but before Stalwart's reply: the row is uncertain, not sent again by
/// itself; sent again on request it is the same submission (same Message-ID and Date), and the gateway
/// answers with the hold it already has instead of holding a second copy.
async fn an_uncertain_row_lands_on_the_same_hold(b: Backend) {
    let Some(w) = world(b).await else { return };
    let csv = w.path("drie.csv");
    std::fs::write(
        &csv,
        "email;phone;naam\na@example.test;+31644444441;A\nb@example.test;+31644444442;B\nc@example.test;+31644444443;C\n",
    )
    .unwrap();
    let template = w.path("brief.eml");
    std::fs::write(&template, SECOND_LETTER).unwrap();
    w.submission.stall.next_after(Phase::AfterDot, 1, 1);
    let args = w.send_args(&template, &csv, SENDER, &[]);
    let mut child = w
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.submission.stall.waiting() == 0 {
        assert!(
            Instant::now() < deadline,
            "row 2 never reached its final dot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    w.submission.stall.resume();
    let again = w.run(w.send_args(&template, &csv, SENDER, &[])).await;
    assert!(!again.ok);
    assert!(
        again.stdout.contains("uncertain:      1 (line 3)"),
        "{}",
        again.stdout
    );
    assert_eq!(w.hooked().len(), 3, "row 2 is not sent again by itself");
    let resent = w
        .run(w.send_args(&template, &csv, SENDER, &["--resend-uncertain"]))
        .await;
    assert!(resent.ok, "{}\n{}", resent.stdout, resent.stderr);
    let hooked = w.hooked();
    let twice: Vec<_> = hooked
        .iter()
        .filter(|h| h.rcpt_to[0] == "b@example.test")
        .collect();
    assert_eq!(twice.len(), 2);
    assert_eq!(twice[0].data, twice[1].data, "the same bytes");
    assert_eq!(twice[0].reply, twice[1].reply, "the same hold");
    assert_eq!(w.gw.gw.store.count("held_messages").await.unwrap(), 3);
}

/// Ctrl-C (SIGINT) while a message is being submitted: that message finishes and is journaled, the
/// run stops before the next row and says how to go on; the next run sends the rest.
async fn an_interrupt_finishes_the_current_row(b: Backend) {
    let Some(w) = world(b).await else { return };
    let csv = w.path("drie.csv");
    std::fs::write(
        &csv,
        "email,phone,naam
a@example.test,+31655555551,A
b@example.test,+31655555552,B
c@example.test,+31655555553,C
",
    )
    .unwrap();
    let template = w.path("brief.eml");
    std::fs::write(&template, SECOND_LETTER).unwrap();
    w.submission.stall.next_after(Phase::BeforeData, 1, 1);
    let args = w.send_args(&template, &csv, SENDER, &[]);
    let child = w
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.submission.stall.waiting() == 0 {
        assert!(Instant::now() < deadline, "row 2 never reached DATA");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.submission.stall.resume();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success());
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stdout.contains("held for 2FA:   2\n"), "{stdout}");
    assert!(stdout.contains("not sent yet:   1"), "{stdout}");
    assert_eq!(w.hooked().len(), 2);
    let rest = w.run(w.send_args(&template, &csv, SENDER, &[])).await;
    assert!(rest.ok, "{}\n{}", rest.stdout, rest.stderr);
    assert!(rest.stdout.contains("already sent:   2"), "{}", rest.stdout);
    assert_eq!(w.hooked().len(), 3);
}

both_backends!(
    two_hundred_rows,
    an_interrupt_finishes_the_current_row,
    known_numbers_and_the_sender,
    an_uncertain_row_lands_on_the_same_hold
);

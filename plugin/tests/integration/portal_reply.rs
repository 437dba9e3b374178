//! The secure reply from the portal, over HTTP on real components: the gateway, moto's SNS server for the
//! code, and the real STARTTLS + AUTH SMTP server standing in for Stalwart's `nta-release` listener.
//! Over SQLite and PostgreSQL. Read → reply with an attachment → the listener receives it with the
//! threading and sender headers and the exact bytes → the reply is listed under the message; the abuse
//! cases (no session, CSRF, too large, too many, flood) store and send nothing; a listener that is down
//! gets the reply once it is back, a lost answer is never sent again; the audit trail and its report.

use crate::util;
use std::{path::PathBuf, time::Duration};

use crate::util::{hook_request, Backend};
use crate::util::{link_in, smtp, webdriver::Chrome, Browser, Env, Moto, Running, SENDER};
use hyper::{Method, StatusCode};
use mail_parser::{MessageParser, MimeHeaders};
use stalwart_nta7516::policy::TlsStatus;

const RCPT: &str = "eva@insecure.test";
const PHONE: &str = "+31644440001";
const ORIGINAL_ID: &str = "portal-reply-1@zorg.test";

/// A message read on the portal: the environment, the gateway, the verified browser, link and hold id.
struct Portal {
    env: Env,
    gw: Running,
    moto: Moto,
    link: String,
    br: Browser,
    id: String,
}

/// A message held for [`RCPT`] (insecure domain: read on the portal), its notification sent: moto, the
/// environment, the gateway, the hold id and the portal link (`None`: moto missing, test skipped).
async fn held(b: Backend, extra: &str) -> Option<(Moto, Env, Running, String, String)> {
    let moto = Moto::start().await?;
    let env = Env::new(b, Some(moto.url.clone()), extra).await;
    env.tls.set("insecure.test", TlsStatus::Insecure);
    let gw = env.start().await;
    gw.set_phone(RCPT, PHONE).await;
    let req = hook_request(
        SENDER,
        &[RCPT],
        &[
            ("From", "Dr. A. Arts <arts@zorg.test>"),
            ("To", RCPT),
            ("Subject", "Uitslag bloedonderzoek"),
            ("Message-ID", &format!("<{ORIGINAL_ID}>")),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        "Beste mevrouw,\r\nUw uitslag is binnen.\r\n",
    );
    let id = util::held_ref(&gw.hook(&req).await);
    let mails = env.notify.wait_for(1, 10).await;
    let link = link_in(&mails[0].data, "p");
    Some((moto, env, gw, id, link))
}

/// [`held`], then verified with the SMS code by a cookie-keeping client: a portal hold.
async fn portal(b: Backend, extra: &str) -> Option<Portal> {
    let (moto, env, gw, id, link) = held(b, extra).await?;
    let mut br = Browser::new(&gw, "nl-NL,nl;q=0.9");
    assert_eq!(br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = moto.last_code(PHONE).await;
    assert_eq!(
        br.enter_code(&link, &code).await.status,
        StatusCode::SEE_OTHER
    );
    gw.wait_hold(&id, RCPT, "portal", 10).await;
    Some(Portal {
        env,
        gw,
        moto,
        link,
        br,
        id,
    })
}

/// One part of a `multipart/form-data` body: a field, or a file (`Some(name)`).
#[derive(Clone, Copy)]
struct Part<'a> {
    name: &'a str,
    file: Option<&'a str>,
    bytes: &'a [u8],
}

fn field<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part {
        name,
        file: None,
        bytes: value.as_bytes(),
    }
}

fn file<'a>(name: &'a str, bytes: &'a [u8]) -> Part<'a> {
    Part {
        name: "attachment",
        file: Some(name),
        bytes,
    }
}

const BOUNDARY: &str = "----nta7516-test-boundary-7c1f";

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p.file {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n",
                    p.name
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                    p.name
                )
                .as_bytes(),
            ),
        }
        out.extend_from_slice(p.bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// POSTs a multipart body with the browser's cookies: (status, Location, body).
async fn post_form(
    gw: &Running,
    br: &Browser,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Option<String>, String) {
    let cookies = br
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut headers = vec![
        ("accept-language", br.lang.clone()),
        ("content-type", content_type.to_string()),
    ];
    if !cookies.is_empty() {
        headers.push(("cookie", cookies));
    }
    let path = path.find("/p/").map_or(path, |i| &path[i..]);
    let (status, h, bytes) = util::http(Method::POST, &gw.url(path), &headers, body).await;
    let location = h.get("location").map(|v| v.to_str().unwrap().to_string());
    (
        status,
        location,
        String::from_utf8_lossy(&bytes).to_string(),
    )
}

async fn post_reply(
    p: &Portal,
    br: &Browser,
    parts: &[Part<'_>],
) -> (StatusCode, Option<String>, String) {
    // Each POST as from a form of its own (the form's id is its idempotency key), unless given; first,
    // as a browser sends the hidden fields before the text and the files.
    let form_id = stalwart_nta7516::ids::new_id("f");
    let mut parts: Vec<Part<'_>> = parts.to_vec();
    if !parts
        .iter()
        .any(|p| p.name == "form" || p.name == "no-form")
    {
        parts.insert(0, field("form", &form_id));
    }
    parts.retain(|p| p.name != "no-form");
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let path = format!("{}/m/{}/reply", p.link, p.id);
    post_form(&p.gw, br, &path, &ct, multipart(&parts)).await
}

/// The reply form's CSRF value (the browser gets the cookie with it).
async fn reply_csrf(p: &mut Portal) -> String {
    let form = p.br.get(&format!("{}/m/{}/reply", p.link, p.id)).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    form.csrf()
}

/// Rows in `portal_replies`: `(id, state, queue id, attempts)`.
async fn replies(gw: &Running) -> Vec<(String, String, Option<String>, i64)> {
    use sqlx::Row;
    sqlx::query("SELECT id, state, queue_id, attempts FROM portal_replies ORDER BY created_at, id")
        .fetch_all(gw.gw.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn wait_reply_state(gw: &Running, state: &str, secs: u64) -> (String, Option<String>, i64) {
    util::eventually(secs, &format!("a reply in state {state}"), || async {
        replies(gw)
            .await
            .into_iter()
            .find(|r| r.1 == state)
            .map(|r| (r.0, r.2, r.3))
    })
    .await
}

fn binary_attachment() -> Vec<u8> {
    let mut b = b"%PDF-1.4\r\n.line starting with a dot\r\n".to_vec();
    b.extend((0..=255u8).cycle().take(3000));
    b
}

async fn reply_end_to_end(b: Backend) {
    let Some(mut p) = portal(b, "").await else {
        return;
    };
    let page = p.br.get(&format!("{}/m/{}", p.link, p.id)).await;
    assert!(
        page.body
            .contains(&format!("/m/{}/reply\">Beantwoorden<", p.id)),
        "{}",
        page.body
    );
    let csrf = reply_csrf(&mut p).await;
    let pdf = binary_attachment();
    let text = "Dank u, dokter.\r\nIk heb nog een vraag over <b>de waarden</b> — en één over ß.\r\n.\r\nGroet, Eva";
    let (status, location, body) = post_reply(
        &p,
        &p.br,
        &[
            field("csrf", &csrf),
            field("text", text),
            file("vraag über uitslag.pdf", &pdf),
            file("", b""),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = location.unwrap();
    assert!(
        location.contains(&format!("/m/{}/reply/r-", p.id)),
        "{location}"
    );

    // The release listener gets it: as the gateway, to the original (local) sender, over TLS + AUTH.
    let got = p.env.release.wait_for(1, 10).await;
    let m = &got[0];
    assert_eq!(m.mail_from, "nta7516@zorg.test");
    assert_eq!(m.rcpt_to, vec![SENDER.to_string()]);
    assert!(m.tls && m.auth == smtp::USER);
    let (reply_id, queue_id, _) = wait_reply_state(&p.gw, "sent", 10).await;
    assert_eq!(queue_id.as_deref(), Some(m.queue_id.as_str()));
    check_reply_mail(&m.data, &reply_id, text, &pdf);

    // "Sent", and the thread under the message: time, state, subject, text (escaped), file name.
    let done = p.br.get(&location).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(
        done.body.contains("Uw antwoord is verstuurd"),
        "{}",
        done.body
    );
    assert!(done.body.contains(SENDER));
    let page = p.br.get(&format!("{}/m/{}", p.link, p.id)).await;
    assert!(page.body.contains("Uw antwoorden"), "{}", page.body);
    assert!(page.body.contains("Verstuurd"));
    assert!(page.body.contains("Re: Uitslag bloedonderzoek"));
    assert!(
        page.body.contains("&lt;b&gt;de waarden&lt;/b&gt;"),
        "text escaped"
    );
    assert!(!page.body.contains("<b>de waarden"));
    assert!(page.body.contains("vraag über uitslag.pdf"));
    assert!(page.body.contains(&format!("({} bytes)", pdf.len())));
    // In English too.
    let mut en = Browser::new(&p.gw, "en");
    en.cookies = p.br.cookies.clone();
    let page = en.get(&format!("{}/m/{}?lang=en", p.link, p.id)).await;
    assert!(page.body.contains(">Reply<") && page.body.contains("Your replies"));

    check_audit(&p, &reply_id, &m.queue_id).await;
    // Never twice.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(p.env.release.messages().len(), 1);
    assert_eq!(replies(&p.gw).await.len(), 1);
}

/// The reply mail as Stalwart would queue it.
fn check_reply_mail(data: &[u8], reply_id: &str, text: &str, pdf: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    assert!(
        !raw.replace("\r\n", "").contains('\n'),
        "bare LF in the mail:\n{raw}"
    );
    let m = MessageParser::default()
        .parse(data)
        .expect("a MIME message");
    let addr = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap()
            .to_string()
    };
    assert_eq!(addr(m.from()), "nta7516@zorg.test");
    assert_eq!(addr(m.reply_to()), RCPT);
    assert_eq!(addr(m.to()), SENDER);
    assert_eq!(m.subject(), Some("Re: Uitslag bloedonderzoek"));
    assert_eq!(m.in_reply_to().as_text(), Some(ORIGINAL_ID));
    assert_eq!(m.references().as_text(), Some(ORIGINAL_ID));
    assert_eq!(m.message_id().unwrap(), format!("{reply_id}@zorg.test"));
    assert!(
        raw.contains(&format!("X-NTA7516-Portal-Reply: {RCPT}\r\n")),
        "{raw}"
    );
    assert!(raw.contains("Content-Type: multipart/mixed"), "{raw}");
    let body = m.body_text(0).unwrap();
    let first = body.lines().next().unwrap();
    assert!(
        first.contains("Sent via the secure portal by: eva@insecure.test"),
        "{first}"
    );
    assert!(body
        .replace("\r\n", "\n")
        .contains(&text.replace("\r\n", "\n")));
    let files: Vec<_> = m.attachments().collect();
    assert_eq!(files.len(), 1, "the empty file input is no attachment");
    assert_eq!(files[0].attachment_name(), Some("vraag über uitslag.pdf"));
    assert_eq!(files[0].contents(), pdf, "attachment bytes differ");
    assert!(raw.contains("Content-Transfer-Encoding: base64"), "{raw}");
}

/// `portal_reply` when written, `portal_reply_sent` with Stalwart's queue id, their report lines, and
/// no text or file name in the log.
async fn check_audit(p: &Portal, reply_id: &str, queue_id: &str) {
    let records = p.gw.audit(&p.id).await;
    let kinds: Vec<&str> = records.iter().map(|(k, _, _)| k.as_str()).collect();
    let at = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} record in {kinds:?}"))
    };
    // Read, then written, then sent; each once.
    assert!(
        at("portal_viewed") < at("portal_reply") && at("portal_reply") < at("portal_reply_sent")
    );
    for kind in ["portal_reply", "portal_reply_sent"] {
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 1, "{kinds:?}");
    }
    assert!(!kinds.contains(&"portal_reply_failed"));
    let (_, who, reply) = &records[at("portal_reply")];
    assert_eq!(who.as_deref(), Some(RCPT));
    assert_eq!(reply["reply_id"], reply_id);
    assert_eq!(reply["to"], SENDER);
    assert_eq!(reply["attachments"], 1);
    assert!(reply["bytes"].as_u64().unwrap() > 3000);
    assert_eq!(reply["sha256"].as_str().unwrap().len(), 64);
    let (_, _, sent) = &records[at("portal_reply_sent")];
    assert_eq!(sent["queue_id"], queue_id);
    let report = p.gw.gw.store.audit_report(&p.id).await.unwrap().unwrap();
    let lines: Vec<&str> = report.timeline.iter().map(|t| t.summary.as_str()).collect();
    let written = format!("reply {reply_id} from {RCPT} via the portal, 1 attachment, ");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&written) && l.ends_with(&format!("to be sent to {SENDER}"))),
        "{lines:#?}"
    );
    let went = format!(
        "reply {reply_id} from {RCPT} via the portal sent to {SENDER} (Stalwart queue id {queue_id})"
    );
    assert!(lines.contains(&went.as_str()), "{lines:#?}");
    // What `audit report --message-id` prints.
    let text = report.to_text();
    assert!(text.contains(&went), "{text}");
    assert!(p.gw.gw.store.verify_audit().await.unwrap().ok());
    let log = p.gw.whole_audit_log().await;
    for secret in ["vraag", "Dank u", "waarden"] {
        assert!(!log.contains(secret), "{secret:?} in the audit log");
    }
}

/// Asserts that nothing of a refused reply was stored or sent.
async fn nothing_new(p: &Portal, stored: usize, sent: usize) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        replies(&p.gw).await.len(),
        stored,
        "a refused reply was stored"
    );
    assert_eq!(
        p.env.release.messages().len(),
        sent,
        "a refused reply was sent"
    );
    let written =
        p.gw.audit(&p.id)
            .await
            .iter()
            .filter(|(k, _, _)| k == "portal_reply")
            .count();
    assert_eq!(written, stored, "a refused reply was audited");
}

async fn reply_abuse(b: Backend) {
    let limits =
        "[portal]\nreply_max_bytes = 4096\nreply_max_attachments = 2\nreplies_per_hour = 2\n";
    let Some(mut p) = portal(b, limits).await else {
        return;
    };
    let csrf = reply_csrf(&mut p).await;
    let ok_text = field("text", "Een vraag.");

    // No session: the answer to reading without one (to the link's start), for the form and the POST.
    let stranger = Browser::new(&p.gw, "nl");
    let read = Browser::new(&p.gw, "nl")
        .get(&format!("{}/m/{}", p.link, p.id))
        .await;
    assert_eq!(read.status, StatusCode::SEE_OTHER);
    let form = Browser::new(&p.gw, "nl")
        .get(&format!("{}/m/{}/reply", p.link, p.id))
        .await;
    assert_eq!((form.status, &form.location), (read.status, &read.location));
    let (status, location, _) =
        post_reply(&p, &stranger, &[field("csrf", &csrf), field("text", "x")]).await;
    assert_eq!((status, &location), (read.status, &read.location));
    // An unknown link: the same 404 as everywhere.
    let bad = format!("/p/{}/m/{}/reply", "A".repeat(43), p.id);
    let (status, _, body) = post_form(
        &p.gw,
        &p.br,
        &bad,
        "multipart/form-data; boundary=x",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Link niet gevonden"));
    nothing_new(&p, 0, 0).await;

    // CSRF missing, wrong, the form's id missing or malformed, or not a multipart form at all.
    for parts in [
        vec![field("text", "x")],
        vec![field("csrf", &"0".repeat(64)), field("text", "x")],
        vec![
            field("csrf", &csrf),
            field("text", "x"),
            field("no-form", ""),
        ],
        vec![
            field("csrf", &csrf),
            field("text", "x"),
            field("form", "f-1"),
        ],
    ] {
        let (status, _, body) = post_reply(&p, &p.br, &parts).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("Formulier verlopen"), "{body}");
    }
    let path = format!("{}/m/{}/reply", p.link, p.id);
    let urlencoded = format!("csrf={csrf}&text=x").into_bytes();
    let (status, _, _) = post_form(
        &p.gw,
        &p.br,
        &path,
        "application/x-www-form-urlencoded",
        urlencoded,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    nothing_new(&p, 0, 0).await;

    // Too large: while reading (the text written so far is kept in the form), and from Content-Length.
    let big = vec![b'x'; 5000];
    let (status, _, body) = post_reply(
        &p,
        &p.br,
        &[field("csrf", &csrf), ok_text, file("groot.bin", &big)],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body.contains("Uw antwoord is te groot") && body.contains("4 KB"),
        "{body}"
    );
    assert!(body.contains(">Een vraag.</textarea>"), "{body}");
    let huge = vec![b'x'; 100_000];
    let (status, _, body) =
        post_reply(&p, &p.br, &[field("csrf", &csrf), file("huge.bin", &huge)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Too many attachments; nothing at all.
    let one = b"1".as_slice();
    let (status, _, body) = post_reply(
        &p,
        &p.br,
        &[
            field("csrf", &csrf),
            file("a.txt", one),
            file("b.txt", one),
            file("c.txt", one),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("Te veel bijlagen"), "{body}");
    let (status, _, body) =
        post_reply(&p, &p.br, &[field("csrf", &csrf), field("text", "  ")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Schrijf een bericht"), "{body}");
    nothing_new(&p, 0, 0).await;

    // A flood: `replies_per_hour = 2`, the third is refused (in English here).
    for n in 1..=2 {
        let text = format!("Vraag {n}");
        let (status, _, body) =
            post_reply(&p, &p.br, &[field("csrf", &csrf), field("text", &text)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        p.env.release.wait_for(n, 10).await;
    }
    p.br.lang = "en".into();
    let (status, _, body) =
        post_reply(&p, &p.br, &[field("csrf", &csrf), field("text", "Vraag 3")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body.contains("the most replies allowed in one hour"),
        "{body}"
    );
    nothing_new(&p, 2, 2).await;

    // A sender outside the local domains: no reply link, the form refused (the reply would leave).
    let outsider = "extern@elders.test";
    let req = hook_request(
        outsider,
        &[RCPT],
        &[
            ("From", outsider),
            ("Subject", "Van buiten"),
            ("Message-ID", "<out-1@elders.test>"),
        ],
        "Tekst\r\n",
    );
    let other = util::held_ref(&p.gw.hook(&req).await);
    // Its own verification (a new challenge, a new link).
    let mails = p.env.notify.wait_for(2, 10).await;
    let link = link_in(&mails[1].data, "p");
    assert_eq!(p.br.request_code(&link).await.status, StatusCode::SEE_OTHER);
    let code = p.moto.last_code(PHONE).await;
    assert_eq!(
        p.br.enter_code(&link, &code).await.status,
        StatusCode::SEE_OTHER
    );
    p.link = link;
    p.gw.wait_hold(&other, RCPT, "portal", 10).await;
    p.br.lang = "nl".into();
    let page = p.br.get(&format!("{}/m/{other}", p.link)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("/reply\""), "{}", page.body);
    let form = p.br.get(&format!("{}/m/{other}/reply", p.link)).await;
    assert_eq!(form.status, StatusCode::FORBIDDEN);
    assert!(
        form.body.contains("Beantwoorden niet mogelijk"),
        "{}",
        form.body
    );
    let path = format!("{}/m/{other}/reply", p.link);
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let body = multipart(&[field("csrf", &csrf), field("text", "x")]);
    let (status, _, _) = post_form(&p.gw, &p.br, &path, &ct, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    nothing_new(&p, 2, 2).await;
}

async fn reply_while_listener_down(b: Backend) {
    let Some(mut p) = portal(b, "").await else {
        return;
    };
    let csrf = reply_csrf(&mut p).await;
    p.env.release.stop();
    let (status, location, body) = post_reply(
        &p,
        &p.br,
        &[
            field("csrf", &csrf),
            field("text", "Komt dit aan?"),
            file("a.txt", b"abc"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // Kept, pending, retried; the recipient is told it is being sent.
    let page = p.br.get(&location.unwrap()).await;
    assert!(
        page.body.contains("Uw antwoord wordt verstuurd"),
        "{}",
        page.body
    );
    let failed = util::eventually(10, "a failed try recorded", || async {
        p.gw.audit(&p.id)
            .await
            .into_iter()
            .find(|(k, _, _)| k == "portal_reply_failed")
    })
    .await;
    assert_eq!(failed.2["next"], "retry");
    let rows = replies(&p.gw).await;
    assert_eq!(rows.len(), 1);
    assert!(
        matches!(rows[0].1.as_str(), "pending" | "sending"),
        "{rows:?}"
    );
    assert!(rows[0].3 >= 1, "the failed try is counted");
    let page = p.br.get(&format!("{}/m/{}", p.link, p.id)).await;
    assert!(page.body.contains("Wordt verstuurd"), "{}", page.body);

    // Back: sent once.
    p.env.release.restart().await;
    let got = p.env.release.wait_for(1, 15).await;
    assert!(String::from_utf8_lossy(&got[0].data).contains("Komt dit aan?"));
    wait_reply_state(&p.gw, "sent", 10).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(p.env.release.messages().len(), 1, "sent twice");

    // A lost answer after the data: uncertain, and never sent again.
    p.env
        .release
        .vanish
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, _, body) = post_reply(
        &p,
        &p.br,
        &[field("csrf", &csrf), field("text", "Tweede vraag")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    wait_reply_state(&p.gw, "uncertain", 15).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        p.env.release.messages().len(),
        2,
        "an uncertain reply was sent again"
    );
    let records = p.gw.audit(&p.id).await;
    assert!(records
        .iter()
        .any(|(k, _, d)| k == "portal_reply_failed" && d["next"] == "operator"));
}

/// The claim of a process that died: a reply claimed (`sending`, nothing submitted) is sent after the
/// lease; one that was `committing` (its data may have reached Stalwart) becomes `uncertain`, not sent.
async fn reply_claims_of_a_crashed_process(b: Backend) {
    let Some(mut p) = portal(b, "").await else {
        return;
    };
    let csrf = reply_csrf(&mut p).await;
    p.env.release.stop();
    let mut ids = Vec::new();
    for text in ["Eerste", "Tweede"] {
        let (status, location, body) =
            post_reply(&p, &p.br, &[field("csrf", &csrf), field("text", text)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        ids.push(location.unwrap().rsplit('/').next().unwrap().to_string());
    }
    assert_eq!(replies(&p.gw).await.len(), 2);
    // As a process left them when it was killed, longer ago than the lease (600 s): the first claimed,
    // the second with its data on the way.
    let old = stalwart_nta7516::time::now() - 700;
    for (id, state) in ids.iter().zip(["sending", "committing"]) {
        sqlx::query(
            "UPDATE portal_replies SET state = $1, updated_at = $2, next_attempt_at = 0 WHERE id = $3",
        )
        .bind(state)
        .bind(old)
        .bind(id)
        .execute(p.gw.gw.store.pool())
        .await
        .unwrap();
    }
    p.env.release.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        p.env.release.messages().is_empty(),
        "a claimed reply was taken before its lease ran out"
    );
    stalwart_nta7516::hold::reply::recover(&p.gw.gw, stalwart_nta7516::time::now())
        .await
        .unwrap();
    let got = p.env.release.wait_for(1, 10).await;
    assert!(String::from_utf8_lossy(&got[0].data).contains("Eerste"));
    wait_reply_state(&p.gw, "sent", 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows = replies(&p.gw).await;
    let state = |id: &str| rows.iter().find(|r| r.0 == id).unwrap().1.clone();
    assert_eq!(state(&ids[0]), "sent");
    assert_eq!(state(&ids[1]), "uncertain");
    assert_eq!(
        p.env.release.messages().len(),
        1,
        "the uncertain reply was sent"
    );
}

/// The same form posted twice (a double click, a reload of the POST): one reply stored, audited and
/// sent; both answers lead to its page. A new form is a new reply.
async fn reply_form_posted_twice_is_one_reply(b: Backend) {
    let Some(mut p) = portal(b, "").await else {
        return;
    };
    let form = p.br.get(&format!("{}/m/{}/reply", p.link, p.id)).await;
    let form_id = form
        .body
        .split("name=\"form\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the reply form carries its id")
        .to_string();
    let csrf = form.csrf();
    let parts = [
        field("csrf", &csrf),
        field("form", &form_id),
        field("text", "Eén vraag"),
    ];
    let (first, second) =
        tokio::join!(post_reply(&p, &p.br, &parts), post_reply(&p, &p.br, &parts));
    let third = post_reply(&p, &p.br, &parts).await;
    for (status, _, body) in [&first, &second, &third] {
        assert_eq!(*status, StatusCode::SEE_OTHER, "{body}");
    }
    assert_eq!(first.1, second.1, "both posts lead to the one reply");
    assert_eq!(first.1, third.1);
    p.env.release.wait_for(1, 10).await;
    nothing_new(&p, 1, 1).await;
    // Another form (another id) is another reply.
    let (status, location, body) =
        post_reply(&p, &p.br, &[field("csrf", &csrf), field("text", "Nog een")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_ne!(location, first.1);
    p.env.release.wait_for(2, 10).await;
    nothing_new(&p, 2, 2).await;
}

both_backends!(
    reply_form_posted_twice_is_one_reply,
    reply_end_to_end,
    reply_abuse,
    reply_while_listener_down,
    reply_claims_of_a_crashed_process
);

/// The reply in real headless Chromium (as `portal_browser`): verify with the code, open the message,
/// write a reply and choose a file, send it, see it in the thread; the release listener got it with the
/// file's exact bytes. Screenshots under `tests/artifacts/portal/reply-*.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_in_chromium() {
    let Some((moto, env, gw, id, link)) = held(Backend::Sqlite, "").await else {
        return;
    };
    let Some(chrome) = Chrome::start("nl-NL,nl").await else {
        return;
    };
    let shot = |name: &'static str| {
        let chrome = &chrome;
        async move {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../tests/artifacts/portal/reply-{name}.png"));
            let png = chrome.screenshot(&path).await;
            assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{name}");
            assert!(
                !chrome.source().await.contains("<script"),
                "{name}: no JavaScript"
            );
        }
    };
    chrome.goto(&link).await;
    chrome.click("button[type=submit]").await;
    chrome.wait_for("Code uit de sms", "/code").await;
    chrome
        .type_into("#code", &moto.last_code(PHONE).await)
        .await;
    chrome.click("button[type=submit]").await;
    chrome
        .wait_for("U bent bevestigd als ontvanger", "/messages")
        .await;
    util::eventually(10, "portal message listed", || async {
        chrome.goto(&format!("{link}/messages")).await;
        chrome.source().await.contains(">Lezen<").then_some(())
    })
    .await;
    chrome.click("td a").await;
    chrome
        .wait_for("Uw uitslag is binnen.", &format!("/m/{id}"))
        .await;
    chrome.click("a[href$='/reply']").await;
    chrome.wait_for("Uw antwoord", "/reply").await;
    shot("form").await;

    let pdf = binary_attachment();
    let file = env.dir.path().join("verwijzing.pdf");
    std::fs::write(&file, &pdf).unwrap();
    chrome
        .type_into(
            "#text",
            "Dank u. Mijn vraag staat in de bijlage <en niet hier>.",
        )
        .await;
    chrome.upload("#attachment", &file).await;
    chrome.click("button[type=submit]").await;
    chrome.wait_for("Uw antwoord", "").await;
    let got = env.release.wait_for(1, 10).await;
    shot("sent").await;
    assert_eq!(got[0].rcpt_to, vec![SENDER.to_string()]);
    let m = MessageParser::default().parse(&got[0].data).unwrap();
    let files: Vec<_> = m.attachments().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].attachment_name(), Some("verwijzing.pdf"));
    assert_eq!(files[0].contents(), pdf.as_slice(), "uploaded bytes differ");
    assert!(m
        .body_text(0)
        .unwrap()
        .contains("Mijn vraag staat in de bijlage <en niet hier>."));

    // Back to the message: the reply in the thread, escaped.
    chrome.goto(&format!("{link}/m/{id}")).await;
    util::eventually(10, "the reply shown as sent", || async {
        let src = chrome.source().await;
        (src.contains("Uw antwoorden") && src.contains("Verstuurd")).then_some(src)
    })
    .await;
    let src = chrome.source().await;
    assert!(src.contains("verwijzing.pdf"), "{src}");
    assert!(src.contains("&lt;en niet hier&gt;"), "{src}");
    shot("thread").await;
    assert_eq!(env.release.messages().len(), 1);
    drop(gw);
}

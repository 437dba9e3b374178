//! Large attachments by secure link, end to end on the real components (the gateway, moto's SNS, the
//! stand-in release listener): a 30 MB attachment in a held message is kept as a sealed blob file and
//! replaced in the released message by a text part with a download link; the link gives nothing before
//! verification and the exact bytes after it; a tampered file fails closed; the retention and a
//! withdrawal delete the file. Over SQLite and PostgreSQL. Must-show 2 of issue 16.

use crate::util::{self, hook_request, link_in, Backend, Browser, Env, Moto, SENDER};
use hyper::StatusCode;
use ring::digest;
use stalwart_nta7516::{audit::WithdrawnBy, hold::large, store::blobs::BlobRow};

const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";
const SIZE: usize = 30 * 1024 * 1024;

fn attachment() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub(crate) fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 38);
    for line in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// A multipart message with a short text and the attachment as `scan ü.bin`.
fn message(to: &str, msgid: &str, file: &[u8]) -> serde_json::Value {
    let body = format!(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBijgaand de scan.\r\n\
         --b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename*=UTF-8''scan%20%C3%BC.bin\r\n\r\n{}--b1--\r\n",
        base64_lines(file)
    );
    hook_request(
        SENDER,
        &[to],
        &[
            ("From", "Dr. A. Arts <arts@zorg.test>"),
            ("To", to),
            ("Subject", "Scan"),
            ("Message-ID", msgid),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"b1\""),
        ],
        &body,
    )
}

/// The request in Stalwart's member order (`message.headers` before `contents`, as Stalwart sends it;
/// `serde_json` sorts keys, which puts `contents` first): the order the streaming intake splits in.
pub(crate) fn stalwart_order(req: &serde_json::Value) -> Vec<u8> {
    let m = &req["message"];
    format!(
        "{{\"context\":{},\"envelope\":{},\"message\":{{\"headers\":{},\"contents\":{},\"size\":{}}}}}",
        req["context"], req["envelope"], m["headers"], m["contents"], m["size"]
    )
    .into_bytes()
}

pub(crate) async fn post_hook(gw: &util::Running, body: Vec<u8>) -> serde_json::Value {
    let (status, _, answer) = util::http(
        hyper::Method::POST,
        &gw.url("/v1/mta-hook"),
        &[
            ("authorization", format!("Bearer {}", util::TOKEN)),
            ("content-type", "application/json".into()),
        ],
        body,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    serde_json::from_slice(&answer).unwrap()
}

pub(crate) fn sha(b: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, b))
}

pub(crate) fn blob_file(gw: &util::Running, b: &BlobRow) -> std::path::PathBuf {
    stalwart_nta7516::hold::blob::path(&large::blob_dir(&gw.gw), &b.blob_id)
}

/// The download link in a released message (`…/p/<token>/b/<blob>`).
pub(crate) fn download_link(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/b/b-"))
        .unwrap_or_else(|| panic!("no download link in the released message"))
        .to_string()
}

/// The test's environment with its blob folder in its own temporary folder (on PostgreSQL the default,
/// `data/blobs`, would be relative to the working directory).
pub(crate) async fn env(b: Backend, sms: Option<String>, extra: &str) -> Env {
    let mut env = Env::new(b, sms, extra).await;
    let dir = env.dir.path().join("blobs");
    env.extra
        .push_str(&format!("\n[hold]\nblob_dir = \"{}\"\n", dir.display()));
    env
}

async fn large_attachment_by_link(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = env(b, Some(moto.url.clone()), "").await;
    let gw = env.start().await;
    let phone = "+31611110031";
    gw.set_phone(BOB, phone).await;
    let file = attachment();
    let req = message(BOB, "<large-1@zorg.test>", &file);
    let id = util::held_ref(&post_hook(&gw, stalwart_order(&req)).await);
    // The held copy's digest is the message's as submitted.
    let held = gw.gw.store.held(&id).await.unwrap().unwrap();
    assert_eq!(held.sha256, sha(&util::original_bytes(&req)));
    assert_eq!(held.size as usize, util::original_bytes(&req).len());

    // Held: one sealed blob file (0600), no plaintext in it, the held copy small.
    let blobs = gw.gw.store.blobs_of(&id).await.unwrap();
    assert_eq!(blobs.len(), 1);
    let blob = &blobs[0];
    assert_eq!(
        (blob.size as usize, blob.filename.as_str()),
        (SIZE, "scan ü.bin")
    );
    assert_eq!(blob.sha256, sha(&file));
    let path = blob_file(&gw, blob);
    let sealed = std::fs::read(&path).unwrap();
    assert!(sealed.len() > SIZE && !sealed.windows(64).any(|w| w == &file[4096..4160]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Before verification: the notification's token with the blob gives no bytes (to the landing page).
    let notice = env.notify.wait_for(1, 10).await;
    let landing = link_in(&notice[0].data, "p");
    let mut stranger = Browser::new(&gw, "nl-NL");
    let early = stranger.get(&format!("{landing}/b/{}", blob.blob_id)).await;
    assert_eq!(early.status, StatusCode::SEE_OTHER);
    assert!(early.bytes.len() < 4096, "no content before verification");

    // Verified → released: the link part instead of the 30 MB.
    let sent = stranger.request_code(&landing).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let done = stranger
        .enter_code(&landing, &moto.last_code(phone).await)
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let mut br = stranger;
    let got = env.release.wait_for(1, 30).await;
    let released = &got[0].data;
    assert!(
        released.len() < 64 * 1024,
        "released {} bytes",
        released.len()
    );
    let text = String::from_utf8_lossy(released);
    assert!(text.contains("Bijgaand de scan."), "{text}");
    assert!(
        text.contains("scan ü.bin") && text.contains(&blob.sha256),
        "{text}"
    );
    assert!(text.contains("too large for e-mail"), "{text}");
    assert!(!text.contains("nta7516-link"), "marker left: {text}");
    // Still one well-formed multipart message: the text, then the part that stands in for the file.
    let parsed = mail_parser::MessageParser::default()
        .parse(released)
        .unwrap();
    assert_eq!(parsed.parts.len(), 3, "{text}");
    let stand_in = parsed.part(2).unwrap();
    assert!(
        stand_in.text_contents().unwrap().contains("SHA-256: "),
        "{text}"
    );
    assert!(text.ends_with("--b1--\r\n"), "{text}");
    let link = download_link(released);
    assert!(
        link.starts_with(&format!("{landing}/b/")),
        "{link} vs {landing}"
    );
    gw.wait_hold(&id, BOB, "released", 10).await;

    // A browser without the session still gets nothing.
    let anon = Browser::new(&gw, "en").get(&link).await;
    assert_eq!(anon.status, StatusCode::SEE_OTHER);
    assert!(anon.bytes.len() < 4096);

    // After verification: the exact bytes, streamed, audited with size and digest.
    let dl = br.get(&link).await;
    assert_eq!(dl.status, StatusCode::OK, "{}", dl.body);
    assert_eq!(dl.headers["content-length"], SIZE.to_string().as_str());
    assert_eq!(dl.headers["content-type"], "application/octet-stream");
    let cd = dl.headers["content-disposition"].to_str().unwrap();
    assert!(cd.contains("filename*=UTF-8''scan%20%C3%BC.bin"), "{cd}");
    assert_eq!(dl.bytes.len(), SIZE);
    assert_eq!(sha(&dl.bytes), blob.sha256, "downloaded bytes differ");
    let audit = gw.whole_audit_log().await;
    assert!(
        audit.contains(&format!("{SIZE} bytes, sha256 {}", blob.sha256)),
        "{audit}"
    );

    // Tampered in the middle: the body stops early (never wrong or unchecked bytes); in the first
    // chunk: an error page.
    let mut bad = sealed.clone();
    bad[sealed.len() / 2] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    match br.try_go(hyper::Method::GET, &link, None).await {
        Err(_) => {}
        Ok(p) => assert!(
            p.status != StatusCode::OK || p.bytes.len() < SIZE,
            "a tampered blob was served whole"
        ),
    }
    let mut bad = sealed.clone();
    bad[100] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let p = br.get(&link).await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(p.bytes.len() < 64 * 1024);
    std::fs::write(&path, &sealed).unwrap();
    assert_eq!(br.get(&link).await.status, StatusCode::OK);

    // The retention ends: the file is deleted, the link answers 410.
    let later = stalwart_nta7516::time::now() + 91 * 86_400;
    assert_eq!(large::sweep(&gw.gw, later).await.unwrap(), 1);
    assert!(!path.exists(), "blob file kept after its retention");
    assert_eq!(br.get(&link).await.status, StatusCode::GONE);
    assert!(gw.gw.store.blobs_of(&id).await.unwrap().is_empty());
}

async fn withdrawal_deletes_the_blob(b: Backend) {
    let env = env(b, None, "[portal]\nlarge_attachment_bytes = 1048576\n").await;
    let gw = env.start().await;
    gw.set_phone(CAROL, "+31611110032").await;
    let file: Vec<u8> = attachment()[..3 * 1024 * 1024].to_vec();
    let id = util::held_ref(&gw.hook(&message(CAROL, "<large-2@zorg.test>", &file)).await);
    let blobs = gw.gw.store.blobs_of(&id).await.unwrap();
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].sha256, sha(&file));
    let path = blob_file(&gw, &blobs[0]);
    assert!(path.exists());
    // Not yet due: the sweep keeps it.
    let now = stalwart_nta7516::time::now();
    assert_eq!(large::sweep(&gw.gw, now).await.unwrap(), 0);
    let by = WithdrawnBy::Admin {
        actor: "test".into(),
    };
    gw.gw.store.withdraw(&id, None, &by, now).await.unwrap();
    // The worker's next pass deletes it.
    let store = gw.gw.store.clone();
    util::eventually(10, "blob deleted after the withdrawal", || async {
        store.blobs_of(&id).await.unwrap().is_empty().then_some(())
    })
    .await;
    assert!(!path.exists(), "blob file kept after the withdrawal");
}

/// The streaming intake's wrong-key or bad-JSON request changes nothing and leaves no file.
async fn streamed_bad_requests_leave_nothing(b: Backend) {
    let env = env(b, None, "[portal]\nlarge_attachment_bytes = 1048576\n").await;
    let gw = env.start().await;
    let file: Vec<u8> = attachment()[..3 * 1024 * 1024].to_vec();
    let mut body = stalwart_order(&message(CAROL, "<large-4@zorg.test>", &file));
    body.truncate(body.len() - 40);
    let (status, _, answer) = util::http(
        hyper::Method::POST,
        &gw.url("/v1/mta-hook"),
        &[("authorization", format!("Bearer {}", util::TOKEN))],
        body,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let dir = large::blob_dir(&gw.gw);
    let files = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    assert_eq!(files, 0, "blob files left after a bad request");
    assert_eq!(gw.gw.store.count("held_messages").await.unwrap(), 0);
    // A wrong token is refused before the body is read (the client may see the connection close).
    let refused = util::procs::try_http_full(
        hyper::Method::POST,
        &gw.url("/v1/mta-hook"),
        &[("authorization", "Bearer wrong".into())],
        stalwart_order(&message(CAROL, "<large-5@zorg.test>", &file)),
        60,
    )
    .await;
    if let Ok((status, ..)) = refused {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(gw.gw.store.count("held_messages").await.unwrap(), 0);
    assert_eq!(std::fs::read_dir(&dir).map_or(0, |d| d.count()), 0);
}

/// Below the threshold nothing changes: the attachment stays in the held copy.
async fn small_attachments_stay(b: Backend) {
    let env = env(b, None, "[portal]\nlarge_attachment_bytes = 4194304\n").await;
    let gw = env.start().await;
    let file: Vec<u8> = attachment()[..1024 * 1024].to_vec();
    let req = message(CAROL, "<large-3@zorg.test>", &file);
    let id = util::held_ref(&gw.hook(&req).await);
    assert!(gw.gw.store.blobs_of(&id).await.unwrap().is_empty());
    let held = gw.gw.store.held(&id).await.unwrap().unwrap();
    let raw = gw.gw.master.open(&id, &held.sealed.unwrap()).unwrap();
    assert_eq!(raw, util::original_bytes(&req));
}

const EXEMPT_WITHOUT_BSN: &str = r#"require ["vnd.stalwart.expressions", "vnd.nta7516"];
if eval "nta_has_bsn()" {
    eval "nta_require_2fa('a BSN in the message')";
} else {
    eval "nta_exempt('no BSN')";
}
"#;

/// A CSV of `rows` lines, larger than 1 MiB, with `bsn` on its last line.
fn csv_message(to: &str, msgid: &str, bsn: &str) -> serde_json::Value {
    let mut csv = String::from("naam;uitslag\r\n");
    while csv.len() < 2 * 1024 * 1024 {
        csv.push_str("patient;normaal\r\n");
    }
    csv.push_str(&format!("laatste;{bsn}\r\n"));
    let body = format!(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDe lijst.\r\n\
         --b1\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"lijst.csv\"\r\n\r\n{}--b1--\r\n",
        base64_lines(csv.as_bytes())
    );
    hook_request(
        SENDER,
        &[to],
        &[
            ("From", "arts@zorg.test"),
            ("To", to),
            ("Subject", "Lijst"),
            ("Message-ID", msgid),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"b1\""),
        ],
        &body,
    )
}

/// The streamed intake keeps what the policy's content tests read: a 2 MiB CSV attachment (over the
/// 1 MiB threshold) is not taken out before the policy decides, so a BSN on its last line still makes a
/// policy that exempts mail without a BSN ask for 2FA; the same list without the BSN is exempted (and
/// delivered: the test can tell the two apart).
async fn a_large_text_attachment_stays_for_the_policy(b: Backend) {
    let env = env(b, None, "[portal]\nlarge_attachment_bytes = 1048576\n").await;
    let policy = env.dir.path().join("exempt-without-bsn.sieve");
    std::fs::write(&policy, EXEMPT_WITHOUT_BSN).unwrap();
    let policy = stalwart_nta7516::policy::SievePolicy::load(&policy).unwrap();
    let gw = env.start_with_policy(std::sync::Arc::new(policy)).await;
    let without = stalwart_order(&csv_message(CAROL, "<large-7@zorg.test>", "geen"));
    assert!(
        without.len() > 1024 * 1024,
        "the request takes the streamed path"
    );
    let answer = post_hook(&gw, without).await;
    assert_eq!(answer["action"], "accept", "{answer}");
    let with = stalwart_order(&csv_message(CAROL, "<large-6@zorg.test>", "111222333"));
    let answer = post_hook(&gw, with).await;
    let id = util::held_ref(&answer);
    assert!(gw.gw.store.blobs_of(&id).await.unwrap().is_empty());
    assert_eq!(gw.gw.store.count("held_messages").await.unwrap(), 1);
}

both_backends!(
    a_large_text_attachment_stays_for_the_policy,
    large_attachment_by_link,
    withdrawal_deletes_the_blob,
    small_attachments_stay,
    streamed_bad_requests_leave_nothing
);

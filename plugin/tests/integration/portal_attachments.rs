//! The policy's `nta_portal_attachments(reason)`: every attachment of the message, whatever its size,
//! reaches the recipient by a secure portal link, never in the mail. On the real components (the
//! gateway, moto's SNS, the stand-in release listener), over SQLite and PostgreSQL: a 10 KB PDF for a
//! recipient the policy and an admin exemption would exempt is held, released after verification with
//! the link part instead of the PDF, downloaded byte-exact after verification only, and the decision
//! records the flag (audit record, report); nested multiparts, an attached message and a single-part
//! PDF lose their attachments the same way, also on the streamed intake; without the flag nothing
//! changes.

use crate::large_attachment::{
    base64_lines, blob_file, download_link, env, post_hook, sha, stalwart_order,
};
use crate::util::{self, hook_request, link_in, Backend, Browser, Env, Moto, SENDER};
use hyper::StatusCode;
use stalwart_nta7516::{hold::large, policy::SievePolicy};

const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";

/// Exempts everyone, and sends the attachments by link when the subject says `[att]`.
const ON_TAG: &str = r#"require ["vnd.stalwart.expressions", "vnd.nta7516"];
eval "nta_exempt('partner')";
if eval "nta_has_tag('[att]')" { eval "nta_portal_attachments('attachments on the portal')"; }
"#;

const ALWAYS: &str = r#"require ["vnd.stalwart.expressions", "vnd.nta7516"];
eval "nta_portal_attachments('attachments on the portal')";
"#;

/// A 10 KB PDF-like file (not valid UTF-8, so a charset conversion would show).
fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.extend((0..10 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    v
}

/// A message id per subject: each test message is its own submission.
fn msgid(subject: &str) -> String {
    let id: String = subject
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("<{id}@zorg.test>")
}

fn request(to: &str, subject: &str, headers: &[(&str, &str)], body: &str) -> serde_json::Value {
    let id = msgid(subject);
    let mut all = vec![
        ("From", "Dr. A. Arts <arts@zorg.test>"),
        ("To", to),
        ("Subject", subject),
        ("Message-ID", id.as_str()),
        ("MIME-Version", "1.0"),
    ];
    all.extend_from_slice(headers);
    hook_request(SENDER, &[to], &all, body)
}

/// Text and the PDF as `uitslag.pdf`, in a multipart/mixed.
fn with_pdf(to: &str, subject: &str) -> serde_json::Value {
    let body = format!(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBijgaand de uitslag.\r\n\
         --b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"uitslag.pdf\"\r\n\r\n{}--b1--\r\n",
        base64_lines(&pdf())
    );
    let ct = [("Content-Type", "multipart/mixed; boundary=\"b1\"")];
    request(to, subject, &ct, &body)
}

async fn start(env: &Env, policy: &str) -> util::Running {
    let path = env.dir.path().join("policy.sieve");
    std::fs::write(&path, policy).unwrap();
    let policy = SievePolicy::load(&path).unwrap();
    env.start_with_policy(std::sync::Arc::new(policy)).await
}

/// The held copy as sealed (the blob markers still in it).
async fn held_copy(gw: &util::Running, id: &str) -> String {
    let held = gw.gw.store.held(id).await.unwrap().unwrap();
    let raw = gw.gw.master.open(id, &held.sealed.unwrap()).unwrap();
    String::from_utf8(raw).unwrap()
}

/// The `decision` record of a message's recipient.
async fn decided(gw: &util::Running, id: &str, rcpt: &str) -> serde_json::Value {
    gw.audit(id)
        .await
        .into_iter()
        .find(|(kind, r, _)| kind == "decision" && r.as_deref() == Some(rcpt))
        .map(|(_, _, d)| d)
        .unwrap_or_else(|| panic!("no decision record for {rcpt}"))
}

/// The recipient asks for a code, enters the SMS code, and the message is released: its bytes as the
/// stand-in release listener received them.
async fn verify_and_release(
    br: &mut Browser,
    landing: &str,
    moto: &Moto,
    phone: &str,
    env: &Env,
) -> Vec<u8> {
    assert_eq!(br.request_code(landing).await.status, StatusCode::SEE_OTHER);
    let done = br.enter_code(landing, &moto.last_code(phone).await).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    env.release.wait_for(1, 30).await.remove(0).data
}

async fn pdf_by_link_even_for_an_exempt_recipient(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let extra = format!("[exemptions]\naddresses = [\"{BOB}\"]\n");
    let env = env(b, Some(moto.url.clone()), &extra).await;
    let gw = start(&env, ON_TAG).await;
    let phone = "+31611110041";
    gw.set_phone(BOB, phone).await;

    // Without the tag: exempt (policy and admin exemption), delivered now with its PDF.
    let answer = gw.hook(&with_pdf(BOB, "Uitslag")).await;
    assert_eq!(answer["action"], "accept", "{answer}");
    assert_eq!(gw.gw.store.count("held_messages").await.unwrap(), 0);

    // With it: held for verification, the PDF in a sealed blob, not in the held copy.
    let id = util::held_ref(&gw.hook(&with_pdf(BOB, "Uitslag [att]")).await);
    let blobs = gw.gw.store.blobs_of(&id).await.unwrap();
    assert_eq!(blobs.len(), 1);
    let blob = &blobs[0];
    assert_eq!(
        (blob.filename.as_str(), blob.content_type.as_str()),
        ("uitslag.pdf", "application/pdf")
    );
    assert_eq!(
        (blob.size as usize, &blob.sha256),
        (pdf().len(), &sha(&pdf()))
    );
    let copy = held_copy(&gw, &id).await;
    assert!(!copy.contains(&base64_lines(&pdf())[..76]), "{copy}");
    assert!(copy.contains(&format!("{{{{nta7516-link:{}}}}}", blob.blob_id)));
    assert!(blob_file(&gw, blob).exists());

    // The decision records the flag and its reason; so does the report.
    let d = decided(&gw, &id, BOB).await;
    assert_eq!(
        (d["outcome"].as_str(), d["attachments"].as_str()),
        (Some("challenge"), Some("by_link"))
    );
    let codes: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        ["exempt", "attachments_by_link", "tls_secure"],
        "{d}"
    );
    assert_eq!(d["reasons"][1]["text"], "attachments on the portal");
    let report = gw.gw.store.audit_report(&id).await.unwrap().unwrap();
    assert_eq!(report.recipients[0].attachments.as_deref(), Some("by_link"));
    let text = report.to_text();
    assert!(
        text.contains("attachments: every attachment by secure link (verification required)"),
        "{text}"
    );

    // Before verification the link gives nothing.
    let notice = env.notify.wait_for(1, 10).await;
    let landing = link_in(&notice[0].data, "p");
    let mut br = Browser::new(&gw, "nl-NL");
    let early = br.get(&format!("{landing}/b/{}", blob.blob_id)).await;
    assert_eq!(early.status, StatusCode::SEE_OTHER);
    assert!(!early.bytes.windows(8).any(|w| w == b"%PDF-1.7"));

    // Verified → released with the link part and without the PDF.
    let released = &verify_and_release(&mut br, &landing, &moto, phone, &env).await;
    let text = String::from_utf8_lossy(released);
    assert!(text.contains("Bijgaand de uitslag."), "{text}");
    assert!(text.contains("is not sent with the e-mail"), "{text}");
    assert!(
        text.contains("uitslag.pdf") && text.contains(&blob.sha256),
        "{text}"
    );
    assert!(
        !text.contains(&base64_lines(&pdf())[..76]),
        "the PDF went out: {text}"
    );
    assert!(!text.contains("nta7516-link"), "{text}");
    let parsed = mail_parser::MessageParser::default()
        .parse(released)
        .unwrap();
    assert!(
        parsed
            .attachments()
            .all(|a| a.contents().starts_with(b"De bijlage")),
        "{text}"
    );
    let link = download_link(released);
    assert!(link.starts_with(&format!("{landing}/b/")), "{link}");
    gw.wait_hold(&id, BOB, "released", 10).await;

    // Only with the session: the exact bytes.
    let anon = Browser::new(&gw, "en").get(&link).await;
    assert_eq!(anon.status, StatusCode::SEE_OTHER);
    assert!(!anon.bytes.windows(8).any(|w| w == b"%PDF-1.7"));
    let dl = br.get(&link).await;
    assert_eq!(dl.status, StatusCode::OK, "{}", dl.body);
    assert_eq!(dl.bytes, pdf());
}

/// mixed > (alternative > text + related > html + inline image) + PDF + an attached message: the image,
/// the PDF and the message (whole, as `.eml`) leave; text and HTML stay exactly.
async fn nested_parts_and_an_attached_message_leave(b: Backend) {
    let env = env(b, None, "").await;
    let gw = start(&env, ALWAYS).await;
    let inner = "From: lab@lab.test\r\nSubject: Lab\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/mixed; boundary=\"i\"\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\n\
                 Uitslag lab.\r\n--i\r\nContent-Type: application/pdf\r\n\
                 Content-Disposition: attachment; filename=\"lab.pdf\"\r\n\r\nLAB-PDF-BYTES\r\n--i--";
    let png = b"\x89PNG\r\n\x1a\nPIXELS";
    let body = format!(
        "--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
         --a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZie de bijlagen.\r\n\
         --a\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Zie <img src=\"cid:i1\"></p>\r\n\
         --r\r\nContent-Type: image/png\r\nContent-ID: <i1>\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\
         --r--\r\n\r\n--a--\r\n\r\n\
         --m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"uitslag.pdf\"\r\n\r\n{}\
         --m\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n{inner}\r\n--m--\r\n",
        base64_lines(png),
        base64_lines(&pdf())
    );
    let ct = [("Content-Type", "multipart/mixed; boundary=\"m\"")];
    let id = util::held_ref(&gw.hook(&request(CAROL, "Bijlagen", &ct, &body)).await);
    let blobs = gw.gw.store.blobs_of(&id).await.unwrap();
    let got: Vec<(&str, &str)> = blobs
        .iter()
        .map(|b| (b.filename.as_str(), b.content_type.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("attachment", "image/png"),
            ("uitslag.pdf", "application/pdf"),
            ("message.eml", "message/rfc822")
        ]
    );
    assert_eq!(blobs[0].sha256, sha(png));
    assert_eq!(blobs[1].sha256, sha(&pdf()));
    assert_eq!(blobs[2].sha256, sha(inner.as_bytes()));
    let copy = held_copy(&gw, &id).await;
    for gone in [
        "LAB-PDF-BYTES",
        "lab.pdf",
        &base64_lines(png)[..8],
        &base64_lines(&pdf())[..76],
    ] {
        assert!(!copy.contains(gone), "{gone} in {copy}");
    }
    let parsed = mail_parser::MessageParser::default()
        .parse(copy.as_bytes())
        .unwrap();
    assert_eq!(parsed.body_text(0).unwrap().trim(), "Zie de bijlagen.");
    assert!(parsed.body_html(0).unwrap().contains("cid:i1"));
    // Three stand-ins, and no attachment but them.
    assert_eq!(
        copy.matches("X-NTA7516-Large-Attachment: ").count(),
        3,
        "{copy}"
    );
    assert!(parsed
        .attachments()
        .all(|a| a.contents().starts_with(b"De bijlage")));
    assert!(copy.ends_with("--m--\r\n"), "{copy}");
}

/// Without the flag nothing changes: a small attachment stays in the held copy, the decision has no
/// `attachments` entry.
async fn without_the_flag_a_small_attachment_stays(b: Backend) {
    let env = env(b, None, "[policy]\ndefault = \"require_2fa\"\n").await;
    let policy = ON_TAG.replace("eval \"nta_exempt('partner')\";\n", "");
    let gw = start(&env, &policy).await;
    let req = with_pdf(CAROL, "Uitslag");
    let id = util::held_ref(&gw.hook(&req).await);
    assert!(gw.gw.store.blobs_of(&id).await.unwrap().is_empty());
    assert_eq!(
        held_copy(&gw, &id).await.as_bytes(),
        util::original_bytes(&req)
    );
    let d = decided(&gw, &id, CAROL).await;
    assert!(d.get("attachments").is_none(), "{d}");
    let report = gw.gw.store.audit_report(&id).await.unwrap().unwrap();
    assert_eq!(report.recipients[0].attachments, None);
}

/// A message that is one PDF: the body becomes the link text, the message's own headers stay; after
/// verification the released message is that text, and the PDF comes from the link.
async fn a_single_part_pdf_becomes_the_link_text(b: Backend) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = env(b, Some(moto.url.clone()), "").await;
    let gw = start(&env, ALWAYS).await;
    let phone = "+31611110042";
    gw.set_phone(BOB, phone).await;
    let ct = [
        ("Content-Type", "application/pdf; name=\"brief.pdf\""),
        ("Content-Transfer-Encoding", "base64"),
    ];
    let req = request(BOB, "Brief", &ct, &base64_lines(&pdf()));
    let id = util::held_ref(&gw.hook(&req).await);
    let blobs = gw.gw.store.blobs_of(&id).await.unwrap();
    assert_eq!(blobs.len(), 1);
    assert_eq!(
        (blobs[0].filename.as_str(), &blobs[0].sha256),
        ("brief.pdf", &sha(&pdf()))
    );
    let notice = env.notify.wait_for(1, 10).await;
    let landing = link_in(&notice[0].data, "p");
    let mut br = Browser::new(&gw, "nl-NL");
    let released = &verify_and_release(&mut br, &landing, &moto, phone, &env).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(released)
        .unwrap();
    assert_eq!(parsed.subject(), Some("Brief"));
    assert_eq!(parsed.message_id(), Some("Brief@zorg.test"));
    let ctype = mail_parser::MimeHeaders::content_type(&parsed).unwrap();
    assert_eq!((ctype.ctype(), ctype.subtype()), ("text", Some("plain")));
    assert_eq!(parsed.attachments().count(), 0);
    let text = parsed.body_text(0).unwrap();
    assert!(
        text.contains("brief.pdf") && text.contains(&blobs[0].sha256),
        "{text}"
    );
    let link = download_link(released);
    // The release is recorded just after Stalwart accepted the mail.
    gw.wait_hold(&id, BOB, "released", 10).await;
    let dl = br.get(&link).await;
    assert_eq!(dl.status, StatusCode::OK, "{}", dl.body);
    assert!(dl.bytes == pdf(), "the PDF's exact bytes");
}

/// A message read as a stream (over the 1 MiB threshold): its large attachment leaves while it is
/// read, the small PDF from what stayed in memory; both by link.
async fn the_streamed_intake_loses_every_attachment_too(b: Backend) {
    let env = env(b, None, "[portal]\nlarge_attachment_bytes = 1048576\n").await;
    let gw = start(&env, ALWAYS).await;
    let big: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let body = format!(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTwee bijlagen.\r\n\
         --b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"scan.bin\"\r\n\r\n{}\
         --b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"uitslag.pdf\"\r\n\r\n{}--b1--\r\n",
        base64_lines(&big),
        base64_lines(&pdf())
    );
    let ct = [("Content-Type", "multipart/mixed; boundary=\"b1\"")];
    let req = request(CAROL, "Twee", &ct, &body);
    let id = util::held_ref(&post_hook(&gw, stalwart_order(&req)).await);
    let blobs = gw.gw.store.blobs_of(&id).await.unwrap();
    let got: Vec<(&str, &str)> = blobs
        .iter()
        .map(|b| (b.filename.as_str(), b.sha256.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("scan.bin", sha(&big).as_str()),
            ("uitslag.pdf", sha(&pdf()).as_str())
        ]
    );
    let copy = held_copy(&gw, &id).await;
    assert!(copy.len() < 16 * 1024, "{} bytes held", copy.len());
    assert!(
        copy.contains("is too large for e-mail") && copy.contains("is not sent with the e-mail")
    );
    let held = gw.gw.store.held(&id).await.unwrap().unwrap();
    assert_eq!(held.sha256, sha(&util::original_bytes(&req)));
    for b in &blobs {
        assert!(blob_file(&gw, b).exists());
    }
    assert_eq!(
        std::fs::read_dir(large::blob_dir(&gw.gw)).unwrap().count(),
        2,
        "no other file"
    );
}

both_backends!(
    pdf_by_link_even_for_an_exempt_recipient,
    nested_parts_and_an_attached_message_leave,
    without_the_flag_a_small_attachment_stays,
    a_single_part_pdf_becomes_the_link_text,
    the_streamed_intake_loses_every_attachment_too
);

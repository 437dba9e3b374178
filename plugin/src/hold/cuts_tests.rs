//! The parts each [`Take`] takes out, their exact bytes, and the held copy rebuilt around them.

use mail_parser::MessageParser;

use super::*;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    let s = base64::engine::general_purpose::STANDARD.encode(bytes);
    s.as_bytes()
        .chunks(76)
        .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
        .collect()
}

fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend((0..10_000u32).map(|i| (i * 7 % 251) as u8));
    v
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n-an-image-";

/// multipart/mixed > (multipart/alternative > text + multipart/related > html + image) + PDF, with
/// each part as its own string so the test knows the bytes of each.
fn nested() -> (String, String, String) {
    let image = format!(
        "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\
         Content-ID: <img1>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\r\n{}",
        b64(PNG)
    );
    let pdf_part = format!(
        "Content-Type: application/pdf; name=\"uitslag.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"uitslag.pdf\"\r\n\r\n{}",
        b64(&pdf())
    );
    let raw = format!(
        "From: a@zorg.test\r\nTo: b@example.test\r\nSubject: Uitslag\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
         --m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
         --a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZie de bijlage.\r\n\
         --a\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Zie de bijlage.<img src=\"cid:img1\"></p>\r\n\
         --r\r\n{image}--r--\r\n\r\n--a--\r\n\r\n\
         --m\r\n{pdf_part}--m--\r\n"
    );
    (raw, image, pdf_part)
}

fn parse(raw: &str) -> Message<'_> {
    MessageParser::default().parse(raw.as_bytes()).unwrap()
}

#[test]
fn all_takes_nested_attachments_with_exact_bytes_and_offsets() {
    let (raw, image, pdf_part) = nested();
    let msg = parse(&raw);
    let cuts = cuts(&msg, raw.as_bytes(), Take::All, &[]);
    let got: Vec<_> = cuts
        .iter()
        .map(|c| (c.name.as_str(), c.content_type.as_str(), c.bytes.as_ref()))
        .collect();
    assert_eq!(
        got,
        [
            ("logo.png", "image/png", PNG),
            ("uitslag.pdf", "application/pdf", &pdf()[..])
        ]
    );
    // Each range is the part as sent (headers and body, up to the line break before its boundary).
    assert_eq!(&raw[cuts[0].range.clone()], image.trim_end_matches("\r\n"));
    assert_eq!(
        &raw[cuts[1].range.clone()],
        pdf_part.trim_end_matches("\r\n")
    );
    let stand_in = |n: &str| format!("Content-Type: text/plain\r\n\r\nlink {n}").into_bytes();
    let out = rebuild(raw.as_bytes(), &cuts, &[stand_in("1"), stand_in("2")]);
    let out = String::from_utf8(out).unwrap();
    let want = raw
        .replace(
            image.trim_end_matches("\r\n"),
            "Content-Type: text/plain\r\n\r\nlink 1",
        )
        .replace(
            pdf_part.trim_end_matches("\r\n"),
            "Content-Type: text/plain\r\n\r\nlink 2",
        );
    assert_eq!(out, want);
    // Still the same tree: text and HTML as they were, no attachment left but the two stand-ins.
    let again = parse(&out);
    assert_eq!(again.body_text(0).unwrap().trim(), "Zie de bijlage.");
    assert!(again.body_html(0).unwrap().contains("cid:img1"));
    assert!(super::cuts(&again, out.as_bytes(), Take::All, &[])
        .iter()
        .all(|c| c.bytes.starts_with(b"link ")));
}

#[test]
fn large_takes_only_what_passes_the_threshold_at_any_depth() {
    let (raw, _, pdf_part) = nested();
    let msg = parse(&raw);
    let cuts = cuts(&msg, raw.as_bytes(), Take::Large(1000), &[]);
    assert_eq!(cuts.len(), 1);
    assert_eq!(
        &raw[cuts[0].range.clone()],
        pdf_part.trim_end_matches("\r\n")
    );
    assert!(super::cuts(&msg, raw.as_bytes(), Take::Large(20_000), &[]).is_empty());
    assert!(super::cuts(&msg, raw.as_bytes(), Take::Large(0), &[]).is_empty());
}

#[test]
fn an_attached_message_leaves_whole_as_eml() {
    let inner = "From: c@lab.test\r\nSubject: Uitslag lab\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/mixed; boundary=\"i\"\r\n\r\n--i\r\n\
                 Content-Type: text/plain\r\n\r\nZie bijlage.\r\n--i\r\n\
                 Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"lab.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--i--";
    let raw = format!(
        "From: a@zorg.test\r\nSubject: Fw\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\n\
         Content-Type: text/plain\r\n\r\nDoorgestuurd.\r\n--o\r\n\
         Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"lab\"\r\n\r\n\
         {inner}\r\n--o--\r\n"
    );
    let msg = parse(&raw);
    assert!(super::cuts(&msg, raw.as_bytes(), Take::Large(1), &[]).is_empty());
    let cuts = cuts(&msg, raw.as_bytes(), Take::All, &[]);
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(
        (cuts[0].name.as_str(), cuts[0].content_type.as_str()),
        ("lab.eml", "message/rfc822")
    );
    assert_eq!(std::str::from_utf8(&cuts[0].bytes).unwrap(), inner);
    let out = rebuild(
        raw.as_bytes(),
        &cuts,
        &[b"Content-Type: text/plain\r\n\r\nlink".to_vec()],
    );
    let out = String::from_utf8(out).unwrap();
    assert!(
        !out.contains("lab.pdf") && !out.contains("JVBERi0"),
        "{out}"
    );
    assert!(
        out.contains("Doorgestuurd.") && out.ends_with("--o--\r\n"),
        "{out}"
    );
    // Base64-encoded, it is decoded whole.
    let encoded = raw.replace(
        &format!("Content-Disposition: attachment; filename=\"lab\"\r\n\r\n{inner}\r\n"),
        &format!(
            "Content-Transfer-Encoding: base64\r\n\r\n{}",
            b64(inner.as_bytes())
        ),
    );
    let msg = parse(&encoded);
    let cuts = super::cuts(&msg, encoded.as_bytes(), Take::All, &[]);
    assert_eq!(cuts.len(), 1);
    assert_eq!(cuts[0].bytes.as_ref(), inner.as_bytes());
    assert_eq!(cuts[0].name, "message.eml");
}

#[test]
fn a_root_attachment_keeps_its_headers_and_becomes_the_text() {
    let pdf = pdf();
    let raw = format!(
        "From: a@zorg.test\r\nTo: b@example.test\r\nSubject: Uitslag\r\nContent-Type: application/pdf;\r\n\
         \tname=\"uitslag.pdf\"\r\nContent-Transfer-Encoding: base64\r\nMessage-ID: <r@zorg.test>\r\n\r\n{}",
        b64(&pdf)
    );
    let msg = parse(&raw);
    assert!(super::cuts(&msg, raw.as_bytes(), Take::Large(1), &[]).is_empty());
    let cuts = cuts(&msg, raw.as_bytes(), Take::All, &[]);
    assert_eq!(cuts.len(), 1);
    assert_eq!(
        (cuts[0].range.clone(), cuts[0].name.as_str()),
        (0..raw.len(), "uitslag.pdf")
    );
    assert_eq!(cuts[0].bytes.as_ref(), &pdf[..]);
    let out = rebuild(
        raw.as_bytes(),
        &cuts,
        &[b"Content-Type: text/plain; charset=utf-8\r\n\r\nlink\r\n".to_vec()],
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "From: a@zorg.test\r\nTo: b@example.test\r\nSubject: Uitslag\r\nMessage-ID: <r@zorg.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nlink\r\n"
    );
    // `Content-Disposition: attachment` on a text root is an attachment too (its bytes not converted).
    let raw =
        "From: a@zorg.test\r\nMIME-Version: 1.0\r\nContent-Type: text/csv; charset=iso-8859-1\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\
               Content-Disposition: attachment; filename=\"lijst.csv\"\r\n\r\nna=EFef;1\r\n";
    let msg = parse(raw);
    let cuts = super::cuts(&msg, raw.as_bytes(), Take::All, &[]);
    assert_eq!(cuts.len(), 1);
    assert_eq!(cuts[0].bytes.as_ref(), b"na\xefef;1\r\n");
    assert_eq!(
        cuts[0].root_headers.as_deref(),
        Some(&b"From: a@zorg.test\r\nMIME-Version: 1.0\r\n"[..])
    );
    // A text message is no attachment.
    let raw = "From: a@zorg.test\r\nSubject: x\r\n\r\nGewoon tekst.\r\n";
    assert!(super::cuts(&parse(raw), raw.as_bytes(), Take::All, &[]).is_empty());
}

#[test]
fn stand_ins_of_blobs_taken_out_before_stay_and_forged_ones_do_not() {
    let raw = "From: a@zorg.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n\
               --r\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n\
               --r\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\
               X-NTA7516-Large-Attachment: b-ours\r\n\r\nlink\r\n\
               --r\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment\r\n\
               X-NTA7516-Large-Attachment: b-forged\r\n\r\n%PDF-1.7\r\n--r--\r\n";
    let msg = parse(raw);
    let ours = ["b-ours".to_string()];
    let cuts = cuts(&msg, raw.as_bytes(), Take::All, &ours);
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(cuts[0].bytes.as_ref(), b"%PDF-1.7");
    assert_eq!(super::cuts(&msg, raw.as_bytes(), Take::All, &[]).len(), 2);
}

/// Cut-off and damaged messages (every prefix of the nested one, and its boundaries garbled) never
/// panic, and what is rebuilt keeps every byte that was not cut.
#[test]
fn broken_messages_are_cut_without_panics() {
    let (raw, _, _) = nested();
    let garbled = raw
        .replace("--r--", "--x--")
        .replace("\r\n--a\r\n", "\r\n--r\r\n");
    for text in [raw.as_str(), garbled.as_str()] {
        for len in (0..text.len()).step_by(97).chain([text.len()]) {
            let prefix = &text.as_bytes()[..len];
            let Some(msg) = MessageParser::default().parse(prefix) else {
                continue;
            };
            for take in [Take::All, Take::Large(100)] {
                let cuts = cuts(&msg, prefix, take, &[]);
                let stand_ins = vec![b"S".to_vec(); cuts.len()];
                let out = rebuild(prefix, &cuts, &stand_ins);
                let removed: usize = cuts.iter().map(|c| c.range.len()).sum();
                let added: usize = cuts
                    .iter()
                    .map(|c| 1 + c.root_headers.as_ref().map_or(0, Vec::len))
                    .sum();
                assert_eq!(
                    out.len() + removed,
                    prefix.len() + added,
                    "{take:?} at {len}"
                );
            }
        }
    }
}

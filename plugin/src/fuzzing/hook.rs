//! `hook_request`: Stalwart's MTA-hook request (JSON) → the typed request, the envelope the submission
//! reads, the rebuilt message, the held copy without the subject tag, and the dot-stuffed bytes that are
//! released.

use crate::{
    challenge::phone::{self, SubjectTag},
    stalwart::hook::{Message, Request},
    stalwart_submit::dot_stuff,
    submission::facts,
};

pub fn hook_request(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    let json = serde_json::to_string(&req).expect("a parsed request serialises");
    let again: Request = serde_json::from_str(&json).expect("a serialised request parses");
    assert_eq!(
        serde_json::to_string(&again).expect("serialises"),
        json,
        "serialise → parse → serialise is not a fixed point"
    );
    if let Ok((sender, rcpts, message)) = facts::envelope(&req) {
        envelope(&req, sender, &rcpts);
        rebuilt(message, sender, &rcpts);
    }
}

/// Distinct recipients, in envelope order, none invented.
fn envelope(req: &Request, sender: &str, rcpts: &[&str]) {
    let env = req.envelope.as_ref().expect("an envelope was found");
    assert_eq!(sender, env.from.address);
    assert!(!rcpts.is_empty(), "an accepted envelope has recipients");
    let mut rest = env.to.iter();
    for (i, r) in rcpts.iter().enumerate() {
        assert!(!rcpts[..i].contains(r), "recipient {r:?} twice");
        assert!(
            rest.any(|a| a.address == *r),
            "recipient {r:?} not in envelope order"
        );
    }
    let mut reversed = rcpts.to_vec();
    reversed.reverse();
    assert_eq!(
        facts::idempotency_key(sender, rcpts, b"m"),
        facts::idempotency_key(sender, &reversed, b"m"),
        "the retry key depends on the recipients' order"
    );
}

/// The exact copy, its tag-stripped held copy and the released bytes.
fn rebuilt(message: &Message, sender: &str, rcpts: &[&str]) {
    let raw = match message.rebuild() {
        Ok(raw) => raw,
        Err(len) => {
            assert_ne!(len, message.size, "a refused rebuild had the right size");
            return;
        }
    };
    assert_eq!(raw.len(), message.size);
    assert!(raw.ends_with(message.contents.as_bytes()));
    let _ = facts::idempotency_key(sender, rcpts, &raw);
    let held = match phone::subject_tag(&raw) {
        SubjectTag::None => raw.clone(),
        SubjectTag::Valid(_, out) | SubjectTag::Invalid(_, out) => {
            one_cut_in_the_header(&raw, &out);
            out
        }
    };
    released(&held, &dot_stuff(&held));
}

/// The tag-stripped copy is the original with one `[sms:…]` range (and one space next to it) removed,
/// in the header section.
fn one_cut_in_the_header(raw: &[u8], out: &[u8]) {
    assert!(out.len() < raw.len(), "the tag removed nothing");
    let cut = raw.len() - out.len();
    let prefix = raw.iter().zip(out).take_while(|(a, b)| a == b).count();
    let suffix = raw
        .iter()
        .rev()
        .zip(out.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        prefix + suffix >= out.len(),
        "more than one range was removed"
    );
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 2);
    // Every place the cut can be (a run of equal bytes makes it ambiguous); one of them is the tag.
    let places = out.len().saturating_sub(suffix)..=prefix.min(out.len());
    let is_tag = |p: usize| {
        let r = &raw[p..p + cut];
        let r = r
            .strip_prefix(b" ")
            .filter(|r| !r.ends_with(b"] "))
            .unwrap_or(r);
        let r = r.strip_suffix(b" ").unwrap_or(r);
        r.len() >= 6 && r[..5].eq_ignore_ascii_case(b"[sms:") && r.ends_with(b"]")
    };
    assert!(
        places.clone().any(|p| is_tag(p) && p + cut <= header_end),
        "the removed bytes are not one subject tag in the header"
    );
}

/// Dot-stuffing is reversible, and the only end-of-data marker is the last one.
fn released(held: &[u8], stuffed: &[u8]) {
    let mut framed = b"\r\n".to_vec();
    framed.extend_from_slice(stuffed);
    let first_end = framed
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .expect("dot-stuffed data ends with CRLF.CRLF");
    assert_eq!(
        first_end,
        framed.len() - 5,
        "the message would end the DATA early"
    );
    let body = &stuffed[..stuffed.len() - 3];
    let mut expected = held.to_vec();
    if !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(unstuff(body), expected, "dot-stuffing is not reversible");
}

/// RFC 5321 §4.5.2 on the receiving side: a line's leading dot is removed.
fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut at_line_start = true;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if at_line_start && b == b'.' {
            i += 1;
            at_line_start = false;
            continue;
        }
        out.push(b);
        at_line_start = b == b'\n';
        i += 1;
    }
    out
}

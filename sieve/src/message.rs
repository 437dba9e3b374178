//! A message parsed once and scanned at most once, then evaluated for every recipient.

use std::sync::OnceLock;

use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::{bsn, phone};

/// The message under evaluation: parsed once; the BSN, phone and tag scans run lazily, at most once per
/// message, whatever the number of recipients.
pub struct PreparedMessage<'a> {
    pub(crate) message: Message<'a>,
    size: usize,
    text: OnceLock<String>,
    has_bsn: OnceLock<bool>,
    has_phone: OnceLock<bool>,
    haystack: OnceLock<String>,
}

impl<'a> PreparedMessage<'a> {
    /// Parses the raw RFC 5322 message. Unparseable input becomes an empty message (nothing is found in
    /// it; facts and envelope still apply).
    pub fn new(raw: &'a [u8]) -> Self {
        let message = MessageParser::new().parse(raw).unwrap_or_else(|| Message {
            parts: vec![MessagePart {
                headers: vec![],
                is_encoding_problem: false,
                body: PartType::Text("".into()),
                encoding: Encoding::None,
                offset_header: 0,
                offset_body: 0,
                offset_end: 0,
            }],
            raw_message: b""[..].into(),
            ..Default::default()
        });
        PreparedMessage {
            message,
            size: raw.len(),
            text: OnceLock::new(),
            has_bsn: OnceLock::new(),
            has_phone: OnceLock::new(),
            haystack: OnceLock::new(),
        }
    }

    /// Size of the raw message in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The subject, or "".
    pub fn subject(&self) -> &str {
        self.message.subject().unwrap_or_default()
    }

    /// All text the content tests look at: text parts (HTML without tags) and text attachments, decoded,
    /// including those of attached messages; one paragraph per part.
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| {
            let mut out = String::new();
            collect_text(&self.message, &mut out, 0);
            out
        })
    }

    /// `nta_has_bsn()`: a BSN passing the 11-check in the subject or any text (see [`bsn`]).
    pub fn has_bsn(&self) -> bool {
        *self
            .has_bsn
            .get_or_init(|| bsn::contains_bsn(self.subject()) || bsn::contains_bsn(self.text()))
    }

    /// `nta_has_phone()`: a phone number in the subject or any text (see [`phone`]).
    pub fn has_phone(&self) -> bool {
        *self.has_phone.get_or_init(|| {
            phone::contains_phone(self.subject()) || phone::contains_phone(self.text())
        })
    }

    /// `nta_has_tag(tag)`: the tag occurs in the subject or the text, case-insensitively. An empty tag
    /// matches nothing.
    pub fn has_tag(&self, tag: &str) -> bool {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() {
            return false;
        }
        self.haystack
            .get_or_init(|| format!("{}\n{}", self.subject(), self.text()).to_lowercase())
            .contains(&tag)
    }
}

/// Appends the decoded text of every text part (and readable text attachment) of `msg`.
fn collect_text(msg: &Message<'_>, out: &mut String, depth: usize) {
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) => push(out, t),
            PartType::Html(h) => push(out, &strip_tags(h)),
            PartType::Binary(b) | PartType::InlineBinary(b) if readable(part) => {
                if let Ok(t) = std::str::from_utf8(b) {
                    push(out, t);
                }
            }
            PartType::Message(inner) if depth < 4 => collect_text(inner, out, depth + 1),
            _ => {}
        }
    }
}

fn push(out: &mut String, t: &str) {
    out.push_str(t);
    out.push_str("\n\n");
}

/// Whether the content tests (`nta_has_bsn`, `nta_has_phone`, tags) read this part: text and HTML parts,
/// text attachments and text under another type (CSV, JSON, XML, `.txt`). Whoever takes parts out of
/// a message before the policy sees it must keep these whole, or the tests would not see them. Judged
/// by the part's headers alone.
pub fn content_tested(part: &MessagePart<'_>) -> bool {
    let text = part
        .content_type()
        .is_none_or(|ct| ct.ctype().eq_ignore_ascii_case("text"));
    text || readable(part)
}

/// Attachments that are text under another content type (CSV, JSON, XML, `.txt`).
fn readable(part: &MessagePart<'_>) -> bool {
    let by_type = part.content_type().is_some_and(|ct| {
        let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        ct.ctype().eq_ignore_ascii_case("application")
            && matches!(sub.as_str(), "json" | "xml" | "csv" | "x-csv")
    });
    let by_name = part.attachment_name().is_some_and(|n| {
        let n = n.to_ascii_lowercase();
        [".txt", ".csv", ".json", ".xml"]
            .iter()
            .any(|e| n.ends_with(e))
    });
    by_type || by_name
}

/// HTML to text, roughly: tags (and their attributes, so `href` URLs) become spaces; a few entities.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ").replace("&amp;", "&")
}

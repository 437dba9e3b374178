//! Which parts of a message leave its held copy for blob files, and the held copy without them: pure
//! functions on the parsed message for [`super::large::split`] (which seals the bytes and writes the
//! text parts that stand in for them).
//!
//! - [`Take::Large`]: the attachments whose decoded size passes `portal.large_attachment_bytes`, at any
//!   depth of nested multiparts. Attached messages and a root part stay.
//! - [`Take::All`] (the policy's `nta_portal_attachments`): every attachment, whatever its size — text
//!   attachments, inline images of a `multipart/related`, parts of nested multiparts —, an attached
//!   message (`message/rfc822`) whole as one `.eml` (what it contains leaves with it), and a root part
//!   that is itself an attachment (a single-part PDF, or `Content-Disposition: attachment` at the top):
//!   its body becomes the link text, its content headers those of the text part, its other headers stay.
//!
//! mail_parser lists every attachment of the message's own part tree in `Message::attachments` (the
//! parts of an attached message are in that message's list), each with offsets into the raw message;
//! the parts of that list never overlap, so replacing each one's bytes in order keeps the rest exact.
//! The bytes sealed are the part's decoded bytes exactly as sent (transfer encoding undone, a text
//! part's charset not converted).

use std::{borrow::Cow, ops::Range};

use mail_parser::{
    decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode},
    Encoding, Message, MessagePart, MimeHeaders, PartType,
};

/// The header on a stand-in text part, naming its blob.
pub const STAND_IN_HEADER: &str = "X-NTA7516-Large-Attachment";

/// Which attachments leave the held copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Those larger than this many decoded bytes (`0`: none).
    Large(u64),
    /// Every attachment, attached messages and an attachment at the root included.
    All,
}

/// One part that leaves the held copy.
#[derive(Debug)]
pub struct Cut<'m> {
    /// Its position among the message's attachments.
    pub index: usize,
    /// The bytes of the raw message it replaces (headers and body; the whole message for the root).
    pub range: Range<usize>,
    /// For the root: the message's header block without its content headers.
    pub root_headers: Option<Vec<u8>>,
    /// The decoded bytes that go into the blob.
    pub bytes: Cow<'m, [u8]>,
    pub name: String,
    pub content_type: String,
}

/// The parts of `msg` (parsed from `raw`) that `take` takes out, in message order. Parts that stand in
/// for a blob already taken out (their [`STAND_IN_HEADER`] names one of `stand_ins`) stay.
pub fn cuts<'m>(
    msg: &'m Message<'_>,
    raw: &'m [u8],
    take: Take,
    stand_ins: &[String],
) -> Vec<Cut<'m>> {
    let mut cuts: Vec<Cut<'m>> = msg
        .attachments
        .iter()
        .enumerate()
        .filter_map(|(i, &id)| msg.part(id).map(|p| (i, id == 0, p)))
        .filter(|(_, root, p)| taken(take, *root, p) && !is_stand_in(p, stand_ins))
        .map(|(index, root, part)| cut(raw, index, root, part))
        .collect();
    cuts.sort_by_key(|c| c.range.start);
    cuts
}

fn taken(take: Take, root: bool, part: &MessagePart<'_>) -> bool {
    match take {
        Take::Large(0) => false,
        Take::Large(threshold) => {
            !root && !part.is_message() && part.contents().len() as u64 > threshold
        }
        Take::All => !matches!(part.body, PartType::Multipart(_)),
    }
}

fn is_stand_in(part: &MessagePart<'_>, stand_ins: &[String]) -> bool {
    part.headers().iter().any(|h| {
        h.name().eq_ignore_ascii_case(STAND_IN_HEADER)
            && h.value()
                .as_text()
                .is_some_and(|v| stand_ins.iter().any(|s| s == v.trim()))
    })
}

fn cut<'m>(raw: &'m [u8], index: usize, root: bool, part: &'m MessagePart<'_>) -> Cut<'m> {
    let end = (part.offset_end as usize).min(raw.len());
    let (range, root_headers) = match root {
        true => {
            let head = raw.get(..part.offset_body as usize).unwrap_or(raw);
            (0..raw.len(), Some(without_content_headers(head)))
        }
        false => ((part.offset_header as usize).min(end)..end, None),
    };
    let (name, content_type) = if part.is_message() {
        let name = clean_name(part.attachment_name().unwrap_or("message.eml"));
        let name = match name.to_ascii_lowercase().ends_with(".eml") {
            true => name,
            false => format!("{name}.eml"),
        };
        (name, "message/rfc822".to_string())
    } else {
        let name = clean_name(part.attachment_name().unwrap_or("attachment"));
        (name, content_type(part))
    };
    Cut {
        index,
        range,
        root_headers,
        bytes: decoded(raw, part),
        name,
        content_type,
    }
}

fn content_type(part: &MessagePart<'_>) -> String {
    part.content_type()
        .map(|c| match c.subtype() {
            Some(sub) => format!("{}/{sub}", c.ctype()),
            None => c.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
}

/// The part's bytes as the sender attached them: the transfer encoding undone, nothing else. (A text
/// part's `contents()` is converted to UTF-8, and an attached message's is the outer message when it
/// was not encoded, so both are decoded from the raw body here.)
fn decoded<'m>(raw: &'m [u8], part: &'m MessagePart<'_>) -> Cow<'m, [u8]> {
    let body = raw
        .get(part.offset_body as usize..(part.offset_end as usize).min(raw.len()))
        .unwrap_or_default();
    let decode = |d: Option<Vec<u8>>| d.map_or(Cow::Borrowed(part.contents()), Cow::Owned);
    match (&part.body, part.encoding) {
        (PartType::Binary(_) | PartType::InlineBinary(_), _) => Cow::Borrowed(part.contents()),
        (_, Encoding::None) => Cow::Borrowed(body),
        (_, Encoding::Base64) => decode(base64_decode(body)),
        (_, Encoding::QuotedPrintable) => decode(quoted_printable_decode(body)),
    }
}

/// A header block (ending with its blank line) without `Content-Type`, `Content-Transfer-Encoding` and
/// `Content-Disposition` (continuation lines go with their header), with `MIME-Version` added when it
/// is missing. Without the blank line: the stand-in part's headers follow.
fn without_content_headers(head: &[u8]) -> Vec<u8> {
    const DROP: [&str; 3] = [
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    ];
    let mut out = Vec::with_capacity(head.len());
    let mut keep = true;
    let mut mime_version = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            keep = !DROP.contains(&name.as_str());
            mime_version |= name == "mime-version";
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    if !mime_version {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    out
}

/// `raw` with each cut replaced by its stand-in (`stand_ins[i]` for `cuts[i]`: a MIME part, headers
/// and body), the root's kept headers before its stand-in.
pub fn rebuild(raw: &[u8], cuts: &[Cut<'_>], stand_ins: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len().min(1 << 20));
    let mut at = 0usize;
    for (cut, stand_in) in cuts.iter().zip(stand_ins) {
        out.extend_from_slice(&raw[at..cut.range.start.clamp(at, raw.len())]);
        if let Some(headers) = &cut.root_headers {
            out.extend_from_slice(headers);
        }
        out.extend_from_slice(stand_in);
        at = cut.range.end.clamp(at, raw.len());
    }
    out.extend_from_slice(&raw[at..]);
    out
}

/// A file name as plain text: control characters out, at most 200 characters.
pub(crate) fn clean_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() {
        "attachment".into()
    } else {
        clean
    }
}

#[cfg(test)]
#[path = "cuts_tests.rs"]
mod tests;

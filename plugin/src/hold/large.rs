//! Large attachments by secure link: at hook time, every attachment of a held message larger than
//! `portal.large_attachment_bytes` is written decoded into a sealed blob file ([`super::blob`]) and
//! replaced in the held copy by a short text part (Dutch and English) naming the file, its size and
//! SHA-256, with a download link. The link needs the recipient's own link token, which is derived from
//! their challenge, so the held copy carries a marker per blob that [`personalise`] replaces with the
//! recipient's link when the message is released or downloaded. [`sweep`] deletes the files whose
//! message's retention ended or that was withdrawn. Calls `store` and the master key.
//!
//! `held_messages.sha256` stays the digest of the message as the sender submitted it (before the
//! split); each blob's row has the digest of its decoded bytes.

use std::path::PathBuf;

use mail_parser::{MessageParser, MimeHeaders};

use super::blob::{self, BlobError, BlobWriter, CHUNK};
use crate::{
    challenge::Purpose,
    store::{blobs::BlobRow, StoreError},
    Gateway,
};

/// The held copy with its large attachments taken out.
pub struct Split {
    pub raw: Vec<u8>,
    pub blobs: Vec<BlobRow>,
}

/// The blob folder of this gateway.
pub fn blob_dir(gw: &Gateway) -> PathBuf {
    gw.config.hold.blob_dir(&gw.config.storage)
}

/// The marker in the held copy that [`personalise`] replaces with a recipient's link.
fn marker(blob_id: &str) -> String {
    format!("{{{{nta7516-link:{blob_id}}}}}")
}

/// Takes the attachments above the threshold out of `raw`; `None` when there are none (or the feature
/// is off, or the message does not parse). On an error no file is left behind.
pub async fn split(
    gw: &Gateway,
    message_id: &str,
    raw: &[u8],
    expires_at: i64,
) -> Result<Option<Split>, BlobError> {
    let threshold = gw.config.portal.large_attachment_bytes;
    if threshold == 0 || (raw.len() as u64) <= threshold {
        return Ok(None);
    }
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Ok(None);
    };
    // Top-level attachments only (never the root part: its headers are the message's).
    let mut big: Vec<(usize, &mail_parser::MessagePart)> = msg
        .attachments
        .iter()
        .enumerate()
        .filter(|(_, &id)| id != 0)
        .filter_map(|(i, &id)| msg.part(id).map(|p| (i, p)))
        .filter(|(_, p)| !p.is_message() && p.contents().len() as u64 > threshold)
        .collect();
    if big.is_empty() {
        return Ok(None);
    }
    big.sort_by_key(|(_, p)| p.offset_header);
    let dir = blob_dir(gw);
    let mut out = Vec::with_capacity(raw.len() / 2);
    let mut at = 0usize;
    let mut blobs = Vec::new();
    for (index, part) in big {
        let row = match seal_part(gw, &dir, message_id, index, part).await {
            Ok(row) => row,
            Err(e) => {
                remove_files(&dir, &blobs);
                return Err(e);
            }
        };
        out.extend_from_slice(&raw[at..part.offset_header as usize]);
        out.extend_from_slice(&replacement(&row, expires_at));
        at = part.offset_end as usize;
        blobs.push(row);
    }
    out.extend_from_slice(&raw[at..]);
    Ok(Some(Split { raw: out, blobs }))
}

/// One attachment's decoded bytes into a new blob, in chunk-sized pieces.
async fn seal_part(
    gw: &Gateway,
    dir: &std::path::Path,
    message_id: &str,
    index: usize,
    part: &mail_parser::MessagePart<'_>,
) -> Result<BlobRow, BlobError> {
    let blob_id = crate::ids::new_id("b");
    let mut w = BlobWriter::create(dir, &blob_id, &gw.master).await?;
    for piece in part.contents().chunks(CHUNK) {
        w.write(piece).await?;
    }
    let sealed = w.finish().await?;
    let content_type = part
        .content_type()
        .map(|c| match c.subtype() {
            Some(sub) => format!("{}/{sub}", c.ctype()),
            None => c.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(BlobRow {
        blob_id,
        message_id: message_id.to_string(),
        part_index: index as i64,
        filename: clean_name(part.attachment_name().unwrap_or("attachment")),
        content_type,
        size: sealed.size as i64,
        sha256: sealed.sha256,
        key_id: sealed.key_id,
        wrapped_key: sealed.wrapped_key,
    })
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

/// `31457280` → `30.0 MB` (binary megabytes, as file managers show them).
fn human(size: i64) -> String {
    let mb = size as f64 / (1024.0 * 1024.0);
    if mb >= 1024.0 {
        format!("{:.1} GB", mb / 1024.0)
    } else {
        format!("{mb:.1} MB")
    }
}

/// The text part that stands in for a large attachment: a MIME part (headers and body) with the link
/// marker on a line of its own.
pub(crate) fn replacement(b: &BlobRow, expires_at: i64) -> Vec<u8> {
    let until = crate::time::rfc3339(expires_at);
    let until = until.split('T').next().unwrap_or_default();
    let (name, size, sha, link) = (&b.filename, b.size, &b.sha256, marker(&b.blob_id));
    let h = human(size);
    let text = format!(
        "De bijlage \"{name}\" ({h}, {size} bytes) is te groot voor e-mail en staat beveiligd voor u klaar.\r\n\
         Downloaden kan tot {until} via deze link; u bevestigt eerst met een code per sms:\r\n\
         \r\n{link}\r\n\r\n\
         SHA-256: {sha}\r\n\
         \r\n\
         The attachment \"{name}\" ({h}, {size} bytes) is too large for e-mail and is kept securely for you.\r\n\
         You can download it until {until} through the link above; you first confirm with a code by text message.\r\n"
    );
    let cte = if text.is_ascii() { "7bit" } else { "8bit" };
    format!(
        "Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: {cte}\r\n\
         Content-Disposition: inline\r\n\
         X-NTA7516-Large-Attachment: {id}\r\n\
         \r\n{text}",
        id = b.blob_id
    )
    .into_bytes()
}

/// The link of one recipient (link token `token`) to a blob.
pub fn link(gw: &Gateway, token: &str, blob_id: &str) -> String {
    let base = gw.config.server.public_url.trim_end_matches('/');
    format!("{base}/p/{token}/b/{blob_id}")
}

/// The held copy with every blob marker replaced by the link for the recipient with link token
/// `token` (`None`: the recipient has no challenge; the portal's address then stands in).
pub fn personalise(gw: &Gateway, raw: Vec<u8>, blobs: &[BlobRow], token: Option<&str>) -> Vec<u8> {
    let mut raw = raw;
    for b in blobs {
        let to = match token {
            Some(t) => link(gw, t, &b.blob_id),
            None => format!("{}/p/", gw.config.server.public_url.trim_end_matches('/')),
        };
        raw = replace(&raw, marker(&b.blob_id).as_bytes(), to.as_bytes());
    }
    raw
}

/// The held copy as it leaves for `recipient`: the blob markers replaced by their link.
pub async fn for_recipient(
    gw: &Gateway,
    message_id: &str,
    recipient: &str,
    raw: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let blobs = gw.store.blobs_of(message_id).await?;
    if blobs.is_empty() {
        return Ok(raw);
    }
    let token = gw
        .store
        .hold_challenge(message_id, recipient)
        .await?
        .map(|c| gw.keys.link_token(Purpose::Recipient, &c));
    Ok(personalise(gw, raw, &blobs, token.as_deref()))
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn remove_files(dir: &std::path::Path, blobs: &[BlobRow]) {
    for b in blobs {
        let _ = std::fs::remove_file(blob::path(dir, &b.blob_id));
    }
}

/// Deletes the files of blobs whose written rows never committed (the hook's transaction failed).
pub fn discard(gw: &Gateway, blobs: &[BlobRow]) {
    remove_files(&blob_dir(gw), blobs);
}

/// Deletes the files of the blobs whose retention ended or whose message was withdrawn, and marks
/// their rows; returns how many. A file already missing counts as deleted.
pub async fn sweep(gw: &Gateway, now: i64) -> Result<usize, StoreError> {
    let dir = blob_dir(gw);
    let due = gw.store.blobs_to_delete(now).await?;
    let mut n = 0;
    for id in due {
        match tokio::fs::remove_file(blob::path(&dir, &id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(blob = %id, error = %e, "large attachment file not deleted; will retry");
                continue;
            }
        }
        gw.store.blob_deleted(&id, now).await?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_marker_and_nothing_else() {
        let m = marker("b-1");
        let hay = format!("a{m}b{m}c{{{{nta7516-link:b-2}}}}");
        assert_eq!(
            replace(hay.as_bytes(), m.as_bytes(), b"L"),
            b"aLbLc{{nta7516-link:b-2}}"
        );
    }

    #[test]
    fn names_are_plain_text() {
        assert_eq!(clean_name("a\r\nb\u{7}.pdf"), "ab.pdf");
        assert_eq!(clean_name(" \t"), "attachment");
        assert_eq!(human(30 * 1024 * 1024), "30.0 MB");
    }
}

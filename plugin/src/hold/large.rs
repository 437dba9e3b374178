//! Large attachments by secure link: at hook time, every attachment of a held message larger than
//! `portal.large_attachment_bytes` — or every attachment at all when a held recipient's policy said
//! `nta_portal_attachments` ([`Scope::All`]; [`super::cuts`] picks the parts) — is written decoded
//! into a sealed blob file ([`super::blob`]) and replaced in the held copy by a short text part (Dutch
//! and English) naming the file, its size and SHA-256, with a download link. The link needs the recipient's own link token, which is derived from
//! their challenge, so the held copy carries a marker per blob that [`personalise`] replaces with the
//! recipient's link when the message is released or downloaded. [`sweep`] deletes the files whose
//! message's retention ended or that was withdrawn. Calls `store` and the master key.
//!
//! `held_messages.sha256` stays the digest of the message as the sender submitted it (before the
//! split); each blob's row has the digest of its decoded bytes.

use std::path::PathBuf;

use mail_parser::MessageParser;

use super::{
    blob::{self, BlobError, BlobWriter, CHUNK},
    cuts::{self, Cut, Take, STAND_IN_HEADER},
};
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

/// Why attachments leave a held copy: the stand-in text says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Larger than `portal.large_attachment_bytes`.
    TooLarge,
    /// The policy sends every attachment by link (`nta_portal_attachments`).
    Policy,
}

/// Which attachments a held copy loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those above `portal.large_attachment_bytes`.
    Large,
    /// Every attachment (a held recipient's policy said `nta_portal_attachments`; the held copy is
    /// shared, so this applies to every held recipient of the message).
    All,
}

/// Takes the attachments `scope` names out of `raw` ([`cuts`] says which); `None` when there are none
/// (or the feature is off, or the message does not parse). `already` are blobs this copy lost
/// before (the streamed intake's): their stand-in parts stay, the new blobs are numbered after them.
/// On an error no file of this call is left behind.
pub async fn split(
    gw: &Gateway,
    message_id: &str,
    raw: &[u8],
    expires_at: i64,
    scope: Scope,
    already: &[BlobRow],
) -> Result<Option<Split>, BlobError> {
    let threshold = gw.config.portal.large_attachment_bytes;
    let (take, why) = match scope {
        Scope::Large if threshold == 0 || (raw.len() as u64) <= threshold => return Ok(None),
        Scope::Large => (Take::Large(threshold), Why::TooLarge),
        Scope::All => (Take::All, Why::Policy),
    };
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Ok(None);
    };
    let stand_ins: Vec<String> = already.iter().map(|b| b.blob_id.clone()).collect();
    let cuts = cuts::cuts(&msg, raw, take, &stand_ins);
    if cuts.is_empty() {
        return Ok(None);
    }
    let dir = blob_dir(gw);
    let mut blobs = Vec::with_capacity(cuts.len());
    for cut in &cuts {
        match seal_cut(gw, &dir, message_id, already.len() + cut.index, cut).await {
            Ok(row) => blobs.push(row),
            Err(e) => {
                remove_files(&dir, &blobs);
                return Err(e);
            }
        }
    }
    let stand_ins: Vec<Vec<u8>> = blobs
        .iter()
        .map(|b| replacement(b, expires_at, why))
        .collect();
    Ok(Some(Split {
        raw: cuts::rebuild(raw, &cuts, &stand_ins),
        blobs,
    }))
}

/// One attachment's decoded bytes into a new blob, in chunk-sized pieces.
async fn seal_cut(
    gw: &Gateway,
    dir: &std::path::Path,
    message_id: &str,
    index: usize,
    cut: &Cut<'_>,
) -> Result<BlobRow, BlobError> {
    let blob_id = crate::ids::new_id("b");
    let mut w = BlobWriter::create(dir, &blob_id, &gw.master).await?;
    for piece in cut.bytes.chunks(CHUNK) {
        w.write(piece).await?;
    }
    let sealed = w.finish().await?;
    Ok(BlobRow {
        blob_id,
        message_id: message_id.to_string(),
        part_index: index as i64,
        filename: cut.name.clone(),
        content_type: cut.content_type.clone(),
        size: sealed.size as i64,
        sha256: sealed.sha256,
        key_id: sealed.key_id,
        wrapped_key: sealed.wrapped_key,
    })
}

/// `31457280` → `30.0 MB`, `10240` → `10.0 KB` (binary units, as file managers show them).
fn human(size: i64) -> String {
    let kb = size as f64 / 1024.0;
    let mb = kb / 1024.0;
    if mb >= 1024.0 {
        format!("{:.1} GB", mb / 1024.0)
    } else if mb >= 1.0 {
        format!("{mb:.1} MB")
    } else {
        format!("{kb:.1} KB")
    }
}

/// The text part that stands in for an attachment taken out: a MIME part (headers and body) with the
/// link marker on a line of its own.
pub(crate) fn replacement(b: &BlobRow, expires_at: i64, why: Why) -> Vec<u8> {
    let until = crate::time::rfc3339(expires_at);
    let until = until.split('T').next().unwrap_or_default();
    let (name, size, sha, link) = (&b.filename, b.size, &b.sha256, marker(&b.blob_id));
    let h = human(size);
    let (nl, en) = match why {
        Why::TooLarge => (
            "is te groot voor e-mail en staat beveiligd voor u klaar",
            "is too large for e-mail and is kept securely for you",
        ),
        Why::Policy => (
            "wordt niet met de e-mail meegestuurd en staat beveiligd voor u klaar",
            "is not sent with the e-mail and is kept securely for you",
        ),
    };
    let text = format!(
        "De bijlage \"{name}\" ({h}, {size} bytes) {nl}.\r\n\
         Downloaden kan tot {until} via deze link; u bevestigt eerst met een code per sms:\r\n\
         \r\n{link}\r\n\r\n\
         SHA-256: {sha}\r\n\
         \r\n\
         The attachment \"{name}\" ({h}, {size} bytes) {en}.\r\n\
         You can download it until {until} through the link above; you first confirm with a code by text message.\r\n"
    );
    let cte = if text.is_ascii() { "7bit" } else { "8bit" };
    format!(
        "Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: {cte}\r\n\
         Content-Disposition: inline\r\n\
         {STAND_IN_HEADER}: {id}\r\n\
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
        assert_eq!(cuts::clean_name("a\r\nb\u{7}.pdf"), "ab.pdf");
        assert_eq!(cuts::clean_name(" \t"), "attachment");
        assert_eq!(human(30 * 1024 * 1024), "30.0 MB");
        assert_eq!(human(10 * 1024), "10.0 KB");
    }
}

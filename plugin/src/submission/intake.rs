//! The streaming intake of a big hook request: the body is read piece by piece
//! ([`crate::stalwart::hook_stream`]); `message.contents` goes, as it arrives, through the MIME splitter
//! ([`crate::hold::stream_split`]), which seals each large attachment into its blob file; what is left
//! (the request with the message minus its large attachments) is parsed with serde and decided like
//! any other. [`PreSplit`] carries the blobs to `persist`; files of blobs that no hold committed are
//! deleted before the answer ([`discard_unused`]).
//!
//! Memory: the message without its large attachments, plus up to `portal.large_attachment_bytes` of
//! each attachment before it is known to be large.

use futures_util::{Stream, StreamExt};
use ring::digest;

use super::SubmissionError;
use crate::{
    hold::{large, stream_split::StreamSplitter},
    stalwart::{hook::Request, hook_stream::ContentsScanner},
    store::blobs::BlobRow,
    Gateway,
};

/// Most JSON kept besides the contents (context, envelope, headers), and most of the message kept
/// in memory (the parts that are not large attachments).
const MAX_KEPT: usize = 128 * 1024 * 1024;

/// Blobs sealed while the request was read, and the digest of the message as received.
pub struct PreSplit {
    /// `message_id` is filled in by `persist`.
    pub blobs: Vec<BlobRow>,
    /// SHA-256 (hex) of the message as received (headers, blank line, body).
    pub sha256: String,
    /// Its size as received (the policy's `size`, the held copy's recorded size).
    pub size: usize,
}

fn bad(what: impl std::fmt::Display) -> SubmissionError {
    SubmissionError::BadRequest(what.to_string())
}

/// The raw header block of the message (`name:value…`) from the JSON read so far.
fn header_block(prefix: &[u8]) -> Result<Vec<u8>, SubmissionError> {
    #[derive(serde::Deserialize)]
    struct Head {
        message: HeadMessage,
    }
    #[derive(serde::Deserialize)]
    struct HeadMessage {
        #[serde(default)]
        headers: Vec<(String, String)>,
    }
    let head: Head = serde_json::from_slice(prefix).map_err(bad)?;
    let mut out = Vec::new();
    for (name, value) in head.message.headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
    }
    Ok(out)
}

/// Reads a hook request from `body`, splitting large attachments off as they arrive (`None`: the
/// headers came after the contents, nothing was split). On an error no blob file is left behind.
pub async fn read<S, E>(
    gw: &Gateway,
    body: S,
) -> Result<(Request, Option<PreSplit>), SubmissionError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut splitter: Option<StreamSplitter> = None;
    let read = read_into(gw, body, &mut splitter).await;
    match read {
        Ok(r) => Ok(r),
        Err(e) => {
            if let Some(s) = &splitter {
                s.discard();
            }
            Err(e)
        }
    }
}

async fn read_into<'g, S, E>(
    gw: &'g Gateway,
    mut body: S,
    splitter: &mut Option<StreamSplitter<'g>>,
) -> Result<(Request, Option<PreSplit>), SubmissionError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut scanner = ContentsScanner::new();
    let mut sha = digest::Context::new(&digest::SHA256);
    let (mut head_len, mut body_len) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut streaming = false;
    let expires_at = crate::time::now() + i64::from(gw.config.hold.retention_days) * 86_400;
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| bad(format!("reading the request: {e}")))?;
        scanner.feed(&piece, &mut out).map_err(bad)?;
        if splitter.is_none() {
            if let Some(prefix) = scanner.prefix() {
                let head = header_block(&prefix)?;
                sha.update(&head);
                sha.update(b"\r\n");
                head_len = head.len();
                // Headers after the contents (not Stalwart's order): nothing can be split while
                // reading; the contents are kept and split in memory when held.
                streaming = !head.is_empty();
                let threshold = match streaming {
                    true => gw.config.portal.large_attachment_bytes,
                    false => 0,
                };
                *splitter = Some(StreamSplitter::new(
                    &gw.master,
                    large::blob_dir(gw),
                    threshold,
                    &head,
                    expires_at,
                ));
            }
        }
        if !out.is_empty() {
            let s = splitter
                .as_mut()
                .ok_or_else(|| bad("contents before headers"))?;
            sha.update(&out);
            body_len += out.len();
            s.push(&out).await?;
            out.clear();
            if s.output_len() > MAX_KEPT {
                return Err(bad("message too large to hold"));
            }
        }
        if scanner.kept_len() > MAX_KEPT {
            return Err(bad("request too large"));
        }
    }
    let small = scanner.finish().map_err(bad)?;
    let mut req: Request = serde_json::from_slice(&small).map_err(bad)?;
    let s = splitter.take().ok_or_else(|| bad("no message contents"))?;
    let (contents, mut blobs) = s.finish().await?;
    let contents = String::from_utf8(contents).map_err(bad)?;
    let message = req.message.as_mut().ok_or_else(|| bad("no message"))?;
    // A message Stalwart converted lossily (not UTF-8) is refused like any other: its sizes differ.
    if head_len + 2 + body_len == message.size {
        message.size = head_len + 2 + contents.len();
    } else {
        large::discard(gw, &blobs);
        blobs.clear();
    }
    message.contents = contents;
    let sha256 = hex::encode(sha.finish());
    let size = head_len + 2 + body_len;
    Ok((
        req,
        streaming.then_some(PreSplit {
            blobs,
            sha256,
            size,
        }),
    ))
}

/// Deletes the files of the blobs that no hold committed (the message was delivered, refused, a retry
/// kept its first copy, or the hook failed).
pub async fn discard_unused(gw: &Gateway, pre: &PreSplit) {
    for b in &pre.blobs {
        // A database error keeps the file (sealed; an orphan, never a lost attachment).
        if matches!(gw.store.blob_exists(&b.blob_id).await, Ok(false)) {
            large::discard(gw, std::slice::from_ref(b));
        }
    }
}

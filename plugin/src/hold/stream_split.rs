//! The streaming counterpart of [`super::large::split`]: the body of a message (what follows its
//! headers) is pushed in pieces; the top-level parts of a `multipart/*` message are read line by line,
//! and an attachment whose decoded size passes the threshold is decoded (base64, quoted-printable or
//! as is) straight into a [`BlobWriter`] — from then on only the chunk in flight is in memory — and
//! replaced in the output by the same text part as the in-memory split. Everything else is copied.
//! Memory: the output (the message without its large attachments) plus, per attachment, up to the
//! threshold before it is known to be large.
//!
//! Nested multiparts and attached messages are kept as they are (when a policy sends every attachment
//! by link, `submission::persist` takes them out of what stayed in memory once the message is held). Fed by the hook's streaming intake
//! (`submission::intake`, reading the JSON with [`crate::stalwart::hook_stream`]).

use std::path::PathBuf;

use mail_parser::{MessageParser, MimeHeaders};

use super::{
    blob::{BlobError, BlobWriter},
    crypto::MasterKey,
};
use crate::store::blobs::BlobRow;

/// A line longer than this is body content, never a boundary (those are at most 74 bytes + padding).
const LONG_LINE: usize = 64 * 1024;

/// How an attachment's body is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cte {
    Base64,
    QuotedPrintable,
    Identity,
}

/// One top-level part being read.
struct Part {
    /// Headers and body as received, while the part may still be kept.
    raw: Vec<u8>,
    /// `Some` for an attachment: how to decode it, its name and type.
    attachment: Option<(Cte, String, String)>,
    decoded: Vec<u8>,
    writer: Option<(String, BlobWriter)>,
    /// The line ending held back (it belongs to the next boundary if one follows).
    pending_eol: Vec<u8>,
    /// Base64 characters not yet decoded (fewer than 4).
    carry: Vec<u8>,
}

enum State {
    Preamble,
    Headers(Vec<u8>),
    Body(Box<Part>),
    Epilogue,
}

/// See the module documentation.
pub struct StreamSplitter<'k> {
    master: &'k MasterKey,
    dir: PathBuf,
    threshold: u64,
    /// `--boundary`; `None`: not multipart, copied whole.
    delimiter: Option<Vec<u8>>,
    line: Vec<u8>,
    out: Vec<u8>,
    state: State,
    attachments: i64,
    blobs: Vec<BlobRow>,
    expires_at: i64,
}

impl<'k> StreamSplitter<'k> {
    /// For a message with these `headers` (raw, ending before the blank line).
    pub fn new(
        master: &'k MasterKey,
        dir: PathBuf,
        threshold: u64,
        headers: &[u8],
        expires_at: i64,
    ) -> Self {
        let mut h = headers.to_vec();
        h.extend_from_slice(b"\r\n");
        let delimiter = MessageParser::default().parse(&h).and_then(|m| {
            let ct = m.parts.first()?.content_type()?;
            (ct.ctype().eq_ignore_ascii_case("multipart") && threshold > 0).then(|| {
                ct.attribute("boundary")
                    .map(|b| format!("--{b}").into_bytes())
            })?
        });
        StreamSplitter {
            master,
            dir,
            threshold,
            delimiter,
            line: Vec::new(),
            out: Vec::new(),
            state: State::Preamble,
            attachments: 0,
            blobs: Vec::new(),
            expires_at,
        }
    }

    /// Feeds the next piece of the body.
    pub async fn push(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        if self.delimiter.is_none() {
            self.out.extend_from_slice(data);
            return Ok(());
        }
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&data[..=i]);
                    data = &data[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.on_line(&line, true).await?;
                }
                None => {
                    self.line.extend_from_slice(data);
                    data = &[];
                    if self.line.len() > LONG_LINE {
                        let line = std::mem::take(&mut self.line);
                        self.on_line(&line, false).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The body without its large attachments, and their blob rows (`message_id` still empty). An
    /// unterminated part is kept as received.
    pub async fn finish(mut self) -> Result<(Vec<u8>, Vec<BlobRow>), BlobError> {
        let done = self.finish_parts().await;
        if done.is_err() {
            self.discard();
        }
        done?;
        Ok((
            std::mem::take(&mut self.out),
            std::mem::take(&mut self.blobs),
        ))
    }

    async fn finish_parts(&mut self) -> Result<(), BlobError> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.on_line(&line, false).await?;
        }
        match std::mem::replace(&mut self.state, State::Epilogue) {
            State::Body(part) if part.writer.is_some() => {
                let mut part = part;
                self.seal(&mut part).await?;
                self.out.extend_from_slice(&part.pending_eol);
            }
            State::Body(part) => {
                self.out.extend_from_slice(&part.raw);
                self.out.extend_from_slice(&part.pending_eol);
            }
            State::Headers(h) => self.out.extend_from_slice(&h),
            State::Preamble | State::Epilogue => {}
        }
        Ok(())
    }

    /// Bytes of output so far (what stays in memory).
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Deletes the files written so far (the hold did not commit).
    pub fn discard(&self) {
        for b in &self.blobs {
            let _ = std::fs::remove_file(super::blob::path(&self.dir, &b.blob_id));
        }
    }

    /// `Some(true)` for the closing delimiter, `Some(false)` for a part delimiter.
    fn delimiter_kind(&self, line: &[u8]) -> Option<bool> {
        let d = self.delimiter.as_deref()?;
        let rest = line.strip_prefix(d)?;
        let (closing, rest) = match rest.strip_prefix(b"--") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        rest.iter()
            .all(|b| b.is_ascii_whitespace())
            .then_some(closing)
    }

    async fn on_line(&mut self, line: &[u8], complete: bool) -> Result<(), BlobError> {
        let kind = if complete {
            self.delimiter_kind(line)
        } else {
            None
        };
        if let Some(closing) = kind {
            return self.delimiter_line(line, closing).await;
        }
        match &mut self.state {
            State::Preamble | State::Epilogue => self.out.extend_from_slice(line),
            State::Headers(h) => {
                h.extend_from_slice(line);
                if line == b"\r\n" || line == b"\n" {
                    let h = std::mem::take(h);
                    self.state = State::Body(Box::new(self.start_part(h)));
                }
            }
            State::Body(_) => self.body_line(line, complete).await?,
        }
        Ok(())
    }

    /// A delimiter line ends the part being read (if any) and starts the next (or the epilogue).
    async fn delimiter_line(&mut self, line: &[u8], closing: bool) -> Result<(), BlobError> {
        match std::mem::replace(&mut self.state, State::Epilogue) {
            State::Body(mut part) => {
                if part.writer.is_some() {
                    self.seal(&mut part).await?;
                } else {
                    self.out.extend_from_slice(&part.raw);
                }
                self.out.extend_from_slice(&part.pending_eol);
            }
            State::Headers(h) => self.out.extend_from_slice(&h),
            State::Preamble | State::Epilogue => {}
        }
        self.out.extend_from_slice(line);
        self.state = if closing {
            State::Epilogue
        } else {
            State::Headers(Vec::new())
        };
        Ok(())
    }

    fn start_part(&mut self, headers: Vec<u8>) -> Part {
        let attachment = MessageParser::default().parse(&headers).and_then(|m| {
            let p = m.parts.first()?;
            let ct = p.content_type();
            let container = ct.is_some_and(|c| {
                c.ctype().eq_ignore_ascii_case("multipart")
                    || c.ctype().eq_ignore_ascii_case("message")
            });
            let attached = p.content_disposition().is_some_and(|d| d.is_attachment())
                || p.attachment_name().is_some();
            // Text the policy's content tests read stays whole: they decide on this stream's
            // message, and an attachment taken out would go unseen (a BSN list in a CSV, say).
            if container || !attached || nta7516_sieve::message::content_tested(p) {
                return None;
            }
            let cte = match p.content_transfer_encoding().map(str::to_ascii_lowercase) {
                Some(e) if e == "base64" => Cte::Base64,
                Some(e) if e == "quoted-printable" => Cte::QuotedPrintable,
                _ => Cte::Identity,
            };
            let ctype = ct.map_or("application/octet-stream".into(), |c| match c.subtype() {
                Some(s) => format!("{}/{s}", c.ctype()),
                None => c.ctype().to_string(),
            });
            let name = super::cuts::clean_name(p.attachment_name().unwrap_or("attachment"));
            Some((cte, name, ctype))
        });
        if attachment.is_some() {
            self.attachments += 1;
        }
        Part {
            raw: headers,
            attachment,
            decoded: Vec::new(),
            writer: None,
            pending_eol: Vec::new(),
            carry: Vec::new(),
        }
    }

    async fn body_line(&mut self, line: &[u8], complete: bool) -> Result<(), BlobError> {
        let State::Body(part) = &mut self.state else {
            return Ok(());
        };
        let (content, eol) = split_eol(line, complete);
        let held = std::mem::replace(&mut part.pending_eol, eol.to_vec());
        if part.writer.is_none() {
            part.raw.extend_from_slice(&held);
            part.raw.extend_from_slice(content);
        }
        let Some((cte, ..)) = part.attachment else {
            return Ok(());
        };
        let mut decoded = Vec::with_capacity(content.len());
        match cte {
            Cte::Base64 => base64_piece(&mut part.carry, content, &mut decoded),
            Cte::QuotedPrintable => {
                decoded.extend_from_slice(&qp_eol(&held));
                let (bytes, soft) = qp_line(content);
                decoded.extend_from_slice(&bytes);
                if soft {
                    part.pending_eol.clear();
                    if part.writer.is_none() {
                        part.raw.extend_from_slice(eol);
                    }
                }
            }
            Cte::Identity => {
                decoded.extend_from_slice(&held);
                decoded.extend_from_slice(content);
            }
        }
        self.decoded(decoded).await
    }

    /// Decoded bytes of the current attachment: kept until the threshold, then into a blob.
    async fn decoded(&mut self, bytes: Vec<u8>) -> Result<(), BlobError> {
        let StreamSplitter {
            master,
            dir,
            threshold,
            state,
            ..
        } = self;
        let State::Body(part) = state else {
            return Ok(());
        };
        match &mut part.writer {
            Some((_, w)) => w.write(&bytes).await,
            None => {
                part.decoded.extend_from_slice(&bytes);
                if (part.decoded.len() as u64) > *threshold {
                    let id = crate::ids::new_id("b");
                    let mut w = BlobWriter::create(dir, &id, master).await?;
                    w.write(&std::mem::take(&mut part.decoded)).await?;
                    part.raw = Vec::new();
                    part.writer = Some((id, w));
                }
                Ok(())
            }
        }
    }

    /// Finishes the current attachment's blob and writes its text part to the output.
    async fn seal(&mut self, part: &mut Part) -> Result<(), BlobError> {
        let Some((id, mut w)) = part.writer.take() else {
            return Ok(());
        };
        let mut tail = Vec::new();
        if !part.carry.is_empty() {
            let rest = std::mem::take(&mut part.carry);
            decode_b64(&rest, &mut tail);
        }
        w.write(&tail).await?;
        let sealed = w.finish().await?;
        let (name, ctype) = match &part.attachment {
            Some((_, n, c)) => (n.clone(), c.clone()),
            None => ("attachment".into(), "application/octet-stream".into()),
        };
        let row = BlobRow {
            blob_id: id,
            message_id: String::new(),
            part_index: self.attachments - 1,
            filename: name,
            content_type: ctype,
            size: sealed.size as i64,
            sha256: sealed.sha256,
            key_id: sealed.key_id,
            wrapped_key: sealed.wrapped_key,
        };
        self.out.extend_from_slice(&super::large::replacement(
            &row,
            self.expires_at,
            super::large::Why::TooLarge,
        ));
        self.blobs.push(row);
        Ok(())
    }
}

/// A line's content and its ending (`\r\n`, `\n`, or none for a piece of a long line).
fn split_eol(line: &[u8], complete: bool) -> (&[u8], &[u8]) {
    if !complete {
        return (line, &[]);
    }
    let n = if line.ends_with(b"\r\n") { 2 } else { 1 };
    line.split_at(line.len() - n)
}

/// A held line ending as decoded quoted-printable text (CRLF for a hard break).
fn qp_eol(held: &[u8]) -> Vec<u8> {
    if held.is_empty() {
        Vec::new()
    } else {
        b"\r\n".to_vec()
    }
}

/// One quoted-printable line: its bytes, and whether it ended in a soft break (`=`).
fn qp_line(content: &[u8]) -> (Vec<u8>, bool) {
    let trimmed = content.trim_ascii_end();
    let (body, soft) = match trimmed.strip_suffix(b"=") {
        Some(b) => (b, true),
        None => (trimmed, false),
    };
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (body[i], body.get(i + 1).copied(), body.get(i + 2).copied()) {
            (b'=', Some(a), Some(b)) if hex(a).is_some() && hex(b).is_some() => {
                out.push((hex(a).unwrap_or(0) * 16 + hex(b).unwrap_or(0)) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, soft)
}

/// Base64 characters of one line: whole groups decoded, the rest carried to the next line.
fn base64_piece(carry: &mut Vec<u8>, content: &[u8], out: &mut Vec<u8>) {
    carry.extend(
        content
            .iter()
            .copied()
            .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')),
    );
    let whole = carry.len() / 4 * 4;
    decode_b64(&carry[..whole], out);
    carry.drain(..whole);
}

/// Lenient base64, like mail readers: padding ends a group, anything undecodable is skipped.
fn decode_b64(chars: &[u8], out: &mut Vec<u8>) {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    for group in chars.chunks(4) {
        let v: Vec<u8> = group.iter().map_while(|&c| val(c)).collect();
        let n = v.len();
        let word = v
            .iter()
            .chain(std::iter::repeat(&0))
            .take(4)
            .fold(0u32, |w, &x| (w << 6) | x as u32);
        let bytes = word.to_be_bytes();
        out.extend_from_slice(&bytes[1..1 + n.saturating_sub(1).min(3)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hold::blob::BlobReader;

    fn key() -> MasterKey {
        MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap()
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 256) as u8).collect()
    }

    fn b64_lines(b: &[u8]) -> String {
        use base64::Engine;
        let s = base64::engine::general_purpose::STANDARD.encode(b);
        s.as_bytes()
            .chunks(76)
            .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
            .collect()
    }

    const HEADERS: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n";

    /// A text, a base64 file, a quoted-printable file, a plain-text attachment, a nested multipart.
    fn body(file: &[u8]) -> Vec<u8> {
        let qp_line = "caf=C3=A9 =3D ok".repeat(4);
        let qp = format!("{qp_line}=\r\n{qp_line}\r\n").repeat(400);
        format!(
            "preamble\r\n--xx\r\nContent-Type: text/plain\r\n\r\nHallo.\r\n\
             --xx\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"scan.pdf\"\r\n\r\n{}\
             --xx\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: quoted-printable\r\n\
             Content-Disposition: attachment; filename=\"lijst.csv\"\r\n\r\n{qp}\
             --xx\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"a.txt\"\r\n\r\n\
             regel 1\r\nregel 2\r\n\
             --xx\r\nContent-Type: multipart/alternative; boundary=\"yy\"\r\n\r\n--yy\r\n\r\ninner\r\n--yy--\r\n\
             --xx--\r\nepilogue\r\n",
            b64_lines(file)
        )
        .into_bytes()
    }

    async fn run(
        k: &MasterKey,
        dir: &std::path::Path,
        threshold: u64,
        body: &[u8],
        piece: usize,
    ) -> (Vec<u8>, Vec<BlobRow>) {
        let mut s = StreamSplitter::new(k, dir.to_path_buf(), threshold, HEADERS, 0);
        for p in body.chunks(piece) {
            s.push(p).await.unwrap();
        }
        s.finish().await.unwrap()
    }

    async fn read(k: &MasterKey, dir: &std::path::Path, b: &BlobRow) -> Vec<u8> {
        let mut r = BlobReader::open(dir, &b.blob_id, &b.wrapped_key, k)
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().await.unwrap() {
            out.extend_from_slice(&c);
        }
        out
    }

    #[tokio::test]
    async fn below_the_threshold_the_body_is_copied_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key();
        let body = body(&bytes(5000));
        for piece in [1, 5, 77, 4096, 1 << 20] {
            let (out, blobs) = run(&k, tmp.path(), 1 << 30, &body, piece).await;
            assert!(blobs.is_empty());
            assert_eq!(out, body, "piece {piece}");
        }
    }

    #[tokio::test]
    async fn large_attachments_are_decoded_into_blobs_like_mail_parser_does() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key();
        let file = bytes(300_000);
        let body = body(&file);
        let mut whole = HEADERS.to_vec();
        whole.extend_from_slice(b"\r\n");
        whole.extend_from_slice(&body);
        let parsed = MessageParser::default().parse(&whole).unwrap();
        let want: Vec<Vec<u8>> = parsed
            .attachments()
            .map(|a| a.contents().to_vec())
            .collect();
        assert_eq!(want[0], file);
        for piece in [3, 1000, 65_536, 1 << 20] {
            // Threshold 10: only the PDF. The CSV (quoted-printable) and the text attachment are what
            // the policy's content tests read: they stay in the message whole.
            let (out, blobs) = run(&k, tmp.path(), 10, &body, piece).await;
            assert_eq!(blobs.len(), 1, "piece {piece}");
            for (b, want) in blobs.iter().zip(&want) {
                assert_eq!(
                    read(&k, tmp.path(), b).await,
                    *want,
                    "{} piece {piece}",
                    b.filename
                );
                assert_eq!(b.size as usize, want.len());
            }
            assert_eq!(
                blobs
                    .iter()
                    .map(|b| (b.filename.as_str(), b.part_index))
                    .collect::<Vec<_>>(),
                [("scan.pdf", 0)]
            );
            assert_eq!(blobs[0].content_type, "application/pdf");
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with(
                "preamble\r\n--xx\r\nContent-Type: text/plain\r\n\r\nHallo.\r\n--xx\r\n"
            ));
            assert!(text.ends_with("--yy--\r\n--xx--\r\nepilogue\r\n"), "{text}");
            assert_eq!(text.matches("X-NTA7516-Large-Attachment").count(), 1);
            assert!(text.contains("filename=\"lijst.csv\"\r\n\r\ncaf=C3=A9"));
            assert!(text.contains("regel 1\r\nregel 2"));
            assert!(text.len() < 100_000);
        }
    }

    #[tokio::test]
    async fn a_message_that_is_not_multipart_is_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key();
        let mut s = StreamSplitter::new(&k, tmp.path().into(), 1, b"Subject: x\r\n", 0);
        s.push(b"--xx\r\nbody\r\n").await.unwrap();
        let (out, blobs) = s.finish().await.unwrap();
        assert_eq!((out.as_slice(), blobs.len()), (&b"--xx\r\nbody\r\n"[..], 0));
    }
}

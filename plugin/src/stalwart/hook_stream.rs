//! Stalwart's MTA-hook JSON read as a stream: [`ContentsScanner`] is fed the request body piece by piece
//! and hands back the value of `message.contents` decoded (JSON string escapes → UTF-8 bytes) as it
//! arrives, while the rest of the request — small: context, envelope, headers, size — is kept as JSON
//! with `"contents": ""`, for serde ([`super::hook::Request`]) at the end. So a message of hundreds of
//! megabytes never sits in memory as one JSON string. Stalwart sends `headers` before `contents`
//! (`../shared/stalwart/fixtures/hook-data-multipart-attachment.json`).

/// What went wrong in the JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("malformed JSON at byte {0}")]
    Syntax(u64),
    #[error("the JSON ended inside a value")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Str {
    /// An object key: collected to know where we are.
    Key,
    /// A value string elsewhere: copied verbatim.
    Copied,
    /// `message.contents`: decoded into the output.
    Contents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    /// `\u` with this many hex digits read so far and their value.
    Unicode(u8, u32),
}

#[derive(Debug)]
enum Frame {
    Object { key: Option<String> },
    Array,
}

/// The streaming scanner (see the module documentation).
#[derive(Debug)]
pub struct ContentsScanner {
    small: Vec<u8>,
    stack: Vec<Frame>,
    string: Option<Str>,
    key: Vec<u8>,
    esc: Esc,
    high_surrogate: Option<u32>,
    offset: u64,
    seen_contents: bool,
}

impl Default for ContentsScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentsScanner {
    pub fn new() -> Self {
        ContentsScanner {
            small: Vec::with_capacity(16 * 1024),
            stack: Vec::new(),
            string: None,
            key: Vec::new(),
            esc: Esc::None,
            high_surrogate: None,
            offset: 0,
            seen_contents: false,
        }
    }

    /// Scans one piece of the body; the decoded bytes of `message.contents` in it are appended to `out`.
    pub fn feed(&mut self, piece: &[u8], out: &mut Vec<u8>) -> Result<(), ScanError> {
        let mut i = 0;
        while i < piece.len() {
            if self.string == Some(Str::Contents) && self.esc == Esc::None {
                // The fast path: plain bytes up to the next quote or backslash.
                let run = piece[i..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .unwrap_or(piece.len() - i);
                if self.high_surrogate.is_some() && run > 0 {
                    return Err(ScanError::Syntax(self.offset));
                }
                out.extend_from_slice(&piece[i..i + run]);
                i += run;
                self.offset += run as u64;
                if i == piece.len() {
                    break;
                }
            }
            self.byte(piece[i], out)?;
            self.offset += 1;
            i += 1;
        }
        Ok(())
    }

    /// Whether `message.contents` has begun: the request's other members before it (Stalwart sends
    /// `context`, `envelope` and `message.headers` first) are then in [`ContentsScanner::prefix`].
    pub fn contents_started(&self) -> bool {
        self.seen_contents || self.string == Some(Str::Contents)
    }

    /// The JSON read so far with the contents (and the two objects around it) closed: valid JSON once
    /// [`ContentsScanner::contents_started`], for reading `message.headers` before the body arrives.
    pub fn prefix(&self) -> Option<Vec<u8>> {
        (self.string == Some(Str::Contents)).then(|| {
            let mut p = self.small.clone();
            p.extend_from_slice(b"\"}}");
            p
        })
    }

    /// Bytes of JSON kept (everything but the contents).
    pub fn kept_len(&self) -> usize {
        self.small.len()
    }

    /// The rest of the request (with `"contents": ""`), once the body has ended.
    pub fn finish(self) -> Result<Vec<u8>, ScanError> {
        if self.string.is_some() || !self.stack.is_empty() || !self.seen_contents {
            return Err(ScanError::Truncated);
        }
        Ok(self.small)
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), ScanError> {
        match self.string {
            Some(kind) => self.in_string(kind, b, out),
            None => self.structural(b),
        }
    }

    fn structural(&mut self, b: u8) -> Result<(), ScanError> {
        let bad = ScanError::Syntax(self.offset);
        match b {
            b'{' => self.stack.push(Frame::Object { key: None }),
            b'[' => self.stack.push(Frame::Array),
            b'}' | b']' => {
                self.stack.pop().ok_or(bad)?;
                self.value_done();
            }
            b'"' => {
                let kind = match self.stack.last() {
                    Some(Frame::Object { key: None }) => Str::Key,
                    Some(Frame::Object { key: Some(k) })
                        if k == "contents" && self.in_message() =>
                    {
                        Str::Contents
                    }
                    _ => Str::Copied,
                };
                self.string = Some(kind);
                self.key.clear();
                self.small.push(b'"');
                return Ok(());
            }
            b',' => self.value_done(),
            _ => {}
        }
        self.small.push(b);
        Ok(())
    }

    /// Directly in the top-level object's `message` object.
    fn in_message(&self) -> bool {
        matches!(
            self.stack.as_slice(),
            [Frame::Object { key: Some(top) }, Frame::Object { .. }] if top == "message"
        )
    }

    /// After a value in an object, the next string is a key again.
    fn value_done(&mut self) {
        if let Some(Frame::Object { key }) = self.stack.last_mut() {
            *key = None;
        }
    }

    fn in_string(&mut self, kind: Str, b: u8, out: &mut Vec<u8>) -> Result<(), ScanError> {
        if kind != Str::Contents {
            // Copied (keys too) verbatim; only the string's end matters.
            self.small.push(b);
            match (self.esc, b) {
                (Esc::Backslash, _) => self.esc = Esc::None,
                (_, b'\\') => self.esc = Esc::Backslash,
                (_, b'"') => {
                    self.string = None;
                    if kind == Str::Key {
                        let key = String::from_utf8_lossy(&self.key).into_owned();
                        if let Some(Frame::Object { key: k }) = self.stack.last_mut() {
                            *k = Some(key);
                        }
                    }
                }
                _ if kind == Str::Key => self.key.push(b),
                _ => {}
            }
            return Ok(());
        }
        self.contents_byte(b, out)
    }

    fn contents_byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), ScanError> {
        let bad = ScanError::Syntax(self.offset);
        match self.esc {
            Esc::None => match b {
                b'"' if self.high_surrogate.is_none() => {
                    self.string = None;
                    self.seen_contents = true;
                    self.small.push(b'"');
                }
                b'\\' => self.esc = Esc::Backslash,
                _ => return Err(bad),
            },
            Esc::Backslash => {
                let c = match b {
                    b'u' => {
                        self.esc = Esc::Unicode(0, 0);
                        return Ok(());
                    }
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    _ => return Err(bad),
                };
                if self.high_surrogate.is_some() {
                    return Err(bad);
                }
                out.push(c);
                self.esc = Esc::None;
            }
            Esc::Unicode(n, v) => {
                let digit = (b as char).to_digit(16).ok_or(bad.clone())?;
                let v = v * 16 + digit;
                if n < 3 {
                    self.esc = Esc::Unicode(n + 1, v);
                } else {
                    self.esc = Esc::None;
                    self.code_unit(v, out)?;
                }
            }
        }
        Ok(())
    }

    fn code_unit(&mut self, v: u32, out: &mut Vec<u8>) -> Result<(), ScanError> {
        let bad = ScanError::Syntax(self.offset);
        let c = match (self.high_surrogate.take(), v) {
            (None, 0xD800..=0xDBFF) => {
                self.high_surrogate = Some(v);
                return Ok(());
            }
            (Some(hi), 0xDC00..=0xDFFF) => 0x10000 + ((hi - 0xD800) << 10) + (v - 0xDC00),
            (Some(_), _) | (None, 0xDC00..=0xDFFF) => return Err(bad),
            (None, v) => v,
        };
        let c = char::from_u32(c).ok_or(bad)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(json: &[u8], piece: usize) -> Result<(Vec<u8>, serde_json::Value), ScanError> {
        let mut s = ContentsScanner::new();
        let mut out = Vec::new();
        for p in json.chunks(piece) {
            s.feed(p, &mut out)?;
        }
        let small = s.finish()?;
        Ok((
            out,
            serde_json::from_slice(&small).expect("the rest is JSON"),
        ))
    }

    #[test]
    fn decodes_contents_at_every_split_and_keeps_the_rest() {
        let contents = "Subject: x\r\n\r\nA \"quote\", a \\ and / \u{e9} \u{1F600} \t\u{1}.\r\n";
        let req = serde_json::json!({
            "context": {"stage": "data", "note": "contents \"quoted\" \\"},
            "envelope": {"to": [{"address": "a@b"}], "contents": "not this one"},
            "message": {"headers": [["Subject", " x\r\n"]], "contents": contents, "size": 12}
        });
        let mut json = serde_json::to_vec(&req).unwrap();
        // serde_json writes the emoji as UTF-8; also try the escaped form Stalwart may send.
        let escaped = String::from_utf8(json.clone())
            .unwrap()
            .replace('\u{1F600}', "\\ud83d\\ude00")
            .replace('\u{e9}', "\\u00e9");
        for body in [json.clone(), escaped.into_bytes()] {
            for piece in [1, 2, 3, 7, 64, 100_000] {
                let (out, rest) = scan(&body, piece).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), contents, "piece {piece}");
                let mut want = req.clone();
                want["message"]["contents"] = "".into();
                assert_eq!(rest, want);
            }
        }
        let mut s = ContentsScanner::new();
        let mut out = Vec::new();
        // In Stalwart's order (headers first), the headers can be read when the contents begin.
        let ordered = format!(
            "{{\"context\":{},\"message\":{{\"headers\":{},\"contents\":\"Subject: x\",\"size\":1}}}}",
            req["context"], req["message"]["headers"]
        );
        let at = ordered.find("Subject: x\"").unwrap();
        s.feed(&ordered.as_bytes()[..at], &mut out).unwrap();
        assert!(s.contents_started() && out.is_empty());
        let prefix: serde_json::Value = serde_json::from_slice(&s.prefix().unwrap()).unwrap();
        assert_eq!(prefix["message"]["headers"], req["message"]["headers"]);
        json.truncate(json.len() - 3);
        assert_eq!(scan(&json, 5).unwrap_err(), ScanError::Truncated);
    }

    #[test]
    fn refuses_bad_escapes_and_lone_surrogates() {
        for bad in [
            r#"{"message":{"contents":"a\x"}}"#,
            r#"{"message":{"contents":"\ud800x"}}"#,
            r#"{"message":{"contents":"\udc00"}}"#,
            r#"{"message":{"contents":"\u12g4"}}"#,
        ] {
            assert!(
                matches!(scan(bad.as_bytes(), 3), Err(ScanError::Syntax(_))),
                "{bad}"
            );
        }
        // No contents at all.
        assert_eq!(
            scan(br#"{"message":{"size":1}}"#, 4).unwrap_err(),
            ScanError::Truncated
        );
    }
}

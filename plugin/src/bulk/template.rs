//! The letter: an RFC 5322 message (a saved `.eml`) with `{{field}}` placeholders in its Subject and in
//! its text parts (`text/plain`, `text/html`, at any depth of a multipart). A placeholder is `{{`, a
//! column name (letters, digits, `_ . -`; matched without regard to case), `}}`; spaces inside the
//! braces are allowed. Values are HTML-escaped in HTML parts; the Subject is written as RFC 2047
//! encoded words when it is not ASCII. Text parts may arrive 7bit, 8bit, quoted-printable or base64 in
//! UTF-8 or US-ASCII; they leave as 7bit or quoted-printable UTF-8. Other parts (attachments) leave as
//! they came. Placeholders anywhere else in the header are refused: From, To, Date and Message-ID are
//! written per recipient ([`Envelope`]), every other header line is kept.
//!
//! Rendering is deterministic: the same template, values and [`Envelope`] give the same bytes, so a
//! re-submitted message is the same submission to the gateway (its idempotency key). Pure.

use std::collections::{BTreeSet, HashMap};

use base64::Engine;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Node,
    /// The decoded Subject, placeholders unfilled.
    subject: String,
    /// The raw `From` value and its address, when the template has one.
    from: Option<(String, String)>,
    placeholders: BTreeSet<String>,
    sha256: [u8; 32],
}

/// The header lines written per recipient.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// RFC 5322 date ([`mail_date`]).
    pub date: &'a str,
    /// Without the angle brackets.
    pub message_id: &'a str,
}

#[derive(Debug, Clone)]
struct Header {
    name: String,
    /// The raw value after the colon, folding kept, without the final CRLF.
    value: String,
}

#[derive(Debug, Clone)]
enum Content {
    Text {
        html: bool,
        text: String,
    },
    Multipart {
        boundary: String,
        preamble: Option<Vec<u8>>,
        parts: Vec<Node>,
        epilogue: Vec<u8>,
    },
    Opaque(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Node {
    headers: Vec<Header>,
    content: Content,
}

/// Headers the template may not set: written per recipient, or not the sender's to set.
const REPLACED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "return-path",
    "received",
    "dkim-signature",
];

const MAX_DEPTH: usize = 10;

impl Template {
    pub fn parse(raw: &[u8]) -> Result<Template, String> {
        let bytes = crlf(raw);
        let (headers, body) = split_node(&bytes)?;
        if !headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("subject"))
        {
            return Err("the template has no Subject".into());
        }
        let root = node(headers, body, 0)?;
        let parsed = mail_parser::MessageParser::default()
            .parse(&bytes)
            .ok_or("the template is not a mail message")?;
        let subject = parsed.subject().unwrap_or_default().to_string();
        let from = parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|address| {
                let raw = root
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("from"))
                    .map_or(String::new(), |h| h.value.clone());
                (raw, address.to_lowercase())
            });
        let mut placeholders: BTreeSet<String> = names(&subject).into_iter().collect();
        collect(&root, true, &mut placeholders)?;
        Ok(Template {
            root,
            subject,
            from,
            placeholders,
            sha256: sha256(raw),
        })
    }

    /// The column names the template needs (lower case).
    pub fn placeholders(&self) -> &BTreeSet<String> {
        &self.placeholders
    }

    /// The SHA-256 of the template file as given.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The address of the template's From, if it has one.
    pub fn from_address(&self) -> Option<&str> {
        self.from.as_ref().map(|(_, a)| a.as_str())
    }

    /// The message for one recipient. `values`: column name → value (every placeholder present).
    pub fn render(&self, values: &HashMap<String, String>, env: &Envelope<'_>) -> Vec<u8> {
        let from = match &self.from {
            Some((raw, address)) if address.eq_ignore_ascii_case(env.from) => raw.clone(),
            _ => format!(" <{}>", env.from),
        };
        let subject = fill(&self.subject, values, false).replace(['\r', '\n', '\t'], " ");
        let mut out = Vec::new();
        let mut line = |name: &str, value: &str| {
            out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
        };
        line("From", &from);
        line("To", &format!(" <{}>", env.to));
        line("Subject", &encode_header(&subject));
        line("Date", &format!(" {}", env.date));
        line("Message-ID", &format!(" <{}>", env.message_id));
        if !self
            .root
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("mime-version"))
        {
            line("MIME-Version", " 1.0");
        }
        render_node(&self.root, values, true, &mut out);
        out
    }
}

/// Line ends as CRLF (a template saved with bare LF is common).
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The header lines and the body of a message or a part.
fn split_node(bytes: &[u8]) -> Result<(Vec<Header>, &[u8]), String> {
    let (head, body) = if let Some(rest) = bytes.strip_prefix(b"\r\n") {
        (&b""[..], rest)
    } else {
        match find(bytes, b"\r\n\r\n") {
            Some(i) => (&bytes[..i + 2], &bytes[i + 4..]),
            None => (bytes, &b""[..]),
        }
    };
    let head = std::str::from_utf8(head).map_err(|_| "a header line is not UTF-8".to_string())?;
    let mut headers: Vec<Header> = Vec::new();
    for line in head.split_inclusive("\r\n") {
        let line = line.strip_suffix("\r\n").unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            let last = headers
                .last_mut()
                .ok_or("the template starts with a continuation line")?;
            last.value.push_str("\r\n");
            last.value.push_str(line);
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push(Header {
                name: name.trim().to_string(),
                value: value.to_string(),
            });
        } else if !line.is_empty() {
            return Err(format!("not a header line: {line:?}"));
        }
    }
    Ok((headers, body))
}

fn header<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// `type/subtype` (lower case) and the parameters (names lower case, quotes removed).
fn media_type(value: &str) -> (String, HashMap<String, String>) {
    let unfolded = value.replace("\r\n", "");
    let mut parts = unfolded.split(';');
    let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect();
    (kind, params)
}

fn node(headers: Vec<Header>, body: &[u8], depth: usize) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err(format!("parts nested deeper than {MAX_DEPTH}"));
    }
    let (kind, params) = header(&headers, "content-type")
        .map_or_else(|| ("text/plain".to_string(), HashMap::new()), media_type);
    let attachment = header(&headers, "content-disposition")
        .is_some_and(|d| d.trim().to_ascii_lowercase().starts_with("attachment"));
    let content = if kind.starts_with("multipart/") {
        let boundary = params
            .get("boundary")
            .filter(|b| !b.is_empty())
            .ok_or_else(|| format!("{kind} without a boundary"))?;
        multipart(boundary, body, depth)?
    } else if (kind == "text/plain" || kind == "text/html") && !attachment {
        text_part(&headers, &kind, &params, body)?
    } else {
        Content::Opaque(body.to_vec())
    };
    Ok(Node { headers, content })
}

fn multipart(boundary: &str, body: &[u8], depth: usize) -> Result<Content, String> {
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter may open the body, without a line end before it.
    let mut padded = b"\r\n".to_vec();
    padded.extend_from_slice(body);
    let mut at = find(&padded, delimiter.as_bytes())
        .ok_or_else(|| format!("no part starts with --{boundary}"))?;
    let preamble = (at > 0).then(|| padded[2..at].to_vec());
    let mut parts = Vec::new();
    loop {
        let after = at + delimiter.len();
        if padded[after..].starts_with(b"--") {
            let epilogue = padded[after + 2..].to_vec();
            return Ok(Content::Multipart {
                boundary: boundary.to_string(),
                preamble,
                parts,
                epilogue,
            });
        }
        let start = find(&padded[after..], b"\r\n")
            .map(|i| after + i + 2)
            .ok_or("a part delimiter without a line end")?;
        let end = find(&padded[start..], delimiter.as_bytes())
            .map(|i| start + i)
            .ok_or_else(|| format!("the multipart has no closing --{boundary}--"))?;
        let (headers, body) = split_node(&padded[start..end])?;
        parts.push(node(headers, body, depth + 1)?);
        at = end;
    }
}

fn text_part(
    headers: &[Header],
    kind: &str,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<Content, String> {
    let charset = params.get("charset").map(|c| c.to_ascii_lowercase());
    if !matches!(
        charset.as_deref(),
        None | Some("utf-8" | "us-ascii" | "utf8")
    ) {
        return Err(format!(
            "a {kind} part in charset {}: save the template as UTF-8",
            charset.unwrap_or_default()
        ));
    }
    let cte = header(headers, "content-transfer-encoding")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let bytes = match cte.as_str() {
        "" | "7bit" | "8bit" | "binary" => body.to_vec(),
        "quoted-printable" => qp_decode(body),
        "base64" => {
            let compact: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| format!("a {kind} part is not valid base64: {e}"))?
        }
        other => return Err(format!("a {kind} part with transfer encoding {other:?}")),
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("a {kind} part is not UTF-8"))?;
    Ok(Content::Text {
        html: kind == "text/html",
        text: text.replace("\r\n", "\n"),
    })
}

/// The placeholders of the text parts; a placeholder in any other header is an error.
fn collect(n: &Node, root: bool, out: &mut BTreeSet<String>) -> Result<(), String> {
    for h in &n.headers {
        let subject = root && h.name.eq_ignore_ascii_case("subject");
        if !subject && !names(&h.value).is_empty() {
            return Err(format!(
                "a placeholder in the {} header: placeholders may be used in the Subject and the text only",
                h.name
            ));
        }
    }
    match &n.content {
        Content::Text { text, .. } => out.extend(names(text)),
        Content::Multipart { parts, .. } => {
            for p in parts {
                collect(p, false, out)?;
            }
        }
        Content::Opaque(_) => {}
    }
    Ok(())
}

/// A placeholder at `s[i..]`: its name (lower case) and its length.
fn placeholder_at(s: &str, i: usize) -> Option<(String, usize)> {
    let rest = s[i..].strip_prefix("{{")?;
    let close = rest.find("}}")?;
    let name = rest[..close].trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
    valid.then(|| (name.to_lowercase(), close + 4))
}

/// Every placeholder name in `s`.
pub fn names(s: &str) -> Vec<String> {
    s.match_indices("{{")
        .filter_map(|(i, _)| placeholder_at(s, i).map(|(n, _)| n))
        .collect()
}

/// `s` with every placeholder replaced by its value (HTML-escaped when `html`); a name without a
/// value stays as written (the validation refuses such rows before anything is rendered).
pub fn fill(s: &str, values: &HashMap<String, String>, html: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(at) = s[i..].find("{{").map(|j| i + j) {
        out.push_str(&s[i..at]);
        match placeholder_at(s, at).and_then(|(n, len)| values.get(&n).map(|v| (v, len))) {
            Some((value, len)) => {
                if html {
                    out.push_str(&crate::escape::html(value));
                } else {
                    out.push_str(value);
                }
                i = at + len;
            }
            None => {
                out.push_str("{{");
                i = at + 2;
            }
        }
    }
    out.push_str(&s[i..]);
    out
}

fn render_node(n: &Node, values: &HashMap<String, String>, root: bool, out: &mut Vec<u8>) {
    let rewritten = matches!(n.content, Content::Text { .. });
    for h in &n.headers {
        let name = h.name.to_ascii_lowercase();
        let dropped = (root && REPLACED.contains(&name.as_str()))
            || (rewritten && (name == "content-type" || name == "content-transfer-encoding"));
        if !dropped {
            out.extend_from_slice(format!("{}:{}\r\n", h.name, h.value).as_bytes());
        }
    }
    match &n.content {
        Content::Text { html, text } => {
            let filled = fill(text, values, *html).replace("\r\n", "\n");
            let (cte, body) = encode_text(&filled);
            let sub = if *html { "html" } else { "plain" };
            out.extend_from_slice(
                format!(
                    "Content-Type: text/{sub}; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
                )
                .as_bytes(),
            );
            out.extend_from_slice(&body);
        }
        Content::Multipart {
            boundary,
            preamble,
            parts,
            epilogue,
        } => {
            out.extend_from_slice(b"\r\n");
            if let Some(p) = preamble {
                out.extend_from_slice(p);
                out.extend_from_slice(b"\r\n");
            }
            for p in parts {
                out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                render_node(p, values, false, out);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(format!("--{boundary}--").as_bytes());
            out.extend_from_slice(epilogue);
        }
        Content::Opaque(body) => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        }
    }
}

/// 7bit when the text is ASCII with short lines, quoted-printable otherwise; CRLF line ends.
fn encode_text(text: &str) -> (&'static str, Vec<u8>) {
    let lines: Vec<&str> = text.split('\n').collect();
    if text.is_ascii() && !text.contains('\r') && lines.iter().all(|l| l.len() <= 998) {
        return ("7bit", lines.join("\r\n").into_bytes());
    }
    let mut out = Vec::with_capacity(text.len() * 2);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        qp_line(line.as_bytes(), &mut out);
    }
    ("quoted-printable", out)
}

/// One line as quoted-printable (RFC 2045 §6.7), soft breaks before 76 characters.
fn qp_line(line: &[u8], out: &mut Vec<u8>) {
    let mut width = 0;
    for (i, &b) in line.iter().enumerate() {
        let last = i + 1 == line.len();
        let literal = matches!(b, 33..=60 | 62..=126) || (matches!(b, b' ' | b'\t') && !last);
        let piece = if literal {
            vec![b]
        } else {
            format!("={b:02X}").into_bytes()
        };
        if width + piece.len() > 75 {
            out.extend_from_slice(b"=\r\n");
            width = 0;
        }
        width += piece.len();
        out.extend_from_slice(&piece);
    }
}

fn qp_decode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'=' {
            if body[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            let hex = body
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// A header value (with its leading space): as it is when ASCII, else RFC 2047 `B` encoded words of
/// whole characters, one per folded line.
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        return format!(" {text}");
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    let b64 = base64::engine::general_purpose::STANDARD;
    let encoded: Vec<String> = words
        .iter()
        .map(|w| format!(" =?utf-8?B?{}?=", b64.encode(w)))
        .collect();
    encoded.join("\r\n")
}

/// An RFC 5322 date for a unix time, in UTC: `Tue, 01 Dec 2026 21:44:38 +0000`.
pub fn mail_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = crate::time::rfc3339(unix);
    let month: usize = iso[5..7].parse().unwrap_or(1);
    format!(
        "{}, {} {} {} {} +0000",
        DAYS[unix.div_euclid(86_400).rem_euclid(7) as usize],
        &iso[8..10],
        MONTHS[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ENV: Envelope<'static> = Envelope {
        from: "arts@zorg.test",
        to: "jan@example.test",
        date: "Tue, 01 Dec 2026 21:44:38 +0000",
        message_id: "abc.bulk@zorg.test",
    };

    const LETTER: &str = "From: Dr. Arts <arts@zorg.test>\nTo: placeholder@x\nSubject: Correctie voor {{ Naam }}\n\
        Message-ID: <old@x>\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n\
        --b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
        Beste {{naam}},=0Auw uitslag: {{uitslag}}\n--b1\nContent-Type: text/html; charset=utf-8\n\n\
        <p>Beste {{naam}}</p>\n--b1--\n";

    #[test]
    fn placeholders_are_filled_text_and_html() {
        let t = Template::parse(LETTER.as_bytes()).unwrap();
        assert_eq!(
            t.placeholders().iter().collect::<Vec<_>>(),
            ["naam", "uitslag"]
        );
        assert_eq!(t.from_address(), Some("arts@zorg.test"));
        let out = t.render(
            &values(&[("naam", "<Jan> & Zoë"), ("uitslag", "goed")]),
            &ENV,
        );
        let parsed = mail_parser::MessageParser::default().parse(&out).unwrap();
        assert_eq!(parsed.subject(), Some("Correctie voor <Jan> & Zoë"));
        assert_eq!(
            parsed.body_text(0).unwrap(),
            "Beste <Jan> & Zoë,\r\nuw uitslag: goed"
        );
        assert_eq!(
            parsed.body_html(0).unwrap(),
            "<p>Beste &lt;Jan&gt; &amp; Zoë</p>"
        );
        assert_eq!(parsed.message_id(), Some("abc.bulk@zorg.test"));
        let text = String::from_utf8(out.clone()).unwrap();
        // Envelope headers once each, the template's own dropped; the display name kept.
        assert!(text.starts_with("From: Dr. Arts <arts@zorg.test>\r\nTo: <jan@example.test>\r\n"));
        assert_eq!(text.matches("Message-ID:").count(), 1);
        assert!(!text.contains("placeholder@x"));
        assert!(text.contains("Subject: =?utf-8?B?"), "{text}");
        assert!(out.is_ascii(), "7bit / quoted-printable only");
        assert!(!text.contains("\n\n") && !text.replace("\r\n", "").contains('\n'));
        // Deterministic: the same input gives the same bytes.
        assert_eq!(
            out,
            t.render(
                &values(&[("naam", "<Jan> & Zoë"), ("uitslag", "goed")]),
                &ENV
            )
        );
    }

    #[test]
    fn a_single_part_base64_template_and_an_attachment() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\
             Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--zz\r\n\
             Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\n\
             {{{{naam}}}} stays\r\n--zz--\r\n",
            b64.encode("Dag {{naam}}")
        );
        let t = Template::parse(raw.as_bytes()).unwrap();
        let out = t.render(&values(&[("naam", "Piet")]), &ENV);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\n\r\nDag Piet\r\n--zz"), "{text}");
        assert!(
            text.contains("{{naam}} stays"),
            "attachments are left as they are"
        );
        assert!(text.contains("From: <arts@zorg.test>"));
    }

    #[test]
    fn refusals() {
        let e = Template::parse(b"To: {{email}}\nSubject: x\n\nhi").unwrap_err();
        assert!(e.contains("placeholder in the To header"), "{e}");
        let e = Template::parse(b"Subject: x\nContent-Type: text/plain; charset=iso-8859-1\n\nhi")
            .unwrap_err();
        assert!(e.contains("save the template as UTF-8"), "{e}");
        assert!(Template::parse(b"From: a@b\n\nno subject")
            .unwrap_err()
            .contains("no Subject"));
        let e =
            Template::parse(b"Subject: x\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\nx\n")
                .unwrap_err();
        assert!(e.contains("no closing --q--"), "{e}");
    }

    #[test]
    fn quoted_printable_round_trip() {
        let line = "é".repeat(60) + " ";
        let (cte, body) = encode_text(&line);
        assert_eq!(cte, "quoted-printable");
        assert!(body.split(|b| *b == b'\n').all(|l| l.len() <= 77));
        let decoded = qp_decode(&body);
        assert_eq!(String::from_utf8(decoded).unwrap(), line);
        assert_eq!(encode_text("plain\nascii").1, b"plain\r\nascii");
    }

    #[test]
    fn names_and_fill() {
        assert_eq!(
            names("{{a}} {{ B_c.d }} {{no way}} {{}} {{x"),
            ["a", "b_c.d"]
        );
        assert_eq!(fill("{{a}}{{b}}", &values(&[("a", "1")]), false), "1{{b}}");
        assert_eq!(mail_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(mail_date(1_796_161_478), "Tue, 01 Dec 2026 21:44:38 +0000");
    }
}

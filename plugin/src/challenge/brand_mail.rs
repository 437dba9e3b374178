//! The sender domain's brand in the notification mails: the organisation's name as the From display
//! name and in the subject, and a signature with its support contact and privacy statement (both
//! languages). Also the header and body encodings that a non-ASCII name needs: RFC 2047 encoded words
//! in headers, quoted-printable for the body (the notify listener is not asked for 8BITMIME).

use base64::Engine;

use crate::config::Brand;

/// The mail's subject with the organisation's name: `"{org}: {subject}"`, or the subject alone.
pub fn subject(brand: &Brand, subject: &str) -> String {
    match &brand.organisation {
        Some(org) => format!("{}: {subject}", org.as_str()),
        None => subject.to_string(),
    }
}

/// The display name of the From header: the organisation's, else the configured `notify_name`.
pub fn from_name<'a>(brand: &'a Brand, notify_name: &'a str) -> &'a str {
    brand
        .organisation
        .as_ref()
        .map_or(notify_name, |o| o.as_str())
}

/// The signature under the body: name, support contact, privacy statement, each in Dutch and English.
/// Empty for the built-in look (the mails read as before).
pub fn signature(brand: &Brand) -> String {
    let mut lines = Vec::new();
    if let Some(org) = &brand.organisation {
        lines.push(org.as_str().to_string());
    }
    if let Some(s) = &brand.support {
        lines.push(format!("Vragen? / Questions? {}", s.text()));
    }
    if let Some(u) = &brand.privacy_url {
        lines.push(format!(
            "Privacyverklaring / Privacy statement: {}",
            u.as_str()
        ));
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("\r\n-- \r\n{}\r\n", lines.join("\r\n"))
}

/// A header's text: as it is when it is printable ASCII, else RFC 2047 `=?utf-8?B?…?=` words of at
/// most 75 characters, folded onto continuation lines.
pub fn header_text(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 bytes of UTF-8 are 60 base64 characters: 72 with the word's frame.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// The From header's mailbox: a quoted display name (ASCII) or encoded words, then the address.
pub fn from_header(name: &str, addr: &str) -> String {
    if name.is_empty() {
        return format!("<{addr}>");
    }
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{quoted}\" <{addr}>")
    } else {
        format!("{} <{addr}>", header_text(name))
    }
}

/// `(Content-Transfer-Encoding, body)`: `7bit` for an ASCII body, else quoted-printable (RFC 2045:
/// lines kept as they are where they fit, soft breaks only in longer ones).
pub fn body(text: &str) -> (&'static str, String) {
    if text.is_ascii() {
        return ("7bit", text.to_string());
    }
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for (i, line) in text.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut width = 0;
        let bytes = line.as_bytes();
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let plain = ((b'!'..=b'~').contains(&b) && b != b'=') || (b == b' ' && !last);
            let piece = if plain {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            width += piece.len();
            out.push_str(&piece);
        }
    }
    ("quoted-printable", out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrandingConfig, Brands};

    fn brand(toml_text: &str) -> std::sync::Arc<Brand> {
        let c: BrandingConfig = toml::from_str(toml_text).unwrap();
        Brands::load(&c).unwrap().default_brand().clone()
    }

    #[test]
    fn plain_brand_changes_nothing() {
        let b = brand("");
        assert_eq!(subject(&b, "Beveiligd bericht"), "Beveiligd bericht");
        assert_eq!(from_name(&b, "Beveiligde e-mail"), "Beveiligde e-mail");
        assert_eq!(signature(&b), "");
    }

    #[test]
    fn brand_names_the_organisation_and_its_contacts() {
        let b = brand(
            "organisation = \"Zorggroep \\\"Noord\\\"\"\nsupport = \"helpdesk@zorg.test\"\n\
             privacy_url = \"https://zorg.test/privacy\"\n",
        );
        assert_eq!(subject(&b, "x"), "Zorggroep \"Noord\": x");
        assert_eq!(
            from_header(from_name(&b, "n"), "n@zorg.test"),
            "\"Zorggroep \\\"Noord\\\"\" <n@zorg.test>"
        );
        let sig = signature(&b);
        assert!(
            sig.starts_with("\r\n-- \r\nZorggroep \"Noord\"\r\n"),
            "{sig}"
        );
        assert!(sig.contains("Vragen? / Questions? helpdesk@zorg.test\r\n"));
        assert!(
            sig.contains("Privacyverklaring / Privacy statement: https://zorg.test/privacy\r\n")
        );
    }

    #[test]
    fn non_ascii_is_encoded() {
        let name = "Zorggroep Één ".repeat(5);
        let h = header_text(&name);
        for word in h.split("\r\n ") {
            assert!(word.len() <= 75, "{word}");
            assert!(word.starts_with("=?utf-8?B?") && word.ends_with("?="));
        }
        let decoded: String = h
            .split("\r\n ")
            .map(|w| {
                let b64 = &w[10..w.len() - 2];
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            })
            .collect();
        assert_eq!(decoded, name);
        assert!(from_header("Één", "n@zorg.test").ends_with("?= <n@zorg.test>"));
        assert_eq!(header_text("plain"), "plain");

        let (cte, qp) = body("Zorggroep Één\r\nhttps://zorg.test/p/abc = ok \r\n");
        assert_eq!(cte, "quoted-printable");
        assert_eq!(
            qp,
            "Zorggroep =C3=89=C3=A9n\r\nhttps://zorg.test/p/abc =3D ok=20\r\n"
        );
        let (_, long) = body(&format!("é{}", "a".repeat(200)));
        assert!(long.split("\r\n").all(|l| l.len() <= 76), "{long}");
        assert_eq!(body("ascii\r\n"), ("7bit", "ascii\r\n".to_string()));
    }
}

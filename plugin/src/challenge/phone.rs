//! Mobile numbers: E.164 validation and the sender's `[sms:+316…]` subject tag.
//!
//! The subject tag is removed from the held copy (the recipient must never see it, and it is not part of
//! the message the sender meant). So the held copy differs from the submitted bytes by exactly that tag;
//! `held_messages.sha256` is the digest of the held copy (what is released), while the idempotency key
//! stays that of the submitted bytes (so a client retry still finds its hold). Pure functions; calls
//! nothing.

/// A validated E.164 number (`+` and 8–15 digits, no leading zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Accepts spaces, dashes, dots and parentheses as separators; nothing else.
    pub fn parse(input: &str) -> Result<Phone, &'static str> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let Some(digits) = compact.strip_prefix('+') else {
            return Err("number must start with + and the country code (E.164), e.g. +31612345678");
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("number may contain only digits after the +");
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err("number must have 8 to 15 digits after the +, the first not 0");
        }
        Ok(Phone(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+31 6•••• 78` style: enough for the recipient to recognise their phone, no more.
    pub fn masked(&self) -> String {
        let s = &self.0;
        let tail = &s[s.len() - 2..];
        format!("{}•••••{tail}", &s[..s.len().min(4)])
    }
}

/// The outcome of looking for `[sms:…]` in the Subject header.
#[derive(Debug, PartialEq, Eq)]
pub enum SubjectTag {
    None,
    /// A valid number and the message with the tag removed.
    Valid(Phone, Vec<u8>),
    /// A tag with an invalid number: removed as well, number ignored (the sender gets the phone link).
    Invalid(String, Vec<u8>),
}

/// Finds the first `[sms:…]` in the (unfolded-as-is) Subject header of `raw` and removes it together
/// with one adjacent space. Only the header section is looked at.
pub fn subject_tag(raw: &[u8]) -> SubjectTag {
    let header_end = find(raw, b"\r\n\r\n").map_or(raw.len(), |i| i + 2);
    let mut line_start = 0;
    while line_start < header_end {
        let line_end =
            find(&raw[line_start..header_end], b"\r\n").map_or(header_end, |i| line_start + i + 2);
        // A header field with its folded continuation lines.
        let mut field_end = line_end;
        while field_end < header_end && matches!(raw[field_end], b' ' | b'\t') {
            field_end = find(&raw[field_end..header_end], b"\r\n")
                .map_or(header_end, |i| field_end + i + 2);
        }
        let field = &raw[line_start..field_end];
        if field.len() > 8 && field[..8].eq_ignore_ascii_case(b"subject:") {
            let Some(open) = find_ci(field, b"[sms:") else {
                return SubjectTag::None;
            };
            let Some(close) = field[open..].iter().position(|b| *b == b']') else {
                return SubjectTag::None;
            };
            let number = String::from_utf8_lossy(&field[open + 5..open + close]).to_string();
            let (mut from, mut to) = (line_start + open, line_start + open + close + 1);
            if raw.get(to) == Some(&b' ') {
                to += 1;
            } else if from > line_start + 8 && raw[from - 1] == b' ' {
                from -= 1;
            }
            let mut out = Vec::with_capacity(raw.len());
            out.extend_from_slice(&raw[..from]);
            out.extend_from_slice(&raw[to..]);
            return match Phone::parse(&number) {
                Ok(p) => SubjectTag::Valid(p, out),
                Err(_) => SubjectTag::Invalid(number, out),
            };
        }
        line_start = field_end;
    }
    SubjectTag::None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert_eq!(
            Phone::parse(" +31 6-1234 5678").unwrap().as_str(),
            "+31612345678"
        );
        assert!(Phone::parse("0612345678").is_err());
        assert!(Phone::parse("+31abc").is_err());
        assert!(Phone::parse("+0612345678").is_err());
        assert!(Phone::parse("+1234567").is_err());
        assert!(Phone::parse("+1234567890123456").is_err());
        assert_eq!(
            Phone::parse("+31612345678").unwrap().masked(),
            "+316•••••78"
        );
    }

    #[test]
    fn subject_tag_is_stripped() {
        let raw = b"From: a@z\r\nSubject: Uitslag [sms:+31612345678] lab\r\n\r\nbody [sms:+1]\r\n";
        match subject_tag(raw) {
            SubjectTag::Valid(p, out) => {
                assert_eq!(p.as_str(), "+31612345678");
                assert_eq!(
                    out,
                    b"From: a@z\r\nSubject: Uitslag lab\r\n\r\nbody [sms:+1]\r\n"
                );
            }
            other => panic!("{other:?}"),
        }
        let raw = b"Subject: x [SMS:+31 6 1234 5678]\r\n\r\nb";
        assert!(
            matches!(subject_tag(raw), SubjectTag::Valid(_, ref o) if o == b"Subject: x\r\n\r\nb")
        );
        let raw = b"Subject: x [sms:12]\r\n\r\nb";
        assert!(matches!(subject_tag(raw), SubjectTag::Invalid(ref n, _) if n == "12"));
        assert_eq!(
            subject_tag(b"Subject: nothing\r\n\r\n[sms:+31612345678]"),
            SubjectTag::None
        );
    }
}

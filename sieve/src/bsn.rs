//! Dutch citizen service numbers (BSN) in free text.
//!
//! A BSN is 9 digits that pass the "elfproef" (11-check): `9·d1 + 8·d2 + … + 2·d8 − 1·d9` is divisible
//! by 11 (and the number is not all zeros). It is recognised written plainly (`123456782`) or in the
//! dotted form (`1234.56.782`), standing on its own: not part of a longer digit run or a word, not in a
//! URL, an e-mail address, a path or query string, and not in an IBAN.

/// The 11-check on exactly nine digits (each 0–9).
pub fn elfproef(d: &[u8; 9]) -> bool {
    if d.iter().all(|&x| x == 0) {
        return false;
    }
    let sum: i64 = d[..8]
        .iter()
        .enumerate()
        .map(|(i, &x)| (9 - i as i64) * i64::from(x))
        .sum::<i64>()
        - i64::from(d[8]);
    sum % 11 == 0
}

/// Whether `s` (nine ASCII digits, or `dddd.dd.ddd`) is a valid BSN.
pub fn is_bsn(s: &str) -> bool {
    let digits: Vec<u8> = match s.len() {
        9 if s.bytes().all(|b| b.is_ascii_digit()) => s.bytes().map(|b| b - b'0').collect(),
        11 if dotted(s.as_bytes(), 0) => s
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect(),
        _ => return false,
    };
    let mut arr = [0u8; 9];
    arr.copy_from_slice(&digits);
    elfproef(&arr)
}

/// `dddd.dd.ddd` at `i`.
fn dotted(b: &[u8], i: usize) -> bool {
    let pat = b"dddd.dd.ddd";
    b.len() >= i + pat.len()
        && pat.iter().zip(&b[i..]).all(|(p, c)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

/// Characters that glue a number to a URL, an address, a path, a query or a longer token.
fn glues(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'/' | b'=' | b'&' | b'?' | b'%' | b'#' | b'_' | b'+' | b'@' | b'\\' | b'-' | b'~'
        )
}

/// Whether the text contains at least one valid BSN (see the module docs for what counts).
pub fn contains_bsn(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // The candidate: a 9-digit run, or the dotted form starting here.
        let end = if i - start == 9 {
            i
        } else if i - start == 4 && dotted(b, start) {
            start + 11
        } else {
            continue;
        };
        if standalone(b, start, end) && is_bsn(&text[start..end]) {
            return true;
        }
        i = end.max(i);
    }
    false
}

/// Not glued to anything around it, and not inside a URL/e-mail/IBAN token.
fn standalone(b: &[u8], start: usize, end: usize) -> bool {
    if start > 0 {
        let p = b[start - 1];
        // "1.123456782" or "1,123456782": part of a larger number.
        let numeric_sep = matches!(p, b'.' | b',') && start >= 2 && b[start - 2].is_ascii_digit();
        if glues(p) || numeric_sep {
            return false;
        }
    }
    if end < b.len() {
        let n = b[end];
        let numeric_sep =
            matches!(n, b'.' | b',') && b.get(end + 1).is_some_and(u8::is_ascii_digit);
        if glues(n) || numeric_sep {
            return false;
        }
    }
    // The whitespace-delimited token around the number must not be a URL, an address or an IBAN.
    let is_space =
        |c: &u8| c.is_ascii_whitespace() || matches!(c, b'<' | b'>' | b'"' | b'\'' | b'(' | b')');
    let tok_start = b[..start].iter().rposition(is_space).map_or(0, |p| p + 1);
    let tok_end = b[end..]
        .iter()
        .position(is_space)
        .map_or(b.len(), |p| end + p);
    let token = &b[tok_start..tok_end];
    let lower = token.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"://") || lower.starts_with(b"www.") || has(b"@") {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elfproef_examples() {
        // 9·1+8·2+7·3+6·4+5·5+4·6+3·7+2·8 − 2 = 154 = 14·11.
        assert!(is_bsn("123456782"));
        assert!(is_bsn("1234.56.782"));
        assert!(!is_bsn("123456789"));
        assert!(!is_bsn("000000000"));
        assert!(!is_bsn("12345678"));
        assert!(!is_bsn("1234567820"));
    }

    #[test]
    fn positives() {
        for t in [
            "BSN 123456782",
            "bsn: 123456782.",
            "patiënt (123456782)",
            "BSN:123456782",
            "nummer 1234.56.782, geboren",
            "111222333",
            "\n123456782\n",
        ] {
            assert!(contains_bsn(t), "{t:?} should contain a BSN");
        }
    }

    #[test]
    fn negatives() {
        for t in [
            "order 123456789",                             // fails the 11-check
            "https://portal.example.nl/patient/123456782", // URL path
            "https://example.nl/?id=123456782",            // query string
            "www.example.nl/123456782",                    // URL without scheme
            "mail 123456782@example.nl",                   // e-mail address
            "IBAN NL91ABNA0123456782",                     // glued in an IBAN
            "NL91ABNA0417164300",                          // IBAN
            "1234567820",                                  // longer digit run
            "01234567820",                                 // longer digit run
            "1,123456782",                                 // part of a larger number
            "123456782.5",                                 // a decimal
            "ref-123456782",                               // glued to a word
            "000000000",                                   // all zeros
        ] {
            assert!(!contains_bsn(t), "{t:?} must not count as a BSN");
        }
    }
}

//! Phone numbers in free text: Dutch numbers (`06-12345678`, `020 123 4567`, `+31 6 1234 5678`,
//! `0031 20 1234567`) and other international numbers (`+` followed by 8–15 digits).

/// Whether the text contains something that is written like a phone number.
pub fn contains_phone(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let starts = (c == b'+' || c == b'0')
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric()
                    || matches!(b[i - 1], b'/' | b'=' | b'.' | b',' | b'-' | b'+')));
        if starts {
            if let Some(end) = candidate(b, i) {
                let digits: Vec<u8> = b[i..end]
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_digit)
                    .collect();
                if plausible(c == b'+', &digits) {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// The end of a run of digits and separators starting at `i` (not followed by a letter or digit).
fn candidate(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let mut last_digit = i;
    while j < b.len() && j - i < 24 {
        match b[j] {
            d if d.is_ascii_digit() => last_digit = j,
            b' ' | b'-' | b'(' | b')' | b'.' => {}
            _ => break,
        }
        j += 1;
    }
    let end = last_digit + 1;
    match b.get(end) {
        Some(n) if n.is_ascii_alphanumeric() || *n == b'@' || *n == b'/' => None,
        _ => Some(end),
    }
}

fn plausible(plus: bool, d: &[u8]) -> bool {
    if plus {
        return match d {
            [b'3', b'1', rest @ ..] => rest.len() == 9 && rest[0] != b'0',
            _ => (8..=15).contains(&d.len()),
        };
    }
    match d {
        [b'0', b'0', b'3', b'1', rest @ ..] => rest.len() == 9 && rest[0] != b'0',
        [b'0', b'0', ..] => (10..=17).contains(&d.len()),
        [b'0', second, ..] => d.len() == 10 && *second != b'0',
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::contains_phone;

    #[test]
    fn phones() {
        for t in [
            "bel 06-12345678",
            "tel. 020 123 4567",
            "+31 6 1234 5678",
            "(0031) 20 1234567",
            "+44 20 7946 0958",
            "0612345678",
        ] {
            assert!(contains_phone(t), "{t:?}");
        }
        for t in [
            "order 0612345",
            "12345678",
            "BSN 123456782",
            "NL91ABNA0417164300",
            "https://x.nl/0612345678",
            "2024-06-12",
        ] {
            assert!(!contains_phone(t), "{t:?}");
        }
    }
}

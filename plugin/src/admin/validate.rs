//! Typed admin input: mail addresses, domains, E.164 phone numbers and times, each with an error text
//! that says what is wrong.
//!
//! Each rule is also written down as a pattern and length in the OpenAPI document
//! (`components/schemas` `Domain`, `Address`, `Phone`, `Text…`); the schemathesis test
//! (`tests/integration/admin_schema.rs`) holds the two to each other. Input is taken as it is
//! written: no trimming (a space in an address is an error, not something to guess about); upper-case
//! letters are accepted and lower-cased.

/// A lower-cased domain name: 2+ labels of ASCII letters, digits and inner hyphens (1 to 63 each), at
/// most 253 characters, no trailing dot.
pub fn domain(input: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("invalid domain {input:?}: {why}"));
    if input.is_empty() {
        return bad("empty");
    }
    if input.len() > 253 {
        return bad("longer than 253 characters");
    }
    if input.ends_with('.') {
        return bad("write it without the trailing dot");
    }
    let labels: Vec<&str> = input.split('.').collect();
    if labels.len() < 2 {
        return bad("needs at least two labels (like example.nl)");
    }
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return bad("each label must be 1 to 63 characters");
        }
        if !l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
            return bad(
                "only letters, digits, hyphens and dots are allowed (IDNs in punycode: xn--…)",
            );
        }
        if l.starts_with('-') || l.ends_with('-') {
            return bad("a label cannot start or end with a hyphen");
        }
    }
    Ok(input.to_ascii_lowercase())
}

/// Whether `c` may stand unquoted in the part before the @: RFC 5322 `atext` and the dot, or any
/// non-ASCII character that is neither white space nor a control character (RFC 6531).
fn local_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~.".contains(c)
        || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
}

/// A lower-cased mail address `local@domain`: at most 254 characters, 1 to 64 before the @ (RFC 5322
/// `atext`, dots, non-ASCII letters), a [`domain`] after it.
pub fn address(input: &str) -> Result<String, String> {
    let Some((local, dom)) = input.rsplit_once('@') else {
        return Err(format!("invalid address {input:?}: no @"));
    };
    if input.chars().count() > 254 {
        return Err(format!(
            "invalid address {input:?}: longer than 254 characters"
        ));
    }
    if !(1..=64).contains(&local.chars().count()) {
        return Err(format!(
            "invalid address {input:?}: the part before @ must be 1 to 64 characters"
        ));
    }
    if !local.chars().all(local_char) {
        return Err(format!(
            "invalid address {input:?}: the part before @ contains a character that needs quoting (space, control character or one of <>()[]\\,;:\"@)"
        ));
    }
    let dom = domain(dom).map_err(|e| format!("invalid address {input:?}: {e}"))?;
    Ok(format!("{}@{dom}", local.to_lowercase()))
}

/// An E.164 phone number: `+`, country code, subscriber number; 8 to 15 digits, no spaces.
pub fn phone(input: &str) -> Result<String, String> {
    let p = input;
    let digits = p.strip_prefix('+').ok_or_else(|| {
        format!("invalid phone number {input:?}: E.164 starts with + and the country code (e.g. +31612345678)")
    })?;
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "invalid phone number {input:?}: only digits after the + (no spaces or dashes)"
        ));
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(format!(
            "invalid phone number {input:?}: E.164 has 8 to 15 digits after the + and no leading 0"
        ));
    }
    Ok(p.to_string())
}

/// A gateway identifier of one kind: `prefix-` and 32 lower-case hex digits (see `crate::ids`). A
/// malformed id is bad input (400); a well-formed one that names nothing is the caller's 404.
pub fn id(what: &str, prefix: &str, input: &str) -> Result<String, String> {
    let ok = input
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| {
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        });
    if ok {
        Ok(input.to_string())
    } else {
        Err(format!(
            "invalid {what} id {input:?}: expected {prefix}- followed by 32 lower-case hex digits"
        ))
    }
}

/// An RFC 3339 time (`2027-01-31T12:00:00Z`) as unix seconds: a real calendar day of a year from 1, a
/// `T` between date and time, seconds 00 to 59, an offset `Z` or ±00:00 to ±23:59 — what the
/// document's `format: date-time` allows ([`crate::time::parse_rfc3339`] alone would also take a space
/// for the `T`, 31 February and a leap second).
pub fn time(field: &str, input: &str) -> Result<i64, String> {
    crate::time::parse_rfc3339(input)
        .filter(|_| strict_rfc3339(input))
        .ok_or_else(|| {
            format!(
                "invalid {field} {input:?}: expected an RFC 3339 time like 2027-01-31T12:00:00Z"
            )
        })
}

/// The parts of RFC 3339 that `parse_rfc3339` leaves to its callers (it has checked the shape).
fn strict_rfc3339(s: &str) -> bool {
    let num = |from: usize, to: usize| -> Option<u32> {
        let t = s.get(from..to)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (Some(y), Some(m), Some(d), Some(ss)) = (num(0, 4), num(5, 7), num(8, 10), num(17, 19))
    else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let n = s.len();
    let offset_ok = s.ends_with(['Z', 'z'])
        || (num(n - 5, n - 3).is_some_and(|h| h <= 23) && num(n - 2, n).is_some_and(|mi| mi <= 59));
    y >= 1 && d <= days && ss <= 59 && matches!(s.as_bytes()[10], b'T' | b't') && offset_ok
}

/// A free text of at most `max` characters without control characters and not only white space;
/// stored without the white space around it.
pub fn text(field: &str, input: &str, max: usize) -> Result<String, String> {
    if input.chars().count() > max || input.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be at most {max} characters without control characters"
        ));
    }
    let t = input.trim();
    if t.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(domain("Example.NL").unwrap(), "example.nl");
        assert_eq!(
            address("Ünïcode.Ä+x@Example.nl").unwrap(),
            "ünïcode.ä+x@example.nl"
        );
        assert_eq!(text("reason", " why ", 5).unwrap(), "why");
        assert_eq!(address("Bob@Example.nl").unwrap(), "bob@example.nl");
        assert_eq!(phone("+31612345678").unwrap(), "+31612345678");
    }

    #[test]
    fn refuses_with_reasons() {
        assert!(domain("localhost").unwrap_err().contains("two labels"));
        assert!(domain("bad_domain.nl")
            .unwrap_err()
            .contains("only letters"));
        assert!(domain("-x.nl").unwrap_err().contains("hyphen"));
        assert!(domain("example.nl.").unwrap_err().contains("trailing dot"));
        assert!(domain(" example.nl").unwrap_err().contains("only letters"));
        assert!(address("bob @x.nl").unwrap_err().contains("needs quoting"));
        assert!(address("b\u{a0}b@x.nl")
            .unwrap_err()
            .contains("needs quoting"));
        let long = format!(
            "{}@{}.nl",
            "a".repeat(64),
            "b".repeat(60) + &".c".repeat(64)
        );
        assert!(address(&long).unwrap_err().contains("254"));
        assert!(text("reason", "   ", 5).unwrap_err().contains("empty"));
        assert!(text("reason", " abcde", 5)
            .unwrap_err()
            .contains("at most 5"));
        assert!(address("bob").unwrap_err().contains("no @"));
        assert!(phone("0612345678").unwrap_err().contains("starts with +"));
        assert!(phone("+31 6 1234").unwrap_err().contains("only digits"));
        assert!(phone("+3161").unwrap_err().contains("8 to 15"));
        let held = format!("h-{}", "0123456789abcdef".repeat(2));
        assert_eq!(id("held message", "h", &held).unwrap(), held);
        for bad in [
            "h-nope",
            "h-",
            "ex-0123456789abcdef0123456789abcdef",
            "h-0123456789ABCDEF0123456789ABCDEF",
        ] {
            assert!(
                id("held message", "h", bad)
                    .unwrap_err()
                    .contains("expected h- followed by 32"),
                "{bad}"
            );
        }
        for bad in [
            "tomorrow",
            "2027-02-29T00:00:00Z",
            "2027-04-31T00:00:00Z",
            "2027-01-31 00:00:00Z",
            "2027-01-31T00:00:60Z",
            "0000-01-31T00:00:00Z",
            "2027-01-31T00:00:00+24:00",
            "2027-01-31T00:00:00+01:60",
        ] {
            assert!(time("t", bad).unwrap_err().contains("RFC 3339"), "{bad}");
        }
        for good in [
            "2028-02-29T00:00:00Z",
            "2027-01-31t23:59:59.5z",
            "2027-01-31T00:00:00-23:59",
        ] {
            assert!(time("t", good).is_ok(), "{good}");
        }
    }
}

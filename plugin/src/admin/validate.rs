//! Typed admin input: mail addresses, domains, E.164 phone numbers and times, each with an error text
//! that says what is wrong.

/// A lower-cased domain name: 2+ labels of letters, digits and inner hyphens, at most 253 characters.
pub fn domain(input: &str) -> Result<String, String> {
    let d = input.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| Err(format!("invalid domain {input:?}: {why}"));
    if d.is_empty() {
        return bad("empty");
    }
    if d.len() > 253 {
        return bad("longer than 253 characters");
    }
    let labels: Vec<&str> = d.split('.').collect();
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
    Ok(d)
}

/// A lower-cased mail address `local@domain`.
pub fn address(input: &str) -> Result<String, String> {
    let a = input.trim();
    let Some((local, dom)) = a.rsplit_once('@') else {
        return Err(format!("invalid address {input:?}: no @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(format!(
            "invalid address {input:?}: the part before @ must be 1 to 64 characters"
        ));
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c))
    {
        return Err(format!(
            "invalid address {input:?}: the part before @ contains a character that needs quoting"
        ));
    }
    let dom = domain(dom).map_err(|e| format!("invalid address {input:?}: {e}"))?;
    Ok(format!("{}@{dom}", local.to_lowercase()))
}

/// An E.164 phone number: `+`, country code, subscriber number; 8 to 15 digits, no spaces.
pub fn phone(input: &str) -> Result<String, String> {
    let p = input.trim();
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

/// An RFC 3339 time (`2027-01-31T12:00:00Z`) as unix seconds.
pub fn time(field: &str, input: &str) -> Result<i64, String> {
    crate::time::parse_rfc3339(input.trim()).ok_or_else(|| {
        format!("invalid {field} {input:?}: expected an RFC 3339 time like 2027-01-31T12:00:00Z")
    })
}

/// A non-empty free text of at most `max` characters without control characters.
pub fn text(field: &str, input: &str, max: usize) -> Result<String, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be at most {max} characters without control characters"
        ));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(domain("Example.NL.").unwrap(), "example.nl");
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
        assert!(time("expires_at", "tomorrow")
            .unwrap_err()
            .contains("RFC 3339"));
    }
}

//! Recipients as CSV: `address,phone,verified_until` (header line required; `verified_until` RFC 3339
//! or empty). Parsing reports every bad row with its line number and keeps the good ones.

use serde::Serialize;

use super::validate;
use crate::{audit::export::csv_field, store::admin::RecipientIn};

pub const HEADER: &str = "address,phone,verified_until";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line number in the uploaded file (the header is line 1).
    pub line: usize,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<RecipientIn>,
    pub errors: Vec<RowError>,
}

/// Splits one CSV line into fields (RFC 4180 quoting; fields do not span lines).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote inside an unquoted field".into()),
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.strip_prefix('\u{feff}').unwrap_or(l))
        .ok_or("the file is empty: expected the header line address,phone,verified_until")?;
    // Exactly as written in the OpenAPI document's pattern: the first line names the columns.
    if header != HEADER && header != "address,phone" {
        return Err(format!(
            "line 1: the header must be {HEADER:?} (or address,phone), not {header:?}"
        ));
    }
    let mut parsed = Parsed::default();
    let mut seen = std::collections::HashMap::new();
    for (i, line) in lines {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match row(line) {
            Ok(r) => {
                if let Some(first) = seen.insert(r.address.clone(), n) {
                    parsed.errors.push(RowError {
                        line: n,
                        error: format!("{} is already on line {first}", r.address),
                    });
                    seen.insert(r.address.clone(), first);
                } else {
                    parsed.rows.push(r);
                }
            }
            Err(error) => parsed.errors.push(RowError { line: n, error }),
        }
    }
    Ok(parsed)
}

fn row(line: &str) -> Result<RecipientIn, String> {
    let f = fields(line)?;
    if f.len() < 2 || f.len() > 3 {
        return Err(format!("expected 2 or 3 fields, found {}", f.len()));
    }
    let address = validate::address(f[0].trim())?;
    let phone = match f[1].trim() {
        "" => None,
        p => Some(validate::phone(p)?),
    };
    let verified_until = match f.get(2).map(|s| s.trim()).unwrap_or("") {
        "" => None,
        t => Some(validate::time("verified_until", t)?),
    };
    Ok(RecipientIn {
        address,
        phone,
        verified_until,
    })
}

/// One CSV line for a recipient (same columns as the import).
pub fn line(address: &str, phone: Option<&str>, verified_until: Option<&str>) -> String {
    format!(
        "{},{},{}\r\n",
        csv_field(address),
        csv_field(phone.unwrap_or("")),
        csv_field(verified_until.unwrap_or(""))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_rows_with_line_numbers() {
        let p = parse(
            "address,phone,verified_until\n\
             a@x.nl,+31612345678,\n\
             \"b@x.nl\",+31612345679,2027-01-01T00:00:00Z\n\
             c@x.nl,0612,\n\
             a@x.nl,,\n\
             d@bad_domain,,\n",
        )
        .unwrap();
        assert_eq!(p.rows.len(), 2);
        assert_eq!(
            p.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert!(p.errors[0].error.contains("phone"));
        assert!(p.errors[1].error.contains("line 2"));
    }

    #[test]
    fn header_is_required() {
        assert!(parse("a@x.nl,+31612345678\n")
            .unwrap_err()
            .contains("header"));
    }
}

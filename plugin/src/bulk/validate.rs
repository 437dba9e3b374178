//! The whole CSV checked against the template before anything is sent: every row's address, its
//! mobile number (E.164, [`crate::challenge::phone::Phone`]), a value for every placeholder, no
//! address twice. Every bad row is reported with its line and every reason; a placeholder without a
//! column, or a file without an `email` column, refuses the file. Pure.

use std::collections::HashMap;

use super::{csv::Table, template::Template};
use crate::challenge::phone::Phone;

/// A row that may be sent.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub line: u64,
    /// Normalised (lower case), as the gateway stores recipients.
    pub email: String,
    pub phone: Option<Phone>,
    /// Column → value, every column of the row.
    pub values: HashMap<String, String>,
}

/// A row that may not, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reasons: Vec<String>,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reasons.join("; "))
    }
}

#[derive(Debug, Default)]
pub struct Checked {
    pub good: Vec<Recipient>,
    pub bad: Vec<BadRow>,
}

/// Checks every row. `Err` for a problem of the file or the template as a whole.
pub fn check(template: &Template, table: &Table) -> Result<Checked, String> {
    let missing: Vec<&str> = template
        .placeholders()
        .iter()
        .filter(|p| table.column(p).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the template uses {} but the CSV has no such column (its columns: {})",
            missing
                .iter()
                .map(|m| format!("{{{{{m}}}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            table.columns.join(", ")
        ));
    }
    let email = table
        .column("email")
        .ok_or("the CSV has no \"email\" column")?;
    let phone = table.column("phone");
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut out = Checked::default();
    for record in &table.rows {
        let mut reasons = Vec::new();
        if record.fields.len() != table.columns.len() {
            reasons.push(format!(
                "{} fields, the header has {}",
                record.fields.len(),
                table.columns.len()
            ));
        }
        let field = |i: usize| record.fields.get(i).map_or("", String::as_str);
        let address = crate::admin::validate::address(field(email));
        let number = phone.map(|i| Phone::parse(field(i)));
        match &address {
            Err(_) if field(email).is_empty() => reasons.push("no email address".into()),
            Err(e) => reasons.push(e.clone()),
            Ok(a) => match seen.get(a) {
                Some(first) => reasons.push(format!("{a} is also on line {first}")),
                None => {
                    seen.insert(a.clone(), record.line);
                }
            },
        }
        match (&number, phone) {
            (Some(Err(_)), Some(i)) if field(i).is_empty() => {
                reasons.push("no phone number".into())
            }
            (Some(Err(e)), Some(i)) => reasons.push(format!("phone {:?}: {e}", field(i))),
            _ => {}
        }
        for p in template.placeholders() {
            let i = table.column(p).expect("checked above");
            if field(i).is_empty() {
                reasons.push(format!("{{{{{p}}}}} is empty"));
            }
        }
        if !reasons.is_empty() {
            out.bad.push(BadRow {
                line: record.line,
                reasons,
            });
            continue;
        }
        out.good.push(Recipient {
            line: record.line,
            email: address.expect("no reasons"),
            phone: number.and_then(Result::ok),
            values: table
                .columns
                .iter()
                .cloned()
                .zip(record.fields.iter().cloned())
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(letter: &str, csv: &str) -> Result<Checked, String> {
        let t = Template::parse(letter.as_bytes()).unwrap();
        validate_table(&t, csv)
    }

    fn validate_table(t: &Template, csv: &str) -> Result<Checked, String> {
        check(t, &super::super::csv::parse(csv.as_bytes()).unwrap())
    }

    #[test]
    fn every_bad_row_with_its_line_and_reasons() {
        let csv = "email;phone;naam\n\
                   a@x.test;+31612345678;Jan\n\
                   not-an-address;+31612345679;Piet\n\
                   b@x.test;0612345678;\"Klaas\n(tweede regel)\"\n\
                   c@x.test;+31612345670;\n\
                   A@X.test;+31612345671;Anna\n\
                   d@x.test;+31612345672\n";
        let c = run("Subject: Dag {{naam}}\n\nhi", csv).unwrap();
        assert_eq!(c.good.len(), 1);
        assert_eq!(c.good[0].email, "a@x.test");
        assert_eq!(c.good[0].phone.as_ref().unwrap().as_str(), "+31612345678");
        let lines: Vec<u64> = c.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 6, 7, 8]);
        assert!(
            c.bad[0].reasons[0].contains("invalid address"),
            "{:?}",
            c.bad[0]
        );
        assert!(
            c.bad[1].reasons[0].starts_with("phone \"0612345678\""),
            "{:?}",
            c.bad[1]
        );
        assert_eq!(c.bad[2].reasons, ["{{naam}} is empty"]);
        assert_eq!(c.bad[3].reasons, ["a@x.test is also on line 2"]);
        assert!(
            c.bad[4]
                .to_string()
                .starts_with("line 8: 2 fields, the header has 3"),
            "{}",
            c.bad[4]
        );
    }

    #[test]
    fn a_placeholder_without_a_column_refuses_the_file() {
        let e = run(
            "Subject: Dag {{naam}} {{datum}}\n\nhi",
            "email,naam\na@x.test,Jan\n",
        )
        .unwrap_err();
        assert!(
            e.contains("{{datum}}") && e.contains("no such column"),
            "{e}"
        );
    }

    #[test]
    fn no_phone_column_is_allowed_an_empty_phone_is_not() {
        let c = run("Subject: x\n\nhi", "email\na@x.test\n").unwrap();
        assert!(c.bad.is_empty() && c.good[0].phone.is_none());
        let c = run("Subject: x\n\nhi", "email,phone\na@x.test,\n").unwrap();
        assert_eq!(c.bad[0].reasons, ["no phone number"]);
    }
}

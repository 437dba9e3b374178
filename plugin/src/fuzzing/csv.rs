//! `csv_import`: the admin's recipient CSV (`admin::csv::parse`). Good rows are written back with the
//! export's own line format and must read back the same; every bad row is reported once, by its line.

use crate::{admin::csv, time};

pub fn csv_import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = csv::parse(text) else {
        return;
    };
    let lines = text.lines().count();
    let mut last = 1;
    for e in &parsed.errors {
        assert!(
            e.line > last && e.line <= lines,
            "error line {} of {lines}",
            e.line
        );
        last = e.line;
    }
    assert!(parsed.rows.len() + parsed.errors.len() < lines.max(1));
    let mut out = format!("{}\r\n", csv::HEADER);
    for (i, r) in parsed.rows.iter().enumerate() {
        assert!(
            !parsed.rows[..i].iter().any(|o| o.address == r.address),
            "{} imported twice",
            r.address
        );
        let until = r.verified_until.map(time::rfc3339);
        out.push_str(&csv::line(&r.address, r.phone.as_deref(), until.as_deref()));
    }
    let again = csv::parse(&out).expect("the export's header parses");
    assert_eq!(
        again.errors,
        vec![],
        "written rows do not read back:\n{out}"
    );
    assert_eq!(
        again.rows, parsed.rows,
        "written rows read back differently"
    );
}

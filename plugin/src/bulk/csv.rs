//! The recipients' CSV: UTF-8 (a byte-order mark is tolerated), `;` or `,` as the separator (whichever
//! the header line uses more often, outside quotes), RFC 4180 quoting (a quoted field may span lines),
//! fields trimmed, blank lines ignored. The header line names the columns (matched without regard to
//! case); `email` is required, `phone` usual. Every record keeps the line it starts on, so errors name
//! the line a person sees in their editor. Pure; reads nothing but the bytes it is given.

/// A parsed file: the column names (lower case) and the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Record>,
    pub delimiter: u8,
}

/// One record and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u64,
    pub fields: Vec<String>,
}

impl Table {
    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// A UTF-8 BOM.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses the whole file. A file-level problem (not UTF-8, no header, a bad column name, broken
/// quoting) is an error with its line; a record with the wrong number of fields is returned as it is
/// (the validation reports it with the other bad rows).
pub fn parse(bytes: &[u8]) -> Result<Table, String> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        return Err(format!(
            "line {line}: not UTF-8 (save the file as \"CSV UTF-8\")"
        ));
    }
    let delimiter = delimiter(bytes);
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| error_at(&e))?
        .iter()
        .map(|c| c.to_lowercase())
        .collect::<Vec<_>>();
    let columns = columns(header)?;
    // The reader's own line count misses blank lines (and CRLF): count line ends up to each record.
    let (mut line, mut counted) = (1u64, 0usize);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| error_at(&e))?;
        let mut start = record.position().map_or(counted, |p| p.byte() as usize);
        // The offset is where the reader stood: before the line end of the line before, or the blank
        // lines it skipped.
        while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        line += bytes[counted..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        counted = start;
        rows.push(Record {
            line,
            fields: record.iter().map(str::to_string).collect(),
        });
    }
    Ok(Table {
        columns,
        rows,
        delimiter,
    })
}

/// The header's column names: present, unique, not empty.
fn columns(header: Vec<String>) -> Result<Vec<String>, String> {
    if header.iter().all(String::is_empty) {
        return Err(
            "line 1: no header line (the first line names the columns, e.g. email;phone;name)"
                .into(),
        );
    }
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(format!("line 1: column {} has no name", i + 1));
        }
        if header[..i].contains(name) {
            return Err(format!("line 1: column {name:?} appears twice"));
        }
    }
    if !header.iter().any(|c| c == "email") {
        return Err(format!(
            "line 1: no \"email\" column (the columns are: {})",
            header.join(", ")
        ));
    }
    Ok(header)
}

/// `;` when the header line has more of them than `,` outside quotes, else `,`.
fn delimiter(bytes: &[u8]) -> u8 {
    let (mut quoted, mut semicolons, mut commas) = (false, 0, 0);
    for &b in bytes {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            b';' if !quoted => semicolons += 1,
            b',' if !quoted => commas += 1,
            _ => {}
        }
    }
    if semicolons > commas {
        b';'
    } else {
        b','
    }
}

fn error_at(e: &::csv::Error) -> String {
    match e.position() {
        Some(p) => format!("line {}: {}", p.line(), e),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_bom_and_case() {
        let t =
            parse(b"\xEF\xBB\xBFEmail; Phone ;Naam\r\na@x.test;+31612345678; Jan \r\n").unwrap();
        assert_eq!(t.delimiter, b';');
        assert_eq!(t.columns, ["email", "phone", "naam"]);
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.rows[0].line, 2);
        assert_eq!(t.rows[0].fields, ["a@x.test", "+31612345678", "Jan"]);
    }

    #[test]
    fn commas_and_quotes() {
        let t = parse(b"email,name,note\na@x.test,\"Jansen, J.\",\"say \"\"hi\"\"\"\n").unwrap();
        assert_eq!(t.delimiter, b',');
        assert_eq!(t.rows[0].fields, ["a@x.test", "Jansen, J.", "say \"hi\""]);
        // A `;` inside a quoted header name does not decide the separator.
        let t = parse(b"email,\"a;b;c\"\nx@y.test,1\n").unwrap();
        assert_eq!(t.delimiter, b',');
        assert_eq!(t.columns, ["email", "a;b;c"]);
    }

    #[test]
    fn line_numbers_count_multi_line_fields_and_blank_lines() {
        let text = "email;address\na@x.test;\"Dorpsstraat 1\n1234 AB Dorp\"\n\nb@x.test;x\n";
        let t = parse(text.as_bytes()).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].line, 2);
        assert_eq!(t.rows[0].fields[1], "Dorpsstraat 1\n1234 AB Dorp");
        assert_eq!(t.rows[1].line, 5);
        let t = parse(b"email;a\r\nx@y.test;\"1\r\n2\"\r\n\r\nz@y.test;3\r\n").unwrap();
        let lines: Vec<u64> = t.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 5]);
    }

    #[test]
    fn file_level_errors_name_the_line() {
        assert_eq!(
            parse(b"email\nok@x.test\n\xff\n").unwrap_err(),
            "line 3: not UTF-8 (save the file as \"CSV UTF-8\")"
        );
        assert!(parse(b"name;phone\nx;y\n")
            .unwrap_err()
            .contains("no \"email\" column"));
        assert!(parse(b"email;email\n")
            .unwrap_err()
            .contains("appears twice"));
        assert!(parse(b"email;;x\n")
            .unwrap_err()
            .contains("column 2 has no name"));
        assert!(parse(b"").unwrap_err().contains("no header line"));
    }

    #[test]
    fn a_short_row_is_kept_for_the_validation() {
        let t = parse(b"email;phone\na@x.test\n").unwrap();
        assert_eq!(t.rows[0].fields, ["a@x.test"]);
    }
}

//! `audit export`: records as JSON lines (one record per line, every column) or CSV (RFC 4180,
//! header line, details as JSON text).

use super::record::Record;

pub const CSV_HEADER: &str =
    "seq,at,kind,message_ref,message_sha256,sender,recipient,details,prev_hash,hash\r\n";

pub fn json_line(r: &Record) -> String {
    let mut line = serde_json::to_string(r).unwrap_or_default();
    line.push('\n');
    line
}

pub fn csv_line(r: &Record) -> String {
    let at = crate::time::rfc3339(r.at);
    let seq = r.seq.to_string();
    let fields = [
        seq.as_str(),
        at.as_str(),
        r.kind.as_str(),
        r.message_ref.as_deref().unwrap_or(""),
        r.message_sha256.as_deref().unwrap_or(""),
        r.sender.as_deref().unwrap_or(""),
        r.recipient.as_deref().unwrap_or(""),
        r.details.as_str(),
        r.prev_hash.as_str(),
        r.hash.as_str(),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Quotes a field when it contains a comma, quote or line break (RFC 4180).
pub fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_json_details() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(
            csv_field("{\"a\":1,\"b\":2}"),
            "\"{\"\"a\"\":1,\"\"b\"\":2}\""
        );
    }
}

//! HTML escaping of text placed into HTML: the portal's pages and a bulk letter's HTML parts. A leaf:
//! it imports nothing of the gateway.

/// `s` with `& < > " '` as entities, safe in element content and in quoted attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

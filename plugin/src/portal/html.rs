//! Page layout, escaping and the two languages. Server-rendered, no JavaScript, one stylesheet. Calls
//! nothing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nl,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().get(..2).map(|p| p.to_ascii_lowercase()).as_deref() {
            Some("nl") => Some(Lang::Nl),
            Some("en") => Some(Lang::En),
            _ => None,
        }
    }
    /// The first supported language in an `Accept-Language` header (by q-value), Dutch otherwise.
    pub fn from_accept(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("");
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(l) = Lang::parse(tag) {
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, l));
                }
            }
        }
        best.map_or(Lang::Nl, |(_, l)| l)
    }
    pub fn other(self) -> Lang {
        match self {
            Lang::Nl => Lang::En,
            Lang::En => Lang::Nl,
        }
    }
    /// Dutch or English text.
    pub fn t<'a>(self, nl: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Nl => nl,
            Lang::En => en,
        }
    }
}

pub fn esc(s: &str) -> String {
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

/// A whole page. `path` is the current path (for the language switch); `body` is trusted HTML.
pub fn page(lang: Lang, path: &str, title: &str, body: &str) -> String {
    let other = lang.other();
    let switch_label = match other {
        Lang::Nl => "Nederlands",
        Lang::En => "English",
    };
    format!(
        "<!doctype html>\n<html lang=\"{code}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title} – {brand}</title>\n<link rel=\"stylesheet\" href=\"/p/static/portal.css\">\n</head>\n<body>\n\
         <header><p class=\"brand\">{brand}</p>\
         <nav aria-label=\"{langnav}\"><a href=\"{path}?lang={oc}\" hreflang=\"{oc}\" lang=\"{oc}\">{switch_label}</a></nav></header>\n\
         <main id=\"main\">\n<h1>{title}</h1>\n{body}\n</main>\n\
         <footer><p>{footer}</p></footer>\n</body>\n</html>\n",
        code = lang.code(),
        title = esc(title),
        brand = lang.t("Beveiligde e-mail", "Secure mail"),
        langnav = lang.t("Taal", "Language"),
        path = esc(path),
        oc = other.code(),
        footer = lang.t(
            "Deze pagina werkt zonder JavaScript. Berichten worden volgens NTA 7516 beveiligd verstuurd.",
            "This page works without JavaScript. Messages are sent securely according to NTA 7516."
        ),
    )
}

pub const CSS: &str = "\
:root{color-scheme:light;--fg:#1b1b1b;--accent:#004b8d;--bg:#f4f6f8}\
*{box-sizing:border-box}\
body{margin:0;font:1.05rem/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}\
header{display:flex;justify-content:space-between;align-items:center;padding:.8rem 1.2rem;background:var(--accent);color:#fff}\
header a{color:#fff}.brand{margin:0;font-weight:700}\
main{max-width:40rem;margin:1.5rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002}\
h1{font-size:1.5rem;margin-top:0}\
label{display:block;font-weight:600;margin:.8rem 0 .3rem}\
input[type=text],input[type=tel]{font-size:1.2rem;padding:.5rem;width:100%;max-width:16rem;border:2px solid #555;border-radius:.3rem}\
input:focus,button:focus,a:focus{outline:3px solid #f0a000;outline-offset:2px}\
button{margin-top:1rem;font-size:1.05rem;padding:.6rem 1.2rem;background:var(--accent);color:#fff;border:0;border-radius:.3rem;cursor:pointer}\
.error{border-left:4px solid #b00020;background:#fde8ea;padding:.6rem .8rem}\
.ok{border-left:4px solid #1b7f3b;background:#e6f4ea;padding:.6rem .8rem}\
.hint{color:#444;font-size:.95rem}\
pre{white-space:pre-wrap;word-wrap:break-word;background:#f7f7f7;padding:1rem;border-radius:.3rem}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}\
footer{text-align:center;color:#555;font-size:.85rem;padding:1rem}\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language() {
        assert_eq!(Lang::from_accept("en-GB,en;q=0.9,nl;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept("de, nl-NL;q=0.5, en;q=0.4"), Lang::Nl);
        assert_eq!(Lang::from_accept("fr"), Lang::Nl);
        assert_eq!(Lang::from_accept(""), Lang::Nl);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

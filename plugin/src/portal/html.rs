//! Page layout, escaping and the two languages. Server-rendered, no JavaScript, one stylesheet (and a
//! brand's colour as a second one). Calls nothing; reads the brand values of `config`.

use crate::config::{Accent, Brand};

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

/// HTML-escaped text ([`crate::escape::html`]).
pub fn esc(s: &str) -> String {
    crate::escape::html(s)
}

/// A whole page in the built-in look. `path` is the current path (for the language switch); `body` is
/// trusted HTML. Handlers that know the sender's brand use [`super::session::Ctx::page`] instead.
pub fn page(lang: Lang, path: &str, title: &str, body: &str) -> String {
    branded_page(lang, None, path, title, body)
}

/// A whole page in `brand`'s look (the built-in one for `None` and for what the brand leaves unset):
/// its name in the title and header, its logo, its colour (a stylesheet of its own: the CSP allows no
/// inline styles), its support contact and privacy statement in the footer.
pub fn branded_page(
    lang: Lang,
    brand: Option<&Brand>,
    path: &str,
    title: &str,
    body: &str,
) -> String {
    let other = lang.other();
    let switch_label = match other {
        Lang::Nl => "Nederlands",
        Lang::En => "English",
    };
    let name = brand.and_then(|b| b.organisation.as_ref()).map_or_else(
        || lang.t("Beveiligde e-mail", "Secure mail").to_string(),
        |o| o.as_str().to_string(),
    );
    let key = brand.map_or("", |b| b.key.as_str());
    let accent_css = match brand.and_then(|b| b.accent) {
        Some(_) => format!("<link rel=\"stylesheet\" href=\"/p/brand/{key}/brand.css\">\n"),
        None => String::new(),
    };
    let logo = match brand.and_then(|b| b.logo.as_ref()) {
        // Decorative: the name follows as text.
        Some(_) => format!("<img class=\"logo\" src=\"/p/brand/{key}/logo\" alt=\"\">"),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"{code}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title} – {name}</title>\n<link rel=\"stylesheet\" href=\"/p/static/portal.css\">\n{accent_css}</head>\n<body>\n\
         <a class=\"skip\" href=\"#main\">{skip}</a>\n\
         <header><p class=\"brand\">{logo}<span>{name}</span></p>\
         <nav aria-label=\"{langnav}\"><a href=\"{path}?lang={oc}\" hreflang=\"{oc}\" lang=\"{oc}\">{switch_label}</a></nav></header>\n\
         <main id=\"main\" tabindex=\"-1\">\n<h1>{title}</h1>\n{body}\n</main>\n\
         <footer>{footer}</footer>\n</body>\n</html>\n",
        code = lang.code(),
        title = esc(title),
        name = esc(&name),
        skip = lang.t("Naar de inhoud", "Skip to content"),
        langnav = lang.t("Taal", "Language"),
        path = esc(path),
        oc = other.code(),
        footer = footer(lang, brand),
    )
}

/// The footer: the brand's support contact and privacy statement, then the fixed line.
fn footer(lang: Lang, brand: Option<&Brand>) -> String {
    let mut out = String::new();
    if let Some(s) = brand.and_then(|b| b.support.as_ref()) {
        out.push_str(&format!(
            "<p>{} <a href=\"{}\">{}</a></p>",
            lang.t("Vragen? Neem contact op:", "Questions? Contact:"),
            esc(&s.href()),
            esc(s.text())
        ));
    }
    if let Some(u) = brand.and_then(|b| b.privacy_url.as_ref()) {
        out.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>",
            esc(u.as_str()),
            lang.t("Privacyverklaring", "Privacy statement")
        ));
    }
    out.push_str(&format!(
        "<p>{}</p>",
        lang.t(
            "Deze pagina werkt zonder JavaScript. Berichten worden volgens NTA 7516 beveiligd verstuurd.",
            "This page works without JavaScript. Messages are sent securely according to NTA 7516."
        )
    ));
    out
}

/// The stylesheet of a brand with an accent colour (`/p/brand/{key}/brand.css`).
pub fn brand_css(accent: Accent) -> String {
    format!(":root{{--accent:{}}}\n", accent.css())
}

/// The portal's one stylesheet: readable at 200 % zoom and on narrow screens (nothing wider than the
/// viewport), a visible focus ring on every control (dark outline with a white gap, so it shows on
/// white and on the accent colour), a skip link that appears on focus.
pub const CSS: &str = "\
:root{color-scheme:light;--fg:#1b1b1b;--accent:#004b8d;--bg:#f4f6f8}\
*{box-sizing:border-box}\
body{margin:0;font:1.05rem/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:anywhere}\
.skip{position:absolute;left:-100vw;top:.5rem;background:#fff;color:var(--fg);padding:.4rem .8rem;z-index:1}\
.skip:focus{left:.5rem}\
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;justify-content:space-between;align-items:center;padding:.8rem 1.2rem;background:var(--accent);color:#fff}\
header a{color:#fff}.brand{margin:0;font-weight:700;display:flex;align-items:center;gap:.6rem}\
.logo{height:2.5rem;width:auto;max-width:12rem;background:#fff;border-radius:.2rem;padding:.15rem}\
main{max-width:40rem;margin:1.5rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002}\
main a{color:var(--accent)}\
h1{font-size:1.5rem;margin-top:0}h2{font-size:1.2rem}\
label{display:block;font-weight:600;margin:.8rem 0 .3rem}\
input[type=text],input[type=tel]{font-size:1.2rem;padding:.5rem;width:100%;max-width:16rem;border:2px solid #555;border-radius:.3rem}\
input:focus,button:focus,a:focus,main:focus-visible{outline:3px solid #1b1b1b;outline-offset:2px;box-shadow:0 0 0 2px #fff}\
main:focus:not(:focus-visible){outline:none}\
button{margin-top:1rem;font-size:1.05rem;padding:.6rem 1.2rem;background:var(--accent);color:#fff;border:0;border-radius:.3rem;cursor:pointer}\
.error{border-left:4px solid #b00020;background:#fde8ea;padding:.6rem .8rem}\
.ok{border-left:4px solid #1b7f3b;background:#e6f4ea;padding:.6rem .8rem}\
.hint{color:#444;font-size:.95rem}\
pre{white-space:pre-wrap;word-wrap:break-word;background:#f7f7f7;padding:1rem;border-radius:.3rem}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}\
footer{text-align:center;color:#444;font-size:.9rem;padding:1rem}footer p{margin:.3rem 0}footer a{color:inherit}\
@media (max-width:42rem){main{margin:0;border-radius:0;box-shadow:none;padding:1rem}header{padding:.6rem 1rem}}\
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

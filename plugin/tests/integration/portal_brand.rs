//! Branding over HTTP (issue 15): a sender domain's brand on the portal pages (name, logo, colour,
//! support contact, privacy link, both languages), the brand files (`/p/brand/{key}/logo`,
//! `/p/brand/{key}/brand.css`: type, nosniff, caching, the logo's CSP, 404 for an unknown key or a
//! missing file) and the notification mails (From name, subject, signature). The shared fixture
//! ([`branded_env`]) is also what the browser tests in `portal_a11y` use.

use std::path::Path;

use hyper::{Method, StatusCode};
use stalwart_nta7516::{policy::TlsStatus, portal::brand::LOGO_CSP};

use crate::util::{self, hook_request, link_in, Backend, Env, Running, SENDER};

/// A sender of the branded domain; [`SENDER`] (`zorg.test`) has the built-in look.
pub const KLINIEK: &str = "arts@kliniek.test";
pub const KLINIEK_NAME: &str = "Kliniek Zuid";

/// The branded domain's logo: an SVG with a size of its own (so `naturalWidth` is known).
pub const SVG_LOGO: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"40\" viewBox=\"0 0 120 40\">\
<rect width=\"120\" height=\"40\" rx=\"6\" fill=\"#6a1b9a\"/>\
<text x=\"60\" y=\"27\" font-family=\"sans-serif\" font-size=\"18\" fill=\"#fff\" text-anchor=\"middle\">KZ</text></svg>\n";

/// The repository's portal screenshot serves as a real PNG logo.
fn png_logo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/portal.png")
}

/// `[branding]` for the tests: nothing global (so `zorg.test` keeps the built-in look), `kliniek.test`
/// with every key and an SVG logo, `lab.test` with a PNG logo. Writes the SVG into `dir`.
pub fn branding_toml(dir: &Path) -> String {
    let svg = dir.join("kliniek.svg");
    std::fs::write(&svg, SVG_LOGO).unwrap();
    format!(
        "[organisation]\nlocal_domains = [\"zorg.test\", \"kliniek.test\", \"lab.test\"]\n\
         [[branding.domain]]\ndomain = \"kliniek.test\"\norganisation = \"{KLINIEK_NAME}\"\n\
         logo = \"{}\"\naccent = \"#6a1b9a\"\nsupport = \"+31 20 123 45 67\"\n\
         privacy_url = \"https://kliniek.test/privacy\"\n\
         [[branding.domain]]\ndomain = \"lab.test\"\norganisation = \"Lab\"\nlogo = \"{}\"\n\
         support = \"helpdesk@lab.test\"\n",
        svg.display(),
        png_logo().display(),
    )
}

/// An environment with [`branding_toml`]; `insecure.test` recipients are held for the portal.
pub async fn branded_env(sms_endpoint: Option<String>) -> Env {
    let mut env = Env::new(Backend::Sqlite, sms_endpoint, "").await;
    env.extra = branding_toml(env.dir.path());
    env.tls.set("insecure.test", TlsStatus::Insecure);
    env
}

/// Holds one message from `sender` for `rcpt`.
pub async fn send(gw: &Running, sender: &str, rcpt: &str, n: usize) {
    gw.hook(&hook_request(
        sender,
        &[rcpt],
        &[
            ("From", sender),
            ("To", rcpt),
            ("Subject", "Uitslag"),
            ("Message-ID", &format!("<brand-{n}@test>")),
        ],
        "Beste ontvanger,\r\n\r\nDe uitslag is binnen.\r\n",
    ))
    .await;
}

async fn get(url: &str) -> (StatusCode, hyper::HeaderMap, String) {
    let (s, h, b) = util::http(Method::GET, url, &[], vec![]).await;
    (s, h, String::from_utf8_lossy(&b).to_string())
}

fn header<'a>(h: &'a hyper::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn pages_and_mails_carry_the_sender_domains_brand() {
    let env = branded_env(None).await;
    let gw = env.start().await;
    let (branded, plain) = ("piet@insecure.test", "eva@insecure.test");
    gw.set_phone(branded, "+31611110001").await;
    gw.set_phone(plain, "+31611110002").await;
    send(&gw, KLINIEK, branded, 1).await;
    send(&gw, SENDER, plain, 2).await;
    send(&gw, KLINIEK, "nieuw@insecure.test", 3).await;
    let mails = env.notify.wait_for(3, 10).await;
    let text = |rcpt: &str| {
        let m = mails.iter().find(|m| m.rcpt_to == [rcpt]).unwrap();
        String::from_utf8(m.data.clone()).unwrap()
    };

    // The recipient's notice: the organisation in From and Subject, the signature in both languages.
    let notice = text(branded);
    assert!(
        notice.contains("\r\nFrom: \"Kliniek Zuid\" <nta7516@zorg.test>\r\n"),
        "{notice}"
    );
    assert!(
        notice.contains(
            "\r\nSubject: Kliniek Zuid: Beveiligd bericht voor u / Secure message for you\r\n"
        ),
        "{notice}"
    );
    assert!(
        notice.contains("\r\n-- \r\nKliniek Zuid\r\nVragen? / Questions? +31 20 123 45 67\r\n"),
        "{notice}"
    );
    assert!(
        notice.contains("Privacyverklaring / Privacy statement: https://kliniek.test/privacy\r\n")
    );
    assert!(
        notice.contains("Content-Transfer-Encoding: 7bit"),
        "{notice}"
    );
    // The built-in look: the configured display name, no signature.
    let default = text(plain);
    assert!(
        default.contains("\r\nSubject: Beveiligd bericht voor u / Secure message for you\r\n"),
        "{default}"
    );
    assert!(
        !default.contains("Kliniek") && !default.contains("\r\n-- \r\n"),
        "{default}"
    );
    // The sender's "enter the number" mail goes to a kliniek.test sender: branded too.
    let ask = text(KLINIEK);
    assert!(
        ask.contains("Subject: Kliniek Zuid: Mobiel nummer nodig"),
        "{ask}"
    );
    assert!(ask.contains("\r\n-- \r\nKliniek Zuid\r\n"), "{ask}");

    let brand = gw.gw.brands.for_domain("kliniek.test").clone();
    let key = &brand.key;
    let link = link_in(notice.as_bytes(), "p");
    let (s, _, page) = get(&link).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(
        page.contains("<title>Beveiligd bericht – Kliniek Zuid</title>"),
        "{page}"
    );
    assert!(page.contains("<span>Kliniek Zuid</span>"), "{page}");
    assert!(!page.contains("Beveiligde e-mail"), "{page}");
    assert!(
        page.contains(&format!(
            "<link rel=\"stylesheet\" href=\"/p/brand/{key}/brand.css\">"
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<img class=\"logo\" src=\"/p/brand/{key}/logo\" alt=\"\">"
        )),
        "{page}"
    );
    assert!(
        page.contains("Vragen? Neem contact op: <a href=\"tel:+31201234567\">+31 20 123 45 67</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"https://kliniek.test/privacy\">Privacyverklaring</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a class=\"skip\" href=\"#main\">Naar de inhoud</a>"),
        "{page}"
    );
    let (_, _, en) = get(&format!("{link}?lang=en")).await;
    assert!(
        en.contains("<title>Secure message – Kliniek Zuid</title>"),
        "{en}"
    );
    assert!(
        en.contains("Questions? Contact:") && en.contains(">Privacy statement</a>"),
        "{en}"
    );
    // The code page knows the brand through the same link.
    let (_, _, code) = get(&format!("{link}/code")).await;
    assert!(code.contains("<span>Kliniek Zuid</span>"), "{code}");
    // The sender's phone page: the brand of that challenge's sender.
    let (_, _, phone) = get(&link_in(ask.as_bytes(), "s")).await;
    assert!(phone.contains("<span>Kliniek Zuid</span>"), "{phone}");

    // The built-in look for zorg.test: no brand files linked.
    let (_, _, page) = get(&link_in(default.as_bytes(), "p")).await;
    assert!(page.contains("<span>Beveiligde e-mail</span>"), "{page}");
    assert!(!page.contains("/p/brand/"), "{page}");
    assert!(!page.contains("Neem contact op"), "{page}");
}

#[tokio::test]
async fn brand_files_have_their_type_headers_and_404s() {
    let env = branded_env(None).await;
    let gw = env.start().await;
    let brands = &gw.gw.brands;
    let kliniek = brands.for_domain("kliniek.test").key.clone();
    let lab = brands.for_domain("lab.test").key.clone();
    let plain = brands.default_brand().key.clone();

    let (s, h, body) = util::http(
        Method::GET,
        &gw.url(&format!("/p/brand/{kliniek}/logo")),
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "image/svg+xml");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&h, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&h, "content-security-policy"), LOGO_CSP);
    assert!(LOGO_CSP.contains("default-src 'none'") && LOGO_CSP.contains("sandbox"));
    assert_eq!(body, SVG_LOGO.as_bytes());

    let (s, h, body) = util::http(
        Method::GET,
        &gw.url(&format!("/p/brand/{lab}/logo")),
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "image/png");
    assert_eq!(body, std::fs::read(png_logo()).unwrap());

    let (s, h, css) = get(&gw.url(&format!("/p/brand/{kliniek}/brand.css"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "text/css; charset=utf-8");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert!(header(&h, "cache-control").contains("immutable"));
    assert_eq!(css, ":root{--accent:#6a1b9a}\n");
    // The pages themselves stay uncached, under the portal's own CSP.
    let (_, h, _) = get(&gw.url("/p/static/portal.css")).await;
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert!(header(&h, "content-security-policy").contains("style-src 'self'"));

    // Unknown keys, a brand without a logo or a colour, a key that is not one: the portal's 404.
    for path in [
        "/p/brand/0000000000000000/logo".to_string(),
        "/p/brand/0000000000000000/brand.css".to_string(),
        format!("/p/brand/{plain}/logo"),
        format!("/p/brand/{plain}/brand.css"),
        format!("/p/brand/{lab}/brand.css"),
        "/p/brand/..%2F..%2Fetc%2Fpasswd/logo".to_string(),
    ] {
        let (s, h, body) = get(&gw.url(&path)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header(&h, "content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert!(body.contains("Link niet gevonden"), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_bad_logo_or_colour_stops_the_start_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("logo.png");
    std::fs::write(&gif, b"GIF89a\x01\x00\x01\x00").unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[branding]\norganisation = \"Zorg\"\nlogo = \"logo.png\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stalwart-nta7516"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("branding.logo"), "{err}");
    assert!(err.contains("not a PNG, JPEG or SVG image"), "{err}");
    std::fs::write(&config, "[branding]\n\naccent = \"#ffcc00\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stalwart-nta7516"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("line 3, column 10: branding.accent: #ffcc00 has a contrast of"),
        "{err}"
    );
}

use std::path::Path;

use super::*;
use crate::config::Config;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("x.toml"), std::iter::empty()).map_err(|e| e.to_string())
}

/// A 1×1 PNG's first bytes: signature and IHDR (enough for the type check).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

#[test]
fn accent_must_be_rrggbb() {
    for bad in ["004b8d", "#04b8d", "#004b8dff", "#00xx8d", "blue"] {
        let err = parse(&format!("[branding]\naccent = \"{bad}\"\n")).unwrap_err();
        assert!(err.contains("branding.accent"), "{err}");
        assert!(err.contains("line 2, column 10"), "{err}");
        assert!(err.contains("#rrggbb"), "{err}");
    }
    let c = parse("[branding]\naccent = \"#004B8D\"\n").unwrap();
    assert_eq!(c.branding.accent.unwrap().css(), "#004b8d");
}

#[test]
fn accent_with_too_little_contrast_is_refused() {
    // Yellow and a light grey: white text on them is unreadable.
    for bad in ["#ffcc00", "#999999"] {
        let err = parse(&format!("[branding]\naccent = \"{bad}\"\n")).unwrap_err();
        assert!(err.contains("branding.accent"), "{err}");
        assert!(err.contains("line 2, column 10"), "{err}");
        assert!(err.contains("WCAG AA needs at least 4.5:1"), "{err}");
        assert!(err.contains("choose a darker colour"), "{err}");
    }
    // #767676 is the lightest grey that passes on white (4.54:1); #777777 fails (4.48:1).
    assert!(parse("[branding]\naccent = \"#767676\"\n").is_ok());
    assert!(parse("[branding]\naccent = \"#777777\"\n").is_err());
    let black: Accent = "#000000".parse().unwrap();
    assert!((black.contrast_with_white() - 21.0).abs() < 0.01);
    // In a domain entry the key and its own line are named.
    let err = parse(
        "[branding]\naccent = \"#004b8d\"\n[[branding.domain]]\ndomain = \"zorg.test\"\naccent = \"#eeeeee\"\n",
    )
    .unwrap_err();
    assert!(err.contains("branding.domain.accent"), "{err}");
    assert!(err.contains("line 5, column 10"), "{err}");
}

#[test]
fn unknown_keys_are_refused_with_their_place() {
    let err = parse("[branding]\norganisation = \"Zorg\"\ncolour = \"#004b8d\"\n").unwrap_err();
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!(err.contains("line 3, column 1"), "{err}");
    let err =
        parse("[[branding.domain]]\ndomain = \"zorg.test\"\nlogo_file = \"x.png\"\n").unwrap_err();
    assert!(err.contains("unknown field `logo_file`"), "{err}");
    assert!(err.contains("line 3, column 1"), "{err}");
    let err = parse("[[branding.domain]]\norganisation = \"Zorg\"\n").unwrap_err();
    assert!(err.contains("missing field `domain`"), "{err}");
}

#[test]
fn support_privacy_url_and_name_are_checked() {
    let c = parse(
        "[branding]\norganisation = \" Zorggroep Één \"\nsupport = \"+31 20 123 45 67\"\n\
         privacy_url = \"https://zorg.test/privacy\"\n",
    )
    .unwrap();
    let b = &c.branding;
    assert_eq!(b.organisation.as_ref().unwrap().as_str(), "Zorggroep Één");
    assert_eq!(b.support, Some(Support::Phone("+31 20 123 45 67".into())));
    assert_eq!(b.support.as_ref().unwrap().href(), "tel:+31201234567");
    assert_eq!(
        b.privacy_url.as_ref().unwrap().as_str(),
        "https://zorg.test/privacy"
    );
    let mail: Support = "helpdesk@zorg.test".parse().unwrap();
    assert_eq!(mail.href(), "mailto:helpdesk@zorg.test");
    for (text, key, why) in [
        (
            "support = \"call us\"",
            "branding.support",
            "neither an e-mail address nor a phone number",
        ),
        ("support = \"a@b\"", "branding.support", "neither"),
        ("support = \"12\"", "branding.support", "neither"),
        (
            "privacy_url = \"http://zorg.test/privacy\"",
            "branding.privacy_url",
            "not an https:// URL",
        ),
        (
            "privacy_url = \"https://zorg.test/a b\"",
            "branding.privacy_url",
            "no spaces",
        ),
        ("privacy_url = \"https://\"", "branding.privacy_url", ""),
        ("organisation = \"\"", "branding.organisation", "1 to 80"),
        (
            "organisation = \"Zorg\\r\\nBcc: x@evil.test\"",
            "branding.organisation",
            "line breaks",
        ),
    ] {
        let err = parse(&format!("[branding]\n{text}\n")).unwrap_err();
        assert!(err.contains(key), "{text}: {err}");
        assert!(err.contains("line 2, column"), "{text}: {err}");
        assert!(err.contains(why), "{text}: {err}");
    }
}

#[test]
fn domain_entries_are_local_domains_each_once() {
    let local = "[organisation]\nlocal_domains = [\"zorg.test\", \"kliniek.test\"]\n";
    let err = parse(&format!(
        "{local}[[branding.domain]]\ndomain = \"other.test\"\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("not one of organisation.local_domains"),
        "{err}"
    );
    let err = parse(&format!(
        "{local}[[branding.domain]]\ndomain = \"zorg.test\"\n[[branding.domain]]\ndomain = \"ZORG.test\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("listed twice"), "{err}");
    let err = parse("[[branding.domain]]\ndomain = \"@zorg.test\"\n").unwrap_err();
    assert!(err.contains("not a domain name"), "{err}");
}

#[test]
fn domains_override_the_global_values() {
    let c = parse(
        "[branding]\norganisation = \"Zorggroep\"\naccent = \"#004b8d\"\nsupport = \"help@zorg.test\"\n\
         [[branding.domain]]\ndomain = \"Kliniek.test\"\norganisation = \"Kliniek\"\naccent = \"#6a1b9a\"\n",
    )
    .unwrap();
    let brands = Brands::load(&c.branding).unwrap();
    let k = brands.for_sender("arts@kliniek.TEST");
    assert_eq!(k.organisation.as_ref().unwrap().as_str(), "Kliniek");
    assert_eq!(k.accent.unwrap().css(), "#6a1b9a");
    assert_eq!(
        k.support,
        Some(Support::Email("help@zorg.test".into())),
        "inherited"
    );
    let z = brands.for_sender("arts@zorg.test");
    assert_eq!(z.organisation.as_ref().unwrap().as_str(), "Zorggroep");
    assert!(Arc::ptr_eq(z, brands.default_brand()));
    assert_ne!(k.key, z.key);
    assert!(Arc::ptr_eq(brands.by_key(&k.key).unwrap(), k));
    assert!(brands.by_key("0000000000000000").is_none());
    assert_eq!(k.key.len(), 16);
    assert!(Brands::default().default_brand().is_plain());
}

#[test]
fn logo_files_are_checked_by_type_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let load = |path: &Path| {
        let c = BrandingConfig {
            logo: Some(path.to_path_buf()),
            ..Default::default()
        };
        Brands::load(&c).map_err(|e| e.to_string())
    };
    let png = write("logo.png", PNG);
    let b = load(&png).unwrap();
    assert_eq!(b.default_brand().logo.as_ref().unwrap().kind, LogoKind::Png);
    let jpeg = write("logo.jpg", b"\xff\xd8\xff\xe0\0\x10JFIF\0");
    assert_eq!(
        load(&jpeg)
            .unwrap()
            .default_brand()
            .logo
            .as_ref()
            .unwrap()
            .kind,
        LogoKind::Jpeg
    );
    let svg = write(
        "logo.svg",
        b"<?xml version=\"1.0\"?>\n<!-- logo -->\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"#004b8d\"/></svg>",
    );
    assert_eq!(
        load(&svg)
            .unwrap()
            .default_brand()
            .logo
            .as_ref()
            .unwrap()
            .kind,
        LogoKind::Svg
    );

    // A GIF named .png: the first bytes decide.
    let gif = write("fake.png", b"GIF89a\x01\0\x01\0");
    let err = load(&gif).unwrap_err();
    assert!(err.contains("branding.logo"), "{err}");
    assert!(err.contains("fake.png"), "{err}");
    assert!(err.contains("not a PNG, JPEG or SVG"), "{err}");
    // Too big, even with a good header.
    let mut big = PNG.to_vec();
    big.resize(MAX_LOGO_BYTES as usize + 1, 0);
    let big = write("big.png", &big);
    let err = load(&big).unwrap_err();
    assert!(err.contains("larger than the 256 KiB"), "{err}");
    // Active SVG content.
    for (name, svg) in [
        (
            "script.svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        ),
        (
            "onload.svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" onload = \"alert(1)\"></svg>",
        ),
        (
            "link.svg",
            "<svg><a href=\"javascript:alert(1)\"><text>x</text></a></svg>",
        ),
        (
            "html.svg",
            "<svg><foreignObject><p>x</p></foreignObject></svg>",
        ),
        ("xxe.svg", "<!DOCTYPE svg [<!ENTITY x \"y\">]><svg></svg>"),
    ] {
        let err = load(&write(name, svg.as_bytes())).unwrap_err();
        assert!(
            err.contains("active content") || err.contains("not a PNG"),
            "{name}: {err}"
        );
    }
    // `one=` or `font=` are not handlers; plain text is not an SVG.
    assert!(load(&write(
        "ok.svg",
        b"<svg tone=\"1\" font-family=\"x\"></svg>"
    ))
    .is_ok());
    assert!(load(&write("text.svg", b"hello <svg></svg>")).is_err());
    // A missing file names the key of its domain entry.
    let mut c = BrandingConfig::default();
    c.domain.push(DomainBranding {
        domain: "zorg.test".into(),
        organisation: None,
        logo: Some(dir.path().join("missing.png")),
        accent: None,
        support: None,
        privacy_url: None,
    });
    let err = Brands::load(&c).unwrap_err().to_string();
    assert!(err.contains("branding.domain \"zorg.test\" logo"), "{err}");
    assert!(err.contains("missing.png"), "{err}");
}

#[test]
fn load_reads_relative_logos_from_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("logo.png"), PNG).unwrap();
    std::fs::write(dir.path().join("bad.png"), b"not an image").unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, "[branding]\nlogo = \"logo.png\"\n").unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.branding.logo.as_deref(),
        Some(dir.path().join("logo.png").as_path())
    );
    std::fs::write(&path, "[branding]\nlogo = \"bad.png\"\n").unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("branding.logo"), "{err}");
    assert!(err.contains("bad.png"), "{err}");
}

//! `[branding]`: the organisation's look on the portal and in the notification mails — its name, logo,
//! accent colour, support contact and privacy statement — globally and per sender domain
//! (`[[branding.domain]]`, each key overriding the global one for mail from that domain).
//!
//! Every value is checked once and kept typed: [`OrgName`] (printable, no line breaks: it goes into mail
//! headers), [`Accent`] (`#rrggbb` with at least WCAG AA contrast, 4.5:1, against white, because the
//! portal writes white text on it and uses it for links on white), [`Support`] (an e-mail address or a
//! phone number), [`HttpsUrl`]. A bad value is refused while parsing, with the key, line and column.
//!
//! The logo is a file (PNG, JPEG or SVG by its first bytes, at most [`MAX_LOGO_BYTES`]); it is read and
//! checked by [`Brands::load`], which [`super::Config::load`] and the gateway's start call, so a bad
//! file is a configuration error naming its key. An SVG with scripts, event handlers, `javascript:`
//! URLs, `foreignObject` or entity declarations is refused (it is also served with a CSP that forbids
//! scripts, and the portal only ever shows it through `<img>`, where no script runs).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// The largest logo file accepted.
pub const MAX_LOGO_BYTES: u64 = 256 * 1024;

/// WCAG 2 AA for normal text.
const MIN_CONTRAST: f64 = 4.5;

/// `[branding]` as written: the global values and the per-domain entries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrandingConfig {
    /// The organisation's name: header and title of the portal, display name and subject of its mails.
    #[serde(deserialize_with = "organisation")]
    pub organisation: Option<OrgName>,
    /// A PNG, JPEG or SVG file shown in the portal's header.
    pub logo: Option<PathBuf>,
    /// `#rrggbb`: header, buttons and links.
    #[serde(deserialize_with = "accent")]
    pub accent: Option<Accent>,
    /// Where recipients ask questions: an e-mail address or a phone number.
    #[serde(deserialize_with = "support")]
    pub support: Option<Support>,
    /// The privacy statement (`https://` only).
    #[serde(deserialize_with = "privacy_url")]
    pub privacy_url: Option<HttpsUrl>,
    /// Per sender domain: any of the keys above, for mail from `domain`.
    pub domain: Vec<DomainBranding>,
}

/// One `[[branding.domain]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainBranding {
    /// The sender domain (one of `organisation.local_domains` when those are set).
    pub domain: String,
    #[serde(default, deserialize_with = "domain_organisation")]
    pub organisation: Option<OrgName>,
    #[serde(default)]
    pub logo: Option<PathBuf>,
    #[serde(default, deserialize_with = "domain_accent")]
    pub accent: Option<Accent>,
    #[serde(default, deserialize_with = "domain_support")]
    pub support: Option<Support>,
    #[serde(default, deserialize_with = "domain_privacy_url")]
    pub privacy_url: Option<HttpsUrl>,
}

/// `fn name(d) -> Option<T>`, naming `key` in the error (the parser adds line and column).
macro_rules! keyed {
    ($($name:ident: $t:ty = $key:literal;)*) => {$(
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
            super::named::<$t, D>($key, d).map(Some)
        }
    )*};
}

keyed! {
    organisation: OrgName = "branding.organisation";
    accent: Accent = "branding.accent";
    support: Support = "branding.support";
    privacy_url: HttpsUrl = "branding.privacy_url";
    domain_organisation: OrgName = "branding.domain.organisation";
    domain_accent: Accent = "branding.domain.accent";
    domain_support: Support = "branding.domain.support";
    domain_privacy_url: HttpsUrl = "branding.domain.privacy_url";
}

/// Parses a string-valued type through `FromStr`, the error as the message.
macro_rules! from_string {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

from_string!(OrgName, Accent, Support, HttpsUrl);

/// The organisation's display name: 1–80 characters, no control characters (so never a line break in
/// a mail header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName(String);

impl std::str::FromStr for OrgName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 80 {
            return Err("the organisation's name must be 1 to 80 characters".into());
        }
        if s.chars().any(char::is_control) {
            return Err(
                "the organisation's name may not contain control characters or line breaks".into(),
            );
        }
        Ok(OrgName(s.to_string()))
    }
}

impl OrgName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The accent colour, `#rrggbb`, readable with white text on it (WCAG AA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accent {
    rgb: [u8; 3],
}

impl std::str::FromStr for Accent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("{s:?} is not a colour of the form #rrggbb"))?;
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex");
        let accent = Accent {
            rgb: [byte(0), byte(2), byte(4)],
        };
        let ratio = accent.contrast_with_white();
        if ratio < MIN_CONTRAST {
            return Err(format!(
                "{s} has a contrast of {ratio:.2}:1 with white; the portal writes white text on the accent \
                 colour and uses it for links on white, so WCAG AA needs at least 4.5:1: choose a darker colour"
            ));
        }
        Ok(accent)
    }
}

impl Accent {
    /// `#rrggbb`, lower case.
    pub fn css(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.rgb[0], self.rgb[1], self.rgb[2])
    }

    /// WCAG 2 relative luminance.
    fn luminance(&self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.rgb[0])
            + 0.7152 * channel(self.rgb[1])
            + 0.0722 * channel(self.rgb[2])
    }

    /// The WCAG contrast ratio against white (1 to 21).
    pub fn contrast_with_white(&self) -> f64 {
        1.05 / (self.luminance() + 0.05)
    }
}

/// Where a recipient can ask questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// An e-mail address (shown as a `mailto:` link).
    Email(String),
    /// A phone number as written, e.g. `+31 20 123 4567` (shown as a `tel:` link).
    Phone(String),
}

impl std::str::FromStr for Support {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is neither an e-mail address nor a phone number");
        if let Some((local, domain)) = s.split_once('@') {
            let local_ok = !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
            let domain_ok = domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            return (local_ok && domain_ok)
                .then(|| Support::Email(s.to_string()))
                .ok_or_else(bad);
        }
        let digits = s.chars().filter(char::is_ascii_digit).count();
        let phone_chars = s
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || " -()".contains(c) || (c == '+' && i == 0));
        (phone_chars && (6..=20).contains(&digits))
            .then(|| Support::Phone(s.to_string()))
            .ok_or_else(bad)
    }
}

impl Support {
    /// The contact as written.
    pub fn text(&self) -> &str {
        match self {
            Support::Email(s) | Support::Phone(s) => s,
        }
    }

    /// `mailto:…` or `tel:…` (digits and a leading `+` only).
    pub fn href(&self) -> String {
        match self {
            Support::Email(s) => format!("mailto:{s}"),
            Support::Phone(s) => {
                let n: String = s
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '+')
                    .collect();
                format!("tel:{n}")
            }
        }
    }
}

/// An `https://` URL with a host, without spaces, quotes or angle brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl(String);

impl std::str::FromStr for HttpsUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{s:?} {why}");
        if !s.starts_with("https://") {
            return Err(bad("is not an https:// URL"));
        }
        if s.len() > 2_000
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\".contains(c))
        {
            return Err(bad(
                "is not a plain URL (no spaces, quotes or angle brackets)",
            ));
        }
        let uri: axum::http::Uri = s.parse().map_err(|_| bad("is not a valid URL"))?;
        match uri.host() {
            Some(h) if !h.is_empty() && uri.scheme_str() == Some("https") => {
                Ok(HttpsUrl(s.to_string()))
            }
            _ => Err(bad("has no host")),
        }
    }
}

impl HttpsUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A logo's image type, by its first bytes (never by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoKind {
    Png,
    Jpeg,
    Svg,
}

impl LogoKind {
    pub fn content_type(self) -> &'static str {
        match self {
            LogoKind::Png => "image/png",
            LogoKind::Jpeg => "image/jpeg",
            LogoKind::Svg => "image/svg+xml",
        }
    }

    /// The type of `bytes`, or why it is not an accepted image.
    pub fn sniff(bytes: &[u8]) -> Result<LogoKind, String> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return match bytes.get(12..16) {
                Some(b"IHDR") => Ok(LogoKind::Png),
                _ => Err("a damaged PNG file (no IHDR header)".into()),
            };
        }
        if bytes.starts_with(b"\xff\xd8\xff") {
            return Ok(LogoKind::Jpeg);
        }
        let text = std::str::from_utf8(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes))
            .map_err(|_| "not a PNG, JPEG or SVG image (by its first bytes)".to_string())?;
        if !starts_with_svg(text) {
            return Err("not a PNG, JPEG or SVG image (by its first bytes)".into());
        }
        let lower = text.to_ascii_lowercase();
        for bad in [
            "<script",
            "javascript:",
            "<foreignobject",
            "<!entity",
            "<iframe",
            "<embed",
            "<object",
        ] {
            if lower.contains(bad) {
                return Err(format!(
                    "an SVG with {bad}…: logos may not contain active content"
                ));
            }
        }
        if has_event_handler(&lower) {
            return Err("an SVG with an event-handler attribute (on…=): logos may not contain active content".into());
        }
        Ok(LogoKind::Svg)
    }
}

/// Whether the text's first element (after an XML declaration, comments and a doctype) is `<svg`.
fn starts_with_svg(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        let skip = if rest.starts_with("<?xml") {
            rest.find("?>").map(|i| i + 2)
        } else if rest.starts_with("<!--") {
            rest.find("-->").map(|i| i + 3)
        } else if rest.starts_with("<!DOCTYPE") || rest.starts_with("<!doctype") {
            rest.find('>').map(|i| i + 1)
        } else {
            break;
        };
        match skip {
            Some(i) => rest = rest[i..].trim_start(),
            None => return false,
        }
    }
    rest.strip_prefix("<svg")
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_whitespace() || c == '>')
}

/// ` onload=`, `\ton click =`: an attribute name starting with `on` right after whitespace.
fn has_event_handler(lower: &str) -> bool {
    let b = lower.as_bytes();
    (1..b.len()).any(|i| {
        b[i - 1].is_ascii_whitespace() && b[i..].starts_with(b"on") && {
            let name_end = b[i + 2..]
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .map_or(b.len(), |p| i + 2 + p);
            name_end > i + 2
                && b[name_end..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'=')
        }
    })
}

/// A checked logo file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    pub kind: LogoKind,
    pub bytes: Vec<u8>,
}

impl Logo {
    /// Reads and checks `path`; errors name `key` and the file.
    pub fn read(path: &Path, key: &str) -> Result<Logo, ConfigError> {
        let err = |why: String| ConfigError::Invalid(format!("{key} {}: {why}", path.display()));
        let size = std::fs::metadata(path)
            .map_err(|e| err(e.to_string()))?
            .len();
        if size > MAX_LOGO_BYTES {
            return Err(err(format!(
                "{size} bytes is larger than the {} KiB a logo may have",
                MAX_LOGO_BYTES / 1024
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        if bytes.len() as u64 > MAX_LOGO_BYTES {
            return Err(err("the file grew while it was read".into()));
        }
        let kind = LogoKind::sniff(&bytes).map_err(err)?;
        Ok(Logo { kind, bytes })
    }
}

/// One resolved look: a domain's values over the global ones; `None` where neither sets one (the
/// portal's and the mails' built-in texts and colour apply).
#[derive(Debug, Clone, PartialEq)]
pub struct Brand {
    /// Names this brand in URLs (`/p/brand/{key}/…`): a hash of its content, so a changed logo or
    /// colour gets a new URL and the old one can be cached for good.
    pub key: String,
    pub organisation: Option<OrgName>,
    pub logo: Option<Logo>,
    pub accent: Option<Accent>,
    pub support: Option<Support>,
    pub privacy_url: Option<HttpsUrl>,
}

impl Brand {
    fn new(
        organisation: Option<OrgName>,
        logo: Option<Logo>,
        accent: Option<Accent>,
        support: Option<Support>,
        privacy_url: Option<HttpsUrl>,
    ) -> Brand {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            organisation.as_ref().map(OrgName::as_str),
            accent.map(|a| a.css()).as_deref(),
            support.as_ref().map(Support::text),
            privacy_url.as_ref().map(HttpsUrl::as_str),
        ] {
            let part = part.unwrap_or("");
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        ctx.update(logo.as_ref().map_or(&[][..], |l| &l.bytes));
        let key = hex::encode(&ctx.finish().as_ref()[..8]);
        Brand {
            key,
            organisation,
            logo,
            accent,
            support,
            privacy_url,
        }
    }

    /// Whether anything is configured (else the built-in look applies unchanged).
    pub fn is_plain(&self) -> bool {
        self.organisation.is_none()
            && self.logo.is_none()
            && self.accent.is_none()
            && self.support.is_none()
            && self.privacy_url.is_none()
    }
}

/// Every configured look, by sender domain and by URL key.
#[derive(Debug, Clone)]
pub struct Brands {
    default: Arc<Brand>,
    domains: HashMap<String, Arc<Brand>>,
}

impl Default for Brands {
    fn default() -> Self {
        Brands {
            default: Arc::new(Brand::new(None, None, None, None, None)),
            domains: HashMap::new(),
        }
    }
}

impl Brands {
    /// Reads and checks the logo files and resolves each domain over the global values.
    pub fn load(c: &BrandingConfig) -> Result<Brands, ConfigError> {
        let logo = c
            .logo
            .as_deref()
            .map(|p| Logo::read(p, "branding.logo"))
            .transpose()?;
        let default = Arc::new(Brand::new(
            c.organisation.clone(),
            logo.clone(),
            c.accent,
            c.support.clone(),
            c.privacy_url.clone(),
        ));
        let mut domains = HashMap::new();
        for d in &c.domain {
            let key = format!("branding.domain {:?} logo", d.domain);
            let own_logo = d.logo.as_deref().map(|p| Logo::read(p, &key)).transpose()?;
            let brand = Brand::new(
                d.organisation.clone().or_else(|| c.organisation.clone()),
                own_logo.or_else(|| logo.clone()),
                d.accent.or(c.accent),
                d.support.clone().or_else(|| c.support.clone()),
                d.privacy_url.clone().or_else(|| c.privacy_url.clone()),
            );
            domains.insert(d.domain.to_ascii_lowercase(), Arc::new(brand));
        }
        Ok(Brands { default, domains })
    }

    /// The global look (also for a sender domain without an entry).
    pub fn default_brand(&self) -> &Arc<Brand> {
        &self.default
    }

    /// The look of mail from `domain`.
    pub fn for_domain(&self, domain: &str) -> &Arc<Brand> {
        self.domains
            .get(&domain.to_ascii_lowercase())
            .unwrap_or(&self.default)
    }

    /// The look of mail from the address `sender`.
    pub fn for_sender(&self, sender: &str) -> &Arc<Brand> {
        match sender.rsplit_once('@') {
            Some((_, domain)) => self.for_domain(domain),
            None => &self.default,
        }
    }

    /// The look whose URL key is `key`.
    pub fn by_key(&self, key: &str) -> Option<&Arc<Brand>> {
        std::iter::once(&self.default)
            .chain(self.domains.values())
            .find(|b| b.key == key)
    }
}

impl BrandingConfig {
    /// Domain entries: a plain domain, each once, one of the local domains when those are listed.
    pub(super) fn validate(&self, local_domains: &[String]) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for d in &self.domain {
            let name = d.domain.to_ascii_lowercase();
            let plain = !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !plain {
                return Err(ConfigError::Invalid(format!(
                    "[[branding.domain]] domain {:?} is not a domain name",
                    d.domain
                )));
            }
            if !seen.insert(name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "[[branding.domain]] domain {:?} is listed twice",
                    d.domain
                )));
            }
            if !local_domains.is_empty()
                && !local_domains.iter().any(|l| l.eq_ignore_ascii_case(&name))
            {
                return Err(ConfigError::Invalid(format!(
                    "[[branding.domain]] domain {:?} is not one of organisation.local_domains",
                    d.domain
                )));
            }
        }
        Ok(())
    }

    /// Makes relative logo paths `base/<path>`.
    pub(super) fn resolve_relative(&mut self, base: &Path) {
        let logos =
            std::iter::once(&mut self.logo).chain(self.domain.iter_mut().map(|d| &mut d.logo));
        for p in logos.flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

#[cfg(test)]
#[path = "branding_tests.rs"]
mod tests;

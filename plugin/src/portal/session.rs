//! The request context of every portal page ([`Ctx`]: language, cookies, client address, the answers
//! every page shares) and the portal session (a cookie bound to one recipient, checked by
//! [`authorised`]), and the link lookup ([`challenge_for`]). Calls `challenge`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Query},
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};

use super::html::{branded_page, esc, Lang};
use crate::{
    challenge::{self, Challenge, Purpose},
    config::Brand,
    Gateway,
};

/// Request facts every page needs: language, cookies, client IP, the brand pages are drawn in.
pub struct Ctx {
    pub lang: Lang,
    pub cookies: HashMap<String, String>,
    /// The TCP peer and the `X-Forwarded-For` header it sent (the client's address for the SMS limit
    /// per IP is derived from them with the configured proxies: [`Ctx::client_ip`]).
    peer: Option<IpAddr>,
    forwarded_for: Option<String>,
    /// A language chosen with `?lang=` (remembered in a cookie).
    lang_chosen: Option<Lang>,
    secure: bool,
    /// The look of the pages: the global brand, or the sender domain's once a handler knows the
    /// challenge ([`Ctx::with_brand`]).
    brand: Arc<Brand>,
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy (entries to its left are the client's own claims
/// and could be forged). A malformed entry stops the walk at the last trusted hop's view.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> String {
    let Some(mut ip) = peer else {
        return "unknown".into();
    };
    if let Some(xff) = forwarded_for {
        for entry in xff.rsplit(',') {
            if !trusted.contains(&ip) {
                break;
            }
            match entry.trim().parse::<IpAddr>() {
                Ok(hop) => ip = hop,
                Err(_) => break,
            }
        }
    }
    ip.to_string()
}

impl FromRequestParts<Arc<Gateway>> for Ctx {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Ctx, Self::Rejection> {
        let cookies: HashMap<String, String> = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
            .map(|Query(q)| q)
            .unwrap_or_default();
        let lang_chosen = query.get("lang").and_then(|l| Lang::parse(l));
        let lang = lang_chosen
            .or_else(|| cookies.get("nta_lang").and_then(|l| Lang::parse(l)))
            .unwrap_or_else(|| {
                Lang::from_accept(
                    parts
                        .headers
                        .get(header::ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or(""),
                )
            });
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded_for = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>();
        Ok(Ctx {
            lang,
            cookies,
            peer,
            forwarded_for: (!forwarded_for.is_empty()).then(|| forwarded_for.join(",")),
            lang_chosen,
            secure: false,
            brand: gw.brands.default_brand().clone(),
        }
        .with_gw(gw))
    }
}

impl Ctx {
    pub fn with_gw(mut self, gw: &Gateway) -> Ctx {
        self.secure = gw.config.server.public_url.starts_with("https://");
        self
    }

    /// Draws this request's pages in `brand` (the sender domain's, from [`brand_of`]).
    pub fn with_brand(mut self, brand: Arc<Brand>) -> Ctx {
        self.brand = brand;
        self
    }

    /// The brand this request's pages are drawn in.
    pub fn brand(&self) -> &Brand {
        &self.brand
    }

    /// A whole page in this request's language and brand (see [`super::html::branded_page`]).
    pub fn page(&self, path: &str, title: &str, body: &str) -> String {
        branded_page(self.lang, Some(&self.brand), path, title, body)
    }

    /// The client's address for the SMS limit per IP (see [`client_ip`]).
    pub fn client_ip(&self, gw: &Gateway) -> String {
        client_ip(
            self.peer,
            self.forwarded_for.as_deref(),
            &gw.config.portal.trusted_proxies,
        )
    }

    fn cookie_attrs(&self) -> &'static str {
        if self.secure {
            "; Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "; Path=/; HttpOnly; SameSite=Strict"
        }
    }

    /// An HTML response with the cookies this request needs set.
    pub fn html(&self, status: StatusCode, body: String, extra_cookies: &[String]) -> Response {
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response();
        self.add_cookies(&mut r, extra_cookies);
        r
    }

    pub fn add_cookies(&self, r: &mut Response, extra: &[String]) {
        let mut cookies: Vec<String> = extra.to_vec();
        if let Some(l) = self.lang_chosen {
            cookies.push(format!("nta_lang={}{}", l.code(), self.cookie_attrs()));
        }
        for c in cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }

    /// The message page (status + text) in this language.
    pub fn notice(&self, status: StatusCode, path: &str, title: &str, text: &str) -> Response {
        let body = self.page(path, title, &format!("<p>{}</p>", esc(text)));
        self.html(status, body, &[])
    }

    /// The same 404 page for every unknown, wrong or closed link.
    pub fn not_found(&self) -> Response {
        self.notice(
            StatusCode::NOT_FOUND,
            "/p/",
            self.lang.t("Link niet gevonden", "Link not found"),
            self.lang.t(
                "Deze link is onbekend of niet meer geldig. Controleer of u de hele link uit de e-mail hebt gebruikt.",
                "This link is unknown or no longer valid. Check that you used the whole link from the e-mail.",
            ),
        )
    }

    pub fn unavailable(&self, path: &str) -> Response {
        self.notice(
            StatusCode::SERVICE_UNAVAILABLE,
            path,
            self.lang.t("Probeer het later opnieuw", "Please try again later"),
            self.lang.t(
                "Er ging iets mis aan onze kant. Uw bericht blijft veilig bewaard; probeer het over een paar minuten opnieuw.",
                "Something went wrong on our side. Your message stays safely held; please try again in a few minutes.",
            ),
        )
    }

    pub fn cookie(&self, name: &str, value: &str) -> String {
        format!("{name}={value}{}", self.cookie_attrs())
    }
}

/// The brand of a challenge: its first sender's domain's (the global one when it has no sender or the
/// store cannot say: the look is never a reason to refuse a page).
pub async fn brand_of(gw: &Gateway, challenge_id: &str) -> Arc<Brand> {
    match gw.store.senders(challenge_id).await {
        Ok(senders) => match senders.first() {
            Some(s) => gw.brands.for_sender(s).clone(),
            None => gw.brands.default_brand().clone(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "portal: sender unknown; the page shows the global brand");
            gw.brands.default_brand().clone()
        }
    }
}

/// The brand of a link's challenge (the global one for an unknown link).
pub async fn token_brand(gw: &Gateway, purpose: Purpose, token: &str) -> Arc<Brand> {
    match challenge::by_token(&gw.store, purpose, token).await {
        Ok(Some(c)) => brand_of(gw, &c.id).await,
        _ => gw.brands.default_brand().clone(),
    }
}

/// The challenge behind a recipient link, or the 404 answer.
pub async fn challenge_for(
    gw: &Gateway,
    ctx: &Ctx,
    purpose: Purpose,
    token: &str,
) -> Result<Challenge, Response> {
    match challenge::by_token(&gw.store, purpose, token).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(ctx.not_found()),
        Err(e) => {
            tracing::error!(error = %e, "portal: store error");
            Err(ctx.unavailable("/p/"))
        }
    }
}

/// The link's recipient when the browser holds a valid session for exactly that recipient.
pub async fn authorised(gw: &Gateway, ctx: &Ctx, token: &str) -> Result<String, Response> {
    let c = challenge_for(gw, ctx, Purpose::Recipient, token).await?;
    let Some(cookie) = ctx.cookies.get("nta_session") else {
        return Err(Redirect::to(&format!("/p/{token}")).into_response());
    };
    match challenge::session_recipient(&gw.store, cookie, crate::time::now()).await {
        Ok(Some(r)) if r == c.recipient => Ok(r),
        Ok(_) => Err(Redirect::to(&format!("/p/{token}")).into_response()),
        Err(_) => Err(ctx.unavailable("/p/")),
    }
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // No proxy configured, or the peer is not one: the peer.
        assert_eq!(
            client_ip(Some(ip("192.0.2.7")), Some("203.0.113.5"), &[]),
            "192.0.2.7"
        );
        assert_eq!(
            client_ip(Some(ip("192.0.2.7")), Some("203.0.113.5"), &proxies),
            "192.0.2.7"
        );
        // Through one and through two trusted proxies: the first untrusted hop from the right.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("203.0.113.5"), &proxies),
            "203.0.113.5"
        );
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.1")),
                Some("198.51.100.1, 203.0.113.5, 10.0.0.2"),
                &proxies
            ),
            "203.0.113.5"
        );
        // Garbage stops the walk at the last trusted hop's view; no header: the proxy itself.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("203.0.113.5, junk"), &proxies),
            "10.0.0.1"
        );
        assert_eq!(client_ip(Some(ip("10.0.0.1")), None, &proxies), "10.0.0.1");
        assert_eq!(client_ip(None, Some("203.0.113.5"), &proxies), "unknown");
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some(" 2001:db8::1 "), &proxies),
            "2001:db8::1"
        );
    }
}

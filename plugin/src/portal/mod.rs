//! The portal: the recipient's pages (link → send code → enter code → messages) and the sender's
//! "enter the recipient's mobile number" page. Server-rendered HTML in Dutch and English, no JavaScript,
//! CSRF-protected forms (double-submit cookie + HMAC), strict security headers, and one answer — 404 with
//! the same page — for every unknown or wrong link token.

pub mod html;
pub mod view;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Path, Query, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Form, Router,
};

use crate::{
    challenge::{
        self,
        phone::Phone,
        ratelimit::{self, Scope},
        store::{self as cstore, Challenge, ChallengeState},
        Purpose,
    },
    Gateway,
};
use html::{esc, page, Lang};

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/p/static/portal.css", get(css))
        .route("/p/{token}", get(landing))
        .route("/p/{token}/sms", axum::routing::post(send_code))
        .route("/p/{token}/code", get(code_form).post(check_code))
        .route("/p/{token}/messages", get(view::messages))
        .route("/p/{token}/m/{id}", get(view::message))
        .route("/p/{token}/m/{id}/eml", get(view::eml))
        .route("/p/{token}/m/{id}/a/{n}", get(view::attachment))
        .route("/s/{token}", get(sender_form).post(sender_submit))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    set(h, "strict-transport-security", "max-age=31536000");
    r
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CSS,
    )
        .into_response()
}

/// Request facts every page needs: language, cookies, client IP.
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

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Ctx, Self::Rejection> {
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
        })
    }
}

impl Ctx {
    fn with_gw(mut self, gw: &Gateway) -> Ctx {
        self.secure = gw.config.server.public_url.starts_with("https://");
        self
    }

    /// The client's address for the SMS limit per IP (see [`client_ip`]).
    fn client_ip(&self, gw: &Gateway) -> String {
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

    /// The CSRF cookie value, created when the browser has none.
    fn csrf_cookie(&self) -> (String, bool) {
        match self
            .cookies
            .get("nta_csrf")
            .filter(|v| v.len() >= 32 && v.len() <= 64)
        {
            Some(v) => (v.clone(), false),
            None => (challenge::random_token(), true),
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

    fn add_cookies(&self, r: &mut Response, extra: &[String]) {
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
        let body = page(self.lang, path, title, &format!("<p>{}</p>", esc(text)));
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

    fn cookie(&self, name: &str, value: &str) -> String {
        format!("{name}={value}{}", self.cookie_attrs())
    }
}

/// The hidden CSRF field and the cookie that must accompany the POST.
fn csrf_field(gw: &Gateway, ctx: &Ctx, scope: &str) -> (String, Option<String>) {
    let (cookie, new) = ctx.csrf_cookie();
    let field = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        gw.keys.csrf(&cookie, scope)
    );
    (field, new.then(|| ctx.cookie("nta_csrf", &cookie)))
}

fn csrf_ok(gw: &Gateway, ctx: &Ctx, form: &HashMap<String, String>, scope: &str) -> bool {
    let (Some(cookie), Some(field)) = (ctx.cookies.get("nta_csrf"), form.get("csrf")) else {
        return false;
    };
    crate::secrets::equal(field.as_bytes(), gw.keys.csrf(cookie, scope).as_bytes())
}

fn csrf_refused(ctx: &Ctx, path: &str) -> Response {
    ctx.notice(
        StatusCode::FORBIDDEN,
        path,
        ctx.lang.t("Formulier verlopen", "Form expired"),
        ctx.lang.t(
            "Dit formulier is verlopen of niet vanaf deze site verstuurd. Open de link uit de e-mail opnieuw.",
            "This form has expired or was not sent from this site. Please open the link from the e-mail again.",
        ),
    )
}

/// The challenge behind a recipient link, or the 404 answer.
pub async fn challenge_for(
    gw: &Gateway,
    ctx: &Ctx,
    purpose: Purpose,
    token: &str,
) -> Result<Challenge, Response> {
    match cstore::by_token(&gw.store, purpose, token).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(ctx.not_found()),
        Err(e) => {
            tracing::error!(error = %e, "portal: store error");
            Err(ctx.unavailable("/p/"))
        }
    }
}

fn closed(ctx: &Ctx, path: &str, c: &Challenge) -> Option<Response> {
    match c.state {
        ChallengeState::Pending | ChallengeState::Verified => None,
        ChallengeState::Locked => Some(ctx.notice(
            StatusCode::FORBIDDEN,
            path,
            ctx.lang.t("Geblokkeerd", "Blocked"),
            ctx.lang.t(
                "Er is te vaak een verkeerde code ingevuld. Deze link is geblokkeerd; vraag de afzender het bericht opnieuw te sturen.",
                "A wrong code was entered too often. This link is blocked; ask the sender to send the message again.",
            ),
        )),
        ChallengeState::Expired => Some(ctx.notice(
            StatusCode::GONE,
            path,
            ctx.lang.t("Verlopen", "Expired"),
            ctx.lang.t(
                "Deze link is verlopen. Vraag de afzender het bericht opnieuw te sturen.",
                "This link has expired. Ask the sender to send the message again.",
            ),
        )),
    }
}

async fn landing(State(gw): State<Arc<Gateway>>, ctx: Ctx, Path(token): Path<String>) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::Recipient, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = format!("/p/{token}");
    if let Some(r) = closed(&ctx, &path, &c) {
        return r;
    }
    let lang = ctx.lang;
    let senders = cstore::senders(&gw.store, &c.id).await.unwrap_or_default();
    let phone = match cstore::phone(&gw.store, &c.recipient).await {
        Ok(p) => p.and_then(|p| Phone::parse(&p).ok()),
        Err(_) => return ctx.unavailable(&path),
    };
    let from = if senders.is_empty() {
        "-".to_string()
    } else {
        senders.join(", ")
    };
    let Some(phone) = phone else {
        return ctx.notice(
            StatusCode::OK,
            &path,
            lang.t("Nog even geduld", "Please wait"),
            lang.t(
                "De afzender heeft uw mobiele nummer nog niet doorgegeven. U krijgt een nieuwe e-mail zodra dat is gebeurd.",
                "The sender has not given us your mobile number yet. You will receive another e-mail once they have.",
            ),
        );
    };
    let (field, cookie) = csrf_field(&gw, &ctx, &c.id);
    let body = format!(
        "<p>{intro}</p>\n<p>{explain} <strong>{masked}</strong>.</p>\n\
         <form method=\"post\" action=\"/p/{token}/sms\">{field}\
         <button type=\"submit\">{send}</button></form>\n\
         <p class=\"hint\"><a href=\"/p/{token}/code\">{have}</a></p>",
        intro = esc(&format!(
            "{} {}",
            lang.t(
                "Er staat een beveiligd bericht voor u klaar van",
                "A secure message is waiting for you from"
            ),
            from
        )),
        explain = lang.t(
            "Om te controleren dat u de ontvanger bent, sturen we een code per sms naar",
            "To check that you are the recipient, we send a code by text message to"
        ),
        masked = esc(&phone.masked()),
        send = lang.t("Stuur mij een code", "Send me a code"),
        have = lang.t("Ik heb al een code", "I already have a code"),
    );
    let title = lang.t("Beveiligd bericht", "Secure message");
    ctx.html(
        StatusCode::OK,
        page(lang, &path, title, &body),
        &cookie.into_iter().collect::<Vec<_>>(),
    )
}

async fn send_code(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::Recipient, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = format!("/p/{token}");
    if let Some(r) = closed(&ctx, &path, &c) {
        return r;
    }
    if !csrf_ok(&gw, &ctx, &form, &c.id) {
        return csrf_refused(&ctx, &path);
    }
    let phone = match cstore::phone(&gw.store, &c.recipient).await {
        Ok(Some(p)) => p,
        Ok(None) => return Redirect::to(&path).into_response(),
        Err(_) => return ctx.unavailable(&path),
    };
    let p = &gw.config.portal;
    let now = crate::time::now();
    let ip = ctx.client_ip(&gw);
    let limited = ratelimit::take(
        &gw.store,
        &[
            (Scope::SmsRecipient, &c.recipient, p.sms_per_recipient),
            (Scope::SmsPhone, &phone, p.sms_per_phone),
            (Scope::SmsIp, &ip, p.sms_per_ip),
        ],
        p.rate_window_secs,
        now,
    )
    .await;
    match limited {
        Ok(Ok(())) => {}
        Ok(Err(scope)) => {
            tracing::warn!(recipient = %c.recipient, ?scope, ip = %ip, "SMS rate limit reached");
            return ctx.notice(
                StatusCode::TOO_MANY_REQUESTS,
                &path,
                ctx.lang.t("Even wachten", "Please wait"),
                ctx.lang.t(
                    "Er zijn kort geleden al meerdere codes verstuurd. Wacht een uur en probeer het dan opnieuw, of gebruik de laatst ontvangen code.",
                    "Several codes were sent recently. Wait an hour and try again, or use the last code you received.",
                ),
            );
        }
        Err(_) => return ctx.unavailable(&path),
    }
    let code = challenge::new_code();
    let minutes = (p.code_lifetime_secs + 59) / 60;
    let text = format!(
        "Uw code voor het beveiligde bericht: {code} (geldig {minutes} min). Your code for the secure message: {code}"
    );
    if let Err(e) = gw.sms.send(&phone, &text).await {
        tracing::warn!(error = %e, recipient = %c.recipient, "SMS not sent; recipient told to try later");
        if let Err(e) = cstore::sms_failed(&gw.store, &c, &phone, &e, now).await {
            tracing::error!(error = %e, recipient = %c.recipient, "SMS failure not recorded in the audit log");
        }
        return ctx.unavailable(&path);
    }
    // The code becomes usable only together with its audit record.
    match cstore::code_sent(
        &gw.store,
        &c,
        &gw.keys.code_hash(&c.id, &code),
        now + p.code_lifetime_secs,
        &phone,
        now,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return Redirect::to(&path).into_response(),
        Err(e) => {
            tracing::error!(error = %e, recipient = %c.recipient, "SMS sent but its code not stored; it will not work");
            return ctx.unavailable(&path);
        }
    }
    Redirect::to(&format!("/p/{token}/code")).into_response()
}

fn code_page(
    gw: &Gateway,
    ctx: &Ctx,
    token: &str,
    c: &Challenge,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let path = format!("/p/{token}/code");
    let (field, cookie) = csrf_field(gw, ctx, &c.id);
    let error_html = error.map_or(String::new(), |e| {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"code-error\">{}</p>\n",
            esc(&e)
        )
    });
    let body = format!(
        "{error_html}<form method=\"post\" action=\"/p/{token}/code\">{field}\
         <label for=\"code\">{label}</label>\
         <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         pattern=\"[0-9]{{6}}\" maxlength=\"6\" required aria-describedby=\"code-hint\">\
         <p class=\"hint\" id=\"code-hint\">{hint}</p>\
         <button type=\"submit\">{go}</button></form>\n\
         <p class=\"hint\"><a href=\"/p/{token}\">{again}</a></p>",
        label = lang.t("Code uit de sms (6 cijfers)", "Code from the text message (6 digits)"),
        hint = lang.t("De code is 5 minuten geldig.", "The code is valid for 5 minutes."),
        go = lang.t("Bevestigen", "Confirm"),
        again = lang.t("Nieuwe code aanvragen", "Request a new code"),
    );
    ctx.html(
        status,
        page(
            lang,
            &path,
            lang.t("Code invullen", "Enter your code"),
            &body,
        ),
        &cookie.into_iter().collect::<Vec<_>>(),
    )
}

async fn code_form(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::Recipient, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(r) = closed(&ctx, &format!("/p/{token}/code"), &c) {
        return r;
    }
    code_page(&gw, &ctx, &token, &c, None, StatusCode::OK)
}

async fn check_code(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::Recipient, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = format!("/p/{token}/code");
    if let Some(r) = closed(&ctx, &path, &c) {
        return r;
    }
    if !csrf_ok(&gw, &ctx, &form, &c.id) {
        return csrf_refused(&ctx, &path);
    }
    let lang = ctx.lang;
    let now = crate::time::now();
    let code: String = form
        .get("code")
        .map(|s| s.chars().filter(|c| !c.is_whitespace()).collect())
        .unwrap_or_default();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        let msg = lang.t(
            "Vul de 6 cijfers uit de sms in.",
            "Enter the 6 digits from the text message.",
        );
        return code_page(
            &gw,
            &ctx,
            &token,
            &c,
            Some(msg.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let (Some(stored), Some(until)) = (&c.code_hash, c.code_expires_at) else {
        let msg = lang.t("Vraag eerst een code aan.", "Please request a code first.");
        return code_page(
            &gw,
            &ctx,
            &token,
            &c,
            Some(msg.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    if until <= now {
        let msg = lang.t(
            "Deze code is verlopen. Vraag een nieuwe code aan.",
            "This code has expired. Please request a new code.",
        );
        return code_page(
            &gw,
            &ctx,
            &token,
            &c,
            Some(msg.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let presented = gw.keys.code_hash(&c.id, &code);
    if !crate::secrets::equal(presented.as_bytes(), stored.as_bytes()) {
        let max = gw.config.portal.max_tries;
        let tries = match cstore::wrong_code(&gw.store, &c, max, now).await {
            Ok(t) => t,
            Err(_) => return ctx.unavailable(&path),
        };
        tracing::warn!(recipient = %c.recipient, tries, "wrong SMS code");
        if tries >= max {
            let locked = Challenge {
                state: ChallengeState::Locked,
                ..c
            };
            return closed(&ctx, &path, &locked).expect("locked is closed");
        }
        let msg = format!(
            "{} {}",
            lang.t(
                "Deze code klopt niet. Pogingen over:",
                "This code is not correct. Tries left:"
            ),
            max - tries
        );
        return code_page(
            &gw,
            &ctx,
            &token,
            &c,
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    // Right code.
    let pending = c.state == ChallengeState::Pending;
    if pending {
        let until = now + i64::from(gw.config.policy.verified_days) * 86_400;
        match cstore::verify(&gw.store, &c, until, now).await {
            Ok(_) => gw.wake.notify_one(),
            Err(_) => return ctx.unavailable(&path),
        }
        tracing::info!(recipient = %c.recipient, "recipient verified");
    }
    let session = match cstore::new_session(
        &gw.store,
        &c,
        now + gw.config.portal.session_secs,
        (!pending).then_some(now),
    )
    .await
    {
        Ok(s) => s,
        Err(_) => return ctx.unavailable(&path),
    };
    let mut r = Redirect::to(&format!("/p/{token}/messages")).into_response();
    ctx.add_cookies(&mut r, &[ctx.cookie("nta_session", &session)]);
    r
}

async fn sender_form(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::SenderPhone, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    sender_page(&gw, &ctx, &token, &c, None, StatusCode::OK).await
}

async fn sender_page(
    gw: &Gateway,
    ctx: &Ctx,
    token: &str,
    c: &Challenge,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let path = format!("/s/{token}");
    if c.state != ChallengeState::Pending {
        return ctx.notice(
            StatusCode::GONE,
            &path,
            lang.t("Niet meer nodig", "No longer needed"),
            lang.t(
                "Deze link is niet meer in gebruik.",
                "This link is no longer in use.",
            ),
        );
    }
    match cstore::phone(&gw.store, &c.recipient).await {
        Ok(Some(_)) => {
            return ctx.notice(
                StatusCode::OK,
                &path,
                lang.t("Nummer bekend", "Number known"),
                lang.t(
                    "Het mobiele nummer van deze ontvanger is bekend. De ontvanger krijgt een e-mail met een link.",
                    "The recipient's mobile number is known. The recipient receives an e-mail with a link.",
                ),
            )
        }
        Ok(None) => {}
        Err(_) => return ctx.unavailable(&path),
    }
    let (field, cookie) = csrf_field(gw, ctx, &format!("sender:{}", c.id));
    let error_html = error.map_or(String::new(), |e| {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"phone-error\">{}</p>\n",
            esc(e)
        )
    });
    let body = format!(
        "<p>{intro} <strong>{rcpt}</strong>.</p>\n{error_html}\
         <form method=\"post\" action=\"/s/{token}\">{field}\
         <label for=\"phone\">{label}</label>\
         <input type=\"tel\" id=\"phone\" name=\"phone\" autocomplete=\"off\" required aria-describedby=\"phone-hint\">\
         <p class=\"hint\" id=\"phone-hint\">{hint}</p>\
         <button type=\"submit\">{go}</button></form>",
        intro = lang.t(
            "Uw beveiligde bericht wacht. Vul eenmalig het mobiele nummer in van",
            "Your secure message is waiting. Enter, once, the mobile number of"
        ),
        rcpt = esc(&c.recipient),
        label = lang.t("Mobiel nummer", "Mobile number"),
        hint = lang.t(
            "Internationaal formaat, bijvoorbeeld +31612345678.",
            "International format, for example +31612345678."
        ),
        go = lang.t("Opslaan", "Save"),
    );
    ctx.html(
        status,
        page(
            lang,
            &path,
            lang.t(
                "Mobiel nummer van de ontvanger",
                "Recipient's mobile number",
            ),
            &body,
        ),
        &cookie.into_iter().collect::<Vec<_>>(),
    )
}

async fn sender_submit(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::SenderPhone, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = format!("/s/{token}");
    if c.state != ChallengeState::Pending {
        return sender_page(&gw, &ctx, &token, &c, None, StatusCode::GONE).await;
    }
    if !csrf_ok(&gw, &ctx, &form, &format!("sender:{}", c.id)) {
        return csrf_refused(&ctx, &path);
    }
    let lang = ctx.lang;
    let now = crate::time::now();
    let phone = match Phone::parse(form.get("phone").map_or("", String::as_str)) {
        Ok(p) => p,
        Err(_) => {
            // The rejected entry is audited (without what was typed).
            if cstore::sender_phone_entry(&gw.store, &c, None, now)
                .await
                .is_err()
            {
                return ctx.unavailable(&path);
            }
            let msg = lang.t(
                "Dit is geen geldig mobiel nummer. Gebruik het internationale formaat met + en landcode, bijvoorbeeld +31612345678.",
                "This is not a valid mobile number. Use the international format with + and country code, for example +31612345678.",
            );
            return sender_page(
                &gw,
                &ctx,
                &token,
                &c,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match cstore::sender_phone_entry(&gw.store, &c, Some(&phone), now).await {
        Ok(_) => gw.wake.notify_one(),
        Err(_) => return ctx.unavailable(&path),
    }
    tracing::info!(recipient = %c.recipient, "mobile number recorded from the sender's link");
    ctx.notice(
        StatusCode::OK,
        &path,
        lang.t("Dank u", "Thank you"),
        lang.t(
            "Het nummer is opgeslagen. De ontvanger krijgt nu een e-mail met een link om het bericht op te halen.",
            "The number has been saved. The recipient now receives an e-mail with a link to collect the message.",
        ),
    )
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

//! The recipient's pages before verification: the link's landing page (send me a code), sending the
//! code, and entering it. Each maps a typed outcome of `challenge` ([`CodeSent`], [`CodeCheck`]) onto
//! a page. Calls `challenge`, `store` (reads) and the portal's session, CSRF and HTML parts.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Form,
};

use super::{
    csrf::{self, CsrfScope},
    html::esc,
    session::{brand_of, challenge_for, token_brand, Ctx},
};
use crate::{
    challenge::{self, phone::Phone, Challenge, ChallengeState, CodeCheck, CodeSent, Purpose},
    Gateway,
};

/// The CSRF scope of a challenge's recipient forms.
fn scope(c: &Challenge) -> CsrfScope<'_> {
    CsrfScope::Recipient {
        challenge_id: &c.id,
    }
}

/// The page of a challenge that takes no codes (locked or expired); `None` while it does.
fn closed(ctx: &Ctx, path: &str, state: ChallengeState) -> Option<Response> {
    match state {
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

pub async fn landing(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::Recipient, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ctx = ctx.with_brand(brand_of(&gw, &c.id).await);
    let path = format!("/p/{token}");
    if let Some(r) = closed(&ctx, &path, c.state) {
        return r;
    }
    match gw.store.challenge_withdrawn(&c.id).await {
        Ok(true) => return super::withdraw::withdrawn_page(&ctx, &path),
        Ok(false) => {}
        Err(_) => return ctx.unavailable(&path),
    }
    let lang = ctx.lang;
    let senders = gw.store.senders(&c.id).await.unwrap_or_default();
    let phone = match gw.store.phone(&c.recipient).await {
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
    let (field, cookie) = csrf::field(&gw, &ctx, scope(&c));
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
        ctx.page(&path, title, &body),
        &cookie.into_iter().collect::<Vec<_>>(),
    )
}

/// The recipient's challenge for a posted form: known link, still open, valid CSRF value; otherwise the
/// page that says why.
async fn open_form(
    gw: &Gateway,
    ctx: &Ctx,
    token: &str,
    path: &str,
    form: &HashMap<String, String>,
) -> Result<Challenge, Response> {
    let c = challenge_for(gw, ctx, Purpose::Recipient, token).await?;
    if let Some(r) = closed(ctx, path, c.state) {
        return Err(r);
    }
    if !csrf::ok(gw, ctx, form, scope(&c)) {
        return Err(csrf::refused(ctx, path));
    }
    Ok(c)
}

pub async fn send_code(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let brand = token_brand(&gw, Purpose::Recipient, &token).await;
    let ctx = ctx.with_gw(&gw).with_brand(brand);
    let path = format!("/p/{token}");
    let c = match open_form(&gw, &ctx, &token, &path, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let phone = match gw.store.phone(&c.recipient).await {
        Ok(Some(p)) => p,
        Ok(None) => return Redirect::to(&path).into_response(),
        Err(_) => return ctx.unavailable(&path),
    };
    let ip = ctx.client_ip(&gw);
    match challenge::send_code(&gw, &c, &phone, &ip, crate::time::now()).await {
        Ok(CodeSent::Sent) => Redirect::to(&format!("/p/{token}/code")).into_response(),
        Ok(CodeSent::Closed) => Redirect::to(&path).into_response(),
        Ok(CodeSent::Limited(_)) => ctx.notice(
            StatusCode::TOO_MANY_REQUESTS,
            &path,
            ctx.lang.t("Even wachten", "Please wait"),
            ctx.lang.t(
                "Er zijn kort geleden al meerdere codes verstuurd. Wacht een uur en probeer het dan opnieuw, of gebruik de laatst ontvangen code.",
                "Several codes were sent recently. Wait an hour and try again, or use the last code you received.",
            ),
        ),
        Ok(CodeSent::SmsFailed) | Err(_) => ctx.unavailable(&path),
    }
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
    let (field, cookie) = csrf::field(gw, ctx, scope(c));
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
        ctx.page(&path, lang.t("Code invullen", "Enter your code"), &body),
        &cookie.into_iter().collect::<Vec<_>>(),
    )
}

pub async fn code_form(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::Recipient, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ctx = ctx.with_brand(brand_of(&gw, &c.id).await);
    if let Some(r) = closed(&ctx, &format!("/p/{token}/code"), c.state) {
        return r;
    }
    code_page(&gw, &ctx, &token, &c, None, StatusCode::OK)
}

pub async fn check_code(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let brand = token_brand(&gw, Purpose::Recipient, &token).await;
    let ctx = ctx.with_gw(&gw).with_brand(brand);
    let path = format!("/p/{token}/code");
    let c = match open_form(&gw, &ctx, &token, &path, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let input = form.get("code").map_or("", String::as_str);
    let error = |msg: String| {
        code_page(
            &gw,
            &ctx,
            &token,
            &c,
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let check = match challenge::check_code(&gw, &c, input, crate::time::now()).await {
        Ok(check) => check,
        Err(_) => return ctx.unavailable(&path),
    };
    match check {
        CodeCheck::Malformed => error(
            lang.t(
                "Vul de 6 cijfers uit de sms in.",
                "Enter the 6 digits from the text message.",
            )
            .into(),
        ),
        CodeCheck::NotRequested => error(
            lang.t("Vraag eerst een code aan.", "Please request a code first.")
                .into(),
        ),
        CodeCheck::CodeExpired => error(
            lang.t(
                "Deze code is verlopen. Vraag een nieuwe code aan.",
                "This code has expired. Please request a new code.",
            )
            .into(),
        ),
        CodeCheck::Wrong { tries_left } => error(format!(
            "{} {tries_left}",
            lang.t(
                "Deze code klopt niet. Pogingen over:",
                "This code is not correct. Tries left:"
            ),
        )),
        CodeCheck::Locked => closed(&ctx, &path, ChallengeState::Locked).expect("locked is closed"),
        CodeCheck::Closed(state) => {
            closed(&ctx, &path, state).unwrap_or_else(|| ctx.unavailable(&path))
        }
        CodeCheck::Accepted { session, .. } => {
            let mut r = Redirect::to(&format!("/p/{token}/messages")).into_response();
            ctx.add_cookies(&mut r, &[ctx.cookie("nta_session", &session)]);
            r
        }
    }
}

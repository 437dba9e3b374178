//! The sender's page: entering the recipient's mobile number once, from the link in the sender's mail.
//! Calls `store` (the number and its audit record), `challenge::phone` (validation) and the portal's
//! session, CSRF and HTML parts.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    Form,
};

use super::{
    csrf::{self, CsrfScope},
    html::esc,
    session::{brand_of, challenge_for, Ctx},
};
use crate::{
    challenge::{phone::Phone, Challenge, ChallengeState, Purpose},
    Gateway,
};

/// The CSRF scope of a challenge's phone-number form.
fn scope(c: &Challenge) -> CsrfScope<'_> {
    CsrfScope::SenderPhone {
        challenge_id: &c.id,
    }
}

pub async fn sender_form(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let c = match challenge_for(&gw, &ctx, Purpose::SenderPhone, &token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ctx = ctx.with_brand(brand_of(&gw, &c.id).await);
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
    match gw.store.phone(&c.recipient).await {
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
    let (field, cookie) = csrf::field(gw, ctx, scope(c));
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
        ctx.page(
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

pub async fn sender_submit(
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
    let ctx = ctx.with_brand(brand_of(&gw, &c.id).await);
    let path = format!("/s/{token}");
    if c.state != ChallengeState::Pending {
        return sender_page(&gw, &ctx, &token, &c, None, StatusCode::GONE).await;
    }
    if !csrf::ok(&gw, &ctx, &form, scope(&c)) {
        return csrf::refused(&ctx, &path);
    }
    let lang = ctx.lang;
    let now = crate::time::now();
    let phone = match Phone::parse(form.get("phone").map_or("", String::as_str)) {
        Ok(p) => p,
        Err(_) => {
            // The rejected entry is audited (without what was typed).
            if gw.store.sender_phone_entry(&c, None, now).await.is_err() {
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
    match gw
        .store
        .sender_phone_entry(&c, Some(phone.as_str()), now)
        .await
    {
        Ok(_) => gw.wake.now(),
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

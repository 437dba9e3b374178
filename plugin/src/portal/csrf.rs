//! CSRF protection of the portal's forms: a double-submit cookie (`nta_csrf`) and a hidden field
//! holding an HMAC of that cookie and the form's [`CsrfScope`], so a form's value is good for its own
//! link only. Calls the gateway's keys.

use std::collections::HashMap;

use axum::{http::StatusCode, response::Response};

use super::session::Ctx;
use crate::Gateway;

/// Which forms a CSRF value is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfScope<'a> {
    /// The recipient's forms of one challenge (send a code, enter the code).
    Recipient { challenge_id: &'a str },
    /// The sender's phone-number form of one challenge.
    SenderPhone { challenge_id: &'a str },
    /// The sender's withdraw form of one held message.
    SenderWithdraw { message_id: &'a str },
    /// A portal recipient's reply form of one message.
    Reply { message_id: &'a str },
}

impl CsrfScope<'_> {
    /// The text the HMAC binds.
    fn key(self) -> String {
        match self {
            CsrfScope::Recipient { challenge_id } => challenge_id.to_string(),
            CsrfScope::SenderPhone { challenge_id } => format!("sender:{challenge_id}"),
            CsrfScope::SenderWithdraw { message_id } => format!("withdraw:{message_id}"),
            CsrfScope::Reply { message_id } => format!("reply:{message_id}"),
        }
    }
}

/// The hidden CSRF field and the cookie that must accompany the POST.
pub fn field(gw: &Gateway, ctx: &Ctx, scope: CsrfScope<'_>) -> (String, Option<String>) {
    let (cookie, new) = browser_cookie(ctx);
    let field = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        gw.keys.csrf(&cookie, &scope.key())
    );
    (field, new.then(|| ctx.cookie("nta_csrf", &cookie)))
}

/// The browser's CSRF cookie value, created when it has none (`true`: new, to be set).
fn browser_cookie(ctx: &Ctx) -> (String, bool) {
    match ctx
        .cookies
        .get("nta_csrf")
        .filter(|v| v.len() >= 32 && v.len() <= 64)
    {
        Some(v) => (v.clone(), false),
        None => (crate::challenge::random_token(), true),
    }
}

/// Whether the form carries the right value for this browser and scope.
pub fn ok(gw: &Gateway, ctx: &Ctx, form: &HashMap<String, String>, scope: CsrfScope<'_>) -> bool {
    let (Some(cookie), Some(field)) = (ctx.cookies.get("nta_csrf"), form.get("csrf")) else {
        return false;
    };
    crate::secrets::equal(
        field.as_bytes(),
        gw.keys.csrf(cookie, &scope.key()).as_bytes(),
    )
}

/// The answer to a form without the right value.
pub fn refused(ctx: &Ctx, path: &str) -> Response {
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

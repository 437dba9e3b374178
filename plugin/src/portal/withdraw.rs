//! The sender's withdraw page (`/s/w/{token}`, the link in the hold confirmation): what is held for
//! whom, and a CSRF-protected button that withdraws every recipient's hold not yet delivered or read.
//! Also the recipient's side of a withdrawal: the page (410) and the status line that say the sender
//! withdrew the message. Calls `challenge` (the link lookup, the subject), `store` (the withdrawal) and
//! the portal's session, CSRF and HTML parts.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    Form,
};

use super::{
    csrf::{self, CsrfScope},
    html::{esc, Lang},
    session::Ctx,
};
use crate::{
    audit::WithdrawnBy,
    challenge::{self, sender_notices},
    store::withdraw::{HoldView, WithdrawLink, WithdrawOutcome},
    Gateway,
};

/// The recipient's status line of a withdrawn message.
pub fn withdrawn_status(lang: Lang) -> &'static str {
    lang.t("Ingetrokken door de afzender", "Withdrawn by the sender")
}

/// The recipient's page of a withdrawn message: 410 Gone.
pub fn withdrawn_page(ctx: &Ctx, path: &str) -> Response {
    ctx.notice(
        StatusCode::GONE,
        path,
        withdrawn_status(ctx.lang),
        ctx.lang.t(
            "De afzender heeft dit bericht ingetrokken. De inhoud is verwijderd; neem zo nodig contact op met de afzender.",
            "The sender has withdrawn this message. Its content has been deleted; contact the sender if needed.",
        ),
    )
}

/// What a hold's (would-be) withdrawal outcome means, for the sender.
fn outcome_text(lang: Lang, outcome: Option<WithdrawOutcome>) -> &'static str {
    match outcome {
        None => lang.t(
            "Wacht op de ontvanger; kan worden ingetrokken",
            "Waiting for the recipient; can be withdrawn",
        ),
        Some(WithdrawOutcome::Withdrawn | WithdrawOutcome::AlreadyWithdrawn) => {
            lang.t("Ingetrokken", "Withdrawn")
        }
        Some(WithdrawOutcome::Delivered) => lang.t(
            "Kan niet worden ingetrokken, het is al afgeleverd",
            "Cannot be withdrawn, it was already delivered",
        ),
        Some(WithdrawOutcome::BeingDelivered) => lang.t(
            "Kan niet worden ingetrokken, het wordt nu afgeleverd",
            "Cannot be withdrawn, it is being delivered",
        ),
        Some(WithdrawOutcome::Read) => lang.t(
            "Kan niet worden ingetrokken, het is al gelezen op het portaal",
            "Cannot be withdrawn, it was already read on the portal",
        ),
        Some(WithdrawOutcome::Gone) => lang.t(
            "Niet meer bewaard (verlopen of verwijderd)",
            "No longer held (expired or deleted)",
        ),
    }
}

/// The message behind a withdraw link, or the 404 answer.
async fn link_for(gw: &Gateway, ctx: &Ctx, token: &str) -> Result<WithdrawLink, Response> {
    match challenge::by_withdraw_token(&gw.store, token).await {
        Ok(Some(link)) => Ok(link),
        Ok(None) => Err(ctx.not_found()),
        Err(e) => {
            tracing::error!(error = %e, "withdraw page: store error");
            Err(ctx.unavailable("/s/"))
        }
    }
}

/// The table of recipients with their outcomes, and the message's facts above it.
async fn summary(
    gw: &Gateway,
    lang: Lang,
    link: &WithdrawLink,
    rows: &[(String, Option<WithdrawOutcome>)],
) -> String {
    let subject = sender_notices::subject(gw, &link.message_id)
        .await
        .unwrap_or_else(|_| "-".into());
    let mut table = String::new();
    for (rcpt, outcome) in rows {
        table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            esc(rcpt),
            outcome_text(lang, *outcome)
        ));
    }
    format!(
        "<dl><dt>{ls}</dt><dd>{subject}</dd><dt>{lh}</dt><dd>{held}</dd><dt>{lr}</dt><dd>{id}</dd></dl>\n\
         <table><caption>{cap}</caption><thead><tr><th scope=\"col\">{lt}</th><th scope=\"col\">{lst}</th></tr></thead>\
         <tbody>\n{table}</tbody></table>\n",
        ls = lang.t("Onderwerp", "Subject"),
        subject = esc(&subject),
        lh = lang.t("Vastgehouden sinds (UTC)", "Held since (UTC)"),
        held = crate::time::rfc3339(link.created_at).replace('T', " ").trim_end_matches('Z'),
        lr = lang.t("Referentie", "Reference"),
        id = esc(&link.message_id),
        cap = lang.t("Ontvangers", "Recipients"),
        lt = lang.t("Ontvanger", "Recipient"),
        lst = lang.t("Status", "Status"),
    )
}

pub async fn withdraw_form(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let link = match link_for(&gw, &ctx, &token).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let ctx = ctx.with_brand(gw.brands.for_sender(&link.sender).clone());
    let path = format!("/s/w/{token}");
    let views: Vec<HoldView> = match gw.store.hold_views(&link.message_id).await {
        Ok(v) => v,
        Err(_) => return ctx.unavailable(&path),
    };
    let lang = ctx.lang;
    let rows: Vec<(String, Option<WithdrawOutcome>)> = views
        .iter()
        .map(|h| (h.recipient.clone(), WithdrawOutcome::of(h.state, h.read)))
        .collect();
    let mut body = summary(&gw, lang, &link, &rows).await;
    let mut cookies = Vec::new();
    if rows.iter().any(|(_, o)| o.is_none()) {
        let scope = CsrfScope::SenderWithdraw {
            message_id: &link.message_id,
        };
        let (field, cookie) = csrf::field(&gw, &ctx, scope);
        cookies.extend(cookie);
        body.push_str(&format!(
            "<p>{explain}</p>\n<form method=\"post\" action=\"/s/w/{token}\">{field}\
             <button type=\"submit\">{go}</button></form>",
            explain = lang.t(
                "Intrekken verwijdert de inhoud; de ontvanger ziet dan dat u het bericht hebt ingetrokken. Dit kan niet ongedaan worden gemaakt.",
                "Withdrawing deletes the content; the recipient then sees that you withdrew the message. This cannot be undone.",
            ),
            go = lang.t("Bericht intrekken", "Withdraw the message"),
        ));
    }
    let title = lang.t("Bericht intrekken", "Withdraw a message");
    ctx.html(StatusCode::OK, ctx.page(&path, title, &body), &cookies)
}

pub async fn withdraw_submit(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ctx = ctx.with_gw(&gw);
    let link = match link_for(&gw, &ctx, &token).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let ctx = ctx.with_brand(gw.brands.for_sender(&link.sender).clone());
    let path = format!("/s/w/{token}");
    let scope = CsrfScope::SenderWithdraw {
        message_id: &link.message_id,
    };
    if !csrf::ok(&gw, &ctx, &form, scope) {
        return csrf::refused(&ctx, &path);
    }
    let by = WithdrawnBy::Sender {
        address: link.sender.clone(),
    };
    let now = crate::time::now();
    let outcomes = match gw.store.withdraw(&link.message_id, None, &by, now).await {
        Ok(Some(o)) => o,
        Ok(None) => return ctx.not_found(),
        Err(_) => return ctx.unavailable(&path),
    };
    let any = outcomes
        .iter()
        .any(|(_, o)| *o == WithdrawOutcome::Withdrawn);
    tracing::info!(
        message = link.message_id,
        withdrawn = any,
        "withdraw link used"
    );
    let lang = ctx.lang;
    let rows: Vec<(String, Option<WithdrawOutcome>)> =
        outcomes.into_iter().map(|(r, o)| (r, Some(o))).collect();
    let (status, title, lead) = match any {
        true => (
            StatusCode::OK,
            lang.t("Ingetrokken", "Withdrawn"),
            lang.t(
                "Het bericht is ingetrokken en de inhoud is verwijderd.",
                "The message has been withdrawn and its content deleted.",
            ),
        ),
        false => (
            StatusCode::CONFLICT,
            lang.t("Niet ingetrokken", "Not withdrawn"),
            lang.t(
                "Het bericht kan niet meer worden ingetrokken.",
                "The message can no longer be withdrawn.",
            ),
        ),
    };
    let body = format!(
        "<p role=\"status\">{}</p>\n{}",
        esc(lead),
        summary(&gw, lang, &link, &rows).await
    );
    ctx.html(status, ctx.page(&path, title, &body), &[])
}

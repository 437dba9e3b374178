//! After verification: the recipient's messages, reading a portal message, downloading the .eml and
//! each attachment. Every page needs the session cookie of the link's own recipient, and a message opens
//! only when that recipient has a portal hold for it. Message HTML is never rendered: the text is shown
//! escaped, downloads are `application/octet-stream` attachments. Every access is audited before the
//! content is shown. Calls `store`, the master key and the portal's session and HTML parts.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use mail_parser::{MessageParser, MimeHeaders};

use super::{
    access::readable,
    html::esc,
    session::{authorised, token_brand, Ctx},
};
use crate::{audit::Event, challenge::Purpose, store::HoldState, Gateway};

pub async fn messages(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Response {
    let ctx = ctx.with_brand(token_brand(&gw, Purpose::Recipient, &token).await);
    let recipient = match authorised(&gw, &ctx, &token).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let held = match gw.store.held_for(&recipient).await {
        Ok(h) => h,
        Err(_) => return ctx.unavailable("/p/"),
    };
    let mut rows = String::new();
    for h in &held {
        let status = match h.state {
            HoldState::Portal => format!(
                "<a href=\"/p/{token}/m/{id}\">{}</a>",
                lang.t("Lezen", "Read"),
                id = esc(&h.message_id)
            ),
            HoldState::Released => lang
                .t("Afgeleverd in uw mailbox", "Delivered to your mailbox")
                .into(),
            HoldState::Releasing
            | HoldState::Sending
            | HoldState::Committing
            | HoldState::Uncertain => lang
                .t(
                    "Wordt afgeleverd in uw mailbox",
                    "Being delivered to your mailbox",
                )
                .into(),
            HoldState::Held => lang
                .t("Wacht op bevestiging", "Waiting for confirmation")
                .into(),
            HoldState::Expired | HoldState::Deleted => lang
                .t("Niet meer beschikbaar", "No longer available")
                .into(),
            HoldState::Withdrawn => super::withdraw::withdrawn_status(lang).into(),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{status}</td></tr>\n",
            esc(&h.sender),
            crate::time::rfc3339(h.created_at)
                .replace('T', " ")
                .trim_end_matches('Z'),
        ));
    }
    let body = format!(
        "<p class=\"ok\" role=\"status\">{ok}</p>\n<table><caption>{cap}</caption>\
         <thead><tr><th scope=\"col\">{from}</th><th scope=\"col\">{date}</th><th scope=\"col\">{st}</th></tr></thead>\
         <tbody>\n{rows}</tbody></table>",
        ok = lang.t(
            "U bent bevestigd als ontvanger. Berichten die veilig kunnen worden afgeleverd, komen in uw eigen mailbox.",
            "You are confirmed as the recipient. Messages that can be delivered securely arrive in your own mailbox.",
        ),
        cap = lang.t("Uw beveiligde berichten", "Your secure messages"),
        from = lang.t("Van", "From"),
        date = lang.t("Ontvangen (UTC)", "Received (UTC)"),
        st = lang.t("Status", "Status"),
    );
    let path = format!("/p/{token}/messages");
    ctx.html(
        StatusCode::OK,
        ctx.page(&path, lang.t("Uw berichten", "Your messages"), &body),
        &[],
    )
}

pub async fn message(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path((token, id)): Path<(String, String)>,
) -> Response {
    let ctx = ctx.with_brand(token_brand(&gw, Purpose::Recipient, &token).await);
    let recipient = match authorised(&gw, &ctx, &token).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let raw = match readable(&gw, &ctx, &id, &recipient).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let viewed = Event::PortalViewed {
        message_ref: id.clone(),
        recipient: recipient.clone(),
    };
    if let Err(r) = audited(&gw, &ctx, viewed).await {
        return r;
    }
    let lang = ctx.lang;
    let parsed = MessageParser::default().parse(&raw);
    let (subject, from, text, attachments) = match &parsed {
        Some(m) => (
            m.subject().unwrap_or("").to_string(),
            m.from()
                .and_then(|a| a.first())
                .map(|a| match (a.name(), a.address()) {
                    (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                    (None, Some(ad)) => ad.to_string(),
                    (Some(n), None) => n.to_string(),
                    (None, None) => String::new(),
                })
                .unwrap_or_default(),
            m.body_text(0).map(|t| t.to_string()).unwrap_or_default(),
            m.attachments()
                .enumerate()
                .map(|(i, a)| {
                    (
                        i,
                        a.attachment_name().unwrap_or("attachment").to_string(),
                        a.contents().len(),
                    )
                })
                .collect::<Vec<_>>(),
        ),
        None => (
            String::new(),
            String::new(),
            String::from_utf8_lossy(&raw).to_string(),
            Vec::new(),
        ),
    };
    let mut list = String::new();
    for (i, name, size) in &attachments {
        list.push_str(&format!(
            "<li><a href=\"/p/{token}/m/{id}/a/{i}\" download>{}</a> ({size} bytes)</li>",
            esc(name),
            id = esc(&id)
        ));
    }
    let att = if list.is_empty() {
        String::new()
    } else {
        format!(
            "<h2>{}</h2><ul>{list}</ul>",
            lang.t("Bijlagen", "Attachments")
        )
    };
    let replies = super::reply::thread(&gw, &ctx, &token, &id, &recipient).await;
    let large = super::large::list(&gw, &ctx, &token, &id).await;
    let body = format!(
        "<dl><dt>{lf}</dt><dd>{from}</dd><dt>{ls}</dt><dd>{subject}</dd></dl>\n\
         <pre>{text}</pre>\n{att}{large}\n{replies}\
         <p><a href=\"/p/{token}/m/{id}/eml\" download>{dl}</a></p>\n\
         <p><a href=\"/p/{token}/messages\">{back}</a></p>",
        lf = lang.t("Van", "From"),
        ls = lang.t("Onderwerp", "Subject"),
        from = esc(&from),
        subject = esc(&subject),
        text = esc(&text),
        dl = lang.t(
            "Download het volledige bericht (.eml)",
            "Download the complete message (.eml)"
        ),
        back = lang.t("Terug naar uw berichten", "Back to your messages"),
        id = esc(&id),
    );
    let path = format!("/p/{token}/m/{id}");
    ctx.html(
        StatusCode::OK,
        ctx.page(&path, lang.t("Bericht", "Message"), &body),
        &[],
    )
}

/// Records a portal access before the content is shown: no record, no content (fail closed).
async fn audited(gw: &Gateway, ctx: &Ctx, event: Event) -> Result<(), Response> {
    gw.store
        .append_audit(&[event])
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(error = %e, "portal: access not recorded in the audit log; refused");
            ctx.unavailable("/p/")
        })
}

fn download(name: &str, bytes: Vec<u8>) -> Response {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

pub async fn eml(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path((token, id)): Path<(String, String)>,
) -> Response {
    let recipient = match authorised(&gw, &ctx, &token).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let raw = match readable(&gw, &ctx, &id, &recipient).await {
        Ok(raw) => raw,
        Err(r) => return r,
    };
    let event = Event::PortalDownloaded {
        message_ref: id.clone(),
        recipient,
        part: "message.eml".into(),
    };
    match audited(&gw, &ctx, event).await {
        Ok(()) => download(&format!("{id}.eml"), raw),
        Err(r) => r,
    }
}

pub async fn attachment(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path((token, id, n)): Path<(String, String, usize)>,
) -> Response {
    let recipient = match authorised(&gw, &ctx, &token).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let raw = match readable(&gw, &ctx, &id, &recipient).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(m) = MessageParser::default().parse(&raw) else {
        return ctx.not_found();
    };
    let found = m.attachments().nth(n).map(|a| {
        (
            a.attachment_name().unwrap_or("attachment").to_string(),
            a.contents().to_vec(),
        )
    });
    let Some((name, bytes)) = found else {
        return ctx.not_found();
    };
    let event = Event::PortalDownloaded {
        message_ref: id.clone(),
        recipient,
        // Its position and digest, not its file name (names can say what a message is about).
        part: format!(
            "attachment {n} (sha256 {})",
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
        ),
    };
    match audited(&gw, &ctx, event).await {
        Ok(()) => download(&name, bytes),
        Err(r) => r,
    }
}

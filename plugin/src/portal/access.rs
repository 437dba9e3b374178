//! Whether a recipient may read a portal message, and its decrypted bytes: the one gate the message
//! page, its downloads and the reply form share. Opening marks the hold read (no longer withdrawable)
//! and may queue the sender's collection receipt. Calls `store`, the master key and the portal's pages.

use axum::{http::StatusCode, response::Response};

use super::session::Ctx;
use crate::{store::withdraw::PortalOpen, Gateway};

/// The decrypted message when `recipient` may read it on the portal.
pub async fn readable(
    gw: &Gateway,
    ctx: &Ctx,
    id: &str,
    recipient: &str,
) -> Result<Vec<u8>, Response> {
    // Opening marks the hold read (no longer withdrawable) and may queue the sender's receipt.
    let receipt = gw.config.portal.collection_receipt;
    match gw
        .store
        .portal_open(id, recipient, receipt, crate::time::now())
        .await
    {
        Ok(PortalOpen::Readable) => {}
        Ok(PortalOpen::Withdrawn) => return Err(super::withdraw::withdrawn_page(ctx, "/p/")),
        Ok(PortalOpen::NotReadable) => return Err(ctx.not_found()),
        Err(_) => return Err(ctx.unavailable("/p/")),
    }
    let sealed = match gw.store.held(id).await {
        Ok(Some(h)) => h.sealed,
        Ok(None) => None,
        Err(_) => return Err(ctx.unavailable("/p/")),
    };
    let Some(sealed) = sealed else {
        return Err(ctx.notice(
            StatusCode::GONE,
            "/p/",
            ctx.lang.t("Niet meer beschikbaar", "No longer available"),
            ctx.lang.t(
                "De bewaartermijn van dit bericht is verlopen.",
                "The retention period of this message has passed.",
            ),
        ));
    };
    let raw = gw.master.open(id, &sealed).map_err(|e| {
        tracing::error!(error = %e, message = id, "portal: cannot open held message");
        ctx.unavailable("/p/")
    })?;
    // Large attachments: their text parts get this recipient's download link.
    crate::hold::large::for_recipient(gw, id, recipient, raw)
        .await
        .map_err(|_| ctx.unavailable("/p/"))
}

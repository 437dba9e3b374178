//! Downloading a large attachment (`/p/{token}/b/{blob}`): the link in the released message's text part
//! and the button on the portal message page. The link's recipient must hold a portal session (the
//! usual verification: without one the browser goes to the link's landing page and gets a code), and
//! a hold of the blob's message on the portal or delivered, within its retention. The download is
//! audited before a byte is sent; the file is decrypted chunk by chunk into the response body, so memory
//! stays at a few chunks whatever its size. A chunk that does not open ends the body early (the
//! client sees fewer bytes than `Content-Length`); a bad first chunk gives an error page instead.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

use super::{
    html::esc,
    session::{authorised, token_brand, Ctx},
};
use crate::{
    audit::Event,
    challenge::Purpose,
    hold::{blob::BlobReader, large},
    store::blobs::{BlobAccess, BlobRow},
    Gateway,
};

pub async fn download(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path((token, blob_id)): Path<(String, String)>,
) -> Response {
    let ctx = ctx.with_brand(token_brand(&gw, Purpose::Recipient, &token).await);
    let recipient = match authorised(&gw, &ctx, &token).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let blob = match gw
        .store
        .blob_access(&blob_id, &recipient, crate::time::now())
        .await
    {
        Ok(BlobAccess::Allowed(b)) => b,
        Ok(BlobAccess::Gone) => return gone(&ctx),
        Ok(BlobAccess::NotFound) => return ctx.not_found(),
        Err(_) => return ctx.unavailable("/p/"),
    };
    let opened = match open(&gw, &blob).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(blob = %blob.blob_id, message = %blob.message_id, error = %e, "portal: large attachment does not open; refused");
            return ctx.unavailable("/p/");
        }
    };
    let event = Event::PortalDownloaded {
        message_ref: blob.message_id.clone(),
        recipient,
        part: part(&blob),
    };
    if let Err(e) = gw.store.append_audit(&[event]).await {
        tracing::error!(error = %e, "portal: download not recorded in the audit log; refused");
        return ctx.unavailable("/p/");
    }
    streamed(&blob, opened)
}

/// What the audit record says was downloaded: position, blob, size and digest — not the file name
/// (names can say what a message is about; the blob's row has it while the file is kept).
fn part(b: &BlobRow) -> String {
    format!(
        "large attachment {} {} ({} bytes, sha256 {})",
        b.part_index, b.blob_id, b.size, b.sha256
    )
}

/// The reader with its first chunk already opened (so a bad file gives an error page, not a body).
async fn open(
    gw: &Gateway,
    b: &BlobRow,
) -> Result<(bytes::Bytes, BlobReader), crate::hold::blob::BlobError> {
    let mut reader =
        BlobReader::open(&large::blob_dir(gw), &b.blob_id, &b.wrapped_key, &gw.master).await?;
    let first = reader.next_chunk().await?.unwrap_or_default();
    Ok((first, reader))
}

fn streamed(b: &BlobRow, (first, reader): (bytes::Bytes, BlobReader)) -> Response {
    let head = futures_util::stream::once(async move { Ok(first) });
    let body = Body::from_stream(head.chain(reader.into_stream()).map(|r| {
        r.map_err(|e| {
            tracing::error!(error = %e, "portal: large attachment stopped at a chunk that does not open");
            e
        })
    }));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, b.size.to_string()),
            (header::CONTENT_DISPOSITION, disposition(&b.filename)),
        ],
        body,
    )
        .into_response()
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266, RFC 8187).
pub fn disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn gone(ctx: &Ctx) -> Response {
    ctx.notice(
        StatusCode::GONE,
        "/p/",
        ctx.lang.t("Niet meer beschikbaar", "No longer available"),
        ctx.lang.t(
            "Deze bijlage is niet meer beschikbaar: de bewaartermijn is verlopen of de afzender heeft het bericht ingetrokken.",
            "This attachment is no longer available: its retention period has passed or the sender withdrew the message.",
        ),
    )
}

/// The message page's list of large attachments, with a download button each (empty when none).
pub async fn list(gw: &Gateway, ctx: &Ctx, token: &str, message_id: &str) -> String {
    let blobs = gw.store.blobs_of(message_id).await.unwrap_or_default();
    if blobs.is_empty() {
        return String::new();
    }
    let lang = ctx.lang;
    let items: String = blobs
        .iter()
        .map(|b| {
            format!(
                "<li>{name} ({size} bytes, SHA-256 <code>{sha}</code>) \
                 <a class=\"button\" href=\"/p/{token}/b/{id}\" download>{dl}</a></li>",
                name = esc(&b.filename),
                size = b.size,
                sha = esc(&b.sha256),
                id = esc(&b.blob_id),
                dl = lang.t("Downloaden", "Download"),
            )
        })
        .collect();
    format!(
        "<h2>{}</h2><ul>{items}</ul>",
        lang.t("Bijlagen via beveiligde link", "Attachments by secure link")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn disposition_has_an_ascii_fallback_and_the_utf8_name() {
        assert_eq!(
            super::disposition("scan ü\".pdf"),
            "attachment; filename=\"scan __.pdf\"; filename*=UTF-8''scan%20%C3%BC%22.pdf"
        );
    }
}

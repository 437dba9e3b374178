//! The secure reply: a verified portal recipient answers a message they may read on the portal, with
//! attachments, to its original sender (a local mailbox). The form ([`form`]), its `multipart/form-data`
//! POST ([`submit`]), the page that says whether it went ([`status`]) and the thread under the message
//! ([`thread`]).
//!
//! The same session rules as reading (`session::authorised`, `access::readable`); a CSRF value scoped to
//! the message; the request's size refused from its `Content-Length` before the body is read, and
//! counted while it is read (`[portal] reply_max_bytes`, `reply_max_attachments`); file names
//! sanitised; `replies_per_hour` per recipient. Bad input shows the form again with the reason and
//! stores nothing. A good reply is built, sealed and committed with its `portal_reply` audit record
//! first, then submitted (`hold::reply`), and the worker retries what did not go. Text and names are
//! shown escaped, never as HTML. Calls `store`, `hold`, the master key and the portal's parts.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{
        multipart::{Field, MultipartError, MultipartRejection},
        Multipart, Path, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use mail_parser::{MessageParser, MimeHeaders};

use super::{
    access::readable,
    csrf::{self, CsrfScope},
    html::{esc, Lang},
    session::{authorised, token_brand, Ctx},
};
use crate::{
    audit::Event,
    challenge::Purpose,
    config::REPLY_MAX_BYTES_LIMIT,
    hold::reply::{self as outgoing, Attachment, Original, Written},
    store::replies::{NewReply, ReplyLimited, ReplyState},
    Gateway,
};

/// Room for the form's own parts (boundaries, part headers, the CSRF field) above the reply's bytes.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// The request limit of the reply route (axum's `DefaultBodyLimit`): the highest configurable reply
/// and the form around it. The configured limit is enforced below it, before and while reading.
pub const BODY_LIMIT: usize = (REPLY_MAX_BYTES_LIMIT + FORM_OVERHEAD) as usize;

/// What a reply answers, and who writes it to whom.
struct Thread {
    recipient: String,
    sender: String,
    original: Original,
}

/// Why a reply was not taken. Each shows the form again with its text; nothing is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Empty,
    TooLarge,
    TooMany,
    Malformed,
    Limited,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::Empty | Refusal::TooMany | Refusal::Malformed => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Limited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn text(self, gw: &Gateway, lang: Lang) -> String {
        let p = &gw.config.portal;
        match self {
            Refusal::Empty => lang
                .t(
                    "Schrijf een bericht of voeg een bijlage toe.",
                    "Write a message or add an attachment.",
                )
                .into(),
            Refusal::TooLarge => format!(
                "{} {}.",
                lang.t(
                    "Uw antwoord is te groot: tekst en bijlagen samen mogen hoogstens",
                    "Your reply is too large: text and attachments together may be at most"
                ),
                size(p.reply_max_bytes)
            ),
            Refusal::TooMany => format!(
                "{} {}.",
                lang.t(
                    "Te veel bijlagen: u kunt er hoogstens zoveel meesturen:",
                    "Too many attachments: the most you can add is"
                ),
                p.reply_max_attachments
            ),
            Refusal::Malformed => lang
                .t(
                    "Het formulier kon niet worden gelezen. Probeer het opnieuw.",
                    "The form could not be read. Please try again.",
                )
                .into(),
            Refusal::Limited => format!(
                "{} ({}). {}",
                lang.t(
                    "U hebt het afgelopen uur al het maximale aantal antwoorden verstuurd",
                    "You have already sent the most replies allowed in one hour"
                ),
                p.replies_per_hour,
                lang.t("Probeer het later opnieuw.", "Please try again later.")
            ),
        }
    }
}

/// `10 MB`, `64 KB`, `1500 bytes`.
fn size(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MB && b % MB == 0 => format!("{} MB", b / MB),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KB", b / 1024),
        b => format!("{b} bytes"),
    }
}

fn scope(id: &str) -> CsrfScope<'_> {
    CsrfScope::Reply { message_id: id }
}

/// Whether the gateway can send a reply to `sender`: a `[stalwart]` section (the notify address) and
/// a local sender (the reply is delivered internally; it never leaves for the internet).
fn replyable(gw: &Gateway, sender: &str) -> bool {
    let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
    gw.config.stalwart.is_some() && gw.config.is_local_domain(domain)
}

/// The subject and threading ids of the original.
fn original_of(raw: &[u8]) -> Original {
    let Some(m) = MessageParser::default().parse(raw) else {
        return Original::default();
    };
    let references = match m.references() {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    };
    Original {
        subject: m.subject().unwrap_or("").to_string(),
        message_id: m.message_id().map(str::to_string),
        references,
    }
}

/// The link's recipient, the message they may read, and its sender; or the page that says why not
/// (the same answers as reading it, and 403 when this message cannot be answered).
async fn context(gw: &Gateway, ctx: &Ctx, token: &str, id: &str) -> Result<Thread, Response> {
    let recipient = authorised(gw, ctx, token).await?;
    let raw = readable(gw, ctx, id, &recipient).await?;
    let sender = match gw.store.held(id).await {
        Ok(Some(h)) => h.sender,
        Ok(None) => return Err(ctx.not_found()),
        Err(_) => return Err(ctx.unavailable("/p/")),
    };
    if !replyable(gw, &sender) {
        return Err(ctx.notice(
            StatusCode::FORBIDDEN,
            &format!("/p/{token}/m/{id}"),
            ctx.lang.t("Beantwoorden niet mogelijk", "Reply not possible"),
            ctx.lang.t(
                "Dit bericht kan niet via het portaal worden beantwoord. Neem op een andere manier contact op met de afzender.",
                "This message cannot be answered through the portal. Please contact the sender another way.",
            ),
        ));
    }
    Ok(Thread {
        recipient,
        sender,
        original: original_of(&raw),
    })
}

/// The reply form, with an error and the text written so far when a reply was refused. It shows
/// nothing of the message (its subject is content; reading it is audited on the message page).
fn form_page(
    gw: &Gateway,
    ctx: &Ctx,
    (token, id): (&str, &str),
    t: &Thread,
    refused: Option<Refusal>,
    text: &str,
) -> Response {
    let lang = ctx.lang;
    let p = &gw.config.portal;
    let (csrf_field, cookie) = csrf::field(gw, ctx, scope(id));
    // One id per form shown: a second POST of the same form (a double click, a reload) finds the reply
    // the first one stored instead of writing another.
    let field = format!(
        "{csrf_field}<input type=\"hidden\" name=\"form\" value=\"{}\">",
        crate::ids::new_id("f")
    );
    let error = refused.map_or(String::new(), |r| {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"reply-error\">{}</p>\n",
            esc(&r.text(gw, lang))
        )
    });
    let files = if p.reply_max_attachments == 0 {
        String::new()
    } else {
        format!(
            "<label for=\"attachment\">{label}</label>\
             <input type=\"file\" id=\"attachment\" name=\"attachment\" multiple aria-describedby=\"reply-hint\">",
            label = lang.t("Bijlagen", "Attachments"),
        )
    };
    let body = format!(
        "{error}<dl><dt>{lto}</dt><dd>{sender}</dd></dl>\n\
         <form method=\"post\" action=\"/p/{token}/m/{eid}/reply\" enctype=\"multipart/form-data\">{field}\
         <label for=\"text\">{lt}</label>\
         <textarea id=\"text\" name=\"text\" rows=\"10\" cols=\"60\">{text}</textarea>\
         {files}<p class=\"hint\" id=\"reply-hint\">{hint}</p>\
         <button type=\"submit\">{send}</button></form>\n\
         <p><a href=\"/p/{token}/m/{eid}\">{back}</a></p>",
        lto = lang.t("Aan", "To"),
        sender = esc(&t.sender),
        eid = esc(id),
        lt = lang.t("Uw antwoord", "Your reply"),
        text = esc(text),
        hint = esc(&format!(
            "{} {} {} {}. {}",
            lang.t("Hoogstens", "At most"),
            p.reply_max_attachments,
            lang.t("bijlagen; alles samen hoogstens", "attachments; everything together at most"),
            size(p.reply_max_bytes),
            lang.t(
                "Uw antwoord gaat beveiligd naar de afzender; uw e-mailadres wordt meegestuurd zodat de afzender u kan antwoorden.",
                "Your reply goes securely to the sender; your e-mail address is included so the sender can answer you.",
            ),
        )),
        send = lang.t("Antwoord versturen", "Send reply"),
        back = lang.t("Terug naar het bericht", "Back to the message"),
    );
    let status = refused.map_or(StatusCode::OK, Refusal::status);
    let path = format!("/p/{token}/m/{id}/reply");
    ctx.html(
        status,
        ctx.page(&path, lang.t("Beantwoorden", "Reply"), &body),
        &cookie.into_iter().collect::<Vec<_>>(),
    )
}

pub async fn form(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path((token, id)): Path<(String, String)>,
) -> Response {
    let ctx = ctx
        .with_gw(&gw)
        .with_brand(token_brand(&gw, Purpose::Recipient, &token).await);
    match context(&gw, &ctx, &token, &id).await {
        Ok(t) => form_page(&gw, &ctx, (&token, &id), &t, None, ""),
        Err(r) => r,
    }
}

/// The posted form as far as it was read: the CSRF value, the text, the files, and why it stopped.
#[derive(Default)]
struct Posted {
    csrf: Option<String>,
    /// The form's own id (`f-<32 hex>`, see [`form_page`]).
    form_id: Option<String>,
    text: String,
    files: Vec<Attachment>,
    refused: Option<Refusal>,
}

/// Reads the form, counting every byte of text and files against `max_bytes` as it arrives (never
/// more than that plus one chunk is held) and stopping at the first problem.
async fn read_form(mut form: Multipart, max_bytes: u64, max_files: u32) -> Posted {
    let mut posted = Posted::default();
    let mut total: u64 = 0;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return posted,
            Err(e) => {
                posted.refused = Some(refusal_of(&e));
                return posted;
            }
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        // An empty file input is sent as a part without a file name and without bytes.
        let is_file = name == "attachment" && file_name.as_deref().is_some_and(|n| !n.is_empty());
        if is_file && posted.files.len() as u64 >= u64::from(max_files) {
            posted.refused = Some(Refusal::TooMany);
            return posted;
        }
        let room = if name == "csrf" || name == "form" {
            256
        } else {
            max_bytes - total
        };
        let bytes = match read_capped(field, room).await {
            Ok(b) => b,
            Err(r) => {
                posted.refused = Some(r);
                return posted;
            }
        };
        match name.as_str() {
            "csrf" => posted.csrf = String::from_utf8(bytes).ok(),
            "form" => posted.form_id = String::from_utf8(bytes).ok().filter(|f| is_form_id(f)),
            "text" => {
                total += bytes.len() as u64;
                match String::from_utf8(bytes) {
                    Ok(t) => posted.text = t,
                    Err(_) => posted.refused = Some(Refusal::Malformed),
                }
            }
            "attachment" if is_file => {
                total += bytes.len() as u64;
                posted.files.push(Attachment {
                    name: sanitise(file_name.as_deref().unwrap_or("")),
                    bytes,
                });
            }
            _ => total += bytes.len() as u64,
        }
        if posted.refused.is_some() {
            return posted;
        }
    }
}

/// `f-` and 32 lower-case hex digits, as [`crate::ids::new_id`] makes them.
fn is_form_id(s: &str) -> bool {
    s.strip_prefix("f-").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// One field's bytes, at most `room` of them.
async fn read_capped(mut field: Field<'_>, room: u64) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if (out.len() + chunk.len()) as u64 > room {
                    return Err(Refusal::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(refusal_of(&e)),
        }
    }
}

fn refusal_of(e: &MultipartError) -> Refusal {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal::TooLarge
    } else {
        Refusal::Malformed
    }
}

/// A file name as it may appear in the reply: no folders, no control characters, none of the
/// characters file systems refuse, at most 120 characters, never empty.
pub fn sanitise(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '*' | ':' | '<' | '>' | '?' | '|'))
        .take(120)
        .collect();
    let clean = clean.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if clean.is_empty() {
        "bijlage".into()
    } else {
        clean.to_string()
    }
}

pub async fn submit(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path((token, id)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let ctx = ctx
        .with_gw(&gw)
        .with_brand(token_brand(&gw, Purpose::Recipient, &token).await);
    let t = match context(&gw, &ctx, &token, &id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let path = format!("/p/{token}/m/{id}/reply");
    let ids = (token.as_str(), id.as_str());
    let p = &gw.config.portal;
    // Refused before a byte of the body is read when it says it is too large.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > p.reply_max_bytes + FORM_OVERHEAD) {
        return form_page(&gw, &ctx, ids, &t, Some(Refusal::TooLarge), "");
    }
    // Not a multipart form: not sent by the reply form.
    let Ok(form) = form else {
        return csrf::refused(&ctx, &path);
    };
    let posted = read_form(form, p.reply_max_bytes, p.reply_max_attachments).await;
    let fields: HashMap<String, String> = posted
        .csrf
        .clone()
        .map(|v| ("csrf".to_string(), v))
        .into_iter()
        .collect();
    // Without its form id the POST did not come from the reply form.
    let (true, Some(form_id)) = (
        csrf::ok(&gw, &ctx, &fields, scope(&id)),
        posted.form_id.clone(),
    ) else {
        return csrf::refused(&ctx, &path);
    };
    let refused = posted.refused.or_else(|| {
        (posted.text.trim().is_empty() && posted.files.is_empty()).then_some(Refusal::Empty)
    });
    if let Some(r) = refused {
        return form_page(&gw, &ctx, ids, &t, Some(r), &posted.text);
    }
    match persist(&gw, &t, (&id, &form_id), &posted).await {
        Ok(Ok(reply_id)) => {
            submit_soon(&gw, &reply_id).await;
            Redirect::to(&format!("{path}/{reply_id}")).into_response()
        }
        Ok(Err(ReplyLimited)) => {
            form_page(&gw, &ctx, ids, &t, Some(Refusal::Limited), &posted.text)
        }
        Err(()) => ctx.unavailable(&path),
    }
}

/// Submits a committed reply in a task of its own and waits for it a little: a quick listener makes
/// the next page say "sent"; a slow one finishes in the background (never cut off mid-transaction),
/// and what fails is retried by the worker.
async fn submit_soon(gw: &Arc<Gateway>, reply_id: &str) {
    let task = tokio::spawn({
        let (gw, id) = (gw.clone(), reply_id.to_string());
        async move { outgoing::send_now(&gw, &id).await }
    });
    if let Ok(Ok(Err(e))) = tokio::time::timeout(SUBMIT_WAIT, task).await {
        tracing::warn!(reply = %reply_id, error = %e, "portal reply not submitted yet; the worker retries");
    }
    gw.wake.now();
}

/// How long the POST waits for the reply's first submission before it answers.
const SUBMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Builds, seals and commits the reply with its audit record; the id of the reply this form stored
/// (a form posted again stores nothing new). `Ok(Err(..))`: over the hourly limit, nothing stored.
async fn persist(
    gw: &Gateway,
    t: &Thread,
    (id, form_id): (&str, &str),
    posted: &Posted,
) -> Result<Result<String, ReplyLimited>, ()> {
    let now = crate::time::now();
    let reply_id = crate::ids::new_id("r");
    let written = Written {
        reply_id: &reply_id,
        recipient: &t.recipient,
        sender: &t.sender,
        text: &posted.text,
        attachments: &posted.files,
    };
    let raw = outgoing::compose(gw, &t.original, &written, now).ok_or(())?;
    let sealed = gw.master.seal(&reply_id, &raw).map_err(|e| {
        tracing::error!(error = %e, "portal reply: cannot seal");
    })?;
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &raw));
    let event = Event::PortalReply {
        message_ref: id.to_string(),
        recipient: t.recipient.clone(),
        sender: t.sender.clone(),
        reply_id: reply_id.clone(),
        bytes: raw.len() as u64,
        attachments: posted.files.len() as u32,
        sha256: sha256.clone(),
    };
    let new = NewReply {
        id: &reply_id,
        message_id: id,
        form_id,
        recipient: &t.recipient,
        sender: &t.sender,
        sealed: &sealed,
        size: raw.len() as i64,
        attachments: posted.files.len() as i64,
        sha256: &sha256,
    };
    let per_hour = gw.config.portal.replies_per_hour;
    match gw.store.add_reply(&new, per_hour, event, now).await {
        Ok(Ok(stored)) => Ok(Ok(stored)),
        Ok(Err(limited)) => Ok(Err(limited)),
        Err(e) => {
            tracing::error!(error = %e, "portal reply not stored; refused");
            Err(())
        }
    }
}

/// "Sent" or "being sent", in this language.
fn state_text(lang: Lang, state: ReplyState) -> &'static str {
    match state {
        ReplyState::Sent => lang.t("Verstuurd", "Sent"),
        ReplyState::Uncertain => lang.t(
            "Wordt gecontroleerd door de beheerder",
            "Being checked by the administrator",
        ),
        ReplyState::Pending | ReplyState::Sending | ReplyState::Committing => {
            lang.t("Wordt verstuurd", "Being sent")
        }
    }
}

/// After a reply was taken: whether it went.
pub async fn status(
    State(gw): State<Arc<Gateway>>,
    ctx: Ctx,
    Path((token, id, reply_id)): Path<(String, String, String)>,
) -> Response {
    let ctx = ctx
        .with_gw(&gw)
        .with_brand(token_brand(&gw, Purpose::Recipient, &token).await);
    let recipient = match authorised(&gw, &ctx, &token).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let reply = match gw.store.reply(&reply_id).await {
        Ok(Some(r)) if r.recipient == recipient && r.message_id == id => r,
        Ok(_) => return ctx.not_found(),
        Err(_) => return ctx.unavailable("/p/"),
    };
    let lang = ctx.lang;
    let (title, text) = match reply.state {
        ReplyState::Sent => (
            lang.t("Uw antwoord is verstuurd", "Your reply was sent"),
            lang.t(
                "Uw antwoord is beveiligd verstuurd naar",
                "Your reply was sent securely to",
            ),
        ),
        _ => (
            lang.t("Uw antwoord wordt verstuurd", "Your reply is being sent"),
            lang.t(
                "Uw antwoord is veilig bewaard en wordt zo snel mogelijk verstuurd naar",
                "Your reply is safely stored and will be sent as soon as possible to",
            ),
        ),
    };
    let body = format!(
        "<p class=\"ok\" role=\"status\">{}</p>\n<p><a href=\"/p/{token}/m/{}#replies\">{}</a></p>",
        esc(&format!("{text} {}.", reply.sender)),
        esc(&id),
        lang.t("Terug naar het bericht", "Back to the message"),
    );
    let path = format!("/p/{token}/m/{id}/reply/{reply_id}");
    ctx.html(StatusCode::OK, ctx.page(&path, title, &body), &[])
}

/// The reply link and the recipient's earlier replies to this message, for the message page (HTML;
/// every text from a reply escaped). Empty when the message cannot be answered.
pub async fn thread(gw: &Gateway, ctx: &Ctx, token: &str, id: &str, recipient: &str) -> String {
    let lang = ctx.lang;
    let sender = match gw.store.held(id).await {
        Ok(Some(h)) => h.sender,
        _ => return String::new(),
    };
    if !replyable(gw, &sender) {
        return String::new();
    }
    let link = format!(
        "<p><a href=\"/p/{token}/m/{}/reply\">{}</a></p>\n",
        esc(id),
        lang.t("Beantwoorden", "Reply")
    );
    let replies = match gw.store.replies_of(id, recipient).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, message = id, "portal: replies not listed");
            return link;
        }
    };
    if replies.is_empty() {
        return link;
    }
    let mut items = String::new();
    for r in &replies {
        items.push_str(&reply_item(gw, lang, r));
    }
    format!(
        "{link}<section id=\"replies\" aria-labelledby=\"replies-title\">\
         <h2 id=\"replies-title\">{}</h2>\n{items}</section>\n",
        lang.t("Uw antwoorden", "Your replies")
    )
}

/// One earlier reply: time and state, subject, text, attachment names.
fn reply_item(gw: &Gateway, lang: Lang, r: &crate::store::replies::ReplyRow) -> String {
    let when = crate::time::rfc3339(r.created_at)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string();
    let head = format!("<h3>{when} UTC – {}</h3>", esc(state_text(lang, r.state)));
    let raw = r
        .sealed
        .as_ref()
        .and_then(|s| gw.master.open(&r.id, s).ok());
    let Some(m) = raw
        .as_deref()
        .and_then(|raw| MessageParser::default().parse(raw))
    else {
        return format!(
            "<article class=\"reply\">{head}<p>{}</p></article>\n",
            lang.t(
                "Inhoud niet meer beschikbaar.",
                "Content no longer available."
            )
        );
    };
    let text = m.body_text(0).map(|t| t.to_string()).unwrap_or_default();
    // The first line (sent via the portal by …) is the gateway's, not the recipient's.
    let text = text
        .split_once('\n')
        .filter(|(first, _)| first.starts_with("Verzonden via het beveiligde portaal"))
        .map_or(text.as_str(), |(_, rest)| rest)
        .trim();
    let files: String = m
        .attachments()
        .map(|a| {
            format!(
                "<li>{} ({} bytes)</li>",
                esc(a.attachment_name().unwrap_or("bijlage")),
                a.contents().len()
            )
        })
        .collect();
    let files = if files.is_empty() {
        String::new()
    } else {
        format!("<ul>{files}</ul>")
    };
    format!(
        "<article class=\"reply\">{head}<p>{}: {}</p><pre>{}</pre>{files}</article>\n",
        lang.t("Onderwerp", "Subject"),
        esc(m.subject().unwrap_or("")),
        esc(text),
    )
}

#[cfg(test)]
mod tests {
    use super::{sanitise, size};

    #[test]
    fn file_names_are_made_harmless() {
        assert_eq!(sanitise("C:\\Users\\eva\\uitslag.pdf"), "uitslag.pdf");
        assert_eq!(sanitise("../../etc/passwd"), "passwd");
        assert_eq!(sanitise("a\r\nContent-Type: x.pdf"), "aContent-Type x.pdf");
        assert_eq!(sanitise("\"quoted\"<>|?*.txt"), "quoted.txt");
        assert_eq!(sanitise("..."), "bijlage");
        assert_eq!(sanitise(""), "bijlage");
        assert_eq!(
            sanitise("Verslag – überweisung.pdf"),
            "Verslag – überweisung.pdf"
        );
        assert_eq!(sanitise(&"x".repeat(300)).len(), 120);
    }

    #[test]
    fn sizes() {
        assert_eq!(size(10 * 1024 * 1024), "10 MB");
        assert_eq!(size(65_536), "64 KB");
        assert_eq!(size(1500), "1500 bytes");
    }
}

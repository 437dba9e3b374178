//! Admin API handlers. Input is validated into typed values before anything is stored; input the
//! OpenAPI document does not allow is a 400 problem that says what is wrong, well-formed input that
//! cannot be done a 422 (`refused`), a request that does not fit the current state a 409
//! (`conflict`) — each changes nothing; an unknown id is a 404 problem.
//!
//! Strings stop here: query parameters and bodies become [`super::choice`] enums and
//! [`super::validate`] values, and only wire names go on to the store.

use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::json;

use super::{
    choice::{AuditFormat, ExemptionScope, ImportMode, ReportFormat},
    csv, validate, AdminState,
};
use crate::{
    audit::{export, Kind},
    http::problem::Problem,
    store::{
        admin::{RecipientIn, Resolved, SettingsIn},
        audit::AuditQuery,
        withdraw::WithdrawOutcome,
        StoreError,
    },
    time,
};

type St = State<Arc<AdminState>>;
/// The query string as pairs; [`params`] makes it a map and refuses a parameter given twice.
type Params = Query<Vec<(String, String)>>;
type Answer = Result<Response, Problem>;

/// Input the OpenAPI document does not allow (a pattern, range or type): 400.
fn bad(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-input", detail)
}

/// Input of the right form that cannot be done as asked (a time in the past, a CSV with bad rows under
/// `all_or_nothing`): 422. Nothing changed.
fn refused(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", detail)
}

/// A request that does not fit the current state (a hold that is not uncertain, a recipient no longer
/// held): 409. Nothing changed.
fn conflict(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::CONFLICT, "conflict", detail)
}

/// The query parameters by name; each at most once (`limit=5&limit=6` is refused, not guessed at).
fn params(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, Problem> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if map.contains_key(&k) {
            return Err(bad(format!("query parameter {k} is given more than once")));
        }
        map.insert(k, v);
    }
    Ok(map)
}

fn not_found(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
}

fn unavailable(e: StoreError) -> Problem {
    tracing::error!(error = %e, "admin API: database error");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily-unavailable",
        e.to_string(),
    )
}

/// A JSON object body into `T` (unknown fields refused), as a 400 problem when it does not fit. Only an
/// object: serde would also read a struct from an array (`[null, null]`), which the document forbids.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(bad("request body: expected a JSON object ({…})"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "request body: line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

fn limit(q: &HashMap<String, String>, default: i64, max: i64) -> Result<i64, Problem> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| bad(format!("limit must be a number from 1 to {max}, not {v:?}"))),
    }
}

fn ok(v: impl serde::Serialize) -> Answer {
    Ok(Json(v).into_response())
}

// ---- recipients ----

/// Recipients in address order, `limit` at a time; `after` (a `next_after`) continues a listing, empty
/// or absent starts it.
pub async fn list_recipients(State(s): St, Query(q): Params) -> Answer {
    let q = params(q)?;
    let limit = limit(&q, 1000, 10_000)?;
    let after = match q.get("after").map(String::as_str) {
        None | Some("") => String::new(),
        Some(a) => validate::address(a).map_err(bad)?,
    };
    let rows = s
        .store
        .list_recipients(&after, limit)
        .await
        .map_err(unavailable)?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.address.clone()))
        .flatten();
    ok(json!({ "recipients": rows, "next_after": next }))
}

pub async fn get_recipient(State(s): St, Path(address): Path<String>) -> Answer {
    let address = validate::address(&address).map_err(bad)?;
    match s.store.get_recipient(&address).await.map_err(unavailable)? {
        Some(r) => ok(r),
        None => Err(not_found(format!("no recipient {address}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientBody {
    pub phone: Option<String>,
    pub verified_until: Option<String>,
}

pub async fn put_recipient(State(s): St, Path(address): Path<String>, b: Bytes) -> Answer {
    let address = validate::address(&address).map_err(bad)?;
    let input: RecipientBody = body(&b)?;
    let r = RecipientIn {
        address: address.clone(),
        phone: input
            .phone
            .as_deref()
            .map(validate::phone)
            .transpose()
            .map_err(bad)?,
        verified_until: input
            .verified_until
            .as_deref()
            .map(|t| validate::time("verified_until", t))
            .transpose()
            .map_err(bad)?,
    };
    s.store
        .put_recipient(&s.actor, &r, time::now())
        .await
        .map_err(unavailable)?;
    let stored = s.store.get_recipient(&address).await.map_err(unavailable)?;
    ok(stored)
}

pub async fn delete_recipient(State(s): St, Path(address): Path<String>) -> Answer {
    let address = validate::address(&address).map_err(bad)?;
    if s.store
        .delete_recipient(&s.actor, &address, time::now())
        .await
        .map_err(unavailable)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(format!("no recipient {address}")))
    }
}

pub async fn reset_verification(State(s): St, Path(address): Path<String>) -> Answer {
    let address = validate::address(&address).map_err(bad)?;
    if s.store
        .reset_verification(&s.actor, &address, time::now())
        .await
        .map_err(unavailable)?
    {
        ok(s.store.get_recipient(&address).await.map_err(unavailable)?)
    } else {
        Err(not_found(format!("no recipient {address}")))
    }
}

/// CSV upload. Bad rows are reported with their line numbers; the good rows are imported, unless
/// `all_or_nothing=true`, which imports nothing when any row is bad (then 422).
pub async fn import_recipients(State(s): St, Query(q): Params, b: Bytes) -> Answer {
    let q = params(q)?;
    let mode = ImportMode::from_query(q.get("all_or_nothing").map(String::as_str)).map_err(bad)?;
    let text = std::str::from_utf8(&b).map_err(|e| bad(format!("the CSV is not UTF-8: {e}")))?;
    let parsed = csv::parse(text).map_err(bad)?;
    if mode == ImportMode::AllOrNothing && !parsed.errors.is_empty() {
        return Err(refused(format!(
            "{} bad rows, nothing imported: {}",
            parsed.errors.len(),
            parsed
                .errors
                .iter()
                .map(|e| format!("line {}: {}", e.line, e.error))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    s.store
        .import_recipients(&s.actor, &parsed.rows, parsed.errors.len(), time::now())
        .await
        .map_err(unavailable)?;
    ok(json!({ "imported": parsed.rows.len(), "rejected": parsed.errors }))
}

pub async fn export_recipients(State(s): St) -> Answer {
    let mut out = format!("{}\r\n", csv::HEADER);
    let mut after = String::new();
    loop {
        let page = s
            .store
            .list_recipients(&after, 5000)
            .await
            .map_err(unavailable)?;
        for r in &page {
            out.push_str(&csv::line(
                &r.address,
                r.phone.as_deref(),
                r.verified_until.as_deref(),
            ));
        }
        match page.last() {
            Some(last) if page.len() == 5000 => after = last.address.clone(),
            _ => break,
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
}

// ---- exemptions ----

pub async fn list_exemptions(State(s): St) -> Answer {
    ok(json!({ "exemptions": s.store.list_exemptions().await.map_err(unavailable)? }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionBody {
    pub kind: String,
    pub value: String,
    pub reason: String,
    pub expires_at: Option<String>,
}

pub async fn add_exemption(State(s): St, b: Bytes) -> Answer {
    let input: ExemptionBody = body(&b)?;
    let kind = ExemptionScope::parse(&input.kind).map_err(bad)?;
    let value = kind.value(&input.value).map_err(bad)?;
    let reason = validate::text("reason", &input.reason, 500).map_err(bad)?;
    let now = time::now();
    let expires_at = input
        .expires_at
        .as_deref()
        .map(|t| validate::time("expires_at", t))
        .transpose()
        .map_err(bad)?;
    if expires_at.is_some_and(|e| e <= now) {
        return Err(refused("expires_at is in the past"));
    }
    let id = s
        .store
        .put_exemption(&s.actor, kind.as_str(), &value, &reason, expires_at, now)
        .await
        .map_err(unavailable)?;
    let all = s.store.list_exemptions().await.map_err(unavailable)?;
    let created = all.into_iter().find(|e| e.id == id);
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn delete_exemption(State(s): St, Path(id): Path<String>) -> Answer {
    let id = validate::id("exemption", "ex", &id).map_err(bad)?;
    if s.store
        .delete_exemption(&s.actor, &id, time::now())
        .await
        .map_err(unavailable)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(format!("no exemption with id {id:?}")))
    }
}

// ---- peers ----

pub async fn list_peers(State(s): St) -> Answer {
    ok(json!({ "peers": s.store.list_peers().await.map_err(unavailable)? }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerBody {
    pub provider: String,
}

pub async fn put_peer(State(s): St, Path(domain): Path<String>, b: Bytes) -> Answer {
    let domain = validate::domain(&domain).map_err(bad)?;
    let input: PeerBody = body(&b)?;
    let provider = validate::text("provider", &input.provider, 200).map_err(bad)?;
    s.store
        .put_peer(&s.actor, &domain, &provider, time::now())
        .await
        .map_err(unavailable)?;
    ok(json!({ "domain": domain, "provider": provider }))
}

pub async fn delete_peer(State(s): St, Path(domain): Path<String>) -> Answer {
    let domain = validate::domain(&domain).map_err(bad)?;
    if s.store
        .delete_peer(&s.actor, &domain, time::now())
        .await
        .map_err(unavailable)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(format!("{domain} is not on the peer list")))
    }
}

// ---- held messages ----

pub async fn list_held(State(s): St, Query(q): Params) -> Answer {
    let q = params(q)?;
    let limit = limit(&q, 100, 1000)?;
    ok(json!({ "held": s.store.list_held(limit).await.map_err(unavailable)? }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    pub recipient: Option<String>,
}

/// The optional `{"recipient": …}` of a held-message action (an empty body: every recipient).
fn optional_recipient(b: &Bytes) -> Result<Option<String>, Problem> {
    let input: ReleaseBody = if b.iter().all(u8::is_ascii_whitespace) {
        ReleaseBody::default()
    } else {
        body(b)?
    };
    input
        .recipient
        .as_deref()
        .map(validate::address)
        .transpose()
        .map_err(bad)
}

pub async fn release_to_portal(State(s): St, Path(id): Path<String>, b: Bytes) -> Answer {
    let id = validate::id("held message", "h", &id).map_err(bad)?;
    let recipient = optional_recipient(&b)?;
    if !s.store.held_exists(&id).await.map_err(unavailable)? {
        return Err(not_found(format!("no held message with id {id:?}")));
    }
    let changed = s
        .store
        .release_to_portal(&s.actor, &id, recipient.as_deref(), time::now())
        .await
        .map_err(unavailable)?;
    if changed.is_empty() {
        if let Some(r) = recipient {
            return Err(conflict(format!(
                "{r} is not a recipient of {id} still held for the inbox"
            )));
        }
    }
    ok(json!({ "id": id, "to_portal": changed }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    pub recipient: String,
    /// What the operator found in Stalwart: delivered (or queued) — or not, and it is to be sent again.
    pub delivered: bool,
}

pub async fn resolve_held(State(s): St, Path(id): Path<String>, b: Bytes) -> Answer {
    let id = validate::id("held message", "h", &id).map_err(bad)?;
    let input: ResolveBody = body(&b)?;
    let recipient = validate::address(&input.recipient).map_err(bad)?;
    if !s.store.held_exists(&id).await.map_err(unavailable)? {
        return Err(not_found(format!("no held message with id {id:?}")));
    }
    match s
        .store
        .resolve_uncertain(&s.actor, &id, &recipient, input.delivered, time::now())
        .await
        .map_err(unavailable)?
    {
        Resolved::Done(state) => ok(json!({ "id": id, "recipient": recipient, "state": state })),
        Resolved::NoSuchHold => Err(not_found(format!("{id} has no hold for {recipient}"))),
        Resolved::NotUncertain(state) => Err(conflict(format!(
            "the hold of {id} for {recipient} is {state}: only an uncertain release can be resolved"
        ))),
    }
}

pub async fn delete_held(State(s): St, Path(id): Path<String>) -> Answer {
    let id = validate::id("held message", "h", &id).map_err(bad)?;
    if s.store
        .delete_held(&s.actor, &id, time::now())
        .await
        .map_err(unavailable)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(format!("no held message with id {id:?}")))
    }
}

/// Withdraws a message for its sender (all recipients not yet delivered or read, or `recipient`):
/// 200 with what became of each; 409 when none could be withdrawn (already delivered, read, …).
pub async fn withdraw_held(State(s): St, Path(id): Path<String>, b: Bytes) -> Answer {
    let id = validate::id("held message", "h", &id).map_err(bad)?;
    let recipient = optional_recipient(&b)?;
    let by = crate::audit::WithdrawnBy::Admin {
        actor: s.actor.clone(),
    };
    let Some(outcomes) = s
        .store
        .withdraw(&id, recipient.as_deref(), &by, time::now())
        .await
        .map_err(unavailable)?
    else {
        return Err(not_found(format!("no held message with id {id:?}")));
    };
    if outcomes.is_empty() {
        let r = recipient.unwrap_or_default();
        return Err(not_found(format!("{id} has no hold for {r}")));
    }
    let withdrawn: Vec<&str> = outcomes
        .iter()
        .filter(|(_, o)| *o == WithdrawOutcome::Withdrawn)
        .map(|(r, _)| r.as_str())
        .collect();
    let refused: Vec<serde_json::Value> = outcomes
        .iter()
        .filter(|(_, o)| *o != WithdrawOutcome::Withdrawn)
        .map(|(r, o)| json!({ "recipient": r, "reason": o.as_str() }))
        .collect();
    if withdrawn.is_empty() {
        let why: Vec<String> = outcomes
            .iter()
            .map(|(r, o)| format!("{r}: {}", withdraw_refusal(*o)))
            .collect();
        return Err(conflict(format!(
            "{id} cannot be withdrawn ({})",
            why.join("; ")
        )));
    }
    ok(json!({ "id": id, "withdrawn": withdrawn, "refused": refused }))
}

/// Why a hold was not withdrawn, for the 409 problem.
fn withdraw_refusal(o: WithdrawOutcome) -> &'static str {
    match o {
        WithdrawOutcome::Delivered => "cannot be withdrawn, it was already delivered",
        WithdrawOutcome::BeingDelivered => "cannot be withdrawn, it is being delivered",
        WithdrawOutcome::Read => "cannot be withdrawn, it was already read on the portal",
        WithdrawOutcome::AlreadyWithdrawn => "already withdrawn",
        WithdrawOutcome::Gone => "no longer held (expired or deleted)",
        WithdrawOutcome::Withdrawn => "withdrawn",
    }
}

// ---- settings per sender domain ----

pub async fn list_settings(State(s): St) -> Answer {
    ok(json!({ "settings": s.store.list_settings().await.map_err(unavailable)? }))
}

pub async fn get_settings(State(s): St, Path(domain): Path<String>) -> Answer {
    let domain = validate::domain(&domain).map_err(bad)?;
    match s.store.get_settings(&domain).await.map_err(unavailable)? {
        Some(v) => ok(v),
        None => Err(not_found(format!("no settings for {domain}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// A JSON number: `30` and `30.0` are the same integer to JSON Schema, so both are read.
    pub retention_days: Option<serde_json::Number>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub hold_confirmation: Option<bool>,
    pub collection_receipt: Option<bool>,
}

pub async fn put_settings(State(s): St, Path(domain): Path<String>, b: Bytes) -> Answer {
    let domain = validate::domain(&domain).map_err(bad)?;
    let input: SettingsBody = body(&b)?;
    let retention_days = input
        .retention_days
        .map(|n| {
            whole_number(&n)
                .filter(|d| (1..=90).contains(d))
                .ok_or_else(|| {
                    bad(format!(
                        "retention_days must be 1 to 90 (NTA 7516 practice; a whole number), not {n}"
                    ))
                })
        })
        .transpose()?;
    let groups = input
        .groups
        .iter()
        .map(|g| validate::text("group", g, 64))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let settings = SettingsIn {
        retention_days,
        groups,
        hold_confirmation: input.hold_confirmation,
        collection_receipt: input.collection_receipt,
    };
    s.store
        .put_settings_with(&s.actor, &domain, &settings, time::now())
        .await
        .map_err(unavailable)?;
    ok(s.store.get_settings(&domain).await.map_err(unavailable)?)
}

/// A JSON number that is a whole number (`30`, `30.0`, `3e1`), as JSON Schema's `integer` means it.
fn whole_number(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
            .map(|f| f as i64)
    })
}

pub async fn delete_settings(State(s): St, Path(domain): Path<String>) -> Answer {
    let domain = validate::domain(&domain).map_err(bad)?;
    if s.store
        .delete_settings(&s.actor, &domain, time::now())
        .await
        .map_err(unavailable)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(format!("no settings for {domain}")))
    }
}

// ---- audit ----

/// Audit records by message, recipient, kind and time (RFC 3339), paged by `after_seq`; `format=csv`
/// or `format=jsonl` for an export.
pub async fn audit_query(State(s): St, Query(q): Params) -> Answer {
    let q = params(q)?;
    let format = AuditFormat::parse(q.get("format").map(String::as_str)).map_err(bad)?;
    let time_param = |k: &str| {
        q.get(k)
            .map(|v| validate::time(k, v))
            .transpose()
            .map_err(bad)
    };
    let query = AuditQuery {
        message_id: q.get("message_id").map(|m| message_id(m)).transpose()?,
        recipient: q
            .get("recipient")
            .map(|r| validate::address(r))
            .transpose()
            .map_err(bad)?,
        kind: q.get("kind").map(|k| audit_kind(k)).transpose()?,
        since: time_param("since")?,
        until: time_param("until")?,
        after_seq: q
            .get("after_seq")
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0 && !v.starts_with('+'))
                    .ok_or_else(|| bad(format!("after_seq must be a number from 0, not {v:?}")))
            })
            .transpose()?,
        limit: Some(limit(&q, 1000, 10_000)?),
    };
    let records = s.store.audit_query(&query).await.map_err(unavailable)?;
    match format {
        AuditFormat::Json => {
            let next = records.last().map(|r| r.seq);
            ok(json!({ "records": records, "next_after_seq": next }))
        }
        AuditFormat::Jsonl => Ok((
            [(header::CONTENT_TYPE, "application/jsonl")],
            records.iter().map(export::json_line).collect::<String>(),
        )
            .into_response()),
        AuditFormat::Csv => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            std::iter::once(export::CSV_HEADER.to_string())
                .chain(records.iter().map(export::csv_line))
                .collect::<String>(),
        )
            .into_response()),
    }
}

/// The `kind` filter: one of the record kinds, else a 400 that lists them.
fn audit_kind(name: &str) -> Result<String, Problem> {
    match Kind::parse(name) {
        Some(kind) => Ok(kind.as_str().to_string()),
        None => Err(bad(format!(
            "kind must be one of {}, not {name:?}",
            Kind::ALL.map(Kind::as_str).join(", ")
        ))),
    }
}

pub async fn audit_verify(State(s): St) -> Answer {
    let v = s.store.verify_audit().await.map_err(unavailable)?;
    let findings: Vec<_> = v
        .findings
        .iter()
        .map(|f| {
            let mut j = serde_json::to_value(f).unwrap_or_default();
            j["text"] = json!(f.to_string());
            j
        })
        .collect();
    ok(json!({
        "ok": v.ok(),
        "records": v.records,
        "head_seq": v.head_seq,
        "head_hash": v.head_hash,
        "findings": findings,
    }))
}

/// A message id: held messages are `h-…`, messages that went out at once `m-…`.
fn message_id(input: &str) -> Result<String, Problem> {
    validate::id("message", "h", input)
        .or_else(|_| validate::id("message", "m", input))
        .map_err(|_| {
            bad(format!(
                "invalid message id {input:?}: expected h- or m- followed by 32 lower-case hex digits"
            ))
        })
}

pub async fn audit_report(
    State(s): St,
    Path(message_id): Path<String>,
    Query(q): Params,
) -> Answer {
    let q = params(q)?;
    let format = ReportFormat::parse(q.get("format").map(String::as_str)).map_err(bad)?;
    let message_id = self::message_id(&message_id)?;
    let Some(report) = s
        .store
        .audit_report(&message_id)
        .await
        .map_err(unavailable)?
    else {
        return Err(not_found(format!(
            "the audit log has no records for message {message_id:?}"
        )));
    };
    match format {
        ReportFormat::Json => ok(report),
        ReportFormat::Text => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            report.to_text(),
        )
            .into_response()),
        ReportFormat::Html => Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report.to_html(),
        )
            .into_response()),
    }
}

/// `POST /v1/admin/policy/reload`: compile `[policy] file` and swap it in; a policy that does not compile
/// is refused (422, `file:line:column: message`) and the active one stays. Audited either way.
pub async fn reload_policy(State(s): St) -> Answer {
    let Some(reload) = s.reload_policy.as_ref() else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no-running-gateway",
            "a policy reload applies to a running gateway: use --url, or send it SIGHUP",
        ));
    };
    let result = reload();
    if let Err(e) = &result {
        if e.starts_with("no [policy] file") {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "no-policy-file",
                e.clone(),
            ));
        }
    }
    let (ok_, text) = match &result {
        Ok(m) => (true, m.clone()),
        Err(e) => (false, e.clone()),
    };
    s.store
        .append_audit(&[crate::audit::Event::Admin {
            actor: s.actor.clone(),
            action: "policy_reload".into(),
            target: "policy".into(),
            message_ref: None,
            details: json!({ "reloaded": ok_, "message": text }),
        }])
        .await
        .map_err(unavailable)?;
    match result {
        Ok(message) => ok(json!({ "reloaded": true, "message": message })),
        Err(e) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy-refused",
            e,
        )),
    }
}

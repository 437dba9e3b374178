//! `stalwart-nta7516 admin …` and `audit …`: each command is one admin API request, sent to a running
//! gateway (`--url`, `--token`) or handled in-process by the same router over the local database (the
//! configuration's `storage.url`), so both ways behave identically.
//!
//! It owns the clap commands and their translation into requests; it calls only the admin router
//! ([`super::routes`]), the store (to open it) and the audit export formats.

use std::path::PathBuf;

use axum::http::{header, Method, Request};
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tower::ServiceExt;

use super::{
    choice::{ExemptionScope, ExportFormat, ImportMode, ReportFormat, ResolveOutcome},
    routes, AdminState,
};
use crate::{audit::export, audit::Record, config::Config, store::Store};

/// Where the commands go.
#[derive(Debug, Args)]
pub struct Target {
    /// Gateway configuration (its database is used directly). Without it and without --url: the
    /// embedded default's database under --data-dir.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded default.
    #[arg(long, default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// Send the request to a running gateway's admin API instead, e.g. http://127.0.0.1:8470
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Admin token for --url. A generated token is base64url and may begin with `-` (one in 64).
    #[arg(
        long,
        env = "NTA7516_ADMIN_TOKEN",
        global = true,
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Recipients: address ↔ phone (E.164), verified-until.
    #[command(subcommand)]
    Recipients(RecipientsCmd),
    /// Exemptions from 2FA (addresses and domains).
    #[command(subcommand)]
    Exemptions(ExemptionsCmd),
    /// The NTA 7516 peer list.
    #[command(subcommand)]
    Peers(PeersCmd),
    /// Held messages.
    #[command(subcommand)]
    Held(HeldCmd),
    /// Settings per sender domain.
    #[command(subcommand)]
    Settings(SettingsCmd),
}

#[derive(Debug, Subcommand)]
pub enum RecipientsCmd {
    List {
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    Get {
        address: String,
    },
    Set {
        address: String,
        /// E.164, e.g. +31612345678
        #[arg(long)]
        phone: Option<String>,
        /// RFC 3339, e.g. 2027-01-31T00:00:00Z
        #[arg(long)]
        verified_until: Option<String>,
    },
    Delete {
        address: String,
    },
    ResetVerification {
        address: String,
    },
    /// Import a CSV file (address,phone,verified_until); bad rows are reported with line numbers.
    Import {
        file: PathBuf,
        /// Import nothing when any row is bad.
        #[arg(long)]
        all_or_nothing: bool,
    },
    /// Print all recipients as CSV.
    Export,
}

#[derive(Debug, Subcommand)]
pub enum ExemptionsCmd {
    List,
    Add {
        #[arg(long, value_enum)]
        kind: ExemptionScope,
        #[arg(long)]
        value: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        expires_at: Option<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeersCmd {
    List,
    Set {
        domain: String,
        #[arg(long)]
        provider: String,
    },
    Delete {
        domain: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum HeldCmd {
    List {
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Send held recipients to the portal instead of their inbox.
    ReleaseToPortal {
        id: String,
        #[arg(long)]
        recipient: Option<String>,
    },
    /// Settle an uncertain release (its reply was lost) after checking Stalwart: delivered, or to be
    /// sent again.
    Resolve {
        id: String,
        #[arg(long)]
        recipient: String,
        #[arg(long, value_enum)]
        outcome: ResolveOutcome,
    },
    /// Erase the held content now.
    Delete { id: String },
    /// Withdraw a message for the sender (every recipient not yet delivered or read, or one): its
    /// content is erased, the recipient's link says it was withdrawn.
    Withdraw {
        id: String,
        #[arg(long)]
        recipient: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    List,
    Get {
        domain: String,
    },
    Set {
        domain: String,
        #[arg(long)]
        retention_days: Option<i64>,
        /// Repeat for several groups.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Mail the sender a hold confirmation with a withdraw link (unset: the [portal] default).
        #[arg(long)]
        hold_confirmation: Option<bool>,
        /// Mail the sender one receipt when the recipient collected the message (unset: the
        /// [portal] default).
        #[arg(long)]
        collection_receipt: Option<bool>,
    },
    Delete {
        domain: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit status 1 and each finding when a record was edited, inserted or
    /// deleted.
    Verify,
    /// Proof of delivery for one message.
    Report {
        #[arg(long)]
        message_id: String,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
    /// Records in a time range, as JSON lines or CSV.
    Export {
        /// RFC 3339, inclusive
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339, exclusive
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

/// One admin API request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path and query, already encoded.
    pub path: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct ApiReply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters and `@` stay).
pub fn enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn get(path: String) -> ApiRequest {
    ApiRequest {
        method: Method::GET,
        path,
        content_type: "application/json",
        body: Vec::new(),
    }
}

fn with_json(method: Method, path: String, body: serde_json::Value) -> ApiRequest {
    ApiRequest {
        method,
        path,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// The API's base path.
const BASE: &str = "/v1/admin";

fn delete(path: String) -> ApiRequest {
    ApiRequest {
        method: Method::DELETE,
        ..get(path)
    }
}

fn post_empty(path: String) -> ApiRequest {
    ApiRequest {
        method: Method::POST,
        ..get(path)
    }
}

impl AdminCommand {
    /// The API request this command stands for.
    pub fn request(&self) -> Result<ApiRequest, String> {
        match self {
            AdminCommand::Recipients(c) => c.request(),
            AdminCommand::Exemptions(c) => Ok(c.request()),
            AdminCommand::Peers(c) => Ok(c.request()),
            AdminCommand::Held(c) => Ok(c.request()),
            AdminCommand::Settings(c) => Ok(c.request()),
        }
    }
}

impl RecipientsCmd {
    fn request(&self) -> Result<ApiRequest, String> {
        let one = |address: &str| format!("{BASE}/recipients/{}", enc(address));
        Ok(match self {
            RecipientsCmd::List { after, limit } => get(format!(
                "{BASE}/recipients{}",
                query(&[
                    ("after", after.clone()),
                    ("limit", limit.map(|l| l.to_string()))
                ])
            )),
            RecipientsCmd::Get { address } => get(one(address)),
            RecipientsCmd::Set {
                address,
                phone,
                verified_until,
            } => with_json(
                Method::PUT,
                one(address),
                serde_json::json!({ "phone": phone, "verified_until": verified_until }),
            ),
            RecipientsCmd::Delete { address } => delete(one(address)),
            RecipientsCmd::ResetVerification { address } => {
                post_empty(format!("{}/reset-verification", one(address)))
            }
            RecipientsCmd::Import {
                file,
                all_or_nothing,
            } => {
                let mode = match all_or_nothing {
                    true => ImportMode::AllOrNothing,
                    false => ImportMode::GoodRows,
                };
                ApiRequest {
                    method: Method::POST,
                    path: format!("{BASE}/recipients/import{}", mode.query()),
                    content_type: "text/csv",
                    body: std::fs::read(file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
                }
            }
            RecipientsCmd::Export => get(format!("{BASE}/recipients/export")),
        })
    }
}

impl ExemptionsCmd {
    fn request(&self) -> ApiRequest {
        match self {
            ExemptionsCmd::List => get(format!("{BASE}/exemptions")),
            ExemptionsCmd::Add {
                kind,
                value,
                reason,
                expires_at,
            } => with_json(
                Method::POST,
                format!("{BASE}/exemptions"),
                serde_json::json!({
                    "kind": kind.as_str(),
                    "value": value,
                    "reason": reason,
                    "expires_at": expires_at,
                }),
            ),
            ExemptionsCmd::Delete { id } => delete(format!("{BASE}/exemptions/{}", enc(id))),
        }
    }
}

impl PeersCmd {
    fn request(&self) -> ApiRequest {
        let one = |domain: &str| format!("{BASE}/peers/{}", enc(domain));
        match self {
            PeersCmd::List => get(format!("{BASE}/peers")),
            PeersCmd::Set { domain, provider } => with_json(
                Method::PUT,
                one(domain),
                serde_json::json!({ "provider": provider }),
            ),
            PeersCmd::Delete { domain } => delete(one(domain)),
        }
    }
}

impl HeldCmd {
    fn request(&self) -> ApiRequest {
        let one = |id: &str| format!("{BASE}/held/{}", enc(id));
        match self {
            HeldCmd::List { limit } => get(format!(
                "{BASE}/held{}",
                query(&[("limit", limit.map(|l| l.to_string()))])
            )),
            HeldCmd::ReleaseToPortal { id, recipient } => with_json(
                Method::POST,
                format!("{}/release-to-portal", one(id)),
                serde_json::json!({ "recipient": recipient }),
            ),
            HeldCmd::Resolve {
                id,
                recipient,
                outcome,
            } => with_json(
                Method::POST,
                format!("{}/resolve", one(id)),
                serde_json::json!({ "recipient": recipient, "delivered": outcome.delivered() }),
            ),
            HeldCmd::Delete { id } => delete(one(id)),
            HeldCmd::Withdraw { id, recipient } => with_json(
                Method::POST,
                format!("{}/withdraw", one(id)),
                serde_json::json!({ "recipient": recipient }),
            ),
        }
    }
}

impl SettingsCmd {
    fn request(&self) -> ApiRequest {
        let one = |domain: &str| format!("{BASE}/settings/{}", enc(domain));
        match self {
            SettingsCmd::List => get(format!("{BASE}/settings")),
            SettingsCmd::Get { domain } => get(one(domain)),
            SettingsCmd::Set {
                domain,
                retention_days,
                groups,
                hold_confirmation,
                collection_receipt,
            } => with_json(
                Method::PUT,
                one(domain),
                serde_json::json!({
                    "retention_days": retention_days, "groups": groups,
                    "hold_confirmation": hold_confirmation, "collection_receipt": collection_receipt,
                }),
            ),
            SettingsCmd::Delete { domain } => delete(one(domain)),
        }
    }
}

/// Sends requests to the gateway at `--url`, or to the admin router in-process over the configured
/// database.
// One client per CLI run: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Client {
    Local(axum::Router, String),
    Remote {
        url: String,
        token: String,
        http: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Full<Bytes>,
        >,
    },
}

impl Client {
    pub async fn open(target: &Target) -> Result<Client, String> {
        if let Some(url) = &target.url {
            let token = target
                .token
                .clone()
                .ok_or("--url needs --token (or NTA7516_ADMIN_TOKEN)")?;
            return Ok(Client::Remote {
                url: url.trim_end_matches('/').to_string(),
                token,
                http: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http(),
            });
        }
        let config = match &target.config {
            Some(path) => Config::load(path).map_err(|e| e.to_string())?,
            None => {
                Config::embedded(&target.data_dir, std::env::vars()).map_err(|e| e.to_string())?
            }
        };
        let store = Store::connect(&config.storage.url, 2)
            .await
            .map_err(|e| e.to_string())?;
        let token = crate::secrets::new_token()?;
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let router = routes(std::sync::Arc::new(AdminState {
            store,
            token: Some(token.clone()),
            actor: format!("cli:{user}"),
            reload_policy: None,
        }));
        Ok(Client::Local(router, token))
    }

    pub async fn send(&self, req: &ApiRequest) -> Result<ApiReply, String> {
        let (base, token) = match self {
            Client::Local(_, token) => ("http://local", token.as_str()),
            Client::Remote { url, token, .. } => (url.as_str(), token.as_str()),
        };
        let request = Request::builder()
            .method(req.method.clone())
            .uri(format!("{base}{}", req.path))
            .header(header::CONTENT_TYPE, req.content_type)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::from(req.body.clone())))
            .map_err(|e| e.to_string())?;
        let (status, content_type, body) = match self {
            Client::Local(router, _) => {
                let resp = router
                    .clone()
                    .oneshot(request.map(axum::body::Body::new))
                    .await
                    .map_err(|e| e.to_string())?;
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await.map_err(|e| e.to_string())?;
                (parts.status, parts.headers, bytes.to_bytes())
            }
            Client::Remote { http, url, .. } => {
                let resp = http
                    .request(request)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await.map_err(|e| e.to_string())?;
                (parts.status, parts.headers, bytes.to_bytes())
            }
        };
        Ok(ApiReply {
            status: status.as_u16(),
            content_type: content_type
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            body: body.to_vec(),
        })
    }
}

/// Prints a reply (JSON pretty-printed); problems go to stderr as an error.
fn print(reply: &ApiReply) -> Result<(), String> {
    if reply.status >= 400 {
        let detail = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
        return Err(format!("{} ({})", detail, reply.status));
    }
    if reply.content_type.starts_with("application/json") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&reply.body) {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            return Ok(());
        }
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(&reply.body)
        .map_err(|e| e.to_string())
}

pub async fn run_admin(args: AdminArgs) -> Result<(), String> {
    let client = Client::open(&args.target).await?;
    let req = args.command.request()?;
    print(&client.send(&req).await?)
}

/// `policy reload`: `POST /v1/admin/policy/reload` on a running gateway; prints its answer.
pub async fn reload_policy(url: String, token: Option<String>) -> Result<(), String> {
    let client = Client::open(&Target {
        config: None,
        data_dir: PathBuf::from("data"),
        url: Some(url),
        token,
    })
    .await?;
    let reply = client
        .send(&ApiRequest {
            method: Method::POST,
            path: format!("{BASE}/policy/reload"),
            content_type: "application/json",
            body: Vec::new(),
        })
        .await?;
    print(&reply)
}

pub async fn run_audit(args: AuditArgs) -> Result<(), String> {
    let client = Client::open(&args.target).await?;
    match args.command {
        AuditCommand::Verify => audit_verify(&client).await,
        AuditCommand::Report { message_id, format } => {
            let reply = client
                .send(&get(format!(
                    "{BASE}/audit/report/{}?format={}",
                    enc(&message_id),
                    format.as_str()
                )))
                .await?;
            print(&reply)
        }
        AuditCommand::Export {
            since,
            until,
            format,
        } => audit_export(&client, since, until, format).await,
    }
}

/// `audit verify`: the chain's head, and each finding; an error when there is one.
async fn audit_verify(client: &Client) -> Result<(), String> {
    let reply = client.send(&get(format!("{BASE}/audit/verify"))).await?;
    if reply.status >= 400 {
        return print(&reply);
    }
    let v: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    println!(
        "{} records, head #{} {}",
        v["records"],
        v["head_seq"],
        v["head_hash"].as_str().unwrap_or_default()
    );
    for f in &findings {
        println!("FAIL: {}", f["text"].as_str().unwrap_or_default());
    }
    if findings.is_empty() {
        println!("OK: the chain is intact");
        Ok(())
    } else {
        Err(format!("{} problem(s) in the audit log", findings.len()))
    }
}

/// `audit export`: every record in the range, page by page, to stdout.
async fn audit_export(
    client: &Client,
    since: Option<String>,
    until: Option<String>,
    format: ExportFormat,
) -> Result<(), String> {
    use std::io::Write;
    #[derive(serde::Deserialize)]
    struct Page {
        records: Vec<Record>,
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == ExportFormat::Csv {
        out.write_all(export::CSV_HEADER.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let mut after = 0i64;
    loop {
        let reply = client
            .send(&get(format!(
                "{BASE}/audit{}",
                query(&[
                    ("since", since.clone()),
                    ("until", until.clone()),
                    ("after_seq", Some(after.to_string())),
                    ("limit", Some("10000".into())),
                ])
            )))
            .await?;
        if reply.status >= 400 {
            return print(&reply);
        }
        let page: Page = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
        for r in &page.records {
            let line = match format {
                ExportFormat::Csv => export::csv_line(r),
                ExportFormat::Jsonl => export::json_line(r),
            };
            out.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        }
        match page.records.last() {
            Some(last) => after = last.seq,
            None => break,
        }
    }
    out.flush().map_err(|e| e.to_string())
}

//! Proof of delivery: the per-message report built from the message's audit records — decision and
//! reasons, SmartTLS evidence, hold, verification, release and Stalwart's delivery outcome with the MX
//! host, remote IP, TLS version and cipher, DANE/MTA-STS outcome and the remote reply — as JSON, text
//! and HTML.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

pub use super::evidence::Delivery;
use super::{
    event::Kind,
    evidence::{reason_text, s},
    record::Record,
    standing::{standing, QueueEvidence, Standing},
};
use crate::time::rfc3339;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub message_ref: String,
    pub sha256: Option<String>,
    pub sender: Option<String>,
    /// Whether every record of this message still matches its hash (the whole chain: `audit verify`).
    pub records_intact: bool,
    pub recipients: Vec<RecipientReport>,
    /// Every record of the message, in the order things happened.
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RecipientReport {
    pub recipient: String,
    pub outcome: Option<String>,
    pub reasons: Vec<Value>,
    /// SmartTLS evidence at decision time.
    pub tls: Option<Value>,
    /// `by_link` when the policy sent every attachment by secure link (`nta_portal_attachments`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<String>,
    pub held: bool,
    /// Verification steps (SMS sent, code results), in order.
    pub verification: Vec<String>,
    pub released: Option<String>,
    /// "withdrawn by sender a@b at …", when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    /// Where the delivery stands: delivered / deferred (next retry) / failed (remote answer).
    pub standing: Standing,
    pub deliveries: Vec<Delivery>,
    /// Received mail: the sending server, its TLS, the authentication results and the peer status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub recipient: Option<String>,
    pub summary: String,
}

/// The report's words for a decision's `attachments` value.
fn attachments_text(value: &str) -> &str {
    match value {
        "by_link" => "every attachment by secure link (verification required)",
        other => other,
    }
}

fn delivery_status(event: &str) -> Option<&'static str> {
    Some(match event {
        "delivery.delivered" | "delivery.dsn-success" => "delivered",
        "delivery.dsn-temp-fail" => "temporary_failure",
        "delivery.dsn-perm-fail" | "delivery.rcpt-to-rejected" | "delivery.message-rejected" => {
            "permanent_failure"
        }
        "delivery.rcpt-to-failed" => "temporary_failure",
        "delivery.failed" => "failed",
        _ => return None,
    })
}

fn summarise(r: &Record, d: &Value) -> String {
    let Some(kind) = Kind::parse(&r.kind) else {
        return r.kind.clone();
    };
    match kind {
        Kind::Decision => {
            let reasons: Vec<String> = d["reasons"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| s(&x["text"])).collect())
                .unwrap_or_default();
            let attachments = s(&d["attachments"])
                .map(|a| format!("; attachments: {}", attachments_text(&a)))
                .unwrap_or_default();
            format!(
                "decision {} ({}){attachments}",
                s(&d["outcome"]).unwrap_or_default(),
                reasons.join("; ")
            )
        }
        Kind::Held => format!(
            "held for {} until {}",
            s(&d["outcome"]).unwrap_or_default(),
            s(&d["expires_at"]).unwrap_or_default()
        ),
        Kind::NotificationSent => notification_summary(d),
        Kind::SmsFailed => format!(
            "SMS to {} not sent ({}); recipient asked to try again later",
            s(&d["phone"]).unwrap_or_default(),
            s(&d["failure"]).unwrap_or_default()
        ),
        Kind::ChallengeLocked => "too many wrong codes: verification locked".into(),
        Kind::PhoneNumber => format!(
            "mobile number {} from the sender ({}): {}",
            s(&d["phone"]).unwrap_or_else(|| "-".into()),
            s(&d["source"]).unwrap_or_default().replace('_', " "),
            s(&d["outcome"]).unwrap_or_default().replace('_', " ")
        ),
        Kind::SmsSent => format!(
            "verification code sent by SMS to {}",
            s(&d["phone"]).unwrap_or_default()
        ),
        Kind::CodeSucceeded => format!(
            "verification succeeded; verified until {}",
            s(&d["verified_until"]).unwrap_or_default()
        ),
        Kind::CodeFailed => format!(
            "wrong verification code ({} attempts left)",
            s(&d["attempts_left"]).unwrap_or_default()
        ),
        Kind::Released => format!(
            "released to {}{}",
            s(&d["target"]).unwrap_or_default(),
            s(&d["queue_id"])
                .map(|q| format!(" (Stalwart queue id {q})"))
                .unwrap_or_default()
        ),
        Kind::ReleaseFailed => match s(&d["retry_at"]) {
            Some(at) => format!(
                "release to the inbox failed ({}); retried at {at}",
                s(&d["error"]).unwrap_or_default()
            ),
            None => format!(
                "release outcome unknown ({}); held as uncertain for the operator, not re-sent",
                s(&d["error"]).unwrap_or_default()
            ),
        },
        Kind::PortalViewed => "read on the portal".into(),
        Kind::PortalDownloaded => format!(
            "downloaded from the portal: {}",
            s(&d["part"]).unwrap_or_default()
        ),
        Kind::Expired => "hold expired; content deleted".into(),
        Kind::Delivery => delivery_summary(d),
        Kind::Received => received_summary(d),
        Kind::Admin => format!(
            "admin {} {} by {}",
            s(&d["action"]).unwrap_or_default(),
            s(&d["target"]).unwrap_or_default(),
            s(&d["actor"]).unwrap_or_default()
        ),
        Kind::Withdrawn => format!("withdrawn by {}", withdrawn_by(d)),
        Kind::PortalReply | Kind::PortalReplySent | Kind::PortalReplyFailed => {
            reply_summary(kind, r, d)
        }
    }
}

/// `sender a@b` / `admin api` from a withdrawal's details.
fn withdrawn_by(d: &Value) -> String {
    let by = &d["by"];
    match by["kind"].as_str() {
        Some("sender") => format!("sender {}", s(&by["address"]).unwrap_or_default()),
        Some("admin") => format!("admin {}", s(&by["actor"]).unwrap_or_default()),
        _ => "-".into(),
    }
}

/// A portal reply's line: "reply r-… from <recipient> via the portal, 2 attachments, sent to <sender>
/// (Stalwart queue id …)".
fn reply_summary(kind: Kind, r: &Record, d: &Value) -> String {
    let head = format!(
        "reply {} from {} via the portal",
        s(&d["reply_id"]).unwrap_or_default(),
        r.recipient.as_deref().unwrap_or("-")
    );
    let to = s(&d["to"]).unwrap_or_default();
    match kind {
        Kind::PortalReply => {
            let n = d["attachments"].as_u64().unwrap_or(0);
            format!(
                "{head}, {n} attachment{}, {} bytes (sha256 {}), to be sent to {to}",
                if n == 1 { "" } else { "s" },
                s(&d["bytes"]).unwrap_or_default(),
                s(&d["sha256"]).unwrap_or_default()
            )
        }
        Kind::PortalReplySent => format!(
            "{head} sent to {to}{}",
            s(&d["queue_id"])
                .map(|q| format!(" (Stalwart queue id {q})"))
                .unwrap_or_default()
        ),
        _ => match s(&d["retry_at"]) {
            Some(at) => format!(
                "{head} not accepted ({}); retried at {at}",
                s(&d["error"]).unwrap_or_default()
            ),
            None => format!(
                "{head}: outcome unknown ({}); held as uncertain for the operator, not re-sent",
                s(&d["error"]).unwrap_or_default()
            ),
        },
    }
}

fn received_summary(d: &Value) -> String {
    let auth = &d["auth"];
    let tls = match &d["tls"] {
        Value::Null => "without TLS".to_string(),
        t => format!("over {}", s(&t["version"]).unwrap_or_default()),
    };
    let reasons: Vec<String> = d["reasons"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| s(&x["text"])).collect())
        .unwrap_or_default();
    format!(
        "received from {} ({}) {tls}; spf={} dkim={} dmarc={} ({}) peer={}: {} ({})",
        s(&d["client_ip"]).unwrap_or_default(),
        s(&d["helo"]).unwrap_or_default(),
        s(&auth["spf_mail_from"]).unwrap_or_default(),
        auth["dkim"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|k| {
                        format!(
                            "{}:{}",
                            s(&k["domain"]).unwrap_or_default(),
                            s(&k["result"]).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "none".into()),
        s(&auth["dmarc"]["result"]).unwrap_or_default(),
        s(&d["from_domain"]).unwrap_or_default(),
        s(&d["peer"]["status"]).unwrap_or_default(),
        s(&d["action"]).unwrap_or_default(),
        reasons.join("; ")
    )
}

fn notification_summary(d: &Value) -> String {
    let notice = match d["notice"].as_str() {
        Some("recipient_notice") => "recipient notified".to_string(),
        Some("sender_phone_request") => "sender asked for the mobile number".to_string(),
        Some("sender_not_collected") => "sender told the message was not collected".to_string(),
        Some("sender_hold_confirmation") => {
            "hold confirmation (with withdraw link) sent".to_string()
        }
        Some("sender_collection_receipt") => "collection receipt sent".to_string(),
        _ => "notification sent".to_string(),
    };
    format!(
        "{notice} by {} to {}{}",
        s(&d["channel"]).unwrap_or_default(),
        s(&d["to"]).unwrap_or_default(),
        s(&d["queue_id"])
            .map(|q| format!(" (Stalwart queue id {q})"))
            .unwrap_or_default()
    )
}

fn delivery_summary(d: &Value) -> String {
    let data = &d["data"];
    let mut parts = vec![s(&d["event"]).unwrap_or_default()];
    for key in ["hostname", "remoteIp", "version", "details", "code"] {
        if let Some(v) = data.get(key).filter(|v| !v.is_null()) {
            parts.push(format!(
                "{key}={}",
                s(v).unwrap_or_default().replace(['\r', '\n'], " ")
            ));
        }
    }
    if let Some(reason) = data
        .get("reason")
        .or(data.get("causedBy"))
        .and_then(reason_text)
    {
        parts.push(format!("reason={reason}"));
    }
    parts.join(" ")
}

/// Builds the report from the message's records (any order; sorted here by time, then sequence).
pub fn build(message_ref: &str, records: &[Record]) -> Report {
    let mut records: Vec<&Record> = records.iter().collect();
    records.sort_by_key(|r| (r.at, r.seq));
    let parsed: Vec<Value> = records.iter().map(|r| r.details_json()).collect();
    let mut by_rcpt: BTreeMap<String, RecipientReport> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut timeline = Vec::with_capacity(records.len());
    let mut queue = QueueEvidence::default();
    for (r, d) in records.iter().zip(&parsed) {
        let summary = summarise(r, d);
        timeline.push(TimelineEntry {
            seq: r.seq,
            at: rfc3339(r.at),
            kind: r.kind.clone(),
            recipient: r.recipient.clone(),
            summary: summary.clone(),
        });
        let Some(rcpt) = r.recipient.as_deref() else {
            if r.kind == Kind::Delivery.as_str() {
                queue.add(r.at, d);
            }
            continue;
        };
        if !order.iter().any(|o| o == rcpt) {
            order.push(rcpt.to_string());
        }
        let e = by_rcpt
            .entry(rcpt.to_string())
            .or_insert_with(|| RecipientReport {
                recipient: rcpt.to_string(),
                ..Default::default()
            });
        match Kind::parse(&r.kind) {
            Some(Kind::Decision) => {
                e.outcome = s(&d["outcome"]);
                e.reasons = d["reasons"].as_array().cloned().unwrap_or_default();
                e.tls = Some(d["tls"].clone()).filter(|t| !t.is_null());
                e.attachments = s(&d["attachments"]);
            }
            Some(Kind::Received) => {
                e.outcome = s(&d["action"]).map(|a| format!("received_{a}"));
                e.reasons = d["reasons"].as_array().cloned().unwrap_or_default();
                e.tls = Some(d["tls"].clone()).filter(|t| !t.is_null());
                e.received = Some(json!({
                    "client_ip": d["client_ip"], "helo": d["helo"], "from_domain": d["from_domain"],
                    "auth": d["auth"], "peer": d["peer"], "quarantine_mailbox": d["quarantine_mailbox"],
                }));
            }
            Some(Kind::Held) => e.held = true,
            Some(
                Kind::SmsSent
                | Kind::SmsFailed
                | Kind::CodeSucceeded
                | Kind::CodeFailed
                | Kind::ChallengeLocked
                | Kind::NotificationSent
                | Kind::PhoneNumber,
            ) => e.verification.push(summary),
            Some(Kind::Released) => e.released = Some(summary),
            Some(Kind::Withdrawn) => {
                e.withdrawn = Some(format!("{summary} at {}", rfc3339(r.at)));
            }
            Some(Kind::Delivery) => {
                let event = d["event"].as_str().unwrap_or_default();
                if let Some(status) = delivery_status(event) {
                    let mut delivery = connection_evidence(&records, &parsed, r, d, status);
                    delivery.dsn = event.strip_prefix("delivery.dsn-").map(str::to_string);
                    e.deliveries.push(delivery);
                }
            }
            _ => {}
        }
    }
    for r in by_rcpt.values_mut() {
        r.deliveries = attach_dsns(std::mem::take(&mut r.deliveries));
        r.standing = match &r.withdrawn {
            Some(how) => Standing::Withdrawn { how: how.clone() },
            None => standing(&r.recipient, &r.deliveries, &queue),
        };
    }
    let first = |f: fn(&Record) -> Option<&String>| records.iter().find_map(|r| f(r).cloned());
    Report {
        message_ref: message_ref.to_string(),
        sha256: first(|r| r.message_sha256.as_ref()),
        sender: first(|r| r.sender.as_ref()),
        records_intact: records.iter().all(|r| r.is_intact()),
        recipients: order.iter().filter_map(|o| by_rcpt.remove(o)).collect(),
        timeline,
    }
}

/// One entry per delivery: a DSN event whose span and queue id match a direct outcome (`delivered`,
/// `rcpt-to-rejected`, …) of the same recipient is folded into it; a DSN without one stays (it is the
/// only word on that delivery).
fn attach_dsns(all: Vec<Delivery>) -> Vec<Delivery> {
    let (dsns, mut out): (Vec<Delivery>, Vec<Delivery>) =
        all.into_iter().partition(|d| d.dsn.is_some());
    for dsn in dsns {
        let same = out.iter_mut().find(|o| {
            o.dsn.is_none() && o.span.is_some() && o.span == dsn.span && o.queue_id == dsn.queue_id
        });
        match same {
            Some(o) => o.dsn = dsn.dsn,
            None => out.push(dsn),
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at));
    out
}

/// The outcome event plus what the same delivery span says about the same MX host: remote IP
/// (`delivery.connect`), TLS version and cipher (`delivery.start-tls`), DANE and MTA-STS. Events may
/// have arrived in any order; they are matched here, at read time.
fn connection_evidence(
    records: &[&Record],
    parsed: &[Value],
    outcome: &Record,
    d: &Value,
    status: &str,
) -> Delivery {
    let data = &d["data"];
    let span = data.get("spanId").cloned().unwrap_or(Value::Null);
    let host = data.get("hostname").and_then(s);
    let mut out = Delivery {
        status: status.to_string(),
        span: s(&span),
        at: rfc3339(outcome.at),
        queue_id: s(&d["queue_id"]),
        mx: host.clone(),
        code: data.get("code").and_then(Value::as_i64),
        reply: data
            .get("details")
            .and_then(s)
            .or_else(|| data.get("reason").and_then(reason_text)),
        ..Default::default()
    };
    for (r, pd) in records.iter().zip(parsed) {
        if r.kind != Kind::Delivery.as_str() {
            continue;
        }
        let pdata = &pd["data"];
        if span.is_null() || pdata.get("spanId") != Some(&span) {
            continue;
        }
        let same_host = host.is_some() && pdata.get("hostname").and_then(s) == host;
        let event = pd["event"].as_str().unwrap_or_default();
        match event {
            "delivery.connect" if same_host => out.remote_ip = pdata.get("remoteIp").and_then(s),
            "delivery.start-tls" if same_host => {
                out.tls_version = pdata.get("version").and_then(s);
                out.tls_cipher = pdata.get("details").and_then(s);
            }
            e if same_host && e.starts_with("dane.") => {
                out.dane = Some(e.trim_start_matches("dane.").to_string())
            }
            e if same_host && e.starts_with("mta-sts.") => {
                out.mta_sts = Some(e.trim_start_matches("mta-sts.").to_string())
            }
            _ => {}
        }
    }
    out
}

impl Report {
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        o.push_str(&format!(
            "Proof of delivery for message {}\n",
            self.message_ref
        ));
        o.push_str(&format!(
            "  sender: {}\n  SHA-256: {}\n  records intact: {}\n",
            self.sender.as_deref().unwrap_or("-"),
            self.sha256.as_deref().unwrap_or("-"),
            if self.records_intact { "yes" } else { "NO" }
        ));
        for r in &self.recipients {
            o.push_str(&format!("\nRecipient {}\n", r.recipient));
            o.push_str(&format!(
                "  decision: {}\n",
                r.outcome.as_deref().unwrap_or("-")
            ));
            for reason in &r.reasons {
                o.push_str(&format!(
                    "    - [{}] {}\n",
                    s(&reason["step"]).unwrap_or_default(),
                    s(&reason["text"]).unwrap_or_default()
                ));
            }
            if let Some(tls) = &r.tls {
                o.push_str(&format!("  SmartTLS: {tls}\n"));
            }
            if let Some(a) = &r.attachments {
                o.push_str(&format!("  attachments: {}\n", attachments_text(a)));
            }
            if r.held {
                o.push_str("  held: yes\n");
            }
            for v in &r.verification {
                o.push_str(&format!("  verification: {v}\n"));
            }
            if let Some(rel) = &r.released {
                o.push_str(&format!("  {rel}\n"));
            }
            if let Some(w) = &r.withdrawn {
                o.push_str(&format!("  {w}\n"));
            }
            o.push_str(&format!("  standing: {}\n", r.standing.text()));
            for d in &r.deliveries {
                o.push_str(&format!(
                    "  delivery: {} at {} via {} ({}) {} {} DANE={} MTA-STS={} reply: {} {}\n",
                    d.status_text(),
                    d.at,
                    d.mx.as_deref().unwrap_or("-"),
                    d.remote_ip.as_deref().unwrap_or("-"),
                    d.tls_version.as_deref().unwrap_or("-"),
                    d.tls_cipher.as_deref().unwrap_or("-"),
                    d.dane.as_deref().unwrap_or("-"),
                    d.mta_sts.as_deref().unwrap_or("-"),
                    d.code.map(|c| c.to_string()).unwrap_or_default(),
                    d.reply.as_deref().unwrap_or("-"),
                ));
            }
        }
        o.push_str("\nTimeline\n");
        for t in &self.timeline {
            o.push_str(&format!(
                "  #{:<8} {}  {:<18} {:<28} {}\n",
                t.seq,
                t.at,
                t.kind,
                t.recipient.as_deref().unwrap_or("-"),
                t.summary
            ));
        }
        o
    }

    pub fn to_html(&self) -> String {
        let e = html_escape;
        let mut o = String::from(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Proof of delivery</title>\
             <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
             td,th{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}</style></head><body>",
        );
        o.push_str(&format!(
            "<h1>Proof of delivery: {}</h1><p>Sender: {}<br>SHA-256: <code>{}</code><br>Records intact: {}</p>",
            e(&self.message_ref),
            e(self.sender.as_deref().unwrap_or("-")),
            e(self.sha256.as_deref().unwrap_or("-")),
            if self.records_intact { "yes" } else { "<strong>NO</strong>" }
        ));
        for r in &self.recipients {
            o.push_str(&format!(
                "<h2>{}</h2><p>Decision: <strong>{}</strong></p><ul>",
                e(&r.recipient),
                e(r.outcome.as_deref().unwrap_or("-"))
            ));
            for reason in &r.reasons {
                o.push_str(&format!(
                    "<li>[{}] {}</li>",
                    e(&s(&reason["step"]).unwrap_or_default()),
                    e(&s(&reason["text"]).unwrap_or_default())
                ));
            }
            o.push_str("</ul>");
            if let Some(a) = &r.attachments {
                o.push_str(&format!("<p>Attachments: {}</p>", e(attachments_text(a))));
            }
            if let Some(tls) = &r.tls {
                o.push_str(&format!(
                    "<p>SmartTLS: <code>{}</code></p>",
                    e(&tls.to_string())
                ));
            }
            for v in r.verification.iter().chain(&r.released).chain(&r.withdrawn) {
                o.push_str(&format!("<p>{}</p>", e(v)));
            }
            o.push_str(&format!("<p>Standing: {}</p>", e(&r.standing.text())));
            if !r.deliveries.is_empty() {
                o.push_str("<table><tr><th>Status</th><th>At</th><th>MX</th><th>IP</th><th>TLS</th><th>Cipher</th><th>DANE</th><th>MTA-STS</th><th>Reply</th></tr>");
                for d in &r.deliveries {
                    o.push_str(&format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
                        e(&d.status_text()),
                        e(&d.at),
                        e(d.mx.as_deref().unwrap_or("-")),
                        e(d.remote_ip.as_deref().unwrap_or("-")),
                        e(d.tls_version.as_deref().unwrap_or("-")),
                        e(d.tls_cipher.as_deref().unwrap_or("-")),
                        e(d.dane.as_deref().unwrap_or("-")),
                        e(d.mta_sts.as_deref().unwrap_or("-")),
                        d.code.map(|c| c.to_string()).unwrap_or_default(),
                        e(d.reply.as_deref().unwrap_or("-"))
                    ));
                }
                o.push_str("</table>");
            }
        }
        o.push_str("<h2>Timeline</h2><table><tr><th>#</th><th>At</th><th>Kind</th><th>Recipient</th><th>What</th></tr>");
        for t in &self.timeline {
            o.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t.seq,
                e(&t.at),
                e(&t.kind),
                e(t.recipient.as_deref().unwrap_or("-")),
                e(&t.summary)
            ));
        }
        o.push_str("</table></body></html>\n");
        o
    }
}

pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

//! What makes the stand-in SMTP server ([`super::smtp::SmtpServer`]) behave like Stalwart's submission
//! listener when [`super::smtp::SmtpServer::hook`] is set: at DATA it posts a Stalwart-shaped request to
//! the gateway's MTA hook (`/v1/mta-hook`, bearer token; the shape of the fixtures in
//! `shared/stalwart/fixtures/`: `context.sasl.login`, `envelope`, raw header pairs with their CRLF, the
//! body as `contents`, `size`) and applies the answer as Stalwart does (CONTRACT, verified on v0.15.5):
//! `accept` queues the message for the recipients left after `deleteRecipient`; `discard` queues
//! nothing and answers with the hook's `response`; `reject` answers with its code and text; a failed
//! hook call answers `451 4.3.5 Unable to accept message at this time.` (tempfail-on-error).

use hyper::{Method, StatusCode};

/// The gateway's hook endpoint and token.
#[derive(Debug, Clone)]
pub struct HookTarget {
    pub url: String,
    pub token: String,
}

/// One message the hook saw, with the answer the client got.
#[derive(Debug, Clone)]
pub struct Hooked {
    pub login: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
    pub action: String,
    /// The reply line the client got.
    pub reply: String,
}

impl Hooked {
    /// The message's Message-ID header value.
    pub fn message_id(&self) -> String {
        let text = String::from_utf8_lossy(&self.data);
        text.lines()
            .find_map(|l| l.strip_prefix("Message-ID:"))
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

/// What the listener does with the message.
pub enum Verdict {
    /// Queue it for these recipients (none: nothing is delivered) and answer `250 … queued`.
    Queue(Vec<String>),
    /// Answer with this reply line; nothing queued.
    Reply(String),
}

/// Stalwart's DATA-stage request for a message submitted by `login` on the submission port.
pub fn submission_request(
    login: &str,
    from: &str,
    to: &[String],
    raw: &[u8],
    queue_id: &str,
) -> serde_json::Value {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in format!("{head}\r\n").split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    serde_json::json!({
        "context": {
            "stage": "data",
            "client": {"ip": "127.0.0.1", "port": 47514, "ptr": null, "helo": "bulk", "activeConnections": 1},
            "sasl": {"login": login},
            "server": {"name": "Stalwart v0.15.5", "port": 587, "ip": "127.0.0.1"},
            "queue": {"id": queue_id},
            "protocol": {"version": 1}
        },
        "envelope": {
            "from": {"address": from.to_lowercase()},
            "to": to.iter().map(|a| serde_json::json!({"address": a.to_lowercase()})).collect::<Vec<_>>()
        },
        "message": {"headers": headers, "contents": body, "size": raw.len()}
    })
}

/// Asks the hook and turns its answer into what Stalwart does.
pub async fn ask(
    target: &HookTarget,
    login: &str,
    from: &str,
    to: &[String],
    raw: &[u8],
    queue_id: &str,
) -> (Verdict, Hooked) {
    let req = submission_request(login, from, to, raw, queue_id);
    let answer = super::procs::try_http_full(
        Method::POST,
        &target.url,
        &[
            ("authorization", format!("Bearer {}", target.token)),
            ("content-type", "application/json".into()),
        ],
        serde_json::to_vec(&req).unwrap(),
        60,
    )
    .await;
    let answer: Option<serde_json::Value> = match answer {
        Ok((StatusCode::OK, _, body)) => serde_json::from_slice(&body).ok(),
        _ => None,
    };
    let (verdict, action) = match &answer {
        Some(a) => apply(a, to),
        None => (
            Verdict::Reply("451 4.3.5 Unable to accept message at this time.".into()),
            "error".to_string(),
        ),
    };
    let reply = match &verdict {
        Verdict::Queue(_) => format!("250 2.0.0 Message queued with id {queue_id}."),
        Verdict::Reply(line) => line.clone(),
    };
    let hooked = Hooked {
        login: login.to_string(),
        mail_from: from.to_string(),
        rcpt_to: to.to_vec(),
        data: raw.to_vec(),
        action,
        reply,
    };
    (verdict, hooked)
}

fn apply(answer: &serde_json::Value, to: &[String]) -> (Verdict, String) {
    let action = answer["action"].as_str().unwrap_or("").to_string();
    let r = &answer["response"];
    let line = |default: &str| match (r["status"].as_u64(), r["message"].as_str()) {
        (Some(status), Some(message)) => {
            let enhanced = r["enhanced_status"]
                .as_str()
                .map(|e| format!("{e} "))
                .unwrap_or_default();
            format!("{status} {enhanced}{message}")
        }
        _ => default.to_string(),
    };
    let verdict = match action.as_str() {
        "accept" => {
            let deleted: Vec<String> = answer["modifications"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["type"] == "deleteRecipient")
                .filter_map(|m| m["value"].as_str().map(str::to_lowercase))
                .collect();
            Verdict::Queue(
                to.iter()
                    .filter(|t| !deleted.contains(&t.to_lowercase()))
                    .cloned()
                    .collect(),
            )
        }
        "discard" | "quarantine" => Verdict::Reply(line("250 2.0.0 Message queued for delivery.")),
        "reject" => Verdict::Reply(line("503 5.5.3 Message rejected.")),
        _ => Verdict::Reply("451 4.3.5 Unable to accept message at this time.".into()),
    };
    (verdict, action)
}

//! Where each recipient's delivery stands, from Stalwart's events: delivered (with the attempt that
//! delivered), deferred (with the next retry and the last error), failed (with the remote answer), or
//! nothing reported yet. Read-side only, from the records [`super::report`] collects.
//!
//! Stalwart reports an outcome per recipient (`delivery.delivered`, `delivery.rcpt-to-rejected`, …),
//! but a deferral per queue: `queue.rescheduled` lists the recipients still pending (`to`) with
//! `nextRetry`, and the errors of the attempt (`delivery.start-tls-error`, `delivery.connect-error`, …)
//! carry only the delivery span.

use serde::Serialize;
use serde_json::Value;

use super::evidence::{reason_text, s, Delivery};

/// The final state of one recipient's delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// Delivered; the attempt is the matching entry of `deliveries`.
    Delivered { at: String, mx: Option<String> },
    /// Still queued at Stalwart: retried at `next_retry`.
    Deferred {
        next_retry: Option<String>,
        last_error: Option<String>,
    },
    /// Refused for good, or given up.
    Failed {
        code: Option<i64>,
        reply: Option<String>,
    },
    /// No delivery outcome reported (held, not released yet, or Stalwart has not reported).
    #[default]
    NotReported,
    /// Withdrawn by the sender before delivery: it never reached the recipient (`how`: by whom, when).
    Withdrawn { how: String },
}

/// A `queue.rescheduled` event: its span, when it retries and who is still pending.
#[derive(Debug, Clone)]
pub struct Rescheduled {
    pub at: i64,
    pub span: Option<String>,
    pub next_retry: Option<String>,
    pub pending: Vec<String>,
}

/// An error of a delivery attempt, known by its span.
#[derive(Debug, Clone)]
pub struct AttemptError {
    pub span: Option<String>,
    pub text: String,
}

/// The message-level evidence: deferrals and attempt errors.
#[derive(Debug, Clone, Default)]
pub struct QueueEvidence {
    pub rescheduled: Vec<Rescheduled>,
    pub errors: Vec<AttemptError>,
}

impl QueueEvidence {
    /// Takes what a message-level delivery record says (`event` and `data` of its details).
    pub fn add(&mut self, at: i64, d: &Value) {
        let data = &d["data"];
        // Encoded as the delivery entries encode it (`report::s`), so the two compare.
        let span = data.get("spanId").and_then(s);
        match d["event"].as_str().unwrap_or_default() {
            "queue.rescheduled" => self.rescheduled.push(Rescheduled {
                at,
                span,
                next_retry: data["nextRetry"].as_str().map(str::to_string),
                pending: data["to"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            e if e.ends_with("-error")
                || e.ends_with("-failed")
                || e == "delivery.start-tls-unavailable" =>
            {
                let host = data["hostname"].as_str().unwrap_or_default();
                let why = data
                    .get("reason")
                    .or(data.get("causedBy"))
                    .and_then(reason_text);
                self.errors.push(AttemptError {
                    span,
                    text: format!("{e} {host}: {}", why.unwrap_or_default())
                        .trim()
                        .to_string(),
                });
            }
            _ => {}
        }
    }
}

/// The standing of `recipient` from its own outcomes (DSNs already attached) and the queue evidence.
pub fn standing(recipient: &str, deliveries: &[Delivery], queue: &QueueEvidence) -> Standing {
    if let Some(d) = deliveries.iter().find(|d| d.status == "delivered") {
        return Standing::Delivered {
            at: d.at.clone(),
            mx: d.mx.clone(),
        };
    }
    let last = deliveries.last();
    if let Some(d) = last.filter(|d| d.status == "permanent_failure" || d.status == "failed") {
        return Standing::Failed {
            code: d.code,
            reply: d.reply.clone(),
        };
    }
    let deferral = queue
        .rescheduled
        .iter()
        .filter(|r| r.pending.iter().any(|p| p.eq_ignore_ascii_case(recipient)))
        .max_by_key(|r| r.at);
    match (deferral, last) {
        (Some(r), _) => Standing::Deferred {
            next_retry: r.next_retry.clone(),
            last_error: last
                .and_then(|d| d.reply.clone())
                .or_else(|| span_error(queue, r.span.as_deref())),
        },
        (None, Some(d)) => Standing::Deferred {
            next_retry: None,
            last_error: d.reply.clone(),
        },
        (None, None) => Standing::NotReported,
    }
}

/// The last error of the attempt with this span.
fn span_error(queue: &QueueEvidence, span: Option<&str>) -> Option<String> {
    let span = span?;
    queue
        .errors
        .iter()
        .rev()
        .find(|e| e.span.as_deref() == Some(span))
        .map(|e| e.text.clone())
}

impl Standing {
    /// One line for the text and HTML reports.
    pub fn text(&self) -> String {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        match self {
            Standing::Delivered { at, mx } => format!("delivered at {at} via {}", or_dash(mx)),
            Standing::Deferred {
                next_retry,
                last_error,
            } => format!(
                "deferred by Stalwart, next retry {}; last error: {}",
                or_dash(next_retry),
                or_dash(last_error)
            ),
            Standing::Failed { code, reply } => format!(
                "failed: {} {}",
                code.map(|c| c.to_string()).unwrap_or_default(),
                or_dash(reply)
            ),
            Standing::NotReported => "no delivery reported".into(),
            Standing::Withdrawn { how } => how.clone(),
        }
    }
}

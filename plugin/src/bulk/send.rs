//! Submission through Stalwart's own submission listener (`[bulk] submission`), as the sender, with
//! the gateway's SMTP client ([`crate::stalwart_submit`]: verified STARTTLS, AUTH, dot-stuffing, a new
//! session every ten messages). Each message therefore passes the MTA hook like any mail a member of
//! staff sends: 2FA, SmartTLS, the policy and the audit trail all apply.
//!
//! What became of a message is read from Stalwart's reply to its data, which carries the hook's answer
//! (verified on Stalwart v0.15.5: a `discard` with a `250` response reaches the client verbatim, a
//! `reject` as its code and text): `250 … Held for secure delivery (id h-…)` is a message the gateway
//! holds until the recipient verifies; any other `250` was queued for delivery now; anything else was
//! refused, with Stalwart's (or the hook's) reason.

use std::{sync::Arc, time::Duration};

use rustls_pki_types::ServerName;

use crate::{
    config::BulkConfig,
    stalwart_submit::{self, SendError, Session, SmtpError, Target},
};

/// The words of the gateway's answer for a message it holds (`submission::respond`).
const HELD: &str = "Held for secure delivery (id ";

/// Stalwart's answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Queued for delivery now.
    Accepted,
    /// Held by the gateway until the recipient verifies; the hold's id.
    Held(String),
    /// Not accepted: the reply code and text.
    Refused { code: u16, text: String },
}

/// Why the run cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The message's data went out but no reply came: Stalwart may have it.
    Uncertain(String),
    /// Nothing more can be sent (connection, TLS, authentication, the sender refused).
    Fatal(String),
}

/// The reply to an accepted message: held or queued.
pub fn classify(text: &str) -> Reply {
    match text.find(HELD) {
        Some(i) => {
            let rest = &text[i + HELD.len()..];
            Reply::Held(rest[..rest.find(')').unwrap_or(rest.len())].to_string())
        }
        None => Reply::Accepted,
    }
}

pub struct Submitter {
    target: Target,
    sender: String,
    session: Option<Session>,
}

impl Submitter {
    /// The listener of `[bulk]`, authenticated as `bulk.username` or else the sender.
    pub fn new(c: &BulkConfig, sender: &str) -> Result<Submitter, String> {
        let password = match (&c.password, &c.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("bulk.password_file {}: {e}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => {
                return Err(
                    "[bulk] has no password: set bulk.password_file, or bulk.password \
                            (e.g. through the NTA7516__BULK__PASSWORD environment variable)"
                        .into(),
                )
            }
        };
        let host = c
            .tls_server_name
            .clone()
            .unwrap_or_else(|| stalwart_submit::host_part(&c.submission).to_string());
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
        let tls = stalwart_submit::client_config(&c.trust()).map_err(|e| e.to_string())?;
        Ok(Submitter {
            target: Target {
                address: c.submission.clone(),
                username: c.username.clone().unwrap_or_else(|| sender.to_string()),
                password,
                starttls: c.starttls,
                tls: Arc::new(tls),
                server_name,
                helo: c.helo.clone(),
                timeout: Duration::from_millis(c.timeout_ms),
            },
            sender: sender.to_string(),
            session: None,
        })
    }

    /// Submits one message to `to`.
    pub async fn submit(&mut self, to: &str, data: &[u8]) -> Result<Reply, Stop> {
        if self.session.as_ref().is_some_and(|s| !s.has_room()) {
            if let Some(s) = self.session.take() {
                s.quit().await;
            }
        }
        let mut session = match self.session.take() {
            Some(s) => s,
            None => Session::open(&self.target)
                .await
                .map_err(|e| self.open_error(e))?,
        };
        let env = stalwart_submit::Envelope {
            from: &self.sender,
            to,
            data,
        };
        let result = session.send_reply(&env).await;
        let reply = match result {
            Ok(text) => Ok(classify(&text)),
            Err(SendError::Uncertain(e)) => return Err(Stop::Uncertain(e.to_string())),
            Err(SendError::Failed(e)) => self.failed(e),
        }?;
        self.session = Some(session);
        Ok(reply)
    }

    /// Ends the session politely.
    pub async fn close(mut self) {
        if let Some(s) = self.session.take() {
            s.quit().await;
        }
    }

    fn open_error(&self, e: SmtpError) -> Stop {
        let t = &self.target;
        Stop::Fatal(match e {
            SmtpError::Reply {
                command: "AUTH",
                code,
                text,
            } => format!(
                "{} refused the login as {}: {code} {text} (check bulk.username and the password)",
                t.address, t.username
            ),
            e => format!("cannot submit to {}: {e}", t.address),
        })
    }

    /// A message not accepted: a refusal of this message, or the end of the run.
    fn failed(&self, e: SmtpError) -> Result<Reply, Stop> {
        match e {
            SmtpError::SenderRefused { code, text } => Err(Stop::Fatal(format!(
                "Stalwart refused the sender <{}> at MAIL FROM: {code} {text} — the account {} may not \
                 send as <{}> (Stalwart's must-match-sender). Log in as that sender (bulk.username), or \
                 give the account an exception (v0.15 `session.auth.must-match-sender`, v0.16 \
                 `MtaStageAuth.mustMatchSender`). Nothing was sent; run again once it is fixed.",
                self.sender, self.target.username, self.sender
            ))),
            SmtpError::Reply {
                command: "RCPT" | "DATA",
                code,
                text,
            } => Ok(Reply::Refused { code, text }),
            e => Err(Stop::Fatal(format!(
                "submission to {} failed before the message was sent: {e}",
                self.target.address
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Decision, Outcome};

    /// The words looked for are the gateway's own answer for a held message.
    #[test]
    fn a_held_answer_is_recognised_with_its_hold() {
        let d = Decision {
            recipient: "a@x.test".into(),
            outcome: Outcome::Challenge,
            reasons: Vec::new(),
            attachments: Default::default(),
        };
        let answer = crate::submission::respond(&[d], "h-7f3a");
        let text = answer.response.expect("a response").message;
        assert_eq!(
            classify(&format!("2.0.0 {text}")),
            Reply::Held("h-7f3a".into())
        );
        assert_eq!(
            classify("2.0.0 Message queued with id 4bedcdc36e006bf."),
            Reply::Accepted
        );
    }
}

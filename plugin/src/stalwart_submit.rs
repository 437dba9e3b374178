//! The SMTP client that submits the gateway's own mail to Stalwart: released messages to the
//! `nta-release` listener ([`crate::hold::release`]) and notification mails to `nta-notify`
//! ([`crate::challenge::notify`]). EHLO, STARTTLS with a verified certificate (rustls, configurable CA
//! file), AUTH PLAIN/LOGIN as the service account, then up to [`MAX_PER_SESSION`] transactions per
//! connection (Stalwart's per-session limit), each MAIL FROM / RCPT TO / DATA with dot-stuffing.
//!
//! It owns the SMTP conversation only: what to send and when is the callers' business. It may use
//! [`crate::config::StalwartConfig`] (where and as whom) and nothing else of the gateway. (Not under
//! [`crate::stalwart`], which holds Stalwart's wire formats; a client is not a wire format.)
//!
//! Every failure says whether the message may have been accepted ([`SendError::Uncertain`]: the final
//! dot was sent but no reply was read) so callers never re-send something Stalwart may already queue.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::config::StalwartConfig;

/// Stalwart accepts at most 10 messages per SMTP session.
pub const MAX_PER_SESSION: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("timeout")]
    Timeout,
    #[error("server answered {code} to {command}: {text}")]
    Reply {
        command: &'static str,
        code: u16,
        text: String,
    },
    #[error("server does not offer {0}")]
    Missing(&'static str),
    #[error("configuration: {0}")]
    Config(String),
}

/// The outcome of one failed transaction.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Not accepted; safe to try again later.
    #[error("not accepted: {0}")]
    Failed(SmtpError),
    /// The message body was sent but the reply was lost: it may be queued. Never re-send automatically.
    #[error("outcome unknown after the final dot: {0}")]
    Uncertain(SmtpError),
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    pub address: String,
    pub username: String,
    pub password: String,
    pub starttls: bool,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    pub helo: String,
    pub timeout: Duration,
}

impl Target {
    /// The release (`release = true`) or notify listener from the `[stalwart]` section.
    pub fn from_config(c: &StalwartConfig, release: bool) -> Result<Target, SmtpError> {
        let address = if release { &c.release } else { &c.notify }.clone();
        let password = match (&c.password, &c.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| SmtpError::Config(format!("{}: {e}", f.display())))?
                .trim()
                .to_string(),
            (None, None) => return Err(SmtpError::Config("no password".into())),
        };
        let mut roots = rustls::RootCertStore::empty();
        match &c.ca_file {
            Some(f) => {
                for cert in CertificateDer::pem_file_iter(f)
                    .map_err(|e| SmtpError::Config(format!("{}: {e}", f.display())))?
                {
                    let cert =
                        cert.map_err(|e| SmtpError::Config(format!("{}: {e}", f.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| SmtpError::Config(format!("{}: {e}", f.display())))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| SmtpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let host = c.tls_server_name.clone().unwrap_or_else(|| {
            address
                .rsplit_once(':')
                .map_or(address.as_str(), |(h, _)| h)
                .trim_matches(|ch| ch == '[' || ch == ']')
                .to_string()
        });
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| SmtpError::Config(format!("TLS server name {host:?}: {e}")))?;
        Ok(Target {
            address,
            username: c.username.clone(),
            password,
            starttls: c.starttls,
            tls: Arc::new(tls),
            server_name,
            helo: c.helo.clone(),
            timeout: Duration::from_millis(c.timeout_ms),
        })
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An authenticated session, ready for transactions.
pub struct Session {
    io: BufReader<Box<dyn Stream>>,
    timeout: Duration,
    sent: usize,
}

/// One envelope and message.
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub data: &'a [u8],
}

impl Session {
    pub async fn open(t: &Target) -> Result<Session, SmtpError> {
        let tcp = tokio::time::timeout(t.timeout, TcpStream::connect(&t.address))
            .await
            .map_err(|_| SmtpError::Connect(t.address.clone(), "timeout".into()))?
            .map_err(|e| SmtpError::Connect(t.address.clone(), e.to_string()))?;
        let mut s = Session {
            io: BufReader::new(Box::new(tcp) as Box<dyn Stream>),
            timeout: t.timeout,
            sent: 0,
        };
        s.expect("greeting", 220).await?;
        let mut caps = s.ehlo(&t.helo).await?;
        if t.starttls {
            if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
                return Err(SmtpError::Missing("STARTTLS"));
            }
            s.command("STARTTLS", "STARTTLS", 220).await?;
            let tcp = s.io.into_inner();
            let tls =
                tokio_rustls::TlsConnector::from(t.tls.clone()).connect(t.server_name.clone(), tcp);
            let tls = tokio::time::timeout(t.timeout, tls)
                .await
                .map_err(|_| SmtpError::Timeout)?
                .map_err(|e| SmtpError::Tls(e.to_string()))?;
            s.io = BufReader::new(Box::new(tls) as Box<dyn Stream>);
            caps = s.ehlo(&t.helo).await?;
        }
        let auth: Vec<String> = caps
            .iter()
            .filter_map(|c| {
                let up = c.to_ascii_uppercase();
                up.strip_prefix("AUTH ")
                    .or(up.strip_prefix("AUTH="))
                    .map(|m| m.to_string())
            })
            .flat_map(|m| m.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        if auth.iter().any(|m| m == "PLAIN") {
            let token = b64(format!("\0{}\0{}", t.username, t.password).as_bytes());
            s.command("AUTH", &format!("AUTH PLAIN {token}"), 235)
                .await?;
        } else if auth.iter().any(|m| m == "LOGIN") {
            s.command("AUTH", "AUTH LOGIN", 334).await?;
            s.command("AUTH", &b64(t.username.as_bytes()), 334).await?;
            s.command("AUTH", &b64(t.password.as_bytes()), 235).await?;
        } else {
            return Err(SmtpError::Missing("AUTH PLAIN or LOGIN"));
        }
        Ok(s)
    }

    /// Whether this session may take another message (Stalwart's per-session limit).
    pub fn has_room(&self) -> bool {
        self.sent < MAX_PER_SESSION
    }

    /// One transaction. Returns Stalwart's queue id (from `250 … queued with id <id>`), or the whole reply
    /// text when it names none.
    pub async fn send(&mut self, env: &Envelope<'_>) -> Result<String, SendError> {
        self.sent += 1;
        let f = SendError::Failed;
        self.command("MAIL", &format!("MAIL FROM:<{}>", env.from), 250)
            .await
            .map_err(f)?;
        if let Err(e) = self
            .command("RCPT", &format!("RCPT TO:<{}>", env.to), 250)
            .await
        {
            let _ = self.command("RSET", "RSET", 250).await;
            return Err(f(e));
        }
        self.command("DATA", "DATA", 354).await.map_err(f)?;
        let body = dot_stuff(env.data);
        self.write(&body).await.map_err(f)?;
        // From here on the server may accept the message.
        let (code, text) = self.read_reply().await.map_err(SendError::Uncertain)?;
        if code != 250 {
            return Err(f(SmtpError::Reply {
                command: "DATA",
                code,
                text,
            }));
        }
        Ok(queue_id(&text))
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT", "QUIT", 221).await;
    }

    async fn ehlo(&mut self, helo: &str) -> Result<Vec<String>, SmtpError> {
        self.write(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let (code, text) = self.read_reply().await?;
        if code != 250 {
            return Err(SmtpError::Reply {
                command: "EHLO",
                code,
                text,
            });
        }
        Ok(text.lines().skip(1).map(|l| l.trim().to_string()).collect())
    }

    async fn command(
        &mut self,
        name: &'static str,
        line: &str,
        want: u16,
    ) -> Result<String, SmtpError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.expect(name, want).await
    }

    async fn expect(&mut self, name: &'static str, want: u16) -> Result<String, SmtpError> {
        let (code, text) = self.read_reply().await?;
        if code != want {
            return Err(SmtpError::Reply {
                command: name,
                code,
                text,
            });
        }
        Ok(text)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        let w = async {
            self.io.get_mut().write_all(bytes).await?;
            self.io.get_mut().flush().await
        };
        tokio::time::timeout(self.timeout, w)
            .await
            .map_err(|_| SmtpError::Timeout)??;
        Ok(())
    }

    /// A (multi-line) reply: code and the text lines joined by `\n`.
    async fn read_reply(&mut self) -> Result<(u16, String), SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(self.timeout, self.io.read_line(&mut line))
                .await
                .map_err(|_| SmtpError::Timeout)??;
            if n == 0 {
                return Err(SmtpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let line = line.trim_end();
            if line.len() < 3 {
                return Err(SmtpError::Io(std::io::Error::other(format!(
                    "malformed reply {line:?}"
                ))));
            }
            let code: u16 = line[..3].parse().map_err(|_| {
                SmtpError::Io(std::io::Error::other(format!("malformed reply {line:?}")))
            })?;
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, lines.join("\n")));
            }
        }
    }
}

/// RFC 5321 §4.5.2 transparency, plus the terminating `CRLF.CRLF` (a final CRLF is added when the
/// message does not end with one).
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 5);
    let mut at_line_start = true;
    for &b in data {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Stalwart answers `250 2.0.0 Message queued with id 1a2b3c.`: the id, or the whole text.
pub fn queue_id(text: &str) -> String {
    text.split_once(" id ")
        .map(|(_, id)| id.trim().trim_end_matches('.').to_string())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(dot_stuff(b".x"), b"..x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b"\r\n.\r\n");
    }

    #[test]
    fn queue_ids() {
        assert_eq!(
            queue_id("2.0.0 Message queued with id 4bedcdc36e006bf."),
            "4bedcdc36e006bf"
        );
        assert_eq!(queue_id("2.0.0 OK"), "2.0.0 OK");
    }
}

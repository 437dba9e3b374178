//! The SMTP client that submits the gateway's own mail to Stalwart: released messages to the
//! `nta-release` listener ([`crate::hold::release`]) and notification mails to `nta-notify`
//! ([`crate::challenge::notify`]), and `bulk send`'s letters to Stalwart's submission listener as their
//! sender ([`crate::bulk::send`]). EHLO, STARTTLS with a verified certificate (rustls, configurable CA
//! file), AUTH PLAIN/LOGIN as the service account, then up to [`MAX_PER_SESSION`] transactions per
//! connection (Stalwart's per-session limit), each MAIL FROM / RCPT TO / DATA with dot-stuffing.
//!
//! It owns the SMTP conversation only: what to send and when is the callers' business. It may use
//! [`crate::config::StalwartConfig`] (where and as whom) and nothing else of the gateway. (Not under
//! [`crate::stalwart`], which holds Stalwart's wire formats; a client is not a wire format.)
//!
//! Every failure says whether the message may have been accepted ([`SendError::Uncertain`]: the final
//! dot was sent but no reply was read) so callers never re-send something Stalwart may already queue.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::config::{SpkiPin, StalwartConfig, StalwartTrust};

pub mod pinned;

/// Stalwart accepts at most 10 messages per SMTP session.
pub const MAX_PER_SESSION: usize = 10;

/// The longest reply line read (RFC 5321 §4.5.3.1.5 allows 512 bytes).
pub const MAX_REPLY_LINE: usize = 4096;

/// The most lines of one reply read.
pub const MAX_REPLY_LINES: usize = 100;

/// How long a [`Kept`] session waits idle for the next pass before it is closed: well below the
/// idle timeout of Stalwart's SMTP sessions (`timeout`, 5 minutes by default), so that Stalwart does
/// not close it first.
pub const KEPT_IDLE: Duration = Duration::from_secs(30);

/// How long one session carries messages: well below the longest session Stalwart allows
/// (`maxDuration`, 10 minutes by default), so that Stalwart never ends one in the middle of a message
/// (a release cut off after its data would be `uncertain`).
pub const MAX_SESSION_AGE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("TLS: {0}")]
    Tls(String),
    /// The listener's key is not the pinned one (`stalwart.pin_spki_sha256`).
    #[error(
        "TLS: the listener's key is not the pinned one: expected SPKI pin {expected}, presented {presented} \
         (a Stalwart without a [certificate] makes a new key at every start; give it a stable \
         certificate, then run `stalwart-nta7516 stalwart trust` again)"
    )]
    PinMismatch {
        expected: SpkiPin,
        presented: SpkiPin,
    },
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
    /// A 5xx to MAIL FROM. Stalwart answers `501 5.5.4 You are not allowed to send from this address.`
    /// when `session.auth.must-match-sender` has no exception for the service account: a deployment
    /// error, never the message's fault, so callers keep the message and retry.
    #[error("Stalwart refused the sender at MAIL FROM: {code} {text}{}", sender_hint(*.code, .text))]
    SenderRefused { code: u16, text: String },
    #[error("server does not offer {0}")]
    Missing(&'static str),
    #[error("configuration: {0}")]
    Config(String),
}

impl SmtpError {
    /// Whether this is Stalwart refusing the envelope sender (see [`SmtpError::SenderRefused`]).
    pub fn is_sender_refused(&self) -> bool {
        matches!(self, SmtpError::SenderRefused { .. })
    }
}

/// What to do about a refused sender; Stalwart's must-match-sender is the usual cause.
fn sender_hint(code: u16, text: &str) -> &'static str {
    if code == 501 || text.contains("not allowed to send from") {
        " — the service account may not send as this sender: give it an exception from Stalwart's \
         must-match-sender (v0.15 `session.auth.must-match-sender`, v0.16 `MtaStageAuth.mustMatchSender`: \
         `authenticated_as == '<service account>'` → false); the gateway keeps the message and retries"
    } else {
        " — the gateway keeps the message and retries"
    }
}

/// A failed TLS handshake; a pin mismatch from [`pinned`] keeps its two pins.
fn tls_error(e: std::io::Error) -> SmtpError {
    let pins = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|r| match r {
            rustls::Error::Other(other) => other.0.downcast_ref::<pinned::PinMismatch>(),
            _ => None,
        });
    match pins {
        Some(m) => SmtpError::PinMismatch {
            expected: m.expected,
            presented: m.presented,
        },
        None => SmtpError::Tls(e.to_string()),
    }
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
        let host = c
            .tls_server_name
            .clone()
            .unwrap_or_else(|| host_part(&address).to_string());
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| SmtpError::Config(format!("TLS server name {host:?}: {e}")))?;
        Ok(Target {
            address,
            username: c.username.clone(),
            password,
            starttls: c.starttls,
            tls: Arc::new(client_config(&c.trust())?),
            server_name,
            helo: c.helo.clone(),
            timeout: Duration::from_millis(c.timeout_ms),
        })
    }
}

/// The host of `host:port` (`[v6]:port` without the brackets).
pub fn host_part(address: &str) -> &str {
    address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_matches(|ch| ch == '[' || ch == ']')
}

/// The rustls client configuration for a trust choice (ring provider, safe protocol versions).
pub fn client_config(trust: &StalwartTrust) -> Result<rustls::ClientConfig, SmtpError> {
    let roots = match trust {
        StalwartTrust::PinnedSpki(pin) => return Ok(pinned::client_config(*pin)),
        StalwartTrust::WebPki => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            roots
        }
        StalwartTrust::CaFile(f) => {
            let bad =
                |e: &dyn std::fmt::Display| SmtpError::Config(format!("{}: {e}", f.display()));
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(f).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            roots
        }
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SmtpError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An authenticated session, ready for transactions.
pub struct Session {
    io: BufReader<Box<dyn Stream>>,
    timeout: Duration,
    sent: usize,
    opened: Instant,
}

/// One envelope and message.
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub data: &'a [u8],
}

impl Session {
    /// Connects, upgrades with STARTTLS (when the target asks for it) and authenticates.
    pub async fn open(t: &Target) -> Result<Session, SmtpError> {
        let tls = t.starttls.then(|| (t.tls.clone(), t.server_name.clone()));
        let (mut s, caps) = Session::connect(&t.address, &t.helo, t.timeout, tls).await?;
        s.authenticate(&caps, &t.username, &t.password).await?;
        Ok(s)
    }

    /// Greeting, EHLO and (with `tls`) STARTTLS and EHLO again: the session before AUTH and the
    /// extensions the server offers.
    async fn connect(
        address: &str,
        helo: &str,
        timeout: Duration,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    ) -> Result<(Session, Vec<String>), SmtpError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| SmtpError::Connect(address.to_string(), "timeout".into()))?
            .map_err(|e| SmtpError::Connect(address.to_string(), e.to_string()))?;
        Session::start(Box::new(tcp), helo, timeout, tls).await
    }

    /// [`Session::connect`] after the TCP connect, over any stream.
    async fn start(
        io: Box<dyn Stream>,
        helo: &str,
        timeout: Duration,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    ) -> Result<(Session, Vec<String>), SmtpError> {
        let mut s = Session {
            io: BufReader::new(io),
            timeout,
            sent: 0,
            opened: Instant::now(),
        };
        s.expect("greeting", 220).await?;
        let mut caps = s.ehlo(helo).await?;
        if let Some((config, server_name)) = tls {
            if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
                return Err(SmtpError::Missing("STARTTLS"));
            }
            s.command("STARTTLS", "STARTTLS", 220).await?;
            let tcp = s.io.into_inner();
            let tls = tokio_rustls::TlsConnector::from(config).connect(server_name, tcp);
            let tls = tokio::time::timeout(timeout, tls)
                .await
                .map_err(|_| SmtpError::Timeout)?
                .map_err(tls_error)?;
            s.io = BufReader::new(Box::new(tls) as Box<dyn Stream>);
            caps = s.ehlo(helo).await?;
        }
        Ok((s, caps))
    }

    /// A session without TLS over an already connected stream (the fuzz target's scripted server).
    pub(crate) async fn over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        stream: S,
        helo: &str,
        timeout: Duration,
        username: &str,
        password: &str,
    ) -> Result<Session, SmtpError> {
        let (mut s, caps) = Session::start(Box::new(stream), helo, timeout, None).await?;
        s.authenticate(&caps, username, password).await?;
        Ok(s)
    }

    /// AUTH PLAIN, else AUTH LOGIN, as offered in `caps`.
    async fn authenticate(
        &mut self,
        caps: &[String],
        username: &str,
        password: &str,
    ) -> Result<(), SmtpError> {
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
            let token = b64(format!("\0{username}\0{password}").as_bytes());
            self.command("AUTH", &format!("AUTH PLAIN {token}"), 235)
                .await?;
        } else if auth.iter().any(|m| m == "LOGIN") {
            self.command("AUTH", "AUTH LOGIN", 334).await?;
            self.command("AUTH", &b64(username.as_bytes()), 334).await?;
            self.command("AUTH", &b64(password.as_bytes()), 235).await?;
        } else {
            return Err(SmtpError::Missing("AUTH PLAIN or LOGIN"));
        }
        Ok(())
    }

    /// Whether this session may take another message (Stalwart's per-session limit, and
    /// [`MAX_SESSION_AGE`]).
    pub fn has_room(&self) -> bool {
        self.sent < MAX_PER_SESSION && self.opened.elapsed() < MAX_SESSION_AGE
    }

    /// One transaction. Returns Stalwart's queue id (from `250 … queued with id <id>`), or the whole reply
    /// text when it names none.
    pub async fn send(&mut self, env: &Envelope<'_>) -> Result<String, SendError> {
        self.send_reply(env).await.map(|text| queue_id(&text))
    }

    /// One transaction; returns the text of the `250` reply to the data (what the MTA hook answered
    /// shows there: `bulk send` tells a held message from one queued for delivery by it).
    pub async fn send_reply(&mut self, env: &Envelope<'_>) -> Result<String, SendError> {
        self.sent += 1;
        let f = SendError::Failed;
        self.command("MAIL", &format!("MAIL FROM:<{}>", env.from), 250)
            .await
            .map_err(|e| match e {
                SmtpError::Reply { code, text, .. } if code >= 500 => {
                    f(SmtpError::SenderRefused { code, text })
                }
                e => f(e),
            })?;
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
        Ok(text)
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT", "QUIT", 221).await;
    }

    /// Whether the session still answers (`NOOP` → `250`): a kept session is checked so before it
    /// carries a message, so that a session the server closed is never where a message fails.
    async fn answers(&mut self) -> bool {
        self.command("NOOP", "NOOP", 250).await.is_ok()
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

    /// A (multi-line) reply: code and the text lines joined by `\n`. At most [`MAX_REPLY_LINES`] lines
    /// of at most [`MAX_REPLY_LINE`] bytes; anything else is a malformed reply.
    async fn read_reply(&mut self) -> Result<(u16, String), SmtpError> {
        let malformed = |what: String| SmtpError::Io(std::io::Error::other(what));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let mut limited = (&mut self.io).take(MAX_REPLY_LINE as u64);
            let n = tokio::time::timeout(self.timeout, limited.read_line(&mut line))
                .await
                .map_err(|_| SmtpError::Timeout)??;
            if n == 0 {
                return Err(SmtpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            if n == MAX_REPLY_LINE && !line.ends_with('\n') {
                return Err(malformed(format!(
                    "reply line longer than {MAX_REPLY_LINE} bytes"
                )));
            }
            let line = line.trim_end();
            let code = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| malformed(format!("malformed reply {line:?}")))?;
            lines.push(line.get(4..).unwrap_or("").to_string());
            if lines.len() > MAX_REPLY_LINES {
                return Err(malformed(format!(
                    "reply longer than {MAX_REPLY_LINES} lines"
                )));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, lines.join("\n")));
            }
        }
    }
}

/// A session kept open between the worker's passes for one listener: a notification or release then
/// costs one transaction instead of a TCP connect, a STARTTLS handshake and AUTH (a third of the
/// worker's CPU in a profile under load, where every held message had a session of its own). At most one session is kept, for at most [`KEPT_IDLE`]; one
/// that failed is never given back (callers drop it), and one that no longer answers `NOOP` is
/// dropped when taken, so a message is always sent on a session that answered just before.
#[derive(Default)]
pub struct Kept {
    slot: std::sync::Mutex<Option<(Session, Instant)>>,
}

impl Kept {
    /// The kept session, if it was given back less than [`KEPT_IDLE`] ago, has room and still answers.
    pub async fn take(&self) -> Option<Session> {
        let (mut session, since) = self.lock().take()?;
        if since.elapsed() >= KEPT_IDLE || !session.has_room() {
            session.quit().await;
            return None;
        }
        session.answers().await.then_some(session)
    }

    /// Gives a session back after a pass that used it without error; one without room (full or
    /// old) is closed instead, and so is a kept one it replaces.
    pub async fn give_back(&self, session: Session) {
        if !session.has_room() {
            return session.quit().await;
        }
        let replaced = self.lock().replace((session, Instant::now()));
        if let Some((old, _)) = replaced {
            old.quit().await;
        }
    }

    /// Closes the kept session once it has been idle for [`KEPT_IDLE`] (each worker pass asks).
    pub async fn expire(&self) {
        let stale = {
            let mut slot = self.lock();
            match &*slot {
                Some((_, since)) if since.elapsed() >= KEPT_IDLE => slot.take(),
                _ => None,
            }
        };
        if let Some((session, _)) = stale {
            session.quit().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Session, Instant)>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
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

/// Stalwart answers `250 2.0.0 Message queued with id 1a2b3c.`: the id (the word after `id`), or the
/// whole text on one line.
pub fn queue_id(text: &str) -> String {
    text.split_once(" id ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(|id| id.trim_end_matches('.').to_string())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
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
        // A multi-line reply: the id only, never the next line.
        assert_eq!(queue_id("2.0.0 Message queued with id 1a2b.\nmore"), "1a2b");
        assert_eq!(queue_id("2.0.0 OK\nsecond line"), "2.0.0 OK second line");
    }

    /// The submission client over a scripted server: AUTH PLAIN offered, then `reply`.
    async fn auth_answered(reply: &[u8]) -> Result<Session, SmtpError> {
        let mut script = b"220 stalwart\r\n250-stalwart\r\n250 AUTH PLAIN\r\n".to_vec();
        script.extend_from_slice(reply);
        let server = tokio::io::join(std::io::Cursor::new(script), tokio::io::sink());
        Session::over(server, "gw", Duration::from_secs(5), "u", "p").await
    }

    #[tokio::test]
    async fn hostile_replies_are_errors_not_panics() {
        // Found by the smtp_reply fuzz target: a multi-byte character across the code's third byte
        // panicked (`line[..3]` not on a char boundary).
        let e = auth_answered("22€\r\n".as_bytes()).await.err().unwrap();
        assert!(e.to_string().contains("malformed reply"), "{e}");
        let long = vec![b'2'; MAX_REPLY_LINE + 10];
        let e = auth_answered(&long).await.err().unwrap();
        assert!(e.to_string().contains("longer than 4096 bytes"), "{e}");
        let many = "235-x\r\n".repeat(MAX_REPLY_LINES + 1);
        let e = auth_answered(many.as_bytes()).await.err().unwrap();
        assert!(e.to_string().contains("longer than 100 lines"), "{e}");
        assert!(auth_answered(b"235 ok\r\n").await.is_ok());
    }

    /// A session over a scripted server that answers `NOOP` `noops` times.
    async fn answering(noops: usize) -> Session {
        auth_answered(format!("235 ok\r\n{}", "250 ok\r\n".repeat(noops)).as_bytes())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_kept_session_is_used_only_while_it_answers_and_is_young() {
        let kept = Kept::default();
        assert!(kept.take().await.is_none(), "nothing kept yet");
        kept.give_back(answering(1).await).await;
        let again = kept.take().await.expect("answered NOOP");
        assert!(kept.take().await.is_none(), "taken: no longer kept");
        // It answered its one NOOP: the next check fails (the server closed it), so it is dropped.
        kept.give_back(again).await;
        assert!(kept.take().await.is_none());
        // Idle for too long: closed without a check, even though it would answer.
        kept.give_back(answering(1).await).await;
        if let Some((_, since)) = kept.lock().as_mut() {
            *since = Instant::now().checked_sub(KEPT_IDLE).unwrap();
        }
        kept.expire().await;
        assert!(kept.lock().is_none(), "expired");
        // Too old to carry another message (Stalwart's longest session): never kept.
        let mut old = answering(1).await;
        old.opened = Instant::now().checked_sub(MAX_SESSION_AGE).unwrap();
        assert!(!old.has_room());
        kept.give_back(old).await;
        assert!(kept.lock().is_none(), "an old session is closed, not kept");
        // Full (Stalwart's per-session limit): never kept either.
        let mut full = answering(1).await;
        full.sent = MAX_PER_SESSION;
        kept.give_back(full).await;
        assert!(kept.lock().is_none());
    }
}

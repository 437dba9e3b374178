//! Minimal SMTP client: greeting, EHLO, STARTTLS (RFC 5321, RFC 3207).
//!
//! Guards against STARTTLS command injection (CVE-2011-0411 class): after the `220` reply to
//! `STARTTLS` nothing may be buffered; plaintext that arrived together with the reply would otherwise
//! be read as if it came over TLS.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;

/// What went wrong talking SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpError {
    /// TCP connect refused / unreachable.
    Connect(String),
    /// TCP connect or an SMTP reply did not come in time.
    Timeout(Step),
    /// Unexpected reply / garbage / connection closed.
    Protocol(String),
    /// EHLO response did not list STARTTLS.
    NoStarttls,
    /// STARTTLS answered with something other than 220.
    StarttlsRejected(String),
    /// Bytes were pipelined after the 220 reply to STARTTLS.
    Injection,
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmtpError::Connect(e) => write!(f, "connection failed: {e}"),
            SmtpError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            SmtpError::Protocol(e) => write!(f, "SMTP protocol error: {e}"),
            SmtpError::NoStarttls => f.write_str("server does not offer STARTTLS"),
            SmtpError::StarttlsRejected(r) => write!(f, "STARTTLS refused: {r}"),
            SmtpError::Injection => f.write_str(
                "server sent data after the 220 reply to STARTTLS (plaintext injection)",
            ),
        }
    }
}

/// A step of the dialogue that can time out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The TCP connection.
    Connect,
    /// The 220 greeting.
    Greeting,
    /// The reply to EHLO.
    EhloReply,
    /// The reply to STARTTLS.
    StarttlsReply,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Connect => "TCP connect",
            Step::Greeting => "greeting",
            Step::EhloReply => "EHLO reply",
            Step::StarttlsReply => "STARTTLS reply",
        })
    }
}

/// One SMTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Three-digit code.
    pub code: u16,
    /// Text lines without the code.
    pub lines: Vec<String>,
}

/// Result of the plaintext part of the session.
#[derive(Debug, Clone)]
pub struct Plaintext {
    /// First line of the 220 greeting.
    pub banner: String,
    /// EHLO keywords (upper-cased first word of each line after the first).
    pub ehlo_keywords: Vec<String>,
}

/// Connects, reads the greeting, sends EHLO and STARTTLS and returns the socket ready for the TLS
/// handshake.
pub async fn starttls(
    addr: SocketAddr,
    ehlo_name: &str,
    connect_timeout: Duration,
    cmd_timeout: Duration,
) -> Result<(TcpStream, Plaintext), SmtpError> {
    let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(SmtpError::Timeout(Step::Connect)),
        Ok(Err(e)) => return Err(SmtpError::Connect(e.to_string())),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    negotiate(tcp, ehlo_name, cmd_timeout).await
}

/// The plaintext dialogue of [`starttls`] over a connected stream: greeting, EHLO, STARTTLS. Returns the
/// stream ready for the TLS handshake (nothing buffered) and what the server said.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    ehlo_name: &str,
    cmd_timeout: Duration,
) -> Result<(S, Plaintext), SmtpError> {
    let mut rd = BufReader::new(stream);
    let greeting = read_reply(&mut rd, cmd_timeout, Step::Greeting).await?;
    if greeting.code != 220 {
        return Err(SmtpError::Protocol(format!(
            "greeting {} {}",
            greeting.code,
            greeting.lines.join(" ")
        )));
    }
    send(&mut rd, &format!("EHLO {ehlo_name}\r\n")).await?;
    let ehlo = read_reply(&mut rd, cmd_timeout, Step::EhloReply).await?;
    if ehlo.code != 250 {
        return Err(SmtpError::Protocol(format!(
            "EHLO answered {} {}",
            ehlo.code,
            ehlo.lines.join(" ")
        )));
    }
    let keywords: Vec<String> = ehlo
        .lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(|w| w.to_ascii_uppercase()))
        .collect();
    let plain = Plaintext {
        // The banner goes into reports: a control character (a CR inside the line) becomes a space.
        banner: greeting
            .lines
            .first()
            .map(|l| l.replace(char::is_control, " "))
            .unwrap_or_default(),
        ehlo_keywords: keywords,
    };
    if !plain.ehlo_keywords.iter().any(|k| k == "STARTTLS") {
        let _ = send(&mut rd, "QUIT\r\n").await;
        return Err(SmtpError::NoStarttls);
    }
    send(&mut rd, "STARTTLS\r\n").await?;
    let r = read_reply(&mut rd, cmd_timeout, Step::StarttlsReply).await?;
    if r.code != 220 {
        return Err(SmtpError::StarttlsRejected(format!(
            "{} {}",
            r.code,
            r.lines.join(" ")
        )));
    }
    if !rd.buffer().is_empty() {
        return Err(SmtpError::Injection);
    }
    Ok((rd.into_inner(), plain))
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    rd: &mut BufReader<S>,
    line: &str,
) -> Result<(), SmtpError> {
    rd.get_mut()
        .write_all(line.as_bytes())
        .await
        .map_err(|e| SmtpError::Protocol(format!("write: {e}")))
}

/// Reads one (multi-line) reply.
async fn read_reply<R: AsyncBufRead + Unpin>(
    rd: &mut R,
    timeout: Duration,
    what: Step,
) -> Result<Reply, SmtpError> {
    tokio::time::timeout(timeout, async {
        let mut lines = Vec::new();
        let mut code = 0u16;
        loop {
            let mut line = String::new();
            let n = (&mut *rd)
                .take(4096)
                .read_line(&mut line)
                .await
                .map_err(|e| SmtpError::Protocol(format!("read: {e}")))?;
            if n == 0 {
                return Err(SmtpError::Protocol(format!(
                    "connection closed waiting for {what}"
                )));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.len() < 3 || !line.is_char_boundary(3) {
                return Err(SmtpError::Protocol(format!(
                    "malformed reply line {line:?}"
                )));
            }
            let c: u16 = line[..3]
                .parse()
                .map_err(|_| SmtpError::Protocol(format!("malformed reply line {line:?}")))?;
            if code != 0 && c != code {
                return Err(SmtpError::Protocol("inconsistent multi-line reply".into()));
            }
            code = c;
            let sep = line.as_bytes().get(3).copied();
            lines.push(line.get(4..).unwrap_or("").to_string());
            if lines.len() > 100 {
                return Err(SmtpError::Protocol("reply too long".into()));
            }
            match sep {
                Some(b'-') => continue,
                _ => return Ok(Reply { code, lines }),
            }
        }
    })
    .await
    .map_err(|_| SmtpError::Timeout(what))?
}

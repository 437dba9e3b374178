//! A real STARTTLS SMTP server on rustls for tests.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::pki::CertKey;

/// How the server behaves.
#[derive(Clone)]
pub struct SmtpServerOpts {
    /// Certificate (required when STARTTLS is offered).
    pub cert: Option<CertKey>,
    /// Offer STARTTLS.
    pub starttls: bool,
    /// Allow TLS 1.3.
    pub tls13: bool,
    /// Allow TLS 1.2.
    pub tls12: bool,
    /// Host name in the banner.
    pub name: String,
}

impl SmtpServerOpts {
    /// STARTTLS with TLS 1.2 and 1.3 and this certificate.
    pub fn tls(cert: CertKey, name: &str) -> Self {
        SmtpServerOpts {
            cert: Some(cert),
            starttls: true,
            tls13: true,
            tls12: true,
            name: name.into(),
        }
    }
    /// No STARTTLS.
    pub fn plaintext(name: &str) -> Self {
        SmtpServerOpts {
            cert: None,
            starttls: false,
            tls13: true,
            tls12: true,
            name: name.into(),
        }
    }
}

/// A running server; stops when dropped.
pub struct TestSmtpServer {
    /// Listening address.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestSmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the server on `listener`.
pub fn start(listener: TcpListener, opts: SmtpServerOpts) -> TestSmtpServer {
    let addr = listener.local_addr().expect("local addr");
    let acceptor = opts.cert.as_ref().map(|c| {
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if opts.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if opts.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let cfg = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(c.chain.clone(), c.key())
            .expect("server cert");
        TlsAcceptor::from(Arc::new(cfg))
    });
    let opts = Arc::new(opts);
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let opts = opts.clone();
            tokio::spawn(async move {
                let _ = session(sock, acceptor, opts).await;
            });
        }
    });
    TestSmtpServer { addr, task }
}

enum Next {
    Quit,
    StartTls,
}

async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    rd: &mut BufReader<S>,
    opts: &SmtpServerOpts,
    in_tls: bool,
) -> std::io::Result<Next> {
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).await? == 0 {
            return Ok(Next::Quit);
        }
        let cmd = line.trim().to_ascii_uppercase();
        let w = rd.get_mut();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            let mut out = format!("250-{}\r\n250-PIPELINING\r\n", opts.name);
            if opts.starttls && !in_tls {
                out.push_str("250-STARTTLS\r\n");
            }
            out.push_str("250 8BITMIME\r\n");
            w.write_all(out.as_bytes()).await?;
        } else if cmd == "STARTTLS" && opts.starttls && !in_tls {
            w.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
            return Ok(Next::StartTls);
        } else if cmd == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(Next::Quit);
        } else if cmd == "NOOP" || cmd == "RSET" {
            w.write_all(b"250 2.0.0 OK\r\n").await?;
        } else {
            w.write_all(b"502 5.5.2 Command not implemented\r\n")
                .await?;
        }
        w.flush().await?;
    }
}

async fn session(
    sock: tokio::net::TcpStream,
    acceptor: Option<TlsAcceptor>,
    opts: Arc<SmtpServerOpts>,
) -> std::io::Result<()> {
    let mut rd = BufReader::new(sock);
    rd.get_mut()
        .write_all(format!("220 {} ESMTP SmartTLS test server\r\n", opts.name).as_bytes())
        .await?;
    match dialogue(&mut rd, &opts, false).await? {
        Next::Quit => return Ok(()),
        Next::StartTls => {}
    }
    let Some(acceptor) = acceptor else {
        return Ok(());
    };
    if !rd.buffer().is_empty() {
        return Ok(()); // pipelined plaintext after STARTTLS: drop (RFC 3207 §4.2)
    }
    let tls = acceptor.accept(rd.into_inner()).await?;
    let mut rd = BufReader::new(tls);
    let _ = dialogue(&mut rd, &opts, true).await?;
    Ok(())
}

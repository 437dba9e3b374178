//! A real SMTP server standing in for Stalwart's `nta-release` / `nta-notify` listeners: EHLO, STARTTLS
//! (tokio-rustls, rcgen certificate for `localhost`), AUTH PLAIN and LOGIN (only after TLS, only the
//! configured account; or LOGIN only), MAIL, RCPT, DATA (dot-unstuffed), RSET, QUIT; answers
//! `250 2.0.0 Message queued with id <hex>` and records every accepted message. Enforces Stalwart's limit
//! of 10 messages per session, and its default `session.auth.must-match-sender = true`: an envelope
//! sender other than the authenticated account is refused at MAIL FROM with Stalwart's
//! `501 5.5.4 You are not allowed to send from this address.` unless [`SmtpServer::sender_exception`] is
//! set (the exception a correct deployment configures for the service account; [`super::Env`] sets it).
//! Faults on demand: refusing after the data, at `MAIL`/`RCPT`/`DATA` with a chosen reply, losing the
//! reply, stalling it, or not listening at all.
//! [`Stall`] stops chosen messages before `354` or after the final dot (before `250`) until the test
//! resumes them or the client goes away: the windows in which a crash-safety test kills a sender.
//! With [`SmtpServer::hook`] set it is Stalwart's *submission* listener instead: at DATA it calls the
//! gateway's MTA hook and applies the answer ([`super::stalwart_smtp`]); [`SmtpServer::accounts`] are
//! the users who may log in there (must-match-sender applies to them as to the service account).

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use super::stalwart_smtp::{HookTarget, Hooked, Verdict};
use base64::Engine;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpListener,
    task::JoinHandle,
};

pub const USER: &str = "nta-gateway";
pub const PASS: &str = "service-secret-42";

#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
    pub queue_id: String,
    pub tls: bool,
    pub auth: String,
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    /// Which connection (1, 2, …) carried it.
    pub session: usize,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// While set, every message is refused after its data (`451 4.7.28`, like Stalwart's rate limiters).
    pub refuse: Arc<std::sync::atomic::AtomicBool>,
    /// While set, every message is queued after its data but the connection drops before the reply
    /// (the sender cannot know it was accepted).
    pub vanish: Arc<std::sync::atomic::AtomicBool>,
    /// While set, only AUTH LOGIN is offered and AUTH PLAIN is refused.
    pub login_only: Arc<std::sync::atomic::AtomicBool>,
    /// While set, the service account may send as any sender (Stalwart's must-match-sender exception);
    /// unset, only as itself (Stalwart's default).
    pub sender_exception: Arc<std::sync::atomic::AtomicBool>,
    /// While set, EHLO does not offer STARTTLS (a listener without TLS).
    pub no_starttls: Arc<std::sync::atomic::AtomicBool>,
    /// While set, this command (`MAIL`, `RCPT` or `DATA`) is answered with this reply line instead of
    /// going on (a listener refusing at that step, temporarily or permanently).
    pub fail_at: Arc<Mutex<Option<(&'static str, &'static str)>>>,
    /// Stops chosen messages at a chosen phase (see [`Stall`]).
    pub stall: Arc<Stall>,
    /// While set, every message goes through this MTA hook at DATA, as on Stalwart's submission
    /// listener ([`super::stalwart_smtp`]).
    pub hook: Arc<Mutex<Option<HookTarget>>>,
    /// Every message the hook saw, in order, with the reply the client got.
    pub hooked: Arc<Mutex<Vec<Hooked>>>,
    /// Users besides the service account who may authenticate: (user, password).
    pub accounts: Arc<Mutex<Vec<(String, String)>>>,
    /// The SHA-256 of the certificate key's SubjectPublicKeyInfo, base64 (from rcgen's own encoding of
    /// the key, not from the certificate: an independent oracle for the gateway's pin).
    pub spki_pin: String,
    key_pem: String,
    sessions: Arc<std::sync::atomic::AtomicUsize>,
    /// Closes the sessions waiting idle for a command (see [`SmtpServer::close_idle`]).
    hangup: Arc<tokio::sync::Notify>,
    acceptor: tokio_rustls::TlsAcceptor,
    task: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// A listener with a fresh key and a self-signed certificate for `localhost` (like a Stalwart
    /// without a `[certificate]`).
    pub async fn start() -> SmtpServer {
        Self::start_with(rcgen::KeyPair::generate().unwrap(), &["localhost"]).await
    }

    /// A listener with a new self-signed certificate for `names` around the key of `other` (a
    /// re-issued certificate with the same key).
    pub async fn start_reissued(other: &SmtpServer, names: &[&str]) -> SmtpServer {
        Self::start_with(rcgen::KeyPair::from_pem(&other.key_pem).unwrap(), names).await
    }

    async fn start_with(signing_key: rcgen::KeyPair, names: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&signing_key)
            .unwrap();
        let ca_file = dir.path().join("stalwart-ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&signing_key);
        let spki_pin = base64::engine::general_purpose::STANDARD
            .encode(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
        let mut s = SmtpServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            ca_file,
            received: Arc::default(),
            refuse: Arc::default(),
            vanish: Arc::default(),
            login_only: Arc::default(),
            sender_exception: Arc::default(),
            no_starttls: Arc::default(),
            fail_at: Arc::default(),
            stall: Arc::default(),
            hook: Arc::default(),
            hooked: Arc::default(),
            accounts: Arc::default(),
            spki_pin,
            key_pem: signing_key.serialize_pem(),
            sessions: Arc::default(),
            hangup: Arc::default(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            task: None,
            _dir: dir,
        };
        s.listen().await;
        s
    }

    /// A second listener with the same certificate (Stalwart's two listeners share one).
    pub async fn start_sharing(other: &SmtpServer) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("stalwart-ca.pem");
        std::fs::copy(&other.ca_file, &ca_file).unwrap();
        let mut s = SmtpServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            ca_file,
            received: Arc::default(),
            refuse: Arc::default(),
            vanish: Arc::default(),
            login_only: Arc::default(),
            sender_exception: Arc::default(),
            no_starttls: Arc::default(),
            fail_at: Arc::default(),
            stall: Arc::default(),
            hook: Arc::default(),
            hooked: Arc::default(),
            accounts: Arc::default(),
            spki_pin: other.spki_pin.clone(),
            key_pem: other.key_pem.clone(),
            sessions: Arc::default(),
            hangup: Arc::default(),
            acceptor: other.acceptor.clone(),
            task: None,
            _dir: dir,
        };
        s.listen().await;
        s
    }

    async fn listen(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let received = self.received.clone();
        let flags = Flags {
            refuse: self.refuse.clone(),
            vanish: self.vanish.clone(),
            login_only: self.login_only.clone(),
            sender_exception: self.sender_exception.clone(),
            no_starttls: self.no_starttls.clone(),
            fail_at: self.fail_at.clone(),
            stall: self.stall.clone(),
            sessions: self.sessions.clone(),
            hangup: self.hangup.clone(),
            hook: self.hook.clone(),
            hooked: self.hooked.clone(),
            accounts: self.accounts.clone(),
        };
        let acceptor = self.acceptor.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (received, acceptor, flags) =
                    (received.clone(), acceptor.clone(), flags.clone());
                tokio::spawn(async move {
                    let _ = session(tcp, acceptor, received, flags).await;
                });
            }
        }));
    }

    /// Stops listening (connections are refused) until [`SmtpServer::restart`], and closes the idle
    /// sessions, as a stopped Stalwart does.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.close_idle();
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if TcpListener::bind(self.addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.listen().await;
    }

    /// The connections accepted so far.
    pub fn sessions(&self) -> usize {
        self.sessions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every session that waits for its client's next command, without a reply, as Stalwart
    /// does when a session's idle timeout runs out (sessions in the middle of a message go on).
    pub fn close_idle(&self) {
        self.hangup.notify_waiters();
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived (or panics after `secs`).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} messages at {}, got {}",
                self.addr,
                m.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The server's switchable behaviour, shared with every session.
#[derive(Clone)]
struct Flags {
    refuse: Arc<std::sync::atomic::AtomicBool>,
    vanish: Arc<std::sync::atomic::AtomicBool>,
    login_only: Arc<std::sync::atomic::AtomicBool>,
    sender_exception: Arc<std::sync::atomic::AtomicBool>,
    no_starttls: Arc<std::sync::atomic::AtomicBool>,
    fail_at: Arc<Mutex<Option<(&'static str, &'static str)>>>,
    stall: Arc<Stall>,
    sessions: Arc<std::sync::atomic::AtomicUsize>,
    hangup: Arc<tokio::sync::Notify>,
    hook: Arc<Mutex<Option<HookTarget>>>,
    hooked: Arc<Mutex<Vec<Hooked>>>,
    accounts: Arc<Mutex<Vec<(String, String)>>>,
}

impl Flags {
    /// The configured refusal for this command line, if any.
    fn refusal(&self, upper: &str) -> Option<String> {
        let (verb, reply) = (*self.fail_at.lock().unwrap())?;
        upper.starts_with(verb).then(|| format!("{reply}\r\n"))
    }
}

/// Where a stalled message stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// After the client's `DATA`, before `354`: nothing of the message was sent.
    BeforeData,
    /// After the final dot, the message recorded as queued, before `250`: the client cannot know.
    AfterDot,
}

/// Stops the next `n` messages at a [`Phase`] until [`Stall::resume`] or until the client closes the
/// connection (a killed sender); counts both.
#[derive(Default)]
pub struct Stall {
    /// (phase, messages to let through first, messages to stop).
    plan: Mutex<Option<(Phase, usize, usize)>>,
    /// Sessions stopped now.
    pub waiting: std::sync::atomic::AtomicUsize,
    /// Stopped sessions whose client went away.
    pub dropped: std::sync::atomic::AtomicUsize,
    /// The client address and recipients of each session stopped now.
    stopped: Mutex<Vec<(SocketAddr, Vec<String>)>>,
    epoch: std::sync::atomic::AtomicUsize,
}

impl Stall {
    /// Stops the next `n` messages at `phase`.
    pub fn next(&self, phase: Phase, n: usize) {
        self.next_after(phase, 0, n);
    }

    /// Lets `skip` messages through, then stops the `n` after them at `phase`.
    pub fn next_after(&self, phase: Phase, skip: usize, n: usize) {
        *self.plan.lock().unwrap() = Some((phase, skip, n));
    }

    /// Lets every stopped session go on and stops no more.
    pub fn resume(&self) {
        *self.plan.lock().unwrap() = None;
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The client address (whose process a test may kill) and the message's recipients of each
    /// session stopped now.
    pub fn stopped(&self) -> Vec<(SocketAddr, Vec<String>)> {
        self.stopped.lock().unwrap().clone()
    }

    fn take(&self, phase: Phase) -> bool {
        let mut plan = self.plan.lock().unwrap();
        match plan.as_mut() {
            Some((p, skip, _)) if *p == phase && *skip > 0 => {
                *skip -= 1;
                false
            }
            Some((p, _, n)) if *p == phase && *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Waits at `phase` when this message is to stop there; false when the client went away.
    async fn at(
        &self,
        phase: Phase,
        (peer, rcpts): (SocketAddr, &[String]),
        io: &mut BufReader<Box<dyn Io>>,
    ) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.take(phase) {
            return true;
        }
        let start = self.epoch.load(SeqCst);
        self.stopped.lock().unwrap().push((peer, rcpts.to_vec()));
        self.waiting.fetch_add(1, SeqCst);
        let mut byte = [0u8; 1];
        let resumed = loop {
            tokio::select! {
                // The client says nothing while it waits for our reply: EOF, an error or any byte
                // means it is gone.
                _ = io.read(&mut byte) => break false,
                _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {
                    if self.epoch.load(SeqCst) != start {
                        break true;
                    }
                }
            }
        };
        self.waiting.fetch_sub(1, SeqCst);
        self.stopped.lock().unwrap().retain(|(p, _)| *p != peer);
        if !resumed {
            self.dropped.fetch_add(1, SeqCst);
        }
        resumed
    }
}

async fn session(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    received: Arc<Mutex<Vec<Received>>>,
    flags: Flags,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let session_no = flags.sessions.fetch_add(1, SeqCst) + 1;
    let peer = tcp.peer_addr()?;
    let login_only = flags.login_only.load(SeqCst);
    let mut mechanism = "";
    let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(tcp));
    let mut tls = false;
    let mut auth = String::new();
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut count = 0;
    io.get_mut()
        .write_all(b"220 localhost ESMTP test-stalwart\r\n")
        .await?;
    loop {
        let mut line = String::new();
        let read = tokio::select! {
            read = io.read_line(&mut line) => read?,
            _ = flags.hangup.notified() => return Ok(()),
        };
        if read == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        let reply: String = if let Some(refusal) = flags.refusal(&upper) {
            refusal
        } else if upper.starts_with("EHLO") {
            let mut r = String::from("250-localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n");
            if tls {
                r.push_str(if login_only {
                    "250-AUTH LOGIN\r\n"
                } else {
                    "250-AUTH PLAIN LOGIN\r\n"
                });
            } else if !flags.no_starttls.load(SeqCst) {
                r.push_str("250-STARTTLS\r\n");
            }
            r.push_str("250 SIZE 104857600\r\n");
            r
        } else if upper == "STARTTLS" && !tls {
            io.get_mut()
                .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                .await?;
            let stream = acceptor.accept(io.into_inner()).await?;
            io = BufReader::new(Box::new(stream));
            tls = true;
            continue;
        } else if upper.starts_with("AUTH") {
            if !tls {
                "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
            } else {
                let b64 = base64::engine::general_purpose::STANDARD;
                let creds = if upper.starts_with("AUTH PLAIN ") && !login_only {
                    mechanism = "PLAIN";
                    let raw = b64.decode(line[11..].trim()).unwrap_or_default();
                    let parts: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
                    (parts.len() == 3).then(|| {
                        (
                            String::from_utf8_lossy(parts[1]).to_string(),
                            String::from_utf8_lossy(parts[2]).to_string(),
                        )
                    })
                } else if upper == "AUTH LOGIN" {
                    mechanism = "LOGIN";
                    io.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                    let mut u = String::new();
                    io.read_line(&mut u).await?;
                    io.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                    let mut p = String::new();
                    io.read_line(&mut p).await?;
                    Some((
                        String::from_utf8_lossy(&b64.decode(u.trim()).unwrap_or_default())
                            .to_string(),
                        String::from_utf8_lossy(&b64.decode(p.trim()).unwrap_or_default())
                            .to_string(),
                    ))
                } else {
                    None
                };
                match creds {
                    Some((u, p))
                        if (u == USER && p == PASS)
                            || flags
                                .accounts
                                .lock()
                                .unwrap()
                                .contains(&(u.clone(), p.clone())) =>
                    {
                        auth = u;
                        "235 2.7.0 Authentication succeeded\r\n".into()
                    }
                    _ => "535 5.7.8 Authentication credentials invalid\r\n".into(),
                }
            }
        } else if upper.starts_with("MAIL FROM:") {
            if auth.is_empty() {
                "530 5.7.0 Authentication required\r\n".into()
            } else if count >= 10 {
                "452 4.4.5 Too many messages in this session\r\n".into()
            } else if addr(&line[10..]) != auth && !flags.sender_exception.load(SeqCst) {
                // Stalwart's must-match-sender (session/mail.rs), word for word.
                "501 5.5.4 You are not allowed to send from this address.\r\n".into()
            } else {
                from = Some(addr(&line[10..]));
                rcpts.clear();
                "250 2.1.0 OK\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                "503 5.5.1 MAIL first\r\n".into()
            } else {
                rcpts.push(addr(&line[8..]));
                "250 2.1.5 OK\r\n".into()
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "503 5.5.1 RCPT first\r\n".into()
            } else {
                if !flags
                    .stall
                    .at(Phase::BeforeData, (peer, &rcpts), &mut io)
                    .await
                {
                    return Ok(());
                }
                io.get_mut()
                    .write_all(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n")
                    .await?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if io.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b".") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                if flags.refuse.load(SeqCst) {
                    from = None;
                    rcpts.clear();
                    io.get_mut()
                        .write_all(b"451 4.7.28 Rate limit exceeded, try again later\r\n")
                        .await?;
                    continue;
                }
                count += 1;
                let id: [u8; 8] = rand_bytes();
                let queue_id = hex::encode(id);
                let to = std::mem::take(&mut rcpts);
                let mail_from = from.take().unwrap_or_default();
                let hook = flags.hook.lock().unwrap().clone();
                let (queued, reply) = match hook {
                    None => (to.clone(), None),
                    Some(target) => {
                        let (verdict, hooked) = super::stalwart_smtp::ask(
                            &target, &auth, &mail_from, &to, &data, &queue_id,
                        )
                        .await;
                        flags.hooked.lock().unwrap().push(hooked);
                        match verdict {
                            Verdict::Queue(left) => (left, None),
                            Verdict::Reply(line) => (Vec::new(), Some(line)),
                        }
                    }
                };
                if !queued.is_empty() {
                    received.lock().unwrap().push(Received {
                        mail_from,
                        rcpt_to: queued,
                        data,
                        queue_id: queue_id.clone(),
                        tls,
                        auth: auth.clone(),
                        mechanism: mechanism.to_string(),
                        session: session_no,
                    });
                }
                if flags.vanish.load(SeqCst)
                    || !flags.stall.at(Phase::AfterDot, (peer, &to), &mut io).await
                {
                    return Ok(());
                }
                match reply {
                    Some(line) => format!("{line}\r\n"),
                    None => format!("250 2.0.0 Message queued with id {queue_id}.\r\n"),
                }
            }
        } else if upper == "RSET" {
            from = None;
            rcpts.clear();
            "250 2.0.0 OK\r\n".into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else if upper == "NOOP" {
            "250 2.0.0 OK\r\n".into()
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
    }
}

fn addr(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .to_string()
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    b
}

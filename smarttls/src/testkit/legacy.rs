//! A TLS 1.0/1.1 STARTTLS server on the system OpenSSL, run with python3's standard library
//! (rustls cannot serve TLS < 1.2). The script is embedded and written to the world's directory.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::pki::CertKey;

/// The server script.
pub const SCRIPT: &str = include_str!("legacy_smtp_server.py");

/// A running legacy server (killed on drop).
pub struct LegacyServer {
    /// Address.
    pub addr: std::net::SocketAddr,
    _child: Child,
}

/// Is python3 with `ssl` available?
pub fn available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import ssl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl LegacyServer {
    /// Starts the server; `None` when python3 is missing (callers skip loudly).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        dir: &Path,
        ip: IpAddr,
        port: u16,
        cert: &CertKey,
        tls_min: &str,
        tls_max: &str,
        ciphers: &str,
        name: &str,
    ) -> Option<LegacyServer> {
        if !available() {
            return None;
        }
        let script = dir.join("legacy_smtp_server.py");
        std::fs::write(&script, SCRIPT).ok()?;
        let tag = format!("{ip}-{port}");
        let chain = dir.join(format!("legacy-{tag}.chain.pem"));
        let key = dir.join(format!("legacy-{tag}.key.pem"));
        std::fs::write(&chain, &cert.chain_pem).ok()?;
        std::fs::write(&key, &cert.key_pem).ok()?;
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--host", &ip.to_string(), "--port", &port.to_string()])
            .arg("--cert")
            .arg(&chain)
            .arg("--key")
            .arg(&key)
            .args([
                "--tls-min",
                tls_min,
                "--tls-max",
                tls_max,
                "--ciphers",
                ciphers,
                "--name",
                name,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let out = child.stdout.take()?;
        let mut lines = BufReader::new(out).lines();
        let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
        match ready {
            Ok(Ok(Some(l))) if l.starts_with("READY") => {}
            other => panic!("legacy server did not start: {other:?}"),
        }
        Some(LegacyServer {
            addr: std::net::SocketAddr::new(ip, port),
            _child: child,
        })
    }
}

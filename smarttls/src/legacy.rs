//! Raw ClientHello probes for what rustls cannot speak: TLS 1.0/1.1 and the NCSC "Insufficient" and
//! "Phase-out" cipher suites.
//!
//! Each probe opens its own SMTP session (EHLO, STARTTLS), writes one hand-built ClientHello record
//! and reads the first record back: a ServerHello tells the version and suite the server accepted,
//! an alert or EOF that it refused. No handshake is completed, so no key material is needed.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::grade::{suite_name, PHASE_OUT_SUITES, SUFFICIENT_SUITES_TLS12};
use crate::smtp;

/// Insufficient TLS 1.0–1.2 suites offered by the probes (CBC with SHA-1 MAC, static RSA, 3DES,
/// RC4, DHE/ECDHE CBC-SHA).
pub const INSUFFICIENT_SUITES: &[u16] = &[
    0xC00A, 0xC009, 0xC014, 0xC013, 0x0039, 0x0033, 0x0035, 0x002F, 0x003D, 0x003C, 0x009D, 0x009C,
    0x0084, 0x0041, 0xC008, 0xC012, 0x0016, 0x000A, 0xC007, 0xC011, 0x0005, 0x0004, 0xC0A1, 0xC0A0,
];

/// Result of one ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HelloResult {
    /// The server answered with a ServerHello.
    Accepted {
        version: String,
        suite: String,
        suite_code: u16,
        version_code: u16,
    },
    /// The server answered with an alert.
    Alert { description: u8 },
    /// The server closed the connection.
    Closed,
    /// The probe could not be run (SMTP failure, timeout …).
    Error { error: String },
}

/// Whether a protocol version is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Offered by the server.
    Offered,
    /// Refused.
    NotOffered,
    /// Could not be determined.
    Unknown,
}

/// Legacy posture of one MX host.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyPosture {
    /// TLS 1.0 with a broad legacy offer.
    pub tls1_0: HelloResult,
    /// TLS 1.1 with a broad legacy offer.
    pub tls1_1: HelloResult,
    /// TLS 1.2 with every suite we know (no supported_versions extension, so 1.3 is impossible).
    pub tls1_2: HelloResult,
    /// TLS 1.2 offering only Insufficient suites.
    pub tls1_2_insufficient: HelloResult,
    /// TLS 1.2 offering only Phase-out suites.
    pub tls1_2_phase_out: HelloResult,
}

impl HelloResult {
    /// Did the server accept exactly `version` (a lower version means it does not support it)?
    pub fn support(&self, version: u16) -> Support {
        match self {
            HelloResult::Accepted { version_code, .. } if *version_code == version => {
                Support::Offered
            }
            HelloResult::Accepted { .. } | HelloResult::Alert { .. } | HelloResult::Closed => {
                Support::NotOffered
            }
            HelloResult::Error { .. } => Support::Unknown,
        }
    }
    /// Suite accepted, if any (at the requested version).
    pub fn accepted_suite(&self, version: u16) -> Option<&str> {
        match self {
            HelloResult::Accepted {
                version_code,
                suite,
                ..
            } if *version_code == version => Some(suite),
            _ => None,
        }
    }
}

/// Runs the five legacy probes concurrently.
pub async fn probe(
    addr: SocketAddr,
    host: &str,
    ehlo: &str,
    connect_timeout: Duration,
    cmd_timeout: Duration,
) -> LegacyPosture {
    let mut all12: Vec<u16> = SUFFICIENT_SUITES_TLS12.to_vec();
    all12.extend_from_slice(PHASE_OUT_SUITES);
    all12.extend_from_slice(INSUFFICIENT_SUITES);
    let one = |version: u16, suites: Vec<u16>| async move {
        hello(
            addr,
            host,
            ehlo,
            version,
            &suites,
            connect_timeout,
            cmd_timeout,
        )
        .await
    };
    let (tls1_0, tls1_1, tls1_2, tls1_2_insufficient, tls1_2_phase_out) = tokio::join!(
        one(0x0301, INSUFFICIENT_SUITES.to_vec()),
        one(0x0302, INSUFFICIENT_SUITES.to_vec()),
        one(0x0303, all12),
        one(0x0303, INSUFFICIENT_SUITES.to_vec()),
        one(0x0303, PHASE_OUT_SUITES.to_vec()),
    );
    LegacyPosture {
        tls1_0,
        tls1_1,
        tls1_2,
        tls1_2_insufficient,
        tls1_2_phase_out,
    }
}

/// One STARTTLS session plus one raw ClientHello.
pub async fn hello(
    addr: SocketAddr,
    host: &str,
    ehlo: &str,
    version: u16,
    suites: &[u16],
    connect_timeout: Duration,
    cmd_timeout: Duration,
) -> HelloResult {
    let (mut tcp, _) = match smtp::starttls(addr, ehlo, connect_timeout, cmd_timeout).await {
        Ok(x) => x,
        Err(e) => {
            return HelloResult::Error {
                error: e.to_string(),
            }
        }
    };
    let record = client_hello(version, suites, host);
    if let Err(e) = tcp.write_all(&record).await {
        return HelloResult::Error {
            error: format!("write: {e}"),
        };
    }
    match tokio::time::timeout(cmd_timeout, read_reply(&mut tcp)).await {
        Err(_) => HelloResult::Error {
            error: "timed out waiting for ServerHello".into(),
        },
        Ok(r) => r,
    }
}

async fn read_reply(tcp: &mut tokio::net::TcpStream) -> HelloResult {
    let mut hdr = [0u8; 5];
    match tcp.read_exact(&mut hdr).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return HelloResult::Closed,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return HelloResult::Closed,
        Err(e) => {
            return HelloResult::Error {
                error: format!("read: {e}"),
            }
        }
    }
    let len = u16::from_be_bytes([hdr[3], hdr[4]]) as usize;
    if len == 0 || len > 18 * 1024 {
        return HelloResult::Error {
            error: format!("bad record length {len}"),
        };
    }
    let mut body = vec![0u8; len];
    if let Err(e) = tcp.read_exact(&mut body).await {
        return HelloResult::Error {
            error: format!("read record: {e}"),
        };
    }
    match hdr[0] {
        0x15 if body.len() >= 2 => HelloResult::Alert {
            description: body[1],
        },
        0x16 => {
            // handshake: type(1) len(3) version(2) random(32) sid_len(1) sid suite(2)
            if body.len() < 39 || body[0] != 0x02 {
                return HelloResult::Error {
                    error: "not a ServerHello".into(),
                };
            }
            let version_code = u16::from_be_bytes([body[4], body[5]]);
            let sid_len = body[38] as usize;
            let at = 39 + sid_len;
            if body.len() < at + 2 {
                return HelloResult::Error {
                    error: "short ServerHello".into(),
                };
            }
            let suite_code = u16::from_be_bytes([body[at], body[at + 1]]);
            HelloResult::Accepted {
                version: version_name(version_code).to_string(),
                suite: suite_name(suite_code),
                suite_code,
                version_code,
            }
        }
        t => HelloResult::Error {
            error: format!("unexpected record type {t:#04x}"),
        },
    }
}

/// Name of a protocol version code.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0300 => "SSLv3",
        0x0301 => "TLSv1.0",
        0x0302 => "TLSv1.1",
        0x0303 => "TLSv1.2",
        0x0304 => "TLSv1.3",
        _ => "unknown",
    }
}

fn push16(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u16).to_be_bytes());
}

/// Builds one TLS record holding a ClientHello.
pub fn client_hello(version: u16, suites: &[u16], host: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let host = host.trim_end_matches('.');
    if !host.is_empty() && host.parse::<std::net::IpAddr>().is_err() {
        // server_name
        let name = host.as_bytes();
        ext.extend_from_slice(&[0x00, 0x00]);
        push16(&mut ext, name.len() + 5);
        push16(&mut ext, name.len() + 3);
        ext.push(0);
        push16(&mut ext, name.len());
        ext.extend_from_slice(name);
    }
    // supported_groups: x25519, secp256r1, secp384r1, secp521r1, ffdhe2048..8192
    let groups: [u16; 9] = [
        0x001d, 0x0017, 0x0018, 0x0019, 0x001e, 0x0100, 0x0101, 0x0102, 0x0104,
    ];
    ext.extend_from_slice(&[0x00, 0x0a]);
    push16(&mut ext, groups.len() * 2 + 2);
    push16(&mut ext, groups.len() * 2);
    for g in groups {
        ext.extend_from_slice(&g.to_be_bytes());
    }
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms
    let algs: [u16; 13] = [
        0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
        0x0203, 0x0201,
    ];
    ext.extend_from_slice(&[0x00, 0x0d]);
    push16(&mut ext, algs.len() * 2 + 2);
    push16(&mut ext, algs.len() * 2);
    for a in algs {
        ext.extend_from_slice(&a.to_be_bytes());
    }
    // extended_master_secret, renegotiation_info
    ext.extend_from_slice(&[0x00, 0x17, 0x00, 0x00]);
    ext.extend_from_slice(&[0xff, 0x01, 0x00, 0x01, 0x00]);

    let mut hello = Vec::new();
    hello.extend_from_slice(&version.to_be_bytes());
    let random = ring_random();
    hello.extend_from_slice(&random);
    hello.push(0); // session id
    push16(&mut hello, suites.len() * 2);
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    push16(&mut hello, ext.len());
    hello.extend_from_slice(&ext);

    let mut hs = vec![0x01];
    let l = hello.len();
    hs.extend_from_slice(&[(l >> 16) as u8, (l >> 8) as u8, l as u8]);
    hs.extend_from_slice(&hello);

    let mut rec = vec![0x16, 0x03, 0x01];
    push16(&mut rec, hs.len());
    rec.extend_from_slice(&hs);
    rec
}

fn ring_random() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut r = [0u8; 32];
    let _ = ring::rand::SystemRandom::new().fill(&mut r);
    r
}

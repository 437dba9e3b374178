//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the HTTPS policy fetch, MX pattern matching and a
//! policy cache keyed by the record's `id`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hickory_resolver::proto::rr::{RData, RecordType};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::dns::{bare, Answer, Dns, DnsFailure};

/// Policy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Deliver only to listed MX hosts over authenticated TLS.
    Enforce,
    /// Report only.
    Testing,
    /// No policy.
    None,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Mode.
    pub mode: Mode,
    /// MX patterns (`mail.example.com`, `*.example.net`).
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

impl Policy {
    /// Does `host` match one of the `mx` patterns (RFC 8461 §4.1: a wildcard covers one label)?
    pub fn lists(&self, host: &str) -> bool {
        let host = bare(host);
        self.mx.iter().any(|p| {
            let p = bare(p);
            match p.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
                None => p == host,
            }
        })
    }
}

/// MTA-STS outcome for a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MtaSts {
    /// Not looked up (the report was cut short).
    NotChecked,
    /// No `_mta-sts` TXT record.
    NoRecord,
    /// A policy is in force.
    Policy {
        /// The TXT record's id.
        id: String,
        /// The policy.
        policy: Policy,
        /// Served from the cache (same id, within max_age).
        cached: bool,
    },
    /// The record exists but the policy could not be fetched or parsed; per RFC 8461 §5 the sender
    /// then proceeds as without a policy (reported as a note).
    FetchFailed {
        /// The TXT record's id.
        id: String,
        /// What failed.
        error: String,
    },
    /// The TXT lookup failed.
    DnsFailed {
        /// What failed.
        error: String,
    },
    /// The TXT record is malformed (or several records).
    InvalidRecord {
        /// What is wrong.
        error: String,
    },
}

impl MtaSts {
    /// The policy when in `enforce` mode.
    pub fn enforced(&self) -> Option<&Policy> {
        match self {
            MtaSts::Policy { policy, .. } if policy.mode == Mode::Enforce => Some(policy),
            _ => None,
        }
    }
}

/// Fetches and caches policies.
pub struct MtaStsClient {
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    cache: DashMap<String, (String, Policy, Instant)>,
}

impl MtaStsClient {
    /// New client; `roots` are the PKIX roots used for the HTTPS fetch.
    pub fn new(
        roots: Arc<rustls::RootCertStore>,
        port: u16,
        timeout: Duration,
    ) -> Result<Self, crate::error::Error> {
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| crate::error::Error::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            port,
            tls: Arc::new(tls),
            timeout,
            cache: DashMap::new(),
        })
    }

    /// Looks up the record and, when present, the policy.
    ///
    /// RFC 8461 §5.1, §10.3: a cached policy that has not expired keeps applying when the record
    /// disappears, cannot be looked up or is invalid, and when a changed policy cannot be fetched. An
    /// attacker who strips the record or blocks the fetch must not turn `enforce` off.
    pub async fn check(&self, dns: &Dns, domain: &str) -> MtaSts {
        let domain = bare(domain);
        let cached = self.cached(&domain);
        let fallback = |otherwise: MtaSts| match &cached {
            Some((id, policy)) => MtaSts::Policy {
                id: id.clone(),
                policy: policy.clone(),
                cached: true,
            },
            None => otherwise,
        };
        let txt = match dns
            .lookup(&format!("_mta-sts.{domain}"), RecordType::TXT)
            .await
        {
            Ok(a) => a,
            Err(DnsFailure::Bogus) => {
                return fallback(MtaSts::DnsFailed {
                    error: "DNSSEC bogus".into(),
                })
            }
            Err(e) => {
                return fallback(MtaSts::DnsFailed {
                    error: e.to_string(),
                })
            }
        };
        let id = match record_id(&txt) {
            Ok(id) => id,
            Err(otherwise) => return fallback(otherwise),
        };
        // Same id: the cached policy is current.
        if let Some((cid, policy)) = &cached {
            if *cid == id {
                return MtaSts::Policy {
                    id,
                    policy: policy.clone(),
                    cached: true,
                };
            }
        }
        match tokio::time::timeout(self.timeout, self.fetch(dns, &domain)).await {
            Err(_) => fallback(MtaSts::FetchFailed {
                id,
                error: "policy fetch timed out".into(),
            }),
            Ok(Err(error)) => fallback(MtaSts::FetchFailed { id, error }),
            Ok(Ok(policy)) => {
                self.cache
                    .insert(domain, (id.clone(), policy.clone(), Instant::now()));
                MtaSts::Policy {
                    id,
                    policy,
                    cached: false,
                }
            }
        }
    }

    /// The cached policy for `domain` with its id, if it has not expired (`max_age`).
    fn cached(&self, domain: &str) -> Option<(String, Policy)> {
        let c = self.cache.get(domain)?;
        let (id, policy, at) = c.value();
        (at.elapsed() < Duration::from_secs(policy.max_age)).then(|| (id.clone(), policy.clone()))
    }

    async fn fetch(&self, dns: &Dns, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        let (ips, _) = dns
            .addresses(&host)
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let ip = *ips
            .first()
            .ok_or_else(|| format!("{host} has no address"))?;
        let tcp = TcpStream::connect(SocketAddr::new(ip, self.port))
            .await
            .map_err(|e| format!("connect {ip}:{}: {e}", self.port))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS to {host}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get("/.well-known/mta-sts.txt")
            .header("host", &host)
            .header("user-agent", "nta7516-smarttls")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(format!("HTTP status {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| format!("HTTP body: {e}"))?
            .to_bytes();
        parse_policy(&String::from_utf8_lossy(&body))
    }
}

/// The id of the one `v=STSv1` record of the `_mta-sts` TXT answer; `Err`: what the answer is
/// instead (no record, or an invalid one).
fn record_id(txt: &Answer) -> Result<String, MtaSts> {
    let recs: Vec<String> = txt
        .records
        .iter()
        .filter_map(|r| match r {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .filter(|s| s.trim_start().starts_with("v=STSv1"))
        .collect();
    let record = match recs.as_slice() {
        [] => return Err(MtaSts::NoRecord),
        [one] => one,
        _ => {
            return Err(MtaSts::InvalidRecord {
                error: "more than one v=STSv1 record".into(),
            })
        }
    };
    parse_record_id(record).ok_or_else(|| MtaSts::InvalidRecord {
        error: format!("no valid id in {record:?}"),
    })
}

/// The `id` of a `v=STSv1; id=…;` record (1–32 alphanumerics).
pub fn parse_record_id(record: &str) -> Option<String> {
    record.split(';').find_map(|f| {
        let (k, v) = f.split_once('=')?;
        let v = v.trim();
        (k.trim() == "id"
            && !v.is_empty()
            && v.len() <= 32
            && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| v.to_string())
    })
}

/// Parses a policy file (RFC 8461 §3.2).
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut mx = Vec::new();
    let mut max_age = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "version" => version = Some(v.to_string()),
            "mode" => {
                mode = Some(match v {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {other:?}")),
                })
            }
            "mx" => mx.push(v.to_ascii_lowercase()),
            "max_age" => {
                max_age = Some(v.parse::<u64>().map_err(|_| format!("bad max_age {v:?}"))?)
            }
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("policy version is not STSv1".into());
    }
    let mode = mode.ok_or("policy has no mode")?;
    let max_age = max_age.ok_or("policy has no max_age")?.min(31_557_600);
    if mode != Mode::None && mx.is_empty() {
        return Err("policy lists no mx".into());
    }
    Ok(Policy { mode, mx, max_age })
}

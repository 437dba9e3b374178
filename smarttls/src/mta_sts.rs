//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the HTTPS policy fetch, MX pattern matching and a
//! policy cache keyed by the record's `id`.
//!
//! Parsing and fetching follow the RFC strictly, because the other implementations do and because a
//! loose reading can apply a policy the domain never published: a record must begin with `v=STSv1;`
//! and match the §3.1 grammar ([`record_id_of`]); the policy must come from `200 OK`, as
//! `text/plain`, within [`MAX_POLICY_BYTES`], as UTF-8, with no redirect followed (§3.3), and match
//! §3.2 ([`parse_policy`]). Whitespace and blank lines are the only slack. Whatever fails means "no
//! policy" (§5) — unless an unexpired policy is cached, which then keeps applying (§5.1, §10.3):
//! stripping the record or blocking the fetch must not switch `enforce` off.

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
        read_policy(resp).await
    }
}

/// The largest policy body read (RFC 8461 §3.3 leaves the limit to the sender; 64 KiB as most
/// implementations use).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// The policy from the HTTP answer (RFC 8461 §3.3): only `200 OK` (a redirect is not followed, any
/// other status is a failure), media type `text/plain`, at most [`MAX_POLICY_BYTES`], UTF-8.
async fn read_policy(resp: hyper::Response<hyper::body::Incoming>) -> Result<Policy, String> {
    let status = resp.status();
    if status.is_redirection() {
        return Err(format!("HTTP status {status}: redirects are not followed"));
    }
    if status != hyper::StatusCode::OK {
        return Err(format!("HTTP status {status}"));
    }
    let ct = resp.headers().get(hyper::header::CONTENT_TYPE);
    if !is_text_plain(ct) {
        return Err(format!(
            "policy served as {:?}, not text/plain",
            ct.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        ));
    }
    let body = Limited::new(resp.into_body(), MAX_POLICY_BYTES)
        .collect()
        .await
        .map_err(|e| format!("HTTP body: {e} (limit {MAX_POLICY_BYTES} bytes)"))?
        .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|e| format!("policy is not UTF-8: {e}"))?;
    parse_policy(text)
}

/// The id of the one MTA-STS record of the `_mta-sts` TXT answer; `Err`: what the answer is instead
/// (no record, or an invalid one).
///
/// RFC 8461 §3.1: the strings of one TXT record are concatenated; records that do not begin with
/// `v=STSv1;` are discarded; if not exactly one is left, or it is syntactically invalid, the domain has
/// no available policy.
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
        .filter(|s| is_sts_record(s))
        .collect();
    let record = match recs.as_slice() {
        [] => return Err(MtaSts::NoRecord),
        [one] => one,
        _ => {
            return Err(MtaSts::InvalidRecord {
                error: format!("{} v=STSv1 records (RFC 8461 §3.1 wants one)", recs.len()),
            })
        }
    };
    record_id_of(record).map_err(|e| MtaSts::InvalidRecord {
        error: format!("{record:?}: {e}"),
    })
}

/// Space and tab (ABNF `WSP`).
const WSP: &[char] = &[' ', '\t'];

/// Does `record` begin with `v=STSv1` and then `;` (RFC 8461 §3.1; `*WSP` before the `;` as the
/// grammar allows)? Case-sensitive: `v=stsv1;` and `v=STSv10;` are not MTA-STS records.
fn is_sts_record(record: &str) -> bool {
    record
        .strip_prefix("v=STSv1")
        .is_some_and(|rest| rest.trim_start_matches(WSP).starts_with(';'))
}

/// The `id` of a `v=STSv1; id=…;` record (1–32 letters and digits); `None` when the record is not a
/// syntactically valid MTA-STS record ([`record_id_of`] says why).
pub fn parse_record_id(record: &str) -> Option<String> {
    record_id_of(record).ok()
}

/// The `id` of an MTA-STS TXT record by the grammar of RFC 8461 §3.1, or what is wrong with it:
/// `v=STSv1` first; fields `name=value` separated by `;` with optional `WSP` around the `;`; one
/// trailing `;` allowed; `id` 1–32 letters and digits, required (a repeated `id`: the first counts,
/// §3.2 last paragraph); extension names a letter or digit then ≤ 31 of letters, digits, `_-.`;
/// extension values visible ASCII without `=` and `;`. Keys are case-sensitive.
pub fn record_id_of(record: &str) -> Result<String, String> {
    let rest = record
        .strip_prefix("v=STSv1")
        .ok_or("does not begin with v=STSv1")?;
    let rest = rest
        .trim_start_matches(WSP)
        .strip_prefix(';')
        .ok_or("v=STSv1 is not followed by ';'")?;
    let mut fields: Vec<&str> = rest.split(';').map(|f| f.trim_matches(WSP)).collect();
    if fields.len() > 1 && fields.last() == Some(&"") {
        fields.pop();
    }
    let mut id = None;
    for f in fields {
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| format!("field {f:?} is not name=value"))?;
        if name == "id" {
            if !(1..=32).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!("id {value:?} is not 1-32 letters and digits"));
            }
            id.get_or_insert_with(|| value.to_string());
        } else if !is_field_name(name) {
            return Err(format!("{name:?} is not a field name"));
        } else if value.is_empty()
            || !value
                .bytes()
                .all(|b| matches!(b, 0x21..=0x3a | 0x3c | 0x3e..=0x7e))
        {
            return Err(format!(
                "value {value:?} of {name} has characters not allowed"
            ));
        }
    }
    id.ok_or_else(|| "no id field".to_string())
}

/// An extension field name (RFC 8461 §3.1 `sts-ext-name`, §3.2 `sts-policy-ext-name`): a letter or
/// digit, then up to 31 letters, digits, `_`, `-` or `.`.
fn is_field_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// The policy's fields as read (first occurrence of each, every `mx`).
#[derive(Default)]
struct Fields {
    version: Option<String>,
    mode: Option<Mode>,
    max_age: Option<u64>,
    mx: Vec<String>,
    seen: Vec<String>,
}

/// Parses a policy file by RFC 8461 §3.2: `key: value` lines ended by LF or CRLF; `version: STSv1`,
/// `mode` (`enforce`, `testing`, `none`, case-sensitive), `max_age` (1–10 digits, values above
/// 31557600 capped) required, `mx` (`[*.]domain` in A-labels) required unless `mode: none`; keys are
/// case-sensitive; unknown keys with a well-formed name are ignored; of a repeated key other than
/// `mx` the first counts. Blank lines and whitespace around values are tolerated. Any other line,
/// and a malformed value of a known key, make the policy invalid.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let mut f = Fields::default();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim_matches(WSP).is_empty() {
            continue;
        }
        policy_line(&mut f, line).map_err(|e| format!("policy line {}: {e}", n + 1))?;
    }
    if f.version.is_none() {
        return Err("policy has no version: STSv1".into());
    }
    let mode = f.mode.ok_or("policy has no mode")?;
    let max_age = f.max_age.ok_or("policy has no max_age")?;
    if mode != Mode::None && f.mx.is_empty() {
        return Err("policy lists no mx (required unless mode: none)".into());
    }
    Ok(Policy {
        mode,
        mx: f.mx,
        max_age,
    })
}

/// One non-blank policy line into `f`.
fn policy_line(f: &mut Fields, line: &str) -> Result<(), String> {
    let (key, value) = line
        .split_once(':')
        .ok_or_else(|| format!("{line:?} is not key: value"))?;
    if !is_field_name(key) {
        return Err(format!("{key:?} is not a field name"));
    }
    let value = value.trim_matches(WSP);
    if value.is_empty() || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{key}: empty value or control characters"));
    }
    if key != "mx" {
        if f.seen.iter().any(|k| k == key) {
            return Ok(()); // §3.2: all entries but the first are ignored
        }
        f.seen.push(key.to_string());
    }
    match key {
        "version" if value == "STSv1" => f.version = Some(value.to_string()),
        "version" => return Err(format!("version {value:?} is not STSv1")),
        "mode" => {
            f.mode = Some(match value {
                "enforce" => Mode::Enforce,
                "testing" => Mode::Testing,
                "none" => Mode::None,
                other => return Err(format!("unknown mode {other:?}")),
            })
        }
        "max_age" => f.max_age = Some(parse_max_age(value)?),
        "mx" => f.mx.push(parse_mx(value)?),
        _ => {} // an extension: ignored
    }
    Ok(())
}

/// The largest `max_age` (RFC 8461 §3.2: about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// `max_age`: 1–10 decimal digits (RFC 8461 §3.2 `1*10DIGIT`; no sign, no space), capped at
/// [`MAX_AGE_LIMIT`].
fn parse_max_age(v: &str) -> Result<u64, String> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("max_age {v:?} is not 1-10 digits"));
    }
    Ok(v.parse::<u64>()
        .map_err(|e| e.to_string())?
        .min(MAX_AGE_LIMIT))
}

/// An `mx` pattern (RFC 8461 §3.2 `["*."] Domain`, Domain as in RFC 5321 §4.1.2 in A-labels, no
/// trailing dot), lower-cased.
fn parse_mx(v: &str) -> Result<String, String> {
    let domain = v.strip_prefix("*.").unwrap_or(v);
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        (1..=63).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    if domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(format!("mx {v:?} is not a host name or *.domain"));
    }
    Ok(v.to_ascii_lowercase())
}

/// Is the media type of the answer `text/plain` (RFC 8461 §3.3)? Type and subtype are
/// case-insensitive (RFC 2045 §5.1); parameters such as `charset` are allowed.
fn is_text_plain(content_type: Option<&hyper::header::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim_matches(WSP))
        .is_some_and(|t| t.eq_ignore_ascii_case("text/plain"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8461 §3.1: the TXT record grammar — `v=STSv1` first and exact (case-sensitive), `id` 1–32
    /// letters and digits and required, `;`-separated `name=value` fields with optional WSP, one
    /// trailing `;`, well-formed extensions ignored, the first of two ids counts.
    #[test]
    fn record_syntax() {
        let ok = [
            ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
            ("v=STSv1;id=abc", "abc"),
            ("v=STSv1 ;\t id=abc \t;", "abc"),
            ("v=STSv1; id=a; ext=2; x-y.z=v", "a"),
            ("v=STSv1; id=first; id=second", "first"),
            (
                "v=STSv1; id=01234567890123456789012345678901",
                "01234567890123456789012345678901",
            ),
        ];
        for (rec, id) in ok {
            assert!(is_sts_record(rec), "{rec}");
            assert_eq!(record_id_of(rec).as_deref(), Ok(id), "{rec}");
        }
        // Not MTA-STS records at all (discarded before counting).
        for rec in [
            "v=STSv12; id=1;",
            "v=STSv10;id=1",
            "v=STSv2; id=1",
            "V=STSv1; id=1",
            "v=stsv1; id=1",
            " v=STSv1; id=1",
            "id=1; v=STSv1;",
            "v=STSv1",
            "v=spf1 -all",
            "",
        ] {
            assert!(!is_sts_record(rec), "{rec:?}");
            assert_eq!(parse_record_id(rec), None, "{rec:?}");
        }
        // MTA-STS records that are syntactically invalid.
        for rec in [
            "v=STSv1;",
            "v=STSv1; ext=1",
            "v=STSv1; id=",
            "v=STSv1; id=012345678901234567890123456789012",
            "v=STSv1; id=test-123",
            "v=STSv1; ID=abc",
            "v=STSv1; id = abc",
            "v=STSv1; id=a;;",
            "v=STSv1; id=a; more=",
            "v=STSv1; id=a; _x=1",
            "v=STSv1; id=a; a12345678901234567890123456789012=1",
            "v=STSv1; id=a; test==",
            "v=STSv1; id=a; garbage",
        ] {
            assert!(is_sts_record(rec), "{rec}");
            assert!(record_id_of(rec).is_err(), "{rec} accepted");
        }
    }

    const GOOD: &str = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n";

    /// RFC 8461 §3.2: a well-formed policy, LF or CRLF line endings, whitespace after `:` and at the
    /// end of a line, blank lines, unknown keys ignored, `mx` lower-cased, the first of a repeated
    /// non-`mx` key counts, every `mx` kept, `mode: none` without `mx`.
    #[test]
    fn policy_syntax_accepted() {
        let p = parse_policy(GOOD).unwrap();
        assert_eq!((p.mode, p.max_age), (Mode::Enforce, 86400));
        assert_eq!(parse_policy(&GOOD.replace('\n', "\r\n")).unwrap(), p);
        assert_eq!(
            parse_policy(GOOD.trim_end()).unwrap(),
            p,
            "no final line end"
        );
        let p = parse_policy("version:STSv1\r\nmode:\tenforce  \r\n\r\nmx:  *.Example.COM\nmx: b.example.net\nmax_age: 1\nfuture_key: some value  here\n").unwrap();
        assert_eq!(p.mx, ["*.example.com", "b.example.net"]);
        let p = parse_policy(
            "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 5\nmax_age: 6\n",
        )
        .unwrap();
        assert_eq!(
            (p.mode, p.max_age),
            (Mode::Enforce, 5),
            "first of a repeated key"
        );
        let p = parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
        assert_eq!((p.mode, p.mx.len()), (Mode::None, 0));
        let p = parse_policy("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 0\n").unwrap();
        assert_eq!((p.mode, p.max_age), (Mode::Testing, 0));
    }

    /// RFC 8461 §3.2: `max_age` is 1–10 digits (Errata 7282), at most 31557600: larger values are
    /// capped; signs, spaces inside, letters, negative numbers and 11 digits are invalid.
    #[test]
    fn policy_max_age_bounds() {
        let age = |v: &str| {
            parse_policy(&format!("version: STSv1\nmode: none\nmax_age: {v}\n")).map(|p| p.max_age)
        };
        assert_eq!(age("31557600"), Ok(31_557_600));
        assert_eq!(age("31557601"), Ok(31_557_600), "capped");
        assert_eq!(age("9999999999"), Ok(31_557_600), "10 digits, capped");
        assert_eq!(age("0000000007"), Ok(7));
        for bad in ["-1", "+5", "1 000", "xxx", "1.5", "01234567890", "0x10", ""] {
            assert!(age(bad).is_err(), "max_age {bad:?} accepted");
        }
    }

    /// RFC 8461 §3.2: required fields (version, mode, max_age; mx unless mode none), exact
    /// case-sensitive keys and values, `mx` as `[*.]domain` in A-labels, lines of `key: value`.
    #[test]
    fn policy_syntax_rejected() {
        for bad in [
            "",
            "garbage",
            "version: STSv1\nmode: enforce\nmax_age: 86400\n",
            "version: STSv1\nmode: testing\nmax_age: 86400\n",
            "version: STSv1\nmx: a.example\nmax_age: 86400\n",
            "version: STSv1\nmode: none\n",
            "mode: none\nmax_age: 1\n",
            "version: STSv2\nmode: none\nmax_age: 1\n",
            "version: STSv10\nmode: none\nmax_age: 1\n",
            "version: stsv1\nmode: none\nmax_age: 1\n",
            "version: STSv1\nmode: doubt\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nMode: enforce\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: **.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: test.example-\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: mail.example.\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: møx.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.example b.example\nmax_age: 1\n",
            "version: STSv1\nmode: none\nmax_age: 1\n_bad: x\n",
            "version: STSv1\nmode: none\nmax_age: 1\next:\n",
            "version: STSv1\nmode: none\nmax_age: 1\nno colon here\n",
            " version: STSv1\nmode: none\nmax_age: 1\n",
            "version: STSv1\rmode: none\rmax_age: 1\r",
        ] {
            assert!(parse_policy(bad).is_err(), "accepted {bad:?}");
        }
    }

    /// RFC 8461 §4.1: `mx` patterns match the MX host name case-insensitively (trailing dot ignored);
    /// `*.` covers exactly one leftmost label, never the bare parent nor two labels.
    #[test]
    fn mx_matching() {
        let p = parse_policy(
            "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 1\n",
        )
        .unwrap();
        for host in [
            "mail.example.com",
            "MAIL.Example.Com.",
            "mx1.example.net",
            "A.EXAMPLE.NET",
        ] {
            assert!(p.lists(host), "{host}");
        }
        for host in [
            "example.net",
            "a.b.example.net",
            "example.com",
            "x.mail.example.com",
            "mail.example.com.evil",
            "mx1example.net",
            ".example.net",
        ] {
            assert!(!p.lists(host), "{host}");
        }
    }

    /// RFC 8461 §3.3: the policy must be `text/plain` (type and subtype case-insensitive, charset and
    /// other parameters allowed); other types and a missing Content-Type are refused.
    #[test]
    fn media_type() {
        use hyper::header::HeaderValue;
        for ok in [
            "text/plain",
            "TEXT/PLAIN",
            "text/plain; charset=utf-8",
            "text/plain ;charset=US-ASCII",
        ] {
            assert!(is_text_plain(Some(&HeaderValue::from_static(ok))), "{ok}");
        }
        for bad in [
            "text/html",
            "application/octet-stream",
            "text/plain+xml",
            "text/plaintext",
            "application/json+text/plain",
            "",
        ] {
            assert!(
                !is_text_plain(Some(&HeaderValue::from_static(bad))),
                "{bad}"
            );
        }
        assert!(!is_text_plain(None));
    }
}

//! `stalwart-nta7516 doctor DOMAIN`: the organisation's own mail-domain readiness, in the style of the
//! internet.nl mail test, plus the NTA 7516 specifics.
//!
//! Every check gives `pass`, `warn` or `fail`, a one-line finding, details and (unless it passed) how
//! to fix it. The transport checks reuse SmartTLS ([`nta7516_smarttls::SmartTls::probe_uncached`]:
//! MX, STARTTLS, TLS, certificates, DANE, MTA-STS policy fetch); the record checks look up TXT
//! records with SmartTLS's validating resolver (so `--resolver`/`--trust-anchor` apply) and parse
//! them with `mail-auth` (SPF, DKIM, DMARC, MTA-STS, TLS-RPT).
//!
//! Check families, one module each: [`transport`] (DNSSEC, MX, STARTTLS, TLS, certificate, DANE),
//! [`spf`], [`dkim`], [`dmarc`], [`policy`] (MTA-STS and TLS-RPT) and [`nta`] (`v=NTA7516-1`).
//!
//! The JSON form (`doctor --json`, [`DoctorReport::to_json`]) is stable: see the README section
//! "doctor" for its schema. Check ids never change meaning; new checks may be added.
//!
//! The doctor may call SmartTLS, hickory's record types and mail-auth — nothing of the running gateway
//! (no store, no HTTP); `main` hands it its options (`[doctor]`, `[smarttls]`).

pub mod dkim;
pub mod dmarc;
pub mod nta;
pub mod policy;
pub mod spf;
pub mod transport;

use std::fmt::Write as _;

use nta7516_smarttls::dns::{Dns, DnsFailure};
use nta7516_smarttls::{DnssecStatus, SmartTls, SmartTlsConfig};
use serde::Serialize;

use hickory_proto::rr::{RData, RecordType};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Meets the rule.
    Pass,
    /// Works, but short of the recommendation (does not fail the run).
    Warn,
    /// Does not meet the rule.
    Fail,
}

impl Status {
    /// `pass` / `warn` / `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id (`dnssec_domain`, `mx`, `dnssec_mx`, `starttls`, `tls`, `certificate`, `dane`, `spf`,
    /// `dkim`, `dmarc`, `mta_sts`, `tls_rpt`, `nta7516`).
    pub id: &'static str,
    /// Human title.
    pub title: &'static str,
    /// Outcome.
    pub status: Status,
    /// One line: what was found.
    pub finding: String,
    /// How to fix it (`None` when the check passed).
    pub fix: Option<String>,
    /// Further facts (records seen, per-host results, notes).
    pub details: Vec<String>,
}

impl Check {
    pub(crate) fn new(id: &'static str, title: &'static str) -> Self {
        Check {
            id,
            title,
            status: Status::Pass,
            finding: String::new(),
            fix: None,
            details: vec![],
        }
    }
    pub(crate) fn pass(mut self, finding: impl Into<String>) -> Self {
        self.status = Status::Pass;
        self.finding = finding.into();
        self.fix = None;
        self
    }
    pub(crate) fn warn(mut self, finding: impl Into<String>, fix: impl Into<String>) -> Self {
        self.status = Status::Warn;
        self.finding = finding.into();
        self.fix = Some(fix.into());
        self
    }
    pub(crate) fn fail(mut self, finding: impl Into<String>, fix: impl Into<String>) -> Self {
        self.status = Status::Fail;
        self.finding = finding.into();
        self.fix = Some(fix.into());
        self
    }
    pub(crate) fn detail(mut self, d: impl Into<String>) -> Self {
        self.details.push(d.into());
        self
    }
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
}

/// The doctor's report on a domain.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// Schema version of this JSON (1).
    pub version: u32,
    /// The domain (lower case, no trailing dot).
    pub domain: String,
    /// Worst status of all checks.
    pub status: Status,
    /// Counts per status.
    pub summary: Summary,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
    /// When run (RFC 3339).
    pub checked_at: String,
}

impl DoctorReport {
    fn new(domain: String, checks: Vec<Check>) -> Self {
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
            }
        }
        let status = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        DoctorReport {
            version: 1,
            domain,
            status,
            summary,
            checks,
            checked_at: crate::time::rfc3339(crate::time::now()),
        }
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Process exit code: 0 when nothing failed (warnings allowed), 1 when a check failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.summary.fail > 0)
    }

    /// Pretty JSON (the `--json` output).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Readable text.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Mail readiness of {} ({})", self.domain, self.checked_at);
        let _ = writeln!(o);
        for c in &self.checks {
            let _ = writeln!(
                o,
                "{:<5} {:<14} {}",
                c.status.as_str().to_uppercase(),
                c.id,
                c.finding
            );
            for d in &c.details {
                let _ = writeln!(o, "{:20}· {d}", "");
            }
            if let Some(f) = &c.fix {
                let _ = writeln!(o, "{:20}fix: {f}", "");
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{}: {} passed, {} warnings, {} failed",
            self.status.as_str().to_uppercase(),
            self.summary.pass,
            self.summary.warn,
            self.summary.fail
        );
        o
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Resolver, trust anchors, CA file, ports (the SmartTLS settings).
    pub smarttls: SmartTlsConfig,
    /// DKIM selectors to look for (`<selector>._domainkey.<domain>`).
    pub dkim_selectors: Vec<String>,
}

/// Errors that stop the doctor before any check (bad input or configuration).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("not a domain name: {0:?}")]
    BadDomain(String),
    #[error("not a DKIM selector: {0:?}")]
    BadSelector(String),
    #[error("{0}")]
    Config(String),
}

/// Validates a domain name given on the command line (letters, digits, hyphens, dots; ≥ 2 labels).
pub fn parse_domain(input: &str) -> Result<String, DoctorError> {
    let d = input.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(d)
    } else {
        Err(DoctorError::BadDomain(input.to_string()))
    }
}

fn valid_selector(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Runs every check on `domain`.
pub async fn run(domain: &str, opts: DoctorOptions) -> Result<DoctorReport, DoctorError> {
    let domain = parse_domain(domain)?;
    let mut selectors: Vec<String> = vec![];
    for s in &opts.dkim_selectors {
        let s = s.trim().to_ascii_lowercase();
        if !valid_selector(&s) {
            return Err(DoctorError::BadSelector(s));
        }
        if !selectors.contains(&s) {
            selectors.push(s);
        }
    }
    let dns = Dns::new(&opts.smarttls).map_err(|e| DoctorError::Config(e.to_string()))?;
    let prober = SmartTls::new(opts.smarttls).map_err(|e| DoctorError::Config(e.to_string()))?;
    let (dmarc_name, tlsrpt_name) = (format!("_dmarc.{domain}"), format!("_smtp._tls.{domain}"));
    let (report, soa, apex_txt, dmarc_txt, tlsrpt_txt, dkim) = tokio::join!(
        prober.probe_uncached(&domain),
        dns.lookup(&domain, RecordType::SOA),
        txt(&dns, &domain),
        txt(&dns, &dmarc_name),
        txt(&dns, &tlsrpt_name),
        dkim::check(&dns, &domain, &selectors),
    );
    let mut checks = vec![transport::dnssec_domain(&domain, &soa, &report)];
    checks.extend(transport::checks(&report));
    checks.push(spf::check(&dns, &domain, &apex_txt).await);
    checks.push(dkim);
    checks.push(dmarc::check(&domain, &dmarc_txt));
    checks.push(policy::mta_sts(&domain, &report));
    checks.push(policy::tls_rpt(&domain, &tlsrpt_txt));
    checks.push(nta::check(&domain, &apex_txt, &report));
    Ok(DoctorReport::new(domain, checks))
}

/// TXT strings at a name (each record's character-strings concatenated), with DNSSEC status.
#[derive(Debug, Clone)]
pub struct TxtAnswer {
    pub records: Vec<String>,
    pub dnssec: DnssecStatus,
    pub nxdomain: bool,
}

/// Looks up the TXT records at `name`.
pub async fn txt(dns: &Dns, name: &str) -> Result<TxtAnswer, DnsFailure> {
    let a = dns.lookup(name, RecordType::TXT).await?;
    let records = a
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
        .collect();
    Ok(TxtAnswer {
        records,
        dnssec: a.dnssec,
        nxdomain: a.nxdomain,
    })
}

/// `v=<tag>` as the first tag of a record (case-insensitive, followed by `;`, space or the end).
pub(crate) fn has_version(record: &str, version: &str) -> bool {
    let r = record.trim_start();
    r.len() >= version.len()
        && r[..version.len()].eq_ignore_ascii_case(version)
        && r[version.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == ';' || c.is_whitespace())
}

/// `tag=value` pairs of a `;`-separated record (tags lower-cased, values trimmed).
pub(crate) fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

/// A DNS failure as text for a finding.
pub(crate) fn dns_error(name: &str, e: &DnsFailure) -> String {
    format!("lookup of {name} failed: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_validated() {
        assert_eq!(parse_domain("Example.NL.").unwrap(), "example.nl");
        for bad in ["", "nl", "exa mple.nl", "-a.nl", "a..nl", "https://x.nl"] {
            assert!(parse_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_tags() {
        assert!(has_version("v=spf1 -all", "v=spf1"));
        assert!(has_version("V=SPF1", "v=spf1"));
        assert!(!has_version("v=spf10 -all", "v=spf1"));
        assert!(has_version("v=DMARC1; p=reject", "v=DMARC1"));
        assert_eq!(
            tags("v=DMARC1; p=reject; pct=50"),
            vec![
                ("v".to_string(), "DMARC1".to_string()),
                ("p".into(), "reject".into()),
                ("pct".into(), "50".into())
            ]
        );
    }
}

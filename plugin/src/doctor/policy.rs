//! `mta_sts` and `tls_rpt`: the two RFC policies for SMTP TLS that internet.nl does not score.
//!
//! * `mta_sts`: `_mta-sts.<domain>` TXT (`v=STSv1; id=…`) and the policy fetched over HTTPS from
//!   `https://mta-sts.<domain>/.well-known/mta-sts.txt` (SmartTLS does both). `mode: enforce` with
//!   every MX listed passes; `testing`/`none` or no policy warns; a record whose policy cannot be
//!   fetched or parsed, or an enforced policy that does not list an MX, fails.
//! * `tls_rpt`: exactly one `v=TLSRPTv1` record at `_smtp._tls.<domain>` with a `rua=` (mailto: or
//!   https:), parsed with mail-auth. None warns; several or an unparsable one fails.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};
use nta7516_smarttls::dns::DnsFailure;
use nta7516_smarttls::mta_sts::Mode;
use nta7516_smarttls::{DomainReport, MtaSts};

use super::{has_version, Check, TxtAnswer};

/// The `mta_sts` check from the SmartTLS report.
pub fn mta_sts(domain: &str, r: &DomainReport) -> Check {
    let c = Check::new("mta_sts", "MTA-STS");
    let fix_publish = format!(
        "publish \"v=STSv1; id=<yyyymmddnn>\" at _mta-sts.{domain} and serve https://mta-sts.{domain}/.well-known/mta-sts.txt with mode: enforce, an mx: line per MX and max_age: 604800"
    );
    match &r.mta_sts {
        MtaSts::NoRecord => c.warn(format!("no MTA-STS record at _mta-sts.{domain}"), fix_publish),
        MtaSts::NotChecked => c.warn("MTA-STS not checked (the probe stopped early)", fix_publish),
        MtaSts::DnsFailed { error } => c.fail(
            format!("lookup of _mta-sts.{domain} failed: {error}"),
            "make the domain's name servers answer",
        ),
        MtaSts::InvalidRecord { error } => c.fail(
            format!("the _mta-sts.{domain} record is invalid: {error}"),
            "publish a single \"v=STSv1; id=…\" record",
        ),
        MtaSts::FetchFailed { id, error } => c.detail(format!("record id={id}")).fail(
            format!("policy fetch failed: {error}"),
            format!("serve the policy at https://mta-sts.{domain}/.well-known/mta-sts.txt with a valid certificate for mta-sts.{domain}"),
        ),
        MtaSts::Policy { id, policy, .. } => {
            let mut c = c
                .detail(format!("record id={id}"))
                .detail(format!(
                    "policy: mode {:?}, mx {}, max_age {}",
                    policy.mode,
                    policy.mx.join(" "),
                    policy.max_age
                ).to_lowercase());
            if policy.max_age < 86_400 {
                c = c.detail("note: max_age below one day; RFC 8461 suggests weeks");
            }
            let unlisted: Vec<&str> = r
                .mx
                .iter()
                .filter(|m| !policy.lists(&m.probe.host))
                .map(|m| m.probe.host.as_str())
                .collect();
            match policy.mode {
                Mode::Enforce if unlisted.is_empty() => {
                    c.pass(format!("MTA-STS enforce, all {} MX listed", r.mx.len()))
                }
                Mode::Enforce => c.fail(
                    format!("MTA-STS enforce, but the policy does not list {}: senders will refuse them", unlisted.join(", ")),
                    "add an mx: line for every MX host to the policy and change the id",
                ),
                Mode::Testing => c.warn(
                    "MTA-STS in testing mode: senders report but still deliver without TLS",
                    "switch the policy to mode: enforce (and change the id) once TLS-RPT reports are clean",
                ),
                Mode::None => c.warn("MTA-STS mode none (policy withdrawn)", fix_publish),
            }
        }
    }
}

/// The `tls_rpt` check from the TXT answer at `_smtp._tls.<domain>`.
pub fn tls_rpt(domain: &str, answer: &Result<TxtAnswer, DnsFailure>) -> Check {
    let name = format!("_smtp._tls.{domain}");
    let c = Check::new("tls_rpt", "TLS-RPT");
    let a = match answer {
        Ok(a) => a,
        Err(e) => {
            return c.fail(
                super::dns_error(&name, e),
                "make the domain's name servers answer",
            )
        }
    };
    let fix = format!("publish \"v=TLSRPTv1; rua=mailto:tls-reports@{domain}\" at {name}");
    let recs: Vec<&String> = a
        .records
        .iter()
        .filter(|r| has_version(r, "v=TLSRPTv1"))
        .collect();
    let mut c = c;
    for r in &recs {
        c = c.detail(format!("record: {r}"));
    }
    match recs.as_slice() {
        [] => c.warn(
            format!("no TLS-RPT record at {name}: you hear nothing of failing TLS to you"),
            fix,
        ),
        [one] => match TlsRpt::parse(one.as_bytes()) {
            Ok(t) if !t.rua.is_empty() => {
                let rua: Vec<String> = t
                    .rua
                    .iter()
                    .map(|u| match u {
                        ReportUri::Mail(m) => format!("mailto:{m}"),
                        ReportUri::Http(h) => h.clone(),
                    })
                    .collect();
                c.pass(format!("TLS-RPT reports go to {}", rua.join(", ")))
            }
            Ok(_) => c.fail("the TLS-RPT record has no rua= address", fix),
            Err(e) => c.fail(format!("the TLS-RPT record does not parse ({e})"), fix),
        },
        more => c.fail(
            format!(
                "{} TLS-RPT records at {name}: senders ignore them",
                more.len()
            ),
            "keep a single v=TLSRPTv1 record",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use nta7516_smarttls::DnssecStatus;

    fn answer(records: &[&str]) -> Result<TxtAnswer, DnsFailure> {
        Ok(TxtAnswer {
            records: records.iter().map(|s| s.to_string()).collect(),
            dnssec: DnssecStatus::Secure,
            nxdomain: records.is_empty(),
        })
    }

    #[test]
    fn tls_rpt_rules() {
        let c = |r: &[&str]| tls_rpt("zorg.example", &answer(r));
        let ok = c(&["v=TLSRPTv1; rua=mailto:tls@zorg.example,https://rpt.example/v1"]);
        assert_eq!(ok.status, Status::Pass);
        assert_eq!(
            ok.finding,
            "TLS-RPT reports go to mailto:tls@zorg.example, https://rpt.example/v1"
        );
        assert_eq!(c(&[]).status, Status::Warn);
        assert_eq!(c(&["v=TLSRPTv1;"]).status, Status::Fail);
        assert_eq!(
            c(&[
                "v=TLSRPTv1; rua=mailto:a@x.example",
                "v=TLSRPTv1; rua=mailto:b@x.example"
            ])
            .status,
            Status::Fail
        );
    }
}

//! `dmarc`: exactly one `v=DMARC1` record at `_dmarc.<domain>`, parsed with mail-auth, with
//! `p=quarantine` or `p=reject`. `p=none` (or no `p=`) fails, as on internet.nl. Warnings: `pct`
//! below 100 (the policy covers only part of the mail), `t=y` (test mode, RFC 9989), `sp=none`
//! (subdomains unprotected). A missing `rua=` is noted (no aggregate reports).

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Dmarc, Policy};
use nta7516_smarttls::dns::DnsFailure;

use super::{has_version, tags, Check, TxtAnswer};

fn policy(p: &Policy) -> &'static str {
    match p {
        Policy::None => "none",
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
        Policy::Unspecified => "unspecified",
    }
}

/// The `dmarc` check from the TXT answer at `_dmarc.<domain>`.
pub fn check(domain: &str, answer: &Result<TxtAnswer, DnsFailure>) -> Check {
    let name = format!("_dmarc.{domain}");
    let c = Check::new("dmarc", "DMARC");
    let a = match answer {
        Ok(a) => a,
        Err(e) => {
            return c.fail(
                super::dns_error(&name, e),
                "make the domain's name servers answer",
            )
        }
    };
    let recs: Vec<&String> = a
        .records
        .iter()
        .filter(|r| has_version(r, "v=DMARC1"))
        .collect();
    let mut c = c;
    for r in &recs {
        c = c.detail(format!("record: {r}"));
    }
    let fix_publish = format!(
        "publish one TXT record at {name}: \"v=DMARC1; p=reject; rua=mailto:dmarc@{domain}\" (start with p=quarantine if unsure)"
    );
    let record = match recs.as_slice() {
        [] => return c.fail(format!("no DMARC record at {name}"), fix_publish),
        [one] => *one,
        more => {
            return c.fail(
                format!(
                    "{} DMARC records at {name}: receivers ignore them all",
                    more.len()
                ),
                "keep a single v=DMARC1 record",
            )
        }
    };
    let d = match Dmarc::parse(record.as_bytes()) {
        Ok(d) => d,
        Err(e) => {
            return c.fail(
                format!("the DMARC record does not parse ({e})"),
                fix_publish,
            )
        }
    };
    let t = tags(record);
    let tag = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if d.rua.is_empty() {
        c = c.detail("note: no rua= address, so you receive no aggregate reports");
    }
    match d.p {
        Policy::Quarantine | Policy::Reject => {}
        ref p => {
            return c.fail(
                format!("DMARC policy p={}: forged mail is not stopped", policy(p)),
                "set p=quarantine or p=reject once your DMARC reports show all your mail passes",
            )
        }
    }
    let mut warns = vec![];
    if let Some(pct) = tag("pct") {
        match pct.parse::<u8>() {
            Ok(100) => {}
            Ok(n) if n < 100 => warns.push(format!(
                "pct={n}: the policy covers only {n}% of failing mail"
            )),
            _ => warns.push(format!("pct={pct} is not a number 0–100")),
        }
    }
    if d.t {
        warns.push("t=y: the policy is in test mode (one level weaker)".into());
    }
    if d.sp == Policy::None {
        warns.push("sp=none: subdomains are not protected".into());
    }
    let summary = format!(
        "DMARC p={}{}",
        policy(&d.p),
        if tag("sp").is_some() {
            format!(", sp={}", policy(&d.sp))
        } else {
            String::new()
        }
    );
    if warns.is_empty() {
        c.pass(summary)
    } else {
        c.warn(
            format!("{summary}; {}", warns.join("; ")),
            "remove pct= and t=y, and set sp=quarantine|reject (or leave sp out)",
        )
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
    fn dmarc_rules() {
        let c = |r: &[&str]| check("zorg.example", &answer(r));
        assert_eq!(c(&["v=DMARC1; p=reject"]).status, Status::Pass);
        assert_eq!(
            c(&["v=DMARC1; p=quarantine; rua=mailto:a@zorg.example"]).status,
            Status::Pass
        );
        assert_eq!(c(&["v=DMARC1; p=none"]).status, Status::Fail);
        assert_eq!(c(&[]).status, Status::Fail);
        assert_eq!(c(&["v=spf1 -all"]).status, Status::Fail);
        let two = c(&["v=DMARC1; p=reject", "v=DMARC1; p=none"]);
        assert_eq!(two.status, Status::Fail);
        assert!(two.finding.starts_with("2 DMARC records"));
        let pct = c(&["v=DMARC1; p=reject; pct=50"]);
        assert_eq!(pct.status, Status::Warn);
        assert!(pct.finding.contains("pct=50"), "{}", pct.finding);
        let sp = c(&["v=DMARC1; p=reject; sp=none"]);
        assert_eq!(sp.status, Status::Warn);
        assert_eq!(
            sp.finding,
            "DMARC p=reject, sp=none; sp=none: subdomains are not protected"
        );
        assert_eq!(c(&["v=DMARC1; p=reject; t=y"]).status, Status::Warn);
    }
}

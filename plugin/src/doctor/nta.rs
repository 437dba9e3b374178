//! `nta7516`: the `v=NTA7516-1` TXT record on the domain (NTA 7516 checklist item 15):
//! `v=NTA7516-1;startdate=YYYY-MM;enddate=YYYY-MM;provider=<name>;ntamx=<pref> <host>`.
//!
//! Rules: exactly one record, dates valid now (parsed by SmartTLS's peer parser), a `provider=`.
//! No record warns (the record is how peers skip the SMS step for you; since the NEN certification
//! ended its status is open). Expired, not yet valid, malformed or several records fail. A missing
//! provider, an answer that is not DNSSEC-secure, or an `ntamx` host that is not an MX warns.

use nta7516_smarttls::dns::DnsFailure;
use nta7516_smarttls::peer::{self, PeerStatus};
use nta7516_smarttls::{DnssecStatus, DomainReport};

use super::{Check, TxtAnswer};

fn year_month_now() -> (i32, u32) {
    let s = crate::time::rfc3339(crate::time::now());
    let y = s.get(0..4).and_then(|x| x.parse().ok()).unwrap_or(1970);
    let m = s.get(5..7).and_then(|x| x.parse().ok()).unwrap_or(1);
    (y, m)
}

/// The `nta7516` check from the domain's TXT records.
pub fn check(domain: &str, apex: &Result<TxtAnswer, DnsFailure>, r: &DomainReport) -> Check {
    let c = Check::new("nta7516", "NTA 7516 record");
    let a = match apex {
        Ok(a) => a,
        Err(e) => {
            return c.fail(
                super::dns_error(domain, e),
                "make the domain's name servers answer",
            )
        }
    };
    let fix_publish = format!(
        "publish \"v=NTA7516-1;startdate=YYYY-MM;enddate=YYYY-MM;provider=<your provider>\" as TXT on {domain} (DNSSEC-signed)"
    );
    let recs: Vec<&String> = a
        .records
        .iter()
        .filter(|t| peer::is_nta_record(t))
        .collect();
    let mut c = c;
    for t in &recs {
        c = c.detail(format!("record: {t}"));
    }
    let record = match recs.as_slice() {
        [] => return c.warn(format!("no v=NTA7516-1 record on {domain}"), fix_publish),
        [one] => *one,
        more => {
            return c.fail(
                format!("{} v=NTA7516-1 records on {domain}", more.len()),
                "keep a single v=NTA7516-1 record",
            )
        }
    };
    let p = peer::parse(record, year_month_now(), a.dnssec);
    let period = format!(
        "{}..{}",
        p.startdate.as_deref().unwrap_or("?"),
        p.enddate.as_deref().unwrap_or("?")
    );
    match p.status {
        PeerStatus::Peer => {}
        PeerStatus::Expired => {
            return c.fail(
                format!("the NTA 7516 record expired ({period})"),
                "renew the record's enddate for the current certification/self-assessment period, or remove it",
            )
        }
        PeerStatus::NotYetValid => {
            return c.fail(
                format!("the NTA 7516 record is not valid yet ({period})"),
                "correct the startdate",
            )
        }
        PeerStatus::Invalid => {
            return c.fail(
                format!(
                    "the NTA 7516 record is malformed: {}",
                    p.reason.as_deref().unwrap_or("?")
                ),
                fix_publish,
            )
        }
    }
    let mut warns = vec![];
    if p.provider.as_deref().is_none_or(str::is_empty) {
        warns.push("no provider=".to_string());
    }
    if a.dnssec != DnssecStatus::Secure {
        warns.push("the record is not DNSSEC-secure".to_string());
    }
    for m in &p.ntamx {
        if !r.mx.iter().any(|x| x.probe.host == m.host) {
            warns.push(format!("ntamx host {} is not an MX of {domain}", m.host));
        }
    }
    let summary = format!(
        "NTA 7516 record valid {period}, provider {}",
        p.provider.as_deref().unwrap_or("?")
    );
    if warns.is_empty() {
        c.pass(summary)
    } else {
        c.warn(
            format!("{summary}; {}", warns.join("; ")),
            "add provider=, sign the zone, and list only real MX hosts in ntamx",
        )
    }
}

//! `spf`: exactly one `v=spf1` record on the domain, parsed with mail-auth, ending in `-all` or
//! `~all` (directly or through `redirect=`), and at most 10 DNS-querying terms (`include`, `a`,
//! `mx`, `ptr`, `exists`, `redirect`; RFC 7208 §4.6.4), counted recursively through includes and
//! redirects. `~all` passes (as on internet.nl) with a note; `ptr` is noted (RFC 7208 §5.5).

use std::future::Future;
use std::pin::Pin;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Macro, Mechanism, Qualifier, Spf};
use nta7516_smarttls::dns::{Dns, DnsFailure};

use super::{has_version, txt, Check, TxtAnswer};

/// The RFC 7208 limit on DNS-querying terms.
pub const MAX_LOOKUPS: u32 = 10;

fn spf_records(answer: &TxtAnswer) -> Vec<&String> {
    answer
        .records
        .iter()
        .filter(|r| has_version(r, "v=spf1"))
        .collect()
}

/// A literal domain of a macro (`None` for macros that need the sender: not followed).
fn literal(m: &Macro, current: &str) -> Option<String> {
    match m {
        Macro::Literal(b) => Some(
            String::from_utf8_lossy(b)
                .trim_end_matches('.')
                .to_ascii_lowercase(),
        ),
        Macro::None => Some(current.to_string()),
        _ => None,
    }
}

fn qualifier(q: &Qualifier) -> &'static str {
    match q {
        Qualifier::Pass => "+",
        Qualifier::Fail => "-",
        Qualifier::SoftFail => "~",
        Qualifier::Neutral => "?",
    }
}

/// What walking the record tree found.
#[derive(Default)]
struct Walk {
    lookups: u32,
    notes: Vec<String>,
    errors: Vec<String>,
    uses_ptr: bool,
}

type BoxFut<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Counts the DNS-querying terms of `spf` (at `domain`) and of everything it includes/redirects to.
fn walk<'a>(dns: &'a Dns, domain: String, spf: Spf, depth: u32, w: &'a mut Walk) -> BoxFut<'a> {
    Box::pin(async move {
        let mut follow = vec![];
        for d in spf.directives.iter() {
            match &d.mechanism {
                Mechanism::Include { macro_string } => {
                    w.lookups += 1;
                    match literal(macro_string, &domain) {
                        Some(t) => follow.push(("include", t)),
                        None => w
                            .notes
                            .push(format!("include with a macro at {domain} not followed")),
                    }
                }
                Mechanism::A { .. } | Mechanism::Mx { .. } | Mechanism::Exists { .. } => {
                    w.lookups += 1
                }
                Mechanism::Ptr { .. } => {
                    w.lookups += 1;
                    w.uses_ptr = true;
                }
                Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. } => {}
            }
        }
        if let Some(r) = &spf.redirect {
            w.lookups += 1;
            match literal(r, &domain) {
                Some(t) => follow.push(("redirect", t)),
                None => w
                    .notes
                    .push(format!("redirect with a macro at {domain} not followed")),
            }
        }
        for (kind, target) in follow {
            if w.lookups > MAX_LOOKUPS {
                return;
            }
            if depth >= MAX_LOOKUPS {
                w.errors
                    .push(format!("{kind}:{target} nests too deep (a loop?)"));
                return;
            }
            match fetch(dns, &target).await {
                Ok(spf) => walk(dns, target, spf, depth + 1, w).await,
                Err(e) => w.errors.push(format!("{kind}:{target}: {e}")),
            }
        }
    })
}

/// The single SPF record at `domain`, parsed.
async fn fetch(dns: &Dns, domain: &str) -> Result<Spf, String> {
    let a = txt(dns, domain)
        .await
        .map_err(|e: DnsFailure| e.to_string())?;
    let recs = spf_records(&a);
    match recs.as_slice() {
        [] => Err("no SPF record".into()),
        [one] => Spf::parse(one.as_bytes()).map_err(|e| format!("syntax error ({e})")),
        more => Err(format!("{} SPF records", more.len())),
    }
}

/// The `all` qualifier in effect: the record's own, or through its redirect chain.
async fn effective_all(dns: &Dns, domain: &str, spf: &Spf) -> Option<Qualifier> {
    let mut cur = spf.clone();
    let mut at = domain.to_string();
    for _ in 0..MAX_LOOKUPS {
        if let Some(d) = cur
            .directives
            .iter()
            .find(|d| matches!(d.mechanism, Mechanism::All))
        {
            return Some(d.qualifier.clone());
        }
        let target = literal(cur.redirect.as_ref()?, &at)?;
        cur = fetch(dns, &target).await.ok()?;
        at = target;
    }
    None
}

/// The `spf` check.
pub async fn check(dns: &Dns, domain: &str, apex: &Result<TxtAnswer, DnsFailure>) -> Check {
    let c = Check::new("spf", "SPF");
    let a = match apex {
        Ok(a) => a,
        Err(e) => {
            return c.fail(
                super::dns_error(domain, e),
                "make the domain's name servers answer TXT queries",
            )
        }
    };
    let recs = spf_records(a);
    let mut c = c;
    for r in &recs {
        c = c.detail(format!("record: {r}"));
    }
    let record = match recs.as_slice() {
        [] => {
            return c.fail(
                format!("no SPF record on {domain}"),
                format!("publish one TXT record on {domain}: \"v=spf1 mx -all\" (list every host that sends your mail)"),
            )
        }
        [one] => *one,
        more => {
            return c.fail(
                format!("{} SPF records on {domain} (receivers treat this as a permanent error)", more.len()),
                "merge them into a single v=spf1 record",
            )
        }
    };
    let spf = match Spf::parse(record.as_bytes()) {
        Ok(s) => s,
        Err(e) => {
            return c.fail(
                format!("the SPF record does not parse ({e})"),
                "correct the record's syntax (RFC 7208)",
            )
        }
    };
    let mut w = Walk::default();
    walk(dns, domain.to_string(), spf.clone(), 0, &mut w).await;
    let all = effective_all(dns, domain, &spf).await;
    for n in &w.notes {
        c = c.detail(format!("note: {n}"));
    }
    if w.uses_ptr {
        c = c.detail("note: the ptr mechanism is slow and discouraged (RFC 7208 §5.5)");
    }
    c = c.detail(format!(
        "{}{} DNS lookups (limit {MAX_LOOKUPS})",
        w.lookups,
        if w.lookups > MAX_LOOKUPS { "+" } else { "" }
    ));
    if !w.errors.is_empty() {
        return c.fail(
            format!("SPF record broken: {}", w.errors.join("; ")),
            "fix or remove the includes/redirects that have no (single, valid) SPF record",
        );
    }
    if w.lookups > MAX_LOOKUPS {
        return c.fail(
            format!(
                "more than {MAX_LOOKUPS} DNS lookups ({}+): receivers return a permanent error",
                w.lookups
            ),
            "replace includes/a/mx with ip4:/ip6: ranges, or flatten the record",
        );
    }
    match all {
        Some(Qualifier::Fail) => c.pass(format!(
            "one SPF record ending in -all, {} lookups",
            w.lookups
        )),
        Some(Qualifier::SoftFail) => c.detail("note: -all is stricter than ~all").pass(format!(
            "one SPF record ending in ~all, {} lookups",
            w.lookups
        )),
        Some(q) => c.fail(
            format!(
                "the SPF record ends in {}all, which does not reject mail forged as {domain}",
                qualifier(&q)
            ),
            "end the record with -all (or ~all)",
        ),
        None => c.fail(
            "the SPF record has no all mechanism (defaults to neutral)",
            "end the record with -all (or ~all)",
        ),
    }
}

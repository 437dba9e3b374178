//! `dkim`: a public key at `<selector>._domainkey.<domain>` for every configured selector
//! (`[doctor] dkim_selectors`, `--dkim-selector`), parsed with mail-auth (`v=DKIM1`, `k=rsa|ed25519`,
//! a `p=` key that decodes). A revoked key (`p=` empty) or a missing record fails. Without selectors
//! the check can only see whether `_domainkey.<domain>` exists (NXDOMAIN there means no keys at all,
//! as internet.nl tests) and warns.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use nta7516_smarttls::dns::Dns;

use super::{tags, txt, Check, Status};

/// The `dkim` check.
pub async fn check(dns: &Dns, domain: &str, selectors: &[String]) -> Check {
    let c = Check::new("dkim", "DKIM keys");
    if selectors.is_empty() {
        let name = format!("_domainkey.{domain}");
        return match txt(dns, &name).await {
            Ok(a) if a.nxdomain => c.fail(
                format!("no DKIM keys: {name} does not exist"),
                "sign outgoing mail with DKIM (Stalwart: a DKIM signature per domain) and publish the key; then name the selector in [doctor] dkim_selectors",
            ),
            Ok(_) => c.warn(
                format!("{name} exists, but no selector was given to check"),
                "name your DKIM selectors with --dkim-selector or [doctor] dkim_selectors",
            ),
            Err(e) => c.fail(super::dns_error(&name, &e), "make the domain's name servers answer"),
        };
    }
    let mut worst = Status::Pass;
    let mut bad = vec![];
    let mut c = c;
    for sel in selectors {
        let name = format!("{sel}._domainkey.{domain}");
        let (s, line) = match txt(dns, &name).await {
            Err(e) => (Status::Fail, super::dns_error(&name, &e)),
            Ok(a) => {
                let keys: Vec<&String> = a
                    .records
                    .iter()
                    .filter(|r| r.contains("p=") || r.trim_start().starts_with("v=DKIM1"))
                    .collect();
                match keys.as_slice() {
                    [] => (Status::Fail, "no key published".to_string()),
                    [one] => match DomainKey::parse(one.as_bytes()) {
                        Ok(_) => {
                            let t = tags(one);
                            let k = t
                                .iter()
                                .find(|(k, _)| k == "k")
                                .map(|(_, v)| v.as_str())
                                .unwrap_or("rsa");
                            let testing = t
                                .iter()
                                .any(|(k, v)| k == "t" && v.split(':').any(|f| f.trim() == "y"));
                            if testing {
                                (Status::Warn, format!("{k} key in test mode (t=y)"))
                            } else {
                                (Status::Pass, format!("{k} key"))
                            }
                        }
                        Err(mail_auth::Error::Dkim(
                            mail_auth::dkim::DkimError::RevokedPublicKey,
                        )) => (Status::Fail, "key revoked (empty p=)".into()),
                        Err(e) => (Status::Fail, format!("invalid key record ({e})")),
                    },
                    more => (
                        Status::Fail,
                        format!("{} key records (ambiguous)", more.len()),
                    ),
                }
            }
        };
        if s > worst {
            worst = s;
        }
        if s != Status::Pass {
            bad.push(sel.clone());
        }
        c = c.detail(format!("{} {name}: {line}", s.as_str()));
    }
    let fix = format!(
        "publish the public key of each selector as TXT at <selector>._domainkey.{domain} (\"v=DKIM1; k=ed25519; p=…\" or RSA ≥ 2048 bits)"
    );
    match worst {
        Status::Pass => c.pass(format!(
            "DKIM key present for selector(s) {}",
            selectors.join(", ")
        )),
        Status::Warn => c.warn(format!("DKIM key in test mode: {}", bad.join(", ")), fix),
        Status::Fail => c.fail(
            format!("no valid DKIM key for selector(s) {}", bad.join(", ")),
            fix,
        ),
    }
}

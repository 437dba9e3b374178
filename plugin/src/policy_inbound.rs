//! `policy test --inbound`: one saved message through the inbound hook's steps, without Stalwart and
//! without the store: verify it ([`stalwart_nta7516::inbound::Verifier`], the gateway's own), look up
//! the `From` domain's peer status (`[[peers]]`, then its DNS record; the admin API's database list
//! needs the store and is not read), evaluate the policy with the facts the inbound hook gives it and
//! print what [`stalwart_nta7516::policy::decide_inbound`] makes of it.

use std::{fmt::Write as _, net::IpAddr, path::Path, time::Duration};

use stalwart_nta7516::{
    config::Config,
    inbound::{
        decide,
        facts::{header_from_domain, peer_status, InboundFacts},
        policy_facts, recipient_verdicts,
    },
    policy::{
        smarttls::SmartTlsVerdicts, AuthResults, InboundDecision, NoSmartTls, Peer, PolicyVerdict,
        SessionTls, SievePolicy, TlsVerdicts, TlsVersion,
    },
};

/// What the command line gave.
pub struct Args<'a> {
    pub policy: &'a Path,
    pub eml: &'a Path,
    pub config: &'a Path,
    pub mail_from: &'a str,
    pub to: &'a [String],
    pub client_ip: IpAddr,
    pub helo: &'a str,
    pub tls_version: Option<TlsVersion>,
}

/// The report, or a clear error (unreadable files, a policy that does not compile, a bad config).
pub async fn run(a: Args<'_>) -> Result<String, String> {
    let config = Config::load(a.config).map_err(|e| e.to_string())?;
    let policy = SievePolicy::load(a.policy)?;
    let raw = std::fs::read(a.eml).map_err(|e| format!("{}: {e}", a.eml.display()))?;
    let verifier = stalwart_nta7516::inbound_verifier(&config)?;
    let env = stalwart_nta7516::inbound::verify::Envelope {
        ip: a.client_ip,
        helo: a.helo,
        mail_from: a.mail_from,
    };
    let auth = verifier.verify(&raw, false, &env).await;
    let from_domain = match auth.dmarc.domain.as_str() {
        "" => header_from_domain(&raw),
        d => d.to_string(),
    };
    let peer = peer(&config, &from_domain).await?;
    let facts = InboundFacts {
        sender: a.mail_from,
        recipients: a.to.iter().map(String::as_str).collect(),
        queue_id: None,
        client_ip: a.client_ip,
        helo: a.helo,
        tls: a.tls_version.map(|version| SessionTls {
            version,
            cipher: String::new(),
        }),
        auth,
        from_domain,
        peer,
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &raw)),
        size: raw.len(),
        raw,
        now: stalwart_nta7516::time::now(),
        own_headers: Vec::new(),
    };
    let verdicts = recipient_verdicts(&policy, &facts);
    let decision = decide(&config, &facts, &verdicts);
    Ok(report(&facts, &verdicts, &decision))
}

/// The `From` domain's peer status as the inbound hook finds it, minus the database list.
async fn peer(config: &Config, domain: &str) -> Result<Peer, String> {
    let tls: Box<dyn TlsVerdicts> = match config.smarttls.enabled {
        true => Box::new(SmartTlsVerdicts(
            nta7516_smarttls::SmartTls::new(config.smarttls.probe.clone())
                .map_err(|e| format!("SmartTLS: {e}"))?,
        )),
        false => Box::new(NoSmartTls),
    };
    let budget = Duration::from_millis(config.hook.tls_budget_ms);
    Ok(peer_status(config, None, tls.as_ref(), domain, budget).await)
}

fn report(
    facts: &InboundFacts<'_>,
    verdicts: &[(&str, PolicyVerdict)],
    decision: &InboundDecision,
) -> String {
    let mut o = String::new();
    authentication(&mut o, facts);
    let _ = writeln!(
        o,
        "\nfacts the policy sees (vnd.nta7516.*, for {}):",
        facts.recipients[0]
    );
    let base = stalwart_nta7516::policy::sieve::facts(&policy_facts(facts));
    for (name, value) in base.variables(facts.sender, facts.recipients[0], facts.size, facts.now) {
        let _ = writeln!(o, "  {name} = {value}");
    }
    let _ = writeln!(o, "\npolicy:");
    for (rcpt, v) in verdicts {
        let decided = v.requirement.map_or("none", |r| r.code());
        let _ = writeln!(o, "  {rcpt}: {decided}");
        for r in &v.reasons {
            let _ = writeln!(o, "    {}: {}", r.requirement.code(), r.text);
        }
        if let Some(e) = &v.error {
            let _ = writeln!(o, "    error: {e}");
        }
    }
    let _ = writeln!(o, "\naction: {}", decision.action.as_str());
    for r in &decision.reasons {
        let _ = writeln!(
            o,
            "  {} ({}): {}",
            r.code.as_str(),
            r.action.as_str(),
            r.text
        );
    }
    o
}

fn authentication(o: &mut String, facts: &InboundFacts<'_>) {
    let a: &AuthResults = &facts.auth;
    let _ = writeln!(
        o,
        "authentication (client {}, helo {}):",
        facts.client_ip, facts.helo
    );
    let _ = writeln!(o, "  spf (mail from): {}", a.spf_mail_from.as_str());
    let _ = writeln!(o, "  spf (helo): {}", a.spf_helo.as_str());
    if a.dkim.is_empty() {
        let _ = writeln!(o, "  dkim: none (no signature)");
    }
    for d in &a.dkim {
        let detail = d
            .detail
            .as_deref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  dkim: {} d={} s={}{detail}",
            d.result.as_str(),
            d.domain,
            d.selector
        );
    }
    let policy = serde_json::to_value(a.dmarc.policy).unwrap_or_default();
    let detail = a
        .dmarc
        .detail
        .as_deref()
        .map(|x| format!(" ({x})"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "  dmarc: {} (domain {}, p={}){detail}",
        a.dmarc.result.as_str(),
        a.dmarc.domain,
        policy.as_str().unwrap_or_default()
    );
    let _ = writeln!(o, "  arc: {}", a.arc.as_str());
    let tls = facts
        .tls
        .as_ref()
        .map_or("none (plaintext)", |t| t.version.as_str());
    let _ = writeln!(o, "  tls: {tls}");
    let peer = match &facts.peer {
        Peer::Yes { provider, source } => format!("yes ({provider}, {})", source.label()),
        Peer::No => "no".into(),
        Peer::Unknown { reason } => format!("unknown ({reason})"),
    };
    let _ = writeln!(
        o,
        "  from domain: {} (NTA 7516 peer: {peer})",
        facts.from_domain
    );
}

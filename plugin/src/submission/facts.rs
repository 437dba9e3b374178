//! The facts of one submission, gathered before anything is decided: the envelope and body, and per
//! recipient (in envelope order) the stored data, exemptions and peers, the SmartTLS verdict and how an
//! earlier attempt of this very submission holds it; for the message the sender's domain settings.
//!
//! The lookups run concurrently (each on its own connection, while SmartTLS runs). A database error
//! fails the hook (Stalwart answers 451 and the client retries).

use std::{borrow::Cow, collections::BTreeSet, sync::Arc, time::Duration};

use ring::digest;
use tokio::task::JoinSet;

use super::SubmissionError;
use crate::{
    policy::{
        exemptions, AdminReason, Exemption, Outcome, PeerSource, PolicyFacts, Scope, StalwartGate,
        TlsFacts,
    },
    stalwart::hook::{Message, Request},
    store::StoredFacts,
    time, Gateway,
};

/// Everything the decision and its recording need about one submission.
pub struct SubmissionFacts<'r> {
    pub sender: &'r str,
    pub queue_id: Option<&'r str>,
    pub size: usize,
    pub now: i64,
    pub body: Body<'r>,
    /// Same sender, recipients and bytes: the key a retry is recognised by (none without an exact body).
    pub idem_key: Option<String>,
    /// Every distinct recipient, in envelope order.
    pub recipients: Vec<RecipientFacts<'r>>,
    /// The held message of an earlier attempt of this submission (its holds are in `recipients`).
    pub earlier_message: Option<String>,
    /// Sender groups offered to the policy: the sender domain's settings, else the configuration's.
    pub sender_group: Option<String>,
    /// Days a held copy is kept: the sender domain's settings, else the configuration's.
    pub retention_days: i64,
    /// The sender's notices of a held copy: the sender domain's settings, else the configuration's.
    pub notices: crate::challenge::sender_notices::Choice,
    /// Whether Stalwart may carry mail out now (the last `stalwart check`, after `on_unsafe`).
    pub stalwart: StalwartGate,
}

/// The message body as the gateway sees it.
pub struct Body<'r> {
    message: &'r Message,
    /// The exact original bytes, or (when an 8-bit body is not UTF-8) the length of a lossy rebuild.
    pub exact: Result<Vec<u8>, usize>,
}

impl Body<'_> {
    /// The bytes the policy reads: the exact copy, or the best approximation when there is none.
    pub fn for_policy(&self) -> Cow<'_, [u8]> {
        match &self.exact {
            Ok(raw) => raw.as_slice().into(),
            Err(_) => self.message.lossy().into(),
        }
    }
}

/// What is known about one recipient.
#[derive(Debug, Clone)]
pub struct RecipientFacts<'r> {
    pub address: &'r str,
    pub domain: &'r str,
    /// One of the organisation's own domains: nothing else is looked up.
    pub local: bool,
    /// The SmartTLS verdict for the domain (none for a local recipient, or when the probe task failed).
    pub tls: Option<TlsFacts>,
    /// Every exemption known (a verification also when it has expired), in no particular order.
    pub exemptions: Vec<Exemption>,
    pub phone_known: bool,
    /// How an earlier attempt of this very submission holds the recipient.
    pub earlier_hold: Option<Outcome>,
}

impl RecipientFacts<'_> {
    /// The verdict the decision reads: a failed probe task counts as Unknown.
    pub fn tls_or_unknown(&self) -> &TlsFacts {
        static MISSING: std::sync::OnceLock<TlsFacts> = std::sync::OnceLock::new();
        self.tls
            .as_ref()
            .unwrap_or_else(|| MISSING.get_or_init(|| TlsFacts::unknown("SmartTLS task failed")))
    }

    /// The facts offered to the admin's policy.
    pub fn policy_facts(&self, sender_group: Option<&str>, size: usize) -> PolicyFacts {
        let tls = self.tls_or_unknown();
        PolicyFacts {
            tls: Some(tls.status.as_str().to_string()),
            tls_grade: tls.grade.clone(),
            // The provider's name (`vnd.nta7516.peer_provider`), not the reason text.
            peer_provider: exemptions::peer(&self.exemptions).map(|(p, _)| p.to_string()),
            verified_until: exemptions::verified_until(&self.exemptions),
            phone_known: self.phone_known,
            sender_group: sender_group.map(str::to_string),
            recipient_domain: self.domain.to_string(),
            size,
            // A submission is authenticated by its login: the policy reads "none".
            ..PolicyFacts::default()
        }
    }
}

pub(super) fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// Gathers the facts of a DATA-stage request.
pub async fn gather<'r>(
    gw: &Arc<Gateway>,
    req: &'r Request,
) -> Result<SubmissionFacts<'r>, SubmissionError> {
    let (sender, addresses, message) = envelope(req)?;
    let now = time::now();
    let external: Vec<&str> = addresses
        .iter()
        .copied()
        .filter(|r| !gw.config.is_local_domain(domain_of(r)))
        .collect();
    let exact = message.rebuild();
    // A retried submission (the client re-sent after a 451) has the same key.
    let idem_key = exact
        .as_deref()
        .ok()
        .map(|raw| idempotency_key(sender, &addresses, raw));
    let sender_domain = domain_of(sender).trim_end_matches('.').to_ascii_lowercase();
    let (reads, tls) = tokio::join!(
        gw.store.hook_reads(
            &external,
            idem_key.as_deref(),
            Some(sender_domain.as_str()).filter(|d| !d.is_empty()),
            now
        ),
        tls_verdicts(gw, &external),
    );
    let reads = reads?;
    let (stored, settings) = (reads.stored, sender_settings(reads.settings));
    let (earlier_message, earlier_holds) = reads.earlier.unzip();
    let earlier_holds = earlier_holds.unwrap_or_default();
    let recipients = addresses
        .iter()
        .map(|&address| {
            let mut r = recipient(gw, address, &stored, &tls);
            r.earlier_hold = earlier_holds
                .iter()
                .find(|(a, _)| a == address)
                .and_then(|(_, o)| Outcome::parse(o));
            r
        })
        .collect();
    Ok(SubmissionFacts {
        sender,
        queue_id: req.context.queue.as_ref().map(|q| q.id.as_str()),
        size: message.size,
        now,
        body: Body { message, exact },
        idem_key,
        recipients,
        earlier_message,
        sender_group: settings
            .groups
            .or_else(|| gw.config.sender_group(sender).map(str::to_string)),
        retention_days: settings
            .retention_days
            .unwrap_or_else(|| i64::from(gw.config.hold.retention_days)),
        notices: crate::challenge::sender_notices::Choice::of(gw, settings.notices),
        stalwart: gw.stalwart_check.gate(),
    })
}

/// Sender, distinct recipients in envelope order, and the message of a DATA-stage request.
pub(crate) fn envelope(req: &Request) -> Result<(&str, Vec<&str>, &Message), SubmissionError> {
    req.data()
        .map_err(|what| SubmissionError::BadRequest(what.into()))
}

/// One recipient's facts (without the earlier hold).
fn recipient<'r>(
    gw: &Gateway,
    address: &'r str,
    stored: &StoredFacts,
    tls: &[(String, TlsFacts)],
) -> RecipientFacts<'r> {
    let domain = domain_of(address);
    let local = gw.config.is_local_domain(domain);
    let mut facts = RecipientFacts {
        address,
        domain,
        local,
        tls: None,
        exemptions: Vec::new(),
        phone_known: false,
        earlier_hold: None,
    };
    if local {
        return facts;
    }
    facts.tls = tls
        .iter()
        .find(|(d, _)| d == domain)
        .map(|(_, f)| f.clone());
    let row = stored.recipients.get(address);
    facts.phone_known = row.is_some_and(|r| r.phone.is_some());
    if let Some(until) = row.and_then(|r| r.verified_until) {
        facts.exemptions.push(Exemption::Verified { until });
    }
    peers(
        gw,
        domain,
        stored,
        facts.tls.as_ref(),
        &mut facts.exemptions,
    );
    admin_exemptions(gw, address, domain, stored, &mut facts.exemptions);
    facts
}

/// The domain's peer entries: configuration list, database list, DNS record.
fn peers(
    gw: &Gateway,
    domain: &str,
    stored: &StoredFacts,
    tls: Option<&TlsFacts>,
    out: &mut Vec<Exemption>,
) {
    let config = gw
        .config
        .configured_peer(domain)
        .map(|p| (p.provider.clone(), PeerSource::ConfigList));
    let database = stored
        .peers
        .get(domain)
        .map(|p| (p.clone(), PeerSource::DatabaseList));
    let dns = tls
        .and_then(|t| t.nta_peer.as_ref())
        .map(|p| (p.provider.clone(), PeerSource::DnsRecord));
    out.extend(
        [config, database, dns]
            .into_iter()
            .flatten()
            .map(|(provider, source)| Exemption::Peer { provider, source }),
    );
}

type ScopeOf = fn(String) -> Scope;

/// The admin exemptions for the address and its domain, from the configuration and the database.
fn admin_exemptions(
    gw: &Gateway,
    address: &str,
    domain: &str,
    stored: &StoredFacts,
    out: &mut Vec<Exemption>,
) {
    let listed = &gw.config.exemptions;
    let in_config = [
        listed
            .addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address)),
        listed
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain)),
    ];
    let scopes: [(&str, ScopeOf); 2] = [(address, Scope::Address), (domain, Scope::Domain)];
    for ((value, scope), in_config) in scopes.into_iter().zip(in_config) {
        if in_config {
            out.push(Exemption::Admin {
                scope: scope(value.to_string()),
                reason: AdminReason::Config,
            });
        }
        if let Some(reason) = stored.exemptions.get(value) {
            out.push(Exemption::Admin {
                scope: scope(value.to_string()),
                reason: AdminReason::Database(reason.clone()),
            });
        }
    }
}

/// The admin's settings for the sender's domain (`domain_settings`), as they apply to the hook: groups
/// offered to the policy (comma-separated when several) and the retention of held content. Looked up only
/// when something may be decided (`needed`).
#[derive(Debug, Default)]
struct SenderSettings {
    groups: Option<String>,
    retention_days: Option<i64>,
    /// `(hold confirmation, collection receipt)`; `None`: not set.
    notices: (Option<bool>, Option<bool>),
}

/// The sender domain's stored settings, as far as they are valid.
fn sender_settings(stored: Option<crate::store::admin::SettingsOut>) -> SenderSettings {
    let Some(row) = stored else {
        return SenderSettings::default();
    };
    SenderSettings {
        groups: Some(row.groups.join(",")).filter(|g| !g.is_empty()),
        // The admin API accepts 1 to 90; anything else in the table is ignored (config applies).
        retention_days: row.retention_days.filter(|d| (1..=90).contains(d)),
        notices: (row.hold_confirmation, row.collection_receipt),
    }
}

/// Verdicts for the distinct recipient domains, fetched concurrently within the hook's time budget.
async fn tls_verdicts(gw: &Arc<Gateway>, external: &[&str]) -> Vec<(String, TlsFacts)> {
    let domains: BTreeSet<&str> = external.iter().map(|r| domain_of(r)).collect();
    let budget = Duration::from_millis(gw.config.hook.tls_budget_ms);
    let mut set = JoinSet::new();
    for domain in domains {
        let tls = gw.tls.clone();
        let domain = domain.to_string();
        set.spawn(async move {
            let facts = match tokio::time::timeout(budget, tls.verdict(&domain, budget)).await {
                Ok(facts) => facts,
                Err(_) => TlsFacts::unknown(format!(
                    "timeout: no verdict within {} ms",
                    budget.as_millis()
                )),
            };
            (domain, facts)
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(pair) => out.push(pair),
            Err(e) => tracing::error!(error = %e, "SmartTLS task failed"),
        }
    }
    out
}

/// Same sender, same recipients, same bytes (the Message-ID included): the same submission retried.
pub(crate) fn idempotency_key(sender: &str, recipients: &[&str], raw: &[u8]) -> String {
    let mut sorted = recipients.to_vec();
    sorted.sort_unstable();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(sender.as_bytes());
    ctx.update(b"\0");
    for r in sorted {
        ctx.update(r.as_bytes());
        ctx.update(b"\0");
    }
    ctx.update(raw);
    hex::encode(ctx.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_ignores_recipient_order() {
        assert_eq!(
            idempotency_key("s@z", &["a@x", "b@y"], b"m"),
            idempotency_key("s@z", &["b@y", "a@x"], b"m")
        );
        assert_ne!(
            idempotency_key("s@z", &["a@x"], b"m"),
            idempotency_key("s@z", &["a@x"], b"n")
        );
    }

    #[test]
    fn the_policy_reads_the_peers_provider_and_the_verification_as_stored() {
        let r = RecipientFacts {
            address: "a@x.test",
            domain: "x.test",
            local: false,
            tls: None,
            exemptions: vec![
                Exemption::Peer {
                    provider: "Acme Mail".into(),
                    source: PeerSource::DnsRecord,
                },
                Exemption::Peer {
                    provider: "Zorgnet".into(),
                    source: PeerSource::DatabaseList,
                },
                Exemption::Verified { until: 5 },
            ],
            phone_known: true,
            earlier_hold: None,
        };
        let f = r.policy_facts(Some("artsen"), 123);
        assert_eq!(f.peer_provider.as_deref(), Some("Zorgnet"));
        assert_eq!(
            f.verified_until,
            Some(5),
            "expired or not, the policy sees it"
        );
        assert_eq!(
            f.tls.as_deref(),
            Some("unknown"),
            "a failed probe is unknown"
        );
        assert_eq!(f.sender_group.as_deref(), Some("artsen"));
        assert_eq!((f.recipient_domain.as_str(), f.size), ("x.test", 123));
        assert!(f.phone_known);
    }
}

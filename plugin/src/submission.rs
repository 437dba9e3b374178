//! One submission through the gateway: gather the facts for each recipient, decide, hold what must wait,
//! and map the decisions onto Stalwart's hook answer.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use ring::digest;
use tokio::task::JoinSet;

use crate::{
    audit::PhoneOutcome,
    ids,
    policy::{
        self, Decision, ExemptionFacts, Outcome, PolicyFacts, Reason, RecipientInput, Step,
        TlsFacts,
    },
    stalwart::hook::{Modification, Request, Response, Stage},
    store::HookRecord,
    time, Gateway,
};

/// Header added to messages that go out now, to correlate Stalwart's delivery events with decisions.
pub const CORRELATION_HEADER: &str = "X-NTA7516-Id";

#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    #[error("malformed hook request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("sealing the held copy failed: {0}")]
    Crypto(#[from] crate::hold::crypto::KeyError),
}

/// The result of one hook call: the answer and the decisions behind it.
pub struct Handled {
    pub response: Response,
    pub decisions: Vec<Decision>,
    pub message_ref: Option<String>,
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

pub async fn handle(gw: &Arc<Gateway>, req: Request) -> Result<Handled, SubmissionError> {
    // The gateway decides at DATA only; earlier stages carry no message (Stalwart's enable expression
    // names the data stage; anything else is let through to that decision).
    if req.context.stage != Stage::Data {
        return Ok(Handled {
            response: Response::accept(Vec::new()),
            decisions: Vec::new(),
            message_ref: None,
        });
    }
    let envelope = req
        .envelope
        .as_ref()
        .ok_or_else(|| SubmissionError::BadRequest("data stage without envelope".into()))?;
    let message = req
        .message
        .as_ref()
        .ok_or_else(|| SubmissionError::BadRequest("data stage without message".into()))?;
    if envelope.to.is_empty() {
        return Err(SubmissionError::BadRequest(
            "envelope has no recipients".into(),
        ));
    }
    let sender = envelope.from.address.as_str();
    let mut seen = BTreeSet::new();
    let recipients: Vec<&str> = envelope
        .to
        .iter()
        .map(|a| a.address.as_str())
        .filter(|a| seen.insert(*a))
        .collect();
    let now = time::now();
    let config = &gw.config;

    let external: Vec<&str> = recipients
        .iter()
        .copied()
        .filter(|r| !config.is_local_domain(domain_of(r)))
        .collect();
    let rebuilt = message.rebuild();
    let raw_for_policy: std::borrow::Cow<[u8]> = match &rebuilt {
        Ok(raw) => raw.as_slice().into(),
        Err(_) => {
            let mut v = Vec::new();
            for (n, val) in &message.headers {
                v.extend_from_slice(n.as_bytes());
                v.push(b':');
                v.extend_from_slice(val.as_bytes());
            }
            v.extend_from_slice(b"\r\n");
            v.extend_from_slice(message.contents.as_bytes());
            v.into()
        }
    };

    // A retried submission (the client re-sent after a 451) has the same key: see below.
    let idem_key = rebuilt
        .as_deref()
        .ok()
        .map(|raw| idempotency_key(sender, &recipients, raw));

    // Facts for external recipients, looked up concurrently (each on its own connection, while SmartTLS
    // runs): stored recipient data, exemptions and peers; the admin's settings for the sender's domain;
    // the holds of an earlier attempt of this very submission.
    let (stored, tls, settings, existing) = tokio::join!(
        gw.store.recipient_facts(&external, now),
        tls_verdicts(gw, &external),
        sender_settings(gw, sender, !external.is_empty()),
        async {
            match &idem_key {
                Some(key) if !external.is_empty() => gw.store.existing_holds(key).await,
                _ => Ok(None),
            }
        }
    );
    let (stored, settings, existing) = (stored?, settings?, existing?);
    let sender_group = settings
        .groups
        .or_else(|| config.sender_group(sender).map(str::to_string));
    let mut exemptions = Vec::with_capacity(external.len());
    let mut policy_facts = Vec::with_capacity(external.len());
    for rcpt in &external {
        let domain = domain_of(rcpt);
        let row = stored.recipients.get(*rcpt).cloned().unwrap_or_default();
        let tls = tls_for(&tls, domain);
        let peer = match config
            .peers
            .iter()
            .find(|p| p.domain.eq_ignore_ascii_case(domain))
        {
            Some(p) => Some(format!("{}, admin peer list", p.provider)),
            None => match stored.peers.get(domain) {
                Some(provider) => Some(format!("{provider}, admin peer list")),
                None => tls
                    .nta_peer
                    .as_ref()
                    .map(|p| format!("{}, v=NTA7516-1 record", p.provider)),
            },
        };
        let admin = if config
            .exemptions
            .addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(rcpt))
        {
            Some(format!("address {rcpt} in the configuration"))
        } else if config
            .exemptions
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
        {
            Some(format!("domain {domain} in the configuration"))
        } else {
            stored
                .exemptions
                .get(*rcpt)
                .or_else(|| stored.exemptions.get(domain))
                .cloned()
        };
        policy_facts.push((
            *rcpt,
            PolicyFacts {
                tls: Some(tls.status.as_str().to_string()),
                tls_grade: tls.grade.clone(),
                peer_provider: peer.clone(),
                verified_until: row.verified_until,
                phone_known: row.phone.is_some(),
                sender_group: sender_group.clone(),
                recipient_domain: domain.to_string(),
                size: message.size,
                // Not in Stalwart's hook request: the policy reads "none".
                dmarc: None,
                dkim: None,
                spf: None,
            },
        ));
        exemptions.push(ExemptionFacts {
            verified_until: row.verified_until,
            admin,
            peer,
        });
    }
    let verdicts = if external.is_empty() {
        Vec::new()
    } else {
        gw.policy().evaluate(&raw_for_policy, sender, &policy_facts)
    };

    // Decide, recipient by recipient, in envelope order.
    let default_requirement = config.default_requirement();
    let no_verdict = policy::PolicyVerdict::default();
    let mut decisions = Vec::with_capacity(recipients.len());
    for rcpt in &recipients {
        let idx = external.iter().position(|e| e == rcpt);
        let unknown = TlsFacts::unknown("not probed");
        let tls_facts = idx.map_or(&unknown, |_| tls_for(&tls, domain_of(rcpt)));
        let empty = ExemptionFacts::default();
        decisions.push(policy::decide(&RecipientInput {
            recipient: rcpt,
            is_local: idx.is_none(),
            policy: idx.and_then(|i| verdicts.get(i)).unwrap_or(&no_verdict),
            default_requirement,
            exemptions: idx.map_or(&empty, |i| &exemptions[i]),
            tls: tls_facts,
            now,
        }));
    }

    // A retried submission: recipients held the first time stay held, whatever the new verdict says,
    // so a message is never both delivered and held.
    if let Some((_, previously_held)) = &existing {
        for (rcpt, outcome) in previously_held {
            if let (Some(d), Some(outcome)) = (
                decisions.iter_mut().find(|d| &d.recipient == rcpt),
                Outcome::parse(outcome),
            ) {
                if d.outcome != outcome {
                    d.outcome = outcome;
                    d.reasons.push(Reason {
                        step: Step::Hold,
                        code: "already_held".into(),
                        text: format!("already held as {} by an earlier attempt", outcome.as_str()),
                    });
                }
            }
        }
    }

    // Nothing is held when the whole message is refused (any Reject) or every recipient may have it now:
    // the decisions and their audit records are committed before the answer.
    let refusal = decisions
        .iter()
        .find(|d| d.outcome == Outcome::Reject)
        .map(|rejected| {
            Response::reject(
                550,
                "5.7.1",
                format!(
                    "Message refused by the NTA 7516 policy for <{}>: {}",
                    rejected.recipient,
                    rejected.summary()
                ),
            )
        });
    if refusal.is_some() || !decisions.iter().any(|d| d.outcome.is_held()) {
        let message_ref = ids::new_id("m");
        let sha = rebuilt.as_deref().map(sha256_hex).unwrap_or_default();
        let audit = decision_events(&message_ref, &sha, sender, &req, &decisions, &tls);
        gw.store
            .record_hook(&HookRecord {
                message_ref: &message_ref,
                idem_key: "",
                queue_id: req.context.queue.as_ref().map(|q| q.id.as_str()),
                sender,
                sha256: &sha,
                size: message.size,
                decisions: &decisions,
                sealed: None,
                now,
                hold_expires_at: now,
                audit: &audit,
                tag_phone: None,
            })
            .await?;
        return Ok(Handled {
            response: refusal.unwrap_or_else(|| respond(&decisions, &message_ref)),
            decisions,
            message_ref: Some(message_ref),
        });
    }

    // Something must be held: only an exact copy may be.
    let raw = match rebuilt {
        Ok(raw) => raw,
        Err(rebuilt_len) => {
            tracing::warn!(
                sender,
                size = message.size,
                rebuilt_len,
                "8-bit body that is not UTF-8: cannot hold an exact copy"
            );
            return Ok(Handled {
                response: Response::reject(
                    554,
                    "5.6.0",
                    "This message needs secure delivery, but its body uses 8-bit characters that are not UTF-8, \
                     so it cannot be held unaltered. Please resend it with standard encoding (UTF-8, \
                     quoted-printable or base64; most mail programs do this by default)."
                        .into(),
                ),
                decisions,
                message_ref: None,
            });
        }
    };
    // The sender's `[sms:+316…]` subject tag is removed from the held copy (see challenge::phone).
    let (raw, tag_phone, tag_invalid) = match crate::challenge::phone::subject_tag(&raw) {
        crate::challenge::phone::SubjectTag::None => (raw, None, false),
        crate::challenge::phone::SubjectTag::Valid(phone, stripped) => {
            (stripped, Some(phone), false)
        }
        crate::challenge::phone::SubjectTag::Invalid(number, stripped) => {
            tracing::warn!(
                sender,
                number,
                "invalid [sms:] subject tag removed; number ignored"
            );
            (stripped, None, true)
        }
    };
    let sha = sha256_hex(&raw);
    let idem_key = idem_key.unwrap_or_default();
    let message_ref = existing
        .map(|(id, _)| id)
        .unwrap_or_else(|| ids::new_id("h"));
    let sealed = gw.master.seal(&message_ref, &raw)?;
    let retention_days = settings
        .retention_days
        .unwrap_or_else(|| i64::from(config.hold.retention_days));
    let expires = now + retention_days * 86_400;
    let mut audit = decision_events(&message_ref, &sha, sender, &req, &decisions, &tls);
    // A number from the subject tag belongs to the one held recipient; with several it is ambiguous and
    // ignored (each sender then gets the phone link). A known number is never overwritten. Stored and
    // recorded in the hook's transaction.
    let held: Vec<&Decision> = decisions.iter().filter(|d| d.outcome.is_held()).collect();
    let tag_phone = match (tag_phone, held.as_slice()) {
        (Some(phone), [only]) => Some((only.recipient.as_str(), phone)),
        (Some(phone), several) => {
            audit.extend(several.iter().map(|d| {
                tag_event(
                    &message_ref,
                    sender,
                    d,
                    Some(&phone),
                    PhoneOutcome::Ambiguous,
                )
            }));
            None
        }
        (None, _) => {
            if tag_invalid {
                audit.extend(
                    held.iter()
                        .map(|d| tag_event(&message_ref, sender, d, None, PhoneOutcome::Invalid)),
                );
            }
            None
        }
    };
    gw.store
        .record_hook(&HookRecord {
            message_ref: &message_ref,
            idem_key: &idem_key,
            queue_id: req.context.queue.as_ref().map(|q| q.id.as_str()),
            sender,
            sha256: &sha,
            size: message.size,
            decisions: &decisions,
            sealed: Some(&sealed),
            now,
            hold_expires_at: expires,
            audit: &audit,
            tag_phone: tag_phone.as_ref().map(|(r, p)| (*r, p.as_str())),
        })
        .await?;

    let response = respond(&decisions, &message_ref);
    Ok(Handled {
        response,
        decisions,
        message_ref: Some(message_ref),
    })
}

/// Maps decisions (none of them Reject) onto the hook answer.
///
/// - nothing held → `accept` (with the correlation header when something goes out to an external
///   recipient);
/// - some held → `accept` + `deleteRecipient` for each held recipient;
/// - all held → `discard` with `250 2.0.0 Held for secure delivery (id …)`. Deleting every recipient
///   instead would leave an orphaned, never-delivered queue entry in Stalwart.
pub fn respond(decisions: &[Decision], message_ref: &str) -> Response {
    let held: Vec<&Decision> = decisions.iter().filter(|d| d.outcome.is_held()).collect();
    if !held.is_empty() && held.len() == decisions.len() {
        return Response::discard(format!(
            "Held for secure delivery (id {message_ref}); the recipient is asked to verify before it is released"
        ));
    }
    let mut modifications: Vec<Modification> = held
        .iter()
        .map(|d| Modification::DeleteRecipient {
            value: d.recipient.clone(),
        })
        .collect();
    if decisions.iter().any(|d| d.outcome == Outcome::Deliver) {
        modifications.push(Modification::AddHeader {
            name: CORRELATION_HEADER.into(),
            value: message_ref.to_string(),
        });
    }
    Response::accept(modifications)
}

/// The admin's settings for the sender's domain (`domain_settings`), as they apply to the hook: groups
/// offered to the policy (comma-separated when several) and the retention of held content. Looked up only
/// when something may be decided (`needed`); a database error fails the hook (Stalwart retries).
#[derive(Debug, Default)]
struct SenderSettings {
    groups: Option<String>,
    retention_days: Option<i64>,
}

async fn sender_settings(
    gw: &Gateway,
    sender: &str,
    needed: bool,
) -> Result<SenderSettings, SubmissionError> {
    let domain = domain_of(sender).trim_end_matches('.').to_ascii_lowercase();
    if !needed || domain.is_empty() {
        return Ok(SenderSettings::default());
    }
    let Some(row) = gw.store.get_settings(&domain).await? else {
        return Ok(SenderSettings::default());
    };
    Ok(SenderSettings {
        groups: Some(row.groups.join(",")).filter(|g| !g.is_empty()),
        // The admin API accepts 1 to 90; anything else in the table is ignored (config applies).
        retention_days: row.retention_days.filter(|d| (1..=90).contains(d)),
    })
}

fn tag_event(
    message_ref: &str,
    sender: &str,
    d: &Decision,
    phone: Option<&crate::challenge::phone::Phone>,
    outcome: PhoneOutcome,
) -> crate::audit::Event {
    crate::audit::Event::PhoneNumber {
        message_ref: Some(message_ref.to_string()),
        recipient: d.recipient.clone(),
        sender: sender.to_string(),
        source: crate::audit::PhoneSource::SubjectTag,
        outcome,
        phone: phone.map(|p| crate::audit::MaskedPhone::from_e164(p.as_str())),
    }
}

/// One audit event per decision, with the SmartTLS evidence of the recipient's domain.
fn decision_events(
    message_ref: &str,
    sha: &str,
    sender: &str,
    req: &Request,
    decisions: &[Decision],
    tls: &[(String, TlsFacts)],
) -> Vec<crate::audit::Event> {
    decisions
        .iter()
        .map(|d| crate::audit::Event::Decision {
            message_ref: message_ref.to_string(),
            sha256: sha.to_string(),
            sender: sender.to_string(),
            recipient: d.recipient.clone(),
            queue_id: req.context.queue.as_ref().map(|q| q.id.clone()),
            outcome: d.outcome,
            reasons: d.reasons.clone(),
            tls: tls
                .iter()
                .find(|(dom, _)| dom == domain_of(&d.recipient))
                .map(|(_, f)| f.clone()),
        })
        .collect()
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

fn tls_for<'a>(verdicts: &'a [(String, TlsFacts)], domain: &str) -> &'a TlsFacts {
    static MISSING: std::sync::OnceLock<TlsFacts> = std::sync::OnceLock::new();
    verdicts
        .iter()
        .find(|(d, _)| d == domain)
        .map(|(_, f)| f)
        .unwrap_or_else(|| MISSING.get_or_init(|| TlsFacts::unknown("SmartTLS task failed")))
}

fn sha256_hex(raw: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, raw))
}

/// Same sender, same recipients, same bytes (the Message-ID included): the same submission retried.
fn idempotency_key(sender: &str, recipients: &[&str], raw: &[u8]) -> String {
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
    use crate::stalwart::hook::Action;

    fn d(rcpt: &str, outcome: Outcome) -> Decision {
        Decision {
            recipient: rcpt.into(),
            outcome,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn all_held_is_discard_never_delete_all() {
        let r = respond(
            &[
                d("a@x.test", Outcome::Challenge),
                d("b@y.test", Outcome::Portal),
            ],
            "h-1",
        );
        assert_eq!(r.action, Action::Discard);
        assert!(r.modifications.is_empty());
        let resp = r.response.unwrap();
        assert_eq!((resp.status, resp.enhanced_status.as_str()), (250, "2.0.0"));
        assert!(resp.message.contains("h-1"));
    }

    #[test]
    fn mixed_deletes_held_and_tags_the_rest() {
        let r = respond(
            &[
                d("a@x.test", Outcome::Challenge),
                d("b@y.test", Outcome::Deliver),
            ],
            "h-2",
        );
        assert_eq!(r.action, Action::Accept);
        assert_eq!(
            r.modifications,
            vec![
                Modification::DeleteRecipient {
                    value: "a@x.test".into()
                },
                Modification::AddHeader {
                    name: CORRELATION_HEADER.into(),
                    value: "h-2".into()
                }
            ]
        );
    }

    #[test]
    fn held_with_local_recipient_is_accept() {
        let r = respond(
            &[
                d("a@x.test", Outcome::Portal),
                d("me@zorg.test", Outcome::Local),
            ],
            "h-3",
        );
        assert_eq!(r.action, Action::Accept);
        assert_eq!(
            r.modifications,
            vec![Modification::DeleteRecipient {
                value: "a@x.test".into()
            }]
        );
    }

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
}

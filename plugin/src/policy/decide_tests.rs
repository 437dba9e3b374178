//! Table-driven tests of the decision: every exemption source, TLS verdict, policy outcome, the local
//! domain, the retry rule and the per-message refusal of an unholdable body.

use super::*;
use crate::policy::{AdminReason, PeerSource, PolicyReason, Scope};

use crate::policy::ReasonCode as C;

const NOW: i64 = 1_000_000;
const RCPT: &str = "bob@example.test";

fn tls(status: TlsStatus) -> TlsFacts {
    TlsFacts {
        status,
        grade: None,
        reasons: match status {
            TlsStatus::Secure => vec![],
            _ => vec!["starttls_missing (mx.example.test)".into()],
        },
        nta_peer: None,
    }
}

fn said(requirement: Requirement) -> PolicyVerdict {
    PolicyVerdict {
        requirement: Some(requirement),
        reasons: vec![PolicyReason {
            requirement,
            text: format!("rule says {}", requirement.code()),
        }],
        ..Default::default()
    }
}

fn failed(before: Option<Requirement>) -> PolicyVerdict {
    PolicyVerdict {
        error: Some("cpu limit".into()),
        ..before.map(said).unwrap_or_default()
    }
}

/// `nta_portal_attachments('by link')`, after `before` (as the Sieve engine reports it: the requirement
/// at least 2FA).
fn by_link(before: Option<Requirement>) -> PolicyVerdict {
    let v = before.map(said).unwrap_or_default();
    PolicyVerdict {
        requirement: v.requirement.max(Some(Requirement::Require2fa)),
        attachments_by_link: Some("by link".into()),
        ..v
    }
}

fn verified(until: i64) -> Exemption {
    Exemption::Verified { until }
}

fn peer(source: PeerSource) -> Exemption {
    Exemption::Peer {
        provider: "Acme Mail".into(),
        source,
    }
}

fn admin(scope: Scope, database: bool) -> Exemption {
    Exemption::Admin {
        scope,
        reason: if database {
            AdminReason::Database("contract 12".into())
        } else {
            AdminReason::Config
        },
    }
}

fn address() -> Scope {
    Scope::Address(RCPT.into())
}

fn domain() -> Scope {
    Scope::Domain("example.test".into())
}

struct Case {
    name: &'static str,
    local: bool,
    policy: PolicyVerdict,
    default: Requirement,
    exemptions: Vec<Exemption>,
    tls: TlsStatus,
    earlier: Option<Outcome>,
    outcome: Outcome,
    codes: &'static [ReasonCode],
    /// The text of the exemption (or retry) reason, when one is expected.
    text: Option<&'static str>,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            local: false,
            policy: PolicyVerdict::default(),
            default: Requirement::Require2fa,
            exemptions: vec![],
            tls: TlsStatus::Secure,
            earlier: None,
            outcome: Outcome::Challenge,
            codes: &[],
            text: None,
        }
    }
}

#[rustfmt::skip]
fn policy_cases() -> Vec<Case> {
    use Outcome::*;
    use Requirement as R;
    use TlsStatus::*;
    vec![
        Case { name: "local domain", local: true, exemptions: vec![verified(NOW + 1)], earlier: None,
               outcome: Local, codes: &[C::LocalDomain], ..Default::default() },
        // No policy decision: the configured default.
        Case { name: "none, default require, secure", outcome: Challenge,
               codes: &[C::PolicyRequire2fa, C::TlsSecure], ..Default::default() },
        Case { name: "none, default require, insecure", tls: Insecure, outcome: Portal,
               codes: &[C::PolicyRequire2fa, C::TlsInsecure], ..Default::default() },
        Case { name: "none, default require, unknown", tls: Unknown, outcome: Challenge,
               codes: &[C::PolicyRequire2fa, C::TlsUnknown], ..Default::default() },
        Case { name: "none, default exempt, secure", default: R::Exempt, outcome: Deliver,
               codes: &[C::PolicyExempt, C::TlsSecure], ..Default::default() },
        Case { name: "none, default exempt, insecure", default: R::Exempt, tls: Insecure, outcome: Portal,
               codes: &[C::PolicyExempt, C::TlsInsecure], ..Default::default() },
        Case { name: "none, default exempt, unknown", default: R::Exempt, tls: Unknown, outcome: Portal,
               codes: &[C::PolicyExempt, C::TlsUnknown], ..Default::default() },
        // The policy decides.
        Case { name: "policy exempt: exemptions not consulted", policy: said(R::Exempt),
               exemptions: vec![verified(NOW + 1)], outcome: Deliver,
               codes: &[C::PolicyExempt, C::TlsSecure], ..Default::default() },
        Case { name: "policy exempt, unknown", policy: said(R::Exempt), tls: Unknown, outcome: Portal,
               codes: &[C::PolicyExempt, C::TlsUnknown], ..Default::default() },
        Case { name: "policy require 2FA beats default exempt", policy: said(R::Require2fa),
               default: R::Exempt, outcome: Challenge,
               codes: &[C::PolicyRequire2fa, C::TlsSecure], ..Default::default() },
        Case { name: "policy portal: no exemption, no TLS step", policy: said(R::Portal),
               exemptions: vec![verified(NOW + 1)], outcome: Portal,
               codes: &[C::PolicyPortal], ..Default::default() },
        Case { name: "policy reject", policy: said(R::Reject), exemptions: vec![peer(PeerSource::ConfigList)],
               outcome: Reject, codes: &[C::PolicyReject], ..Default::default() },
        // A policy error is never an exemption.
        Case { name: "policy error", policy: failed(None), default: R::Exempt, outcome: Challenge,
               codes: &[C::PolicyError, C::TlsSecure], ..Default::default() },
        Case { name: "policy error after exempt", policy: failed(Some(R::Exempt)), outcome: Challenge,
               codes: &[C::PolicyExempt, C::PolicyError, C::TlsSecure], ..Default::default() },
        Case { name: "policy error after portal stays portal", policy: failed(Some(R::Portal)),
               outcome: Portal, codes: &[C::PolicyPortal, C::PolicyError], ..Default::default() },
        Case { name: "policy error, then an exemption", policy: failed(None),
               exemptions: vec![verified(NOW + 1)], outcome: Deliver,
               codes: &[C::PolicyError, C::Verified, C::TlsSecure], ..Default::default() },
    ]
}

#[rustfmt::skip]
fn exemption_cases() -> Vec<Case> {
    use Outcome::*;
    use TlsStatus::*;
    vec![
        Case { name: "verified, current", exemptions: vec![verified(NOW + 1)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::Verified, C::TlsSecure],
               text: Some("recipient verified until 1970-01-12T13:46:41Z"), ..Default::default() },
        Case { name: "verified, expired", exemptions: vec![verified(NOW)], outcome: Challenge,
               codes: &[C::PolicyRequire2fa, C::TlsSecure], ..Default::default() },
        Case { name: "verified, insecure", exemptions: vec![verified(NOW + 1)], tls: Insecure,
               outcome: Portal, codes: &[C::PolicyRequire2fa, C::Verified, C::TlsInsecure],
               ..Default::default() },
        Case { name: "verified, unknown", exemptions: vec![verified(NOW + 1)], tls: Unknown,
               outcome: Portal, codes: &[C::PolicyRequire2fa, C::Verified, C::TlsUnknown],
               ..Default::default() },
        Case { name: "peer, config list", exemptions: vec![peer(PeerSource::ConfigList)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::NtaPeer, C::TlsSecure],
               text: Some("recipient domain is an NTA 7516 peer (Acme Mail, admin peer list)"),
               ..Default::default() },
        Case { name: "peer, database list", exemptions: vec![peer(PeerSource::DatabaseList)],
               outcome: Deliver, codes: &[C::PolicyRequire2fa, C::NtaPeer, C::TlsSecure],
               text: Some("recipient domain is an NTA 7516 peer (Acme Mail, admin peer list)"),
               ..Default::default() },
        Case { name: "peer, DNS record", exemptions: vec![peer(PeerSource::DnsRecord)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::NtaPeer, C::TlsSecure],
               text: Some("recipient domain is an NTA 7516 peer (Acme Mail, v=NTA7516-1 record)"),
               ..Default::default() },
        Case { name: "peer: a list before DNS",
               exemptions: vec![peer(PeerSource::DnsRecord), peer(PeerSource::DatabaseList)],
               outcome: Deliver, codes: &[C::PolicyRequire2fa, C::NtaPeer, C::TlsSecure],
               text: Some("recipient domain is an NTA 7516 peer (Acme Mail, admin peer list)"),
               ..Default::default() },
        Case { name: "peer, insecure", exemptions: vec![peer(PeerSource::DnsRecord)], tls: Insecure,
               outcome: Portal, codes: &[C::PolicyRequire2fa, C::NtaPeer, C::TlsInsecure],
               ..Default::default() },
        Case { name: "admin address, config", exemptions: vec![admin(address(), false)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::AdminExemption, C::TlsSecure],
               text: Some("admin exemption: address bob@example.test in the configuration"),
               ..Default::default() },
        Case { name: "admin domain, config", exemptions: vec![admin(domain(), false)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::AdminExemption, C::TlsSecure],
               text: Some("admin exemption: domain example.test in the configuration"),
               ..Default::default() },
        Case { name: "admin address, database", exemptions: vec![admin(address(), true)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::AdminExemption, C::TlsSecure],
               text: Some("admin exemption: address bob@example.test: contract 12"),
               ..Default::default() },
        Case { name: "admin domain, database", exemptions: vec![admin(domain(), true)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::AdminExemption, C::TlsSecure],
               text: Some("admin exemption: domain example.test: contract 12"), ..Default::default() },
        Case { name: "admin: config domain before database address",
               exemptions: vec![admin(address(), true), admin(domain(), false)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::AdminExemption, C::TlsSecure],
               text: Some("admin exemption: domain example.test in the configuration"),
               ..Default::default() },
        Case { name: "admin, unknown", exemptions: vec![admin(domain(), true)], tls: Unknown,
               outcome: Portal, codes: &[C::PolicyRequire2fa, C::AdminExemption, C::TlsUnknown],
               ..Default::default() },
        // Precedence between kinds.
        Case { name: "verified before peer and admin",
               exemptions: vec![admin(address(), false), peer(PeerSource::ConfigList), verified(NOW + 1)],
               outcome: Deliver, codes: &[C::PolicyRequire2fa, C::Verified, C::TlsSecure],
               ..Default::default() },
        Case { name: "peer before admin",
               exemptions: vec![admin(address(), false), peer(PeerSource::DnsRecord)],
               outcome: Deliver, codes: &[C::PolicyRequire2fa, C::NtaPeer, C::TlsSecure],
               ..Default::default() },
        Case { name: "an expired verification leaves the admin exemption",
               exemptions: vec![verified(NOW - 1), admin(domain(), true)], outcome: Deliver,
               codes: &[C::PolicyRequire2fa, C::AdminExemption, C::TlsSecure], ..Default::default() },
    ]
}

/// Attachments by link: always held (no exemption lifts the 2FA the link asks for), a stricter decision
/// stays.
#[rustfmt::skip]
fn by_link_cases() -> Vec<Case> {
    use Outcome::*;
    use Requirement as R;
    use TlsStatus::*;
    vec![
        Case { name: "by link, secure", policy: by_link(None), outcome: Challenge,
               codes: &[C::AttachmentsByLink, C::TlsSecure], ..Default::default() },
        Case { name: "by link after exempt, verified, peer, admin", policy: by_link(Some(R::Exempt)),
               exemptions: vec![verified(NOW + 1), peer(PeerSource::ConfigList), admin(domain(), false)],
               outcome: Challenge, codes: &[C::PolicyExempt, C::AttachmentsByLink, C::TlsSecure],
               ..Default::default() },
        Case { name: "by link, default exempt, unknown TLS", policy: by_link(None), default: R::Exempt,
               tls: Unknown, outcome: Challenge, codes: &[C::AttachmentsByLink, C::TlsUnknown],
               ..Default::default() },
        Case { name: "by link, insecure", policy: by_link(None), tls: Insecure, outcome: Portal,
               codes: &[C::AttachmentsByLink, C::TlsInsecure], ..Default::default() },
        Case { name: "by link, portal stays", policy: by_link(Some(R::Portal)), outcome: Portal,
               codes: &[C::PolicyPortal, C::AttachmentsByLink], ..Default::default() },
        Case { name: "by link, reject stays", policy: by_link(Some(R::Reject)), outcome: Reject,
               codes: &[C::PolicyReject, C::AttachmentsByLink], ..Default::default() },
        Case { name: "by link, another policy reports exempt",
               policy: PolicyVerdict { requirement: Some(R::Exempt), ..by_link(None) },
               exemptions: vec![verified(NOW + 1)], outcome: Challenge,
               codes: &[C::AttachmentsByLink, C::TlsSecure], ..Default::default() },
    ]
}

#[rustfmt::skip]
fn retry_cases() -> Vec<Case> {
    use Outcome::*;
    use Requirement as R;
    vec![
        Case { name: "already held as portal, now deliverable", exemptions: vec![verified(NOW + 1)],
               earlier: Some(Portal), outcome: Portal,
               codes: &[C::PolicyRequire2fa, C::Verified, C::TlsSecure, C::AlreadyHeld],
               text: Some("already held as portal by an earlier attempt"), ..Default::default() },
        Case { name: "already held as challenge, now rejected", policy: said(R::Reject),
               earlier: Some(Challenge), outcome: Challenge, codes: &[C::PolicyReject, C::AlreadyHeld],
               text: Some("already held as challenge by an earlier attempt"), ..Default::default() },
        Case { name: "already held the same way: no extra reason", earlier: Some(Challenge),
               outcome: Challenge, codes: &[C::PolicyRequire2fa, C::TlsSecure], ..Default::default() },
    ]
}

fn input<'a>(c: &'a Case, tls_facts: &'a TlsFacts) -> RecipientInput<'a> {
    RecipientInput {
        recipient: RCPT,
        is_local: c.local,
        policy: &c.policy,
        default_requirement: c.default,
        exemptions: &c.exemptions,
        tls: tls_facts,
        earlier_hold: c.earlier,
        now: NOW,
        stalwart: StalwartGate::Open,
    }
}

fn cases() -> Vec<Case> {
    [
        policy_cases(),
        exemption_cases(),
        by_link_cases(),
        retry_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn decide_table() {
    for c in cases() {
        let tls_facts = tls(c.tls);
        let d = decide(&input(&c, &tls_facts));
        assert_eq!(d.recipient, RCPT, "{}", c.name);
        assert_eq!(d.outcome, c.outcome, "{}: {d:?}", c.name);
        let codes: Vec<ReasonCode> = d.reasons.iter().map(|r| r.code).collect();
        assert_eq!(codes, c.codes, "{}: {d:?}", c.name);
        if let Some(text) = c.text {
            let exemption_or_retry = d
                .reasons
                .iter()
                .rev()
                .find(|r| matches!(r.step, Step::Exemption | Step::Hold))
                .unwrap_or_else(|| panic!("{}: no exemption reason", c.name));
            assert_eq!(exemption_or_retry.text, text, "{}", c.name);
        }
        let attachments = match (c.local, &c.policy.attachments_by_link) {
            (false, Some(_)) => Attachments::ByLink,
            _ => Attachments::Attached,
        };
        assert_eq!(d.attachments, attachments, "{}", c.name);
        if attachments == Attachments::ByLink {
            assert!(
                d.outcome.is_held() || d.outcome == Outcome::Reject,
                "{}",
                c.name
            );
        }
        // Never delivered unless the servers pass SmartTLS.
        if c.tls != TlsStatus::Secure {
            assert_ne!(d.outcome, Outcome::Deliver, "{}", c.name);
        }
    }
}

/// While Stalwart is unsafe or unknown, only what would be delivered now changes: it is held for the
/// portal with the reason; held, local and refused recipients stay as they were.
#[test]
fn an_unsafe_stalwart_holds_what_would_leave_now() {
    let secure = tls(TlsStatus::Secure);
    let exempt = Case {
        policy: said(Requirement::Exempt),
        ..Default::default()
    };
    let local = Case {
        local: true,
        ..Default::default()
    };
    let rejected = Case {
        policy: said(Requirement::Reject),
        ..Default::default()
    };
    for (gate, code) in [
        (StalwartGate::Unsafe, C::StalwartUnsafe),
        (StalwartGate::Unknown, C::StalwartUnknown),
    ] {
        let mut i = input(&exempt, &secure);
        assert_eq!(decide(&i).outcome, Outcome::Deliver);
        i.stalwart = gate;
        let d = decide(&i);
        assert_eq!(d.outcome, Outcome::Portal, "{gate:?}");
        assert_eq!(d.reasons.last().unwrap().code, code);
        for (c, outcome) in [
            (&local, Outcome::Local),
            (&rejected, Outcome::Reject),
            (&Case::default(), Outcome::Challenge),
        ] {
            let mut i = input(c, &secure);
            i.stalwart = gate;
            let d = decide(&i);
            assert_eq!(d.outcome, outcome, "{gate:?} {}", c.name);
            assert!(d.reasons.iter().all(|r| r.code != code));
        }
    }
}

#[test]
fn reason_texts_of_policy_and_tls_steps() {
    let tls_facts = tls(TlsStatus::Insecure);
    let c = Case {
        policy: failed(None),
        ..Default::default()
    };
    let d = decide(&input(&c, &tls_facts));
    assert_eq!(
        d.summary(),
        "policy failed, 2FA required: cpu limit; \
         recipient servers fail SmartTLS: starttls_missing (mx.example.test)"
    );
    let c = Case::default();
    let tls_facts = tls(TlsStatus::Unknown);
    assert_eq!(
        decide(&input(&c, &tls_facts)).summary(),
        "no policy decision; default is require_2fa; \
         recipient TLS status unknown, never delivered unverified: starttls_missing (mx.example.test)"
    );
}

fn decision(rcpt: &str, outcome: Outcome) -> Decision {
    Decision {
        recipient: rcpt.into(),
        outcome,
        reasons: vec![],
        attachments: Attachments::Attached,
    }
}

#[test]
fn an_unholdable_body_rejects_every_held_recipient() {
    use Outcome::*;
    let all = || {
        vec![
            decision("a@x.test", Deliver),
            decision("b@y.test", Challenge),
            decision("c@z.test", Portal),
            decision("me@zorg.test", Local),
        ]
    };
    assert_eq!(
        refuse_unholdable(all(), true),
        all(),
        "exact copy: unchanged"
    );
    let refused = refuse_unholdable(all(), false);
    let outcomes: Vec<Outcome> = refused.iter().map(|d| d.outcome).collect();
    assert_eq!(outcomes, [Deliver, Reject, Reject, Local]);
    for d in &refused {
        assert_eq!(
            d.has(ReasonCode::Unholdable8bitBody),
            d.outcome == Reject,
            "{d:?}"
        );
    }
    // Nothing held, or refused already: nothing to hold, nothing changes.
    let nothing_held = vec![
        decision("a@x.test", Deliver),
        decision("me@zorg.test", Local),
    ];
    assert_eq!(refuse_unholdable(nothing_held.clone(), false), nothing_held);
    let rejected = vec![
        decision("a@x.test", Reject),
        decision("b@y.test", Challenge),
    ];
    assert_eq!(refuse_unholdable(rejected.clone(), false), rejected);
}

#[test]
fn decide_all_keeps_envelope_order_and_applies_the_body_rule() {
    let secure = tls(TlsStatus::Secure);
    let cases = [
        Case {
            exemptions: vec![verified(NOW + 1)],
            ..Default::default()
        },
        Case::default(),
    ];
    let inputs = cases.iter().map(|c| input(c, &secure));
    let d = decide_all(inputs.clone(), true);
    assert_eq!(
        d.iter().map(|d| d.outcome).collect::<Vec<_>>(),
        [Outcome::Deliver, Outcome::Challenge]
    );
    let d = decide_all(inputs, false);
    assert_eq!(
        d.iter().map(|d| d.outcome).collect::<Vec<_>>(),
        [Outcome::Deliver, Outcome::Reject]
    );
    assert!(d[1].has(ReasonCode::Unholdable8bitBody));
}

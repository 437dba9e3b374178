use super::*;
use crate::policy::{DkimCheck, DmarcCheck, PeerSource, PolicyReason, TlsVersion};

fn auth(dmarc: AuthResult, policy: DmarcPolicy) -> AuthResults {
    AuthResults {
        spf_mail_from: AuthResult::Pass,
        spf_helo: AuthResult::None,
        dkim: vec![DkimCheck {
            result: AuthResult::Pass,
            domain: "peer.test".into(),
            selector: "s1".into(),
            detail: None,
        }],
        dmarc: DmarcCheck {
            result: dmarc,
            domain: "peer.test".into(),
            policy,
            detail: None,
        },
        arc: AuthResult::None,
        body_altered: false,
    }
}

fn tls(v: TlsVersion) -> SessionTls {
    SessionTls {
        version: v,
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
    }
}

fn peer() -> Peer {
    Peer::Yes {
        provider: "Zorgmail".into(),
        source: PeerSource::DnsRecord,
    }
}

fn run(
    t: Option<&SessionTls>,
    a: &AuthResults,
    p: &Peer,
    rules: &InboundConfig,
    v: &[(&str, PolicyVerdict)],
) -> InboundDecision {
    decide_inbound(
        InboundInput {
            tls: t,
            auth: a,
            from_domain: "peer.test",
            peer: p,
        },
        rules,
        v,
    )
}

fn quarantining() -> InboundConfig {
    InboundConfig {
        quarantine_mailbox: Some("quarantaine@zorg.test".into()),
        ..InboundConfig::default()
    }
}

#[test]
fn a_peer_with_tls_and_dmarc_pass_is_accepted() {
    let t = tls(TlsVersion::Tls13);
    let d = run(
        Some(&t),
        &auth(AuthResult::Pass, DmarcPolicy::Reject),
        &peer(),
        &InboundConfig::default(),
        &[],
    );
    assert_eq!(d.action, Action::Accept);
    assert!(d.has(InboundCode::ChecksPassed));
}

#[test]
fn a_peer_without_tls_is_refused_or_quarantined_as_configured() {
    let a = auth(AuthResult::Pass, DmarcPolicy::None);
    let d = run(None, &a, &peer(), &InboundConfig::default(), &[]);
    assert_eq!(d.action, Action::Reject);
    assert!(d.has(InboundCode::PeerWithoutTls));
    let old = tls(TlsVersion::Tls11);
    let rules = InboundConfig {
        peer_failure: InboundAction::Quarantine,
        ..quarantining()
    };
    let d = run(Some(&old), &a, &peer(), &rules, &[]);
    assert_eq!(d.action, Action::Quarantine);
    assert!(d.summary().contains("TLSv1.1"), "{}", d.summary());
}

#[test]
fn a_peer_failing_dmarc_is_refused_and_a_temperror_retried() {
    let t = tls(TlsVersion::Tls12);
    let d = run(
        Some(&t),
        &auth(AuthResult::Fail, DmarcPolicy::None),
        &peer(),
        &InboundConfig::default(),
        &[],
    );
    assert_eq!(d.action, Action::Reject);
    assert!(d.has(InboundCode::PeerDmarcFail));
    let d = run(
        Some(&t),
        &auth(AuthResult::TempError, DmarcPolicy::None),
        &peer(),
        &InboundConfig::default(),
        &[],
    );
    assert_eq!(d.action, Action::Tempfail);
}

#[test]
fn an_unknown_peer_status_matters_only_when_a_check_fails() {
    let t = tls(TlsVersion::Tls13);
    let unknown = Peer::Unknown {
        reason: "timeout".into(),
    };
    let ok = auth(AuthResult::Pass, DmarcPolicy::None);
    let rules = InboundConfig::default();
    assert_eq!(
        run(Some(&t), &ok, &unknown, &rules, &[]).action,
        Action::Accept
    );
    assert_eq!(
        run(None, &ok, &unknown, &rules, &[]).action,
        Action::Tempfail
    );
}

#[test]
fn dmarc_failure_follows_the_senders_policy_and_the_config() {
    let t = tls(TlsVersion::Tls13);
    let rules = InboundConfig::default();
    let reject = auth(AuthResult::Fail, DmarcPolicy::Reject);
    let d = run(Some(&t), &reject, &Peer::No, &rules, &[]);
    assert_eq!(d.action, Action::Reject);
    assert!(d.has(InboundCode::DmarcFailReject));
    let quarantine = auth(AuthResult::Fail, DmarcPolicy::Quarantine);
    let d = run(Some(&t), &quarantine, &Peer::No, &rules, &[]);
    assert_eq!(
        d.action,
        Action::Accept,
        "default for p=quarantine: the header says it"
    );
    assert!(d.has(InboundCode::DmarcFailQuarantine));
    let none = auth(AuthResult::Fail, DmarcPolicy::None);
    assert!(run(Some(&t), &none, &Peer::No, &rules, &[]).has(InboundCode::ChecksPassed));
    // Without TLS and not a peer: ordinary internet mail, accepted.
    let ok = auth(AuthResult::Pass, DmarcPolicy::Reject);
    assert_eq!(
        run(None, &ok, &Peer::No, &rules, &[]).action,
        Action::Accept
    );
}

#[test]
fn the_policy_can_quarantine_or_refuse_and_its_errors_quarantine() {
    let t = tls(TlsVersion::Tls13);
    let ok = auth(AuthResult::Pass, DmarcPolicy::None);
    let verdict = |requirement, text: &str| PolicyVerdict {
        requirement: Some(requirement),
        reasons: vec![PolicyReason {
            requirement,
            text: text.into(),
        }],
        ..PolicyVerdict::default()
    };
    let q = [(
        "a@zorg.test",
        verdict(Requirement::Quarantine, "BSN from outside"),
    )];
    let d = run(Some(&t), &ok, &Peer::No, &quarantining(), &q);
    assert_eq!(d.action, Action::Quarantine);
    // No mailbox to quarantine into: refused, never dropped.
    let d = run(Some(&t), &ok, &Peer::No, &InboundConfig::default(), &q);
    assert_eq!(d.action, Action::Reject);
    assert!(d.has(InboundCode::QuarantineUnavailable));
    let r = [
        ("a@zorg.test", verdict(Requirement::Exempt, "fine")),
        ("b@zorg.test", verdict(Requirement::Reject, "no")),
    ];
    assert_eq!(
        run(Some(&t), &ok, &Peer::No, &quarantining(), &r).action,
        Action::Reject
    );
    let ignored = [("a@zorg.test", verdict(Requirement::Require2fa, "2fa"))];
    let d = run(Some(&t), &ok, &Peer::No, &quarantining(), &ignored);
    assert_eq!(d.action, Action::Accept);
    assert!(d.has(InboundCode::PolicyIgnored));
    let failed = [(
        "a@zorg.test",
        PolicyVerdict {
            error: Some("CPU limit".into()),
            ..PolicyVerdict::default()
        },
    )];
    let d = run(Some(&t), &ok, &Peer::No, &quarantining(), &failed);
    assert_eq!(d.action, Action::Quarantine);
    assert!(d.has(InboundCode::PolicyError));
}

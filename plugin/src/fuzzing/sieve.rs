//! `sieve_policy`: a policy script (the bytes before the first NUL) compiled and checked by
//! `nta7516_sieve`, and when it compiles, evaluated against the message after the NUL for two
//! recipients with different facts — in the library and through the gateway's policy seam.

use std::path::Path;

use nta7516_sieve::{Facts, Limits, Policy, PreparedMessage, Requirement, Verdict};

use super::split;
use crate::policy::{sieve::SievePolicy, Policy as _, PolicyFacts};

pub fn sieve_policy(data: &[u8]) {
    let (src, message) = split(data, b"\0");
    let src = String::from_utf8_lossy(src);
    let limits = Limits::default();
    let policy = match Policy::compile(&src, &limits) {
        Ok(p) => p,
        Err(e) => {
            let lines = src.split('\n').count();
            assert!(e.line >= 1 && e.column >= 1, "position {e} is not 1-based");
            assert!(e.line <= lines + 1, "line {} of {lines}", e.line);
            assert!(SievePolicy::compile(&src, Path::new("p.sieve")).is_err());
            return;
        }
    };
    let prepared = PreparedMessage::new(message);
    let recipients = recipients();
    for (rcpt, facts) in &recipients {
        let v = policy.evaluate(&prepared, "sender@example.nl", rcpt, facts);
        fail_closed(&v, &limits);
        // The message's scans are cached after the first recipient: the answer must not change.
        let again = policy.evaluate(&prepared, "sender@example.nl", rcpt, facts);
        assert_eq!(v, again, "evaluating twice gave two verdicts");
    }
    gateway(&src, message);
}

/// A secure peer with a verified recipient, and an insecure domain nobody knows.
fn recipients() -> [(&'static str, Facts); 2] {
    let secure = Facts {
        tls: Some("secure".into()),
        tls_grade: Some("good".into()),
        peer: true,
        peer_provider: Some("Provider".into()),
        verified_until: Some(4_102_444_800),
        phone_known: true,
        sender_group: Some("nta".into()),
        size: Some(1234),
        ..Facts::default()
    };
    let insecure = Facts {
        tls: Some("insecure".into()),
        ..Facts::default()
    };
    [("a@peer.example", secure), ("b@other.example", insecure)]
}

/// The strictest decision wins, every reason is kept, an error is at least "2FA required".
fn fail_closed(v: &Verdict, limits: &Limits) {
    let strictest = v.reasons.iter().map(|r| r.requirement).max();
    assert_eq!(
        v.requirement, strictest,
        "the requirement is not the strictest reason"
    );
    if v.error.is_some() {
        assert!(
            v.requirement >= Some(Requirement::Require2fa),
            "an error let mail through"
        );
    }
    assert!(
        v.reasons.len() <= limits.cpu_limit + 1,
        "more reasons than instructions"
    );
    for (i, g) in v.groups.iter().enumerate() {
        assert!(
            !g.trim().is_empty() && !v.groups[..i].contains(g),
            "group {g:?}"
        );
    }
}

/// The same script behind the gateway's seam: one verdict per recipient, the error kept.
fn gateway(src: &str, message: &[u8]) {
    let policy = SievePolicy::compile(src, Path::new("p.sieve")).expect("it compiled above");
    let facts = PolicyFacts {
        tls: Some("insecure".into()),
        recipient_domain: "other.example".into(),
        size: message.len(),
        ..PolicyFacts::default()
    };
    let verdicts = policy.evaluate(
        message,
        "sender@example.nl",
        &[
            ("a@other.example", facts.clone()),
            ("b@other.example", facts),
        ],
    );
    assert_eq!(verdicts.len(), 2, "one verdict per recipient");
    for v in &verdicts {
        if v.error.is_some() {
            assert!(v.requirement >= Some(crate::policy::Requirement::Require2fa));
        }
    }
}

//! The three example policies in config/policies/, every branch.

use std::path::Path;

use nta7516_sieve::{Facts, Limits, Policy, PreparedMessage, Requirement, Verdict};

fn policy(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/policies")
        .join(name);
    let src = std::fs::read_to_string(&path).unwrap();
    Policy::compile(&src, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn msg(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Dr. A <arts@ziekenhuis.nl>\r\nTo: b@example.nl\r\nSubject: {subject}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn facts(pairs: &[(&str, &str)]) -> Facts {
    let mut f = Facts::default();
    f.set("tls", "secure").unwrap();
    for (k, v) in pairs {
        f.set(k, v).unwrap();
    }
    f
}

fn eval(p: &Policy, raw: &[u8], to: &str, f: &Facts) -> Verdict {
    let m = PreparedMessage::new(raw);
    p.evaluate(&m, "arts@ziekenhuis.nl", to, f)
}

fn assert_verdict(v: &Verdict, req: Requirement, reason: &str) {
    assert_eq!(v.error, None, "{v:?}");
    assert_eq!(v.requirement, Some(req), "{v:?}");
    assert!(
        v.reasons
            .iter()
            .any(|r| r.text.contains(reason) && r.requirement == req),
        "no {req:?} reason containing {reason:?}: {v:?}"
    );
}

#[test]
fn hospital_every_branch() {
    let p = policy("hospital.sieve");
    let m = msg("Uitslag", "Geachte collega, zie bijlage.");
    // 1. TLS insecure → portal (even for a partner domain: the first branch wins).
    let v = eval(&p, &m, "x@umc-partner.nl", &facts(&[("tls", "insecure")]));
    assert_verdict(&v, Requirement::Portal, "fail SmartTLS");
    assert_eq!(v.reasons.len(), 1);
    // 2. DMARC fail → reject.
    let v = eval(&p, &m, "x@example.nl", &facts(&[("dmarc", "fail")]));
    assert_verdict(&v, Requirement::Reject, "DMARC");
    // 3. NTA peer → exempt, with the provider in the reason.
    let v = eval(
        &p,
        &m,
        "x@peer.nl",
        &facts(&[("peer", "yes"), ("peer_provider", "ZorgMail")]),
    );
    assert_verdict(&v, Requirement::Exempt, "NTA 7516 peer (ZorgMail)");
    // 4. Contracted partner domains → exempt (case-insensitive domain match).
    for to in ["x@umc-partner.nl", "y@RegioLab.nl"] {
        let v = eval(&p, &m, to, &facts(&[]));
        assert_verdict(&v, Requirement::Exempt, "contracted partner domain");
    }
    // 5. Anything else → 2FA; unknown TLS (the default fact) is not "insecure".
    let v = eval(&p, &m, "x@gmail.com", &Facts::default());
    assert_verdict(&v, Requirement::Require2fa, "hospital default");
    // DMARC unknown reads "none": not refused.
    let v = eval(&p, &m, "x@gmail.com", &facts(&[("dmarc", "none")]));
    assert_eq!(v.requirement, Some(Requirement::Require2fa));
}

#[test]
fn gp_practice_every_branch() {
    let p = policy("gp-practice.sieve");
    let tagged = msg("Verwijzing [beveiligd]", "Zie bijlage.");
    // 1. Tagged + TLS insecure → portal.
    let v = eval(&p, &tagged, "x@example.nl", &facts(&[("tls", "insecure")]));
    assert_verdict(&v, Requirement::Portal, "fail SmartTLS");
    // 2. Tagged → 2FA; the tag is case-insensitive and also counts in the body, and "[secure]" too.
    for m in [
        tagged.clone(),
        msg("Verwijzing [BEVEILIGD]", "x"),
        msg("Verwijzing", "Dit bericht is [Beveiligd]."),
        msg("[secure] referral", "x"),
    ] {
        let v = eval(&p, &m, "x@example.nl", &facts(&[]));
        assert_verdict(&v, Requirement::Require2fa, "marked the message");
    }
    // 3. Privacy mailbox → 2FA and group.
    let plain = msg("Afspraak", "Tot dinsdag.");
    let v = eval(
        &p,
        &plain,
        "x@example.nl",
        &facts(&[("sender_group", "gdpr")]),
    );
    assert_verdict(&v, Requirement::Require2fa, "privacy mailbox");
    assert_eq!(v.groups, vec!["gdpr".to_string()]);
    // 4. Not tagged → exempt; "beveiligd" without brackets is not the tag.
    for m in [plain, msg("beveiligd verzenden?", "x")] {
        let v = eval(&p, &m, "x@example.nl", &facts(&[]));
        assert_verdict(&v, Requirement::Exempt, "opt-in");
    }
}

#[test]
fn lab_every_branch() {
    let p = policy("lab.sieve");
    let bsn = msg("Uitslag", "Patiënt BSN 123456782, HbA1c 48 mmol/mol.");
    // 2. BSN + TLS insecure → portal.
    let v = eval(&p, &bsn, "x@example.nl", &facts(&[("tls", "insecure")]));
    assert_verdict(&v, Requirement::Portal, "BSN");
    // 3. BSN to an NTA peer → exempt.
    let v = eval(&p, &bsn, "x@example.nl", &facts(&[("peer", "yes")]));
    assert_verdict(&v, Requirement::Exempt, "NTA 7516 peer");
    // 4. BSN → 2FA.
    let v = eval(&p, &bsn, "x@example.nl", &facts(&[]));
    assert_verdict(&v, Requirement::Require2fa, "contains a BSN");
    // 4b. BSN only in a base64 text attachment → 2FA.
    let v = eval(&p, &attachment_with_bsn(), "x@example.nl", &facts(&[]));
    assert_verdict(&v, Requirement::Require2fa, "contains a BSN");
    // 5. Phone number → 2FA.
    let v = eval(
        &p,
        &msg("Terugbellen", "Bel mij op 06-12345678."),
        "x@example.nl",
        &facts(&[]),
    );
    assert_verdict(&v, Requirement::Require2fa, "phone number");
    // 6. Nothing found → exempt: a number failing the 11-check, a BSN-like number in a URL and an IBAN.
    let clean = msg(
        "Factuur",
        "Order 123456789. Zie https://lab.example.nl/r/123456782 en betaal op NL91ABNA0417164300.",
    );
    let v = eval(&p, &clean, "x@example.nl", &facts(&[]));
    assert_verdict(&v, Requirement::Exempt, "no BSN");
    // 1. Oversize → reject, and strictest wins over the BSN decision; both reasons are kept.
    let v = eval(&p, &bsn, "x@example.nl", &facts(&[("size", "25000000")]));
    assert_verdict(&v, Requirement::Reject, "over 20 MB");
    assert_eq!(
        v.reasons.iter().map(|r| r.requirement).collect::<Vec<_>>(),
        vec![Requirement::Reject, Requirement::Require2fa]
    );
    // Just under the limit: numeric comparison, not text.
    let v = eval(&p, &clean, "x@example.nl", &facts(&[("size", "3000000")]));
    assert_eq!(v.requirement, Some(Requirement::Exempt));
    // Received mail of that size is not refused: the size rule is for sent mail only.
    let inbound = facts(&[("size", "25000000"), ("direction", "inbound")]);
    let v = eval(&p, &clean, "x@example.nl", &inbound);
    assert_eq!(v.requirement, Some(Requirement::Exempt));
}

fn attachment_with_bsn() -> Vec<u8> {
    // "Naam: J. Jansen\nBSN: 1112.22.333\n" in base64.
    let b64 = "TmFhbTogSi4gSmFuc2VuCkJTTjogMTExMi4yMi4zMzMK";
    format!(
        "From: lab@lab.nl\r\nTo: x@example.nl\r\nSubject: Uitslag\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nZie bijlage.\r\n--b1\r\n\
         Content-Type: text/plain; name=\"uitslag.txt\"\r\nContent-Disposition: attachment; filename=\"uitslag.txt\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b1--\r\n"
    )
    .into_bytes()
}

#[test]
fn multi_recipient_each_on_its_own() {
    // One message, three recipients: the hospital policy answers per recipient domain.
    let p = policy("hospital.sieve");
    let raw = msg("Uitslag", "x");
    let m = PreparedMessage::new(&raw);
    let recipients = [
        ("a@umc-partner.nl", facts(&[])),
        ("b@gmail.com", facts(&[])),
        ("c@insecure.nl", facts(&[("tls", "insecure")])),
    ];
    let refs: Vec<(&str, Facts)> = recipients.iter().map(|(r, f)| (*r, f.clone())).collect();
    let v = p.evaluate_all(&m, "arts@ziekenhuis.nl", &refs);
    let got: Vec<_> = v.iter().map(|v| v.requirement).collect();
    assert_eq!(
        got,
        vec![
            Some(Requirement::Exempt),
            Some(Requirement::Require2fa),
            Some(Requirement::Portal)
        ]
    );
}

//! Checks before deployment (line and column) and fail-closed evaluation.

use nta7516_sieve::{Facts, Limits, Policy, PreparedMessage, Requirement};

const HEAD: &str =
    "require [\"envelope\", \"environment\", \"vnd.stalwart.expressions\", \"vnd.nta7516\"];\n";

fn compile(body: &str) -> Result<Policy, nta7516_sieve::CompileError> {
    Policy::compile(&format!("{HEAD}{body}"), &Limits::default())
}

fn err(body: &str) -> (usize, usize, String) {
    let e = compile(body).expect_err("must not compile");
    (e.line, e.column, e.message)
}

fn run(p: &Policy, to: &str) -> nta7516_sieve::Verdict {
    let raw = b"Subject: x\r\n\r\nhello\r\n";
    p.evaluate(&PreparedMessage::new(raw), "a@b.nl", to, &Facts::default())
}

#[test]
fn syntax_error_has_line_and_column() {
    let (line, col, msg) = err("if true {\n  eval \"nta_exempt('x')\"\n}\n");
    // The missing ';' is noticed at the '}' on line 4.
    assert_eq!((line, col), (4, 1), "{msg}");
    let (line, col, msg) = err("if true { eval \"nta_exempt('x)\"; }\n");
    assert_eq!(line, 2, "{msg}");
    assert!(col > 1, "{col}");
    assert!(msg.to_lowercase().contains("expression"), "{msg}");
}

#[test]
fn unknown_test_is_refused_before_deployment() {
    let (line, col, msg) = err("if true { keep; }\nelsif has_bsn { keep; }\n");
    assert_eq!((line, col), (3, 7), "{msg}");
    assert!(msg.contains("unknown test \"has_bsn\""), "{msg}");
}

#[test]
fn unknown_command_position_is_found() {
    // sieve-rs reports unknown commands at 0:0; the checker finds the real place.
    let (line, col, msg) = err("\n  frobnicate;\n");
    assert_eq!((line, col), (3, 3), "{msg}");
    assert!(msg.contains("unknown command"), "{msg}");
}

#[test]
fn unknown_function_and_wrong_arity_are_refused() {
    let (line, _, msg) = err("eval \"nta_exempt('a')\";\neval \"nta_whitelist('x')\";\n");
    assert_eq!(line, 3, "{msg}");
    assert!(
        msg.contains("nta_whitelist") && msg.contains("nta_require_2fa"),
        "{msg}"
    );
    let (line, _, msg) = err("eval \"nta_exempt()\";\n");
    assert_eq!(line, 2, "{msg}");
    assert!(msg.contains("expected 1 arguments"), "{msg}");
}

#[test]
fn requires_are_checked() {
    let e = Policy::compile(
        "require [\"vnd.nta7516\", \"vnd.stalwart.expressions\",\n  \"fileinto\"];\n",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (2, 3), "{e}");
    assert!(
        e.message.contains("unsupported require \"fileinto\""),
        "{e}"
    );
    let e = Policy::compile("require \"environment\";\nkeep;\n", &Limits::default()).unwrap_err();
    assert!(e.message.contains("must require \"vnd.nta7516\""), "{e}");
    // Functions need vnd.stalwart.expressions (sieve-rs checks that).
    let e = Policy::compile(
        "require \"vnd.nta7516\";\neval \"nta_exempt('x')\";\n",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    let (line, col, msg) = err("if true {\n    redirect \"x@evil.example\";\n}\n");
    assert_eq!((line, col), (3, 5), "{msg}");
}

#[test]
fn size_and_nesting_limits() {
    let limits = Limits {
        max_script_size: 200,
        ..Limits::default()
    };
    let big = format!("{HEAD}{}", "eval \"nta_exempt('padding')\";\n".repeat(10));
    let e = Policy::compile(&big, &limits).unwrap_err();
    assert!(e.message.contains("over the limit of 200 bytes"), "{e}");
    assert_eq!(e.line, big[..200].matches('\n').count() + 1, "{e}");
    let deep = format!("{}keep;{}", "if true {".repeat(12), "}".repeat(12));
    let (_, _, msg) = err(&deep);
    assert!(msg.to_lowercase().contains("nested"), "{msg}");
}

#[test]
fn cpu_loop_fails_closed() {
    let src = "require [\"vnd.stalwart.while\", \"vnd.stalwart.expressions\", \"vnd.nta7516\", \"variables\"];\n\
               eval \"nta_exempt('partner')\";\nwhile \"1\" { set \"x\" \"y\"; }\n";
    let p = Policy::compile(
        src,
        &Limits {
            cpu_limit: 500,
            ..Limits::default()
        },
    )
    .unwrap();
    let v = run(&p, "x@partner.nl");
    // The exemption recorded before the overrun does not survive: 2FA, with the error as reason.
    assert_eq!(v.requirement, Some(Requirement::Require2fa), "{v:?}");
    assert!(v.error.as_deref().unwrap().contains("CPU limit"), "{v:?}");
    assert!(
        v.reasons
            .last()
            .unwrap()
            .text
            .contains("policy error: CPU limit"),
        "{v:?}"
    );
}

#[test]
fn runtime_error_fails_closed_but_keeps_stricter() {
    let p = compile("eval \"nta_portal('tls')\";\neval \"nta_group('')\";\n").unwrap();
    let v = run(&p, "x@y.nl");
    assert_eq!(v.requirement, Some(Requirement::Portal), "{v:?}");
    assert!(
        v.error.as_deref().unwrap().contains("empty group name"),
        "{v:?}"
    );
    let p = compile("eval \"nta_exempt('x')\";\neval \"nta_group('')\";\n").unwrap();
    assert_eq!(run(&p, "x@y.nl").requirement, Some(Requirement::Require2fa));
}

#[test]
fn strictest_wins_all_reasons_kept() {
    let p = compile(
        "eval \"nta_exempt('a')\";\neval \"nta_portal('b')\";\neval \"nta_require_2fa('c')\";\n\
         eval \"nta_group('oncology')\";\neval \"nta_group('oncology')\";\n",
    )
    .unwrap();
    let v = run(&p, "x@y.nl");
    assert_eq!(v.requirement, Some(Requirement::Portal));
    let got: Vec<_> = v
        .reasons
        .iter()
        .map(|r| (r.requirement, r.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Requirement::Exempt, "a"),
            (Requirement::Portal, "b"),
            (Requirement::Require2fa, "c")
        ]
    );
    assert_eq!(v.groups, vec!["oncology".to_string()]);
    let p = compile("eval \"nta_reject('r')\";\neval \"nta_exempt('e')\";\n").unwrap();
    assert_eq!(run(&p, "x@y.nl").requirement, Some(Requirement::Reject));
    // Nothing decided: no requirement (the gateway's default applies), no error.
    let p = compile("keep;\n").unwrap();
    let v = run(&p, "x@y.nl");
    assert_eq!((v.requirement, v.error, v.reasons.len()), (None, None, 0));
}

/// `nta_portal_attachments` marks the recipient and raises the requirement to at least 2FA: an
/// exemption does not lift it, a stricter decision stays; the first reason is kept. Without the call
/// nothing is marked.
#[test]
fn portal_attachments_asks_at_least_2fa() {
    let by_link = |body: &str| {
        let v = run(&compile(body).unwrap(), "x@y.nl");
        assert_eq!(v.error, None, "{v:?}");
        (v.requirement, v.attachments_by_link)
    };
    let on_portal = Some("on the portal".to_string());
    assert_eq!(
        by_link("eval \"nta_portal_attachments(' on the portal ')\";\n"),
        (Some(Requirement::Require2fa), on_portal.clone())
    );
    assert_eq!(
        by_link(
            "eval \"nta_exempt('partner')\";\n\
             eval \"nta_portal_attachments('on the portal')\";\n\
             eval \"nta_portal_attachments('second')\";\n"
        ),
        (Some(Requirement::Require2fa), on_portal.clone())
    );
    assert_eq!(
        by_link(
            "eval \"nta_portal_attachments('on the portal')\";\neval \"nta_exempt('late')\";\n"
        ),
        (Some(Requirement::Require2fa), on_portal.clone())
    );
    assert_eq!(
        by_link("eval \"nta_portal('tls')\";\neval \"nta_portal_attachments('on the portal')\";\n"),
        (Some(Requirement::Portal), on_portal)
    );
    assert_eq!(
        by_link("eval \"nta_portal_attachments('')\";\n")
            .1
            .as_deref(),
        Some("(no reason given)")
    );
    assert_eq!(
        by_link("eval \"nta_exempt('partner')\";\n"),
        (Some(Requirement::Exempt), None)
    );
    // Checked like the others: one argument.
    let (line, _, msg) = err("eval \"nta_portal_attachments()\";\n");
    assert_eq!(line, 2, "{msg}");
    assert!(msg.contains("expected 1 arguments"), "{msg}");
}

#[test]
fn one_recipient_per_context() {
    // envelope.to in expressions is only the first RCPT in sieve-rs; per-recipient contexts make it exact.
    let p = compile("eval \"nta_require_2fa('to ' + envelope.to)\";\n").unwrap();
    let raw = b"Subject: x\r\n\r\nhello\r\n";
    let m = PreparedMessage::new(raw);
    let v = p.evaluate_all(
        &m,
        "a@b.nl",
        &[
            ("one@x.nl", Facts::default()),
            ("two@y.nl", Facts::default()),
        ],
    );
    assert_eq!(v[0].reasons[0].text, "to one@x.nl");
    assert_eq!(v[1].reasons[0].text, "to two@y.nl");
}

#[test]
fn facts_reach_the_script() {
    let p = compile(
        "if allof(environment :is \"vnd.nta7516.phone_known\" \"yes\",\n\
         environment :is \"vnd.nta7516.ward\" \"icu\",\n\
         environment :is \"vnd.nta7516.recipient_domain\" \"y.nl\") { eval \"nta_exempt('ok')\"; }\n",
    )
    .unwrap();
    let mut f = Facts::default();
    f.set("phone_known", "yes").unwrap();
    f.set("WARD", "icu").unwrap();
    let raw = b"Subject: x\r\n\r\nhello\r\n";
    let v = p.evaluate(&PreparedMessage::new(raw), "a@b.nl", "x@Y.nl", &f);
    assert_eq!(v.requirement, Some(Requirement::Exempt), "{v:?}");
    let v = p.evaluate(
        &PreparedMessage::new(raw),
        "a@b.nl",
        "x@Y.nl",
        &Facts::default(),
    );
    assert_eq!(v.requirement, None, "{v:?}");
}

#[test]
fn policy_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn bsn_in_html_and_not_in_links() {
    let p = compile("if eval \"nta_has_bsn()\" { eval \"nta_require_2fa('bsn')\"; }\n").unwrap();
    let html = |body: &str| {
        format!("Subject: x\r\nContent-Type: text/html\r\n\r\n<html><body>{body}</body></html>\r\n")
            .into_bytes()
    };
    let yes = html("<p>BSN <b>123456782</b></p>");
    let no = html("<a href=\"https://x.nl/p/123456782\">dossier</a>");
    let m = PreparedMessage::new(&yes);
    assert_eq!(
        p.evaluate(&m, "a@b.nl", "x@y.nl", &Facts::default())
            .requirement,
        Some(Requirement::Require2fa)
    );
    let m = PreparedMessage::new(&no);
    assert_eq!(
        p.evaluate(&m, "a@b.nl", "x@y.nl", &Facts::default())
            .requirement,
        None
    );
}

#[test]
fn received_mail_can_be_quarantined_by_its_facts() {
    let p = compile(
        "if allof (environment :is \"vnd.nta7516.direction\" \"inbound\",\n\
         environment :is \"vnd.nta7516.dmarc\" \"fail\") {\n\
         eval \"nta_quarantine('DMARC fails')\";\n}\n\
         if environment :is \"vnd.nta7516.tls_version\" \"none\" { eval \"nta_require_2fa('plain')\"; }\n",
    )
    .unwrap();
    let raw = b"Subject: x\r\n\r\nhello\r\n";
    let msg = PreparedMessage::new(raw);
    let mut facts = Facts::default();
    facts.set("direction", "inbound").unwrap();
    facts.set("dmarc", "fail").unwrap();
    facts.set("tls_version", "TLSv1.3").unwrap();
    let v = p.evaluate(&msg, "a@b.nl", "c@zorg.nl", &facts);
    assert_eq!(v.requirement, Some(Requirement::Quarantine));
    assert_eq!(v.reasons[0].text, "DMARC fails");
    // Quarantine is stricter than the portal and milder than a refusal.
    assert!(Requirement::Portal < Requirement::Quarantine);
    assert!(Requirement::Quarantine < Requirement::Reject);
    // Outbound (the default direction) the same script quarantines nothing; TLS `none` is read.
    let v = p.evaluate(&msg, "a@b.nl", "c@zorg.nl", &Facts::default());
    assert_eq!(v.requirement, Some(Requirement::Require2fa));
    assert_eq!(
        Requirement::parse("quarantine"),
        Some(Requirement::Quarantine)
    );
}

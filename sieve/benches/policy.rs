//! Policy evaluation per recipient: the hospital example on a 50 KB message, the message prepared once
//! and reused (as the gateway does for every recipient of one message). Goal: ≤ 50 µs per recipient.
//!
//! `cargo bench -p nta7516-sieve --bench policy` prints the figures (no harness dependency).

use std::{hint::black_box, path::Path, time::Instant};

use nta7516_sieve::{Facts, Limits, Policy, PreparedMessage, Requirement};

fn message_50k() -> Vec<u8> {
    let mut body = String::new();
    let line =
        "Geachte collega, hierbij de uitslag van het laboratoriumonderzoek van uw patient. \r\n";
    while body.len() < 50 * 1024 {
        body.push_str(line);
    }
    format!(
        "From: Dr. A <arts@ziekenhuis.nl>\r\nTo: huisarts@example.nl\r\nSubject: Uitslag\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/policies/hospital.sieve");
    let policy =
        Policy::compile(&std::fs::read_to_string(path).unwrap(), &Limits::default()).unwrap();
    let raw = message_50k();
    let prepared = PreparedMessage::new(&raw);
    // Three recipients that take different branches: default 2FA (all five tests), partner, peer.
    let mut peer = Facts::default();
    peer.set("tls", "secure").unwrap();
    peer.set("peer_provider", "ZorgMail").unwrap();
    let mut plain = Facts::default();
    plain.set("tls", "secure").unwrap();
    let cases = [
        (
            "default 2FA (last branch)",
            "x@gmail.com",
            plain.clone(),
            Requirement::Require2fa,
        ),
        (
            "partner domain",
            "x@umc-partner.nl",
            plain,
            Requirement::Exempt,
        ),
        ("NTA peer", "x@peer.nl", peer, Requirement::Exempt),
    ];
    println!("hospital.sieve, {} byte message, prepared once", raw.len());
    for (name, rcpt, facts, expected) in &cases {
        let v = policy.evaluate(&prepared, "arts@ziekenhuis.nl", rcpt, facts);
        assert_eq!(v.requirement, Some(*expected), "{v:?}");
        for _ in 0..1000 {
            black_box(policy.evaluate(&prepared, "arts@ziekenhuis.nl", rcpt, facts));
        }
        let mut samples = Vec::new();
        for _ in 0..20 {
            let n = 2000;
            let t = Instant::now();
            for _ in 0..n {
                black_box(policy.evaluate(black_box(&prepared), "arts@ziekenhuis.nl", rcpt, facts));
            }
            samples.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "  {name:28} median {:6.2} µs/recipient  (min {:.2}, max {:.2})",
            samples[samples.len() / 2],
            samples[0],
            samples[samples.len() - 1]
        );
    }
    // Preparing (parsing) the message, once per message.
    let n = 500;
    let t = Instant::now();
    for _ in 0..n {
        black_box(PreparedMessage::new(black_box(&raw)));
    }
    println!(
        "  {:28} {:6.2} µs/message",
        "prepare (parse) once",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

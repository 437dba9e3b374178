//! `nta_record` and `mta_sts`: the DNS TXT records and the policy file SmartTLS reads from the recipient's
//! domain — `v=NTA7516-1` (`nta7516_smarttls::peer`), `v=STSv1` and the MTA-STS policy
//! (`nta7516_smarttls::mta_sts`). Each parse is rendered back and parsed again.

use nta7516_smarttls::{
    mta_sts::{self, Mode, Policy, MAX_AGE_LIMIT},
    peer::{self, NtaPeer, PeerStatus},
    DnssecStatus,
};

/// The month the records are judged at.
const NOW: (i32, u32) = (2026, 6);

pub fn nta_record(data: &[u8]) {
    let txt = String::from_utf8_lossy(data);
    let _ = peer::is_nta_record(&txt);
    let p = peer::parse(&txt, NOW, DnssecStatus::Secure);
    assert_eq!(p.record, txt);
    assert_eq!(p.is_peer, p.status == PeerStatus::Peer);
    assert_eq!(
        p.reason.is_none(),
        p.is_peer,
        "a reason exactly when not a peer"
    );
    if p.is_peer {
        assert!(p.enddate.is_some(), "a peer without an enddate");
    }
    for mx in &p.ntamx {
        assert!(!mx.host.is_empty(), "an ntamx entry without a host");
        assert!(!mx.host.ends_with('.') && !mx.host.contains(char::is_whitespace));
        assert_eq!(mx.host, mx.host.to_ascii_lowercase());
    }
    let again = peer::parse(&render_nta(&p), NOW, DnssecStatus::Secure);
    assert_eq!(
        (
            &again.provider,
            &again.startdate,
            &again.enddate,
            &again.ntamx
        ),
        (&p.provider, &p.startdate, &p.enddate, &p.ntamx),
        "render → parse changed the record"
    );
    assert_eq!((again.status, &again.reason), (p.status, &p.reason));
}

/// The record with the parsed fields only.
fn render_nta(p: &NtaPeer) -> String {
    let mut out = String::from("v=NTA7516-1");
    for (k, v) in [
        ("startdate", &p.startdate),
        ("enddate", &p.enddate),
        ("provider", &p.provider),
    ] {
        if let Some(v) = v {
            out.push_str(&format!(";{k}={v}"));
        }
    }
    for mx in &p.ntamx {
        out.push_str(&format!(";ntamx={} {}", mx.preference, mx.host));
    }
    out
}

pub fn mta_sts(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    record(&text);
    if let Ok(p) = mta_sts::parse_policy(&text) {
        policy(&p);
    }
}

fn record(text: &str) {
    let Some(id) = mta_sts::parse_record_id(text) else {
        return;
    };
    assert!((1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        mta_sts::record_id_of(&format!("v=STSv1; id={id};")).as_deref(),
        Ok(id.as_str())
    );
}

fn policy(p: &Policy) {
    assert!(
        p.max_age <= MAX_AGE_LIMIT,
        "max_age {} above the cap",
        p.max_age
    );
    assert!(p.mode == Mode::None || !p.mx.is_empty(), "mode without mx");
    for m in &p.mx {
        assert_eq!(*m, m.to_ascii_lowercase());
        match m.strip_prefix("*.") {
            Some(suffix) => {
                assert!(
                    p.lists(&format!("mx1.{suffix}")),
                    "{m} does not list mx1.{suffix}"
                );
            }
            None => assert!(p.lists(m), "{m} does not list itself"),
        }
    }
    let mode = match p.mode {
        Mode::Enforce => "enforce",
        Mode::Testing => "testing",
        Mode::None => "none",
    };
    let mut text = format!(
        "version: STSv1\r\nmode: {mode}\r\nmax_age: {}\r\n",
        p.max_age
    );
    for m in &p.mx {
        text.push_str(&format!("mx: {m}\r\n"));
    }
    assert_eq!(
        mta_sts::parse_policy(&text).as_ref(),
        Ok(p),
        "render → parse"
    );
}

//! NTA 7516 peer detection: the `v=NTA7516-1` TXT record on the recipient domain.
//!
//! `v=NTA7516-1;startdate=YYYY-MM;enddate=YYYY-MM;provider=<name>;ntamx=<pref> <host>;…`
//! (`ntamx` may repeat). A record whose `enddate` month has passed, or whose `startdate` month has
//! not begun, does not make the domain a peer; the fact says why.

use serde::Serialize;

use crate::dns::DnssecStatus;

/// An `ntamx` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NtaMx {
    /// Preference.
    pub preference: u16,
    /// Host.
    pub host: String,
}

/// Peer status of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    /// Valid now.
    Peer,
    /// `enddate` has passed.
    Expired,
    /// `startdate` is in the future.
    NotYetValid,
    /// Malformed record (missing or bad dates).
    Invalid,
}

/// The parsed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NtaPeer {
    /// The record text.
    pub record: String,
    /// `provider=`.
    pub provider: Option<String>,
    /// `startdate=` (YYYY-MM).
    pub startdate: Option<String>,
    /// `enddate=` (YYYY-MM).
    pub enddate: Option<String>,
    /// `ntamx=` entries.
    pub ntamx: Vec<NtaMx>,
    /// Status now.
    pub status: PeerStatus,
    /// `status == peer`.
    pub is_peer: bool,
    /// Why not a peer (or `None`).
    pub reason: Option<String>,
    /// DNSSEC status of the TXT answer (a policy may demand `secure`).
    pub dnssec: DnssecStatus,
}

fn parse_ym(s: &str) -> Option<(i32, u32)> {
    let (y, m) = s.trim().split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let y: i32 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    (1..=12).contains(&m).then_some((y, m))
}

/// Is `txt` an NTA 7516 record (`v=NTA7516-1`)?
pub fn is_nta_record(txt: &str) -> bool {
    txt.split(';')
        .next()
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("v=NTA7516-1"))
}

/// Parses a record, judged at `now` = (year, month).
pub fn parse(txt: &str, now: (i32, u32), dnssec: DnssecStatus) -> NtaPeer {
    let mut p = NtaPeer {
        record: txt.to_string(),
        provider: None,
        startdate: None,
        enddate: None,
        ntamx: vec![],
        status: PeerStatus::Invalid,
        is_peer: false,
        reason: None,
        dnssec,
    };
    for field in txt.split(';').skip(1) {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "startdate" => p.startdate = Some(v.to_string()),
            "enddate" => p.enddate = Some(v.to_string()),
            "provider" => p.provider = Some(v.to_string()),
            "ntamx" => {
                let mut it = v.split_whitespace();
                if let (Some(pref), Some(host)) = (it.next(), it.next()) {
                    let host = host.trim_end_matches('.').to_ascii_lowercase();
                    // A host of dots only names no host: the entry is ignored like a bad preference.
                    if let (Ok(preference), false) = (pref.parse(), host.is_empty()) {
                        p.ntamx.push(NtaMx { preference, host });
                    }
                }
            }
            _ => {}
        }
    }
    let start = p.startdate.as_deref().map(parse_ym);
    let end = p.enddate.as_deref().map(parse_ym);
    let (status, reason) = match (start, end) {
        (Some(None), _) => (
            PeerStatus::Invalid,
            Some("malformed startdate (want YYYY-MM)".to_string()),
        ),
        (_, Some(None)) => (
            PeerStatus::Invalid,
            Some("malformed enddate (want YYYY-MM)".to_string()),
        ),
        (_, None) => (
            PeerStatus::Invalid,
            Some("record has no enddate".to_string()),
        ),
        (Some(Some(s)), _) if s > now => (
            PeerStatus::NotYetValid,
            Some(format!(
                "startdate {} is in the future",
                p.startdate.as_deref().unwrap_or("")
            )),
        ),
        (_, Some(Some(e))) if e < now => (
            PeerStatus::Expired,
            Some(format!(
                "enddate {} has passed",
                p.enddate.as_deref().unwrap_or("")
            )),
        ),
        _ => (PeerStatus::Peer, None),
    };
    p.status = status;
    p.is_peer = status == PeerStatus::Peer;
    p.reason = reason;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ntamx_of_dots_names_no_host() {
        // Found by the nta_record fuzz target: `ntamx=10 .` gave an entry with an empty host.
        let p = parse(
            "v=NTA7516-1;enddate=2030-01;ntamx=10 .;ntamx=20 MX.Example.nl.",
            (2026, 6),
            DnssecStatus::Secure,
        );
        assert_eq!(
            p.ntamx,
            vec![NtaMx {
                preference: 20,
                host: "mx.example.nl".into()
            }]
        );
    }
}

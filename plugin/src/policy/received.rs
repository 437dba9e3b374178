//! The facts of a received message as values: the authentication results of the gateway's own
//! verification ([`crate::inbound`] fills them with mail-auth), the TLS of the sending server's
//! connection and the sender's NTA 7516 peer status. What [`super::inbound`] decides from, and what the
//! audit trail records.

use serde::Serialize;

use super::PeerSource;

/// One authentication result, as RFC 8601 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    TempError,
    PermError,
    None,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
            AuthResult::None => "none",
        }
    }
}

/// The policy the sender's domain publishes for mail failing DMARC (`p=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

/// One DKIM signature's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimCheck {
    pub result: AuthResult,
    /// `d=` and `s=` of the signature ("" when it could not be parsed).
    pub domain: String,
    pub selector: String,
    /// Why it did not pass (mail-auth's error), when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcCheck {
    pub result: AuthResult,
    /// The RFC 5322.From domain DMARC evaluated.
    pub domain: String,
    pub policy: DmarcPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Everything the verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthResults {
    pub spf_mail_from: AuthResult,
    pub spf_helo: AuthResult,
    pub dkim: Vec<DkimCheck>,
    pub dmarc: DmarcCheck,
    pub arc: AuthResult,
    /// The body reached the gateway altered (8-bit text Stalwart converted lossily): DKIM body hashes
    /// cannot be checked, so no signature counts (DMARC can then pass only through SPF).
    pub body_altered: bool,
}

impl AuthResults {
    /// Results without a judged message (header unparsable, verification out of time): no
    /// signature, DMARC `dmarc` with the reason, SPF as far as it got.
    pub fn unjudged(
        spf_mail_from: AuthResult,
        spf_helo: AuthResult,
        dmarc: AuthResult,
        why: &str,
        body_altered: bool,
    ) -> AuthResults {
        AuthResults {
            spf_mail_from,
            spf_helo,
            dkim: Vec::new(),
            dmarc: DmarcCheck {
                result: dmarc,
                domain: String::new(),
                policy: DmarcPolicy::None,
                detail: Some(why.into()),
            },
            arc: AuthResult::None,
            body_altered,
        }
    }

    /// The SPF result that counts: MAIL FROM's, or EHLO's for a null sender (RFC 7208 §2.4).
    pub fn spf(&self, null_sender: bool) -> AuthResult {
        if null_sender {
            self.spf_helo
        } else {
            self.spf_mail_from
        }
    }

    /// One DKIM result for the message: `pass` when any signature passes, else the first signature's
    /// result, `none` without signatures.
    pub fn dkim_summary(&self) -> AuthResult {
        if self.dkim.iter().any(|d| d.result == AuthResult::Pass) {
            return AuthResult::Pass;
        }
        self.dkim.first().map_or(AuthResult::None, |d| d.result)
    }
}

/// The TLS version of the sending server's connection to Stalwart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1.0")]
    Tls10,
    #[serde(rename = "TLSv1.1")]
    Tls11,
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
    /// A name the gateway does not know: never counts as 1.2 or newer.
    #[serde(rename = "unrecognised")]
    Unrecognised,
}

impl TlsVersion {
    /// Stalwart's names (`TLSv1.2`, `TLSv1.3`).
    pub fn parse(s: &str) -> TlsVersion {
        match s.trim() {
            "TLSv1.3" | "TLSv1_3" | "TLS1.3" => TlsVersion::Tls13,
            "TLSv1.2" | "TLSv1_2" | "TLS1.2" => TlsVersion::Tls12,
            "TLSv1.1" | "TLSv1_1" | "TLS1.1" => TlsVersion::Tls11,
            "TLSv1.0" | "TLSv1" | "TLSv1_0" | "TLS1.0" => TlsVersion::Tls10,
            _ => TlsVersion::Unrecognised,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
            TlsVersion::Unrecognised => "unrecognised",
        }
    }

    /// NTA 7516 (and the NCSC guidelines) accept TLS 1.2 and 1.3.
    pub fn is_sufficient(self) -> bool {
        matches!(self, TlsVersion::Tls12 | TlsVersion::Tls13)
    }
}

/// The session's TLS: none for a plaintext session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionTls {
    pub version: TlsVersion,
    pub cipher: String,
}

/// Whether the sender's `From` domain is an NTA 7516 peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Peer {
    Yes {
        provider: String,
        source: PeerSource,
    },
    No,
    /// The DNS lookup failed and no admin list names the domain.
    Unknown {
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dkim_pass_is_enough_and_the_null_sender_uses_ehlo() {
        let check = |result| DkimCheck {
            result,
            domain: "x.test".into(),
            selector: "s".into(),
            detail: None,
        };
        let r = AuthResults {
            spf_mail_from: AuthResult::Fail,
            spf_helo: AuthResult::Pass,
            dkim: vec![check(AuthResult::Fail), check(AuthResult::Pass)],
            dmarc: DmarcCheck {
                result: AuthResult::Pass,
                domain: "x.test".into(),
                policy: DmarcPolicy::Reject,
                detail: None,
            },
            arc: AuthResult::None,
            body_altered: false,
        };
        assert_eq!(r.dkim_summary(), AuthResult::Pass);
        assert_eq!(r.spf(true), AuthResult::Pass);
        assert_eq!(r.spf(false), AuthResult::Fail);
        let none = AuthResults { dkim: vec![], ..r };
        assert_eq!(none.dkim_summary(), AuthResult::None);
    }
    #[test]
    fn tls_versions_by_stalwarts_names() {
        assert_eq!(TlsVersion::parse("TLSv1.3"), TlsVersion::Tls13);
        assert_eq!(TlsVersion::parse("TLSv1.2"), TlsVersion::Tls12);
        assert!(TlsVersion::parse("TLSv1.2").is_sufficient());
        assert!(!TlsVersion::parse("TLSv1.1").is_sufficient());
        assert!(!TlsVersion::parse("SSLv3").is_sufficient());
        assert_eq!(TlsVersion::parse("bogus"), TlsVersion::Unrecognised);
    }
}

//! The verdict: typed reasons and the rules of DESIGN §4.
//!
//! A host is **secure** when it offers STARTTLS, negotiates TLS ≥ 1.2 with an NCSC-acceptable suite
//! and is authenticated: by a matching DANE record when DNSSEC-secure TLSA records exist (no PKIX
//! fallback then, RFC 7672), otherwise by a PKIX-valid chain that is in date and matches the MX
//! name; and, when the domain publishes an MTA-STS policy in `enforce` mode, the policy lists it.
//!
//! **Which MX hosts count.** Stalwart delivers to the first reachable MX in preference order and
//! falls through to the next when one is down. A domain is **secure** when at least one MX host is
//! reachable and *every reachable* MX host is secure; hosts that refuse or time out on connect are
//! skipped and listed in the notes (`mx_unreachable`). If no host is reachable the answer is
//! `unknown`. Any insecure reachable host makes the domain insecure (a later delivery could land
//! on it). DNS failures and timeouts give `unknown`, bogus DNSSEC gives `insecure`: neither is
//! ever deliverable.

use serde::Serialize;

/// The deliverability verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Deliverable: authenticated, NCSC-acceptable TLS on every reachable MX.
    Secure,
    /// Not deliverable: at least one definite problem.
    Insecure,
    /// Could not be determined (DNS failure, timeout, nothing reachable). Never deliverable.
    Unknown,
}

impl Verdict {
    /// Only `Secure` is deliverable.
    pub fn is_deliverable(self) -> bool {
        self == Verdict::Secure
    }
    /// Text.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Secure => "secure",
            Verdict::Insecure => "insecure",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Declares a reason-code enum: each variant with its stable string, serialized as that string, with
/// `as_str()` and `ALL`. Used for SmartTLS's [`ReasonCode`] and the gateway's decision reasons, so every
/// machine code in the project is typed the same way.
#[macro_export]
macro_rules! reason_codes {
    ($(#[$doc:meta])* $vis:vis enum $name:ident { $($(#[$m:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize)]
        $vis enum $name { $($(#[$m])* #[serde(rename = $s)] $v,)* }
        impl $name {
            /// The stable code.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s,)* } }
            /// Every code.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
        }
    };
}

reason_codes! {
    /// Stable machine codes of reasons (serialized as the string shown).
    pub enum ReasonCode {
        /// The domain has no MX and no A/AAAA (or does not exist).
        NoMx => "no_mx",
        /// The domain publishes a null MX (RFC 7505): it accepts no mail.
        NullMx => "null_mx",
        /// A DNS lookup failed (SERVFAIL, timeout, network).
        DnsFailure => "dns_failure",
        /// DNSSEC validation failed (MX, address or TLSA answer).
        DnssecBogus => "dnssec_bogus",
        /// The time budget ran out, or the server stopped answering.
        Timeout => "timeout",
        /// The MX host refused or did not answer the TCP connection.
        MxUnreachable => "mx_unreachable",
        /// The SMTP dialogue failed (bad greeting, EHLO refused, garbage).
        SmtpError => "smtp_error",
        /// EHLO did not offer STARTTLS.
        StarttlsMissing => "starttls_missing",
        /// STARTTLS was refused.
        StarttlsFailed => "starttls_failed",
        /// Plaintext was pipelined after the 220 to STARTTLS.
        StarttlsInjection => "starttls_injection",
        /// The TLS handshake failed.
        TlsHandshakeFailed => "tls_handshake_failed",
        /// The server only speaks TLS < 1.2.
        TlsVersionInsufficient => "tls_version_insufficient",
        /// The negotiated suite is not NCSC Good/Sufficient/Phase-out.
        TlsCipherInsufficient => "tls_cipher_insufficient",
        /// The server also accepts TLS 1.0/1.1 or Insufficient suites (posture; a note).
        TlsLegacyAccepted => "tls_legacy_accepted",
        /// Certificate expired.
        CertExpired => "cert_expired",
        /// Certificate not yet valid.
        CertNotYetValid => "cert_not_yet_valid",
        /// Self-signed certificate.
        CertSelfSigned => "cert_self_signed",
        /// Chain does not reach a trusted root.
        CertUnknownIssuer => "cert_unknown_issuer",
        /// The server omits a needed intermediate.
        CertIncompleteChain => "cert_incomplete_chain",
        /// Certificate does not match the MX name.
        CertNameMismatch => "cert_name_mismatch",
        /// Certificate otherwise invalid.
        CertInvalid => "cert_invalid",
        /// Secure TLSA records exist and none matches.
        DaneMismatch => "dane_mismatch",
        /// Secure TLSA records exist but none is usable for SMTP.
        DaneNoUsableRecords => "dane_no_usable_records",
        /// MTA-STS `enforce` policy does not list this MX.
        MtaStsMxNotListed => "mta_sts_mx_not_listed",
        /// MTA-STS record present but the policy could not be fetched (a note, RFC 8461 §5).
        MtaStsFetchFailed => "mta_sts_fetch_failed",
        /// The `_mta-sts` TXT answer holds several `v=STSv1` records or an invalid one (a note, RFC 8461
        /// §3.1: no policy then).
        MtaStsInvalidRecord => "mta_sts_invalid_record",
        /// Internal error of the prober.
        ProbeFailed => "probe_failed",
    }
}

/// A reason: code, the host it concerns, and a human text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable code.
    pub code: ReasonCode,
    /// MX host, if the reason concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Human-readable explanation.
    pub text: String,
}

impl Reason {
    /// A reason about a host.
    pub fn host(code: ReasonCode, host: &str, text: impl Into<String>) -> Self {
        Reason {
            code,
            host: Some(host.to_string()),
            text: text.into(),
        }
    }
    /// A domain-level reason.
    pub fn domain(code: ReasonCode, text: impl Into<String>) -> Self {
        Reason {
            code,
            host: None,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Some(h) => write!(f, "{} [{}]: {}", self.code.as_str(), h, self.text),
            None => write!(f, "{}: {}", self.code.as_str(), self.text),
        }
    }
}

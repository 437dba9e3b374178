//! Reason codes: the stable machine codes of the reasons behind a decision. Typed inside the gateway;
//! a string only at the boundaries (the `decisions` table, audit records and reports, logs), where each
//! code serializes to exactly the string shown.
use super::Requirement;

nta7516_smarttls::reason_codes! {
    /// Stable machine codes of decision reasons (serialized as the string shown).
    pub enum ReasonCode {
        /// The recipient's domain is one of the organisation's own.
        LocalDomain => "local_domain",
        /// The policy exempts the recipient from 2FA ([`Requirement::Exempt`]).
        PolicyExempt => "exempt",
        /// The policy requires 2FA ([`Requirement::Require2fa`]).
        PolicyRequire2fa => "require_2fa",
        /// The policy sends the recipient to the portal ([`Requirement::Portal`]).
        PolicyPortal => "portal",
        /// The policy refuses the message ([`Requirement::Reject`]).
        PolicyReject => "reject",
        /// The policy quarantines the message ([`Requirement::Quarantine`]); outbound that refuses it.
        PolicyQuarantine => "quarantine",
        /// The policy failed (runtime error, CPU overrun): 2FA required.
        PolicyError => "policy_error",
        /// The recipient passed 2FA recently and is still verified.
        Verified => "verified",
        /// The recipient's domain is an NTA 7516 peer.
        NtaPeer => "nta_peer",
        /// An admin exemption (address or domain) applies.
        AdminExemption => "admin_exemption",
        /// The recipient's servers pass SmartTLS.
        TlsSecure => "tls_secure",
        /// The recipient's servers fail SmartTLS.
        TlsInsecure => "tls_insecure",
        /// The recipient's TLS status could not be determined.
        TlsUnknown => "tls_unknown",
        /// An earlier attempt of this very submission (a retry) already holds the recipient.
        AlreadyHeld => "already_held",
        /// The recipient's copy must be held, but the body (8-bit, not UTF-8) cannot be rebuilt exactly.
        Unholdable8bitBody => "unholdable_8bit_body",
        /// `stalwart check` in `serve` finds a safety rule failing (`stalwart.on_unsafe = "hold"`):
        /// nothing leaves through Stalwart, the recipient reads the message on the portal.
        StalwartUnsafe => "stalwart_unsafe",
        /// `stalwart check` in `serve` cannot read Stalwart's configuration (unknown counts as unsafe).
        StalwartUnknown => "stalwart_unknown",
        /// The policy sends every attachment by secure link (`nta_portal_attachments`): 2FA required,
        /// no exemption lifts it ([`super::Attachments::ByLink`]).
        AttachmentsByLink => "attachments_by_link",
    }
}

impl From<Requirement> for ReasonCode {
    fn from(r: Requirement) -> Self {
        match r {
            Requirement::Exempt => ReasonCode::PolicyExempt,
            Requirement::Require2fa => ReasonCode::PolicyRequire2fa,
            Requirement::Portal => ReasonCode::PolicyPortal,
            Requirement::Quarantine => ReasonCode::PolicyQuarantine,
            Requirement::Reject => ReasonCode::PolicyReject,
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_its_code_and_codes_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ReasonCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
            assert!(seen.insert(code.as_str()), "duplicate {code}");
        }
    }

    #[test]
    fn requirement_codes_are_the_requirements_own() {
        for r in [
            Requirement::Exempt,
            Requirement::Require2fa,
            Requirement::Portal,
            Requirement::Quarantine,
            Requirement::Reject,
        ] {
            assert_eq!(ReasonCode::from(r).as_str(), r.code());
        }
    }
}

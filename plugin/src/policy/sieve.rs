//! The real policy: a Sieve script with the `vnd.nta7516` extension (crate `nta7516_sieve`), loaded from
//! `[policy] file` at start, reloaded on SIGHUP and `POST /v1/admin/policy/reload`. A script that does
//! not compile is refused with `file:line:column: message` and the active policy stays.
//!
//! For mail sent, `vnd.nta7516.dmarc`/`dkim`/`spf`/`arc` read `none` (a submission is authenticated by
//! its login); for mail received ([`crate::inbound`]) they hold the gateway's own verification.

use std::path::{Path, PathBuf};

use nta7516_sieve::{Facts, Limits, PreparedMessage};

use super::{rules::PolicyReason, Policy, PolicyFacts, PolicyVerdict, Requirement};
use crate::Gateway;

/// A compiled Sieve policy behind the gateway's [`Policy`] seam.
#[derive(Clone, Debug)]
pub struct SievePolicy {
    policy: nta7516_sieve::Policy,
    path: PathBuf,
}

impl SievePolicy {
    /// Reads and compiles a policy file. The error reads `file:line:column: message`.
    pub fn load(path: &Path) -> Result<SievePolicy, String> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the policy: {e}", path.display()))?;
        Self::compile(&src, path)
    }

    /// Compiles policy text; `path` only names it in errors.
    pub fn compile(src: &str, path: &Path) -> Result<SievePolicy, String> {
        let policy = nta7516_sieve::Policy::compile(src, &Limits::default())
            .map_err(|e| format!("{}:{e}", path.display()))?;
        Ok(SievePolicy {
            policy,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The library policy (for the CLI's `policy test`).
    pub fn inner(&self) -> &nta7516_sieve::Policy {
        &self.policy
    }
}

/// The gateway's facts about one recipient, as policy facts.
pub fn facts(f: &PolicyFacts) -> Facts {
    Facts {
        tls: f.tls.clone(),
        tls_grade: f.tls_grade.clone(),
        peer: f.peer_provider.is_some(),
        peer_provider: f.peer_provider.clone(),
        verified_until: f.verified_until,
        phone_known: f.phone_known,
        sender_group: f.sender_group.clone(),
        recipient_domain: f.recipient_domain.clone(),
        size: Some(f.size),
        dmarc: f.dmarc.clone(),
        dkim: f.dkim.clone(),
        spf: f.spf.clone(),
        arc: f.arc.clone(),
        direction: Some(f.direction.as_str().to_string()),
        tls_version: f.tls_version.clone(),
        peer_unknown: f.peer_unknown,
        extra: Default::default(),
    }
}

fn requirement(r: nta7516_sieve::Requirement) -> Requirement {
    match r {
        nta7516_sieve::Requirement::Exempt => Requirement::Exempt,
        nta7516_sieve::Requirement::Require2fa => Requirement::Require2fa,
        nta7516_sieve::Requirement::Portal => Requirement::Portal,
        nta7516_sieve::Requirement::Quarantine => Requirement::Quarantine,
        nta7516_sieve::Requirement::Reject => Requirement::Reject,
    }
}

/// A library verdict as the pipeline's. The error stays in `error` (the pipeline adds "policy failed, 2FA
/// required" itself), so the library's own error reason is not repeated.
pub fn verdict(v: nta7516_sieve::Verdict) -> PolicyVerdict {
    let error_reason = v.error.as_ref().map(|e| format!("policy error: {e}"));
    PolicyVerdict {
        requirement: v.requirement.map(requirement),
        reasons: v
            .reasons
            .into_iter()
            .filter(|r| Some(&r.text) != error_reason.as_ref())
            .map(|r| PolicyReason {
                requirement: requirement(r.requirement),
                text: r.text,
            })
            .collect(),
        groups: v.groups,
        error: v.error,
        attachments_by_link: v.attachments_by_link,
    }
}

impl Policy for SievePolicy {
    fn evaluate(
        &self,
        raw_message: &[u8],
        sender: &str,
        recipients: &[(&str, PolicyFacts)],
    ) -> Vec<PolicyVerdict> {
        // Parsed (and scanned, if the script asks) once; one sieve context per recipient.
        let message = PreparedMessage::new(raw_message);
        recipients
            .iter()
            .map(|(rcpt, f)| verdict(self.policy.evaluate(&message, sender, rcpt, &facts(f))))
            .collect()
    }
}

/// Re-reads `[policy] file` and swaps it in. On any error the active policy stays and the error is
/// returned (and logged). Without a configured file there is nothing to reload.
pub fn reload(gw: &Gateway) -> Result<String, String> {
    let Some(path) = gw.config.policy.file.as_deref() else {
        return Err("no [policy] file is configured: nothing to reload".into());
    };
    match SievePolicy::load(path) {
        Ok(p) => {
            gw.set_policy(std::sync::Arc::new(p));
            tracing::info!(policy = %path.display(), "policy reloaded");
            Ok(format!("{}: policy reloaded", path.display()))
        }
        Err(e) => {
            tracing::error!(error = %e, "policy refused, the previous policy stays active");
            Err(format!("{e} (refused; the previous policy stays active)"))
        }
    }
}

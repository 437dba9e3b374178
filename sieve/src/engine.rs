//! The compiled policy and its evaluation, one recipient per sieve-rs context.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use sieve::{
    compiler::grammar::Capability,
    runtime::{RuntimeError, Variable},
    Envelope, Event, Input, Runtime, Sieve,
};

pub use crate::limits::Limits;
use crate::{
    check::{self, CompileError},
    facts::Facts,
    functions::{function_map, HostFn},
    message::PreparedMessage,
    CAPABILITY,
};

/// Strictness order: `Exempt < Require2fa < Portal < Quarantine < Reject`; the strictest decision wins.
///
/// `Quarantine` is for received mail (`vnd.nta7516.direction` = `inbound`): it goes to the quarantine
/// mailbox instead of its recipients. Outbound mail is never quarantined: the gateway refuses it instead.
/// `Require2fa` and `Portal` mean nothing for received mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    Exempt,
    Require2fa,
    Portal,
    Quarantine,
    Reject,
}

impl Requirement {
    pub fn code(self) -> &'static str {
        match self {
            Requirement::Exempt => "exempt",
            Requirement::Require2fa => "require_2fa",
            Requirement::Portal => "portal",
            Requirement::Quarantine => "quarantine",
            Requirement::Reject => "reject",
        }
    }

    /// The inverse of [`Requirement::code`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "exempt" => Requirement::Exempt,
            "require_2fa" => Requirement::Require2fa,
            "portal" => Requirement::Portal,
            "quarantine" => Requirement::Quarantine,
            "reject" => Requirement::Reject,
            _ => return None,
        })
    }
}

/// One decision the script made, with the reason it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub requirement: Requirement,
    pub text: String,
}

/// What the policy said for one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The strictest requirement decided; `None` when the script decided nothing.
    pub requirement: Option<Requirement>,
    /// Every decision in the order the script made it (and, on error, the error as last reason).
    pub reasons: Vec<Reason>,
    /// Groups assigned with `nta_group`, in order, without duplicates.
    pub groups: Vec<String>,
    /// A runtime error or CPU overrun. The requirement is then at least [`Requirement::Require2fa`].
    pub error: Option<String>,
    /// `nta_portal_attachments(reason)` was called: every attachment of the message goes to this
    /// recipient by a secure portal link, never in the mail (the requirement is then at least
    /// [`Requirement::Require2fa`], as the link asks for the recipient's verification). The reason of
    /// the first call.
    pub attachments_by_link: Option<String>,
}

impl Verdict {
    fn decide(&mut self, requirement: Requirement, text: String) {
        self.requirement = self.requirement.max(Some(requirement));
        self.reasons.push(Reason { requirement, text });
    }

    /// Every attachment by link: at least "2FA required" (stricter decisions stay), the first reason kept.
    fn by_link(&mut self, text: String) {
        self.requirement = self.requirement.max(Some(Requirement::Require2fa));
        self.attachments_by_link.get_or_insert(text);
    }

    /// Fail closed: an error means at least "2FA required", with the error as reason.
    fn fail(&mut self, error: String) {
        self.decide(Requirement::Require2fa, format!("policy error: {error}"));
        self.error = Some(error);
    }
}

/// A compiled, checked policy. Cheap to clone (one `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Policy(Arc<Inner>);

struct Inner {
    script: Arc<Sieve>,
    runtime: Runtime,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Policy { .. }")
    }
}

impl Policy {
    /// Compiles and checks a policy (see the crate docs for what is refused). Errors carry a 1-based
    /// line and column.
    pub fn compile(src: &str, limits: &Limits) -> Result<Policy, CompileError> {
        let script = check::compile(src, limits)?;
        let runtime = Runtime::new()
            .with_capability(Capability::Expressions)
            .with_capability(Capability::While)
            .with_capability(CAPABILITY)
            .without_capabilities([
                Capability::FileInto,
                Capability::Vacation,
                Capability::VacationSeconds,
                Capability::Enotify,
                Capability::Include,
                Capability::Reject,
                Capability::Ereject,
                Capability::EditHeader,
                Capability::Duplicate,
            ])
            .with_max_redirects(0)
            .with_max_out_messages(0)
            .with_cpu_limit(limits.cpu_limit)
            .with_functions(&mut function_map());
        Ok(Policy(Arc::new(Inner {
            script: Arc::new(script),
            runtime,
        })))
    }

    /// Evaluates the policy for one recipient, in its own sieve-rs context (the script sees exactly
    /// this recipient in `envelope "to"` and `envelope.to`). Never panics and never fails: an error is
    /// in [`Verdict::error`] and the requirement is then at least "2FA required".
    pub fn evaluate(
        &self,
        message: &PreparedMessage<'_>,
        sender: &str,
        recipient: &str,
        facts: &Facts,
    ) -> Verdict {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut ctx = self
            .0
            .runtime
            .filter_parsed(message.message.clone())
            .with_envelope(Envelope::From, sender)
            .with_envelope(Envelope::To, recipient);
        for (name, value) in facts.variables(sender, recipient, message.size(), now) {
            ctx.set_env_variable(name, value);
        }
        let mut verdict = Verdict::default();
        let mut input = Input::script("policy", self.0.script.clone());
        while let Some(event) = ctx.run(input) {
            input = match event {
                Ok(Event::Function { id, arguments }) => {
                    match call(&mut verdict, message, id, &arguments) {
                        Ok(v) => Input::result(v),
                        Err(e) => {
                            verdict.fail(e);
                            return verdict;
                        }
                    }
                }
                Ok(Event::Keep { .. } | Event::Discard) => Input::True,
                Ok(other) => {
                    verdict.fail(format!("action not allowed in a policy: {other:?}"));
                    return verdict;
                }
                Err(e) => {
                    verdict.fail(runtime_error(&e));
                    return verdict;
                }
            };
        }
        verdict
    }

    /// Evaluates every recipient of one message on its own (the message is parsed and scanned once).
    pub fn evaluate_all(
        &self,
        message: &PreparedMessage<'_>,
        sender: &str,
        recipients: &[(&str, Facts)],
    ) -> Vec<Verdict> {
        recipients
            .iter()
            .map(|(rcpt, facts)| self.evaluate(message, sender, rcpt, facts))
            .collect()
    }
}

fn runtime_error(e: &RuntimeError) -> String {
    match e {
        RuntimeError::CPULimitReached => {
            "CPU limit reached (too many instructions for one recipient)".into()
        }
        RuntimeError::InvalidInstruction(i) => format!(
            "unknown test {:?} at {}:{}",
            i.name(),
            i.line_num(),
            i.line_pos()
        ),
        other => other.to_string(),
    }
}

/// One host function call.
fn call(
    verdict: &mut Verdict,
    message: &PreparedMessage<'_>,
    id: u32,
    args: &[Variable],
) -> Result<Variable, String> {
    let arg = || {
        let text = args
            .first()
            .map(|a| a.to_string().trim().to_string())
            .unwrap_or_default();
        if text.is_empty() {
            "(no reason given)".to_string()
        } else {
            text
        }
    };
    let f = HostFn::from_id(id).ok_or_else(|| format!("unknown host function id {id}"))?;
    Ok(match f {
        HostFn::Require2fa => {
            verdict.decide(Requirement::Require2fa, arg());
            true.into()
        }
        HostFn::Exempt => {
            verdict.decide(Requirement::Exempt, arg());
            true.into()
        }
        HostFn::Portal => {
            verdict.decide(Requirement::Portal, arg());
            true.into()
        }
        HostFn::Reject => {
            verdict.decide(Requirement::Reject, arg());
            true.into()
        }
        HostFn::Quarantine => {
            verdict.decide(Requirement::Quarantine, arg());
            true.into()
        }
        HostFn::PortalAttachments => {
            verdict.by_link(arg());
            true.into()
        }
        HostFn::Group => {
            let name = args
                .first()
                .map(|a| a.to_string().trim().to_string())
                .unwrap_or_default();
            if name.is_empty() {
                return Err("nta_group: empty group name".into());
            }
            if !verdict.groups.contains(&name) {
                verdict.groups.push(name);
            }
            true.into()
        }
        HostFn::HasBsn => message.has_bsn().into(),
        HostFn::HasPhone => message.has_phone().into(),
        HostFn::HasTag => message
            .has_tag(
                &args
                    .first()
                    .map(|a| a.to_string().into_owned())
                    .unwrap_or_default(),
            )
            .into(),
    })
}

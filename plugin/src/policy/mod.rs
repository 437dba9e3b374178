//! The per-recipient decision (DESIGN §3): local domain → policy → exemptions → TLS verdict →
//! Deliver / Challenge / Portal / Reject, as values.
//!
//! The hook ([`crate::submission`]) gathers the facts (store, SmartTLS, policy), calls
//! [`decide_all`], and only then acts. A policy error, a DNS error or a probe timeout never yields
//! [`Outcome::Deliver`].
//!
//! - [`decision`]: the values (outcome, reasons, decision);
//! - [`reason`]: the typed reason codes;
//! - [`decide`]: the pure decision steps, per recipient and per message;
//! - [`exemptions`]: what lifts 2FA, typed, and its precedence;
//! - [`rules`]: the seam to the admin's rules (the [`Policy`] trait, its facts and verdicts);
//! - [`sieve`]: the Sieve implementation of those rules;
//! - [`tls`], [`smarttls`]: the seam to TLS verdicts and its SmartTLS implementation;
//! - [`received`], [`inbound`]: received mail (the inbound hook, [`crate::inbound`]): its facts as
//!   values and the one decision per message (accept / quarantine / tempfail / reject).

pub mod decide;
pub mod decision;
pub mod exemptions;
pub mod inbound;
pub mod reason;
pub mod received;
pub mod rules;
pub mod sieve;
pub mod smarttls;
pub mod tls;

pub use decide::{decide, decide_all, RecipientInput, StalwartGate};
pub use decision::{Attachments, Decision, Outcome, Reason, Step};
pub use exemptions::{AdminReason, Exemption, ExemptionKind, PeerSource, Scope};
pub use inbound::{
    decide_inbound, Action, InboundCode, InboundDecision, InboundInput, InboundReason,
};
pub use reason::ReasonCode;
pub use received::{
    AuthResult, AuthResults, DkimCheck, DmarcCheck, DmarcPolicy, Peer, SessionTls, TlsVersion,
};
pub use rules::{
    DefaultPolicy, Direction, Policy, PolicyFacts, PolicyReason, PolicyVerdict, Requirement,
};
pub use sieve::SievePolicy;
pub use tls::{BoxFuture, NoSmartTls, PeerFact, PeerRecord, TlsFacts, TlsStatus, TlsVerdicts};
